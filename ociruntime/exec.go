package ociruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

// DefaultExecOutputLimit caps each output stream of ExecSync when no limit is given.
const DefaultExecOutputLimit = 16 << 20

// cappedBuffer keeps the first limit bytes written to it and drops the rest, so that the
// writer never blocks on a full pipe.
type cappedBuffer struct {
	buf       bytes.Buffer
	limit     int
	truncated bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	room := min(c.limit-c.buf.Len(), len(p))
	if room < len(p) {
		c.truncated = true
	}
	if room > 0 {
		c.buf.Write(p[:room])
	}
	return len(p), nil
}

// ExecSync runs `<runtime> exec --process <spec> --pid-file <file> <id>` and collects its output.
func (r *CLI) ExecSync(ctx context.Context, id string, proc *specs.Process, timeout time.Duration, outputLimit int) (*ExecResult, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if proc == nil || len(proc.Args) == 0 {
		return nil, errdefs.InvalidArgument("exec in %s: no command", id)
	}
	if proc.Terminal {
		return nil, errdefs.InvalidArgument("exec in %s: ExecSync does not support a terminal", id)
	}
	if outputLimit <= 0 {
		outputLimit = DefaultExecOutputLimit
	}
	dir, err := os.MkdirTemp(r.persistDir(id), "exec-")
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFound("exec in %s: container not created by this runtime", id)
	}
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}
	defer os.RemoveAll(dir)
	spec, err := json.Marshal(proc)
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}
	procFile, pidFile := filepath.Join(dir, "process.json"), filepath.Join(dir, "pid")
	if err := os.WriteFile(procFile, spec, 0o600); err != nil {
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}

	args := append(r.globalArgs(), "exec", "--process", procFile, "--pid-file", pidFile, id)
	cmd := exec.Command(r.cfg.Path, args...)
	stdout := &cappedBuffer{limit: outputLimit}
	stderr := &cappedBuffer{limit: outputLimit}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Own process group: on timeout the group is killed, catching the exec'd process even
	// before runc has written its pid file.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Something the process left behind may keep the pipes open; do not wait for it forever.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()

	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	var stopErr error
	var werr error
	select {
	case werr = <-waitErr:
	case <-deadline:
		stopErr = fmt.Errorf("exec in %s: %v after %s: %w", id, proc.Args, timeout, ErrExecTimeout)
	case <-ctx.Done():
		stopErr = fmt.Errorf("exec in %s: %w", id, ctx.Err())
	}
	if stopErr != nil {
		killExec(cmd.Process.Pid, pidFile, waitErr)
		return &ExecResult{
			Stdout: stdout.buf.Bytes(), Stderr: stderr.buf.Bytes(), ExitCode: -1,
			StdoutTruncated: stdout.truncated, StderrTruncated: stderr.truncated,
		}, stopErr
	}
	var exitErr *exec.ExitError
	if werr != nil && !errors.As(werr, &exitErr) && !errors.Is(werr, exec.ErrWaitDelay) {
		return nil, fmt.Errorf("exec in %s: %w", id, werr)
	}
	if _, err := os.Stat(pidFile); err != nil && werr != nil {
		// The process never started: the failure is the runtime's own.
		return nil, classify(fmt.Sprintf("%s exec %s", r.cfg.Name, id), runtimeMessage(stderr.buf.Bytes()), werr)
	}
	code := cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	return &ExecResult{
		Stdout: stdout.buf.Bytes(), Stderr: stderr.buf.Bytes(), ExitCode: code,
		StdoutTruncated: stdout.truncated, StderrTruncated: stderr.truncated,
	}, nil
}

// execReapGrace is how long the runtime gets to reap a killed exec process and exit by itself.
const execReapGrace = 2 * time.Second

// killExec kills the exec'd process with everything it spawned, lets the runtime (its parent) reap it and exit,
// and kills the runtime's process group only if it does not. Killing the runtime first would orphan the
// process: orphans of a process in the host PID namespace go to the host's init, not the container's. It
// returns once the runtime has been waited for (waited receives its exit).
func killExec(runtimePID int, pidFile string, waited <-chan error) {
	if pid, err := readPidFile(pidFile); err == nil {
		killTree(pid)
		select {
		case <-waited:
			_ = unix.Kill(-runtimePID, unix.SIGKILL) // stragglers of the runtime's group, if any
			return
		case <-time.After(execReapGrace):
		}
	}
	_ = unix.Kill(-runtimePID, unix.SIGKILL)
	<-waited
}
