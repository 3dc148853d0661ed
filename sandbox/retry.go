package sandbox

import (
	"context"
	"fmt"
	"time"

	"k8s.io/klog/v2"

	"github.com/noded/noded/internal/intent"
)

// CreateTimeout bounds one sandbox creation (see intent.CreateTimeout).
const CreateTimeout = intent.CreateTimeout

// reserve makes the caller the only creator of name: it waits while another creation of that name is in
// flight (a retry waits for the attempt its caller abandoned), as long as ctx allows. done ends the reservation.
func (m *Manager) reserve(ctx context.Context, name string) (done func(), err error) {
	for {
		m.mu.Lock()
		wait, busy := m.creating[name]
		if !busy {
			ch := make(chan struct{})
			m.creating[name] = ch
			m.mu.Unlock()
			return func() {
				m.mu.Lock()
				delete(m.creating, name)
				m.mu.Unlock()
				close(ch)
			}, nil
		}
		m.mu.Unlock()
		klog.V(2).InfoS("waiting for the creation of a sandbox of the same name in flight", "name", name)
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("pod sandbox %q is still being created by an earlier request: %w", name, ctx.Err())
		}
	}
}

// ReapOrphans removes sandboxes created for callers that gave up which no retry claimed within maxAge of their
// creation and which have no containers (intent.Kind.Reap). remove does the removal (the RemovePodSandbox path,
// which takes the locks). It returns how many it removed.
func (m *Manager) ReapOrphans(ctx context.Context, maxAge time.Duration, remove func(ctx context.Context, id string) error) int {
	return m.intents().Reap(ctx, m.cfg.Store.Sandboxes(), maxAge, remove)
}
