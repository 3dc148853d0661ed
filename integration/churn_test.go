package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
)

// TestPodChurnLeaksNothing runs pod cycles (RunPodSandbox, with a hostPort in every tenth, CreateContainer, StartContainer,
// StopPodSandbox, RemovePodSandbox) from several workers at once — 1,000 cycles by 4 workers, or NODED_CHURN_CYCLES by
// NODED_CHURN_WORKERS — and
// checks the full leak list, plus noded's goroutines and open files against their count after a warm-up.
func TestPodChurnLeaksNothing(t *testing.T) {
	framework.RequireRoot(t)
	cycles, workers := 1000, 4
	if testing.Short() {
		cycles = 100
	}
	if s := os.Getenv("NODED_CHURN_WORKERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("NODED_CHURN_WORKERS=%q", s)
		}
		workers = n
	}
	if s := os.Getenv("NODED_CHURN_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		cycles = n
	}
	pprof := filepath.Join(t.TempDir(), "pprof.sock")
	e := newPodEnvOpts(t, 44, framework.Options{Config: fmt.Sprintf("[debug]\npprof_socket = %q\n", pprof)}, nil)
	cycle := func(worker, i int) error {
		cfg := e.podConfig(t, fmt.Sprintf("churn-%d-%d", worker, i))
		if i%10 == 0 { // hostPorts (iptables under its global lock) in every tenth cycle keep the run short
			cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: int32(39500 + worker)}}
		}
		pod, err := e.n.Runtime.RunPodSandbox(e.ctx, cfg, "")
		if err != nil {
			return fmt.Errorf("RunPodSandbox: %w", err)
		}
		ccfg := &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
			Image:    &runtimeapi.ImageSpec{Image: "busybox"},
			Command:  []string{"sleep", "100000"},
			LogPath:  "c.log",
			Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: cfg.Linux.SecurityContext.NamespaceOptions,
			}},
		}
		c, err := e.n.Runtime.CreateContainer(e.ctx, pod, ccfg, cfg)
		if err != nil {
			return fmt.Errorf("CreateContainer: %w", err)
		}
		if err := e.n.Runtime.StartContainer(e.ctx, c); err != nil {
			return fmt.Errorf("StartContainer: %w", err)
		}
		if err := e.n.Runtime.StopPodSandbox(e.ctx, pod); err != nil {
			err2 := e.n.Runtime.StopPodSandbox(e.ctx, pod)
			return fmt.Errorf("StopPodSandbox: %w (again: %v)", err, err2)
		}
		if err := e.n.Runtime.RemovePodSandbox(e.ctx, pod); err != nil {
			return fmt.Errorf("RemovePodSandbox: %w", err)
		}
		return nil
	}
	// Warm up: the bridge, the plugins' chains, pools and caches exist before the baseline is taken.
	for w := 0; w < workers; w++ {
		if err := cycle(w, -1); err != nil {
			t.Fatalf("warm-up: %v", err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	g0, fd0 := goroutines(t, pprof), fds(t, e.n.PID())

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= cycles {
					return
				}
				if err := cycle(w, i); err != nil {
					errs <- fmt.Errorf("worker %d cycle %d: %w", w, i, err)
					next.Store(int64(cycles)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	elapsed := time.Since(start)
	time.Sleep(500 * time.Millisecond)
	g1, fd1 := goroutines(t, pprof), fds(t, e.n.PID())
	t.Logf("%d cycles by %d workers in %s; goroutines %d -> %d, fds %d -> %d", cycles, workers, elapsed.Round(time.Second), g0, g1, fd0, fd1)
	if g1 > g0+5 {
		t.Errorf("goroutines grew from %d to %d over %d cycles", g0, g1, cycles)
	}
	if fd1 > fd0+5 {
		t.Errorf("file descriptors grew from %d to %d over %d cycles", fd0, fd1, cycles)
	}
	if pods, err := e.n.Runtime.ListPodSandbox(e.ctx, nil); err != nil || len(pods) != 0 {
		t.Errorf("pods left: %v %v", pods, err)
	}
	l := e.leaks(t)
	t.Logf("resources leaked: %d", len(l))
	if len(l) > 0 {
		t.Errorf("leaked after %d cycles: %v", cycles, l)
	}
}
