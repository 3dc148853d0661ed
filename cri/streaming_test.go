package cri

import (
	"context"
	"errors"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/store"
)

// recordingStreams is a StreamServer that records what it was asked for.
type recordingStreams struct {
	exec   *runtimeapi.ExecRequest
	attach *runtimeapi.AttachRequest
	pf     *runtimeapi.PortForwardRequest
}

func (r *recordingStreams) GetExec(req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	r.exec = req
	return &runtimeapi.ExecResponse{Url: "http://streams/exec/x"}, nil
}

func (r *recordingStreams) GetAttach(req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	r.attach = req
	return &runtimeapi.AttachResponse{Url: "http://streams/attach/x"}, nil
}

func (r *recordingStreams) GetPortForward(req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	r.pf = req
	return &runtimeapi.PortForwardResponse{Url: "http://streams/portforward/x"}, nil
}

const (
	testPodID     = "aaaa1111pod"
	testRunningID = "bbbb2222running"
	testExitedID  = "cccc3333exited"
)

func newStreamingServer(t *testing.T) (*RuntimeServer, *recordingStreams) {
	t.Helper()
	st := testStore(t)
	if err := st.AddSandbox(&store.Sandbox{ID: testPodID, Name: "pod", State: store.SandboxReady,
		Config: &runtimeapi.PodSandboxConfig{}}); err != nil {
		t.Fatal(err)
	}
	for id, state := range map[string]store.ContainerState{testRunningID: store.ContainerRunning, testExitedID: store.ContainerExited} {
		if err := st.AddContainer(&store.Container{ID: id, SandboxID: testPodID, Name: id, State: state,
			Config: &runtimeapi.ContainerConfig{Stdin: id == testRunningID}}); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recordingStreams{}
	return newTestServer(t, Info{}, Backends{Store: st, Streams: rec}), rec
}

func TestExecRPC(t *testing.T) {
	s, rec := newStreamingServer(t)
	ctx := context.Background()
	// A unique prefix is resolved to the full ID before the URL is made.
	resp, err := s.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "bbbb", Cmd: []string{"sh"}, Stdout: true, Stderr: true})
	if err != nil || resp.Url != "http://streams/exec/x" || rec.exec.GetContainerId() != testRunningID {
		t.Fatalf("exec: %v %v %v", resp, err, rec.exec)
	}
	for name, tc := range map[string]struct {
		req  *runtimeapi.ExecRequest
		want func(error) bool
	}{
		"unknown container": {&runtimeapi.ExecRequest{ContainerId: "zzzz", Cmd: []string{"sh"}, Stdout: true}, errdefs.IsNotFound},
		"exited container":  {&runtimeapi.ExecRequest{ContainerId: testExitedID, Cmd: []string{"sh"}, Stdout: true}, isFailedPrecondition},
		"empty command":     {&runtimeapi.ExecRequest{ContainerId: testRunningID, Stdout: true}, errdefs.IsInvalidArgument},
		"no output":         {&runtimeapi.ExecRequest{ContainerId: testRunningID, Cmd: []string{"sh"}, Stdin: true}, errdefs.IsInvalidArgument},
		"tty with stderr":   {&runtimeapi.ExecRequest{ContainerId: testRunningID, Cmd: []string{"sh"}, Tty: true, Stdout: true, Stderr: true}, errdefs.IsInvalidArgument},
		"no container id":   {&runtimeapi.ExecRequest{Cmd: []string{"sh"}, Stdout: true}, errdefs.IsInvalidArgument},
	} {
		rec.exec = nil
		if _, err := s.Exec(ctx, tc.req); !tc.want(err) {
			t.Errorf("%s: err %v", name, err)
		}
		if rec.exec != nil {
			t.Errorf("%s: a URL was requested", name)
		}
	}
	// A terminal alone is enough output.
	if _, err := s.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: testRunningID, Cmd: []string{"sh"}, Tty: true}); err != nil {
		t.Errorf("tty only: %v", err)
	}
}

func TestAttachRPC(t *testing.T) {
	s, rec := newStreamingServer(t)
	ctx := context.Background()
	if _, err := s.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: "bbbb", Stdin: true, Stdout: true}); err != nil || rec.attach.GetContainerId() != testRunningID {
		t.Fatalf("attach: %v %v", err, rec.attach)
	}
	if _, err := s.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: testExitedID, Stdout: true}); !isFailedPrecondition(err) {
		t.Errorf("exited: %v", err)
	}
	if _, err := s.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: "zzzz", Stdout: true}); !errdefs.IsNotFound(err) {
		t.Errorf("unknown: %v", err)
	}
}

func TestPortForwardRPC(t *testing.T) {
	s, rec := newStreamingServer(t)
	ctx := context.Background()
	if _, err := s.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "aaaa", Port: []int32{80}}); err != nil || rec.pf.GetPodSandboxId() != testPodID {
		t.Fatalf("port-forward: %v %v", err, rec.pf)
	}
	if _, err := s.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "zzzz"}); !errdefs.IsNotFound(err) {
		t.Errorf("unknown pod: %v", err)
	}
	if _, err := s.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: testPodID, Port: []int32{70000}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad port: %v", err)
	}
}

func isFailedPrecondition(err error) bool { return errors.Is(err, errdefs.ErrFailedPrecondition) }
