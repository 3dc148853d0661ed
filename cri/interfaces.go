package cri

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/container"
	"github.com/noded/noded/events"
	"github.com/noded/noded/pod"
	"github.com/noded/noded/sandbox"
	"github.com/noded/noded/stats"
)

// SandboxBackend is what the sandbox RPCs need of the sandbox domain (implemented by *sandbox.Manager).
type SandboxBackend interface {
	Run(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error)
	Status(id string, verbose bool) (*runtimeapi.PodSandboxStatus, map[string]string, error)
	List(filter *runtimeapi.PodSandboxFilter) []*runtimeapi.PodSandbox
	UpdateResources(id string, overhead, resources *runtimeapi.LinuxContainerResources) error
	// Lock serialises work on one sandbox (see sandbox.Manager.Lock).
	Lock(id string) func()
}

// ContainerBackend is what the container RPCs need of the container domain (implemented by *container.Manager).
type ContainerBackend interface {
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id string) error
	Status(id string, verbose bool) (*runtimeapi.ContainerStatus, map[string]string, error)
	List(filter *runtimeapi.ContainerFilter) []*runtimeapi.Container
	Update(ctx context.Context, id string, r *runtimeapi.LinuxContainerResources) error
	ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*container.ExecSyncResult, error)
	ReopenLog(ctx context.Context, id string) error
	Checkpoint(ctx context.Context, id, location string, timeout time.Duration) error
}

// PodBackend runs the RPCs that span a sandbox and its containers (implemented by *pod.Service).
type PodBackend interface {
	Stop(ctx context.Context, id string) error
	Remove(ctx context.Context, id string) error
	CreateContainer(ctx context.Context, podID string, cfg *runtimeapi.ContainerConfig) (string, error)
}

// StatsBackend answers the stats RPCs (implemented by *stats.Provider, or StatsUnavailable). ContainerStats and
// PodSandboxStats answer an empty ID with InvalidArgument; the handlers leave that check to the backend so that
// StatsUnavailable's Unimplemented comes first (kubelet's probe, see PodSandboxStats).
type StatsBackend interface {
	ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error)
	ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error)
	PodSandboxStats(ctx context.Context, id string) (*runtimeapi.PodSandboxStats, error)
	ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error)
	ListPodSandboxMetrics(ctx context.Context) ([]*runtimeapi.PodSandboxMetrics, error)
	ListMetricDescriptors(ctx context.Context) ([]*runtimeapi.MetricDescriptor, error)
}

// EventBackend is the fan-out of container lifecycle events that GetContainerEvents streams (implemented by
// *events.Broker; the container domain publishes to it).
type EventBackend interface {
	// Subscribe starts a subscription: its channel carries every event published from now on, in order, and is
	// closed when the subscriber fell too far behind and was dropped. cancel ends the subscription; calling it
	// again does nothing.
	Subscribe() (events <-chan *runtimeapi.ContainerEventResponse, cancel func())
}

var (
	_ EventBackend     = (*events.Broker)(nil)
	_ SandboxBackend   = (*sandbox.Manager)(nil)
	_ ContainerBackend = (*container.Manager)(nil)
	_ PodBackend       = (*pod.Service)(nil)
	_ StatsBackend     = (*stats.Provider)(nil)
)
