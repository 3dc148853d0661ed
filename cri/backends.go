package cri

import (
	"context"
	"fmt"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/store"
)

// Backends are the packages that do the work behind the RuntimeService's RPC groups. Every one but Starts is
// required (NewRuntimeServer refuses a missing one), so the handlers never check for nil; an RPC group that a
// noded cannot serve gets an implementation that answers Unimplemented (StatsUnavailable).
type Backends struct {
	Sandboxes  SandboxBackend
	Containers ContainerBackend
	// Pods runs the RPCs that span a pod and its containers; it is needed with Sandboxes and Containers.
	Pods    PodBackend
	Store   *store.Store // the state store shared by the backends
	Events  EventBackend
	Stats   StatsBackend
	Streams StreamServer
	// Starts bounds RunPodSandbox and CreateContainer calls in flight; nil means no bound.
	Starts *StartLimiter
}

// missing names the required backends that are nil.
func (b *Backends) missing() []string {
	var out []string
	for _, f := range []struct {
		name string
		nil  bool
	}{
		{"Sandboxes", b.Sandboxes == nil}, {"Containers", b.Containers == nil}, {"Pods", b.Pods == nil},
		{"Store", b.Store == nil}, {"Events", b.Events == nil}, {"Stats", b.Stats == nil}, {"Streams", b.Streams == nil},
	} {
		if f.nil {
			out = append(out, f.name)
		}
	}
	return out
}

func (b *Backends) check() error {
	if b == nil {
		return fmt.Errorf("runtime service: no backends")
	}
	if m := b.missing(); len(m) > 0 {
		return fmt.Errorf("runtime service: missing backends: %s", strings.Join(m, ", "))
	}
	return nil
}

// StatsUnavailable is the StatsBackend of a noded that serves no stats: every stats RPC answers Unimplemented.
// kubelet in CRI-stats mode then falls back to cAdvisor (see PodSandboxStats).
type StatsUnavailable struct{}

var _ StatsBackend = StatsUnavailable{}

func errNoStats() error { return errdefs.NotImplemented("stats are not available in this noded") }

// ContainerStats answers Unimplemented.
func (StatsUnavailable) ContainerStats(context.Context, string) (*runtimeapi.ContainerStats, error) {
	return nil, errNoStats()
}

// ListContainerStats answers Unimplemented.
func (StatsUnavailable) ListContainerStats(context.Context, *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	return nil, errNoStats()
}

// PodSandboxStats answers Unimplemented.
func (StatsUnavailable) PodSandboxStats(context.Context, string) (*runtimeapi.PodSandboxStats, error) {
	return nil, errNoStats()
}

// ListPodSandboxStats answers Unimplemented.
func (StatsUnavailable) ListPodSandboxStats(context.Context, *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	return nil, errNoStats()
}

// ListPodSandboxMetrics answers Unimplemented.
func (StatsUnavailable) ListPodSandboxMetrics(context.Context) ([]*runtimeapi.PodSandboxMetrics, error) {
	return nil, errNoStats()
}

// ListMetricDescriptors answers Unimplemented.
func (StatsUnavailable) ListMetricDescriptors(context.Context) ([]*runtimeapi.MetricDescriptor, error) {
	return nil, errNoStats()
}

// streamChunk is how many items one message of a streaming list RPC carries.
const streamChunk = 500

func chunks[T any](items []T, send func([]T) error) error {
	if len(items) == 0 {
		return send(nil)
	}
	for len(items) > 0 {
		n := min(len(items), streamChunk)
		if err := send(items[:n]); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}
