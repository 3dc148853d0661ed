package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// listRPCs are the calls kubelet's relist makes, in the order the scale phase reports them.
var listRPCs = []string{"ListPodSandbox", "ListContainers", "ListContainerStats"}

// scalePoint is what the scale phase measured on one endpoint with Pods pods running.
type scalePoint struct {
	Pods                       int
	StartP50, StartP99         float64 // ms, RunPodSandbox + CreateContainer + StartContainer
	DownP50, DownP99           float64 // ms, StopContainer + StopPodSandbox + RemovePodSandbox
	CPUPerPod, DaemonCPUPerPod float64 // ms of machine-wide busy CPU, and of the daemon process, per lifecycle
	RSS                        float64 // MiB, the daemon's
	ListP50, ListP99           [3]float64
	ListCPU                    [3]float64 // ms of daemon CPU per back-to-back call (its /proc/PID/stat); NaN if not measured
	RelistDaemonPct            float64    // % of one core the daemon spent during the relist loop; NaN if none ran
	RelistMachinePct           float64    // % of one core the whole machine was busy during it
	RelistSecs                 float64
}

// parseCounts parses "0,100,250" into sorted, distinct, non-negative counts.
func parseCounts(s string) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad pod count %q", f)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no pod counts")
	}
	sort.Ints(out)
	return out, nil
}

