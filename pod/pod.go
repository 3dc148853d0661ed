// Package pod orchestrates a pod sandbox together with its containers. Every operation that spans both takes the
// pod's lock first and then works on the containers before the sandbox, so that the gRPC edge (package cri) and
// the background reaper (package daemon) only delegate.
package pod

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/container"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/faultinject"
	"github.com/noded/noded/sandbox"
	"github.com/noded/noded/store"
)

// Sandboxes is what the service needs of the sandbox domain (implemented by *sandbox.Manager).
type Sandboxes interface {
	Lock(id string) func()
	Stop(ctx context.Context, id string) error
	Remove(ctx context.Context, id string) error
	ReapOrphans(ctx context.Context, maxAge time.Duration, remove func(ctx context.Context, id string) error) int
}

// Containers is what the service needs of the container domain (implemented by *container.Manager).
type Containers interface {
	Create(ctx context.Context, sb store.Sandbox, cfg *runtimeapi.ContainerConfig) (string, error)
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id string) error
	// RemoveInPod is Remove whose record delete the sandbox's delete carries (a deferred write).
	RemoveInPod(ctx context.Context, id string) error
	ReapOrphans(ctx context.Context, maxAge time.Duration) int
}

var (
	_ Sandboxes  = (*sandbox.Manager)(nil)
	_ Containers = (*container.Manager)(nil)
)

// Service runs pod-level operations. It holds no state of its own (the locks are the sandbox manager's), so any
// number of Services over the same managers agree.
type Service struct {
	sandboxes  Sandboxes
	containers Containers
	store      *store.Store
}

// New returns a Service over the sandbox and container managers and their store.
func New(sandboxes Sandboxes, containers Containers, st *store.Store) *Service {
	return &Service{sandboxes: sandboxes, containers: containers, store: st}
}

// Stop stops the pod's containers (without grace) and then tears down its network. Unknown IDs succeed.
func (p *Service) Stop(ctx context.Context, id string) error {
	return p.containersThenSandbox(id,
		func(cid string) error { return p.containers.Stop(ctx, cid, 0) },
		faultinject.SandboxStopContainers,
		func(sid string) error { return p.sandboxes.Stop(ctx, sid) })
}

// Remove stops the pod if needed, removes its containers and then everything of the sandbox. Unknown IDs
// succeed.
func (p *Service) Remove(ctx context.Context, id string) error {
	return p.containersThenSandbox(id,
		func(cid string) error { return p.containers.RemoveInPod(ctx, cid) },
		faultinject.SandboxRemoveContainers,
		func(sid string) error { return p.sandboxes.Remove(ctx, sid) })
}

// containersThenSandbox runs eachContainer on every container of the pod and then sandbox, under the pod's lock,
// stopping at the first error; an unknown pod is nothing to do. The kill point lies between the two.
func (p *Service) containersThenSandbox(id string, eachContainer func(id string) error, point string,
	sandbox func(id string) error) error {
	sb, err := p.store.Sandbox(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	unlock := p.sandboxes.Lock(sb.ID)
	defer unlock()
	for _, c := range p.store.Containers(sb.ID) {
		if err := eachContainer(c.ID); err != nil {
			return err
		}
	}
	faultinject.Point(point)
	return sandbox(sb.ID)
}

// CreateContainer creates a container in the pod, under the pod's lock so that the pod cannot be stopped or
// removed meanwhile; the sandbox is read again once the lock is held.
func (p *Service) CreateContainer(ctx context.Context, podID string, cfg *runtimeapi.ContainerConfig) (string, error) {
	sb, err := p.store.Sandbox(podID)
	if err != nil {
		return "", err
	}
	unlock := p.sandboxes.Lock(sb.ID)
	defer unlock()
	if sb, err = p.store.Sandbox(sb.ID); err != nil {
		return "", err
	}
	return p.containers.Create(ctx, sb, cfg)
}

// ReapOrphans removes containers and then pods whose creation finished after their caller gave up and that no
// retry claimed within maxAge (see container.Manager.ReapOrphans and sandbox.Manager.ReapOrphans).
func (p *Service) ReapOrphans(ctx context.Context, maxAge time.Duration) {
	p.containers.ReapOrphans(ctx, maxAge)
	p.sandboxes.ReapOrphans(ctx, maxAge, p.Remove)
}
