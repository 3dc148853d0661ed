package stats

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/store"
)

// reading is what was sampled of one container.
type reading struct {
	c     *store.Container
	ts    time.Time
	cg    *cgstats.Sample // nil when the container is not running or its cgroup could not be read
	rate  *uint64         // CPU nanocores of the sample; nil for a first one
	layer *layerEntry     // nil when unknown
}

// ctrWant is what a container's stats read of its cgroup: the CRI's container stats carry the CPU usage, not
// its user and system split.
const ctrWant = cgstats.WantCPUUsage | cgstats.WantMemory

// hasStats reports whether a container of this state is reported in lists: running ones, and created ones
// (with zero CPU and memory).
func hasStats(s store.ContainerState) bool {
	return s == store.ContainerRunning || s == store.ContainerCreated
}

// read samples container c: its cgroup counters when it runs (a kept sample when collecting: ts is then the
// time it was taken), and its writable layer.
func (p *Provider) read(ctx context.Context, c *store.Container, want cgstats.Want) (reading, error) {
	now := p.cfg.Now()
	r := reading{c: c, ts: now}
	var err error
	if c.State == store.ContainerRunning {
		var s *sample
		if s, err = p.containerSample(c, want); s != nil {
			r.ts, r.cg, r.rate = s.ts, s.cg, s.rate
		}
	}
	if e, ok := p.layerUsage(ctx, c, now); ok {
		r.layer = &e
	}
	return r, err
}

// ContainerStats returns the stats of one container. An unknown container is NotFound; a container that is not
// running has zero CPU and memory (created) or none (exited), and its writable layer.
func (p *Provider) ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error) {
	c, err := p.cfg.Store.ContainerRecord(id)
	if err != nil {
		return nil, err
	}
	p.maybePrune(false)
	r, err := p.read(ctx, c, ctrWant)
	if err != nil {
		return nil, err
	}
	return p.toCRI(r), nil
}

// ListContainerStats returns the stats of the running and created containers matching filter (ID and pod
// sandbox ID prefixes, labels). A container whose counters cannot be read is listed without CPU and memory.
func (p *Provider) ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	p.maybePrune(false)
	var keep []*store.Container
	for _, c := range p.cfg.Store.ContainerRecords("") {
		if hasStats(c.State) && matchContainer(c, filter) {
			keep = append(keep, c)
		}
	}
	rs := make([]reading, len(keep))
	err := p.parallel(ctx, len(keep), func(i int) {
		var err error
		if rs[i], err = p.read(ctx, keep[i], ctrWant); err != nil {
			klog.V(2).InfoS("container stats unavailable", "containerID", keep[i].ID, "err", err)
		}
	})
	if err != nil {
		return nil, err
	}
	out := make([]*runtimeapi.ContainerStats, len(rs))
	for i := range rs {
		out[i] = p.toCRI(rs[i])
	}
	return out, nil
}

