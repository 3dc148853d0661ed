package stats

import (
	"context"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/store"
)

const podWant = cgstats.WantCPU | cgstats.WantMemory | cgstats.WantPids

// podReading is what was sampled of one pod.
type podReading struct {
	sb         *store.Sandbox
	ts         time.Time
	cgroup     string          // the pod cgroup the totals come from; "" when summed over containers
	total      *cgstats.Sample // pod totals; nil when the pod is not ready
	rate       *uint64         // CPU nanocores of the totals; nil when a part has no rate yet
	containers []reading
	net        []NetDev
	netTS      time.Time
}

// readPod samples a pod: its containers (running and created), its totals, and its network.
func (p *Provider) readPod(ctx context.Context, sb *store.Sandbox, ctrs []*store.Container, parents map[string]int) podReading {
	r := podReading{sb: sb, ts: p.cfg.Now()}
	if sb.State != store.SandboxReady {
		return r
	}
	var sum cgstats.Sample
	var rate uint64
	rated := true
	var newest time.Time
	for _, c := range ctrs {
		if !hasStats(c.State) {
			continue
		}
		cr, err := p.read(ctx, c, podWant)
		if err != nil {
			klog.V(2).InfoS("container stats unavailable", "containerID", c.ID, "err", err)
		}
		r.containers = append(r.containers, cr)
		if cr.cg != nil {
			addSample(&sum, cr.cg)
			if cr.rate != nil {
				rate += *cr.rate
			} else {
				rated = false
			}
			if cr.ts.After(newest) {
				newest = cr.ts
			}
		}
	}
	// Summed over the containers, the totals are as of the newest container sample, and their rate is the sum
	// of the containers' rates.
	r.total = &sum
	if rated {
		r.rate = &rate
	}
	if !newest.IsZero() {
		r.ts = newest
	}
	// The pod's own cgroup also counts what left containers charged and is exact; use it when it is the pod's.
	if ownCgroup(sb, parents) {
		if path, err := p.podCgroup(sb); err == nil {
			// Not older than its containers' samples (one may have been read after the pod's kept sample, by a
			// call, when its own was not servable): the pod's totals hold their usage, and would otherwise report
			// less CPU than one of its containers.
			if s, err := p.sampleCgroup("p/"+sb.ID, path, podWant, newest); err == nil {
				r.total, r.cgroup, r.rate, r.ts = s.cg, path, s.rate, s.ts
			}
		}
	}
	if ns := sb.Namespaces["net"]; ns != "" && !sb.HostNetwork {
		r.netTS = p.cfg.Now()
		devs, err := p.cfg.Network(ns)
		if err != nil {
			klog.V(2).InfoS("pod network stats unavailable", "podSandboxID", sb.ID, "err", err)
		}
		r.net = devs
	}
	return r
}

func addSample(sum, s *cgstats.Sample) {
	sum.CPU.UsageNanos += s.CPU.UsageNanos
	sum.CPU.UserNanos += s.CPU.UserNanos
	sum.CPU.SystemNanos += s.CPU.SystemNanos
	m, n := &sum.Memory, &s.Memory
	m.Usage += n.Usage
	m.WorkingSet += n.WorkingSet
	m.RSS += n.RSS
	m.Cache += n.Cache
	m.InactiveFile += n.InactiveFile
	m.PageFaults += n.PageFaults
	m.MajorFaults += n.MajorFaults
	m.SwapUsage += n.SwapUsage
	m.HasSwap = m.HasSwap || n.HasSwap
	sum.Pids.Current += s.Pids.Current
	sum.IO.ReadBytes += s.IO.ReadBytes
	sum.IO.WriteBytes += s.IO.WriteBytes
}

