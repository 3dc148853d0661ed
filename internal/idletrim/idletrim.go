// Package idletrim hands the Go heap's free memory back to the kernel once the daemon has gone idle.
//
// The runtime's background scavenger keeps about the heap goal (at least 4 MiB, twice the live heap at
// GOGC=100) resident, so after a burst of pod lifecycles or an image pull an idle daemon keeps several MiB of
// garbage and freed spans it will not use until the next burst. A Trimmer counts the calls that do work (every
// RPC but the read-only polls a kubelet makes all the time) and, once none has run for a whole idle period,
// runs two forced GCs and returns every free page (runtime/debug.FreeOSMemory). It trims once per idle
// stretch: not again until some work has run, and never while a call is in flight.
package idletrim

import (
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// Trimmer tracks work calls; the zero value is not usable, use New.
type Trimmer struct {
	quietTicks int    // ticks without work before a trim
	free       func() // returns free memory to the kernel
	inFlight   atomic.Int64
	started    atomic.Uint64 // work calls started, ever
}

// New returns a Trimmer that trims after quietTicks ticks of its Run without work (at least 1).
func New(quietTicks int) *Trimmer {
	return &Trimmer{quietTicks: max(quietTicks, 1), free: freeAll}
}

// freeAll runs two GCs and returns every free page to the kernel. The first GC moves what sync.Pools hold (gRPC
// and HTTP/2 buffers, decompressors) to the pools' victim caches and shrinks oversized goroutine stacks; the
// second, debug.FreeOSMemory's, frees those and then releases all free memory at once.
func freeAll() {
	runtime.GC()
	debug.FreeOSMemory()
}

// Begin marks the start of a work call; the returned func marks its end. Two atomic adds, for the hot path.
func (t *Trimmer) Begin() (end func()) {
	t.started.Add(1)
	t.inFlight.Add(1)
	return t.end
}

func (t *Trimmer) end() { t.inFlight.Add(-1) }

// Run trims on the first tick that ends quietTicks ticks in a row with no work call started and none in flight,
// then waits for work before it can trim again. The daemon's first idle stretch after start counts too. Run
// returns when ctx ends.
func (t *Trimmer) Run(ctx context.Context, ticks <-chan time.Time) {
	w := watch{armed: true}
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		if w.tick(t) {
			t.free()
		}
	}
}

// watch is Run's state between ticks.
type watch struct {
	seen  uint64 // work calls started as of the last tick
	quiet int    // ticks in a row without work
	armed bool   // work ran since the last trim
}

// tick takes one tick and reports whether to trim now.
func (w *watch) tick(t *Trimmer) bool {
	n := t.started.Load()
	if n != w.seen || t.inFlight.Load() > 0 {
		w.seen, w.quiet, w.armed = n, 0, true
		return false
	}
	w.quiet++
	if w.armed && w.quiet >= t.quietTicks {
		w.armed = false
		return true
	}
	return false
}

// RunEvery is Run with a ticker of period p: it trims between quietTicks and quietTicks+1 periods after the
// last work call ended.
func (t *Trimmer) RunEvery(ctx context.Context, p time.Duration) {
	tk := time.NewTicker(p)
	defer tk.Stop()
	t.Run(ctx, tk.C)
}

// IsPoll reports whether the gRPC method (full name, "/runtime.v1.RuntimeService/ListContainers") is a
// read-only poll: Version, Status, ImageFsInfo, RuntimeConfig, the List* and Stream* listings, the *Status and
// *Stats calls, and the long-lived GetContainerEvents stream. Those run all the time under a kubelet and are not
// work.
func IsPoll(method string) bool {
	name := method[strings.LastIndexByte(method, '/')+1:]
	switch name {
	case "Version", "Status", "ImageFsInfo", "RuntimeConfig", "GetContainerEvents":
		return true
	}
	return strings.HasPrefix(name, "List") || strings.HasPrefix(name, "Stream") || strings.HasSuffix(name, "Status") || strings.HasSuffix(name, "Stats")
}

// UnaryInterceptor counts every unary call but the polls as work.
func (t *Trimmer) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if IsPoll(info.FullMethod) {
		return handler(ctx, req)
	}
	defer t.Begin()()
	return handler(ctx, req)
}

// StreamInterceptor counts every streaming call but the polls as work, for as long as the stream is open.
func (t *Trimmer) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if IsPoll(info.FullMethod) {
		return handler(srv, ss)
	}
	defer t.Begin()()
	return handler(srv, ss)
}
