// Package stats assembles the CRI's container and pod sandbox statistics and metrics from the cgroup counters of
// containers and pods, the writable layer usage the snapshotter reports, and the network counters read inside each
// pod's network namespace. With a collection period (RunCollection, every 10 s in the daemon as kubelet polls),
// the cgroups of running containers and pods are sampled in the background and the calls serve those samples,
// each with the time it was taken and its CPU rate; without one, counters are read per call. Writable layer usage
// (a walk of each layer) is measured by a background loop (RunLayerSync, every 10 s) and read from its cache, each
// usage with the time it was measured. The state it keeps (samples, the CPU anchors of usage_nano_cores, layer
// usage) is bounded to the containers and pods that exist.
package stats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/noded/noded/cgroupsv2"
	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/weakmemo"
	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/store"
)

// Defaults of Config.
const (
	DefaultLayerUsageTTL = 10 * time.Second
	// DefaultLayerUsagePeriod is how often RunLayerSync measures every writable layer (kubelet asks for stats
	// every 10 s).
	DefaultLayerUsagePeriod = 10 * time.Second
	// minRateWindow is the shortest interval over which a new CPU anchor is taken: callers polling faster than
	// this get rates over a longer, less noisy window.
	minRateWindow = time.Second
	// openFileIdle is how long a kept cgroup counter file may go unread before it is closed (kubelet reads
	// every running container's every 10 s).
	openFileIdle = time.Minute
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
	// LayerUsageTTL is how long a writable layer usage is reused (walking a layer is costly) when RunLayerSync
	// does not run; 0 is DefaultLayerUsageTTL, negative disables the cache (and the sync loop).
	LayerUsageTTL time.Duration
	// LayerUsagePeriod is the interval of RunLayerSync's passes; 0 is DefaultLayerUsagePeriod.
	LayerUsagePeriod time.Duration
	// CollectionPeriod is the interval of RunCollection's passes, whose samples the calls serve; 0 reads the
	// cgroups per call.
	CollectionPeriod time.Duration
}

// Provider computes CRI stats and metrics. It is safe for concurrent use.
type Provider struct {
	cfg Config

	mu     sync.Mutex
	cpu    map[string]cpuAnchor  // "c/<id>" or "p/<id>"
	layers map[string]layerEntry // container id
	// samples are the kept cgroup samples when collecting, keyed like cpu.
	samples map[string]sample
	// built are the stats messages last built from kept samples, by container ID (see toCRI).
	built map[string]builtStats
	// attrs are the stats attributes of the stored container records (see containerAttributes).
	attrs weakmemo.Memo[store.Container, *runtimeapi.ContainerAttributes]
	// pruneAt is the cache size that triggers dropping the entries of objects that no longer exist.
	pruneAt int
	// syncing is set while RunLayerSync runs: the layer usage it keeps is used whatever its age.
	syncing atomic.Bool
}

type cpuAnchor struct {
	t     time.Time
	usage uint64
}

// layerEntry is a writable layer's usage as measured at t, of the snapshot key (a container keeps its key; the
// key guards against reusing an entry for another snapshot).
type layerEntry struct {
	t   time.Time
	key string
	u   snapshotter.Usage
}

