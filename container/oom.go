package container

import (
	"path"
	"sync"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/store"
)

// oomTracker keeps what OOM detection needs once a container's own cgroup is gone: under the systemd driver a
// scope and its cgroup vanish as soon as the last process exits, often before anyone has read its memory.events.
// The kernel also counts an OOM kill in every ancestor's memory.events, so the pod's parent cgroup, which stays,
// still tells: its oom_kill counter is sampled when the container starts and compared when it exits.
type oomTracker struct {
	mu    sync.Mutex
	base  map[string]uint64 // container ID -> parent's oom_kill when it started
	stops map[string]bool   // container IDs noded is stopping (their SIGKILL is noded's, not the kernel's)
}

// starting samples the parent cgroup's OOM kill counter of a container about to start.
func (t *oomTracker) starting(m *Manager, c *store.Container) {
	dir, err := m.cfg.Cgroups.Dir(c.CgroupsPath)
	if err != nil {
		return
	}
	n, err := m.cfg.CgroupReader.OOMKills(path.Dir(dir))
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.base == nil {
		t.base = map[string]uint64{}
	}
	t.base[c.ID] = n
}

func (t *oomTracker) stopping(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stops == nil {
		t.stops = map[string]bool{}
	}
	t.stops[id] = true
}

// take returns and forgets what was recorded for a container.
func (t *oomTracker) take(id string) (base uint64, hasBase, stopping bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	base, hasBase = t.base[id]
	stopping = t.stops[id]
	delete(t.base, id)
	delete(t.stops, id)
	return base, hasBase, stopping
}

func (t *oomTracker) forget(id string) { _, _, _ = t.take(id) }

// oomKilled reports whether the kernel's OOM killer killed a process of the container that exited with exitCode:
//   - conmon's marker (conmon watches the memory cgroup while the container runs, and reads it once more after
//     the exit);
//   - else the container's own cgroup counter, while the cgroup is there (the cgroupfs driver keeps it until the
//     runtime deletes the container);
//   - else, for a container killed by SIGKILL that noded did not stop, a rise of its parent cgroup's counter
//     since the container started. (A sibling's OOM kill at the same moment as an outside SIGKILL of this
//     container would be taken for this container's.)
func (m *Manager) oomKilled(c *store.Container, exitCode int) bool {
	base, hasBase, stopping := m.oom.take(c.ID)
	if rt, err := m.runtime(c.Runtime); err == nil && rt.OOMKilled(c.ID) {
		return true
	}
	if c.CgroupsPath == "" {
		return false
	}
	dir, err := m.cfg.Cgroups.Dir(c.CgroupsPath)
	if err != nil {
		return false
	}
	n, err := m.cfg.CgroupReader.OOMKills(dir)
	switch {
	case err == nil:
		return n > 0
	case !errdefs.IsNotFound(err):
		klog.V(2).InfoS("reading the container's OOM kill counter", "containerID", c.ID, "err", err)
		return false
	}
	if !hasBase || stopping || exitCode != 128+int(syscall.SIGKILL) {
		return false
	}
	n, err = m.cfg.CgroupReader.OOMKills(path.Dir(dir))
	return err == nil && n > base
}
