package cri

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/store"
)

// StreamServer hands out the URLs of the streaming server (package streaming) that serves exec, attach and
// port-forward sessions.
type StreamServer interface {
	GetExec(*runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error)
	GetAttach(*runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error)
	GetPortForward(*runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error)
}

// runningContainer resolves id (or a unique prefix) to a running container.
func (s *RuntimeServer) runningContainer(id string) (store.Container, error) {
	if id == "" {
		return store.Container{}, errdefs.InvalidArgument("container id is required")
	}
	c, err := s.Store.Container(id)
	if err != nil {
		return c, err
	}
	if c.State != store.ContainerRunning {
		return c, errdefs.FailedPrecondition("container %s is not running (%s)", c.ID, c.State)
	}
	return c, nil
}

// validateStdio checks the stream flags of an exec or attach: a terminal merges stderr into stdout, and
// without one the client must want some output.
func validateStdio(tty, stdout, stderr bool) error {
	if tty && stderr {
		return errdefs.InvalidArgument("tty and stderr cannot both be requested: a terminal has one output stream")
	}
	if !tty && !stdout && !stderr {
		return errdefs.InvalidArgument("one of stdout and stderr must be requested")
	}
	return nil
}

// Exec returns the URL of a streaming exec session in a running container.
func (s *RuntimeServer) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if len(req.GetCmd()) == 0 {
		return nil, errdefs.InvalidArgument("exec command must not be empty")
	}
	if err := validateStdio(req.GetTty(), req.GetStdout(), req.GetStderr()); err != nil {
		return nil, err
	}
	c, err := s.runningContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	r := proto.Clone(req).(*runtimeapi.ExecRequest)
	r.ContainerId = c.ID
	return s.Streams.GetExec(r)
}

// Attach returns the URL of a streaming attach session to a running container.
func (s *RuntimeServer) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if err := validateStdio(req.GetTty(), req.GetStdout(), req.GetStderr()); err != nil {
		return nil, err
	}
	c, err := s.runningContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if req.GetStdin() && !c.Config.GetStdin() {
		return nil, errdefs.FailedPrecondition("container %s was not created with stdin", c.ID)
	}
	r := proto.Clone(req).(*runtimeapi.AttachRequest)
	r.ContainerId = c.ID
	return s.Streams.GetAttach(r)
}

// PortForward returns the URL of a streaming port-forward session to a ready pod sandbox.
func (s *RuntimeServer) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, errdefs.InvalidArgument("pod sandbox id is required")
	}
	for _, p := range req.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, errdefs.InvalidArgument("port %d out of range", p)
		}
	}
	sb, err := s.Store.Sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if sb.State != store.SandboxReady {
		return nil, errdefs.FailedPrecondition("pod sandbox %s is not ready (%s)", sb.ID, sb.State)
	}
	r := proto.Clone(req).(*runtimeapi.PortForwardRequest)
	r.PodSandboxId = sb.ID
	return s.Streams.GetPortForward(r)
}