// New returns a Provider reading the given sources.
func New(cfg Config) (*Provider, error) {
	if cfg.Store == nil {
		return nil, errors.New("stats: a store is required")
	}
	if cfg.CollectionPeriod < 0 {
		return nil, errors.New("stats: the collection period must not be negative")
	}
	if cfg.Cgroups == nil {
		// The host's cgroups, their counter files kept open: a list rereads each with one pread.
		cfg.Cgroups = cgstats.Detect().WithOpenFiles(openFileIdle, 0)
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
	if cfg.LayerUsagePeriod <= 0 {
		cfg.LayerUsagePeriod = DefaultLayerUsagePeriod
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
	return &Provider{cfg: cfg, cpu: map[string]cpuAnchor{}, layers: map[string]layerEntry{}, samples: map[string]sample{},
		built: map[string]builtStats{}, pruneAt: 64}, nil
}

// Close releases the cgroup files the provider keeps open.
func (p *Provider) Close() { p.cfg.Cgroups.Close() }

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

// layerUsage returns the writable layer usage of c and the time it was measured. While RunLayerSync runs, the
// usage is the one its last pass measured, whatever its age (the pass renews it every LayerUsagePeriod); a
// container it has not reached yet is walked once here. Without the sync loop a usage is reused for
// LayerUsageTTL.
func (p *Provider) layerUsage(ctx context.Context, c *store.Container, now time.Time) (layerEntry, bool) {
	if p.cfg.Snapshotter == nil || c.SnapshotKey == "" {
		return layerEntry{}, false
	}
	if p.cfg.LayerUsageTTL > 0 {
		p.mu.Lock()
		e, ok := p.layers[c.ID]
		p.mu.Unlock()
		if ok && e.key == c.SnapshotKey && (p.syncing.Load() || now.Sub(e.t) < p.cfg.LayerUsageTTL && !now.Before(e.t)) {
			return e, true
		}
	}
	return p.walkLayer(ctx, c, now)
}

// walkLayer measures the writable layer of c now and caches it.
func (p *Provider) walkLayer(ctx context.Context, c *store.Container, now time.Time) (layerEntry, bool) {
	u, err := p.cfg.Snapshotter.Usage(ctx, c.SnapshotKey)
	if err != nil {
		if !errdefs.IsNotFound(err) && ctx.Err() == nil {
			klog.V(2).InfoS("writable layer usage unavailable", "containerID", c.ID, "err", err)
		}
		return layerEntry{}, false
	}
	e := layerEntry{t: now, key: c.SnapshotKey, u: u}
	if p.cfg.LayerUsageTTL > 0 {
		p.mu.Lock()
		p.layers[c.ID] = e
		p.mu.Unlock()
	}
	return e, true
}

// RunLayerSync measures the writable layer of every container with a snapshot at once and then every
// LayerUsagePeriod until ctx ends, so that stats calls read the cached usage (each entry carries the time it was
// measured) instead of walking every layer per call, which is linear in the containers. Each pass also drops the
// entries of containers that no longer exist and closes the cgroup files left unread. A pass that outlasts the period delays the next one. With the
// cache disabled (a negative LayerUsageTTL) it returns at once.
func (p *Provider) RunLayerSync(ctx context.Context) {
	if p.cfg.Snapshotter == nil || p.cfg.LayerUsageTTL < 0 {
		return
	}
	p.syncing.Store(true)
	defer p.syncing.Store(false)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.SyncLayers(ctx)
		// The kept cgroup files of containers no longer read (removed, or no stats call since) are closed
		// even when no stats call comes to close them.
		p.cfg.Cgroups.CloseIdle()
		t.Reset(p.cfg.LayerUsagePeriod)
	}
}

// SyncLayers is one pass of RunLayerSync: it walks the writable layer of every container that has one (those
// being created are left to their first stats call), then drops the cached entries of containers and pods that
// are gone (maybePrune).
func (p *Provider) SyncLayers(ctx context.Context) {
	if p.cfg.Snapshotter == nil {
		return
	}
	for _, c := range p.cfg.Store.ContainerRecords("") {
		if ctx.Err() != nil {
			return
		}
		if c.State == store.ContainerCreating || c.SnapshotKey == "" {
			continue
		}
		p.walkLayer(ctx, c, p.cfg.Now())
	}
	p.maybePrune(true)
}

// maybePrune drops cached entries of containers and pods that no longer exist once the caches outgrow the live
// objects; force prunes whatever the size.
func (p *Provider) maybePrune(force bool) {
	p.mu.Lock()
	n := max(len(p.cpu), len(p.layers), len(p.samples))
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
	dropUnless(p.cpu, live, "")
	dropUnless(p.layers, live, "c/")
	dropUnless(p.samples, live, "")
	dropUnless(p.built, live, "c/")
	p.pruneAt = 2*len(live) + 64
}

// dropUnless deletes the entries of m whose key, behind prefix, is not in keep.
func dropUnless[V any](m map[string]V, keep map[string]bool, prefix string) {
	for k := range m {
		if !keep[prefix+k] {
			delete(m, k)
		}
	}
}

// countParents counts the sandboxes of each cgroup parent (see ownCgroup).
func countParents(sandboxes []*store.Sandbox) map[string]int {
	n := make(map[string]int, len(sandboxes))
	for _, sb := range sandboxes {
		n[sb.CgroupParent]++
	}
	return n
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
