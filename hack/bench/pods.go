package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

// client is one endpoint's CRI services and what the benchmark created there, so that it can be removed.
type client struct {
	o        *options
	endpoint string
	rt       internalapi.RuntimeService
	img      internalapi.ImageManagerService
	runID    string

	mu   sync.Mutex
	pods map[string]bool // sandbox IDs not yet removed
	seq  int
}

func dial(ctx context.Context, o *options, endpoint string) (*client, error) {
	rt, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(5 * time.Minute).Build(ctx)
	if err != nil {
		return nil, err
	}
	img, err := remote.NewRemoteImageServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(20 * time.Minute).Build(ctx)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return &client{o: o, endpoint: endpoint, rt: rt, img: img, runID: hex.EncodeToString(b), pods: map[string]bool{}}, nil
}

// pod is one started benchmark pod.
type pod struct {
	id, name  string
	cfg       *runtimeapi.PodSandboxConfig
	container string
}

func (c *client) podConfig(phase string) *runtimeapi.PodSandboxConfig {
	c.mu.Lock()
	c.seq++
	n := c.seq
	c.mu.Unlock()
	name := fmt.Sprintf("bench-%s-%s-%d", c.runID, phase, n)
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "noded-bench", Uid: name},
		Hostname:     "bench",
		LogDirectory: filepath.Join(c.o.workDir, "logs", name),
		Labels:       map[string]string{"noded-bench": c.runID},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: c.o.cgroupParent + "/" + name,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				// What kubelet sends for a pod without shareProcessNamespace.
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
			},
		},
	}
}

func (c *client) containerConfig(name string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: c.o.image},
		Command:  []string{"sleep", "3600"},
		LogPath:  name + ".log",
		Labels:   map[string]string{"noded-bench": c.runID},
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}
}

// runPod makes a sandbox; it is recorded for cleanup as soon as it exists.
func (c *client) runPod(ctx context.Context, cfg *runtimeapi.PodSandboxConfig) (string, error) {
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return "", err
	}
	id, err := c.rt.RunPodSandbox(ctx, cfg, c.o.handler)
	if err != nil {
		return "", fmt.Errorf("RunPodSandbox: %w", err)
	}
	c.mu.Lock()
	c.pods[id] = true
	c.mu.Unlock()
	return id, nil
}

// startPod runs a sandbox with one started busybox container and returns it with the time it took.
func (c *client) startPod(ctx context.Context, phase string) (pod, time.Duration, error) {
	p, steps, err := c.startPodSteps(ctx, phase)
	return p, steps[0] + steps[1] + steps[2], err
}

// startPodSteps is startPod that returns the time of each call: RunPodSandbox, CreateContainer, StartContainer.
// A failed attempt is removed and retried (twice at most), with a warning: on a shared machine another tool's
// iptables cleanup can delete a CNI chain while the bridge plugin fills it, which is no fault of the runtime.
func (c *client) startPodSteps(ctx context.Context, phase string) (pod, [3]time.Duration, error) {
	for try := 1; ; try++ {
		p, steps, err := c.startPodOnce(ctx, phase)
		if err == nil || try == 3 || ctx.Err() != nil {
			return p, steps, err
		}
		fmt.Fprintf(os.Stderr, "bench: pod start failed (attempt %d, retrying): %v\n", try, err)
		if p.id != "" {
			if rerr := c.removeSandbox(ctx, p.id); rerr != nil {
				return p, steps, errors.Join(err, rerr)
			}
			c.forgetPodDirs(p.name)
		}
	}
}

func (c *client) startPodOnce(ctx context.Context, phase string) (pod, [3]time.Duration, error) {
	var steps [3]time.Duration
	cfg := c.podConfig(phase)
	t0 := time.Now()
	id, err := c.runPod(ctx, cfg)
	if err != nil {
		return pod{}, steps, err
	}
	t1 := time.Now()
	steps[0] = t1.Sub(t0)
	p := pod{id: id, name: cfg.Metadata.Name, cfg: cfg}
	cid, err := c.rt.CreateContainer(ctx, id, c.containerConfig("c"), cfg)
	if err != nil {
		return p, steps, fmt.Errorf("CreateContainer: %w", err)
	}
	t2 := time.Now()
	steps[1] = t2.Sub(t1)
	p.container = cid
	if err := c.rt.StartContainer(ctx, cid); err != nil {
		return p, steps, fmt.Errorf("StartContainer: %w", err)
	}
	steps[2] = time.Since(t2)
	return p, steps, nil
}

// stopPod does what kubelet does to end a pod: stop its container (no grace period), stop and remove the
// sandbox, and removes the pod's cgroup and log dir (kubelet's part).
func (c *client) stopPod(ctx context.Context, p pod) (time.Duration, error) {
	steps, err := c.stopPodSteps(ctx, p)
	return steps[0] + steps[1] + steps[2], err
}

