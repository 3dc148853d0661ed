package daemon

import (
	"context"

	"github.com/noded/noded/container"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/ociruntime"
	"github.com/noded/noded/store"
	"github.com/noded/noded/streaming"
)

// streamingBackend is the streaming.Backend of the daemon: its container manager and state store.
type streamingBackend struct {
	Containers *container.Manager
	Store      *store.Store
}

var _ streaming.Backend = streamingBackend{}

// ExecStream runs cmd in a running container.
func (b streamingBackend) ExecStream(ctx context.Context, containerID string, cmd []string, tty bool, stdio ociruntime.StreamIO) (int, error) {
	return b.Containers.ExecStream(ctx, containerID, cmd, tty, stdio)
}

// AttachStream attaches to a running container.
func (b streamingBackend) AttachStream(ctx context.Context, containerID string, stdio ociruntime.StreamIO) error {
	return b.Containers.AttachStream(ctx, containerID, stdio)
}

// PodNetNS returns the pinned network namespace of a ready pod ("" on the host network).
func (b streamingBackend) PodNetNS(podSandboxID string) (string, error) {
	sb, err := b.Store.Sandbox(podSandboxID)
	if err != nil {
		return "", err
	}
	if sb.State != store.SandboxReady {
		return "", errdefs.FailedPrecondition("pod sandbox %s is not ready", sb.ID)
	}
	if sb.HostNetwork {
		return "", nil
	}
	p := sb.Namespaces["net"]
	if p == "" {
		return "", errdefs.FailedPrecondition("pod sandbox %s has no network namespace", sb.ID)
	}
	return p, nil
}
