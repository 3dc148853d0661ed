package stats

import (
	"context"
	"sort"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/store"
)

// Label keys of the metrics, named as cAdvisor names them so kubelet's /metrics/cadvisor keeps its shape: the
// container's name, its cgroup ("id"), image, runtime ID ("name"), and its pod's namespace and name.
var (
	baseLabels    = []string{"container", "id", "image", "name", "namespace", "pod"}
	ifaceLabels   = sortedWith(baseLabels, "interface")
	failureLabels = sortedWith(baseLabels, "failure_type", "scope")
	deviceLabels  = sortedWith(baseLabels, "device")
)

func sortedWith(base []string, extra ...string) []string {
	out := append(append([]string(nil), base...), extra...)
	sort.Strings(out)
	return out
}

type metricDesc struct {
	name, help string
	labels     []string
	typ        runtimeapi.MetricType
}

// Names of the metrics noded reports.
const (
	mCPUUsage       = "container_cpu_usage_seconds_total"
	mCPUUser        = "container_cpu_user_seconds_total"
	mCPUSystem      = "container_cpu_system_seconds_total"
	mMemUsage       = "container_memory_usage_bytes"
	mMemWorkingSet  = "container_memory_working_set_bytes"
	mMemRSS         = "container_memory_rss"
	mMemCache       = "container_memory_cache"
	mMemSwap        = "container_memory_swap"
	mMemFailures    = "container_memory_failures_total"
	mMemLimit       = "container_spec_memory_limit_bytes"
	mCPUPeriod      = "container_spec_cpu_period"
	mCPUQuota       = "container_spec_cpu_quota"
	mCPUShares      = "container_spec_cpu_shares"
	mProcesses      = "container_processes"
	mStartTime      = "container_start_time_seconds"
	mFsUsage        = "container_fs_usage_bytes"
	mNetRxBytes     = "container_network_receive_bytes_total"
	mNetRxPackets   = "container_network_receive_packets_total"
	mNetRxErrors    = "container_network_receive_errors_total"
	mNetRxDropped   = "container_network_receive_packets_dropped_total"
	mNetTxBytes     = "container_network_transmit_bytes_total"
	mNetTxPackets   = "container_network_transmit_packets_total"
	mNetTxErrors    = "container_network_transmit_errors_total"
	mNetTxDropped   = "container_network_transmit_packets_dropped_total"
	counter, gauge  = runtimeapi.MetricType_COUNTER, runtimeapi.MetricType_GAUGE
	podMetricsOwner = "POD" // the container label of pod-level (network) metrics, as for cAdvisor's pause container
)

var descriptors = []metricDesc{
	{mCPUUsage, "Cumulative cpu time consumed in seconds.", baseLabels, counter},
	{mCPUUser, "Cumulative user cpu time consumed in seconds.", baseLabels, counter},
	{mCPUSystem, "Cumulative system cpu time consumed in seconds.", baseLabels, counter},
	{mMemUsage, "Current memory usage in bytes, including all memory regardless of when it was accessed.", baseLabels, gauge},
	{mMemWorkingSet, "Current working set in bytes.", baseLabels, gauge},
	{mMemRSS, "Size of RSS in bytes.", baseLabels, gauge},
	{mMemCache, "Number of bytes of page cache memory.", baseLabels, gauge},
	{mMemSwap, "Container swap usage in bytes.", baseLabels, gauge},
	{mMemFailures, "Cumulative count of memory allocation failures.", failureLabels, counter},
	{mMemLimit, "Memory limit for the container.", baseLabels, gauge},
	{mCPUPeriod, "CPU period of the container.", baseLabels, gauge},
	{mCPUQuota, "CPU quota of the container.", baseLabels, gauge},
	{mCPUShares, "CPU share of the container.", baseLabels, gauge},
	{mProcesses, "Number of processes running inside the container.", baseLabels, gauge},
	{mStartTime, "Start time of the container since unix epoch in seconds.", baseLabels, gauge},
	{mFsUsage, "Number of bytes that are consumed by the container on this filesystem.", deviceLabels, gauge},
	{mNetRxBytes, "Cumulative count of bytes received.", ifaceLabels, counter},
	{mNetRxPackets, "Cumulative count of packets received.", ifaceLabels, counter},
	{mNetRxErrors, "Cumulative count of errors encountered while receiving.", ifaceLabels, counter},
	{mNetRxDropped, "Cumulative count of packets dropped while receiving.", ifaceLabels, counter},
	{mNetTxBytes, "Cumulative count of bytes transmitted.", ifaceLabels, counter},
	{mNetTxPackets, "Cumulative count of packets transmitted.", ifaceLabels, counter},
	{mNetTxErrors, "Cumulative count of errors encountered while transmitting.", ifaceLabels, counter},
	{mNetTxDropped, "Cumulative count of packets dropped while transmitting.", ifaceLabels, counter},
}

var descByName = func() map[string]*metricDesc {
	m := make(map[string]*metricDesc, len(descriptors))
	for i := range descriptors {
		m[descriptors[i].name] = &descriptors[i]
	}
	return m
}()

// ListMetricDescriptors describes every metric ListPodSandboxMetrics returns. The list is fixed and the error
// always nil (the signature is the one of cri.StatsBackend, whose implementations may have no metrics).
func (p *Provider) ListMetricDescriptors(context.Context) ([]*runtimeapi.MetricDescriptor, error) {
	out := make([]*runtimeapi.MetricDescriptor, 0, len(descriptors))
	for _, d := range descriptors {
		out = append(out, &runtimeapi.MetricDescriptor{Name: d.name, Help: d.help, LabelKeys: append([]string(nil), d.labels...)})
	}
	return out, nil
}