// PodSandboxStats returns the stats of one pod sandbox; an unknown one is NotFound. A pod that is not ready has
// its attributes only.
func (p *Provider) PodSandboxStats(ctx context.Context, id string) (*runtimeapi.PodSandboxStats, error) {
	sb, err := p.cfg.Store.Sandbox(id)
	if err != nil {
		return nil, err
	}
	p.maybePrune(false)
	return p.podToCRI(p.readPod(ctx, &sb, p.cfg.Store.ContainerRecords(sb.ID), countParents(p.cfg.Store.SandboxRecords()))), nil
}

// ListPodSandboxStats returns the stats of the ready pod sandboxes matching filter (ID prefix, labels).
func (p *Provider) ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	p.maybePrune(false)
	var out []*runtimeapi.PodSandboxStats
	err := p.eachReadyPod(ctx, func(sb *store.Sandbox) bool { return matchPod(sb, filter) }, func(r podReading) {
		out = append(out, p.podToCRI(r))
	})
	return out, err
}

// eachReadyPod reads every ready pod that keep accepts and passes the reading to fn.
func (p *Provider) eachReadyPod(ctx context.Context, keep func(*store.Sandbox) bool, fn func(podReading)) error {
	sandboxes := p.cfg.Store.SandboxRecords()
	parents := countParents(sandboxes)
	byPod := make(map[string][]*store.Container, len(sandboxes))
	for _, c := range p.cfg.Store.ContainerRecords("") {
		byPod[c.SandboxID] = append(byPod[c.SandboxID], c)
	}
	for _, sb := range sandboxes {
		if sb.State != store.SandboxReady || !keep(sb) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fn(p.readPod(ctx, sb, byPod[sb.ID], parents))
	}
	return nil
}

func matchPod(sb *store.Sandbox, f *runtimeapi.PodSandboxStatsFilter) bool {
	if f == nil {
		return true
	}
	if f.Id != "" && !strings.HasPrefix(sb.ID, f.Id) {
		return false
	}
	return labelsMatch(sb.Config.GetLabels(), f.LabelSelector)
}

func (p *Provider) podToCRI(r podReading) *runtimeapi.PodSandboxStats {
	sb := r.sb
	st := &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{
			Id: sb.ID, Metadata: sb.Config.GetMetadata(), Labels: sb.Config.GetLabels(),
			Annotations: sb.Config.GetAnnotations(),
		},
		Linux: &runtimeapi.LinuxPodSandboxStats{},
	}
	if r.total == nil {
		return st
	}
	ts := r.ts.UnixNano()
	lx := st.Linux
	lx.Cpu = &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: u64(r.total.CPU.UsageNanos)}
	if r.rate != nil {
		lx.Cpu.UsageNanoCores = u64(*r.rate)
	}
	lx.Memory = memoryUsage(ts, &r.total.Memory)
	lx.Process = &runtimeapi.ProcessUsage{Timestamp: ts, ProcessCount: u64(r.total.Pids.Current)}
	for _, cr := range r.containers {
		lx.Containers = append(lx.Containers, p.toCRI(cr))
	}
	if r.net != nil {
		lx.Network = networkUsage(r.netTS.UnixNano(), r.net)
	}
	return st
}

// networkUsage reports eth0 (or else the first interface other than lo) as the default interface and the others,
// except lo, in Interfaces.
func networkUsage(ts int64, devs []NetDev) *runtimeapi.NetworkUsage {
	nu := &runtimeapi.NetworkUsage{Timestamp: ts}
	def := -1
	for i, d := range devs {
		if d.Name == DefaultInterface {
			def = i
			break
		}
	}
	for i, d := range devs {
		if d.Name == "lo" {
			continue
		}
		u := &runtimeapi.NetworkInterfaceUsage{
			Name: d.Name, RxBytes: u64(d.RxBytes), RxErrors: u64(d.RxErrors), TxBytes: u64(d.TxBytes),
			TxErrors: u64(d.TxErrors),
		}
		if def == -1 {
			def = i
		}
		if i == def {
			nu.DefaultInterface = u
		} else {
			nu.Interfaces = append(nu.Interfaces, u)
		}
	}
	return nu
}
