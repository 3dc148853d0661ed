package sandbox

import (
	"context"
	"time"

	"k8s.io/klog/v2"

	"github.com/noded/noded/internal/intent"
	"github.com/noded/noded/store"
)

// intents is the sandbox's side of create with intent (package intent): Run creates and hands off through it,
// ReapOrphans reaps through it, Recover rolls back through it.
func (m *Manager) intents() *intent.Kind[store.Sandbox] {
	return &intent.Kind[store.Sandbox]{
		Noun: "sandbox", IDKey: "podSandboxID",
		ID:        func(sb *store.Sandbox) string { return sb.ID },
		Name:      func(sb *store.Sandbox) string { return sb.Name },
		Creating:  func(sb *store.Sandbox) bool { return sb.State == store.SandboxCreating },
		Made:      func(sb *store.Sandbox) { sb.State = store.SandboxReady },
		IsMade:    func(sb *store.Sandbox) bool { return sb.State == store.SandboxReady },
		Orphaned:  func(sb *store.Sandbox) *bool { return &sb.Orphaned },
		CreatedAt: func(sb *store.Sandbox) time.Time { return time.Unix(0, sb.CreatedAt) },
		Unknown:   func(sb *store.Sandbox, err error) { sb.State, sb.Error = store.SandboxUnknown, err.Error() },
		Add:       m.cfg.Store.AddSandbox,
		Update: func(id string, fn func(*store.Sandbox) error) error {
			_, err := m.cfg.Store.UpdateSandbox(id, fn)
			return err
		},
		Delete: m.cfg.Store.DeleteSandbox,
		Undo:   m.teardown,
		// A sandbox that got containers was adopted (kubelet found it listed).
		Adopted: func(sb *store.Sandbox) bool { return len(m.cfg.Store.Containers(sb.ID)) > 0 },
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
