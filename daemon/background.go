package daemon

import (
	"context"
	"errors"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"k8s.io/klog/v2"

	"github.com/noded/noded/cni"
	"github.com/noded/noded/pod"
	"github.com/noded/noded/store"
)

// An idle daemon hands its free heap back to the kernel (idletrim) 20–25 s after the last work call ended: the
// trimmer looks every idleTrimPeriod and trims after idleTrimTicks looks in a row without work.
const (
	idleTrimPeriod = 5 * time.Second
	idleTrimTicks  = 4
)

// goBackground runs fn(ctx) in a goroutine of its own and returns a func that waits until fn has returned
// (callers cancel ctx first).
func goBackground(ctx context.Context, fn func(context.Context)) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	return func() { <-done }
}

// cniGCInterval is how often live attachments are reported to CNI GC.
const cniGCInterval = 10 * time.Minute

// gcNetworks runs CNI GC with the sandboxes that still hold a network until ctx ends, so IPs left by failed
// teardowns are released (for CNI ≥ 1.1 networks; older plugins have no GC).
func (s *services) gcNetworks(ctx context.Context) {
	t := time.NewTicker(cniGCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var live []cni.Attachment
		for _, sb := range s.store.Sandboxes() {
			if sb.NetworkSetUp || sb.State == store.SandboxCreating {
				live = append(live, cni.Attachment{ContainerID: sb.ID})
			}
		}
		if err := s.cni.GC(ctx, live); err != nil && ctx.Err() == nil {
			klog.ErrorS(err, "CNI garbage collection failed", "liveAttachments", len(live))
		}
	}
}

// reapUnclaimed removes, until ctx ends, pods and containers whose creation finished after their caller gave up
// and that no retry claimed within maxAge.
func (s *services) reapUnclaimed(ctx context.Context, maxAge time.Duration) {
	pods := pod.New(s.sandboxes, s.containers, s.store)
	t := time.NewTicker(max(min(maxAge/2, time.Minute), time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pods.ReapOrphans(ctx, maxAge)
	}
}

// servePprof serves the pprof endpoints on the unix socket path (0600, root) until ctx ends. It returns once the
// listener is up. Not TCP: pods on the host network would reach it, and pprof has no authentication. With the
// socket on, the mutex and block profiles sample contention (1 in 10 mutex waits; blocking events of 100 µs
// and more, shorter ones in proportion), so that /debug/pprof/mutex and /debug/pprof/block are not empty.
func servePprof(ctx context.Context, path string) (stop func(), err error) {
	l, err := listenUnix(path, 0o600)
	if err != nil {
		return nil, err
	}
	runtime.SetMutexProfileFraction(10)
	runtime.SetBlockProfileRate(int(100 * time.Microsecond))
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "pprof server failed")
		}
	}()
	klog.InfoS("pprof endpoint serving", "socket", path)
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
		runtime.SetMutexProfileFraction(0)
		runtime.SetBlockProfileRate(0)
	}, nil
}
