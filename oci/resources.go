package oci

import (
	"maps"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

// Resources converts CRI container resources to OCI resources (without device rules); it serves both container
// creation and UpdateContainerResources (`runc update`). A nil input gives an empty, non-nil result.
func Resources(r *runtimeapi.LinuxContainerResources) (*specs.LinuxResources, error) {
	out := &specs.LinuxResources{}
	if r == nil {
		return out, nil
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"cpu_period", r.GetCpuPeriod()}, {"cpu_shares", r.GetCpuShares()},
		{"memory_limit_in_bytes", r.GetMemoryLimitInBytes()},
	} {
		if f.v < 0 {
			return nil, errdefs.InvalidArgument("resources.%s must not be negative, got %d", f.name, f.v)
		}
	}
	// kubelet sends -1 for Guaranteed containers with exclusive CPUs of the static CPU manager
	// (DisableCPUQuotaWithExclusiveCPUs); like 0 it means no quota. -1 is passed on, so that an update lifts a
	// quota set before ("max" on cgroup v2, -1 in cpu.cfs_quota_us on v1).
	if r.GetCpuQuota() < -1 {
		return nil, errdefs.InvalidArgument("resources.cpu_quota must be -1 (no quota), 0 (not set) or positive, got %d", r.GetCpuQuota())
	}
	if r.GetMemorySwapLimitInBytes() < -1 {
		return nil, errdefs.InvalidArgument("resources.memory_swap_limit_in_bytes must be >= -1, got %d", r.GetMemorySwapLimitInBytes())
	}

	cpu := &specs.LinuxCPU{Cpus: r.GetCpusetCpus(), Mems: r.GetCpusetMems()}
	if v := r.GetCpuShares(); v > 0 {
		u := uint64(v)
		cpu.Shares = &u
	}
	if v := r.GetCpuQuota(); v != 0 {
		cpu.Quota = &v
	}
	if v := r.GetCpuPeriod(); v > 0 {
		u := uint64(v)
		cpu.Period = &u
	}
	if cpu.Shares != nil || cpu.Quota != nil || cpu.Period != nil || cpu.Cpus != "" || cpu.Mems != "" {
		out.CPU = cpu
	}

	mem := &specs.LinuxMemory{}
	if v := r.GetMemoryLimitInBytes(); v > 0 {
		mem.Limit = &v
	}
	if v := r.GetMemorySwapLimitInBytes(); v != 0 {
		mem.Swap = &v
	}
	if mem.Limit != nil || mem.Swap != nil {
		out.Memory = mem
	}

	for i, h := range r.GetHugepageLimits() {
		size := h.GetPageSize()
		if size == "" || strings.ContainsAny(size, "/. ") {
			return nil, errdefs.InvalidArgument("resources.hugepage_limits[%d]: invalid page_size %q", i, size)
		}
		out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: size, Limit: h.GetLimit()})
	}
	if u := r.GetUnified(); len(u) > 0 {
		for k := range u {
			if k == "" || strings.ContainsAny(k, "/") || strings.HasPrefix(k, ".") {
				return nil, errdefs.InvalidArgument("resources.unified: invalid key %q", k)
			}
		}
		out.Unified = maps.Clone(u)
	}
	return out, nil
}

func applyResources(p Params, s *specs.Spec) error {
	r, err := Resources(p.Config.GetLinux().GetResources())
	if err != nil {
		return err
	}
	r.Devices = s.Linux.Resources.Devices
	if p.PidsLimit > 0 {
		limit := p.PidsLimit
		r.Pids = &specs.LinuxPids{Limit: &limit}
	}
	s.Linux.Resources = r
	return nil
}

// namespacedSysctl reports which namespace a sysctl belongs to ("" if it is not namespaced).
func namespacedSysctl(name string) specs.LinuxNamespaceType {
	switch {
	case name == "kernel.sem", name == "kernel.shm_rmid_forced",
		strings.HasPrefix(name, "kernel.shm") && !strings.Contains(name[len("kernel.shm"):], "."),
		strings.HasPrefix(name, "kernel.msg") && !strings.Contains(name[len("kernel.msg"):], "."),
		strings.HasPrefix(name, "fs.mqueue."):
		return specs.IPCNamespace
	case strings.HasPrefix(name, "net."):
		return specs.NetworkNamespace
	}
	return ""
}

// sysctls applies the pod's sysctls. Only namespaced ones are allowed, and only when the container has its own
// namespace of that kind (not the host's).
func sysctls(p Params, s *specs.Spec) error {
	in := p.SandboxConfig.GetLinux().GetSysctls()
	if len(in) == 0 {
		return nil
	}
	s.Linux.Sysctl = map[string]string{}
	for k, v := range in {
		name := k
		// kubelet accepts the slash form too (net/ipv4/ip_forward); dots then stand for slashes' dots.
		if strings.Contains(name, "/") {
			name = strings.NewReplacer("/", ".", ".", "/").Replace(name)
		}
		ns := namespacedSysctl(name)
		if ns == "" {
			return errdefs.InvalidArgument("sysctl %q is not namespaced and cannot be set for a pod", k)
		}
		if _, ok := p.Namespaces[ns]; !ok {
			return errdefs.InvalidArgument("sysctl %q needs a pod %s namespace, but the pod uses the host's", k, ns)
		}
		s.Linux.Sysctl[name] = v
	}
	return nil
}
