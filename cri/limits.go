package cri

import (
	"context"
	"time"

	"k8s.io/klog/v2"

	"github.com/noded/noded/errdefs"
)

// StartLimiter bounds the pod starts (RunPodSandbox and CreateContainer) in flight. A call beyond the limit
// queues for a free slot for at most the queue wait; the queue holds at most as many calls as there are slots,
// and a call that finds it full, or waits out its time, gets ResourceExhausted (kubelet retries it later).
type StartLimiter struct {
	slots chan struct{}
	queue chan struct{}
	wait  time.Duration
}

// NewStartLimiter allows max starts at once, each further one queueing up to wait.
func NewStartLimiter(max int, wait time.Duration) *StartLimiter {
	return &StartLimiter{slots: make(chan struct{}, max), queue: make(chan struct{}, max), wait: wait}
}

// acquire takes a slot; release gives it back. A nil limiter limits nothing.
func (l *StartLimiter) acquire(ctx context.Context, what string) (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	select {
	case l.slots <- struct{}{}:
		return l.release, nil
	default:
	}
	select {
	case l.queue <- struct{}{}:
	default:
		return nil, errdefs.ResourceExhausted("%s: %d pod starts in flight and %d queued: try again later", what, cap(l.slots), cap(l.queue))
	}
	defer func() { <-l.queue }()
	klog.V(2).InfoS("waiting for a pod start slot", "call", what, "limit", cap(l.slots))
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return l.release, nil
	case <-t.C:
		return nil, errdefs.ResourceExhausted("%s: %d pod starts in flight for longer than %s: try again later", what, cap(l.slots), l.wait)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *StartLimiter) release() { <-l.slots }