// benchScale fills the endpoint with background pods (a started container each) up to every count of --scale in
// turn and measures at each: the daemon's RSS, --scale-samples sequential pod lifecycles (latency, machine and
// daemon CPU), and the list calls: at the largest count a kubelet-like relist loop for --relist-duration,
// elsewhere --scale-list-calls back-to-back calls of each. The background pods are removed before it returns.
func (c *client) benchScale(ctx context.Context, plog *phaseLog) ([]scalePoint, error) {
	o := c.o
	var bg []pod
	defer func() {
		parallel(len(bg), 8, func(i int) { _, _ = c.stopPod(context.WithoutCancel(ctx), bg[i]) })
	}()
	var out []scalePoint
	largest := o.scale[len(o.scale)-1]
	for _, n := range o.scale {
		if more := n - len(bg); more > 0 {
			add := make([]pod, more)
			errs := make([]error, more)
			err := plog.run(fmt.Sprintf("scale %s fill to %d", c.label, n), func() error {
				parallel(more, 8, func(i int) { add[i], _, errs[i] = c.startPod(ctx, "bg") })
				return errors.Join(errs...)
			})
			for _, p := range add {
				if p.id != "" {
					bg = append(bg, p)
				}
			}
			if err != nil {
				return out, err
			}
			time.Sleep(2 * time.Second) // let helpers settle
		}
		pt := newScalePoint(n)
		if c.daemon > 0 {
			if m, err := memOf(c.daemon); err == nil {
				pt.RSS = mib(m.RSS)
			}
		}
		var starts, downs []time.Duration
		var cpu cpuMeter
		if err := plog.run(fmt.Sprintf("scale %s %d pods: lifecycles", c.label, n), func() error {
			for i := 0; i < o.scaleSamples; i++ {
				cpu.begin(c.daemon)
				p, st, err := c.startPodSteps(ctx, "scale")
				if err != nil {
					return err
				}
				sst, err := c.stopPodSteps(ctx, p)
				if err != nil {
					return err
				}
				cpu.end(1)
				starts = append(starts, st[0]+st[1]+st[2])
				downs = append(downs, sst[0]+sst[1]+sst[2])
			}
			return nil
		}); err != nil {
			return out, err
		}
		pt.StartP50, pt.StartP99 = ms(percentile(starts, 50)), ms(percentile(starts, 99))
		pt.DownP50, pt.DownP99 = ms(percentile(downs, 50)), ms(percentile(downs, 99))
		var daemonMs float64
		pt.CPUPerPod, daemonMs = cpu.perItemMs()
		if c.daemon > 0 {
			pt.DaemonCPUPerPod = daemonMs
		}
		var lat [3][]time.Duration
		var err error
		if n == largest && o.relist > 0 {
			err = plog.run(fmt.Sprintf("scale %s %d pods: relist loop", c.label, n), func() error {
				var e error
				lat, e = c.relistLoop(ctx, o.relist, &pt)
				return e
			})
		} else {
			lat, err = c.listCalls(ctx, max(o.scaleListCalls, 1), &pt)
		}
		if err != nil {
			return out, err
		}
		for j := range lat {
			pt.ListP50[j], pt.ListP99[j] = ms(percentile(lat[j], 50)), ms(percentile(lat[j], 99))
		}
		fmt.Fprintf(os.Stderr, "bench: scale %s %d pods: start p50 %.1f ms, teardown p50 %.1f ms, CPU/pod %.0f ms\n",
			c.label, n, pt.StartP50, pt.DownP50, pt.CPUPerPod)
		out = append(out, pt)
		if n == largest && o.scaleHold != "" {
			if err := hold(ctx, o.scaleHold); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

func newScalePoint(n int) scalePoint {
	nan := math.NaN()
	return scalePoint{Pods: n, StartP50: nan, StartP99: nan, DownP50: nan, DownP99: nan, CPUPerPod: nan,
		RSS: nan, DaemonCPUPerPod: nan, RelistDaemonPct: nan, RelistMachinePct: nan, ListCPU: [3]float64{nan, nan, nan}}
}

// hold creates path and waits until it is removed (or ctx ends).
func hold(ctx context.Context, path string) error {
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: holding the pods until %s is removed\n", path)
	for {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// benchRelist measures the pods already on the endpoint: the daemon's RSS, --scale-list-calls back-to-back calls
// of each list RPC (latency and daemon CPU per call), then the relist loop for --relist-duration.
func (c *client) benchRelist(ctx context.Context, plog *phaseLog) (scalePoint, error) {
	r, err := c.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{})
	if err != nil {
		return scalePoint{}, err
	}
	pt := newScalePoint(len(r))
	if c.daemon > 0 {
		if m, err := memOf(c.daemon); err == nil {
			pt.RSS = mib(m.RSS)
		}
	}
	var lat [3][]time.Duration
	if err := plog.run(fmt.Sprintf("relist %s %d pods: list calls", c.label, pt.Pods), func() error {
		lat, err = c.listCalls(ctx, max(c.o.scaleListCalls, 1), &pt)
		return err
	}); err != nil {
		return pt, err
	}
	if c.o.relist > 0 {
		var rl [3][]time.Duration
		if err := plog.run(fmt.Sprintf("relist %s %d pods: relist loop", c.label, pt.Pods), func() error {
			rl, err = c.relistLoop(ctx, c.o.relist, &pt)
			return err
		}); err != nil {
			return pt, err
		}
		for j, n := range listRPCs {
			fmt.Fprintf(os.Stderr, "bench: relist loop %s: %d calls, p50 %.1f ms, max %.1f ms\n", n, len(rl[j]),
				ms(percentile(rl[j], 50)), ms(percentile(rl[j], 100)))
		}
	}
	// The latencies reported are the back-to-back calls' (more samples than the loop's).
	for j := range lat {
		pt.ListP50[j], pt.ListP99[j] = ms(percentile(lat[j], 50)), ms(percentile(lat[j], 99))
	}
	return pt, nil
}

// callList makes list call j of listRPCs the way kubelet does (no filter) and returns its latency.
func (c *client) callList(ctx context.Context, j int) (time.Duration, error) {
	t0 := time.Now()
	var err error
	switch j {
	case 0:
		_, err = c.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{})
	case 1:
		_, err = c.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{})
	case 2:
		_, err = c.rt.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{})
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", listRPCs[j], err)
	}
	return time.Since(t0), nil
}

// listCalls makes n back-to-back calls of each list RPC and records the daemon's CPU per call in pt.ListCPU.
func (c *client) listCalls(ctx context.Context, n int, pt *scalePoint) ([3][]time.Duration, error) {
	var lat [3][]time.Duration
	for j := range lat {
		d0 := pidCPU(c.daemon)
		for i := 0; i < n; i++ {
			d, err := c.callList(ctx, j)
			if err != nil {
				return lat, err
			}
			lat[j] = append(lat[j], d)
		}
		if c.daemon > 0 {
			d1 := pidCPU(c.daemon)
			pt.ListCPU[j] = jiffiesMs(d1-min(d1, d0)) / float64(n)
		}
	}
	return lat, nil
}

// relistLoop does what kubelet's PLEG and stats loops ask of a runtime: ListPodSandbox and ListContainers every
// second, ListContainerStats every 10 s (the first tick included), for d. It records the daemon's CPU (its
// /proc/PID/stat) and the machine's over the loop in pt.
func (c *client) relistLoop(ctx context.Context, d time.Duration, pt *scalePoint) ([3][]time.Duration, error) {
	var lat [3][]time.Duration
	s0, _ := readCPUStat()
	d0 := pidCPU(c.daemon)
	t0 := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; ; i++ {
		calls := []int{0, 1}
		if i%10 == 0 {
			calls = append(calls, 2)
		}
		for _, j := range calls {
			l, err := c.callList(ctx, j)
			if err != nil {
				return lat, err
			}
			lat[j] = append(lat[j], l)
		}
		if time.Since(t0)+time.Second > d {
			break
		}
		select {
		case <-ctx.Done():
			return lat, ctx.Err()
		case <-tick.C:
		}
	}
	// The loop's time runs to the end of its last one-second period, as kubelet's would.
	if rest := time.Second - time.Since(t0)%time.Second; rest > 0 && rest < time.Second {
		select {
		case <-ctx.Done():
			return lat, ctx.Err()
		case <-time.After(rest):
		}
	}
	wall := time.Since(t0).Seconds()
	s1, _ := readCPUStat()
	pt.RelistSecs = wall
	pt.RelistMachinePct = 100 * jiffiesMs(s1.sub(s0).Busy()) / 1000 / wall
	if c.daemon > 0 {
		d1 := pidCPU(c.daemon)
		pt.RelistDaemonPct = 100 * jiffiesMs(d1-min(d1, d0)) / 1000 / wall
	}
	return lat, nil
}

// printScale writes a line per count per endpoint.
func printScale(w io.Writer, cs []*client, pts [][]scalePoint) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "runtime\tpods\tstart p50/p99 ms\tteardown p50/p99 ms\tmachine CPU/pod ms\tdaemon CPU/pod ms\tdaemon RSS MiB\t")
	for _, n := range listRPCs {
		fmt.Fprintf(tw, "%s p50/p99 ms\t", n)
	}
	for _, n := range listRPCs {
		fmt.Fprintf(tw, "%s daemon CPU/call ms\t", n)
	}
	fmt.Fprint(tw, "relist daemon % of a core\trelist machine % of a core\t\n")
	for k, ps := range pts {
		for _, p := range ps {
			fmt.Fprintf(tw, "%s\t%d\t%s/%s\t%s/%s\t%s\t%s\t%s\t", cs[k].label, p.Pods, formatValue(p.StartP50), formatValue(p.StartP99),
				formatValue(p.DownP50), formatValue(p.DownP99), formatValue(p.CPUPerPod), formatValue(p.DaemonCPUPerPod), formatValue(p.RSS))
			for j := range listRPCs {
				fmt.Fprintf(tw, "%s/%s\t", formatValue(p.ListP50[j]), formatValue(p.ListP99[j]))
			}
			for j := range listRPCs {
				fmt.Fprintf(tw, "%s\t", formatValue(p.ListCPU[j]))
			}
			fmt.Fprintf(tw, "%s\t%s\t\n", formatValue(p.RelistDaemonPct), formatValue(p.RelistMachinePct))
		}
	}
	return tw.Flush()
}

