package container

import (
	"context"
	"time"

	"k8s.io/klog/v2"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/intent"
	"github.com/noded/noded/ociruntime"
	"github.com/noded/noded/store"
)

// intents is the container's side of create with intent (package intent): Create creates and hands off through
// it, ReapOrphans reaps through it, Recover rolls back through it.
func (m *Manager) intents() *intent.Kind[store.Container] {
	return &intent.Kind[store.Container]{
		Noun: "container", IDKey: "containerID",
		ID:        func(c *store.Container) string { return c.ID },
		Name:      func(c *store.Container) string { return c.Name },
		Creating:  func(c *store.Container) bool { return c.State == store.ContainerCreating },
		Made:      func(c *store.Container) { c.State = store.ContainerCreated },
		IsMade:    func(c *store.Container) bool { return c.State == store.ContainerCreated },
		Orphaned:  func(c *store.Container) *bool { return &c.Orphaned },
		CreatedAt: func(c *store.Container) time.Time { return time.Unix(0, c.CreatedAt) },
		Unknown:   func(c *store.Container, err error) { c.State, c.Error = store.ContainerUnknown, err.Error() },
		Add:       m.cfg.Store.AddContainer,
		Update: func(id string, fn func(*store.Container) error) error {
			_, err := m.cfg.Store.UpdateContainer(id, fn)
			return err
		},
		Delete: m.cfg.Store.DeleteContainer,
		Undo:   m.cleanup,
		// A container that was started (or has run) was adopted (kubelet found it listed).
		Adopted: func(c *store.Container) bool { return c.State != store.ContainerCreated },
	}
}

// Recover reconciles stored containers with the runtime after noded starts: creations cut short are rolled back
// (those whose rollback fails stay as unknown), exits that happened while noded was down are recorded from
// conmon's exit files, and containers the runtime no longer knows are reported in the unknown state (still
// removable). The rollbacks run under ctx as it is, with no time limit of their own (see intent.Inherited).
func (m *Manager) Recover(ctx context.Context) {
	for _, c := range m.intents().Recover(ctx, m.cfg.Store.Containers(""), intent.Inherited) {
		switch c.State {
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
