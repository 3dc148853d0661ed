package image

import (
	"context"
	"sync"
)

// flight runs one call per key at a time and shares its result with every caller that asks for the key
// while it runs (a small singleflight). The call runs on a context of its own that is cancelled when every
// waiting caller has given up (or the service closes), so one impatient caller does not fail the others; the
// last caller to give up waits for the cancelled call to end.
type flight[T any] struct {
	base context.Context // cancelled on service close
	wg   *sync.WaitGroup // tracks running calls

	mu    sync.Mutex
	calls map[string]*flightCall[T]
}

type flightCall[T any] struct {
	done    chan struct{}
	val     T
	err     error
	waiters int
	cancel  context.CancelFunc
}

func newFlight[T any](base context.Context, wg *sync.WaitGroup) *flight[T] {
	return &flight[T]{base: base, wg: wg, calls: map[string]*flightCall[T]{}}
}

// do returns the result of fn for key, running fn unless a call for key is already running.
func (f *flight[T]) do(ctx context.Context, key string, fn func(context.Context) (T, error)) (T, error) {
	f.mu.Lock()
	c, ok := f.calls[key]
	if !ok {
		cctx, cancel := context.WithCancel(f.base)
		c = &flightCall[T]{done: make(chan struct{}), cancel: cancel}
		f.calls[key] = c
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			c.val, c.err = fn(cctx)
			cancel()
			f.mu.Lock()
			if f.calls[key] == c {
				delete(f.calls, key)
			}
			f.mu.Unlock()
			close(c.done)
		}()
	}
	c.waiters++
	f.mu.Unlock()

	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		f.mu.Lock()
		c.waiters--
		last := c.waiters == 0
		if last {
			c.cancel()
			if f.calls[key] == c {
				delete(f.calls, key) // a new caller starts afresh instead of joining a dying call
			}
		}
		f.mu.Unlock()
		if last {
			// Nobody else wants the result: let the cancelled call clean up before returning, so that a
			// caller that gave up leaves nothing behind once it returns.
			<-c.done
		}
		var zero T
		return zero, ctx.Err()
	}
}
