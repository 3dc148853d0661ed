package sandbox

import (
	"context"

	"k8s.io/klog/v2"

	"github.com/noded/noded/store"
)

// Recover rolls back sandboxes whose creation was interrupted and reports sandboxes whose pinned namespaces are
// gone (a reboot, or someone removed them) as not ready.
func (m *Manager) Recover(ctx context.Context) {
	for _, sb := range m.cfg.Store.Sandboxes() {
		switch sb.State {
		case store.SandboxCreating:
			klog.InfoS("rolling back a sandbox whose creation was interrupted", "podSandboxID", sb.ID)
			if err := m.teardown(ctx, &sb); err != nil {
				klog.ErrorS(err, "rollback failed; sandbox reported as unknown", "podSandboxID", sb.ID)
				sb.State, sb.Error = store.SandboxUnknown, err.Error()
				_ = m.persist(&sb)
				continue
			}
			_ = m.cfg.Store.DeleteSandbox(sb.ID)
		case store.SandboxReady:
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
}
