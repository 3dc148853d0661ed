package daemon

import (
	"context"
	"testing"
	"time"
)

// goBackground's wait returns only once fn has returned, and fn sees the context it was given end.
func TestGoBackgroundWaitsForFn(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan struct{})
	wait := goBackground(ctx, func(ctx context.Context) {
		<-ctx.Done()
		close(returned)
	})
	waited := make(chan struct{})
	go func() { wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("wait returned while fn was still running")
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	<-waited
	select {
	case <-returned:
	default:
		t.Fatal("wait returned before fn did")
	}
}
