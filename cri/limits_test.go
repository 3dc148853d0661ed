package cri

import (
	"context"
	"errors"
	"testing"

	"github.com/noded/noded/errdefs"
)

func TestStartLimiter(t *testing.T) {
	ctx := context.Background()
	var none *StartLimiter
	if release, err := none.acquire(ctx, "x"); err != nil {
		t.Fatalf("nil limiter: %v", err)
	} else {
		release()
	}
	l := NewStartLimiter(1, 0)
	release, err := l.acquire(ctx, "first")
	if err != nil {
		t.Fatal(err)
	}
	// No queue wait: a second start beyond the limit is refused.
	if _, err := l.acquire(ctx, "second"); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("start beyond the limit: %v, want ResourceExhausted", err)
	}
	// A cancelled caller leaves the queue with its own error.
	l.wait = 1 << 62
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.acquire(cctx, "cancelled"); err != context.Canceled {
		t.Fatalf("cancelled wait: %v, want context.Canceled", err)
	}
	release()
	release2, err := l.acquire(ctx, "after")
	if err != nil {
		t.Fatalf("start after the slot was released: %v", err)
	}
	release2()
}
