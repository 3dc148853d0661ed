package daemon

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"

	"k8s.io/klog/v2"

	"github.com/noded/noded/apparmor"
	"github.com/noded/noded/cdi"
	"github.com/noded/noded/cgroupsv2"
	"github.com/noded/noded/cni"
	"github.com/noded/noded/container"
	"github.com/noded/noded/cri"
	"github.com/noded/noded/features"
	"github.com/noded/noded/image"
	"github.com/noded/noded/oci"
	"github.com/noded/noded/ociruntime"
	"github.com/noded/noded/sandbox"
	"github.com/noded/noded/snapshotter/overlay"
	"github.com/noded/noded/stats"
	"github.com/noded/noded/store"
)

// services are the long-lived parts of a running noded.
type services struct {
	store      *store.Store
	cni        *cni.Manager
	snapshots  *overlay.Snapshotter
	runtimes   map[string]ociruntime.Runtime
	sandboxes  *sandbox.Manager
	containers *container.Manager
	watcher    *ociruntime.Watcher
	images     container.Images
	imageSrv   *image.Service
	stats      *stats.Provider
	// hostFeatures is what the kernel and the snapshot filesystem can do, probed once at start.
	hostFeatures features.Host
	host         oci.HostInfo
	apparmor     *apparmor.Loader // nil where AppArmor is not enabled
}

