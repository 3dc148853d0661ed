package container

import (
	"context"
	"time"

	"k8s.io/klog/v2"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/ociruntime"
	"github.com/noded/noded/store"
)

// Recover reconciles stored containers with the runtime after noded starts: creations cut short are rolled back,
// exits that happened while noded was down are recorded from conmon's exit files, and containers the runtime no
// longer knows are reported in the unknown state (still removable).
func (m *Manager) Recover(ctx context.Context) {
	for _, c := range m.cfg.Store.Containers("") {
		switch c.State {
		case store.ContainerCreating:
			klog.InfoS("rolling back a container whose creation was interrupted", "containerID", c.ID)
			if err := m.cleanup(ctx, &c); err != nil {
				klog.ErrorS(err, "rollback failed; container reported as unknown", "containerID", c.ID)
				_, _ = m.cfg.Store.UpdateContainer(c.ID, func(x *store.Container) error {
					x.State, x.Error = store.ContainerUnknown, err.Error()
					return nil
				})
				continue
			}
			_ = m.cfg.Store.DeleteContainer(c.ID)
		case store.ContainerCreated, store.ContainerRunning:
			rt, err := m.runtime(c.Runtime)
			if err != nil {
				m.markUnknown(c.ID, err.Error())
				continue
			}
			if code, at, err := rt.ExitStatus(c.ID); err == nil {
				m.HandleExit(ociruntime.ExitEvent{ID: c.ID, ExitCode: code, ExitedAt: at})
				continue
			}
			st, err := rt.State(ctx, c.ID)
			switch {
			case errdefs.IsNotFound(err):
				m.markUnknown(c.ID, "the OCI runtime no longer knows this container")
			case err != nil:
				m.markUnknown(c.ID, err.Error())
			case st.Status == ociruntime.StatusStopped:
				// Stopped without an exit file (conmon died): the exit code is lost.
				m.HandleExit(ociruntime.ExitEvent{ID: c.ID, ExitCode: 255, ExitedAt: time.Now()})
			case st.Status == ociruntime.StatusRunning && c.State == store.ContainerCreated:
				_, _ = m.cfg.Store.UpdateContainer(c.ID, func(x *store.Container) error {
					x.State, x.StartedAt = store.ContainerRunning, time.Now().UnixNano()
					return nil
				})
			}
		}
	}
	m.reconcileImageVolumes(ctx)
}

func (m *Manager) markUnknown(id, why string) {
	klog.InfoS("container state cannot be recovered; reported as unknown", "containerID", id, "reason", why)
	_, _ = m.cfg.Store.UpdateContainer(id, func(x *store.Container) error {
		x.State, x.Error = store.ContainerUnknown, why
		return nil
	})
}