// metricSet builds the metrics of one owner (a container or a pod) whose base label values are fixed.
type metricSet struct {
	base map[string]string
	// ts is the time the values were sampled (Unix ns), 0 when they are read on demand for this call.
	ts  int64
	out []*runtimeapi.Metric
}

// add appends metric name with value; extra holds the values of the labels beyond the base ones.
func (s *metricSet) add(name string, value uint64, extra ...string) {
	d := descByName[name]
	vals := make([]string, len(d.labels))
	for i, k := range d.labels {
		if v, ok := s.base[k]; ok {
			vals[i] = v
			continue
		}
		for j := 0; j+1 < len(extra); j += 2 {
			if extra[j] == k {
				vals[i] = extra[j+1]
			}
		}
	}
	// kubelet exports a metric with a non-zero timestamp as sampled then; 0 says read now.
	s.out = append(s.out, &runtimeapi.Metric{Timestamp: s.ts, Name: name, MetricType: d.typ, LabelValues: vals, Value: u64(value)})
}

// ListPodSandboxMetrics returns the metrics of every ready pod sandbox: its network counters per interface and the
// CPU, memory, process and filesystem metrics of its running containers.
func (p *Provider) ListPodSandboxMetrics(ctx context.Context) ([]*runtimeapi.PodSandboxMetrics, error) {
	p.maybePrune(false)
	var out []*runtimeapi.PodSandboxMetrics
	err := p.eachReadyPod(ctx, func(*store.Sandbox) bool { return true }, func(r podReading) {
		out = append(out, p.podMetrics(r))
	})
	return out, err
}

func (p *Provider) podMetrics(r podReading) *runtimeapi.PodSandboxMetrics {
	sb := r.sb
	md := sb.Config.GetMetadata()
	pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: sb.ID}
	podSet := metricSet{base: map[string]string{
		"container": podMetricsOwner, "id": r.cgroup, "image": "", "name": sb.ID,
		"namespace": md.GetNamespace(), "pod": md.GetName(),
	}}
	for _, d := range r.net {
		if d.Name == "lo" {
			continue
		}
		for _, m := range []struct {
			name string
			v    uint64
		}{
			{mNetRxBytes, d.RxBytes}, {mNetRxPackets, d.RxPackets}, {mNetRxErrors, d.RxErrors}, {mNetRxDropped, d.RxDropped},
			{mNetTxBytes, d.TxBytes}, {mNetTxPackets, d.TxPackets}, {mNetTxErrors, d.TxErrors}, {mNetTxDropped, d.TxDropped},
		} {
			podSet.add(m.name, m.v, "interface", d.Name)
		}
	}
	pm.Metrics = podSet.out
	for _, cr := range r.containers {
		if cr.cg == nil {
			continue // only running containers have metrics
		}
		pm.ContainerMetrics = append(pm.ContainerMetrics, &runtimeapi.ContainerMetrics{
			ContainerId: cr.c.ID, Metrics: p.containerMetrics(cr, md),
		})
	}
	return pm
}

func (p *Provider) containerMetrics(r reading, pod *runtimeapi.PodSandboxMetadata) []*runtimeapi.Metric {
	c, s := r.c, r.cg
	id, _ := p.containerCgroup(c)
	set := metricSet{base: map[string]string{
		"container": c.Config.GetMetadata().GetName(), "id": id, "image": c.ImageName, "name": c.ID,
		"namespace": pod.GetNamespace(), "pod": pod.GetName(),
	}}
	if p.collecting() {
		// Served from the collection's sample, possibly a period old: its timestamp says when it was taken.
		set.ts = r.ts.UnixNano()
	}
	const second = 1e9
	set.add(mCPUUsage, s.CPU.UsageNanos/second)
	set.add(mCPUUser, s.CPU.UserNanos/second)
	set.add(mCPUSystem, s.CPU.SystemNanos/second)
	set.add(mMemUsage, s.Memory.Usage)
	set.add(mMemWorkingSet, s.Memory.WorkingSet)
	set.add(mMemRSS, s.Memory.RSS)
	set.add(mMemCache, s.Memory.Cache)
	if s.Memory.HasSwap {
		set.add(mMemSwap, s.Memory.SwapUsage)
	}
	set.add(mMemFailures, s.Memory.PageFaults, "failure_type", "pgfault", "scope", "container")
	set.add(mMemFailures, s.Memory.MajorFaults, "failure_type", "pgmajfault", "scope", "container")
	set.add(mMemLimit, s.Memory.Limit)
	if res := resources(c); res != nil {
		set.add(mCPUPeriod, uint64(max(res.CpuPeriod, 0)))
		set.add(mCPUQuota, uint64(max(res.CpuQuota, 0)))
		set.add(mCPUShares, uint64(max(res.CpuShares, 0)))
	}
	set.add(mProcesses, s.Pids.Current)
	if c.StartedAt > 0 {
		set.add(mStartTime, uint64(c.StartedAt/second))
	}
	if r.layer != nil {
		set.add(mFsUsage, uint64(max(r.layer.u.Size, 0)), "device", p.cfg.SnapshotRoot)
	}
	return set.out
}

// resources returns the container's current resources: the last update, else those it was created with.
func resources(c *store.Container) *runtimeapi.LinuxContainerResources {
	if len(c.ResourcesPB) > 0 {
		r := &runtimeapi.LinuxContainerResources{}
		if proto.Unmarshal(c.ResourcesPB, r) == nil {
			return r
		}
	}
	return c.Config.GetLinux().GetResources()
}
