package container

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/nsutil"
	"github.com/noded/noded/oci"
	"github.com/noded/noded/oci/seccomp"
	"github.com/noded/noded/ociruntime"
	"github.com/noded/noded/sandbox"
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
	feats, err := m.Features(ctx, sb.RuntimeHandler)
	if err != nil {
		return 0, err
	}
	spec, err := podInitSpec(sb, self, rootfs, cgroupsPath, m.cfg.Host, feats)
	if err != nil {
		return 0, err
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

// PodInitUID and PodInitGID are the IDs the pod init runs as (in the pod's user namespace when it has one):
// the conventional unprivileged ID of pause containers.
const (
	PodInitUID = 65535
	PodInitGID = 65535
)

// podInitSpec is the OCI spec of a pod's init. Containers of the pod reach the init's root through /proc/1/root,
// and a writable procfs there writes the host's /proc/sys. The init only waits for children, so it gets as
// little as the runtime allows: a read-only /proc (runc reads /proc/sys/kernel/cap_last_cap while setting the
// process up, so there must be one) with the default masked and read-only paths on top, an unprivileged user,
// no capabilities, no new privileges, a read-only root and /dev, and the RuntimeDefault seccomp profile where
// the kernel has seccomp (and the runtime does not say it lacks it).
func podInitSpec(sb *store.Sandbox, self, rootfs, cgroupsPath string, host oci.HostInfo, feats oci.Features) (*specs.Spec, error) {
	spec := &specs.Spec{
		Version: cmp.Or(feats.OCIVersion, specs.Version),
		Root:    &specs.Root{Path: rootfs, Readonly: true},
		Process: &specs.Process{
			Args: []string{"/init", podinit.Command}, Cwd: "/", Env: []string{"PATH=/"},
			User:            specs.User{UID: PodInitUID, GID: PodInitGID},
			NoNewPrivileges: true, Capabilities: &specs.LinuxCapabilities{},
		},
		Mounts: []specs.Mount{
			{Destination: "/init", Type: "bind", Source: self, Options: []string{"bind", "ro", "nosuid", "nodev"}},
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
			// runc reopens the init's /dev/null stdio inside the root: the bundle dir may be on a nodev mount
			// (/run on systemd hosts), so the device nodes runc creates need a /dev of their own. runc makes
			// the devices first and remounts /dev read-only afterwards.
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "noexec", "ro", "mode=755", "size=64k"}},
		},
		Linux: &specs.Linux{
			CgroupsPath:   cgroupsPath,
			Namespaces:    []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}},
			MaskedPaths:   oci.DefaultMaskedPaths(),
			ReadonlyPaths: oci.DefaultReadonlyPaths(),
		},
	}
	for _, ns := range []struct {
		key string
		typ specs.LinuxNamespaceType
	}{{"net", specs.NetworkNamespace}, {"ipc", specs.IPCNamespace}, {"uts", specs.UTSNamespace}} {
		if p, ok := sb.Namespaces[ns.key]; ok {
			spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: ns.typ, Path: p})
		}
	}
	if _, ok := podUserns(sb); ok {
		// The init's PID namespace must be owned by the pod's user namespace for containers to mount /proc.
		// Joined by path alone: the runtime reads the mappings from the namespace.
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: sb.Namespaces["user"]})
		// A mapping too small for 65535 leaves the init as the pod's root, an unprivileged host ID anyway.
		uids, gids, _ := sandbox.PodUserns(sb.Config)
		if !idMapped(uids, PodInitUID) || !idMapped(gids, PodInitGID) {
			spec.Process.User = specs.User{}
		}
	}
	if host.Seccomp && oci.SeccompApplicable(feats) == nil {
		sc, err := seccomp.DefaultProfile().ToOCI(seccomp.Target{Kernel: host.Kernel})
		if err != nil {
			return nil, fmt.Errorf("pod init seccomp profile: %w", err)
		}
		spec.Linux.Seccomp = sc
	}
	return spec, nil
}

func idMapped(maps []nsutil.IDMap, id uint32) bool {
	for _, m := range maps {
		if id >= m.ContainerID && id-m.ContainerID < m.Size {
			return true
		}
	}
	return false
}

// podInitKillWait bounds StopPodInit's wait for a SIGKILLed pod init to exit before it falls back to the runtime.
const podInitKillWait = 5 * time.Second

// StopPodInit kills the pod's init and deletes it; a pod without one is fine.
//
// The init is PID 1 of the pod's PID namespace, so a SIGKILL through a pidfd (verified as for a container's own
// init, see pidsignal.go) makes the kernel kill the whole namespace, which is what `runc kill --all` did, without
// the runtime's exec (issue 16). Once the init has exited, the delete is a plain one (deleteExited: runc's
// --force sleeps 100 ms before it looks, even for a stopped container). An init that cannot be verified (gone,
// or a record from before a PID was reused) or does not exit in time is left to the runtime's kill, as before.
func (m *Manager) StopPodInit(ctx context.Context, sb *store.Sandbox) error {
	rt, err := m.runtime(sb.RuntimeHandler)
	if err != nil {
		return err
	}
	id := podInitID(sb.ID)
	cgroupsPath, err := m.cgroupsPath(sb, podInitCgroup(sb.ID))
	if err != nil {
		return err
	}
	if err := m.h().KillInit(ctx, sb.InitPID, cgroupsPath, podInitKillWait); err != nil {
		klog.V(4).InfoS("killing the pod init directly is not possible, using the runtime", "podSandboxID", sb.ID, "err", err)
		// A stopped init cannot be signalled; the delete below handles it either way.
		_ = rt.Kill(ctx, id, syscall.SIGKILL, true)
	}
	if err := deleteExited(ctx, rt, id); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete pod init: %w", err)
	}
	if err := m.cfg.Cgroups.Remove(ctx, cgroupsPath); err != nil {
		return fmt.Errorf("remove pod init cgroup: %w", err)
	}
	return nil
}
