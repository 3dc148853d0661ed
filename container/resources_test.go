package container

import (
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestMergeResources(t *testing.T) {
	stored := &runtimeapi.LinuxContainerResources{
		CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 1 << 28, OomScoreAdj: 900,
		CpusetCpus: "0-1", HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 0}},
		Unified: map[string]string{"memory.high": "100M"},
	}
	orig := proto.Clone(stored)

	// kubelet's CPU manager: a cpuset-only update keeps cpu and memory.
	got := mergeResources(stored, &runtimeapi.LinuxContainerResources{CpusetCpus: "1"})
	want := proto.Clone(stored).(*runtimeapi.LinuxContainerResources)
	want.CpusetCpus = "1"
	if !proto.Equal(got, want) {
		t.Errorf("cpuset-only update = %v, want %v", got, want)
	}
	if !proto.Equal(stored, orig) {
		t.Errorf("merge changed the stored resources: %v", stored)
	}

	// A resize: the fields set replace, hugepages by size, unified by key; the rest is kept.
	got = mergeResources(stored, &runtimeapi.LinuxContainerResources{
		CpuQuota: -1, MemoryLimitInBytes: 1 << 29, CpusetMems: "0",
		HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 2 << 20}, {PageSize: "1GB", Limit: 0}},
		Unified:        map[string]string{"memory.low": "10M"},
	})
	want = &runtimeapi.LinuxContainerResources{
		CpuPeriod: 100000, CpuQuota: -1, CpuShares: 512, MemoryLimitInBytes: 1 << 29, OomScoreAdj: 900,
		CpusetCpus: "0-1", CpusetMems: "0",
		HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 2 << 20}, {PageSize: "1GB", Limit: 0}},
		Unified:        map[string]string{"memory.high": "100M", "memory.low": "10M"},
	}
	if !proto.Equal(got, want) {
		t.Errorf("resize = %v, want %v", got, want)
	}

	if got := mergeResources(nil, &runtimeapi.LinuxContainerResources{CpuShares: 2}); got.GetCpuShares() != 2 {
		t.Errorf("nothing stored: %v", got)
	}
	if got := mergeResources(stored, nil); !proto.Equal(got, stored) {
		t.Errorf("nil update: %v", got)
	}
}
