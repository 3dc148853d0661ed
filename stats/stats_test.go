package stats

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/cgroupsv2"
	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/store"
	"github.com/noded/noded/store/storetest"
)

// ---- fakes ----

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeSnapshotter reports a fixed usage per key and counts Usage calls; other methods are not used.
type fakeSnapshotter struct {
	snapshotter.Snapshotter
	mu    sync.Mutex
	usage map[string]snapshotter.Usage
	calls int
}

func (f *fakeSnapshotter) Usage(ctx context.Context, key string) (snapshotter.Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	u, ok := f.usage[key]
	if !ok {
		return snapshotter.Usage{}, errdefs.NotFound("snapshot %s", key)
	}
	return u, nil
}

type env struct {
	store  *store.Store
	root   string // fake cgroup v2 root
	clock  *fakeClock
	snaps  *fakeSnapshotter
	net    map[string][]NetDev
	p      *Provider
	driver string
}

func newEnv(t testing.TB, driver string) *env { return newEnvWith(t, driver, nil) }

// newEnvWith is newEnv with the provider's config changed by edit first.
func newEnvWith(t testing.TB, driver string, edit func(*Config)) *env {
	dir := t.TempDir()
	st := storetest.New(t)
	e := &env{store: st, root: filepath.Join(dir, "cgroup"), clock: &fakeClock{t: time.Unix(1_700_000_000, 0)},
		snaps: &fakeSnapshotter{usage: map[string]snapshotter.Usage{}}, net: map[string][]NetDev{}, driver: driver}
	cfg := Config{
		Store: st, Snapshotter: e.snaps, SnapshotRoot: "/var/lib/noded/snapshots", CgroupDriver: driver,
		Cgroups: cgstats.NewReader(e.root, true), Now: e.clock.Now,
		Network: func(ns string) ([]NetDev, error) {
			d, ok := e.net[ns]
			if !ok {
				return nil, errdefs.NotFound("netns %s", ns)
			}
			return d, nil
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	var err error
	if e.p, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) addPod(t testing.TB, id, cgroupParent string, state store.SandboxState, labels map[string]string) *store.Sandbox {
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "pod-" + id, Namespace: "ns", Uid: "uid-" + id},
		Labels:   labels,
		Linux:    &runtimeapi.LinuxPodSandboxConfig{CgroupParent: cgroupParent},
	}
	sb := &store.Sandbox{ID: id, Name: "pod-" + id, Config: cfg, State: state, CgroupParent: cgroupParent,
		Namespaces: map[string]string{"net": "/run/noded/ns/" + id + "/net"}, CreatedAt: e.clock.Now().UnixNano()}
	if cgroupParent == "" {
		sb.CgroupParent = "/noded"
		if e.driver == cgroupsv2.DriverSystemd {
			sb.CgroupParent = "noded.slice"
		}
	}
	if err := e.store.AddSandbox(sb); err != nil {
		t.Fatal(err)
	}
	return sb
}

// addContainer stores a container of pod sb placed the way the container manager places it.
func (e *env) addContainer(t testing.TB, sb *store.Sandbox, id string, state store.ContainerState, labels map[string]string) *store.Container {
	cgPath := filepath.Join(sb.CgroupParent, id)
	if e.driver == cgroupsv2.DriverSystemd {
		cgPath = filepath.Base(sb.CgroupParent) + ":noded:" + id
	}
	c := &store.Container{
		ID: id, SandboxID: sb.ID, Name: id + "_" + sb.ID,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "ctr-" + id},
			Labels:   labels,
			Linux: &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{
				CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512}},
		},
		State: state, CgroupsPath: cgPath, SnapshotKey: "snap-" + id, ImageName: "busybox:latest",
		CreatedAt: e.clock.Now().UnixNano(), StartedAt: 1_700_000_000_000_000_000,
	}
	if err := e.store.AddContainer(c); err != nil {
		t.Fatal(err)
	}
	e.snaps.usage[c.SnapshotKey] = snapshotter.Usage{Size: 4096, Inodes: 3}
	return c
}

