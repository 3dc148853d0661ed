package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/ociruntime"
)

// Signalling a container without exec'ing the runtime (issue 16).
//
// `runc kill` costs a Go binary's exec (~20-40 ms of CPU) per call. For a container whose init is PID 1 of the
// container's own PID namespace, the same effect is had with a pidfd: the stop signal goes to the init alone
// (what `runc kill <id> SIG` does), and SIGKILL to the init of a PID namespace makes the kernel kill every
// process in it, exec'd ones too (what `runc kill --all <id> 9` does). No state is recorded for it: after
// pidfd_open the process is checked to be the init of a nested PID namespace (the last NSpid of
// /proc/<pid>/status is 1) and to be in the container's cgroup. A PID reused by any other process fails the
// check; the pidfd pins the checked process, so the signal cannot reach a later one. A container in the pod's
// shared PID namespace, another container's or the host's has no such init and is signalled by the runtime, as
// is every case where the check cannot be made. The pod init of a shared PID namespace is such an init, and is
// killed the same way (killOwnInit, StopPodInit).

// errNotInit says the process cannot be signalled directly: gone, not the container's init, or unknown.
var errNotInit = errors.New("process is not a verified init of the container's own PID namespace")

// signalOwnInit sends sig to pid through a pidfd, if pid is the init of its own PID namespace and is in the
// cgroup cgroupsPath. It returns an error wrapping errNotInit when the caller must use the runtime instead.
func signalOwnInit(pid int, cgroupsPath string, sig syscall.Signal) error {
	fd, err := openOwnInit(pid, cgroupsPath)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		return fmt.Errorf("pidfd_send_signal %d %v: %w: %w", pid, sig, err, errNotInit)
	}
	return nil
}

// killOwnInit SIGKILLs pid as signalOwnInit does and waits, at most timeout or until ctx ends, until it has exited
// (the kernel has then killed the rest of its PID namespace too). An error wrapping errNotInit means nothing was
// sent.
func killOwnInit(ctx context.Context, pid int, cgroupsPath string, timeout time.Duration) error {
	fd, err := openOwnInit(pid, cgroupsPath)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		return fmt.Errorf("pidfd_send_signal %d SIGKILL: %w: %w", pid, err, errNotInit)
	}
	if err := ociruntime.WaitPidfd(ctx, fd, timeout); err != nil {
		return fmt.Errorf("killed init %d: %w", pid, err)
	}
	return nil
}

// openOwnInit returns a pidfd of pid if pid is the init of its own PID namespace and is in the cgroup
// cgroupsPath, else an error wrapping errNotInit.
func openOwnInit(pid int, cgroupsPath string) (int, error) {
	if pid <= 0 || cgroupsPath == "" {
		return -1, fmt.Errorf("pid %d, cgroups path %q: %w", pid, cgroupsPath, errNotInit)
	}
	rel, err := stats.ResolvePath(cgroupsPath)
	if err != nil || rel == "/" {
		return -1, fmt.Errorf("cgroups path %q: %w", cgroupsPath, errNotInit)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		// ESRCH: gone. The runtime tells exited from lost.
		return -1, fmt.Errorf("pidfd_open %d: %w: %w", pid, err, errNotInit)
	}
	// Read after the pidfd is open: if pid was reused before, the files describe the new process and the
	// checks fail; if it is reused after, the signal fails with ESRCH.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err == nil && !isNamespaceInit(string(status)) {
		err = fmt.Errorf("process %d is not PID 1 of a nested PID namespace", pid)
	}
	var cg []byte
	if err == nil {
		cg, err = os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	}
	if err == nil && !inCgroup(string(cg), rel) {
		err = fmt.Errorf("process %d is not in cgroup %s", pid, rel)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: %w", err, errNotInit)
	}
	return fd, nil
}

// isNamespaceInit reports whether a /proc/<pid>/status describes PID 1 of a PID namespace nested below ours.
func isNamespaceInit(status string) bool {
	for line := range strings.SplitSeq(status, "\n") {
		rest, ok := strings.CutPrefix(line, "NSpid:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		return len(f) >= 2 && f[len(f)-1] == "1"
	}
	return false
}

// inCgroup reports whether a /proc/<pid>/cgroup lists the cgroup rel (absolute, cleaned) in some hierarchy.
func inCgroup(procCgroup, rel string) bool {
	for line := range strings.SplitSeq(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[2] == rel {
			if _, err := strconv.Atoi(parts[0]); err == nil {
				return true
			}
		}
	}
	return false
}
