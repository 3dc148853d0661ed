package boltgroup

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var bucket = []byte("b")

func newGroup(t *testing.T) (*Group, *bolt.DB) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		t.Fatal(err)
	}
	return New(db), db
}

func commits(t *testing.T, db *bolt.DB) int {
	t.Helper()
	tx, err := db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	return int(tx.ID())
}

// hold queues a first call that waits in its transaction until release is closed.
func hold(t *testing.T, g *Group) (release func(), done <-chan error) {
	t.Helper()
	in, out, res := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		res <- g.Update(func(tx *bolt.Tx) error {
			close(in)
			<-out
			return tx.Bucket(bucket).Put([]byte("held"), []byte("1"))
		}, nil)
	}()
	<-in
	return func() { close(out) }, res
}

func waitQueued(t *testing.T, g *Group, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if got := g.Queued(); got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", g.Queued(), n)
		}
	}
}

func get(t *testing.T, db *bolt.DB, key string) string {
	t.Helper()
	var v string
	_ = db.View(func(tx *bolt.Tx) error { v = string(tx.Bucket(bucket).Get([]byte(key))); return nil })
	return v
}

func TestCallsQueuedDuringACommitShareTheNext(t *testing.T) {
	g, db := newGroup(t)
	before := commits(t, db)
	release, held := hold(t, g)
	errs := make(chan error, 5)
	for i := range 5 {
		go func() {
			errs <- g.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte{byte('a' + i)}, []byte("x")) }, nil)
		}()
	}
	waitQueued(t, g, 5)
	release()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := commits(t, db) - before; n != 2 {
		t.Fatalf("6 calls took %d commits, want 2", n)
	}
	for _, k := range []string{"held", "a", "e"} {
		if get(t, db, k) == "" {
			t.Fatalf("%s not committed", k)
		}
	}
}

// The calls of one transaction run in queue order, each seeing the changes of those before it.
func TestCallsRunInQueueOrder(t *testing.T) {
	g, db := newGroup(t)
	release, held := hold(t, g)
	appendTo := func(s string) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b := tx.Bucket(bucket)
			return b.Put([]byte("log"), append(append([]byte{}, b.Get([]byte("log"))...), s...))
		}
	}
	errs := make(chan error, 3)
	for i, s := range []string{"1", "2", "3"} {
		go func() { errs <- g.Update(appendTo(s), nil) }()
		waitQueued(t, g, i+1)
	}
	release()
	<-held
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := get(t, db, "log"); got != "123" {
		t.Fatalf("log %q, want 123", got)
	}
}

// A failing call gets its own error and none of its changes land; the others of its transaction commit, after
// their outside effects were undone and they ran again.
func TestFailingCallIsItsOwn(t *testing.T) {
	g, db := newGroup(t)
	release, held := hold(t, g)
	var mu sync.Mutex
	outside := map[string]int{} // effects outside the transaction: +1 per run, -1 per undo
	call := func(key string, fail bool) (func(*bolt.Tx) error, func()) {
		return func(tx *bolt.Tx) error {
				mu.Lock()
				outside[key]++
				mu.Unlock()
				if err := tx.Bucket(bucket).Put([]byte(key), []byte("x")); err != nil {
					return err
				}
				if fail {
					return errors.New("no " + key)
				}
				return nil
			}, func() {
				mu.Lock()
				outside[key]--
				mu.Unlock()
			}
	}
	errs := make([]chan error, 3)
	for i, key := range []string{"a", "bad", "c"} {
		errs[i] = make(chan error, 1)
		fn, undo := call(key, key == "bad")
		go func() { errs[i] <- g.Update(fn, undo) }()
		waitQueued(t, g, i+1)
	}
	release()
	<-held
	if err := <-errs[0]; err != nil {
		t.Fatal(err)
	}
	if err := <-errs[1]; err == nil || err.Error() != "no bad" {
		t.Fatalf("failing call: %v, want its own error", err)
	}
	if err := <-errs[2]; err != nil {
		t.Fatal(err)
	}
	if get(t, db, "a") == "" || get(t, db, "c") == "" || get(t, db, "bad") != "" {
		t.Fatalf("a=%q bad=%q c=%q", get(t, db, "a"), get(t, db, "bad"), get(t, db, "c"))
	}
	if outside["a"] != 1 || outside["c"] != 1 || outside["bad"] != 0 {
		t.Fatalf("outside effects %v, want a and c once, bad none", outside)
	}
}

func TestPanicIsTheCallsError(t *testing.T) {
	g, db := newGroup(t)
	err := g.Update(func(tx *bolt.Tx) error {
		_ = tx.Bucket(bucket).Put([]byte("k"), []byte("v"))
		panic("boom")
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("%v, want the panic", err)
	}
	if get(t, db, "k") != "" {
		t.Fatal("the panicking call's change was committed")
	}
	if err := g.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte("k"), []byte("v")) }, nil); err != nil {
		t.Fatalf("the group after a panic: %v", err)
	}
}

// A transaction that cannot begin runs no call and undoes nothing.
func TestClosedDatabase(t *testing.T) {
	g, db := newGroup(t)
	db.Close()
	undone := false
	if err := g.Update(func(*bolt.Tx) error { return nil }, func() { undone = true }); !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		t.Fatalf("%v, want ErrDatabaseNotOpen", err)
	}
	if undone {
		t.Fatal("undo of a call that never ran")
	}
}

func TestConcurrentCounters(t *testing.T) {
	g, db := newGroup(t)
	const writers, each = 20, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := g.Update(func(tx *bolt.Tx) error {
					b := tx.Bucket(bucket)
					var n uint64
					if v := b.Get([]byte("n")); v != nil {
						n = binary.BigEndian.Uint64(v)
					}
					return b.Put([]byte("n"), binary.BigEndian.AppendUint64(nil, n+1))
				}, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := binary.BigEndian.Uint64([]byte(get(t, db, "n"))); n != writers*each {
		t.Fatalf("counter %d, want %d", n, writers*each)
	}
}