// stopPodSteps is stopPod that returns the time of each call: StopContainer, StopPodSandbox, RemovePodSandbox.
func (c *client) stopPodSteps(ctx context.Context, p pod) ([3]time.Duration, error) {
	var steps [3]time.Duration
	t0 := time.Now()
	if p.container != "" {
		if err := c.rt.StopContainer(ctx, p.container, 0); err != nil {
			return steps, fmt.Errorf("StopContainer: %w", err)
		}
	}
	steps[0] = time.Since(t0)
	var err error
	if steps[1], steps[2], err = c.removeSandboxSteps(ctx, p.id); err != nil {
		return steps, err
	}
	c.forgetPodDirs(p.name)
	return steps, nil
}

func (c *client) removeSandbox(ctx context.Context, id string) error {
	_, _, err := c.removeSandboxSteps(ctx, id)
	return err
}

func (c *client) removeSandboxSteps(ctx context.Context, id string) (stop, remove time.Duration, err error) {
	t0 := time.Now()
	if err := c.rt.StopPodSandbox(ctx, id); err != nil {
		return 0, 0, fmt.Errorf("StopPodSandbox: %w", err)
	}
	t1 := time.Now()
	if err := c.rt.RemovePodSandbox(ctx, id); err != nil {
		return 0, 0, fmt.Errorf("RemovePodSandbox: %w", err)
	}
	stop, remove = t1.Sub(t0), time.Since(t1)
	c.mu.Lock()
	delete(c.pods, id)
	c.mu.Unlock()
	return stop, remove, nil
}

func (c *client) forgetPodDirs(name string) {
	_ = removeCgroupTree(c.o.cgroupParent + "/" + name)
	_ = os.RemoveAll(filepath.Join(c.o.workDir, "logs", name))
}

