//go:build linux

package nsutil

import (
	"fmt"
	"os/exec"
	"syscall"
)

// HoldUserns starts a holder (the current executable as HoldCommand) in a new user namespace with the given ID
// mappings and no other new namespace, and returns the path of that user namespace (valid while it is held) and
// the function that lets the holder exit and waits for it. For probes that need a user namespace to point at,
// such as an ID-mapped mount that is never attached.
func HoldUserns(uids, gids []IDMap) (path string, release func() error, err error) {
	cmd := exec.Command("/proc/self/exe", HoldCommand)
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: sysMaps(uids),
		GidMappings: sysMaps(gids),
		Pdeathsig:   syscall.SIGKILL,
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		_ = stdin.Close()
		return "", nil, fmt.Errorf("start the user namespace holder: %w", err)
	}
	release = func() error {
		_ = stdin.Close()
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("user namespace holder: %w", err)
		}
		return nil
	}
	return fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid), release, nil
}
