package snapshotter

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":          {false, unix.MS_RDONLY},
	"rw":          {true, unix.MS_RDONLY},
	"bind":        {false, unix.MS_BIND},
	"rbind":       {false, unix.MS_BIND | unix.MS_REC},
	"nosuid":      {false, unix.MS_NOSUID},
	"suid":        {true, unix.MS_NOSUID},
	"nodev":       {false, unix.MS_NODEV},
	"dev":         {true, unix.MS_NODEV},
	"noexec":      {false, unix.MS_NOEXEC},
	"exec":        {true, unix.MS_NOEXEC},
	"noatime":     {false, unix.MS_NOATIME},
	"nodiratime":  {false, unix.MS_NODIRATIME},
	"relatime":    {false, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME},
	"sync":        {false, unix.MS_SYNCHRONOUS},
	"dirsync":     {false, unix.MS_DIRSYNC},
}

var propagationFlags = map[string]uintptr{
	"private":  unix.MS_PRIVATE,
	"rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"slave":    unix.MS_SLAVE,
	"rslave":   unix.MS_SLAVE | unix.MS_REC,
	"shared":   unix.MS_SHARED,
	"rshared":  unix.MS_SHARED | unix.MS_REC,
}

// parseOptions splits mount options into flags, propagation flags and the filesystem data string.
func parseOptions(opts []string) (flags, propagation uintptr, data string) {
	var rest []string
	for _, o := range opts {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		if p, ok := propagationFlags[o]; ok {
			propagation |= p
			continue
		}
		rest = append(rest, o)
	}
	return flags, propagation, strings.Join(rest, ",")
}

// MountAll mounts mounts on target in order (each on top of the previous). On failure the mounts already
// made are undone. A mount with Dir set is made from that directory, on a dedicated OS thread whose
// working directory is private (unshare CLONE_FS), so the process's working directory never changes.
func MountAll(mounts []Mount, target string) error {
	target, err := filepath.Abs(target)
	if err != nil {
		return fmt.Errorf("mount target %s: %w", target, err)
	}
	for i, m := range mounts {
		if err := mountOne(m, target); err != nil {
			for j := 0; j < i; j++ {
				_ = unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
			}
			return err
		}
	}
	return nil
}

func mountOne(m Mount, target string) error {
	if m.Dir == "" {
		return doMount(m, target)
	}
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked: after unshare(CLONE_FS) its working directory differs from the rest of
		// the process, so it must exit with this goroutine instead of running other goroutines.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := unix.Chdir(m.Dir); err != nil {
			errc <- fmt.Errorf("chdir %s: %w", m.Dir, err)
			return
		}
		errc <- doMount(m, target)
	}()
	return <-errc
}

func doMount(m Mount, target string) error {
	flags, propagation, data := parseOptions(m.Options)
	typ := m.Type
	if typ == "bind" {
		flags |= unix.MS_BIND
	}
	if flags&unix.MS_BIND != 0 {
		typ = ""
		data = ""
	}
	first := flags
	if flags&unix.MS_BIND != 0 {
		first = flags & (unix.MS_BIND | unix.MS_REC)
	}
	if err := unix.Mount(m.Source, target, typ, first, data); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", m.Source, m.Type, target, err)
	}
	// A bind mount ignores most flags on creation: apply them with a remount.
	const remountable = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME |
		unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME
	if flags&unix.MS_BIND != 0 && flags&remountable != 0 {
		if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|flags&remountable, ""); err != nil {
			_ = unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
			return fmt.Errorf("remount %s with %v: %w", target, m.Options, err)
		}
	}
	if propagation != 0 {
		if err := unix.Mount("", target, "", propagation, ""); err != nil {
			_ = unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
			return fmt.Errorf("set propagation of %s: %w", target, err)
		}
	}
	return nil
}

// UnmountAll unmounts every mount stacked on target. A target that does not exist or is not a mount point
// is not an error.
func UnmountAll(target string) error {
	for {
		err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}
