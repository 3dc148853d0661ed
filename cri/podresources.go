package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/oci"
)

// UpdatePodSandboxResources records the pod-level resources and overhead kubelet sends after resizing a pod's
// cgroup (in-place pod resize, KEP-1287); PodSandboxStatus(verbose) reports them under "podResources". noded
// owns no pod cgroup, so no cgroup is written (see sandbox.Manager.UpdateResources).
func (s *RuntimeServer) UpdatePodSandboxResources(ctx context.Context, req *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	id := req.GetPodSandboxId()
	if id == "" {
		return nil, errdefs.InvalidArgument("pod sandbox id is required")
	}
	for what, r := range map[string]*runtimeapi.LinuxContainerResources{"resources": req.GetResources(), "overhead": req.GetOverhead()} {
		if r == nil {
			continue
		}
		if _, err := oci.Resources(r); err != nil {
			return nil, errdefs.InvalidArgument("pod %s: %v", what, err)
		}
	}
	sb, err := s.Store.Sandbox(id)
	if err != nil {
		return nil, err
	}
	unlock := s.Sandboxes.Lock(sb.ID)
	defer unlock()
	if err := s.Sandboxes.UpdateResources(sb.ID, req.GetOverhead(), req.GetResources()); err != nil {
		return nil, err
	}
	return &runtimeapi.UpdatePodSandboxResourcesResponse{}, nil
}
