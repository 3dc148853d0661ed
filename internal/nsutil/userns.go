//go:build linux

package nsutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

// User is the user namespace type. It is only pinned by PinUserns, together with the namespaces it owns.
const User Type = "user"

// HoldCommand is the subcommand of the noded binary that PinUserns runs as the short-lived holder of a new user
// namespace: it waits for its standard input to close, then exits. A program that uses PinUserns must dispatch
// it to Hold (cmd/noded does; tests do it in TestMain).
const HoldCommand = "ns-hold"

// Hold is the body of HoldCommand: it returns once stdin is closed (or fails).
func Hold() int {
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// IDMap is one line of a uid_map or gid_map: Size IDs from ContainerID inside map to HostID outside.
type IDMap struct {
	ContainerID, HostID, Size uint32
}

// PinUserns creates a user namespace with the given ID mappings and, owned by it, new namespaces of the given
// types, and pins all of them under dir like Pin does (the user namespace at dir/user). Namespaces owned by the
// new user namespace are what a container running in it needs to mount /proc, /sys and mqueue.
//
// A Go process cannot unshare a user namespace itself (it is multi-threaded), so the namespaces are made by
// cloning a child: the current executable (/proc/self/exe, which works whatever the permissions of the
// directories above it) run as HoldCommand, with setgroups allowed so that containers can set supplementary
// groups. The child lives only until the pins are mounted. On failure every pin made is removed.
func PinUserns(ctx context.Context, dir string, types []Type, uids, gids []IDMap) (map[Type]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(uids) == 0 || len(gids) == 0 {
		return nil, errdefs.InvalidArgument("a user namespace needs uid and gid mappings")
	}
	flags, err := cloneFlags(types)
	if err != nil {
		return nil, err
	}
	flags |= unix.CLONE_NEWUSER
	paths, err := createPinFiles(dir, append([]Type{User}, types...))
	if err != nil {
		return nil, err
	}
	if err := holdAndPin(flags, uids, gids, paths); err != nil {
		_ = unpinAll(paths)
		return nil, err
	}
	return paths, nil
}

func sysMaps(in []IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(in))
	for i, m := range in {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
	}
	return out
}

// holdAndPin starts the holder child in new namespaces (flags), bind-mounts each of its namespaces onto
// paths[type] and lets it exit.
func holdAndPin(flags int, uids, gids []IDMap, paths map[Type]string) error {
	cmd := exec.Command("/proc/self/exe", HoldCommand)
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 uintptr(flags),
		UidMappings:                sysMaps(uids),
		GidMappings:                sysMaps(gids),
		GidMappingsEnableSetgroups: true,
		Pdeathsig:                  syscall.SIGKILL,
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		_ = stdin.Close()
		return fmt.Errorf("start the user namespace holder: %w", err)
	}
	var errs []error
	for t, p := range paths {
		src := fmt.Sprintf("/proc/%d/ns/%s", cmd.Process.Pid, t)
		if err := unix.Mount(src, p, "", unix.MS_BIND, ""); err != nil {
			errs = append(errs, fmt.Errorf("bind mount %s namespace to %s: %w", t, p, err))
			break
		}
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("user namespace holder: %w", err))
	}
	return errors.Join(errs...)
}
