// Package rootfsflags gives a container back the setuid and device bits of its root. noded mounts container
// roots nosuid,nodev on the host, so that no host user can run a container's setuid binaries; the runtime's
// bind of the root inherits those flags. Once the runtime has created the container (its init waits for the
// start, no container code has run), AllowSetuidIn remounts the container's root without them from inside the
// container's mount namespace, which changes only the container's view. It does from noded what a
// createContainer hook (an exec of noded per container start) did before.
package rootfsflags

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// AllowSetuidIn remounts the root of the mount namespace of process pid (a created, not yet started container's
// init) without nosuid and nodev, keeping its other per-mount flags. rootfs is the container's root on the host:
// the namespace's root must be that same directory (device and inode), or nothing is remounted and it is an
// error, so that a runtime that does not run the container in a mount namespace of the host's kernel (a VM) is
// never mistaken for one that does.
func AllowSetuidIn(pid int, rootfs string) error {
	var want unix.Stat_t
	if err := unix.Stat(rootfs, &want); err != nil {
		return fmt.Errorf("stat rootfs: %w", err)
	}
	ns, err := unix.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the mount namespace of the container's init: %w", err)
	}
	defer unix.Close(ns)
	return <-onThreadOfItsOwn(func() error { return inNamespace(ns, want) })
}

// onThreadOfItsOwn runs fn on an OS thread that is ended afterwards and is not the main thread, for work that
// leaves the thread in another namespace: the locked thread is never unlocked, so the Go runtime ends it with its
// goroutine instead of running other goroutines on it. The main thread is not ended but parked, and /proc/self
// names its namespaces, so fn never runs there.
func onThreadOfItsOwn(fn func() error) <-chan error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// Held here, the main thread cannot take the goroutine below.
			err := <-onThreadOfItsOwn(fn)
			runtime.UnlockOSThread()
			done <- err
			return
		}
		done <- fn()
	}()
	return done
}

func inNamespace(ns int, want unix.Stat_t) error {
	// setns into a mount namespace needs a thread that shares its root and cwd with no other.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare CLONE_FS: %w", err)
	}
	if err := unix.Setns(ns, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("enter the container's mount namespace: %w", err)
	}
	var got unix.Stat_t
	if err := unix.Stat("/", &got); err != nil {
		return fmt.Errorf("stat the container's root: %w", err)
	}
	if got.Dev != want.Dev || got.Ino != want.Ino {
		return fmt.Errorf("the container's root is not its rootfs (device %d inode %d, want %d %d)", got.Dev, got.Ino, want.Dev, want.Ino)
	}
	return allowSetuid("/")
}

func allowSetuid(root string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", root, err)
	}
	if err := unix.Mount("", root, "", RemountFlags(uint64(st.Flags)), ""); err != nil {
		return fmt.Errorf("remount %s suid,dev: %w", root, err)
	}
	return nil
}

// statfsToMount maps the per-mount statfs flags (ST_*) that a bind remount keeps to mount(2) flags (MS_*).
var statfsToMount = []struct{ st, ms uint64 }{
	{unix.ST_RDONLY, unix.MS_RDONLY},
	{unix.ST_NOEXEC, unix.MS_NOEXEC},
	{unix.ST_NOATIME, unix.MS_NOATIME},
	{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
	{unix.ST_RELATIME, unix.MS_RELATIME},
}

// RemountFlags returns the flags of a bind remount that keeps a mount's statfs flags but nosuid and nodev.
func RemountFlags(statfsFlags uint64) uintptr {
	flags := uint64(unix.MS_REMOUNT | unix.MS_BIND)
	for _, f := range statfsToMount {
		if statfsFlags&f.st != 0 {
			flags |= f.ms
		}
	}
	return uintptr(flags)
}
