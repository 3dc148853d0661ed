// Package daemon assembles noded from its configuration and serves the CRI on a unix socket.
package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/noded/noded/cgroupsv2"
	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/config"
	"github.com/noded/noded/cri"
	"github.com/noded/noded/cri/listcodec"
	"github.com/noded/noded/events"
	"github.com/noded/noded/internal/idletrim"
	"github.com/noded/noded/metrics"
	"github.com/noded/noded/pod"
	"github.com/noded/noded/streaming"
	"github.com/noded/noded/version"
)

// Options are the daemon's command-line settings.
type Options struct {
	ConfigPath string
	Root       string
	State      string
	Listen     string
	// ShutdownTimeout bounds how long in-flight calls may finish after a stop signal.
	ShutdownTimeout time.Duration
	// VerbositySet says -v was given on the command line: it then wins over the config's log_level at start.
	VerbositySet bool
}

// Daemon is a running noded.
type Daemon struct {
	opts   Options
	cfg    config.Config
	lock   *stateLock
	db     *bolt.DB
	grpc   *grpc.Server
	driver string
	// hugetlb is whether containers' cgroups can carry hugepage limits, detected once at New.
	hugetlb cgroupsv2.Hugetlb
	events  events.Broker
	// runtimeOK records runtime binaries (path@mtime) that ran once, so Status does not exec them every call.
	runtimeOK sync.Map
	metrics   *metrics.Metrics
	live      liveConfig // for Reload (SIGHUP)
	// notifySocket is systemd's $NOTIFY_SOCKET (Type=notify), taken out of the environment at New.
	notifySocket string
}