// scalePanels turns the scale points into the plot's panels: latency and CPU against pods running, a line per
// runtime (and per RPC for the lists).
func scalePanels(cs []*client, pts [][]scalePoint) []Panel {
	type metric struct {
		title, unit string
		series      []string
		get         func(p scalePoint, s int) float64
	}
	ms := []metric{
		{"pod start p50", "ms", []string{""}, func(p scalePoint, _ int) float64 { return p.StartP50 }},
		{"pod teardown p50", "ms", []string{""}, func(p scalePoint, _ int) float64 { return p.DownP50 }},
		{"machine CPU per pod lifecycle", "ms", []string{""}, func(p scalePoint, _ int) float64 { return p.CPUPerPod }},
		{"list call p99", "ms", listRPCs, func(p scalePoint, s int) float64 { return p.ListP99[s] }},
		{"daemon RSS", "MiB", []string{""}, func(p scalePoint, _ int) float64 { return p.RSS }},
	}
	var panels []Panel
	for _, m := range ms {
		pn := Panel{Title: m.title, YUnit: m.unit, XLabel: "pods running"}
		for k, ps := range pts {
			for s, sn := range m.series {
				name := cs[k].label
				if sn != "" {
					name += " " + sn
				}
				ser := Series{Name: name, Color: k, Dash: s}
				for _, p := range ps {
					if v := m.get(p, s); !math.IsNaN(v) {
						ser.Points = append(ser.Points, Point{float64(p.Pods), v})
					}
				}
				pn.Series = append(pn.Series, ser)
			}
		}
		panels = append(panels, pn)
	}
	return panels
}

func writePlotFile(path string, cs []*client, pts [][]scalePoint) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeSVG(f, "noded bench: cost as the node fills", scalePanels(cs, pts)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
