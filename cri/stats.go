package cri

import (
	"context"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStats returns the stats of one container; an unknown container is NotFound, an empty ID
// InvalidArgument (from the backend, so that a noded without stats answers Unimplemented first).
func (s *RuntimeServer) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	st, err := s.Stats.ContainerStats(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatsResponse{Stats: st}, nil
}

// ListContainerStats returns the stats of the running and created containers matching the filter.
func (s *RuntimeServer) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	list, err := s.Stats.ListContainerStats(ctx, req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: list}, nil
}

// StreamContainerStats is ListContainerStats in chunks.
func (s *RuntimeServer) StreamContainerStats(req *runtimeapi.StreamContainerStatsRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamContainerStatsResponse]) error {
	list, err := s.Stats.ListContainerStats(stream.Context(), req.GetFilter())
	if err != nil {
		return err
	}
	return chunks(list, func(items []*runtimeapi.ContainerStats) error {
		return stream.Send(&runtimeapi.StreamContainerStatsResponse{ContainerStats: items})
	})
}

// PodSandboxStats returns the stats of one pod sandbox; an unknown sandbox is NotFound, an empty ID
// InvalidArgument (from the backend, as for ContainerStats). kubelet in CRI-stats mode (PodAndContainerStatsFromCRI) probes with an empty ID once at start
// and falls back to cAdvisor only on Unimplemented (which a noded without stats, StatsUnavailable, answers): any other error means
// "supported". containerd 2.4 answers that probe with an untyped error (Unknown, "prefix can't be empty"); noded
// keeps the clearer InvalidArgument, which kubelet treats the same way.
func (s *RuntimeServer) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	st, err := s.Stats.PodSandboxStats(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: st}, nil
}

// ListPodSandboxStats returns the stats of the ready pod sandboxes matching the filter.
func (s *RuntimeServer) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	list, err := s.Stats.ListPodSandboxStats(ctx, req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: list}, nil
}

// StreamPodSandboxStats is ListPodSandboxStats in chunks.
func (s *RuntimeServer) StreamPodSandboxStats(req *runtimeapi.StreamPodSandboxStatsRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxStatsResponse]) error {
	list, err := s.Stats.ListPodSandboxStats(stream.Context(), req.GetFilter())
	if err != nil {
		return err
	}
	return chunks(list, func(items []*runtimeapi.PodSandboxStats) error {
		return stream.Send(&runtimeapi.StreamPodSandboxStatsResponse{PodSandboxStats: items})
	})
}

// ListMetricDescriptors describes the metrics ListPodSandboxMetrics returns.
func (s *RuntimeServer) ListMetricDescriptors(ctx context.Context, req *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	descs, err := s.Stats.ListMetricDescriptors(ctx)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListMetricDescriptorsResponse{Descriptors: descs}, nil
}

// ListPodSandboxMetrics returns the metrics of every ready pod sandbox and its running containers.
func (s *RuntimeServer) ListPodSandboxMetrics(ctx context.Context, req *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	list, err := s.Stats.ListPodSandboxMetrics(ctx)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListPodSandboxMetricsResponse{PodMetrics: list}, nil
}

// StreamPodSandboxMetrics is ListPodSandboxMetrics in chunks.
func (s *RuntimeServer) StreamPodSandboxMetrics(req *runtimeapi.StreamPodSandboxMetricsRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxMetricsResponse]) error {
	list, err := s.Stats.ListPodSandboxMetrics(stream.Context())
	if err != nil {
		return err
	}
	return chunks(list, func(items []*runtimeapi.PodSandboxMetrics) error {
		return stream.Send(&runtimeapi.StreamPodSandboxMetricsResponse{PodSandboxMetrics: items})
	})
}