// parallel calls fn(0..n-1) on up to GOMAXPROCS goroutines (one per 32 items, so that small lists stay on the
// caller's), and returns ctx's error if it ended meanwhile (the items not yet started are then skipped).
func (p *Provider) parallel(ctx context.Context, n int, fn func(i int)) error {
	workers := min(runtime.GOMAXPROCS(0), (n+31)/32)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			fn(i)
		}
		return nil
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func matchContainer(c *store.Container, f *runtimeapi.ContainerStatsFilter) bool {
	if f == nil {
		return true
	}
	if f.Id != "" && !strings.HasPrefix(c.ID, f.Id) {
		return false
	}
	if f.PodSandboxId != "" && !strings.HasPrefix(c.SandboxID, f.PodSandboxId) {
		return false
	}
	return labelsMatch(c.Config.GetLabels(), f.LabelSelector)
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func u64(v uint64) *runtimeapi.UInt64Value { return &runtimeapi.UInt64Value{Value: v} }

// toCRI converts a reading. CPU and memory are present for running containers (when readable) and zero for
// created ones. The result may be shared between calls (see below): callers must not modify it.
func (p *Provider) toCRI(r reading) *runtimeapi.ContainerStats {
	// Served from a kept sample, the stats are those of the last call until the next sample or layer usage:
	// the same message is returned again (its encoding is kept too, cri/listcodec).
	reuse := p.collecting() && r.cg != nil
	if reuse {
		p.mu.Lock()
		b, ok := p.built[r.c.ID]
		p.mu.Unlock()
		if ok && b.matches(r) {
			return b.st
		}
	}
	st := p.buildCRI(r)
	if reuse {
		b := builtStats{rec: r.c, ts: r.ts, st: st}
		if r.layer != nil {
			b.layerT, b.hasLayer = r.layer.t, true
		}
		p.mu.Lock()
		p.built[r.c.ID] = b
		p.mu.Unlock()
	}
	return st
}

// builtStats is the stats message last built for a container from a kept sample.
type builtStats struct {
	rec      *store.Container // the record it was built from (a new record has new attributes or state)
	ts       time.Time        // the sample's time
	layerT   time.Time        // the writable layer usage's time, if hasLayer
	hasLayer bool
	st       *runtimeapi.ContainerStats
}

func (b builtStats) matches(r reading) bool {
	if b.rec != r.c || !b.ts.Equal(r.ts) || b.hasLayer != (r.layer != nil) {
		return false
	}
	return r.layer == nil || b.layerT.Equal(r.layer.t)
}

// buildCRI makes the stats message of a reading.
func (p *Provider) buildCRI(r reading) *runtimeapi.ContainerStats {
	c := r.c
	ts := r.ts.UnixNano()
	st := &runtimeapi.ContainerStats{Attributes: p.attrs.Get(c, containerAttributes)}
	switch {
	case r.cg != nil:
		st.Cpu = &runtimeapi.CpuUsage{
			Timestamp:            ts,
			UsageCoreNanoSeconds: u64(r.cg.CPU.UsageNanos),
		}
		if r.rate != nil {
			st.Cpu.UsageNanoCores = u64(*r.rate)
		}
		st.Memory = memoryUsage(ts, &r.cg.Memory)
		if r.cg.Memory.HasSwap {
			st.Swap = &runtimeapi.SwapUsage{Timestamp: ts, SwapUsageBytes: u64(r.cg.Memory.SwapUsage)}
			if l := r.cg.Memory.SwapLimit; l > 0 {
				st.Swap.SwapAvailableBytes = u64(l - min(l, r.cg.Memory.SwapUsage))
			}
		}
	case c.State == store.ContainerCreated || c.State == store.ContainerCreating:
		st.Cpu = &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: u64(0), UsageNanoCores: u64(0)}
		st.Memory = &runtimeapi.MemoryUsage{Timestamp: ts, WorkingSetBytes: u64(0), UsageBytes: u64(0),
			RssBytes: u64(0), PageFaults: u64(0), MajorPageFaults: u64(0)}
	}
	if r.layer != nil {
		// The usage is the one last measured (see layerUsage): its timestamp says when.
		st.WritableLayer = &runtimeapi.FilesystemUsage{
			Timestamp:  r.layer.t.UnixNano(),
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: p.cfg.SnapshotRoot},
			UsedBytes:  u64(uint64(max(r.layer.u.Size, 0))),
			InodesUsed: u64(uint64(max(r.layer.u.Inodes, 0))),
		}
	}
	return st
}

// containerAttributes are the attributes of c's stats. The store never modifies a record once stored (an update
// replaces it), so the attributes of a record are made once and shared by every stats call until it is replaced
// or removed (Provider.attrs): their encoding is then kept too (cri/listcodec). Callers must not modify them.
func containerAttributes(c *store.Container) *runtimeapi.ContainerAttributes {
	return &runtimeapi.ContainerAttributes{
		Id: c.ID, Metadata: c.Config.GetMetadata(), Labels: c.Config.GetLabels(), Annotations: c.Config.GetAnnotations(),
	}
}

func memoryUsage(ts int64, m *cgstats.Memory) *runtimeapi.MemoryUsage {
	mu := &runtimeapi.MemoryUsage{
		Timestamp:       ts,
		WorkingSetBytes: u64(m.WorkingSet),
		UsageBytes:      u64(m.Usage),
		RssBytes:        u64(m.RSS),
		PageFaults:      u64(m.PageFaults),
		MajorPageFaults: u64(m.MajorFaults),
	}
	if m.Limit > 0 {
		mu.AvailableBytes = u64(m.Limit - min(m.Limit, m.WorkingSet))
	}
	return mu
}
