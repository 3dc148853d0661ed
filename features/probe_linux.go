//go:build linux

package features

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/internal/nsutil"
	"github.com/noded/noded/snapshotter"
)

// RealProbes are the probes of the running kernel. IDMappedOverlay starts the current executable as
// nsutil.HoldCommand, so the program must dispatch it (cmd/noded does).
func RealProbes() Probes {
	return Probes{KernelRelease: kernelRelease, RecursiveReadOnly: probeRecursiveReadOnly, IDMappedOverlay: probeIDMappedOverlay}
}

func kernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// probeRecursiveReadOnly sets MOUNT_ATTR_RDONLY recursively on a detached clone of dir's mount tree: the clone
// is never attached anywhere and goes away with its file descriptor.
func probeRecursiveReadOnly(dir string) error {
	tree, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("clone mount of %s: %w", dir, err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	return nil
}

// probePrefix names the probe's scratch directories.
const probePrefix = ".features-probe-"

// removeStaleProbes removes what a probe cut short (noded killed in the middle) left in dir: its overlay and
// ID-mapped clone are unmounted before the directory goes.
func removeStaleProbes(dir string) {
	stale, _ := filepath.Glob(filepath.Join(dir, probePrefix+"*"))
	for _, p := range stale {
		clones, _ := filepath.Glob(filepath.Join(p, ".idmap-*"))
		for _, m := range append([]string{filepath.Join(p, "merged")}, clones...) {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
		_ = os.RemoveAll(p)
	}
}

// probeHostID is the host ID the probe's user namespace maps its root to: far above any real user.
const probeHostID = 2_000_000_000

// probeIDMappedOverlay does what a container's rootfs in a user namespace needs, in a scratch directory below
// dir: an overlay whose lower layer is an ID-mapped clone (snapshotter.MountAllIDMapped), and checks that a
// file of host root shows as owned by the namespace's root. Everything is removed afterwards.
func probeIDMappedOverlay(ctx context.Context, dir string) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	removeStaleProbes(dir)
	tmp, err := os.MkdirTemp(dir, probePrefix)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = rerr
		}
	}()
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "lower", "f"), nil, 0o644); err != nil {
		return err
	}
	one := []nsutil.IDMap{{ContainerID: 0, HostID: probeHostID, Size: 1}}
	userns, release, err := nsutil.HoldUserns(one, one)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := release(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	merged := filepath.Join(tmp, "merged")
	m := snapshotter.Mount{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + filepath.Join(tmp, "lower"), "upperdir=" + filepath.Join(tmp, "upper"), "workdir=" + filepath.Join(tmp, "work"),
	}}
	if err := snapshotter.MountAllIDMapped([]snapshotter.Mount{m}, merged, snapshotter.IDMapping{
		Userns: userns, RootUID: probeHostID, RootGID: probeHostID,
	}); err != nil {
		return err
	}
	defer func() {
		if uerr := unix.Unmount(merged, unix.MNT_DETACH); uerr != nil && !errors.Is(uerr, unix.EINVAL) && err == nil {
			err = fmt.Errorf("unmount probe overlay: %w", uerr)
		}
	}()
	fi, err := os.Stat(filepath.Join(merged, "f"))
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != probeHostID {
		return fmt.Errorf("a root-owned file on the ID-mapped overlay shows uid %v, want %d", fi.Sys(), probeHostID)
	}
	return nil
}