// assemble builds noded's services from its config. The returned cleanup closes what was opened.
func (d *Daemon) assemble(ctx context.Context) (*services, error) {
	s := &services{runtimes: map[string]ociruntime.Runtime{}}
	cgroups, err := cgroupsv2.New(d.driver, d.cfg.CgroupParent)
	if err != nil {
		return nil, err
	}
	if s.store, err = store.Open(d.db); err != nil {
		return nil, err
	}
	if s.cni, err = cni.New(d.cfg.CNI.ConfDir, d.cfg.CNI.BinDirs, cni.WithCacheDir(filepath.Join(d.opts.Root, "cni")),
		cni.WithObserver(d.metrics.ObserveCNI)); err != nil {
		return nil, fmt.Errorf("cni: %w", err)
	}
	// Fatal when it fails: a network with ipMasq false relies on these rules, and its pods would start with no
	// egress and nothing saying why.
	if err := cni.NewMasquerade(d.opts.Root).Ensure(ctx, d.cfg.CNI.MasqueradeSubnets); err != nil {
		return nil, fmt.Errorf("cni.masquerade_subnets: %w", err)
	}
	if len(d.cfg.CNI.MasqueradeSubnets) > 0 {
		klog.InfoS("pod subnet masquerade in place", "chain", cni.MasqueradeChain, "subnets", d.cfg.CNI.MasqueradeSubnets)
	}
	if s.snapshots, err = overlay.New(filepath.Join(d.opts.Root, "snapshots"), overlay.WithVolatile(true)); err != nil {
		return nil, fmt.Errorf("snapshotter: %w", err)
	}
	if s.stats, err = stats.New(stats.Config{
		Store: s.store, Snapshotter: s.snapshots,
		SnapshotRoot: filepath.Join(d.opts.Root, "snapshots"), Driver: cgroups,
		CollectionPeriod: d.cfg.Stats.CollectionPeriod.Duration,
	}); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	if err := d.assembleImages(ctx, s); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(d.cfg.Runtimes))
	for name := range d.cfg.Runtimes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		rc := d.cfg.Runtimes[name]
		path, err := exec.LookPath(rc.Path)
		if err != nil {
			klog.InfoS("runtime handler unavailable: binary not found", "handler", name, "path", rc.Path)
			continue
		}
		if path, err = filepath.Abs(path); err != nil {
			return nil, err
		}
		if warning, err := ociruntime.CheckRuncVersion(ctx, path); err != nil {
			return nil, fmt.Errorf("runtime handler %s: %w", name, err)
		} else if warning != "" {
			klog.ErrorS(nil, "runtime handler may be open to CVE-2024-21626", "handler", name, "detail", warning)
		}
		root := rc.Root
		if root == "" {
			root = filepath.Join(d.opts.State, "runtimes", name)
		}
		rt, err := ociruntime.New(ociruntime.Config{
			Name: name, Path: path, Root: root, SystemdCgroup: cgroups.SystemdCgroup(),
			ConmonPath: d.cfg.Conmon, ExitDir: filepath.Join(d.opts.State, "exits"),
			PersistRoot: filepath.Join(d.opts.State, "persist"), SocketDir: filepath.Join(d.opts.State, "s"),
			Observe: d.metrics.RuntimeObserver(name),
		})
		if err != nil {
			return nil, fmt.Errorf("runtime handler %s: %w", name, err)
		}
		s.runtimes[name] = rt
	}
	if _, ok := s.runtimes[d.cfg.DefaultRuntime]; !ok {
		return nil, fmt.Errorf("default runtime %q is not available (binary %q not found)", d.cfg.DefaultRuntime,
			d.cfg.Runtimes[d.cfg.DefaultRuntime].Path)
	}
	host, err := oci.DetectHost()
	if err != nil {
		return nil, err
	}
	cdiRegistry, err := cdi.New(d.cfg.CDI.SpecDirs)
	if err != nil {
		return nil, err
	}
	s.hostFeatures = probeHostFeatures(ctx, filepath.Join(d.opts.Root, "snapshots"))
	s.host = host
	ccfg := container.Config{
		StateDir: d.opts.State, Store: s.store, Images: s.images, Snapshotter: s.snapshots, Runtimes: s.runtimes,
		DefaultRuntime: d.cfg.DefaultRuntime, Cgroups: cgroups, Host: host, OnEvent: d.events.Publish, Hugetlb: d.hugetlb,
		HostFeatures: &s.hostFeatures, CDI: cdiRegistry,
	}
	if s.apparmor = loadAppArmor(ctx, host, d.opts.State); s.apparmor != nil {
		ccfg.AppArmor = s.apparmor
	}
	if s.containers, err = container.New(ccfg); err != nil {
		return nil, fmt.Errorf("containers: %w", err)
	}
	if s.sandboxes, err = sandbox.New(sandbox.Config{
		StateDir: d.opts.State, Store: s.store, Network: s.cni, DefaultCgroupParent: cgroups.DefaultParent(), Init: s.containers,
		ValidCgroupParent: cgroups.ValidateParent,
		ValidHandler: func(h string) bool {
			if h == "" {
				return true
			}
			_, ok := s.runtimes[h]
			return ok
		},
		CheckUserns:    s.containers.CheckUserns,
		CheckSecurity:  s.containers.CheckPodSecurity,
		HostResolvConf: d.cfg.HostResolvConf,
		HostHosts:      d.cfg.HostHostsFile,
	}); err != nil {
		return nil, fmt.Errorf("sandboxes: %w", err)
	}
	if s.watcher, err = ociruntime.NewWatcher(filepath.Join(d.opts.State, "exits")); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *services) close() {
	if s.stats != nil {
		s.stats.Close()
	}
	if s.imageSrv != nil {
		_ = s.imageSrv.Close()
	}
	if s.watcher != nil {
		_ = s.watcher.Close()
	}
	if s.snapshots != nil {
		_ = s.snapshots.Close()
	}
	if s.cni != nil {
		_ = s.cni.Close()
	}
	if s.store != nil {
		// Deferred writes (store/deferred.go) go to disk before the bbolt handle closes: a clean shutdown needs
		// no recovery of them.
		s.store.Close()
	}
}

// watchExits records container exits until the watcher closes.
func (s *services) watchExits() {
	for ev := range s.watcher.Events() {
		s.containers.HandleExit(ev)
	}
}

// reconcile reconciles the stored state with what exists after a (re)start: containers that exited while noded was
// down get their exit recorded, and objects whose creation was cut short are rolled back.
func (s *services) reconcile(ctx context.Context) {
	s.containers.Recover(ctx)
	s.sandboxes.Recover(ctx)
}

func (d *Daemon) runtimeHandlers(s *services) func(ctx context.Context) []cri.HandlerFeatures {
	return func(ctx context.Context) []cri.HandlerFeatures {
		var out []cri.HandlerFeatures
		for name := range s.runtimes {
			f, err := s.containers.Features(ctx, name)
			if err != nil {
				continue
			}
			out = append(out, cri.HandlerFeatures{Name: name, RecursiveReadOnly: f.RecursiveReadOnly, UserNamespaces: f.UserNamespaces})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		// The default handler is also reported under the empty name, as kubelet looks it up that way.
		for _, h := range out {
			if h.Name == d.cfg.DefaultRuntime {
				h.Name = ""
				out = append([]cri.HandlerFeatures{h}, out...)
				break
			}
		}
		return out
	}
}
