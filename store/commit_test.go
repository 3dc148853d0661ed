package store

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

func newTestStore(t *testing.T) *Store {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func commitCount(t *testing.T, s *Store) int {
	t.Helper()
	tx, err := s.db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	return int(tx.ID())
}

// assertMemoryIsDisk fails unless the index of s is what a restart would load from its file: the same records,
// names and per-pod container sets.
func assertMemoryIsDisk(t *testing.T, s *Store) {
	t.Helper()
	disk, err := Open(s.db)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	same := func(a, b record) bool {
		ea, err1 := a.encode()
		eb, err2 := b.encode()
		return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
	}
	if len(s.sandboxes) != len(disk.sandboxes) || len(s.containers) != len(disk.containers) {
		t.Fatalf("memory has %d sandboxes and %d containers, disk %d and %d",
			len(s.sandboxes), len(s.containers), len(disk.sandboxes), len(disk.containers))
	}
	for id, sb := range s.sandboxes {
		m, d := *sb, disk.sandboxes[id]
		if d == nil || !same(&m, d) {
			t.Fatalf("sandbox %s: memory %+v, disk %+v", id, sb, d)
		}
	}
	for id, c := range s.containers {
		m, d := *c, disk.containers[id]
		if d == nil || !same(&m, d) {
			t.Fatalf("container %s: memory %+v, disk %+v", id, c, d)
		}
	}
	if !maps.Equal(s.sbNames, disk.sbNames) || !maps.Equal(s.ctrNames, disk.ctrNames) {
		t.Fatalf("names: memory %v %v, disk %v %v", s.sbNames, s.ctrNames, disk.sbNames, disk.ctrNames)
	}
	if len(s.podCtrs) != len(disk.podCtrs) {
		t.Fatalf("pod containers: memory %v, disk %v", s.podCtrs, disk.podCtrs)
	}
	for id, ids := range s.podCtrs {
		if !maps.Equal(ids, disk.podCtrs[id]) {
			t.Fatalf("containers of %s: memory %v, disk %v", id, ids, disk.podCtrs[id])
		}
	}
	if got := len(s.SandboxRecords()); got != len(s.sandboxes) {
		t.Fatalf("listed %d sandboxes of %d", got, len(s.sandboxes))
	}
}

// holdFirstCommit makes the next commit of s wait in its transaction until release gets its outcome (nil commits,
// an error fails it); entered is closed once it waits. Later commits fail with fail (nil: they succeed).
func holdFirstCommit(s *Store, fail error) (entered <-chan struct{}, release chan<- error) {
	in, out := make(chan struct{}), make(chan error, 1)
	var once sync.Once
	s.commitHook = func(*bolt.Tx) error {
		held := false
		once.Do(func() { held = true })
		if !held {
			return fail
		}
		close(in)
		return <-out
	}
	return in, out
}

// waitQueued waits until n changes wait for the commit under way.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		got := s.commits.Len()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d changes queued behind the commit under way, want %d", got, n)
		}
	}
}

func testContainer(sandboxID, name string) *Container {
	return &Container{ID: NewID(), SandboxID: sandboxID, Name: name, State: ContainerCreating,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: name}}}
}

func testSandbox(name string) *Sandbox {
	return &Sandbox{ID: NewID(), Name: name, State: SandboxCreating,
		Config: &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: name}}}
}

// Writers that come while a commit is under way do not wait for the store's lock: they queue, and share the next
// commit.
func TestConcurrentWritersShareACommit(t *testing.T) {
	s := newTestStore(t)
	entered, release := holdFirstCommit(s, nil)
	before := commitCount(t, s)
	errs := make(chan error, 6)
	go func() { errs <- s.AddSandbox(testSandbox("first")) }()
	<-entered
	for i := range 5 {
		go func() { errs <- s.AddSandbox(testSandbox(fmt.Sprintf("p%d", i))) }()
	}
	waitQueued(t, s, 5)
	release <- nil
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := commitCount(t, s) - before; n != 2 {
		t.Fatalf("6 writes took %d commits, want 2 (the one under way and one shared)", n)
	}
	if n := len(s.Sandboxes()); n != 6 {
		t.Fatalf("%d sandboxes, want 6", n)
	}
	assertMemoryIsDisk(t, s)
}

