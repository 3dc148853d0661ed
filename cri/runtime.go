// Package cri holds noded's gRPC services of the CRI: thin handlers that validate, translate and call the packages
// that do the work. One file per RPC group.
package cri

import (
	"context"
	"encoding/json"
	"sync"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/cgroupsv2"
)

// Runtime identity reported by Version.
const (
	RuntimeName       = "noded"
	RuntimeAPIVersion = "v1"
	kubeAPIVersion    = "0.1.0"
)

// HandlerFeatures is what one runtime handler supports, reported in Status.
type HandlerFeatures struct {
	Name              string
	RecursiveReadOnly bool
	UserNamespaces    bool
}

// Info is the static and live facts the runtime RPCs report.
type Info struct {
	Version      string
	CgroupDriver string // cgroupsv2.DriverSystemd or DriverCgroupfs
	// Hugetlb is whether hugepage limits can be applied (Status verbose info["hugetlb"], as JSON).
	Hugetlb cgroupsv2.Hugetlb
	// RuntimeReady returns nil when the default OCI runtime can run containers.
	RuntimeReady func(ctx context.Context) error
	// NetworkReady returns nil when pod networking (CNI) is usable.
	NetworkReady func(ctx context.Context) error
	// Handlers lists the runtime handlers and their features.
	Handlers func(ctx context.Context) []HandlerFeatures
}

// RuntimeServer implements the CRI RuntimeService. Its RPC groups live in files of their own.
type RuntimeServer struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	info Info
	*Backends

	mu      sync.Mutex
	podCIDR string
}

// NewRuntimeServer returns a RuntimeService with the given facts and backends.
func NewRuntimeServer(info Info, b *Backends) *RuntimeServer {
	if b == nil {
		b = &Backends{}
	}
	return &RuntimeServer{info: info, Backends: b}
}

// Version reports noded's name and versions.
func (s *RuntimeServer) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           kubeAPIVersion,
		RuntimeName:       RuntimeName,
		RuntimeVersion:    s.info.Version,
		RuntimeApiVersion: RuntimeAPIVersion,
	}, nil
}

// Status reports whether the runtime and the network are ready, computed for real on each call.
func (s *RuntimeServer) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	cond := func(typ string, check func(context.Context) error, reason string) *runtimeapi.RuntimeCondition {
		c := &runtimeapi.RuntimeCondition{Type: typ, Status: true}
		if check == nil {
			c.Status, c.Reason, c.Message = false, reason, "no readiness check configured"
			return c
		}
		if err := check(ctx); err != nil {
			c.Status, c.Reason, c.Message = false, reason, err.Error()
		}
		return c
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			cond(runtimeapi.RuntimeReady, s.info.RuntimeReady, "OCIRuntimeNotReady"),
			cond(runtimeapi.NetworkReady, s.info.NetworkReady, "NetworkPluginNotReady"),
		}},
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	if s.info.Handlers != nil {
		for _, h := range s.info.Handlers(ctx) {
			resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtimeapi.RuntimeHandler{
				Name: h.Name,
				Features: &runtimeapi.RuntimeHandlerFeatures{
					RecursiveReadOnlyMounts: h.RecursiveReadOnly,
					UserNamespaces:          h.UserNamespaces,
				},
			})
		}
	}
	if req.GetVerbose() {
		resp.Info = map[string]string{"cgroupDriver": s.info.CgroupDriver, "podCIDR": s.PodCIDR()}
		if b, err := json.Marshal(s.info.Hugetlb); err == nil {
			resp.Info["hugetlb"] = string(b)
		}
	}
	return resp, nil
}

// RuntimeConfig reports the cgroup driver in use, so kubelet can match it.
func (s *RuntimeServer) RuntimeConfig(ctx context.Context, req *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	driver := runtimeapi.CgroupDriver_CGROUPFS
	if s.info.CgroupDriver == cgroupsv2.DriverSystemd {
		driver = runtimeapi.CgroupDriver_SYSTEMD
	}
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: driver}}, nil
}

// UpdateRuntimeConfig records the pod CIDR kubelet assigns to the node.
func (s *RuntimeServer) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if cidr != "" {
		if err := validateCIDRs(cidr); err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.podCIDR = cidr
		s.mu.Unlock()
	}
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

// PodCIDR returns the pod CIDR last set by UpdateRuntimeConfig.
func (s *RuntimeServer) PodCIDR() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.podCIDR
}
