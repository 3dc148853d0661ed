package weakmemo

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// record is padded past 16 bytes: a smaller pointer-free object would come from the tiny allocator, which packs
// several into one block, so its cleanup would run only once every object of the block is gone.
type record struct {
	n int
	_ [16]byte
}

func TestGetKeepsOneValuePerObject(t *testing.T) {
	var m Memo[record, string]
	calls := 0
	mk := func(r *record) string { calls++; return strconv.Itoa(r.n) }
	a, b := &record{n: 1}, &record{n: 1}
	if got := m.Get(a, mk); got != "1" {
		t.Fatalf("Get = %q", got)
	}
	if got := m.Get(a, mk); got != "1" || calls != 1 {
		t.Errorf("second Get of the same object: %q after %d makes, want 1 make", got, calls)
	}
	// An equal but distinct object (an updated record) has an entry of its own.
	m.Get(b, mk)
	if calls != 2 || m.Len() != 2 {
		t.Errorf("distinct object: %d makes, %d entries; want 2, 2", calls, m.Len())
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
}

func TestEntryDroppedWithItsObject(t *testing.T) {
	var m Memo[record, int]
	func() {
		for i := 0; i < 100; i++ {
			m.Get(&record{n: i}, func(r *record) int { return r.n })
		}
	}()
	keep := &record{n: -1}
	m.Get(keep, func(r *record) int { return r.n })
	deadline := time.Now().Add(10 * time.Second)
	for m.Len() > 1 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := m.Len(); n != 1 {
		t.Errorf("%d entries after their objects were collected, want only the live one", n)
	}
	if got := m.Get(keep, func(*record) int { return 99 }); got != -1 {
		t.Errorf("live object's entry = %d, want -1", got)
	}
	runtime.KeepAlive(keep)
}
