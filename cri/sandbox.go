package cri

import (
	"context"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/container"
	"github.com/noded/noded/errdefs"
)

// RunPodSandbox creates and starts a pod sandbox.
func (s *RuntimeServer) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	if req.GetConfig() == nil {
		return nil, errdefs.InvalidArgument("sandbox config is required")
	}
	release, err := s.Starts.acquire(ctx, "RunPodSandbox")
	if err != nil {
		return nil, err
	}
	defer release()
	id, err := s.Sandboxes.Run(ctx, req.GetConfig(), req.GetRuntimeHandler())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

// StopPodSandbox stops the pod's containers and tears down its network. Unknown IDs succeed.
func (s *RuntimeServer) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	if err := s.Pods.Stop(ctx, req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox stops the pod if needed, removes its containers and everything of the sandbox. Unknown IDs
// succeed.
func (s *RuntimeServer) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	if err := s.Pods.Remove(ctx, req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// PodSandboxStatus returns the status of a sandbox and of its containers.
func (s *RuntimeServer) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	st, info, err := s.Sandboxes.Status(req.GetPodSandboxId(), req.GetVerbose())
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st, Info: info, Timestamp: time.Now().UnixNano()}
	for _, c := range s.Store.Containers(st.Id) {
		resp.ContainersStatuses = append(resp.ContainersStatuses, container.ToStatus(&c))
	}
	return resp, nil
}

// ListPodSandbox lists sandboxes matching the filter.
func (s *RuntimeServer) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	return &runtimeapi.ListPodSandboxResponse{Items: s.Sandboxes.List(req.GetFilter())}, nil
}

// StreamPodSandboxes is ListPodSandbox in chunks.
func (s *RuntimeServer) StreamPodSandboxes(req *runtimeapi.StreamPodSandboxesRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxesResponse]) error {
	return chunks(s.Sandboxes.List(req.GetFilter()), func(items []*runtimeapi.PodSandbox) error {
		return stream.Send(&runtimeapi.StreamPodSandboxesResponse{PodSandboxes: items})
	})
}
