package container

import (
	"context"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/ociruntime"
	"github.com/noded/noded/store"
)

// ProcessFor returns the process spec to exec cmd in container id: the container's own process
// (user, env, cwd, capabilities) with cmd as args and a terminal when tty is set.
func (m *Manager) ProcessFor(id string, cmd []string, tty bool) (*specs.Process, error) {
	c, err := m.cfg.Store.Container(id)
	if err != nil {
		return nil, err
	}
	return m.processFor(&c, cmd, tty)
}

// streamTarget returns a running container and its runtime, which must support interactive streams.
func (m *Manager) streamTarget(id string) (store.Container, ociruntime.Streamer, error) {
	c, err := m.cfg.Store.Container(id)
	if err != nil {
		return c, nil, err
	}
	if c.State != store.ContainerRunning {
		return c, nil, errdefs.FailedPrecondition("container %s is not running", c.ID)
	}
	rt, err := m.runtime(c.Runtime)
	if err != nil {
		return c, nil, err
	}
	s, ok := rt.(ociruntime.Streamer)
	if !ok {
		return c, nil, errdefs.FailedPrecondition("runtime %s of container %s does not support exec/attach streams", rt.Name(), c.ID)
	}
	return c, s, nil
}

// ExecStream runs cmd in the running container id, connected to stdio (a terminal session when
// tty is set), and returns its exit code. See ociruntime.Streamer.ExecStream.
func (m *Manager) ExecStream(ctx context.Context, id string, cmd []string, tty bool, stdio ociruntime.StreamIO) (int, error) {
	if len(cmd) == 0 {
		return -1, errdefs.InvalidArgument("exec command must not be empty")
	}
	c, rt, err := m.streamTarget(id)
	if err != nil {
		return -1, err
	}
	proc, err := m.processFor(&c, cmd, tty)
	if err != nil {
		return -1, err
	}
	return rt.ExecStream(ctx, c.ID, proc, stdio)
}

// AttachStream connects stdio to the running container's main process until it exits or ctx ends.
func (m *Manager) AttachStream(ctx context.Context, id string, stdio ociruntime.StreamIO) error {
	c, rt, err := m.streamTarget(id)
	if err != nil {
		return err
	}
	return rt.AttachStream(ctx, c.ID, stdio)
}
