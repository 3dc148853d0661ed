// Package intent is "create with intent", one piece of code for the sandbox and the container records (Kind). A
// creation first records its intent (a record in its creating state), then makes its side effects:
//
//   - it runs to its end, within CreateTimeout, even when its caller gives up, and the result is then marked
//     orphaned so that the caller's retry with the same name is handed it (HandOff), and removed when no retry
//     claims it and nothing adopted it in time (Reap);
//   - when it fails, it is rolled back (Rollback): the record goes when everything was undone, and otherwise it
//     stays in its unknown state with the reason and with everything the creation had made, for a later removal;
//   - after a crash, recovery at start (Recover) rolls back every record still in its creating state the same way.
//
// What a rollback runs under is a Bound, given by each call site: after a failed creation the creation's context
// may be what failed, so the rollback gets a context and a time limit of its own (Detached); recovery at start runs
// under the daemon's context as it is (Inherited).
package intent

import (
	"context"
	"time"

	"k8s.io/klog/v2"
)

// CreateTimeout bounds one creation. A creation is not cut short when its caller gives up (kubelet's deadline
// is 2 minutes and it then retries with the same name): it finishes, within this bound, for the retry.
const CreateTimeout = 4 * time.Minute

// RollbackTimeout bounds undoing a failed creation.
const RollbackTimeout = time.Minute

// A Bound derives the context a rollback runs under from the context of what it rolls back.
type Bound func(ctx context.Context) (context.Context, context.CancelFunc)

// Detached is the bound of a rollback after a failed creation: ctx's values without its cancellation (ctx may be
// what failed: cut short, or past CreateTimeout), under a timeout of its own.
func Detached(timeout time.Duration) Bound {
	return func(ctx context.Context) (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), timeout)
	}
}

// Inherited is the bound of ctx itself: no time limit of its own, cut short when ctx is.
func Inherited(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

// Kind is one record type's side of create with intent: how its records are stored, undone and marked. T is the
// stored record (store.Sandbox, store.Container); every function is required.
type Kind[T any] struct {
	// Noun names the record in logs ("sandbox"); IDKey is the log key of its ID ("podSandboxID").
	Noun, IDKey string
	ID, Name    func(r *T) string
	// Creating reports whether r is in its creating state: its intent, or a creation under way or cut short.
	Creating func(r *T) bool
	// Made puts a made record in its made state (ready, created); IsMade reports whether r is in it.
	Made   func(r *T)
	IsMade func(r *T) bool
	// Orphaned is r's orphan mark: set when r was made after its caller had given up, cleared when r is handed to
	// the caller's retry.
	Orphaned func(r *T) *bool
	// CreatedAt is when r's creation began.
	CreatedAt func(r *T) time.Time
	// Adopted reports whether an orphaned r was taken up without a retry (kubelet found it listed and used it: the
	// sandbox got containers, the container was started), so that Reap keeps it.
	Adopted func(r *T) bool
	// Unknown puts a record whose undo failed in its unknown state with the reason.
	Unknown func(r *T, err error)
	// Add stores a new record, Update applies fn to the stored record of id, Delete forgets it.
	Add    func(r *T) error
	Update func(id string, fn func(*T) error) error
	Delete func(id string) error
	// Undo undoes every side effect r names, updating r as it goes (what it removed is no longer named). It is
	// safe on a record partly made or partly undone.
	Undo func(ctx context.Context, r *T) error
}

// Create makes r with intent: it stores r (in its creating state), then runs do under ctx's values without its
// cancellation, within CreateTimeout, so that the creation finishes for a retry when its caller gives up. When
// do fails, r is rolled back under rollback and do's error returned. Otherwise r is put in its made state,
// orphaned when ctx had ended by then, and stored whole.
func (k *Kind[T]) Create(ctx context.Context, r *T, do func(ctx context.Context, r *T) error, rollback Bound) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CreateTimeout)
	defer cancel()
	if err := k.Add(r); err != nil {
		return err
	}
	if err := do(cctx, r); err != nil {
		_ = k.Rollback(cctx, r, rollback)
		return err
	}
	orphaned := ctx.Err() != nil
	k.Made(r)
	*k.Orphaned(r) = orphaned
	if err := k.Update(k.ID(r), func(x *T) error { *x = *r; return nil }); err != nil {
		return err
	}
	if orphaned {
		klog.InfoS(k.Noun+" created after its caller gave up; kept for the caller's retry", k.IDKey, k.ID(r), "name", k.Name(r))
	}
	return nil
}

