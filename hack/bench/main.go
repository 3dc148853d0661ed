// Command bench measures a CRI runtime: pod start and teardown latency (sequential and concurrent) with the
// machine's CPU per pod lifecycle, the memory of the daemon and of its per-pod helper processes, an image pull,
// list/stats latency at scale, and (phase scale) how start, teardown, CPU, list calls, a kubelet-like relist
// loop and the daemon's RSS grow with the number of pods running, with an SVG plot. Given two endpoints it
// interleaves the start phase pod by pod (A B, B A, ...), runs the other phases in alternating order and prints
// the medians side by side with their ratio. With --floor it also measures what runc and CNI alone take for the
// same container: netns + CNI ADD, then runc create + start of the same busybox bundle. Every phase's machine
// busy share, steal time and load are printed, so a run on a loaded machine shows itself.
//
//	go run ./hack/bench --endpoint unix:///var/tmp/noded-bench/noded/noded.sock \
//	    [--endpoint-b unix:///var/tmp/bench-containerd/containerd.sock] [--floor] \
//	    [--phases start,mem,pull,list,scale] [--scale 0,100,250] [--plot bench-scale.svg]
//
// Everything it creates (pods, containers, cgroups below --cgroup-parent, log dirs, the floor's containers,
// netns and CNI attachments) is removed before it exits, also when it is interrupted. Run as root. Its numbers
// are only comparable within one run: the machine is shared; use the alternating mode for comparisons.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type options struct {
	endpoints    []string
	phases       map[string]bool
	image        string
	largeImage   string
	handler      string
	cgroupParent string
	workDir      string

	seq, conc, concRounds int
	memPods               int
	memSmaps              string
	memIdleWait           time.Duration
	listContainers        int
	listPods              int
	listRunning           int
	listIters             int
	pullRounds            int
	abRounds              int

	scale          []int
	scaleSamples   int
	scaleListCalls int
	relist         time.Duration
	plot           string
	scaleHold      string

	countExecs bool
	execLog    *execLogger // --exec-log: each counted exec's PID, root and name

	cniCost         bool
	cniCostVariants []cniVariant
	cniCostPods     []int
	cniCostSamples  int
	cniCostTemplate string
	cniCostBridge   string

	floor     bool
	floorRuns int
	// floorInterleave runs the floor inside the start phase's sequential loop, as one more endpoint.
	floorInterleave bool
	runc            string
	cniConfDir      string
	cniBinDirs      []string
	floorParent     string
	mirror          string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	a := flag.String("endpoint", "unix:///var/tmp/noded-bench/noded/noded.sock", "CRI endpoint A")
	b := flag.String("endpoint-b", "", "CRI endpoint B: measure A and B alternately and print ratios")
	phases := flag.String("phases", "start,mem,pull,list", "phases to run: start, mem, pull, list, scale, relist (comma-separated; relist measures the list calls, their daemon CPU, the relist loop and RSS on the pods already running, without filling)")
	scaleCounts := flag.String("scale", "0,100,250", "scale phase: pods (each with a started container) running while it measures")
	flag.IntVar(&o.scaleSamples, "scale-samples", 10, "scale phase: pod lifecycles timed at each count")
	flag.DurationVar(&o.relist, "relist-duration", 60*time.Second, "scale phase: length of the kubelet-like relist loop at the largest count")
	flag.IntVar(&o.scaleListCalls, "scale-list-calls", 20, "scale phase: calls of each list RPC at the other counts")
	flag.StringVar(&o.scaleHold, "scale-hold", "", "scale phase: after measuring the largest count, create this file and keep the pods running until it is removed (to profile the daemon, or to measure another daemon binary with --phases relist)")
	flag.StringVar(&o.plot, "plot", "bench-scale.svg", "scale phase: SVG plot written here (\"\" for none)")
	flag.StringVar(&o.image, "image", "docker.io/noded/busybox:latest", "busybox image the pods run (pulled once, cached)")
	flag.StringVar(&o.largeImage, "large-image", "docker.io/noded/large:latest", "image the pull phase pulls")
	flag.StringVar(&o.handler, "runtime-handler", "", "RuntimeClass handler for the pods")
	flag.StringVar(&o.cgroupParent, "cgroup-parent", "/noded-bench", "absolute cgroupfs parent; each pod gets PARENT/<pod>")
	flag.StringVar(&o.workDir, "work-dir", "/var/tmp/noded-bench/work", "pod log dirs and floor bundles (removed at exit)")
	flag.IntVar(&o.seq, "seq", 30, "sequential pod starts")
	flag.IntVar(&o.conc, "conc", 10, "pods started at once per concurrent round")
	flag.IntVar(&o.concRounds, "conc-rounds", 3, "concurrent rounds")
	flag.IntVar(&o.memPods, "mem-pods", 100, "pods running for the memory measurement")
	flag.DurationVar(&o.memIdleWait, "mem-idle-wait", 30*time.Second, "mem phase: after the warm-up, wait this long with no call before reading \"daemon RSS idle\" (0: skip; \"after warm-up\" is read at once)")
	flag.StringVar(&o.memSmaps, "mem-smaps", "", "mem phase: copy the daemon's /proc/PID/smaps into this dir when it measures RSS (LABEL-idle.smaps, LABEL-N-pods.smaps), to see what is resident")
	flag.IntVar(&o.listContainers, "list-containers", 1000, "containers created for the list phase")
	flag.IntVar(&o.listPods, "list-pods", 10, "pods holding the list phase's containers")
	flag.IntVar(&o.listRunning, "list-running", 100, "of those, containers started")
	flag.IntVar(&o.listIters, "list-iters", 100, "calls per list RPC")
	flag.IntVar(&o.pullRounds, "pull-rounds", 2, "pulls of the large image (removed before each)")
	flag.IntVar(&o.abRounds, "ab-rounds", 2, "rounds in the two-endpoint mode; each runs the start phase interleaved pod by pod (A B, B A, ...) and the other phases in alternating order")
	flag.BoolVar(&o.countExecs, "count-execs", false, "start phase: count the processes each daemon's process tree execs per pod lifecycle, by binary (kernel process events; root)")
	execLog := flag.String("exec-log", "", "with --count-execs: write a line \"PID LABEL NAME\" per counted exec to this file (LABEL: the endpoint's label, floor or cni-cost), to attribute the samples of a machine-wide profile (perf record -a) to each exec")
	flag.BoolVar(&o.floor, "floor", false, "also measure the floor: netns + CNI ADD, runc create + start")
	flag.IntVar(&o.floorRuns, "floor-runs", 30, "floor iterations")
	flag.BoolVar(&o.floorInterleave, "floor-interleave", false, "start phase: also run one floor lifecycle in each sequential step, interleaved pod by pod with the endpoints (the \"x the floor\" lines then use it)")
	flag.StringVar(&o.runc, "runc", "/usr/local/sbin/runc", "runc for the floor")
	flag.StringVar(&o.cniConfDir, "cni-conf-dir", "/var/tmp/noded-bench/noded/cni/net.d", "CNI conflist dir for the floor")
	bins := flag.String("cni-bin-dirs", "/usr/lib/cni,/opt/cni/bin", "CNI plugin dirs for the floor")
	flag.StringVar(&o.mirror, "mirror", "127.0.0.1:5009", "plain-HTTP registry serving docker.io/... images (manifests for the pull phase, the floor's rootfs)")
	flag.BoolVar(&o.cniCost, "cni-cost", false, "only measure the CNI plugins: CPU and wall of ADD+DEL per variant at --cni-cost-pods attached, in private namespaces (see cnicost.go)")
	cniVariantSpec := flag.String("cni-cost-variants", "debian-masq,debian-nomasq,debian-static,new-nft,new-ipt", "cni-cost: variants (debian-masq, debian-nomasq, debian-static, new-nft, new-ipt, new-nomasq)")
	cniDebian := flag.String("cni-cost-debian-bin", "/usr/lib/cni", "cni-cost: plugin dir of the debian-* variants")
	cniNew := flag.String("cni-cost-new-bin", "", "cni-cost: plugin dir of the new-* variants (containernetworking/plugins built from the Go module proxy)")
	cniCostPods := flag.String("cni-cost-pods", "0,100,250", "cni-cost: pods attached while it measures")
	flag.IntVar(&o.cniCostSamples, "cni-cost-samples", 10, "cni-cost: ADD+DEL pairs per variant and pod count")
	flag.StringVar(&o.cniCostTemplate, "cni-cost-template", "hack/cni/10-noded.conflist", "cni-cost: conflist template (noded's default network)")
	flag.StringVar(&o.cniCostBridge, "cni-cost-bridge", "nodedcost0", "cni-cost: bridge name (each variant's is in a namespace of its own)")
	removeAll := flag.Bool("remove-all", false, "remove every pod sandbox on --endpoint and exit (for the start/stop scripts)")
	flag.Parse()

	o.endpoints = []string{*a}
	if *b != "" {
		o.endpoints = append(o.endpoints, *b)
	}
	o.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		if p = strings.TrimSpace(p); p != "" {
			switch p {
			case "start", "mem", "pull", "list", "scale", "relist":
				o.phases[p] = true
			default:
				return fmt.Errorf("unknown phase %q", p)
			}
		}
	}
	o.cniBinDirs = strings.Split(*bins, ",")
	counts, err := parseCounts(*scaleCounts)
	if err != nil {
		return fmt.Errorf("--scale: %w", err)
	}
	o.scale = counts
	if !strings.HasPrefix(o.cgroupParent, "/") || o.cgroupParent == "/" {
		return fmt.Errorf("--cgroup-parent must be an absolute path below the root")
	}
	o.floorParent = o.cgroupParent + "/floor"

	if *execLog != "" {
		f, err := os.Create(*execLog)
		if err != nil {
			return fmt.Errorf("--exec-log: %w", err)
		}
		defer f.Close()
		o.execLog = &execLogger{w: f}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.cniCost {
		if o.cniCostPods, err = parseCounts(*cniCostPods); err != nil {
			return fmt.Errorf("--cni-cost-pods: %w", err)
		}
		if o.cniCostVariants, err = cniVariants(*cniVariantSpec, *cniDebian, *cniNew); err != nil {
			return fmt.Errorf("--cni-cost-variants: %w", err)
		}
		// Only files below --work-dir: every namespace it makes dies with it.
		defer os.RemoveAll(filepath.Join(o.workDir, "cni-cost"))
		return benchCNICost(ctx, &o, o.cniCostVariants, os.Stdout)
	}
	defer os.RemoveAll(o.workDir)
	defer func() {
		if o.phases["relist"] && !o.phases["scale"] && !o.phases["start"] && !o.phases["mem"] && !o.phases["list"] {
			return // the pods measured are someone else's: their cgroups stay
		}
		if err := removeCgroupTree(o.cgroupParent); err != nil {
			fmt.Fprintln(os.Stderr, "bench: cleanup:", err)
		}
	}()

	if *removeAll {
		return removeAllPods(ctx, &o, *a)
	}
	var plog phaseLog
	var floor *Results
	if o.floor {
		if err := plog.run("floor", func() error {
			f, err := measureFloor(ctx, &o)
			floor = f
			return err
		}); err != nil {
			return fmt.Errorf("floor: %w", err)
		}
	}

	// The interleaved floor: its lifecycles of every round pooled into one set of rows.
	var floorIL *floorRunner
	if o.floorInterleave && o.phases["start"] {
		f, err := newFloorRunner(ctx, &o, "floor-il")
		if err != nil {
			return fmt.Errorf("floor (interleaved): %w", err)
		}
		defer f.close()
		floorIL = f
	}

	cs := make([]*client, len(o.endpoints))
	defer func() {
		for _, c := range cs {
			// A failed cleanup is reported but keeps the results; the start/stop scripts remove what is left.
			if c != nil {
				if err := c.cleanup(); err != nil {
					fmt.Fprintf(os.Stderr, "bench: %s: cleanup: %v\n", c.endpoint, err)
				}
			}
		}
	}()
	for i, ep := range o.endpoints {
		c, err := setupClient(ctx, &o, ep)
		cs[i] = c
		if err != nil {
			return fmt.Errorf("%s: %w", ep, err)
		}
	}
	perEndpoint := make([][]*Results, len(o.endpoints))
	rounds := 1
	if len(o.endpoints) > 1 {
		rounds = o.abRounds
	}
	for r := 0; r < rounds && (o.phases["start"] || o.phases["mem"] || o.phases["list"] || o.phases["pull"]); r++ {
		res := make([]*Results, len(cs))
		for i, c := range cs {
			res[i] = &Results{Label: c.label}
		}
		if o.phases["start"] {
			if err := plog.run(fmt.Sprintf("start round %d (interleaved pod by pod)", r+1), func() error {
				return benchStart(ctx, cs, res, floorIL)
			}); err != nil {
				return err
			}
		}
		for _, i := range interleave(r, len(cs)) {
			if o.phases["mem"] || o.phases["list"] || o.phases["pull"] {
				fmt.Fprintf(os.Stderr, "bench: round %d/%d: %s\n", r+1, rounds, cs[i].endpoint)
			}
			if err := cs[i].benchOthers(ctx, res[i], &plog); err != nil {
				return fmt.Errorf("%s: %w", cs[i].endpoint, err)
			}
		}
		for i := range cs {
			perEndpoint[i] = append(perEndpoint[i], res[i])
		}
	}
	var scale [][]scalePoint
	if o.phases["relist"] {
		for _, c := range cs {
			pt, err := c.benchRelist(ctx, &plog)
			if err != nil {
				return fmt.Errorf("%s: relist: %w", c.endpoint, err)
			}
			scale = append(scale, []scalePoint{pt})
		}
	}
	if o.phases["scale"] {
		for _, c := range cs {
			pts, err := c.benchScale(ctx, &plog)
			if err != nil {
				return fmt.Errorf("%s: scale: %w", c.endpoint, err)
			}
			scale = append(scale, pts)
		}
	}

	fmt.Printf("noded bench %s, %d round(s) per endpoint, start phase interleaved pod by pod; medians over rounds\n", time.Now().Format(time.RFC3339), rounds)
	if len(perEndpoint[0]) == 0 {
		// scale only
	} else if len(o.endpoints) == 1 && len(perEndpoint[0]) == 1 {
		if err := printTable(os.Stdout, perEndpoint[0][0]); err != nil {
			return err
		}
	} else if len(o.endpoints) == 1 {
		if err := compareTable(os.Stdout, perEndpoint[0], nil); err != nil {
			return err
		}
	} else if err := compareTable(os.Stdout, perEndpoint[0], perEndpoint[1]); err != nil {
		return err
	}
	if floorIL != nil && o.seq > 0 {
		// Compared with the interleaved floor rather than the one measured alone before the pods.
		il := &Results{Label: "floor, interleaved"}
		floorIL.addRows(il, "floor")
		if floor != nil {
			fmt.Println()
			if err := printTable(os.Stdout, floor); err != nil {
				return err
			}
			fmt.Println("(the floor above ran alone before the pods; the comparisons use the interleaved one below)")
		}
		floor = il
	}
	if floor != nil {
		fmt.Println()
		if err := printTable(os.Stdout, floor); err != nil {
			return err
		}
		for i, rs := range perEndpoint {
			for _, m := range []struct{ row, floorRow, what string }{
				{"seq start p50", "floor total p50", "seq start p50"},
				{"seq teardown p50", "floor teardown p50", "seq teardown p50"},
				{"seq machine CPU per pod lifecycle", "floor machine CPU per pod lifecycle", "machine CPU per pod lifecycle"},
			} {
				var vs []float64
				for _, r := range rs {
					vs = append(vs, r.rowValue(m.row))
				}
				f := floor.rowValue(m.floorRow)
				if v := median(vs); f > 0 && !isNaN(v) {
					fmt.Printf("%s: %s %.1f ms = %.2fx the floor (%.1f ms)\n", cs[i].label, m.what, v, v/f, f)
				}
			}
		}
	}
	if scale != nil {
		fmt.Println()
		if err := printScale(os.Stdout, cs, scale); err != nil {
			return err
		}
		if o.plot != "" {
			if err := writePlotFile(o.plot, cs, scale); err != nil {
				return fmt.Errorf("plot: %w", err)
			}
			fmt.Printf("plot: %s\n", o.plot)
		}
	}
	fmt.Println()
	return plog.print(os.Stdout)
}

func isNaN(f float64) bool { return f != f }
