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

	label  string // the runtime's name (from Version) or the endpoint's
	daemon int    // PID of the process serving the socket, 0 if unknown

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

// setupClient dials an endpoint, names it after the runtime, makes sure the pods' image is there, finds the
// daemon's PID and warms it up. The caller cleans the client up.
func setupClient(ctx context.Context, o *options, endpoint string) (*client, error) {
	c, err := dial(ctx, o, endpoint)
	if err != nil {
		return nil, err
	}
	c.label = label(endpoint)
	if v, err := c.rt.Version(ctx, ""); err == nil {
		c.label = strings.ToLower(v.RuntimeName)
	}
	if err := c.ensureImage(ctx, o.image); err != nil {
		return c, err
	}
	if strings.HasPrefix(endpoint, "unix://") {
		if pid, err := socketOwner(strings.TrimPrefix(endpoint, "unix://")); err == nil {
			c.daemon = pid
		} else {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}
	// Warm up: the first pods pay for one-time work (containerd pulls its pause image).
	for i := 0; i < 2; i++ {
		p, _, err := c.startPod(ctx, "warm")
		if err != nil {
			return c, fmt.Errorf("warm-up: %w", err)
		}
		if _, err := c.stopPod(ctx, p); err != nil {
			return c, fmt.Errorf("warm-up: %w", err)
		}
	}
	return c, nil
}

// benchOthers runs the phases other than start (which is interleaved across endpoints) against one endpoint.
func (c *client) benchOthers(ctx context.Context, res *Results, plog *phaseLog) error {
	o := c.o
	if o.phases["mem"] {
		if err := plog.run("mem "+c.label, func() error {
			if c.daemon > 0 {
				// Right after the warm-up's pods, then idle: no call for --mem-idle-wait (noded returns its free
				// heap 20-25 s after the last work call; containerd gets the same wait).
				if m, err := memOf(c.daemon); err == nil {
					res.add("daemon RSS after warm-up", mib(m.RSS), "MiB", true)
				}
				c.saveSmaps("warm")
				if o.memIdleWait > 0 {
					select {
					case <-time.After(o.memIdleWait):
					case <-ctx.Done():
						return ctx.Err()
					}
					if m, err := memOf(c.daemon); err == nil {
						res.add("daemon RSS idle", mib(m.RSS), "MiB", true)
					}
					c.saveSmaps("idle")
				}
			}
			return c.benchMemory(ctx, res, c.daemon)
		}); err != nil {
			return err
		}
	}
	if o.phases["list"] {
		if err := plog.run("list "+c.label, func() error { return c.benchList(ctx, res) }); err != nil {
			return err
		}
	}
	if o.phases["pull"] {
		if err := plog.run("pull "+c.label, func() error { return c.benchPull(ctx, res) }); err != nil {
			return err
		}
	}
	return nil
}

// benchStart measures pod start and teardown on every client, interleaved pod by pod for the sequential part
// (A, B, then B, A, ...) and round by round for the concurrent part, with the machine's CPU bracketed around
// each lifecycle (each round) and given to the endpoint that ran it. res[k] gets client k's rows.
//
// With fl set, one floor lifecycle (fl.once) takes its turn in each sequential step as if it were one more
// endpoint (A, B, floor, then floor, B, A, ...), so the floor sees the same machine as the pods it is compared with.
func benchStart(ctx context.Context, cs []*client, res []*Results, fl *floorRunner) error {
	n := len(cs)
	o := cs[0].o
	starts, stops := make([][]time.Duration, n), make([][]time.Duration, n)
	steps, tsteps := make([][3][]time.Duration, n), make([][3][]time.Duration, n)
	seqCPU, concCPU := make([]cpuMeter, n), make([]cpuMeter, n)
	for k, c := range cs {
		seqCPU[k].cgroups = runtimeCgroups(c.daemon, o.cgroupParent)
		concCPU[k].cgroups = seqCPU[k].cgroups
	}
	var ec *execCounter
	if o.countExecs {
		roots, labels := make([]int, n), make([]string, n)
		for k, c := range cs {
			labels[k] = c.label
			if roots[k] = c.daemon; c.daemon <= 0 {
				return fmt.Errorf("%s: --count-execs needs the daemon's PID (a unix socket endpoint)", c.label)
			}
		}
		var err error
		if ec, err = startExecCounter(roots, o.execLog.forRoots(labels...)); err != nil {
			return fmt.Errorf("--count-execs: %w", err)
		}
		defer ec.close()
	}
	var execs0 []map[string]int
	if ec != nil {
		execs0 = ec.snapshot()
	}
	turns := n
	if fl != nil {
		turns++
	}
	for i := 0; i < o.seq; i++ {
		for _, k := range interleave(i, turns) {
			if k == n {
				if err := fl.once(ctx); err != nil {
					return fmt.Errorf("floor: %w", err)
				}
				continue
			}
			c := cs[k]
			seqCPU[k].begin(c.daemon)
			p, st, err := c.startPodSteps(ctx, "seq")
			if err != nil {
				return fmt.Errorf("%s: %w", c.label, err)
			}
			sst, err := c.stopPodSteps(ctx, p)
			if err != nil {
				return fmt.Errorf("%s: %w", c.label, err)
			}
			seqCPU[k].end(1)
			starts[k] = append(starts[k], st[0]+st[1]+st[2])
			stops[k] = append(stops[k], sst[0]+sst[1]+sst[2])
			for j := range st {
				steps[k][j] = append(steps[k][j], st[j])
				tsteps[k][j] = append(tsteps[k][j], sst[j])
			}
		}
	}
	var seqExecs, concExecs []map[string]int
	if ec != nil {
		seqExecs = deltas(execs0, ec.snapshot())
		execs0 = ec.snapshot()
	}
	cstarts, cstops := make([][]time.Duration, n), make([][]time.Duration, n)
	rates := make([][]float64, n)
	for r := 0; r < o.concRounds; r++ {
		for _, k := range interleave(r, n) {
			c := cs[k]
			pods := make([]pod, o.conc)
			durs := make([]time.Duration, o.conc)
			errs := make([]error, o.conc)
			concCPU[k].begin(c.daemon)
			t0 := time.Now()
			parallel(o.conc, o.conc, func(i int) { pods[i], durs[i], errs[i] = c.startPod(ctx, "conc") })
			wall := time.Since(t0)
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("%s: %w", c.label, err)
			}
			cstarts[k] = append(cstarts[k], durs...)
			rates[k] = append(rates[k], float64(o.conc)/wall.Seconds())
			parallel(o.conc, o.conc, func(i int) { durs[i], errs[i] = c.stopPod(ctx, pods[i]) })
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("%s: %w", c.label, err)
			}
			// What the kernel still does for this round's teardown is this round's, and not the next one's.
			settle(ctx, 0.10, 5*time.Second)
			concCPU[k].end(o.conc)
			cstops[k] = append(cstops[k], durs...)
		}
	}
	if ec != nil {
		concExecs = deltas(execs0, ec.snapshot())
		if err := ec.lost(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: exec counts are incomplete: %v\n", err)
		}
	}
	for k := range cs {
		r := res[k]
		r.addLatencies("seq start", starts[k])
		for j, name := range []string{"RunPodSandbox", "CreateContainer", "StartContainer"} {
			r.add("seq "+name+" p50", ms(percentile(steps[k][j], 50)), "ms", true)
		}
		r.addLatencies("seq teardown", stops[k])
		for j, name := range []string{"StopContainer", "StopPodSandbox", "RemovePodSandbox"} {
			r.add("seq "+name+" p50", ms(percentile(tsteps[k][j], 50)), "ms", true)
		}
		machine, daemon := seqCPU[k].perItemMs()
		r.add("seq machine CPU per pod lifecycle", machine, "ms", true)
		if cs[k].daemon > 0 {
			r.add("seq daemon CPU per pod lifecycle", daemon, "ms", true)
		}
		if v := seqCPU[k].runtimePerItemMs(); !isNaN(v) {
			r.add("seq runtime cgroups CPU per pod lifecycle", v, "ms", true)
		}
		if o.concRounds > 0 {
			r.addLatencies(fmt.Sprintf("conc%d start", o.conc), cstarts[k])
			r.add(fmt.Sprintf("conc%d throughput", o.conc), median(rates[k]), "pods/s", false)
			r.addLatencies(fmt.Sprintf("conc%d teardown", o.conc), cstops[k])
			machine, _ = concCPU[k].perItemMs()
			r.add(fmt.Sprintf("conc%d machine CPU per pod lifecycle", o.conc), machine, "ms", true)
			if v := concCPU[k].runtimePerItemMs(); !isNaN(v) {
				r.add(fmt.Sprintf("conc%d runtime cgroups CPU per pod lifecycle", o.conc), v, "ms", true)
			}
		}
	}
	if ec != nil {
		addExecRows(res, "seq execs:", seqExecs, o.seq)
		addExecRows(res, fmt.Sprintf("conc%d execs:", o.conc), concExecs, o.conc*o.concRounds)
	}
	return nil
}

// deltas is execDelta for each root.
func deltas(before, after []map[string]int) []map[string]int {
	out := make([]map[string]int, len(after))
	for i := range after {
		out[i] = execDelta(before[i], after[i])
	}
	return out
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
		c.saveSmaps(fmt.Sprintf("%d-pods", n))
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

// saveSmaps copies the daemon's /proc/PID/smaps to --mem-smaps/LABEL-WHEN.smaps (when that is set).
func (c *client) saveSmaps(when string) {
	if c.o.memSmaps == "" || c.daemon <= 0 {
		return
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", c.daemon))
	if err == nil {
		err = os.WriteFile(filepath.Join(c.o.memSmaps, c.label+"-"+when+".smaps"), data, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: --mem-smaps:", err)
	}
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
