// Package groupcommit is the leader loop of a group commit, shared by the store (store/commit.go) and the
// snapshotter's bbolt transactions (internal/boltgroup). Callers queue items and wait; no goroutine runs the
// commits: the first waiter that finds none under way becomes the leader, takes everything queued and commits it in
// one step, and the items queued meanwhile share the next. Commits run one at a time, each on a prefix of the
// queue, so items are committed in the order they were queued.
//
// What a commit is, and what a failed one does to its items (fail them all, retry some), is the caller's: the step
// given to New commits a batch and sets each item's outcome. The loop only decides who commits what, and when a
// waiter may return.
package groupcommit

import "sync"

// Ticket names the commit that an item queued by Add is part of; Wait takes it.
type Ticket uint64

// Queue holds the items not yet committed. It is safe for concurrent use.
type Queue[T any] struct {
	commit    func(batch []T, takeLater func() []T)
	takeLater func() []T // q.takeLater, made once: a method value made per commit would be an allocation

	mu    sync.Mutex
	cond  sync.Cond // signalled under mu when a commit ends
	queue []T
	busy  bool // a leader is committing
	// taken counts the batches taken from the queue, ended those whose commit has ended (when not busy, they are
	// equal). An item queued when taken is n goes with batch n+1, so its commit has ended once ended > n.
	taken, ended uint64
}

// New returns an empty queue whose leaders commit with commit. commit runs in the leader's goroutine, with no lock
// of the queue held, and must set the outcome of every item of batch where their callers will read it after Wait.
// It may call takeLater (only while it runs): that takes every item queued since batch was taken (and empties the
// queue), whose outcome commit then sets as well; their Waits return when this commit ends, as batch's do.
func New[T any](commit func(batch []T, takeLater func() []T)) *Queue[T] {
	q := &Queue[T]{commit: commit}
	q.cond.L = &q.mu
	q.takeLater = q.take
	return q
}

// Len returns how many items wait for the next commit.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

// Add queues x after every item queued before it and returns the ticket Wait takes.
func (q *Queue[T]) Add(x T) Ticket {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queue = append(q.queue, x)
	return Ticket(q.taken + 1)
}

// Wait returns once the commit of the item that Add gave t for has ended; it commits the queue itself when no commit
// is under way.
func (q *Queue[T]) Wait(t Ticket) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.ended < uint64(t) {
		if q.busy {
			q.cond.Wait()
			continue
		}
		// Not committed and no commit under way: the item is still queued. Commit the queue.
		batch := q.queue
		q.queue = nil
		q.taken++
		q.busy = true
		q.mu.Unlock()
		q.commit(batch, q.takeLater)
		q.mu.Lock()
		q.ended = q.taken
		q.busy = false
		q.cond.Broadcast()
	}
}

// Flush returns once every item queued before it has been committed (at once when nothing is queued or under
// way); it commits the queue itself when no commit is under way. It returns the ticket it waited for: every item
// whose Add gave a ticket up to it is committed.
func (q *Queue[T]) Flush() Ticket {
	q.mu.Lock()
	t := q.taken
	if len(q.queue) > 0 {
		t++
	}
	q.mu.Unlock()
	q.Wait(Ticket(t))
	return Ticket(t)
}

// WaitCommitted returns once the commit of the item that Add gave t for has ended, like Wait, but never commits
// itself: it relies on another waiter, or a Flush, to lead that commit.
func (q *Queue[T]) WaitCommitted(t Ticket) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.ended < uint64(t) {
		q.cond.Wait()
	}
}

// Committed reports whether the commit of the item that Add gave t for has ended.
func (q *Queue[T]) Committed(t Ticket) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ended >= uint64(t)
}

// take takes the queue into the commit under way.
func (q *Queue[T]) take() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	later := q.queue
	q.queue = nil
	q.taken++
	return later
}
