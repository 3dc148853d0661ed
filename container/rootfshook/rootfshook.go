// Package rootfshook is the OCI createContainer hook that gives a container back the setuid and device bits
// of its root. noded mounts container roots nosuid,nodev on the host, so that no host user can run a
// container's setuid binaries; the runtime's bind of the root inherits those flags. The hook runs in the
// container's mount namespace before pivot_root ("noded rootfs-hook <rootfs>") and remounts that bind without
// them, which changes only the container's view.
package rootfshook

import (
	"fmt"
	"io"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Command is the noded subcommand that runs the hook.
const Command = "rootfs-hook"

// Args returns the hook's arguments (argv, starting with argv[0]) for rootfs.
func Args(rootfs string) []string { return []string{"noded", Command, rootfs} }

// Run remounts the mount at args[0] without nosuid and nodev, keeping its other per-mount flags; it returns the
// exit code.
func Run(args []string, stderr io.Writer) int {
	if len(args) != 1 || !filepath.IsAbs(args[0]) {
		fmt.Fprintf(stderr, "usage: noded %s <absolute rootfs path>\n", Command)
		return 2
	}
	if err := allowSetuid(args[0]); err != nil {
		fmt.Fprintf(stderr, "noded %s: %v\n", Command, err)
		return 1
	}
	return 0
}

func allowSetuid(rootfs string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(rootfs, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", rootfs, err)
	}
	if err := unix.Mount("", rootfs, "", RemountFlags(uint64(st.Flags)), ""); err != nil {
		return fmt.Errorf("remount %s suid,dev: %w", rootfs, err)
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
