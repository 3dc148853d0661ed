// Package intent holds the parts of "create with intent" that the sandbox and the container share. A creation
// first records its intent (a record in a creating state), then makes its side effects:
//
//   - it runs to its end, within CreateTimeout, even when its caller gives up (Detach), and the result is then
//     marked orphaned (Orphaned) so that the caller's retry with the same name is handed it;
//   - when it fails, it is rolled back with a context of its own (Rollback): the record goes when everything was
//     undone, and otherwise stays in the unknown state with the reason and with everything the creation had made
//     (KeepUnknown), for a later removal;
//   - after a crash, recovery rolls back every record still creating the same way.
package intent

import (
	"context"
	"time"
)

// CreateTimeout bounds one creation. A creation is not cut short when its caller gives up (kubelet's deadline
// is 2 minutes and it then retries with the same name): it finishes, within this bound, for the retry.
const CreateTimeout = 4 * time.Minute

// RollbackTimeout bounds undoing a failed creation.
const RollbackTimeout = time.Minute

// Detach returns the context a creation runs under: ctx's values without its cancellation, under CreateTimeout.
func Detach(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), CreateTimeout)
}

// Orphaned reports whether the caller of a finished creation had given up by then.
func Orphaned(callerCtx context.Context) bool { return callerCtx.Err() != nil }

// Rollback undoes a creation that failed or was cut short, under a context of its own derived from ctx (which
// may be what failed). When undo succeeds, forget removes the record; otherwise keep records it as unknown with
// undo's error, which Rollback returns.
func Rollback(ctx context.Context, undo func(context.Context) error, forget func() error, keep func(error)) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RollbackTimeout)
	defer cancel()
	if err := undo(rctx); err != nil {
		keep(err)
		return err
	}
	_ = forget()
	return nil
}

// KeepUnknown returns a keep function for Rollback. It writes progress, the record as the failed creation left
// it in memory, over the stored one (which holds only the intent), so that the removal that finishes the job sees
// everything the creation had made, and then marks it unknown with undo's error. update applies fn to the stored
// record; its error is dropped, as the record then stays in its creating state, which recovery rolls back.
func KeepUnknown[T any](progress *T, update func(fn func(*T) error) error, markUnknown func(r *T, err error)) func(error) {
	return func(err error) {
		_ = update(func(r *T) error {
			*r = *progress
			markUnknown(r, err)
			return nil
		})
	}
}