// Updates of one record reach the disk in the order the index applied them: the last one wins on disk too.
func TestUpdatesLandInOrder(t *testing.T) {
	s := newTestStore(t)
	sb := testSandbox("p")
	if err := s.AddSandbox(sb); err != nil {
		t.Fatal(err)
	}
	entered, release := holdFirstCommit(s, nil)
	set := func(pid int) func(*Sandbox) error { return func(x *Sandbox) error { x.InitPID = pid; return nil } }
	errs := make(chan error, 3)
	go func() { _, err := s.UpdateSandbox(sb.ID, set(1)); errs <- err }()
	<-entered
	for pid := 2; pid <= 4; pid++ {
		go func() { _, err := s.UpdateSandbox(sb.ID, set(pid)); errs <- err }()
		waitQueued(t, s, pid-1) // one at a time, so that the index applies 2, 3, 4 in that order
	}
	release <- nil
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.Sandbox(sb.ID); got.InitPID != 4 {
		t.Fatalf("memory has %d, want 4", got.InitPID)
	}
	assertMemoryIsDisk(t, s)
}

// Many writers updating the same records at once: every update counts, and the disk ends where memory is.
func TestConcurrentUpdatesOfOneRecord(t *testing.T) {
	s := newTestStore(t)
	sb := testSandbox("p")
	if err := s.AddSandbox(sb); err != nil {
		t.Fatal(err)
	}
	const writers, each = 30, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := s.UpdateSandbox(sb.ID, func(x *Sandbox) error { x.InitPID++; return nil }); err != nil {
					errs <- err
					return
				}
			}
			c := testContainer(sb.ID, fmt.Sprintf("c%d", w))
			if err := s.AddContainer(c); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, _ := s.Sandbox(sb.ID); got.InitPID != writers*each {
		t.Fatalf("counter %d, want %d", got.InitPID, writers*each)
	}
	if n := len(s.Containers(sb.ID)); n != writers {
		t.Fatalf("%d containers, want %d", n, writers)
	}
	assertMemoryIsDisk(t, s)
}

// A failed commit changes nothing: each call returns the error and memory stays what the disk holds.
func TestFailedCommitChangesNothing(t *testing.T) {
	s := newTestStore(t)
	sb := testSandbox("p")
	if err := s.AddSandbox(sb); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateSandbox(sb.ID, func(x *Sandbox) error { x.State = SandboxReady; return nil }); err != nil {
		t.Fatal(err)
	}
	c := testContainer(sb.ID, "c")
	if err := s.AddContainer(c); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("disk on fire")
	s.commitHook = func(*bolt.Tx) error { return broken }

	steps := []struct {
		what string
		do   func() error
	}{
		{"add sandbox", func() error { return s.AddSandbox(testSandbox("q")) }},
		{"update sandbox", func() error {
			prev, err := s.UpdateSandbox(sb.ID, func(x *Sandbox) error { x.State = SandboxNotReady; return nil })
			if prev.State != SandboxReady {
				t.Errorf("failed update returned %s, want the stored %s", prev.State, SandboxReady)
			}
			return err
		}},
		{"delete sandbox", func() error { return s.DeleteSandbox(sb.ID) }},
		{"add container", func() error {
			return s.AddContainer(testContainer(sb.ID, "d"))
		}},
		{"update container", func() error {
			_, err := s.UpdateContainer(c.ID, func(x *Container) error { x.State = ContainerCreated; return nil })
			return err
		}},
		{"delete container", func() error { return s.DeleteContainer(c.ID) }},
	}
	for _, st := range steps {
		if err := st.do(); !errors.Is(err, broken) {
			t.Fatalf("%s: %v, want the commit's error", st.what, err)
		}
		assertMemoryIsDisk(t, s)
	}
	if got, err := s.Sandbox(sb.ID); err != nil || got.State != SandboxReady {
		t.Fatalf("sandbox after failed writes: %+v, %v", got, err)
	}
	if _, ok := s.SandboxByName("q"); ok {
		t.Fatal("a failed add holds its name")
	}
	if got := s.Containers(sb.ID); len(got) != 1 || got[0].ID != c.ID || got[0].State != ContainerCreating {
		t.Fatalf("containers after failed writes: %+v", got)
	}
	if _, ok := s.ContainerByName("c"); !ok {
		t.Fatal("a failed delete freed the container's name")
	}
	s.commitHook = nil
	if err := s.AddSandbox(testSandbox("q")); err != nil {
		t.Fatalf("add after the disk came back: %v", err)
	}
	assertMemoryIsDisk(t, s)
}