// New loads the configuration, takes the state dir's lock and opens the state database. Nothing is served yet.
func New(opts Options) (*Daemon, error) {
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	for _, dir := range []string{opts.Root, opts.State} {
		if !filepath.IsAbs(dir) {
			return nil, fmt.Errorf("%q must be an absolute path", dir)
		}
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	lock, err := lockStateDir(opts.State)
	if err != nil {
		return nil, err
	}
	d := &Daemon{opts: opts, cfg: cfg, lock: lock, metrics: metrics.New(), notifySocket: takeNotifySocket()}
	d.live.applied = cfg
	if !opts.VerbositySet {
		if err := SetVerbosity(cfg.LogLevel); err != nil {
			lock.release()
			return nil, err
		}
	}
	ok := false
	defer func() {
		if !ok {
			d.close()
		}
	}()
	d.driver, err = cgroupsv2.ChooseDriver(cfg.CgroupDriver, cgroupsv2.DetectHost())
	if err != nil {
		return nil, err
	}
	d.hugetlb = cgroupsv2.DetectHugetlb(cgstats.DefaultRoot, cgroupsv2.DefaultHugepagesDir)
	if !d.hugetlb.Available {
		klog.InfoS("hugepage limits cannot be applied to containers: zero limits are dropped, others refused",
			"reason", d.hugetlb.Reason, "pageSizes", d.hugetlb.PageSizes)
	}
	d.db, err = bolt.Open(filepath.Join(opts.Root, "noded.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state database: %w", err)
	}
	ok = true
	return d, nil
}

// Run serves the CRI until ctx is cancelled, then stops accepting, lets in-flight calls finish within the
// shutdown timeout and returns. Containers keep running.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.close()
	svc, err := d.assemble(ctx)
	if err != nil {
		return err
	}
	defer svc.close()
	d.probeHandlers(ctx, svc)
	svc.reconcile(ctx)
	d.live.mu.Lock()
	d.live.images = svc.imageSrv
	d.live.mu.Unlock()
	defer func() { d.live.mu.Lock(); d.live.images = nil; d.live.mu.Unlock() }()
	exitsDone := make(chan struct{})
	go func() { svc.watchExits(); close(exitsDone) }()
	defer func() { _ = svc.watcher.Close(); <-exitsDone }()

	bgCtx, stopBackground := context.WithCancel(ctx)
	waitGC := goBackground(bgCtx, svc.gcNetworks)
	defer func() { stopBackground(); waitGC() }()
	// Writable layer usage for the stats calls, measured every 10 s rather than per call.
	waitLayers := goBackground(bgCtx, svc.stats.RunLayerSync)
	defer func() { stopBackground(); waitLayers() }()
	// Cgroup samples of running containers and pods, taken every stats.collection_period for the stats calls.
	waitCollection := goBackground(bgCtx, svc.stats.RunCollection)
	defer func() { stopBackground(); waitCollection() }()
	trim := idletrim.New(idleTrimTicks)
	waitTrim := goBackground(bgCtx, func(ctx context.Context) { trim.RunEvery(ctx, idleTrimPeriod) })
	defer func() { stopBackground(); waitTrim() }()
	if path := d.cfg.Debug.PprofSocket; path != "" {
		stopPprof, err := servePprof(bgCtx, path)
		if err != nil {
			return fmt.Errorf("pprof endpoint: %w", err)
		}
		defer stopPprof()
	}
	stopMetrics, err := d.serveMetrics(svc)
	if err != nil {
		return fmt.Errorf("metrics endpoint: %w", err)
	}
	defer stopMetrics()

	streams, err := streaming.New(streaming.Config{
		Addr:        d.cfg.Streaming.Address,
		TLSCertFile: d.cfg.Streaming.TLSCert,
		TLSKeyFile:  d.cfg.Streaming.TLSKey,
	}, streaming.NewRuntime(streamingBackend{Containers: svc.containers, Store: svc.store}))
	if err != nil {
		return fmt.Errorf("streaming server: %w", err)
	}
	if err := streams.Start(); err != nil {
		return fmt.Errorf("streaming server: %w", err)
	}
	defer func() {
		if err := streams.Stop(); err != nil {
			klog.ErrorS(err, "stop streaming server")
		}
	}()

	rt, err := cri.NewRuntimeServer(cri.Info{
		Version:      version.Version,
		CgroupDriver: d.driver,
		Hugetlb:      d.hugetlb,
		RuntimeReady: d.runtimeReady,
		NetworkReady: svc.cni.Status,
		Handlers:     d.runtimeHandlers(svc),
		Verbose:      cri.VerboseInfo{Config: d.effectiveConfigJSON, Features: d.featuresInfo(svc)},
		Security:     securityInfo(svc.host, svc.apparmor),
	}, &cri.Backends{Sandboxes: svc.sandboxes, Containers: svc.containers, Store: svc.store,
		Pods: pod.New(svc.sandboxes, svc.containers, svc.store), Events: &d.events, Stats: svc.stats, Streams: streams,
		Starts: cri.NewStartLimiter(d.cfg.MaxConcurrentPodStarts, d.cfg.PodStartQueueWait.Duration)})
	if err != nil {
		return err
	}
	waitUnclaimed := goBackground(bgCtx, func(ctx context.Context) {
		svc.reapUnclaimed(ctx, d.cfg.UnclaimedCreateTimeout.Duration)
	})
	defer func() { stopBackground(); waitUnclaimed() }()
	// Two workers: one per core of a small node; a burst of exits beyond them is deleted by the removals.
	waitReaper := goBackground(bgCtx, func(ctx context.Context) { svc.containers.RunReaper(ctx, 2) })
	defer func() { stopBackground(); waitReaper() }()
	img := newImageServer(svc)

	d.grpc = grpc.NewServer(
		grpc.ChainUnaryInterceptor(cri.ObservedUnaryInterceptor(d.metrics.ObserveRPC), trim.UnaryInterceptor),
		grpc.ChainStreamInterceptor(cri.ObservedStreamInterceptor(d.metrics.ObserveRPC), trim.StreamInterceptor),
		grpc.MaxRecvMsgSize(16*1024*1024),
		grpc.MaxSendMsgSize(16*1024*1024),
		// The list responses kubelet asks for every second are assembled from their entries' kept encodings.
		grpc.ForceServerCodecV2(listcodec.New()),
	)
	runtimeapi.RegisterRuntimeServiceServer(d.grpc, rt)
	runtimeapi.RegisterImageServiceServer(d.grpc, img)

	l, err := listenSocket(d.opts.Listen)
	if err != nil {
		return err
	}
	defer os.Remove(d.opts.Listen)
	klog.InfoS("noded serving", "socket", d.opts.Listen, "version", version.Version, "cgroupDriver", d.driver,
		"root", d.opts.Root, "state", d.opts.State)

	serveErr := make(chan error, 1)
	go func() { serveErr <- d.grpc.Serve(l) }()
	// The socket accepts connections from here on (they queue until Serve picks them up).
	d.notifyServiceManager("READY=1\nSTATUS=serving " + d.opts.Listen)
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	d.notifyServiceManager("STOPPING=1")
	klog.InfoS("noded shutting down: no new calls, finishing in-flight ones", "timeout", d.opts.ShutdownTimeout)
	stopped := make(chan struct{})
	go func() { d.grpc.GracefulStop(); close(stopped) }()
	timer := time.NewTimer(d.opts.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		klog.InfoS("shutdown timeout reached, cancelling in-flight calls")
		d.grpc.Stop()
		<-stopped
	}
	<-serveErr
	return nil
}

func (d *Daemon) close() {
	if d.db != nil {
		d.db.Close()
		d.db = nil
	}
	d.lock.release()
	d.lock = nil
}

// runtimeReady checks that the default runtime's binary resolves and runs.
func (d *Daemon) runtimeReady(ctx context.Context) error {
	rt := d.cfg.Runtimes[d.cfg.DefaultRuntime]
	return binaryRuns(ctx, &d.runtimeOK, rt.Path)
}

// binaryRuns checks that name resolves to a binary that answers --version; ok remembers binaries (by path and
// mtime) that did, so a binary is run again only after it changes.
func binaryRuns(ctx context.Context, ok *sync.Map, name string) error {
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("OCI runtime %q not found: %w", name, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%s@%d", path, fi.ModTime().UnixNano())
	if _, seen := ok.Load(key); seen {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, path, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("OCI runtime %s does not run: %v: %s", path, err, strings.TrimSpace(string(out)))
	}
	ok.Store(key, struct{}{})
	return nil
}
