package ociruntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// waitProcessExit waits until pid (not necessarily our child) has exited, using a pidfd so
// that no polling is needed. It returns nil if the process does not exist.
func waitProcessExit(ctx context.Context, pid int, timeout time.Duration) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if errors.Is(err, unix.ENOENT) {
		// Seen on 6.18 for a conmon that was exiting (its parent, PID 1, may never reap it): no pidfd, so watch
		// /proc until it is a zombie or gone.
		return pollExit(ctx, pid, timeout)
	}
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if err := WaitPidfd(ctx, fd, timeout); err != nil {
		return fmt.Errorf("process %d: %w", pid, err)
	}
	return nil
}

// WaitPidfd waits until the process of pidfd fd has exited (the pidfd turns readable: a zombie has exited), at
// most timeout or until ctx ends.
func WaitPidfd(ctx context.Context, fd int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for {
		// Poll in short slices so that ctx cancellation is noticed.
		wait := min(time.Until(deadline), 100*time.Millisecond)
		if wait <= 0 {
			return fmt.Errorf("still running: %w", context.DeadlineExceeded)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(wait.Milliseconds())+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll pidfd: %w", err)
		}
		if n > 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// pollExit waits, checking /proc every 10ms, until pid has exited or is gone.
func pollExit(ctx context.Context, pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !exitedOrGone(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d still running: %w", pid, context.DeadlineExceeded)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// exitedOrGone reports whether pid no longer exists or is a zombie (exited, not reaped).
func exitedOrGone(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// descendants lists the PIDs whose ancestry leads to root (excluding root), from /proc.
func descendants(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid := parentPID(pid); ppid > 0 {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// parentPID reads the PPid of pid from /proc/<pid>/stat (0 if unknown).
func parentPID(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name is in parentheses and may contain spaces: parse after the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// killTree sends SIGKILL to pid and all its descendants. The descendants are stopped first
// so that none can fork away between listing and killing.
func killTree(pid int) {
	_ = unix.Kill(pid, unix.SIGSTOP)
	kids := descendants(pid)
	for _, c := range kids {
		_ = unix.Kill(c, unix.SIGSTOP)
	}
	// Pick up anything forked before the stops landed.
	kids = append(kids, descendants(pid)...)
	_ = unix.Kill(pid, unix.SIGKILL)
	for _, c := range kids {
		_ = unix.Kill(c, unix.SIGKILL)
	}
}