// cleanup removes every sandbox this client made that is still there, with a context of its own.
func (c *client) cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c.mu.Lock()
	var ids []string
	for id := range c.pods {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	var errs []error
	parallel(len(ids), 8, func(i int) {
		if err := c.removeSandbox(ctx, ids[i]); err != nil {
			c.mu.Lock()
			errs = append(errs, err)
			c.mu.Unlock()
		}
	})
	// Anything labelled with this run that a failed call left behind.
	if left, err := c.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"noded-bench": c.runID}}); err == nil {
		for _, s := range left {
			if err := c.removeSandbox(ctx, s.Id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	_ = c.rt.Close(ctx)
	_ = c.img.Close(ctx)
	return errors.Join(errs...)
}

// parallel calls fn(0..n-1) with at most workers calls at once.
func parallel(n, workers int, fn func(i int)) {
	if workers < 1 {
		workers = 1
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers && w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// ensureImage pulls the image unless the runtime has it.
func (c *client) ensureImage(ctx context.Context, ref string) error {
	st, err := c.img.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
	if err == nil && st.GetImage() != nil {
		return nil
	}
	if _, err := c.img.PullImage(ctx, &runtimeapi.ImageSpec{Image: ref}, nil, nil); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return nil
}

// benchEndpoint runs the selected phases against one endpoint and cleans up after them.
func benchEndpoint(ctx context.Context, o *options, endpoint string) (res *Results, err error) {
	c, err := dial(ctx, o, endpoint)
	if err != nil {
		return nil, err
	}
	defer func() {
		// A failed cleanup is reported but keeps the results; the start/stop scripts remove what is left.
		if cerr := c.cleanup(); cerr != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: cleanup: %v\n", endpoint, cerr)
		}
	}()
	res = &Results{Label: label(endpoint)}
	if v, err := c.rt.Version(ctx, ""); err == nil {
		res.Label = strings.ToLower(v.RuntimeName)
	}
	if err := c.ensureImage(ctx, o.image); err != nil {
		return nil, err
	}
	daemon := 0
	if strings.HasPrefix(endpoint, "unix://") {
		if pid, err := socketOwner(strings.TrimPrefix(endpoint, "unix://")); err == nil {
			daemon = pid
		} else {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}
	// Warm up: the first pods pay for one-time work (containerd pulls its pause image).
	for i := 0; i < 2; i++ {
		p, _, err := c.startPod(ctx, "warm")
		if err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
		if _, err := c.stopPod(ctx, p); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	if o.phases["mem"] && daemon > 0 {
		if m, err := memOf(daemon); err == nil {
			res.add("daemon RSS idle", mib(m.RSS), "MiB", true)
		}
	}
	if o.phases["start"] {
		if err := c.benchStart(ctx, res); err != nil {
			return nil, err
		}
	}
	if o.phases["mem"] {
		if err := c.benchMemory(ctx, res, daemon); err != nil {
			return nil, err
		}
	}
	if o.phases["list"] {
		if err := c.benchList(ctx, res); err != nil {
			return nil, err
		}
	}
	if o.phases["pull"] {
		if err := c.benchPull(ctx, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func (c *client) benchStart(ctx context.Context, res *Results) error {
	var starts, stops []time.Duration
	var steps, tsteps [3][]time.Duration
	for i := 0; i < c.o.seq; i++ {
		p, st, err := c.startPodSteps(ctx, "seq")
		if err != nil {
			return err
		}
		starts = append(starts, st[0]+st[1]+st[2])
		for j := range st {
			steps[j] = append(steps[j], st[j])
		}
		sst, err := c.stopPodSteps(ctx, p)
		if err != nil {
			return err
		}
		stops = append(stops, sst[0]+sst[1]+sst[2])
		for j := range sst {
			tsteps[j] = append(tsteps[j], sst[j])
		}
	}
	res.addLatencies("seq start", starts)
	for j, name := range []string{"RunPodSandbox", "CreateContainer", "StartContainer"} {
		res.add("seq "+name+" p50", ms(percentile(steps[j], 50)), "ms", true)
	}
	res.addLatencies("seq teardown", stops)
	for j, name := range []string{"StopContainer", "StopPodSandbox", "RemovePodSandbox"} {
		res.add("seq "+name+" p50", ms(percentile(tsteps[j], 50)), "ms", true)
	}

	var cstarts, cstops []time.Duration
	var rates []float64
	for r := 0; r < c.o.concRounds; r++ {
		pods := make([]pod, c.o.conc)
		durs := make([]time.Duration, c.o.conc)
		errs := make([]error, c.o.conc)
		t0 := time.Now()
		parallel(c.o.conc, c.o.conc, func(i int) { pods[i], durs[i], errs[i] = c.startPod(ctx, "conc") })
		wall := time.Since(t0)
		if err := errors.Join(errs...); err != nil {
			return err
		}
		cstarts = append(cstarts, durs...)
		rates = append(rates, float64(c.o.conc)/wall.Seconds())
		parallel(c.o.conc, c.o.conc, func(i int) { durs[i], errs[i] = c.stopPod(ctx, pods[i]) })
		if err := errors.Join(errs...); err != nil {
			return err
		}
		cstops = append(cstops, durs...)
	}
	res.addLatencies(fmt.Sprintf("conc%d start", c.o.conc), cstarts)
	res.add(fmt.Sprintf("conc%d throughput", c.o.conc), median(rates), "pods/s", false)
	res.addLatencies(fmt.Sprintf("conc%d teardown", c.o.conc), cstops)
	return nil
}

func (c *client) benchMemory(ctx context.Context, res *Results, daemon int) error {
	n := c.o.memPods
	pods := make([]pod, n)
	errs := make([]error, n)
	parallel(n, 8, func(i int) { pods[i], _, errs[i] = c.startPod(ctx, "mem") })
	defer parallel(n, 8, func(i int) {
		if pods[i].id != "" {
			_, _ = c.stopPod(ctx, pods[i])
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // let helpers settle (shims finish start-up work)
	if daemon > 0 {
		if m, err := memOf(daemon); err == nil {
			res.add(fmt.Sprintf("daemon RSS %d pods", n), mib(m.RSS), "MiB", true)
		}
	}
	procs := podProcesses(c.o.cgroupParent, "sleep", daemon)
	mine := map[string]*PodProcs{}
	for _, p := range pods {
		if pp, ok := procs[p.name]; ok {
			mine[p.name] = pp
		}
	}
	if len(mine) != n {
		fmt.Fprintf(os.Stderr, "bench: found processes of %d of %d pods\n", len(mine), n)
	}
	rss, pss, names, err := helperSummary(mine)
	if err != nil {
		return err
	}
	res.add("per-pod helpers RSS", rss, "MiB", true)
	res.add("per-pod helpers PSS", pss, "MiB", true)
	res.note("per-pod helpers", names)
	return nil
}

// removeAllPods stops and removes every pod sandbox on the endpoint.
func removeAllPods(ctx context.Context, o *options, endpoint string) error {
	c, err := dial(ctx, o, endpoint)
	if err != nil {
		return err
	}
	defer c.cleanup()
	pods, err := c.rt.ListPodSandbox(ctx, nil)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pods {
		if err := c.removeSandbox(ctx, p.Id); err != nil {
			errs = append(errs, fmt.Errorf("pod %s: %w", p.Id, err))
		}
	}
	return errors.Join(errs...)
}
