package container

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/ociruntime"
	"github.com/noded/noded/sandbox/podinit"
	"github.com/noded/noded/store"
)

// podInitID is the runtime ID of a pod's init process.
func podInitID(sandboxID string) string { return "podinit-" + sandboxID }

// podInitCgroup is the cgroup name of a pod's init below the pod's parent.
func podInitCgroup(sandboxID string) string { return "podinit-" + sandboxID[:min(12, len(sandboxID))] }

// StartPodInit runs the pod's init (the noded binary's pod-init command) in a new PID namespace joined to the
// sandbox's other namespaces, and returns its host PID. Its root is an empty directory with the binary
// bind-mounted read-only at /init.
func (m *Manager) StartPodInit(ctx context.Context, sb *store.Sandbox) (int, error) {
	rt, err := m.runtime(sb.RuntimeHandler)
	if err != nil {
		return 0, err
	}
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("locate the noded binary: %w", err)
	}
	cgroupsPath, err := m.cgroupsPath(sb, podInitCgroup(sb.ID))
	if err != nil {
		return 0, err
	}
	bundle := filepath.Join(sb.Dir, "init")
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return 0, err
	}
	if idm, ok := podUserns(sb); ok {
		// The runtime makes mount points and device nodes in this (pod-private) root as the pod's root user.
		if err := os.Chown(rootfs, idm.RootUID, idm.RootGID); err != nil {
			return 0, err
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "init"), nil, 0o755); err != nil {
		return 0, err
	}
	spec := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs, Readonly: true},
		Process: &specs.Process{
			Args: []string{"/init", podinit.Command}, Cwd: "/", Env: []string{"PATH=/"},
			NoNewPrivileges: true, Capabilities: &specs.LinuxCapabilities{},
		},
		Hostname: "",
		Mounts: []specs.Mount{
			{Destination: "/init", Type: "bind", Source: self, Options: []string{"bind", "ro", "nosuid", "nodev"}},
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			// runc reopens the init's /dev/null stdio inside the root: the bundle dir may be on a nodev mount
			// (/run on systemd hosts), so the device nodes runc creates need a /dev of their own.
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "noexec", "mode=755", "size=64k"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: cgroupsPath,
			Namespaces:  []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}},
			MaskedPaths: []string{"/proc/kcore", "/proc/keys", "/proc/timer_list"},
		},
	}
	for t, typ := range map[string]specs.LinuxNamespaceType{"net": specs.NetworkNamespace, "ipc": specs.IPCNamespace, "uts": specs.UTSNamespace} {
		if p, ok := sb.Namespaces[t]; ok {
			spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: typ, Path: p})
		}
	}
	if _, ok := podUserns(sb); ok {
		// The init's PID namespace must be owned by the pod's user namespace for containers to mount /proc.
		// Joined by path alone: the runtime reads the mappings from the namespace.
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: sb.Namespaces["user"]})
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		return 0, err
	}
	id := podInitID(sb.ID)
	pid, err := rt.Create(ctx, ociruntime.CreateOpts{ID: id, Bundle: bundle})
	if err != nil {
		return 0, fmt.Errorf("create pod init: %w", err)
	}
	if err := rt.Start(ctx, id); err != nil {
		_ = rt.Delete(ctx, id, true)
		return 0, fmt.Errorf("start pod init: %w", err)
	}
	return pid, nil
}

// StopPodInit kills the pod's init and deletes it; a pod without one is fine.
func (m *Manager) StopPodInit(ctx context.Context, sb *store.Sandbox) error {
	rt, err := m.runtime(sb.RuntimeHandler)
	if err != nil {
		return err
	}
	id := podInitID(sb.ID)
	// A stopped init cannot be signalled; the forced delete below handles it either way.
	_ = rt.Kill(ctx, id, syscall.SIGKILL, true)
	if err := rt.Delete(ctx, id, true); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete pod init: %w", err)
	}
	cgroupsPath, err := m.cgroupsPath(sb, podInitCgroup(sb.ID))
	if err != nil {
		return err
	}
	if err := m.cfg.Cgroups.Remove(ctx, cgroupsPath); err != nil {
		return fmt.Errorf("remove pod init cgroup: %w", err)
	}
	return nil
}
