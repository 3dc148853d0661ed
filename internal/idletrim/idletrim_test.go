package idletrim

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// ticks takes n ticks and returns how many of them trimmed.
func ticks(w *watch, tr *Trimmer, n int) int {
	trims := 0
	for range n {
		if w.tick(tr) {
			trims++
		}
	}
	return trims
}

func TestTrimsOnceAfterIdle(t *testing.T) {
	tr, w := New(3), &watch{armed: true}
	tr.Begin()()
	if n := ticks(w, tr, 3); n != 0 { // the first sees the call, two quiet ones
		t.Fatalf("trimmed after 2 quiet ticks of 3: %d", n)
	}
	if n := ticks(w, tr, 1); n != 1 {
		t.Fatalf("trims on the third quiet tick = %d, want 1", n)
	}
	if n := ticks(w, tr, 20); n != 0 {
		t.Fatalf("trimmed again while idle on: %d", n)
	}
	// Work re-arms it: one more trim after the next idle stretch.
	tr.Begin()()
	if n := ticks(w, tr, 10); n != 1 {
		t.Fatalf("trims over a second idle stretch = %d, want 1", n)
	}
}

func TestNoTrimWhileBusy(t *testing.T) {
	tr, w := New(2), &watch{armed: true}
	for range 10 {
		tr.Begin()()
		if w.tick(tr) {
			t.Fatal("trimmed with a call in every tick")
		}
	}
	end := tr.Begin() // a long call, in flight over many ticks
	if n := ticks(w, tr, 10); n != 0 {
		t.Fatalf("trimmed with a call in flight: %d", n)
	}
	end()
	if n := ticks(w, tr, 1); n != 0 {
		t.Fatalf("trimmed on the tick the call ended: %d", n)
	}
	if n := ticks(w, tr, 2); n != 1 {
		t.Fatalf("trims once the call has ended = %d, want 1", n)
	}
}

func TestStartupCountsAsIdleStretch(t *testing.T) {
	tr, w := New(2), &watch{armed: true}
	if n := ticks(w, tr, 5); n != 1 {
		t.Fatalf("trims of a daemon idle since start = %d, want 1", n)
	}
}

func TestRunTrimsAndStopsWithContext(t *testing.T) {
	tr := New(1)
	freed := make(chan struct{}, 1)
	tr.free = func() { freed <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	tc := make(chan time.Time)
	done := make(chan struct{})
	go func() { tr.Run(ctx, tc); close(done) }()
	tc <- time.Time{}
	select {
	case <-freed:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not trim on a quiet tick")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	tr.RunEvery(ctx2, time.Hour) // returns at once
}

func TestIsPoll(t *testing.T) {
	for m, want := range map[string]bool{
		"/runtime.v1.RuntimeService/ListContainers":      true,
		"/runtime.v1.RuntimeService/PodSandboxStatus":    true,
		"/runtime.v1.RuntimeService/ListPodSandboxStats": true,
		"/runtime.v1.RuntimeService/ContainerStats":      true,
		"/runtime.v1.RuntimeService/Version":             true,
		"/runtime.v1.RuntimeService/Status":              true,
		"/runtime.v1.RuntimeService/GetContainerEvents":  true,
		"/runtime.v1.RuntimeService/StreamContainers":    true,
		"/runtime.v1.ImageService/ImageFsInfo":           true,
		"/runtime.v1.ImageService/ImageStatus":           true,
		"/runtime.v1.RuntimeService/RunPodSandbox":       false,
		"/runtime.v1.RuntimeService/StartContainer":      false,
		"/runtime.v1.RuntimeService/ExecSync":            false,
		"/runtime.v1.RuntimeService/UpdateRuntimeConfig": false,
		"/runtime.v1.ImageService/PullImage":             false,
		"/runtime.v1.ImageService/RemoveImage":           false,
	} {
		if got := IsPoll(m); got != want {
			t.Errorf("IsPoll(%s) = %v, want %v", m, got, want)
		}
	}
}

func TestInterceptorsCountWorkOnly(t *testing.T) {
	tr := New(1)
	ctx := context.Background()
	noop := func(context.Context, any) (any, error) { return nil, nil }
	_, _ = tr.UnaryInterceptor(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/ListContainers"}, noop)
	if n := tr.started.Load(); n != 0 {
		t.Fatalf("a poll counted as work: %d", n)
	}
	var during int64
	_, _ = tr.UnaryInterceptor(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/RunPodSandbox"},
		func(context.Context, any) (any, error) { during = tr.inFlight.Load(); return nil, nil })
	if during != 1 || tr.started.Load() != 1 || tr.inFlight.Load() != 0 {
		t.Fatalf("work call: in flight during %d, started %d, in flight after %d; want 1, 1, 0",
			during, tr.started.Load(), tr.inFlight.Load())
	}
	_ = tr.StreamInterceptor(nil, nil, &grpc.StreamServerInfo{FullMethod: "/runtime.v1.RuntimeService/GetContainerEvents"},
		func(any, grpc.ServerStream) error { during = tr.inFlight.Load(); return nil })
	if during != 0 || tr.started.Load() != 1 {
		t.Fatalf("the events stream counted as work: in flight %d, started %d", during, tr.started.Load())
	}
}

// BenchmarkUnaryInterceptor is the trimmer's cost on the hot path, for a poll and for a work call.
func BenchmarkUnaryInterceptor(b *testing.B) {
	tr := New(1)
	ctx := context.Background()
	noop := func(context.Context, any) (any, error) { return nil, nil }
	for _, m := range []string{"/runtime.v1.RuntimeService/ListContainers", "/runtime.v1.RuntimeService/StartContainer"} {
		info := &grpc.UnaryServerInfo{FullMethod: m}
		b.Run(m[strings.LastIndexByte(m, '/')+1:], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = tr.UnaryInterceptor(ctx, nil, info, noop)
			}
		})
	}
}
