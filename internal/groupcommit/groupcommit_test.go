package groupcommit

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// item is a queued test item; got is its outcome, set by the commit step.
type item struct {
	name string
	got  string
}

// recorder is a commit step that logs each batch, and what it took with takeLater, as one line.
type recorder struct {
	mu    sync.Mutex
	lines []string
	// hook, when set, runs at the start of each commit and may take later items; it returns them.
	hook func(n int, takeLater func() []*item) []*item
}

func (r *recorder) commit(batch []*item, takeLater func() []*item) {
	r.mu.Lock()
	n := len(r.lines)
	r.lines = append(r.lines, "")
	r.mu.Unlock()
	var later []*item
	if r.hook != nil {
		later = r.hook(n, takeLater)
	}
	line := ""
	for _, x := range batch {
		line += x.name + " "
		x.got = fmt.Sprintf("commit %d", n)
	}
	line += "|"
	for _, x := range later {
		line += " " + x.name
		x.got = fmt.Sprintf("later of commit %d", n)
	}
	r.mu.Lock()
	r.lines[n] = line
	r.mu.Unlock()
}

func (r *recorder) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

// start queues x and waits for it in a goroutine, which sends x's outcome as Wait returns.
func start(q *Queue[*item], name string) <-chan string {
	x := &item{name: name}
	out := make(chan string, 1)
	t := q.Add(x)
	go func() { q.Wait(t); out <- x.got }()
	return out
}

func waitLen(t *testing.T, q *Queue[*item], n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); q.Len() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d items queued, want %d", q.Len(), n)
		}
	}
}

func expect(t *testing.T, what string, got <-chan string, want string) {
	t.Helper()
	select {
	case g := <-got:
		if g != want {
			t.Fatalf("%s: outcome %q, want %q", what, g, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Wait did not return", what)
	}
}

// A lone item is committed alone; the items queued while a commit is under way share the next one, in order.
func TestItemsQueuedDuringACommitShareTheNext(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	r := &recorder{hook: func(n int, _ func() []*item) []*item {
		if n == 0 {
			close(entered)
			<-release
		}
		return nil
	}}
	q := New(r.commit)
	a := start(q, "a")
	<-entered
	b, c, d := start(q, "b"), start(q, "c"), start(q, "d")
	waitLen(t, q, 3)
	close(release)
	expect(t, "a", a, "commit 0")
	expect(t, "b", b, "commit 1")
	expect(t, "c", c, "commit 1")
	expect(t, "d", d, "commit 1")
	if got, want := r.log(), []string{"a |", "b c d |"}; !slices.Equal(got, want) {
		t.Fatalf("commits %q, want %q", got, want)
	}
	if q.Len() != 0 {
		t.Fatalf("%d items left queued", q.Len())
	}
}

// takeLater takes the items queued since the batch into the commit under way: their Waits return when it ends,
// with the outcome it gave them, and the items queued after it go to the next commit.
func TestTakeLaterJoinsTheCommitUnderWay(t *testing.T) {
	entered, took, release, ended := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	releaseNext := make(chan struct{}) // the next commit waits for it: b and c must not wait for that one
	r := &recorder{hook: func(n int, takeLater func() []*item) []*item {
		if n != 0 {
			<-releaseNext
			return nil
		}
		close(entered)
		<-took
		later := takeLater()
		close(ended)
		<-release
		return later
	}}
	q := New(r.commit)
	a := start(q, "a")
	<-entered
	b, c := start(q, "b"), start(q, "c")
	waitLen(t, q, 2)
	close(took)
	<-ended
	d := start(q, "d")
	waitLen(t, q, 1)
	select {
	case g := <-b:
		t.Fatalf("b's Wait returned (%q) before the commit that took it ended", g)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	expect(t, "a", a, "commit 0")
	expect(t, "b", b, "later of commit 0")
	expect(t, "c", c, "later of commit 0")
	close(releaseNext)
	expect(t, "d", d, "commit 1")
	if got, want := r.log(), []string{"a | b c", "d |"}; !slices.Equal(got, want) {
		t.Fatalf("commits %q, want %q", got, want)
	}
}

// Many concurrent items are each committed exactly once, and every Wait returns.
func TestConcurrentItemsEachCommittedOnce(t *testing.T) {
	r := &recorder{}
	q := New(r.commit)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			x := &item{name: fmt.Sprint(i)}
			q.Wait(q.Add(x))
			if x.got == "" {
				t.Errorf("item %d: Wait returned before its commit", i)
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for _, line := range r.log() {
		var name string
		for _, ch := range line {
			switch {
			case ch >= '0' && ch <= '9':
				name += string(ch)
			case name != "":
				seen[name]++
				name = ""
			}
		}
	}
	if len(seen) != 50 {
		t.Fatalf("%d items committed, want 50", len(seen))
	}
	for name, n := range seen {
		if n != 1 {
			t.Fatalf("item %s committed %d times", name, n)
		}
	}
}

// TestFlush: Flush commits what is queued (items added without a Wait: deferred), waits for a commit under way
// that carries items, and costs nothing when nothing is queued.
func TestFlush(t *testing.T) {
	r := &recorder{}
	q := New(r.commit)
	if got := q.Flush(); got != 0 {
		t.Fatalf("Flush of an empty queue waited for ticket %d", got)
	}
	a, b := &item{name: "a"}, &item{name: "b"}
	q.Add(a)
	tb := q.Add(b)
	if got := q.Flush(); got != tb {
		t.Fatalf("Flush waited for ticket %d, want b's %d", got, tb)
	}
	if a.got != "commit 0" || b.got != "commit 0" {
		t.Fatalf("after Flush: a %q, b %q, want both in commit 0", a.got, b.got)
	}
	q.Flush()
	if got := r.log(); !slices.Equal(got, []string{"a b |"}) {
		t.Fatalf("commits %q, want one commit of a and b and none for the empty Flush", got)
	}

	// A Flush while a commit is under way waits for it, though nothing is queued.
	release := make(chan struct{})
	entered := make(chan struct{})
	r.hook = func(n int, _ func() []*item) []*item {
		if n == 1 {
			close(entered)
			<-release
		}
		return nil
	}
	c := start(q, "c")
	<-entered
	flushed := make(chan struct{})
	go func() { q.Flush(); close(flushed) }()
	select {
	case <-flushed:
		t.Fatal("Flush returned while the commit of c was under way")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-flushed
	expect(t, "c", c, "commit 1")
}

// TestWaitCommitted: WaitCommitted does not commit; it returns when another waiter's commit took the item.
func TestWaitCommitted(t *testing.T) {
	r := &recorder{}
	q := New(r.commit)
	a := &item{name: "a"}
	ta := q.Add(a)
	done := make(chan struct{})
	go func() { q.WaitCommitted(ta); close(done) }()
	select {
	case <-done:
		t.Fatal("WaitCommitted returned before any commit")
	case <-time.After(50 * time.Millisecond):
	}
	if len(r.log()) != 0 {
		t.Fatalf("WaitCommitted committed: %q", r.log())
	}
	b := start(q, "b")
	expect(t, "b", b, "commit 0")
	<-done
	if a.got != "commit 0" {
		t.Fatalf("a: %q, want commit 0", a.got)
	}
}
