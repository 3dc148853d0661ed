package container

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/noded/noded/internal/intent"
	"github.com/noded/noded/store"
)

// CreateTimeout bounds one container creation (see intent.CreateTimeout).
const CreateTimeout = intent.CreateTimeout

// recordLost records a container whose runtime state is gone (so nothing of it can run) as exited with an
// unknown exit code, so that kubelet sees it stopped and can remove it.
func (m *Manager) recordLost(id string) {
	updated, err := m.cfg.Store.UpdateContainer(id, func(x *store.Container) error {
		if x.State == store.ContainerExited {
			return nil
		}
		x.State, x.ExitCode, x.FinishedAt = store.ContainerExited, 255, time.Now().UnixNano()
		x.Reason = "Unknown"
		if x.Message == "" {
			x.Message = "the OCI runtime no longer knows this container; its exit code is lost"
		}
		if x.StartedAt == 0 {
			x.StartedAt = x.FinishedAt
		}
		return nil
	})
	if err != nil {
		klog.ErrorS(err, "recording a lost container as exited", "containerID", id)
		return
	}
	m.closeExit(id)
	m.emit(&updated, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
}

// ReapOrphans removes containers created for callers that gave up which no retry claimed within maxAge of their
// creation and which were not started (intent.Kind.Reap). It returns how many it removed.
func (m *Manager) ReapOrphans(ctx context.Context, maxAge time.Duration) int {
	return m.intents().Reap(ctx, m.cfg.Store.Containers(""), maxAge, m.Remove)
}
