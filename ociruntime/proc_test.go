package ociruntime

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// WaitPidfd times out and ends with its context while the process runs, and returns once it has exited (a zombie
// not reaped yet counts).
func TestWaitPidfd(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	defer unix.Close(fd)
	if err := WaitPidfd(context.Background(), fd, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait for a running process: %v, want a deadline error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WaitPidfd(ctx, fd, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait with an ended context: %v, want context.Canceled", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := WaitPidfd(context.Background(), fd, 10*time.Second); err != nil {
		t.Fatalf("wait for a killed process: %v", err)
	}
}
