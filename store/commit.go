package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/noded/noded/internal/groupcommit"
)

// Group commit. A change is applied to the in-memory index under Store.mu and queued, still under Store.mu, so the
// queue holds the changes in the order the index saw them; the caller then drops Store.mu and waits until its
// change is committed. No goroutine runs the commits (the loop is internal/groupcommit's): the first waiter that
// finds no commit under way becomes the leader, takes every queued change and writes them, in queue order, in one
// bbolt transaction (one pair of fdatasyncs for all of them); the writers that queued meanwhile share the next
// one. Commits run one at a time and each takes a prefix of the queue, so disk sees the changes in the index's
// order and a later value of a record never lands before an older one.
//
// A failed commit writes nothing. Its changes, and every change queued after them (which may build on them: an
// update of a sandbox that the failed commit was adding), are undone in the index in reverse order, under
// Store.mu, so that the index equals the disk again (the state of the last commit that succeeded) and every one of
// their callers gets the error. The index may show a change while its commit is under way; its caller has not
// returned yet, so no side effect of its own depends on it.

// write is one queued change of one record.
type write struct {
	bucket []byte
	key    []byte
	value  []byte // nil with del
	del    bool
	what   string // for the error: "persist sandboxes <id>", "delete container <id>"
	// undo restores the index as it was before this change; it runs with Store.mu held, after the undo of every
	// later change.
	undo func()

	ticket groupcommit.Ticket
	err    error // set by the commit, read after it ended
	// deferred: nobody waits for this change (deferred.go); a failure is logged.
	deferred bool
}

// stage checks a change for what bbolt would refuse (so that one bad record cannot fail a shared commit) and
// returns it, not yet queued. value nil deletes the key.
func stage(bucket []byte, id string, value []byte, what string) (*write, error) {
	if id == "" {
		return nil, fmt.Errorf("%s: %w", what, berrors.ErrKeyRequired)
	}
	if len(id) > bolt.MaxKeySize {
		return nil, fmt.Errorf("%s: %w", what, berrors.ErrKeyTooLarge)
	}
	if int64(len(value)) > bolt.MaxValueSize {
		return nil, fmt.Errorf("%s: %w", what, berrors.ErrValueTooLarge)
	}
	return &write{bucket: bucket, key: []byte(id), value: value, del: value == nil, what: what}, nil
}

// enqueue queues w after every change applied to the index before it; the caller holds s.mu for writing and has
// applied w to the index. Lock order: Store.mu, then the queue's.
func (s *Store) enqueue(w *write) {
	w.ticket = s.commits.Add(w)
}

// wait returns once w is committed (nil) or undone (the commit's error); the caller does not hold s.mu.
func (s *Store) wait(w *write) error {
	s.commits.Wait(w.ticket)
	if w.err != nil {
		return fmt.Errorf("%s: %w", w.what, w.err)
	}
	return nil
}

// commit is the leader's step: it writes batch and, when that fails, undoes it and every change queued after it.
func (s *Store) commit(batch []*write, takeLater func() []*write) {
	if err := s.writeBatch(batch); err != nil {
		s.undo(batch, takeLater, err)
	}
}

// writeBatch commits batch in one transaction, in order. A panic (of bbolt, on a damaged file) is its error: the
// waiters must not hang on a leader that is gone.
func (s *Store) writeBatch(batch []*write) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in the commit: %v", r)
		}
	}()
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, w := range batch {
			b := tx.Bucket(w.bucket)
			var err error
			if w.del {
				err = b.Delete(w.key)
			} else {
				err = b.Put(w.key, w.value)
			}
			if err != nil {
				return err
			}
		}
		if s.commitHook != nil {
			return s.commitHook(tx)
		}
		return nil
	})
}

// undo takes back, in the index, the changes of a failed commit and every change queued after them (takeLater
// takes those from the queue), newest first, and gives each its error.
func (s *Store) undo(batch []*write, takeLater func() []*write, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	later := takeLater()
	for i := len(later) - 1; i >= 0; i-- {
		later[i].undo()
		later[i].err = fmt.Errorf("an earlier change it may build on failed: %w", err)
		if later[i].deferred {
			logDeferredFailure(later[i])
		}
	}
	for i := len(batch) - 1; i >= 0; i-- {
		batch[i].undo()
		batch[i].err = err
		if batch[i].deferred {
			logDeferredFailure(batch[i])
		}
	}
	s.sbList.Store(nil)
	s.ctrList.Store(nil)
}
