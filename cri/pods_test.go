package cri

import (
	"context"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

// podRecorder is a PodBackend that records what the RPCs delegate to it.
type podRecorder struct {
	calls []string
	err   error
}

func (p *podRecorder) Stop(_ context.Context, id string) error {
	p.calls = append(p.calls, "stop "+id)
	return p.err
}

func (p *podRecorder) Remove(_ context.Context, id string) error {
	p.calls = append(p.calls, "remove "+id)
	return p.err
}

func (p *podRecorder) CreateContainer(_ context.Context, podID string, cfg *runtimeapi.ContainerConfig) (string, error) {
	p.calls = append(p.calls, "create "+cfg.GetMetadata().GetName()+" in "+podID)
	return "ctr", p.err
}

// The pod-level RPCs translate and delegate to the pod service; they hold no orchestration of their own.
func TestPodRPCsDelegate(t *testing.T) {
	rec := &podRecorder{}
	s := newTestServer(t, Info{}, Backends{Pods: rec})
	ctx := context.Background()
	if _, err := s.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: "p"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: "p"}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: "p",
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "web"}}})
	if err != nil || resp.ContainerId != "ctr" {
		t.Fatalf("CreateContainer = %v, %v", resp, err)
	}
	if _, err := s.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: "p"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("CreateContainer without a config: %v, want InvalidArgument", err)
	}
	want := []string{"stop p", "remove p", "create web in p"}
	if len(rec.calls) != len(want) {
		t.Fatalf("calls %v, want %v", rec.calls, want)
	}
	for i := range want {
		if rec.calls[i] != want[i] {
			t.Fatalf("calls %v, want %v", rec.calls, want)
		}
	}
	rec.err = errdefs.NotFound("pod p")
	if _, err := s.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: "p"}); !errdefs.IsNotFound(err) {
		t.Fatalf("StopPodSandbox passes the domain's error on: %v", err)
	}
}
