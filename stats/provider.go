// Package stats assembles the CRI's container and pod sandbox statistics and metrics from the cgroup counters of
// containers and pods, the writable layer usage the snapshotter reports, and the network counters read inside each
// pod's network namespace. It reads on demand (nothing runs in the background); the only state it keeps is the
// previous CPU sample of each container and pod (for usage_nano_cores) and a short-lived cache of writable layer
// usage, both bounded to the containers and pods that exist.
package stats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/noded/noded/cgroupsv2"
	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/store"
)

// Defaults of Config.
const (
	DefaultLayerUsageTTL = 10 * time.Second
	// minRateWindow is the shortest interval over which a new CPU anchor is taken: callers polling faster than
	// this get rates over a longer, less noisy window.
	minRateWindow = time.Second
)

// Config are the sources a Provider reads.
type Config struct {
	Store *store.Store
	// Snapshotter reports writable layer usage; nil leaves writable_layer out.
	Snapshotter snapshotter.Snapshotter
	// SnapshotRoot is the mount point reported as the writable layers' fs_id (the snapshotter's root).
	SnapshotRoot string
	// Driver finds the cgroups of containers and pod parents; nil is the driver named by CgroupDriver.
	Driver cgroupsv2.Driver
	// CgroupDriver (cgroupsv2.DriverSystemd or DriverCgroupfs, default cgroupfs) names the driver when Driver is nil.
	CgroupDriver string
	// Cgroups reads cgroup counters; nil detects the host's layout.
	Cgroups *cgstats.Reader
	// Now is the clock stamped on samples and used for CPU rates; nil is time.Now.
	Now func() time.Time
	// Network reads the interface counters of the network namespace pinned at a path; nil reads
	// /proc/thread-self/net/dev from a thread inside the namespace.
	Network func(netnsPath string) ([]NetDev, error)
	// LayerUsageTTL is how long a writable layer usage is reused (walking a layer is costly); 0 is
	// DefaultLayerUsageTTL, negative disables the cache.
	LayerUsageTTL time.Duration
}

// Provider computes CRI stats and metrics. It is safe for concurrent use.
type Provider struct {
	cfg Config

	mu     sync.Mutex
	cpu    map[string]cpuAnchor  // "c/<id>" or "p/<id>"
	layers map[string]layerEntry // container id
	// pruneAt is the cache size that triggers dropping the entries of objects that no longer exist.
	pruneAt int
}

type cpuAnchor struct {
	t     time.Time
	usage uint64
}

type layerEntry struct {
	t time.Time
	u snapshotter.Usage
}

// New returns a Provider reading the given sources.
func New(cfg Config) (*Provider, error) {
	if cfg.Store == nil {
		return nil, errors.New("stats: a store is required")
	}
	if cfg.Cgroups == nil {
		cfg.Cgroups = cgstats.Detect()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Network == nil {
		cfg.Network = ReadNetDev
	}
	if cfg.LayerUsageTTL == 0 {
		cfg.LayerUsageTTL = DefaultLayerUsageTTL
	}
	if cfg.Driver == nil {
		if cfg.CgroupDriver == "" {
			cfg.CgroupDriver = cgroupsv2.DriverCgroupfs
		}
		d, err := cgroupsv2.New(cfg.CgroupDriver, "")
		if err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		cfg.Driver = d
	}
	return &Provider{cfg: cfg, cpu: map[string]cpuAnchor{}, layers: map[string]layerEntry{}, pruneAt: 64}, nil
}

// rate returns the CPU usage in nanocores of key since its anchor sample, or nil when there is none yet. The anchor
// moves to (t, usage) once it is at least minRateWindow old or when the counter went backwards (a new cgroup).
func (p *Provider) rate(key string, t time.Time, usage uint64) *uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.cpu[key]
	switch {
	case !ok || usage < a.usage || t.Before(a.t):
		p.cpu[key] = cpuAnchor{t: t, usage: usage}
		return nil
	case t.Equal(a.t):
		return nil
	}
	elapsed := t.Sub(a.t)
	r := uint64(float64(usage-a.usage) / elapsed.Seconds())
	if elapsed >= minRateWindow {
		p.cpu[key] = cpuAnchor{t: t, usage: usage}
	}
	return &r
}

// layerUsage returns the writable layer usage of c, from the cache when fresh.
func (p *Provider) layerUsage(ctx context.Context, c *store.Container, now time.Time) (snapshotter.Usage, bool) {
	if p.cfg.Snapshotter == nil || c.SnapshotKey == "" {
		return snapshotter.Usage{}, false
	}
	if p.cfg.LayerUsageTTL > 0 {
		p.mu.Lock()
		e, ok := p.layers[c.ID]
		p.mu.Unlock()
		if ok && now.Sub(e.t) < p.cfg.LayerUsageTTL && !now.Before(e.t) {
			return e.u, true
		}
	}
	u, err := p.cfg.Snapshotter.Usage(ctx, c.SnapshotKey)
	if err != nil {
		if !errdefs.IsNotFound(err) {
			klog.V(2).InfoS("writable layer usage unavailable", "containerID", c.ID, "err", err)
		}
		return snapshotter.Usage{}, false
	}
	if p.cfg.LayerUsageTTL > 0 {
		p.mu.Lock()
		p.layers[c.ID] = layerEntry{t: now, u: u}
		p.mu.Unlock()
	}
	return u, true
}

// maybePrune drops cached entries of containers and pods that no longer exist once the caches outgrow the live
// objects; force prunes whatever the size.
func (p *Provider) maybePrune(force bool) {
	p.mu.Lock()
	n := max(len(p.cpu), len(p.layers))
	due := force || n > p.pruneAt
	p.mu.Unlock()
	if !due {
		return
	}
	live := map[string]bool{}
	for _, c := range p.cfg.Store.ContainerRecords("") {
		live["c/"+c.ID] = true
	}
	for _, sb := range p.cfg.Store.SandboxRecords() {
		live["p/"+sb.ID] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.cpu {
		if !live[k] {
			delete(p.cpu, k)
		}
	}
	for id := range p.layers {
		if !live["c/"+id] {
			delete(p.layers, id)
		}
	}
	p.pruneAt = 2*len(live) + 64
}

// cacheSizes reports the number of CPU anchors and layer entries (for tests).
func (p *Provider) cacheSizes() (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.cpu), len(p.layers)
}

// containerCgroup is the hierarchy path of a container's cgroup.
func (p *Provider) containerCgroup(c *store.Container) (string, error) {
	return p.cfg.Driver.Dir(c.CgroupsPath)
}

// podCgroup is the hierarchy path of a pod's cgroup parent, where its containers' cgroups are.
func (p *Provider) podCgroup(sb *store.Sandbox) (string, error) {
	dir, err := p.cfg.Driver.ParentDir(sb.CgroupParent)
	if err != nil {
		return "", fmt.Errorf("pod %s cgroup parent: %w", sb.ID, err)
	}
	return dir, nil
}
