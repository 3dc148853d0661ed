package container

import (
	"context"
	"syscall"
	"time"

	"github.com/noded/noded/container/rootfsflags"
	"github.com/noded/noded/snapshotter"
)

// Host is what a container changes on the node besides files: the mounts of its rootfs and image volumes, and
// the processes left in its cgroup. RealHost does it to the kernel; unit tests give a fake.
type Host interface {
	MountAll(mounts []snapshotter.Mount, target string) error
	MountAllIDMapped(mounts []snapshotter.Mount, target string, idm snapshotter.IDMapping) error
	// UnmountAll unmounts everything at target; nothing mounted is not an error.
	UnmountAll(target string) error
	// KillCgroup kills what is left in the container's cgroup and removes it.
	KillCgroup(cgroupsPath string) error
	// AllowSetuid clears nosuid and nodev in the container's own view of its root (rootfs on the host), from
	// the mount namespace of its created init pid.
	AllowSetuid(pid int, rootfs string) error
	// SignalInit sends sig to pid with a pidfd if pid is the init of the container's own PID namespace, in the
	// container's cgroup (see pidsignal.go); an error wrapping errNotInit asks for the runtime's kill instead.
	SignalInit(pid int, cgroupsPath string, sig syscall.Signal) error
	// KillInit is SignalInit's SIGKILL that also waits, at most timeout or until ctx ends, until pid has exited
	// (for the pod init: the kernel kills its PID namespace with it). An error wrapping errNotInit means nothing
	// was sent.
	KillInit(ctx context.Context, pid int, cgroupsPath string, timeout time.Duration) error
}

// RealHost is the Host of a running node.
type RealHost struct{}

var _ Host = RealHost{}

func (RealHost) MountAll(mounts []snapshotter.Mount, target string) error {
	return snapshotter.MountAll(mounts, target)
}

func (RealHost) MountAllIDMapped(mounts []snapshotter.Mount, target string, idm snapshotter.IDMapping) error {
	return snapshotter.MountAllIDMapped(mounts, target, idm)
}

func (RealHost) UnmountAll(target string) error      { return snapshotter.UnmountAll(target) }
func (RealHost) KillCgroup(cgroupsPath string) error { return killCgroup(cgroupsPath) }
func (RealHost) SignalInit(pid int, cgroupsPath string, sig syscall.Signal) error {
	return signalOwnInit(pid, cgroupsPath, sig)
}
func (RealHost) KillInit(ctx context.Context, pid int, cgroupsPath string, timeout time.Duration) error {
	return killOwnInit(ctx, pid, cgroupsPath, timeout)
}
func (RealHost) AllowSetuid(pid int, rootfs string) error {
	return rootfsflags.AllowSetuidIn(pid, rootfs)
}

// h is the configured Host, RealHost by default.
func (m *Manager) h() Host {
	if m.cfg.Mounts != nil {
		return m.cfg.Mounts
	}
	return RealHost{}
}
