package framework

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// child is a daemon the framework started (noded, kubelet): its output appended to a log file, its own process
// group (so a SIGINT to the test does not reach it before cleanup runs), and its exit observed once.
type child struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startChild starts args[0] with args[1:] and env added to the test's environment, writing to logPath.
func startChild(args, env []string, logPath string) (*child, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.exited) }()
	return c, nil
}

// pid is the process ID.
func (c *child) pid() int { return c.cmd.Process.Pid }

// state is the exit state, nil while it runs.
func (c *child) state() *os.ProcessState {
	select {
	case <-c.exited:
		return c.cmd.ProcessState
	default:
		return nil
	}
}

// running reports whether the process is alive; a nil child is not.
func (c *child) running() bool {
	if c == nil {
		return false
	}
	return c.state() == nil
}

// stop sends SIGTERM and waits for the exit, with SIGKILL after grace; it reports whether SIGTERM sufficed.
func (c *child) stop(grace time.Duration) bool {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return true
	case <-time.After(grace):
		c.kill()
		return false
	}
}

// kill sends SIGKILL and waits for the exit.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// wait waits up to timeout for the process to exit on its own and reports whether it did.
func (c *child) wait(timeout time.Duration) bool {
	select {
	case <-c.exited:
		return true
	case <-time.After(timeout):
		return false
	}
}
