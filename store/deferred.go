package store

import (
	"time"

	"k8s.io/klog/v2"

	"github.com/noded/noded/internal/groupcommit"
)

// Deferred writes. Most changes are durable when their call returns (callers write intent before side effects).
// A few are not needed on disk at once, because recovery at start rebuilds them from the node when they are lost
// (each call site says why): those are applied to the index and queued like any other change, but their caller
// does not wait; the next commit of anyone carries them (a commit takes every queued change, in order), and a
// timer commits them DeferDelay after the first of them was queued when nothing else did. A lifecycle's
// "running" and "exited" updates thus ride on the durable commit of the next RPC instead of paying a pair of
// fdatasyncs each (issue 16).
//
// Order still holds: a deferred change is committed before or with every change queued after it, so disk never
// has a later state of a record without its earlier ones. A deferred change whose commit fails is undone in the
// index like any other (and logged: nobody waits for it); what it recorded is then rebuilt by the next recovery,
// as after a crash.

// DeferDelay bounds how long a deferred change waits for another commit to carry it.
const DeferDelay = time.Second

// UpdateContainerDeferred is UpdateContainer without waiting for the commit: it returns once the change is in the
// index and queued. Use it only where losing the change in a crash is repaired by recovery at start.
func (s *Store) UpdateContainerDeferred(id string, fn func(*Container) error) (Container, error) {
	prev, next, w, err := s.updateContainer(id, fn)
	if err != nil {
		return prev, err
	}
	s.deferred(id, w)
	return next, nil
}

// DeleteContainerDeferred is DeleteContainer without waiting for the commit; see UpdateContainerDeferred.
func (s *Store) DeleteContainerDeferred(id string) error {
	w, err := s.deleteContainer(id)
	if err != nil || w == nil {
		return err
	}
	s.deferred(id, w)
	return nil
}

// deferred marks w, queued for container id, as waited for by nobody and makes sure a commit takes it within
// DeferDelay.
func (s *Store) deferred(id string, w *write) {
	w.deferred = true
	s.flushMu.Lock()
	if s.closed {
		// No timer after Close: commit it now, as a plain write would (a failure is logged by the commit).
		s.flushMu.Unlock()
		_ = s.wait(w)
		return
	}
	s.pending[id] = w.ticket
	if s.flushTimer == nil {
		s.flushTimer = time.AfterFunc(s.deferDelay, s.flushDeferred)
	}
	s.flushMu.Unlock()
}

// flushDeferred is the timer's: it commits every deferred change queued so far.
func (s *Store) flushDeferred() {
	s.flushMu.Lock()
	s.flushTimer = nil
	s.flushMu.Unlock()
	s.Flush()
}

// Flush returns once every change queued before it, deferred ones included, is committed (or undone by a failed
// commit); it costs nothing when nothing is queued.
func (s *Store) Flush() {
	t := s.commits.Flush()
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	for id, pt := range s.pending {
		if pt <= t {
			delete(s.pending, id)
		}
	}
}

// SyncContainer returns once every deferred change of container id is committed: a caller about to remove what
// recovery would rebuild such a change from (the exit file, the runtime's state) makes it durable first. It
// costs nothing when no deferred change of id is pending.
func (s *Store) SyncContainer(id string) {
	t, ok := s.pendingTicket(id)
	if !ok {
		return
	}
	s.commits.Wait(t)
	s.flushMu.Lock()
	if s.pending[id] == t {
		delete(s.pending, id)
	}
	s.flushMu.Unlock()
}

// AwaitContainer returns once every deferred change of container id is committed, like SyncContainer, but
// without making a commit of its own: the next commit of anyone, at the latest the timer's (DeferDelay), carries
// it. For background work that may wait (the reaper).
func (s *Store) AwaitContainer(id string) {
	if t, ok := s.pendingTicket(id); ok {
		s.commits.WaitCommitted(t)
	}
}

// ContainerDurable reports whether no deferred change of container id waits for a commit.
func (s *Store) ContainerDurable(id string) bool {
	t, ok := s.pendingTicket(id)
	return !ok || s.commits.Committed(t)
}

// pendingTicket returns the ticket of container id's latest deferred change still tracked, if any.
func (s *Store) pendingTicket(id string) (groupcommit.Ticket, bool) {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	t, ok := s.pending[id]
	return t, ok
}

// Close commits every deferred change and stops the timer; deferred writes after it are committed at once. The
// caller closes the bbolt handle after it.
func (s *Store) Close() {
	s.flushMu.Lock()
	s.closed = true
	if s.flushTimer != nil {
		s.flushTimer.Stop()
		s.flushTimer = nil
	}
	s.flushMu.Unlock()
	s.Flush()
}

// logDeferredFailure reports a deferred change that a failed commit undid: its caller did not wait for it.
func logDeferredFailure(w *write) {
	klog.ErrorS(w.err, "a deferred store write failed; recovery at the next start rebuilds it", "write", w.what)
}