// writeCgroup writes a v2 cgroup with the given counters at path (a hierarchy path).
func (e *env) writeCgroup(t testing.TB, path string, usageUsec, memCurrent, inactiveFile, memMax uint64, pids int) {
	dir := filepath.Join(e.root, path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	max := "max"
	if memMax > 0 {
		max = fmt.Sprint(memMax)
	}
	files := map[string]string{
		"cpu.stat":       fmt.Sprintf("usage_usec %d\nuser_usec %d\nsystem_usec %d\n", usageUsec, usageUsec/2, usageUsec/2),
		"memory.current": fmt.Sprint(memCurrent),
		"memory.stat":    fmt.Sprintf("anon %d\nfile %d\ninactive_file %d\npgfault 11\npgmajfault 2\n", memCurrent/2, memCurrent/2, inactiveFile),
		"memory.max":     max,
		"pids.current":   fmt.Sprint(pids),
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) ctrPath(t testing.TB, id string) string {
	c, err := e.store.Container(id)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cgstats.ResolvePath(c.CgroupsPath)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ---- container stats ----

func TestContainerStatsRunning(t *testing.T) {
	e := newEnv(t, cgroupsv2.DriverCgroupfs)
	sb := e.addPod(t, "p1", "", store.SandboxReady, nil)
	e.addContainer(t, sb, "c1", store.ContainerRunning, nil)
	e.writeCgroup(t, e.ctrPath(t, "c1"), 2_000_000, 100<<20, 30<<20, 200<<20, 4)
	ctx := context.Background()

	st, err := e.p.ContainerStats(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Attributes.Id != "c1" || st.Attributes.Metadata.Name != "ctr-c1" {
		t.Errorf("attributes = %v", st.Attributes)
	}
	if got := st.Cpu.UsageCoreNanoSeconds.GetValue(); got != 2_000_000_000 {
		t.Errorf("usage_core_nano_seconds = %d", got)
	}
	if st.Cpu.UsageNanoCores != nil {
		t.Errorf("first sample has a rate: %v", st.Cpu.UsageNanoCores)
	}
	if st.Cpu.Timestamp != e.clock.Now().UnixNano() {
		t.Errorf("timestamp %d", st.Cpu.Timestamp)
	}
	m := st.Memory
	if m.UsageBytes.GetValue() != 100<<20 || m.WorkingSetBytes.GetValue() != 70<<20 || m.RssBytes.GetValue() != 50<<20 ||
		m.PageFaults.GetValue() != 11 || m.MajorPageFaults.GetValue() != 2 || m.AvailableBytes.GetValue() != 130<<20 {
		t.Errorf("memory = %v", m)
	}
	wl := st.WritableLayer
	if wl.GetUsedBytes().GetValue() != 4096 || wl.GetInodesUsed().GetValue() != 3 || wl.GetFsId().GetMountpoint() != "/var/lib/noded/snapshots" {
		t.Errorf("writable layer = %v", wl)
	}

	// One CPU second over two seconds: half a core.
	e.clock.Advance(2 * time.Second)
	e.writeCgroup(t, e.ctrPath(t, "c1"), 3_000_000, 100<<20, 30<<20, 0, 4)
	st, err = e.p.ContainerStats(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Cpu.UsageNanoCores.GetValue(); st.Cpu.UsageNanoCores == nil || got != 500_000_000 {
		t.Errorf("usage_nano_cores = %v, want 5e8", st.Cpu.UsageNanoCores)
	}
	if st.Memory.AvailableBytes != nil {
		t.Errorf("unlimited container has available_bytes %v", st.Memory.AvailableBytes)
	}

	// A caller polling faster than the rate window gets a rate over the longer window since the anchor.
	e.clock.Advance(500 * time.Millisecond)
	e.writeCgroup(t, e.ctrPath(t, "c1"), 3_500_000, 100<<20, 30<<20, 0, 4)
	st, _ = e.p.ContainerStats(ctx, "c1")
	if got := st.Cpu.UsageNanoCores.GetValue(); got != 1_000_000_000 {
		t.Errorf("usage_nano_cores = %d, want 1e9", got)
	}
}

func TestContainerStatsStates(t *testing.T) {
	e := newEnv(t, cgroupsv2.DriverCgroupfs)
	sb := e.addPod(t, "p1", "", store.SandboxReady, nil)
	e.addContainer(t, sb, "created", store.ContainerCreated, nil)
	e.addContainer(t, sb, "exited", store.ContainerExited, nil)
	e.addContainer(t, sb, "gone", store.ContainerRunning, nil) // running, but its cgroup is already gone
	ctx := context.Background()

	st, err := e.p.ContainerStats(ctx, "created")
	if err != nil {
		t.Fatal(err)
	}
	if st.Cpu == nil || st.Cpu.UsageCoreNanoSeconds.GetValue() != 0 || st.Memory == nil || st.Memory.WorkingSetBytes == nil ||
		st.Memory.WorkingSetBytes.Value != 0 || st.WritableLayer == nil {
		t.Errorf("created container stats = %v", st)
	}
	st, err = e.p.ContainerStats(ctx, "exited")
	if err != nil {
		t.Fatal(err)
	}
	if st.Cpu != nil || st.Memory != nil || st.WritableLayer == nil || st.Attributes.Id != "exited" {
		t.Errorf("exited container stats = %v", st)
	}
	st, err = e.p.ContainerStats(ctx, "gone")
	if err != nil {
		t.Fatalf("container whose cgroup vanished: %v", err)
	}
	if st.Cpu != nil {
		t.Errorf("vanished cgroup reported cpu %v", st.Cpu)
	}
	if _, err := e.p.ContainerStats(ctx, "nope"); !errdefs.IsNotFound(err) {
		t.Errorf("unknown container: err = %v, want NotFound", err)
	}
}

func TestListContainerStatsFilter(t *testing.T) {
	e := newEnv(t, cgroupsv2.DriverCgroupfs)
	p1 := e.addPod(t, "p1", "", store.SandboxReady, nil)
	p2 := e.addPod(t, "p2", "", store.SandboxReady, nil)
	e.addContainer(t, p1, "a1", store.ContainerRunning, map[string]string{"app": "web"})
	e.addContainer(t, p1, "a2", store.ContainerCreated, map[string]string{"app": "db"})
	e.addContainer(t, p2, "b1", store.ContainerRunning, map[string]string{"app": "web"})
	e.addContainer(t, p2, "b2", store.ContainerExited, map[string]string{"app": "web"})
	for _, id := range []string{"a1", "b1"} {
		e.writeCgroup(t, e.ctrPath(t, id), 1, 1, 0, 0, 1)
	}
	cases := []struct {
		filter *runtimeapi.ContainerStatsFilter
		want   []string
	}{
		{nil, []string{"a1", "a2", "b1"}},
		{&runtimeapi.ContainerStatsFilter{Id: "a"}, []string{"a1", "a2"}},
		{&runtimeapi.ContainerStatsFilter{PodSandboxId: "p2"}, []string{"b1"}},
		{&runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"app": "web"}}, []string{"a1", "b1"}},
		{&runtimeapi.ContainerStatsFilter{PodSandboxId: "p1", LabelSelector: map[string]string{"app": "web"}}, []string{"a1"}},
		{&runtimeapi.ContainerStatsFilter{Id: "b2"}, nil},
	}
	for _, c := range cases {
		list, err := e.p.ListContainerStats(context.Background(), c.filter)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range list {
			got = append(got, s.Attributes.Id)
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("filter %v: got %v, want %v", c.filter, got, c.want)
		}
	}
}

func TestLayerUsageCached(t *testing.T) {
	e := newEnv(t, cgroupsv2.DriverCgroupfs)
	sb := e.addPod(t, "p1", "", store.SandboxReady, nil)
	e.addContainer(t, sb, "c1", store.ContainerCreated, nil)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := e.p.ContainerStats(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
	}
	if e.snaps.calls != 1 {
		t.Errorf("snapshotter walked %d times within the TTL, want 1", e.snaps.calls)
	}
	e.clock.Advance(DefaultLayerUsageTTL)
	e.snaps.usage["snap-c1"] = snapshotter.Usage{Size: 8192, Inodes: 4}
	st, _ := e.p.ContainerStats(ctx, "c1")
	if e.snaps.calls != 2 || st.WritableLayer.UsedBytes.Value != 8192 {
		t.Errorf("after the TTL: calls %d, used %d", e.snaps.calls, st.WritableLayer.UsedBytes.Value)
	}
}

func TestCachesBoundedToLiveContainers(t *testing.T) {
	e := newEnv(t, cgroupsv2.DriverCgroupfs)
	sb := e.addPod(t, "p1", "", store.SandboxReady, nil)
	for i := 0; i < 100; i++ {
		id := fmt.Sprintf("c%03d", i)
		e.addContainer(t, sb, id, store.ContainerRunning, nil)
		e.writeCgroup(t, e.ctrPath(t, id), 1, 1, 0, 0, 1)
	}
	ctx := context.Background()
	if _, err := e.p.ListContainerStats(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if cpu, layers := e.p.cacheSizes(); cpu != 100 || layers != 100 {
		t.Fatalf("cache sizes %d, %d; want 100, 100", cpu, layers)
	}
	for i := 0; i < 100; i++ {
		if err := e.store.DeleteContainer(fmt.Sprintf("c%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	e.addContainer(t, sb, "new", store.ContainerCreated, nil)
	if _, err := e.p.ListContainerStats(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if cpu, layers := e.p.cacheSizes(); cpu != 0 || layers != 1 {
		t.Errorf("after removal cache sizes %d, %d; want 0, 1", cpu, layers)
	}
}

// ---- pod stats ----

func TestPodSandboxStatsSummedOverContainers(t *testing.T) {
	e := newEnv(t, cgroupsv2.DriverCgroupfs)
	sb := e.addPod(t, "p1", "", store.SandboxReady, map[string]string{"tier": "x"})
	e.addContainer(t, sb, "c1", store.ContainerRunning, nil)
	e.addContainer(t, sb, "c2", store.ContainerRunning, nil)
	e.addContainer(t, sb, "c3", store.ContainerExited, nil)
	e.writeCgroup(t, e.ctrPath(t, "c1"), 1_000_000, 10<<20, 1<<20, 0, 2)
	e.writeCgroup(t, e.ctrPath(t, "c2"), 3_000_000, 20<<20, 2<<20, 0, 5)
	// The shared default parent must not be read as this pod's totals.
	e.writeCgroup(t, "/noded", 99_000_000, 999<<20, 0, 0, 99)
	e.net[sb.Namespaces["net"]] = []NetDev{
		{Name: "lo", RxBytes: 5, TxBytes: 5},
		{Name: "eth0", RxBytes: 1000, RxErrors: 1, TxBytes: 2000, TxErrors: 2},
		{Name: "net1", RxBytes: 10, TxBytes: 20},
	}
	st, err := e.p.PodSandboxStats(context.Background(), "p1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Attributes.Id != "p1" || st.Attributes.Metadata.Name != "pod-p1" || st.Attributes.Labels["tier"] != "x" {
		t.Errorf("attributes = %v", st.Attributes)
	}
	lx := st.Linux
	if lx.Cpu.UsageCoreNanoSeconds.Value != 4_000_000_000 {
		t.Errorf("pod cpu = %d, want 4e9", lx.Cpu.UsageCoreNanoSeconds.Value)
	}
	if lx.Memory.WorkingSetBytes.Value != 27<<20 || lx.Memory.UsageBytes.Value != 30<<20 {
		t.Errorf("pod memory = %v", lx.Memory)
	}
	if lx.Process.ProcessCount.Value != 7 {
		t.Errorf("process count = %d, want 7", lx.Process.ProcessCount.Value)
	}
	if len(lx.Containers) != 2 {
		t.Errorf("pod lists %d containers, want the 2 running", len(lx.Containers))
	}
	n := lx.Network
	if n == nil || n.DefaultInterface.Name != "eth0" || n.DefaultInterface.RxBytes.Value != 1000 ||
		n.DefaultInterface.TxErrors.Value != 2 || len(n.Interfaces) != 1 || n.Interfaces[0].Name != "net1" {
		t.Errorf("network = %v", n)
	}
}

func TestPodSandboxStatsFromPodCgroup(t *testing.T) {
	for _, driver := range []string{cgroupsv2.DriverCgroupfs, cgroupsv2.DriverSystemd} {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			parent, podPath := "/kubepods/burstable/pod12", "/kubepods/burstable/pod12"
			if driver == cgroupsv2.DriverSystemd {
				parent = "kubepods-burstable-pod12.slice"
				podPath = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice"
			}
			sb := e.addPod(t, "p1", parent, store.SandboxReady, nil)
			e.addContainer(t, sb, "c1", store.ContainerRunning, nil)
			ctrPath, want := e.ctrPath(t, "c1"), podPath+"/c1"
			if driver == cgroupsv2.DriverSystemd {
				want = podPath + "/noded-c1.scope"
			}
			if ctrPath != want {
				t.Fatalf("container cgroup %s, want %s", ctrPath, want)
			}
			e.writeCgroup(t, ctrPath, 1_000_000, 10<<20, 0, 0, 1)
			e.writeCgroup(t, podPath, 5_000_000, 50<<20, 0, 100<<20, 3)
			st, err := e.p.PodSandboxStats(context.Background(), "p1")
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Linux.Cpu.UsageCoreNanoSeconds.Value; got != 5_000_000_000 {
				t.Errorf("pod cpu = %d, want the pod cgroup's 5e9", got)
			}
			if st.Linux.Memory.AvailableBytes.GetValue() != 50<<20 || st.Linux.Process.ProcessCount.Value != 3 {
				t.Errorf("pod memory %v, processes %v", st.Linux.Memory, st.Linux.Process)
			}
			if len(st.Linux.Containers) != 1 || st.Linux.Containers[0].Cpu.UsageCoreNanoSeconds.Value != 1_000_000_000 {
				t.Errorf("containers = %v", st.Linux.Containers)
			}
		})
	}
}

func TestListPodSandboxStats(t *testing.T) {
	e := newEnv(t, cgroupsv2.DriverCgroupfs)
	e.addPod(t, "p1", "", store.SandboxReady, map[string]string{"app": "a"})
	e.addPod(t, "p2", "", store.SandboxReady, map[string]string{"app": "b"})
	e.addPod(t, "p3", "", store.SandboxNotReady, map[string]string{"app": "a"})
	ids := func(f *runtimeapi.PodSandboxStatsFilter) string {
		list, err := e.p.ListPodSandboxStats(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range list {
			out = append(out, s.Attributes.Id)
		}
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	if got := ids(nil); got != "p1,p2" {
		t.Errorf("all: %s", got)
	}
	if got := ids(&runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "a"}}); got != "p1" {
		t.Errorf("labels: %s", got)
	}
	if got := ids(&runtimeapi.PodSandboxStatsFilter{Id: "p2"}); got != "p2" {
		t.Errorf("id: %s", got)
	}
	st, err := e.p.PodSandboxStats(context.Background(), "p3")
	if err != nil {
		t.Fatal(err)
	}
	if st.Attributes.Id != "p3" || st.Linux.Cpu != nil {
		t.Errorf("not-ready pod stats = %v", st)
	}
	if _, err := e.p.PodSandboxStats(context.Background(), "nope"); !errdefs.IsNotFound(err) {
		t.Errorf("unknown pod: %v", err)
	}
}

// ---- metrics ----

func TestMetrics(t *testing.T) {
	e := newEnv(t, cgroupsv2.DriverCgroupfs)
	sb := e.addPod(t, "p1", "", store.SandboxReady, nil)
	e.addContainer(t, sb, "c1", store.ContainerRunning, nil)
	e.addContainer(t, sb, "c2", store.ContainerCreated, nil)
	e.writeCgroup(t, e.ctrPath(t, "c1"), 7_500_000, 10<<20, 1<<20, 64<<20, 4)
	e.net[sb.Namespaces["net"]] = []NetDev{{Name: "lo", RxBytes: 1}, {Name: "eth0", RxBytes: 1234, TxBytes: 99}}

	descs := map[string]*runtimeapi.MetricDescriptor{}
	list, err := e.p.ListMetricDescriptors(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		if !sort.StringsAreSorted(d.LabelKeys) {
			t.Errorf("%s: label keys not sorted: %v", d.Name, d.LabelKeys)
		}
		descs[d.Name] = d
	}
	for _, name := range []string{"container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
		"container_memory_usage_bytes", "container_memory_rss", "container_spec_memory_limit_bytes",
		"container_network_receive_bytes_total", "container_network_transmit_bytes_total", "container_processes"} {
		if descs[name] == nil {
			t.Errorf("no descriptor for %s", name)
		}
	}

	pms, err := e.p.ListPodSandboxMetrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pms) != 1 || pms[0].PodSandboxId != "p1" {
		t.Fatalf("pod metrics = %v", pms)
	}
	pm := pms[0]
	if len(pm.ContainerMetrics) != 1 || pm.ContainerMetrics[0].ContainerId != "c1" {
		t.Fatalf("container metrics for %v, want only the running c1", pm.ContainerMetrics)
	}
	type key struct{ name, labels string }
	got := map[key]uint64{}
	collect := func(ms []*runtimeapi.Metric) {
		for _, m := range ms {
			d := descs[m.Name]
			if d == nil {
				t.Errorf("metric %s has no descriptor", m.Name)
				continue
			}
			if len(d.LabelKeys) != len(m.LabelValues) {
				t.Errorf("%s: %d label values for %d keys", m.Name, len(m.LabelValues), len(d.LabelKeys))
				continue
			}
			var kv []string
			for i, k := range d.LabelKeys {
				kv = append(kv, k+"="+m.LabelValues[i])
			}
			got[key{m.Name, strings.Join(kv, ",")}] = m.Value.GetValue()
		}
	}
	collect(pm.Metrics)
	collect(pm.ContainerMetrics[0].Metrics)
	ctrLabels := "container=ctr-c1,id=/noded/c1,image=busybox:latest,name=c1,namespace=ns,pod=pod-p1"
	want := map[key]uint64{
		{"container_cpu_usage_seconds_total", ctrLabels}:  7,
		{"container_memory_working_set_bytes", ctrLabels}: 9 << 20,
		{"container_memory_usage_bytes", ctrLabels}:       10 << 20,
		{"container_spec_memory_limit_bytes", ctrLabels}:  64 << 20,
		{"container_spec_cpu_quota", ctrLabels}:           50000,
		{"container_processes", ctrLabels}:                4,
		{"container_start_time_seconds", ctrLabels}:       1_700_000_000,
		{"container_network_receive_bytes_total", "container=POD,id=,image=,interface=eth0,name=p1,namespace=ns,pod=pod-p1"}:  1234,
		{"container_network_transmit_bytes_total", "container=POD,id=,image=,interface=eth0,name=p1,namespace=ns,pod=pod-p1"}: 99,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s{%s} = %d (present %v), want %d", k.name, k.labels, g, ok, v)
		}
	}
	for k := range got {
		if strings.Contains(k.labels, "interface=lo") {
			t.Errorf("loopback reported: %v", k)
		}
	}
}

// ---- network parsing ----

func TestParseNetDev(t *testing.T) {
	const data = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0: 1234567    890    3    4    0     0          0         0    76543     210    5    6    0     0       0          0
`
	devs, err := ParseNetDev(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []NetDev{
		{Name: "lo", RxBytes: 140, RxPackets: 2, TxBytes: 140, TxPackets: 2},
		{Name: "eth0", RxBytes: 1234567, RxPackets: 890, RxErrors: 3, RxDropped: 4, TxBytes: 76543, TxPackets: 210, TxErrors: 5, TxDropped: 6},
	}
	if len(devs) != len(want) {
		t.Fatalf("devs = %+v", devs)
	}
	for i := range want {
		if devs[i] != want[i] {
			t.Errorf("dev %d = %+v, want %+v", i, devs[i], want[i])
		}
	}
	if _, err := ParseNetDev("h\nh\n eth0: 1 2 3\n"); err == nil {
		t.Error("short line accepted")
	}
}

// ---- benchmark ----

// BenchmarkListContainerStats lists 100 running containers on a v2 cgroup tree.
func BenchmarkListContainerStats(b *testing.B) {
	e := newEnv(b, cgroupsv2.DriverCgroupfs)
	for i := 0; i < 10; i++ {
		sb := e.addPod(b, fmt.Sprintf("p%d", i), "", store.SandboxReady, nil)
		for j := 0; j < 10; j++ {
			id := fmt.Sprintf("c%d-%d", i, j)
			e.addContainer(b, sb, id, store.ContainerRunning, nil)
			e.writeCgroup(b, e.ctrPath(b, id), 1000, 1<<20, 0, 0, 1)
		}
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.clock.Advance(time.Second)
		list, err := e.p.ListContainerStats(ctx, nil)
		if err != nil || len(list) != 100 {
			b.Fatalf("%d stats, %v", len(list), err)
		}
	}
}
