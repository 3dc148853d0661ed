package container

import (
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// mergeResources returns stored updated with the fields upd sets, as containerd does for UpdateContainerResources:
// kubelet's CPU manager sends cpuset-only updates, and its resize logic reads cpu and memory back from
// ContainerStatus.resources. A field at its zero value is "not set" (the CRI message has no presence), so it keeps
// the stored value; hugepage limits merge by page size and unified entries by key.
func mergeResources(stored, upd *runtimeapi.LinuxContainerResources) *runtimeapi.LinuxContainerResources {
	out := &runtimeapi.LinuxContainerResources{}
	if stored != nil {
		out = proto.Clone(stored).(*runtimeapi.LinuxContainerResources)
	}
	if upd == nil {
		return out
	}
	setInt := func(dst *int64, v int64) {
		if v != 0 {
			*dst = v
		}
	}
	setInt(&out.CpuPeriod, upd.GetCpuPeriod())
	setInt(&out.CpuQuota, upd.GetCpuQuota())
	setInt(&out.CpuShares, upd.GetCpuShares())
	setInt(&out.MemoryLimitInBytes, upd.GetMemoryLimitInBytes())
	setInt(&out.OomScoreAdj, upd.GetOomScoreAdj())
	setInt(&out.MemorySwapLimitInBytes, upd.GetMemorySwapLimitInBytes())
	if v := upd.GetCpusetCpus(); v != "" {
		out.CpusetCpus = v
	}
	if v := upd.GetCpusetMems(); v != "" {
		out.CpusetMems = v
	}
	for _, h := range upd.GetHugepageLimits() {
		i := slices.IndexFunc(out.HugepageLimits, func(x *runtimeapi.HugepageLimit) bool { return x.GetPageSize() == h.GetPageSize() })
		if i >= 0 {
			out.HugepageLimits[i] = proto.Clone(h).(*runtimeapi.HugepageLimit)
		} else {
			out.HugepageLimits = append(out.HugepageLimits, proto.Clone(h).(*runtimeapi.HugepageLimit))
		}
	}
	if len(upd.GetUnified()) > 0 {
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		maps.Copy(out.Unified, upd.GetUnified())
	}
	return out
}
