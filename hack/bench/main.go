// Command bench measures a CRI runtime: pod start and teardown latency (sequential and concurrent), the memory
// of the daemon and of its per-pod helper processes, an image pull, and list/stats latency at scale. Given two
// endpoints it measures them alternately (A B A B ...) and prints the medians side by side with their ratio.
// With --floor it also measures what runc and CNI alone take for the same container: netns + CNI ADD, then
// runc create + start of the same busybox bundle.
//
//	go run ./hack/bench --endpoint unix:///var/tmp/noded-bench/noded/noded.sock \
//	    [--endpoint-b unix:///var/tmp/bench-containerd/containerd.sock] [--floor] [--phases start,mem,pull,list]
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
	listContainers        int
	listPods              int
	listRunning           int
	listIters             int
	pullRounds            int
	abRounds              int

	floor       bool
	floorRuns   int
	runc        string
	cniConfDir  string
	cniBinDirs  []string
	floorParent string
	mirror      string
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
	phases := flag.String("phases", "start,mem,pull,list", "phases to run: start, mem, pull, list (comma-separated)")
	flag.StringVar(&o.image, "image", "docker.io/noded/busybox:latest", "busybox image the pods run (pulled once, cached)")
	flag.StringVar(&o.largeImage, "large-image", "docker.io/noded/large:latest", "image the pull phase pulls")
	flag.StringVar(&o.handler, "runtime-handler", "", "RuntimeClass handler for the pods")
	flag.StringVar(&o.cgroupParent, "cgroup-parent", "/noded-bench", "absolute cgroupfs parent; each pod gets PARENT/<pod>")
	flag.StringVar(&o.workDir, "work-dir", "/var/tmp/noded-bench/work", "pod log dirs and floor bundles (removed at exit)")
	flag.IntVar(&o.seq, "seq", 30, "sequential pod starts")
	flag.IntVar(&o.conc, "conc", 10, "pods started at once per concurrent round")
	flag.IntVar(&o.concRounds, "conc-rounds", 3, "concurrent rounds")
	flag.IntVar(&o.memPods, "mem-pods", 100, "pods running for the memory measurement")
	flag.IntVar(&o.listContainers, "list-containers", 1000, "containers created for the list phase")
	flag.IntVar(&o.listPods, "list-pods", 10, "pods holding the list phase's containers")
	flag.IntVar(&o.listRunning, "list-running", 100, "of those, containers started")
	flag.IntVar(&o.listIters, "list-iters", 100, "calls per list RPC")
	flag.IntVar(&o.pullRounds, "pull-rounds", 2, "pulls of the large image (removed before each)")
	flag.IntVar(&o.abRounds, "ab-rounds", 2, "alternations A B in the two-endpoint mode")
	flag.BoolVar(&o.floor, "floor", false, "also measure the floor: netns + CNI ADD, runc create + start")
	flag.IntVar(&o.floorRuns, "floor-runs", 30, "floor iterations")
	flag.StringVar(&o.runc, "runc", "/usr/local/sbin/runc", "runc for the floor")
	flag.StringVar(&o.cniConfDir, "cni-conf-dir", "/var/tmp/noded-bench/noded/cni/net.d", "CNI conflist dir for the floor")
	bins := flag.String("cni-bin-dirs", "/usr/lib/cni,/opt/cni/bin", "CNI plugin dirs for the floor")
	flag.StringVar(&o.mirror, "mirror", "127.0.0.1:5009", "plain-HTTP registry serving docker.io/... images (manifests for the pull phase, the floor's rootfs)")
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
			case "start", "mem", "pull", "list":
				o.phases[p] = true
			default:
				return fmt.Errorf("unknown phase %q", p)
			}
		}
	}
	o.cniBinDirs = strings.Split(*bins, ",")
	if !strings.HasPrefix(o.cgroupParent, "/") || o.cgroupParent == "/" {
		return fmt.Errorf("--cgroup-parent must be an absolute path below the root")
	}
	o.floorParent = o.cgroupParent + "/floor"

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer os.RemoveAll(o.workDir)
	defer func() {
		if err := removeCgroupTree(o.cgroupParent); err != nil {
			fmt.Fprintln(os.Stderr, "bench: cleanup:", err)
		}
	}()

	if *removeAll {
		return removeAllPods(ctx, &o, *a)
	}
	var floor *Results
	if o.floor {
		f, err := measureFloor(ctx, &o)
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		floor = f
	}

	perEndpoint := make([][]*Results, len(o.endpoints))
	rounds := 1
	if len(o.endpoints) > 1 {
		rounds = o.abRounds
	}
	for r := 0; r < rounds; r++ {
		for i, ep := range o.endpoints {
			fmt.Fprintf(os.Stderr, "bench: round %d/%d: %s\n", r+1, rounds, ep)
			res, err := benchEndpoint(ctx, &o, ep)
			if err != nil {
				return fmt.Errorf("%s: %w", ep, err)
			}
			perEndpoint[i] = append(perEndpoint[i], res)
		}
	}
	fmt.Printf("noded bench %s, %d round(s) per endpoint, alternating; medians over rounds\n", time.Now().Format(time.RFC3339), rounds)
	if len(o.endpoints) == 1 && len(perEndpoint[0]) == 1 {
		if err := printTable(os.Stdout, perEndpoint[0][0]); err != nil {
			return err
		}
	} else if err := compareTable(os.Stdout, perEndpoint[0], perEndpoint[1]); err != nil {
		return err
	}
	if floor != nil {
		fmt.Println()
		if err := printTable(os.Stdout, floor); err != nil {
			return err
		}
		floorTotal := floor.rowValue("floor total p50")
		for i, rs := range perEndpoint {
			var p50s []float64
			for _, r := range rs {
				p50s = append(p50s, r.rowValue("seq start p50"))
			}
			if m := median(p50s); floorTotal > 0 && !isNaN(m) {
				fmt.Printf("%s: seq start p50 %.1f ms = %.2fx the floor (%.1f ms)\n", label(o.endpoints[i]), m, m/floorTotal, floorTotal)
			}
		}
	}
	return nil
}

func isNaN(f float64) bool { return f != f }
