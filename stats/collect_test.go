package stats

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/noded/noded/cgroupsv2"
	"github.com/noded/noded/store"
)

const testPeriod = 10 * time.Second

func newCollectingEnv(t *testing.T) *env {
	return newEnvWith(t, cgroupsv2.DriverCgroupfs, func(c *Config) { c.CollectionPeriod = testPeriod })
}

// newCollectingContainer is newCollectingEnv with a ready pod p1 and its running container c1, whose cgroup
// (path) has counters written.
func newCollectingContainer(t *testing.T) (e *env, path string) {
	e = newCollectingEnv(t)
	sb := e.addPod(t, "p1", "", store.SandboxReady, nil)
	e.addContainer(t, sb, "c1", store.ContainerRunning, nil)
	path = e.ctrPath(t, "c1")
	e.writeCgroup(t, path, 1_000_000, 10<<20, 0, 0, 1)
	return e, path
}

func (e *env) sampleCount() int {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	return len(e.p.samples)
}

// The calls serve the collection's sample, with its time and its rate over the period, until it is two periods
// old; then they read the cgroup again.
func TestCollectionServesSamples(t *testing.T) {
	e, path := newCollectingContainer(t)
	ctx := context.Background()

	e.p.Collect(ctx)
	e.clock.Advance(testPeriod)
	e.writeCgroup(t, path, 3_000_000, 20<<20, 0, 0, 1)
	e.p.Collect(ctx)
	taken := e.clock.Now()

	// The counters move on; the calls within the period still report the sample.
	e.writeCgroup(t, path, 100_000_000, 30<<20, 0, 0, 1)
	e.clock.Advance(time.Second)
	list, err := e.p.ListContainerStats(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	one, err := e.p.ContainerStats(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range append(list, one) {
		if got := st.Cpu.UsageCoreNanoSeconds.GetValue(); got != 3_000_000_000 {
			t.Errorf("usage = %d, want the sample's 3e9", got)
		}
		if st.Cpu.Timestamp != taken.UnixNano() || st.Memory.Timestamp != taken.UnixNano() {
			t.Errorf("timestamps cpu %d memory %d, want the sample's %d", st.Cpu.Timestamp, st.Memory.Timestamp, taken.UnixNano())
		}
		// 2 CPU seconds over the 10 s period: 0.2 cores.
		if st.Cpu.UsageNanoCores == nil || st.Cpu.UsageNanoCores.Value != 200_000_000 {
			t.Errorf("usage_nano_cores = %v, want 2e8", st.Cpu.UsageNanoCores)
		}
		if st.Memory.UsageBytes.GetValue() != 20<<20 {
			t.Errorf("memory usage %d, want the sample's", st.Memory.UsageBytes.GetValue())
		}
	}

	// Between two samples the calls return the same message; a new sample makes a new one.
	again, _ := e.p.ListContainerStats(ctx, nil)
	if again[0] != list[0] {
		t.Error("a second call on the same sample built a new message")
	}
	e.clock.Advance(time.Second)
	e.p.Collect(ctx)
	next, _ := e.p.ListContainerStats(ctx, nil)
	if next[0] == list[0] || next[0].Cpu.UsageCoreNanoSeconds.GetValue() != 100_000_000_000 {
		t.Errorf("after a new sample: same message %v, usage %d", next[0] == list[0], next[0].Cpu.UsageCoreNanoSeconds.GetValue())
	}

	// Two periods after the sample (the collection stalled), a call reads the cgroup itself.
	e.clock.Advance(2 * testPeriod)
	st, err := e.p.ContainerStats(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Cpu.UsageCoreNanoSeconds.GetValue(); got != 100_000_000_000 {
		t.Errorf("stale sample served: usage %d, want the cgroup's 1e11", got)
	}
	if st.Cpu.Timestamp != e.clock.Now().UnixNano() {
		t.Errorf("timestamp %d, want now %d", st.Cpu.Timestamp, e.clock.Now().UnixNano())
	}
}

// A container the collection has not reached is read on the call; a first reading has no rate, so the next call
// reads again and gets one, which the calls after it are served.
func TestCollectionMissReadsOnDemand(t *testing.T) {
	e, path := newCollectingContainer(t)
	ctx := context.Background()

	st, err := e.p.ContainerStats(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Cpu.UsageCoreNanoSeconds.GetValue() != 1_000_000_000 || st.Cpu.UsageNanoCores != nil {
		t.Fatalf("first call: usage %v rate %v, want 1e9 and no rate", st.Cpu.UsageCoreNanoSeconds, st.Cpu.UsageNanoCores)
	}
	e.clock.Advance(2 * time.Second)
	e.writeCgroup(t, path, 2_000_000, 10<<20, 0, 0, 1)
	st, _ = e.p.ContainerStats(ctx, "c1")
	if st.Cpu.UsageCoreNanoSeconds.GetValue() != 2_000_000_000 || st.Cpu.UsageNanoCores.GetValue() != 500_000_000 {
		t.Fatalf("second call: usage %v rate %v, want 2e9 at 5e8", st.Cpu.UsageCoreNanoSeconds, st.Cpu.UsageNanoCores)
	}
	second := st.Cpu.Timestamp
	e.clock.Advance(time.Second)
	e.writeCgroup(t, path, 9_000_000, 10<<20, 0, 0, 1)
	st, _ = e.p.ContainerStats(ctx, "c1")
	if st.Cpu.Timestamp != second || st.Cpu.UsageCoreNanoSeconds.GetValue() != 2_000_000_000 {
		t.Errorf("third call: timestamp %d usage %v, want the second call's sample", st.Cpu.Timestamp, st.Cpu.UsageCoreNanoSeconds)
	}
}

// A pod with a cgroup of its own is collected too, and its stats are served from that sample; the samples of
// containers that stopped and pods that went away are dropped by the next pass.
func TestCollectionPodsAndPrune(t *testing.T) {
	e := newCollectingEnv(t)
	sb := e.addPod(t, "p1", "/kubepods/pod1", store.SandboxReady, nil)
	e.addContainer(t, sb, "c1", store.ContainerRunning, nil)
	shared := e.addPod(t, "p2", "", store.SandboxReady, nil)
	e.addContainer(t, shared, "c2", store.ContainerRunning, nil)
	e.writeCgroup(t, e.ctrPath(t, "c1"), 1_000_000, 10<<20, 0, 0, 1)
	e.writeCgroup(t, e.ctrPath(t, "c2"), 1_000_000, 10<<20, 0, 0, 1)
	e.writeCgroup(t, "/kubepods/pod1", 4_000_000, 40<<20, 0, 0, 2)
	ctx := context.Background()

	e.p.Collect(ctx)
	e.clock.Advance(testPeriod)
	e.writeCgroup(t, "/kubepods/pod1", 6_000_000, 40<<20, 0, 0, 2)
	e.p.Collect(ctx)
	// c1, c2 and p1; p2 shares the default parent and has no cgroup of its own.
	if n := e.sampleCount(); n != 3 {
		t.Fatalf("%d samples, want 3", n)
	}
	e.writeCgroup(t, "/kubepods/pod1", 50_000_000, 40<<20, 0, 0, 2)
	e.clock.Advance(time.Second)
	st, err := e.p.PodSandboxStats(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Linux.Cpu.UsageCoreNanoSeconds.GetValue(); got != 6_000_000_000 {
		t.Errorf("pod usage %d, want the sample's 6e9", got)
	}
	if got := st.Linux.Cpu.UsageNanoCores.GetValue(); got != 200_000_000 {
		t.Errorf("pod rate %d, want 2e8", got)
	}
	if st.Linux.Process.ProcessCount.GetValue() != 2 {
		t.Errorf("pod processes %v, want the sample's 2", st.Linux.Process)
	}

	if _, err := e.store.UpdateContainer("c2", func(c *store.Container) error {
		c.State = store.ContainerExited
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteContainer("c1"); err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteSandbox("p1"); err != nil {
		t.Fatal(err)
	}
	e.p.Collect(ctx)
	if n := e.sampleCount(); n != 0 {
		t.Errorf("%d samples left after their owners stopped or went away, want 0", n)
	}
	e.p.mu.Lock()
	built := len(e.p.built)
	e.p.mu.Unlock()
	if built != 0 {
		t.Errorf("%d built stats messages left, want 0", built)
	}
}

// A pod's kept sample is not served with a container sample taken after it (a container the collection read
// without a rate, read again by a call): the pod's cgroup is read again, so that the pod never reports less CPU
// than one of its containers.
func TestPodSampleNotOlderThanItsContainers(t *testing.T) {
	e := newCollectingEnv(t)
	sb := e.addPod(t, "p1", "/kubepods/pod1", store.SandboxReady, nil)
	e.writeCgroup(t, "/kubepods/pod1", 2_000_000, 20<<20, 0, 0, 2)
	ctx := context.Background()

	// Two passes: the pod's sample has a rate; the container, started between them, has a first one without.
	e.p.Collect(ctx)
	e.addContainer(t, sb, "c1", store.ContainerRunning, nil)
	ctr := e.ctrPath(t, "c1")
	e.writeCgroup(t, ctr, 1_000_000, 10<<20, 0, 0, 1)
	e.clock.Advance(testPeriod)
	e.p.Collect(ctx)
	// The container keeps running; a call reads it (no rate kept) a little later.
	e.clock.Advance(time.Second)
	e.writeCgroup(t, ctr, 5_000_000, 10<<20, 0, 0, 1)
	e.writeCgroup(t, "/kubepods/pod1", 6_000_000, 20<<20, 0, 0, 2)
	cs, err := e.p.ContainerStats(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.p.PodSandboxStats(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	ctrCPU, podCPU := cs.Cpu.UsageCoreNanoSeconds.GetValue(), st.Linux.Cpu.UsageCoreNanoSeconds.GetValue()
	if ctrCPU != 5_000_000_000 || podCPU != 6_000_000_000 {
		t.Errorf("container usage %d, pod usage %d, want 5e9 and the pod cgroup's 6e9 read after it", ctrCPU, podCPU)
	}
	if st.Linux.Cpu.Timestamp < cs.Cpu.Timestamp {
		t.Errorf("pod sample at %d is older than its container's at %d", st.Linux.Cpu.Timestamp, cs.Cpu.Timestamp)
	}
}

// Summed over its containers, a pod's rate is the sum of theirs, and absent while one of them has none.
func TestPodRateSumsContainerRates(t *testing.T) {
	e := newEnv(t, cgroupsv2.DriverCgroupfs)
	sb := e.addPod(t, "p1", "", store.SandboxReady, nil)
	e.addContainer(t, sb, "c1", store.ContainerRunning, nil)
	e.addContainer(t, sb, "c2", store.ContainerRunning, nil)
	e.addContainer(t, sb, "c3", store.ContainerCreated, nil)
	e.writeCgroup(t, e.ctrPath(t, "c1"), 1_000_000, 1<<20, 0, 0, 1)
	e.writeCgroup(t, e.ctrPath(t, "c2"), 1_000_000, 1<<20, 0, 0, 1)
	ctx := context.Background()
	st, err := e.p.PodSandboxStats(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Linux.Cpu.UsageNanoCores != nil {
		t.Errorf("first reading has a pod rate %v", st.Linux.Cpu.UsageNanoCores)
	}
	e.clock.Advance(2 * time.Second)
	e.writeCgroup(t, e.ctrPath(t, "c1"), 2_000_000, 1<<20, 0, 0, 1)
	e.writeCgroup(t, e.ctrPath(t, "c2"), 4_000_000, 1<<20, 0, 0, 1)
	st, _ = e.p.PodSandboxStats(ctx, "p1")
	// c1 0.5 cores, c2 1.5 cores.
	if got := st.Linux.Cpu.UsageNanoCores.GetValue(); got != 2_000_000_000 {
		t.Errorf("pod rate %d, want 2e9", got)
	}
	if st.Linux.Cpu.Timestamp != e.clock.Now().UnixNano() {
		t.Errorf("pod timestamp %d, want now", st.Linux.Cpu.Timestamp)
	}
}

// RunCollection takes a pass at once, and returns when its context ends; with no period it does nothing.
func TestRunCollection(t *testing.T) {
	e, _ := newCollectingContainer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.p.RunCollection(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.sampleCount() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if e.sampleCount() != 1 {
		t.Errorf("no sample after the first pass")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunCollection did not return after its context ended")
	}

	off := newEnv(t, cgroupsv2.DriverCgroupfs)
	returned := make(chan struct{})
	go func() { off.p.RunCollection(context.Background()); close(returned) }()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("RunCollection without a period did not return")
	}
}

// A cgroup sampled for the first time is sampled again minRateWindow later, so that the calls get a rate without
// reading it themselves until the next pass; the others wait for the next pass. In a synctest bubble, whose
// clock moves only while every goroutine waits.
func TestRunCollectionResamplesFirstSamples(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnvWith(t, cgroupsv2.DriverCgroupfs, func(c *Config) { c.CollectionPeriod = testPeriod; c.Now = time.Now })
		sb := e.addPod(t, "p1", "", store.SandboxReady, nil)
		e.addContainer(t, sb, "c1", store.ContainerRunning, nil)
		e.writeCgroup(t, e.ctrPath(t, "c1"), 1_000_000, 1<<20, 0, 0, 1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		start := time.Now()
		go e.p.RunCollection(ctx)
		kept := func() sample {
			synctest.Wait()
			e.p.mu.Lock()
			defer e.p.mu.Unlock()
			return e.p.samples["c/c1"]
		}
		if s := kept(); s.cg == nil || s.rate != nil {
			t.Fatalf("after the first pass: sample %+v, want one without a rate", s)
		}
		time.Sleep(minRateWindow + time.Millisecond)
		s := kept()
		if s.rate == nil || !s.ts.Equal(start.Add(minRateWindow)) {
			t.Fatalf("a window later: sample at %v with rate %v, want one at +%v with a rate", s.ts.Sub(start), s.rate, minRateWindow)
		}
		time.Sleep(testPeriod / 2)
		if got := kept(); !got.ts.Equal(s.ts) {
			t.Errorf("a rated sample was taken again before the next pass (at +%v)", got.ts.Sub(start))
		}
		time.Sleep(testPeriod / 2)
		if got := kept(); !got.ts.Equal(start.Add(testPeriod)) {
			t.Errorf("next pass at +%v, want +%v", got.ts.Sub(start), testPeriod)
		}
	})
}

// Metrics served from a sample carry the time it was taken; read per call, they carry 0 ("not cached").
func TestCollectionMetricsTimestamp(t *testing.T) {
	for _, collect := range []bool{false, true} {
		e := newEnv(t, cgroupsv2.DriverCgroupfs)
		if collect {
			e = newCollectingEnv(t)
		}
		sb := e.addPod(t, "p1", "", store.SandboxReady, nil)
		e.addContainer(t, sb, "c1", store.ContainerRunning, nil)
		e.writeCgroup(t, e.ctrPath(t, "c1"), 1_000_000, 1<<20, 0, 0, 1)
		ctx := context.Background()
		var want int64
		if collect {
			e.p.Collect(ctx)
			e.clock.Advance(testPeriod)
			e.p.Collect(ctx)
			want = e.clock.Now().UnixNano()
			e.clock.Advance(time.Second)
		}
		pms, err := e.p.ListPodSandboxMetrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(pms) != 1 || len(pms[0].ContainerMetrics) != 1 || len(pms[0].ContainerMetrics[0].Metrics) == 0 {
			t.Fatalf("collect=%v: metrics %v", collect, pms)
		}
		for _, m := range pms[0].ContainerMetrics[0].Metrics {
			if m.Timestamp != want {
				t.Errorf("collect=%v: %s timestamp %d, want %d", collect, m.Name, m.Timestamp, want)
			}
		}
	}
}

func TestNewRejectsNegativeCollectionPeriod(t *testing.T) {
	if _, err := New(Config{Store: newEnv(t, cgroupsv2.DriverCgroupfs).store, CollectionPeriod: -time.Second}); err == nil {
		t.Error("New accepted a negative collection period")
	}
}
