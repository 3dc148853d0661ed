package sandbox

import (
	"context"

	"k8s.io/klog/v2"

	"github.com/noded/noded/internal/intent"
	"github.com/noded/noded/store"
)

// intents is the sandbox's side of create with intent (package intent): Run creates through it, Recover rolls
// back through it.
func (m *Manager) intents() *intent.Kind[store.Sandbox] {
	return &intent.Kind[store.Sandbox]{
		Noun: "sandbox", IDKey: "podSandboxID",
		ID:       func(sb *store.Sandbox) string { return sb.ID },
		Name:     func(sb *store.Sandbox) string { return sb.Name },
		Creating: func(sb *store.Sandbox) bool { return sb.State == store.SandboxCreating },
		Made:     func(sb *store.Sandbox, orphaned bool) { sb.State, sb.Orphaned = store.SandboxReady, orphaned },
		Unknown:  func(sb *store.Sandbox, err error) { sb.State, sb.Error = store.SandboxUnknown, err.Error() },
		Add:      m.cfg.Store.AddSandbox,
		Update: func(id string, fn func(*store.Sandbox) error) error {
			_, err := m.cfg.Store.UpdateSandbox(id, fn)
			return err
		},
		Delete: m.cfg.Store.DeleteSandbox,
		Undo:   m.teardown,
	}
}

// Recover rolls back sandboxes whose creation was interrupted (those whose rollback fails stay as unknown) and
// reports sandboxes whose pinned namespaces are gone (a reboot, or someone removed them) as not ready. The
// rollbacks run under ctx as it is, with no time limit of their own (see intent.Inherited).
func (m *Manager) Recover(ctx context.Context) {
	for _, sb := range m.intents().Recover(ctx, m.cfg.Store.Sandboxes(), intent.Inherited) {
		if sb.State != store.SandboxReady {
			continue
		}
		for t, p := range sb.Namespaces {
			if !m.host.IsPinned(p) {
				klog.InfoS("sandbox namespace pin is gone; sandbox is not ready", "podSandboxID", sb.ID, "namespace", t)
				sb.State = store.SandboxNotReady
				_ = m.persist(&sb)
				break
			}
		}
	}
}