// A failed commit also takes back the changes queued behind it, which may build on it (here: the sandbox the
// failed commit was adding gets ready and a container): memory is again what a restart would load.
func TestFailedCommitUndoesChangesQueuedBehindIt(t *testing.T) {
	s := newTestStore(t)
	old := testSandbox("old")
	if err := s.AddSandbox(old); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("disk on fire")
	entered, release := holdFirstCommit(s, nil)
	sb := testSandbox("p")
	errs := make(chan error, 5)
	go func() { errs <- s.AddSandbox(sb) }()
	<-entered
	go func() {
		_, err := s.UpdateSandbox(sb.ID, func(x *Sandbox) error { x.State = SandboxReady; return nil })
		errs <- err
	}()
	waitQueued(t, s, 1)
	go func() {
		errs <- s.AddContainer(testContainer(sb.ID, "c"))
	}()
	waitQueued(t, s, 2)
	go func() { errs <- s.DeleteSandbox(old.ID) }()
	waitQueued(t, s, 3)
	go func() { errs <- s.AddSandbox(testSandbox("old")) }() // the name the delete freed in memory
	waitQueued(t, s, 4)
	if _, err := s.Sandbox(sb.ID); err != nil {
		t.Fatalf("the index does not show the change under way: %v", err)
	}
	release <- broken
	for range 5 {
		if err := <-errs; !errors.Is(err, broken) {
			t.Fatalf("%v, want the failed commit's error", err)
		}
	}
	if _, err := s.Sandbox(sb.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("sandbox of the failed commit: %v, want NotFound", err)
	}
	if got, ok := s.SandboxByName("old"); !ok || got.ID != old.ID {
		t.Fatalf("name of the sandbox whose delete failed: %+v %v", got, ok)
	}
	if n := len(s.Containers("")); n != 0 {
		t.Fatalf("%d containers, want none", n)
	}
	assertMemoryIsDisk(t, s)
	s.commitHook = nil
	if err := s.AddSandbox(sb); err != nil {
		t.Fatalf("add after the disk came back: %v", err)
	}
	assertMemoryIsDisk(t, s)
}

// A commit that panics (bbolt does on a damaged file) fails like any other and the store goes on.
func TestPanickingCommitFails(t *testing.T) {
	s := newTestStore(t)
	s.commitHook = func(*bolt.Tx) error { panic("page already freed") }
	if err := s.AddSandbox(testSandbox("p")); err == nil || !strings.Contains(err.Error(), "page already freed") {
		t.Fatalf("%v, want the panic as the error", err)
	}
	assertMemoryIsDisk(t, s)
	s.commitHook = nil
	if err := s.AddSandbox(testSandbox("p")); err != nil {
		t.Fatalf("add after the panic: %v", err)
	}
	assertMemoryIsDisk(t, s)
}