// Rollback undoes r under bound(ctx). When undo succeeds the record is deleted. Otherwise r as undo left it (what
// the creation had made and undo could not remove; the stored record may hold only the intent) is stored whole in
// its unknown state with undo's error, which Rollback returns, so that a later removal finishes the job. A failed
// store write leaves the record in its creating state, which recovery rolls back.
func (k *Kind[T]) Rollback(ctx context.Context, r *T, bound Bound) error {
	rctx, cancel := bound(ctx)
	defer cancel()
	id := k.ID(r)
	if err := k.Undo(rctx, r); err != nil {
		klog.ErrorS(err, "rolling back a "+k.Noun+" left resources; it stays listed as unknown", k.IDKey, id)
		_ = k.Update(id, func(x *T) error {
			*x = *r
			k.Unknown(x, err)
			return nil
		})
		return err
	}
	_ = k.Delete(id)
	return nil
}

// Recover is recovery at start: it rolls back every one of records still in its creating state (a creation that a
// crash cut short) as Rollback does, under bound, and returns the others, in order, for the caller's own checks.
func (k *Kind[T]) Recover(ctx context.Context, records []T, bound Bound) []T {
	var made []T
	for i := range records {
		r := &records[i]
		if !k.Creating(r) {
			made = append(made, *r)
			continue
		}
		klog.InfoS("rolling back a "+k.Noun+" whose creation was interrupted", k.IDKey, k.ID(r))
		_ = k.Rollback(ctx, r, bound)
	}
	return made
}

// HandOff hands r, the stored record of the name a creation asks for, to that creation when r was made for a
// caller that gave up (orphaned, in its made state): it is the caller's retry, so r's orphan mark is cleared in
// the store and r's ID returned with handed true. Otherwise handed is false and the caller's name is taken (the
// caller's AlreadyExists). err is a failed store write, and then nothing was handed.
func (k *Kind[T]) HandOff(r *T) (id string, handed bool, err error) {
	if !*k.Orphaned(r) || !k.IsMade(r) {
		return "", false, nil
	}
	id = k.ID(r)
	if err := k.Update(id, func(x *T) error { *k.Orphaned(x) = false; return nil }); err != nil {
		return "", false, err
	}
	*k.Orphaned(r) = false
	klog.InfoS("handing a "+k.Noun+" created for an abandoned request to its retry", k.IDKey, id, "name", k.Name(r))
	return id, true, nil
}

// Reap removes, with remove, every one of records that is still orphaned maxAge after its creation began (no retry
// claimed it) and that was not adopted. A failed removal is logged and the record left for the next Reap. It
// returns how many it removed.
func (k *Kind[T]) Reap(ctx context.Context, records []T, maxAge time.Duration, remove func(ctx context.Context, id string) error) int {
	n := 0
	now := time.Now()
	for i := range records {
		r := &records[i]
		age := now.Sub(k.CreatedAt(r))
		if !*k.Orphaned(r) || age < maxAge || k.Adopted(r) {
			continue
		}
		id := k.ID(r)
		klog.InfoS("removing a "+k.Noun+" no retry claimed", k.IDKey, id, "name", k.Name(r), "age", age)
		if err := remove(ctx, id); err != nil {
			klog.ErrorS(err, "removing an unclaimed "+k.Noun, k.IDKey, id)
			continue
		}
		n++
	}
	return n
}
