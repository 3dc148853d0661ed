package cri

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/events"
	"github.com/noded/noded/store"
	"github.com/noded/noded/store/storetest"
)

// Stubs for the backends a test does not exercise: each embeds its interface, left nil, so a call the test did
// not expect panics instead of passing silently.
type (
	stubSandboxes  struct{ SandboxBackend }
	stubContainers struct{ ContainerBackend }
	stubPods       struct{ PodBackend }
	stubStats      struct{ StatsBackend }
	stubStreams    struct{ StreamServer }
)

// testStore opens an empty state store in a temporary directory.
func testStore(t *testing.T) *store.Store {
	t.Helper()
	st := storetest.New(t)
	return st
}

// newTestServer returns a RuntimeServer with the backends b sets and stubs (and an empty store) for the others.
func newTestServer(t *testing.T, info Info, b Backends) *RuntimeServer {
	t.Helper()
	if b.Sandboxes == nil {
		b.Sandboxes = stubSandboxes{}
	}
	if b.Containers == nil {
		b.Containers = stubContainers{}
	}
	if b.Pods == nil {
		b.Pods = stubPods{}
	}
	if b.Stats == nil {
		b.Stats = stubStats{}
	}
	if b.Streams == nil {
		b.Streams = stubStreams{}
	}
	if b.Events == nil {
		b.Events = &events.Broker{}
	}
	if b.Store == nil {
		b.Store = testStore(t)
	}
	s, err := NewRuntimeServer(info, &b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A missing backend is an assembly error naming it, not an RPC that answers Unimplemented later.
func TestNewRuntimeServerRequiresBackends(t *testing.T) {
	full := func() Backends {
		return Backends{Sandboxes: stubSandboxes{}, Containers: stubContainers{}, Pods: stubPods{}, Store: testStore(t),
			Events: &events.Broker{}, Stats: stubStats{}, Streams: stubStreams{}}
	}
	b := full()
	if _, err := NewRuntimeServer(Info{}, &b); err != nil {
		t.Fatalf("all backends: %v", err)
	}
	if _, err := NewRuntimeServer(Info{}, nil); err == nil {
		t.Error("nil backends accepted")
	}
	for name, clear := range map[string]func(*Backends){
		"Sandboxes":  func(b *Backends) { b.Sandboxes = nil },
		"Containers": func(b *Backends) { b.Containers = nil },
		"Pods":       func(b *Backends) { b.Pods = nil },
		"Store":      func(b *Backends) { b.Store = nil },
		"Events":     func(b *Backends) { b.Events = nil },
		"Stats":      func(b *Backends) { b.Stats = nil },
		"Streams":    func(b *Backends) { b.Streams = nil },
	} {
		b := full()
		clear(&b)
		_, err := NewRuntimeServer(Info{}, &b)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("without %s: err = %v, want an error naming it", name, err)
		}
	}
	// Starts is optional: nil means no bound.
	b = full()
	b.Starts = nil
	if _, err := NewRuntimeServer(Info{}, &b); err != nil {
		t.Errorf("without Starts: %v", err)
	}
}

// StatsUnavailable answers every stats RPC with Unimplemented, as a noded without stats did when its backend was
// nil.
func TestStatsUnavailable(t *testing.T) {
	s := newTestServer(t, Info{}, Backends{Stats: StatsUnavailable{}})
	ctx := context.Background()
	calls := map[string]func() error{
		"ContainerStats": func() error {
			_, err := s.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: "c"})
			return err
		},
		"ListContainerStats": func() error {
			_, err := s.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
			return err
		},
		"StreamContainerStats": func() error {
			return s.StreamContainerStats(&runtimeapi.StreamContainerStatsRequest{},
				&sendStream[runtimeapi.StreamContainerStatsResponse]{ctx: ctx})
		},
		"PodSandboxStats": func() error {
			_, err := s.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: "p"})
			return err
		},
		"ListPodSandboxStats": func() error {
			_, err := s.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{})
			return err
		},
		"StreamPodSandboxStats": func() error {
			return s.StreamPodSandboxStats(&runtimeapi.StreamPodSandboxStatsRequest{},
				&sendStream[runtimeapi.StreamPodSandboxStatsResponse]{ctx: ctx})
		},
		"ListMetricDescriptors": func() error {
			_, err := s.ListMetricDescriptors(ctx, &runtimeapi.ListMetricDescriptorsRequest{})
			return err
		},
		"ListPodSandboxMetrics": func() error {
			_, err := s.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{})
			return err
		},
		"StreamPodSandboxMetrics": func() error {
			return s.StreamPodSandboxMetrics(&runtimeapi.StreamPodSandboxMetricsRequest{},
				&sendStream[runtimeapi.StreamPodSandboxMetricsResponse]{ctx: ctx})
		},
	}
	for name, call := range calls {
		if c := errdefs.Code(call()); c != codes.Unimplemented {
			t.Errorf("%s: code %v, want Unimplemented", name, c)
		}
	}
}
