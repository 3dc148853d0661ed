package integration

// Requests kubelet 1.36/1.37 sends that a runtime must take as kubelet means them (issue 18): hugepage limits
// for every page size of the node, cpu_quota -1, cpuset-only updates, real-time stop signals, an unmasked /proc in
// a user namespace, and pods on a node without /etc/resolv.conf.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/cgroupsv2"
	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/integration/framework"
	"github.com/noded/noded/internal/testimage"
	"github.com/noded/noded/oci"
)

// kubeletResources is what kubelet sends for a BestEffort container on a node with 2Mi and 1Gi hugepages: a
// limit of 0 for every page size (kuberuntime's GetHugepageLimitsFromResources), shares 2, period 100000.
func kubeletResources() *runtimeapi.LinuxContainerResources {
	return &runtimeapi.LinuxContainerResources{
		CpuPeriod: 100000, CpuShares: 2, OomScoreAdj: 1000,
		HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 0}, {PageSize: "1GB", Limit: 0}},
	}
}

// cgroupFile reads a control file of a container's cgroup: v1file in the v1 hierarchy ctrl on a v1/hybrid host,
// v2file on a pure v2 one.
func (e *podEnv) cgroupFile(t *testing.T, id, ctrl, v1file, v2file string) string {
	t.Helper()
	resp, err := e.n.Runtime.ContainerStatus(e.ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		CgroupsPath string `json:"cgroupsPath"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.CgroupsPath == "" {
		t.Fatalf("no cgroupsPath in verbose status %q: %v", resp.Info["info"], err)
	}
	dir, err := cgstats.ResolvePath(info.CgroupsPath)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(cgstats.DefaultRoot, ctrl, dir, v1file)
	if cgstats.IsUnified(cgstats.DefaultRoot) {
		p = filepath.Join(cgstats.DefaultRoot, dir, v2file)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Item 0: kubelet's hugepage limits (0 for every page size) must not stop a container where containers' cgroups
// cannot carry them (this host: hugetlb only in the unified hierarchy of a hybrid layout); a pod that asks for
// hugepages there gets FailedPrecondition, and Status verbose says what was detected.
func TestHugepageLimitsAsKubeletSends(t *testing.T) {
	e := newPodEnv(t, 70, nil)
	want := cgroupsv2.DetectHugetlb(cgstats.DefaultRoot, cgroupsv2.DefaultHugepagesDir)
	st, err := e.n.Runtime.Status(e.ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	var got cgroupsv2.Hugetlb
	if err := json.Unmarshal([]byte(st.Info["hugetlb"]), &got); err != nil {
		t.Fatalf("Status verbose info[hugetlb] = %q: %v", st.Info["hugetlb"], err)
	}
	if got.Available != want.Available || got.Reason != want.Reason || strings.Join(got.PageSizes, ",") != strings.Join(want.PageSizes, ",") {
		t.Errorf("Status verbose hugetlb = %+v, want %+v", got, want)
	}

	podID, podCfg := e.newPod(t, "hugepages")
	id := e.runContainer(t, podID, podCfg, "zero", func(c *runtimeapi.ContainerConfig) { c.Linux.Resources = kubeletResources() },
		"sleep", "1000")
	if s := e.containerStatus(t, id); s.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container with kubelet's zero hugepage limits is %v, want running", s.State)
	}

	asks := kubeletResources()
	asks.HugepageLimits[0].Limit = 4 << 20
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "asks"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
		Command: []string{"sleep", "1000"},
		Linux:   &runtimeapi.LinuxContainerConfig{Resources: asks},
	}
	_, err = e.n.Runtime.CreateContainer(e.ctx, podID, cfg, podCfg)
	if want.Available {
		if err != nil {
			t.Errorf("hugepage limit on a node that can apply it: %v", err)
		}
		return
	}
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "2MB=4194304") {
		t.Errorf("hugepage limit the node cannot apply: %v, want FailedPrecondition naming it", err)
	}
	// Nothing is left of the refused container, and an update asking for hugepages is refused the same way.
	ctrs, err := e.n.Runtime.ListContainers(e.ctx, &runtimeapi.ContainerFilter{PodSandboxId: podID})
	if err != nil || len(ctrs) != 1 {
		t.Errorf("containers after the refused create: %v, %v; want only the first", ctrs, err)
	}
	if err := e.n.Runtime.UpdateContainerResources(e.ctx, id, &runtimeapi.ContainerResources{Linux: asks}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("update asking for hugepages: %v, want FailedPrecondition", err)
	}
	if err := e.n.Runtime.UpdateContainerResources(e.ctx, id, &runtimeapi.ContainerResources{Linux: kubeletResources()}); err != nil {
		t.Errorf("update with kubelet's zero hugepage limits: %v", err)
	}
}

// Item 1: the static CPU manager's cpu_quota -1 (DisableCPUQuotaWithExclusiveCPUs) means no quota, at create and
// at update (where it lifts a quota set before).
func TestCPUQuotaMinusOneIsNoQuota(t *testing.T) {
	e := newPodEnv(t, 71, nil)
	podID, podCfg := e.newPod(t, "exclusive")
	res := &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: -1, CpuShares: 1024, CpusetCpus: "0", MemoryLimitInBytes: 128 << 20}
	id := e.runContainer(t, podID, podCfg, "guaranteed", func(c *runtimeapi.ContainerConfig) { c.Linux.Resources = res }, "sleep", "1000")
	noQuota := func(when string) {
		t.Helper()
		q := e.cgroupFile(t, id, "cpu", "cpu.cfs_quota_us", "cpu.max")
		if q != "-1" && !strings.HasPrefix(q, "max") {
			t.Errorf("%s: cpu quota %q, want none", when, q)
		}
	}
	noQuota("created with cpu_quota -1")
	if err := e.n.Runtime.UpdateContainerResources(e.ctx, id, &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000}}); err != nil {
		t.Fatal(err)
	}
	if q := e.cgroupFile(t, id, "cpu", "cpu.cfs_quota_us", "cpu.max"); q != "50000" && q != "50000 100000" {
		t.Errorf("after setting a quota: %q", q)
	}
	if err := e.n.Runtime.UpdateContainerResources(e.ctx, id, &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: -1}}); err != nil {
		t.Fatalf("update with cpu_quota -1: %v", err)
	}
	noQuota("updated with cpu_quota -1")
	if err := e.n.Runtime.UpdateContainerResources(e.ctx, id, &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{CpuQuota: -2}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("cpu_quota -2: %v, want InvalidArgument", err)
	}
}

// Item 2: a cpuset-only update (kubelet's CPU manager) keeps cpu and memory in ContainerStatus.resources and in
// the cgroup.
func TestCpusetOnlyUpdateKeepsResources(t *testing.T) {
	e := newPodEnv(t, 72, nil)
	podID, podCfg := e.newPod(t, "cpuset")
	res := &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 256 << 20, CpusetCpus: "0"}
	id := e.runContainer(t, podID, podCfg, "main", func(c *runtimeapi.ContainerConfig) { c.Linux.Resources = res }, "sleep", "1000")
	cpus := "0"
	if runtime.NumCPU() > 1 {
		cpus = "0-1"
	}
	if err := e.n.Runtime.UpdateContainerResources(e.ctx, id, &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{CpusetCpus: cpus}}); err != nil {
		t.Fatal(err)
	}
	got := e.containerStatus(t, id).GetResources().GetLinux()
	if got.GetCpuQuota() != 50000 || got.GetCpuPeriod() != 100000 || got.GetCpuShares() != 512 ||
		got.GetMemoryLimitInBytes() != 256<<20 || got.GetCpusetCpus() != cpus {
		t.Errorf("ContainerStatus.resources after a cpuset-only update = %v; want cpu and memory kept, cpuset %s", got, cpus)
	}
	if m := e.cgroupFile(t, id, "memory", "memory.limit_in_bytes", "memory.max"); m != "268435456" {
		t.Errorf("memory limit after a cpuset-only update: %s", m)
	}
	if c := e.cgroupFile(t, id, "cpuset", "cpuset.cpus", "cpuset.cpus"); c != cpus {
		t.Errorf("cpuset after the update: %q, want %q", c, cpus)
	}
}

// Item 5: SIGRTMIN+3 (systemd's STOPSIGNAL) from the image and SIGRTMAX-2 from the CRI enum reach the container
// and are reported in ContainerStatus.stop_signal; an image STOPSIGNAL that is no signal is refused.
func TestRealTimeStopSignals(t *testing.T) {
	bb := framework.Busybox(t)
	rtImg, err := testimage.Derive(bb, nil, func(c *v1.Config) { c.StopSignal = "SIGRTMIN+3" })
	if err != nil {
		t.Fatal(err)
	}
	badImg, err := testimage.Derive(bb, nil, func(c *v1.Config) { c.StopSignal = "SIGBOGUS" })
	if err != nil {
		t.Fatal(err)
	}
	e := newPodEnvWithImages(t, 73, "", map[string]v1.Image{"it/rtstop:latest": rtImg, "it/badstop:latest": badImg})
	for _, ref := range []string{"it/rtstop", "it/badstop"} {
		if _, err := e.n.Image.PullImage(e.ctx, &runtimeapi.ImageSpec{Image: ref}, nil, nil); err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
	}
	podID, podCfg := e.newPod(t, "stopsignals")
	for _, tc := range []struct {
		name   string
		opt    ctrOpts
		num    string
		status runtimeapi.Signal
	}{
		{"image-rtmin3", func(c *runtimeapi.ContainerConfig) { c.Image.Image = "it/rtstop" }, "37", runtimeapi.Signal_SIGNAL_SIGRTMINPLUS3},
		{"cri-rtmax2", func(c *runtimeapi.ContainerConfig) { c.StopSignal = runtimeapi.Signal_SIGNAL_SIGRTMAXMINUS2 }, "62", runtimeapi.Signal_SIGNAL_SIGRTMAXMINUS2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Only the expected signal ends the container with 0: SIGTERM (ignored by a PID 1 without a handler)
			// would leave it to the SIGKILL after the timeout (137).
			id := e.runContainer(t, podID, podCfg, tc.name, tc.opt,
				"sh", "-c", "trap 'echo got signal "+tc.num+"; exit 0' "+tc.num+"; echo ready; while true; do sleep 0.1; done")
			waitLog(t, filepath.Join(podCfg.LogDirectory, tc.name+".log"), "ready")
			if s := e.containerStatus(t, id).GetStopSignal(); s != tc.status {
				t.Errorf("ContainerStatus.stop_signal = %v, want %v", s, tc.status)
			}
			if err := e.n.Runtime.StopContainer(e.ctx, id, 30); err != nil {
				t.Fatal(err)
			}
			st := e.waitExited(t, id)
			if st.ExitCode != 0 || !strings.Contains(criLogMessages(t, st.LogPath), "got signal "+tc.num) {
				t.Errorf("exit code %d, log %q; want 0 after signal %s", st.ExitCode, criLogMessages(t, st.LogPath), tc.num)
			}
			if st.GetStopSignal() != tc.status {
				t.Errorf("exited ContainerStatus.stop_signal = %v, want %v", st.GetStopSignal(), tc.status)
			}
		})
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "bad"}, Image: &runtimeapi.ImageSpec{Image: "it/badstop"},
		Command: []string{"true"},
	}
	if _, err := e.n.Runtime.CreateContainer(e.ctx, podID, cfg, podCfg); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "SIGBOGUS") {
		t.Errorf("image STOPSIGNAL SIGBOGUS: %v, want InvalidArgument naming it", err)
	}
}

// Item 6: procMount Unmasked with hostUsers: false. kubelet sends empty masked and read-only path lists, which
// give a /proc without masks in a user namespace; kubelet's default lists, and empty lists outside a user
// namespace, keep the masks.
func TestUnmaskedProcInUserNamespace(t *testing.T) {
	e := newPodEnv(t, 74, nil)
	// The mount points below /proc inside the container: masked paths (/proc/keys, /proc/timer_list, ... where
	// the kernel has them) and read-only ones (/proc/sys, ...) are each a mount over the container's /proc.
	const probe = "awk '$5 ~ \"^/proc/.\" {print $5}' /proc/self/mountinfo | sort | tr '\\n' ' '; echo"
	empty := func(c *runtimeapi.ContainerConfig) {
		c.Linux.SecurityContext.MaskedPaths, c.Linux.SecurityContext.ReadonlyPaths = []string{}, []string{}
	}
	defaults := func(c *runtimeapi.ContainerConfig) {
		c.Linux.SecurityContext.MaskedPaths, c.Linux.SecurityContext.ReadonlyPaths = oci.DefaultMaskedPaths(), oci.DefaultReadonlyPaths()
	}

	usernsCfg := e.podConfig(t, "unmasked-userns")
	usernsCfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOptions(0, usernsHostID, 65536)
	usernsPod := e.runPod(t, usernsCfg)
	t.Cleanup(func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, usernsPod) })
	hostPod, hostCfg := e.newPod(t, "unmasked-host")

	for _, tc := range []struct {
		name    string
		podID   string
		podCfg  *runtimeapi.PodSandboxConfig
		opt     ctrOpts
		unmasks bool
	}{
		{"userns-unmasked", usernsPod, usernsCfg, empty, true},
		{"userns-default", usernsPod, usernsCfg, defaults, false},
		{"hostusers-empty", hostPod, hostCfg, empty, false},
	} {
		code, out := e.output(t, tc.podID, tc.podCfg, tc.name, tc.opt, "sh", "-c", probe)
		mounts := strings.Fields(out)
		if code != 0 {
			t.Errorf("%s: probe exit %d: %s", tc.name, code, out)
		}
		if tc.unmasks && len(mounts) != 0 {
			t.Errorf("%s: mounts over /proc: %v, want none (an unmasked /proc)", tc.name, mounts)
		}
		if !tc.unmasks && (!slices.Contains(mounts, "/proc/sys") || !slices.Contains(mounts, "/proc/keys")) {
			t.Errorf("%s: mounts over /proc: %v, want the masked /proc/keys and read-only /proc/sys", tc.name, mounts)
		}
	}
}

// Item 13: a pod without a DNS config on a node whose resolver file is missing or a dangling symlink gets an
// empty resolv.conf; one that cannot be read fails with FailedPrecondition naming it.
func TestPodWithoutHostResolvConf(t *testing.T) {
	dir := t.TempDir()
	hostResolv := filepath.Join(dir, "resolv.conf")
	e := newPodEnvOpts(t, 75, framework.Options{TopConfig: "host_resolv_conf = \"" + hostResolv + "\"\n"}, nil)
	resolvOf := func(name string) string {
		t.Helper()
		cfg := e.podConfig(t, name)
		cfg.DnsConfig = nil
		podID := e.runPod(t, cfg)
		t.Cleanup(func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, podID) })
		code, out := e.output(t, podID, cfg, "cat", nil, "cat", "/etc/resolv.conf")
		if code != 0 {
			t.Fatalf("%s: cat /etc/resolv.conf exit %d: %s", name, code, out)
		}
		return out
	}
	if out := resolvOf("missing"); out != "" {
		t.Errorf("missing host resolver: pod resolv.conf %q, want empty", out)
	}
	// The usual state of /etc/resolv.conf when systemd-resolved is not running.
	if err := os.Symlink(filepath.Join(dir, "run", "systemd", "resolve", "stub-resolv.conf"), hostResolv); err != nil {
		t.Fatal(err)
	}
	if out := resolvOf("dangling"); out != "" {
		t.Errorf("dangling host resolver: pod resolv.conf %q, want empty", out)
	}
	// Once the target exists, it is what pods get.
	if err := os.MkdirAll(filepath.Join(dir, "run", "systemd", "resolve"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "run", "systemd", "resolve", "stub-resolv.conf"), []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := resolvOf("present"); out != "nameserver 192.0.2.53\n" {
		t.Errorf("host resolver present: pod resolv.conf %q", out)
	}
	// A resolver path that exists but cannot be read is the node's fault: FailedPrecondition, nothing left.
	if err := os.Remove(hostResolv); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(hostResolv, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := e.podConfig(t, "unreadable")
	cfg.DnsConfig = nil
	if _, err := e.n.Runtime.RunPodSandbox(e.ctx, cfg, ""); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), hostResolv) {
		t.Errorf("unreadable host resolver: %v, want FailedPrecondition naming %s", err, hostResolv)
	}
	pods, err := e.n.Runtime.ListPodSandbox(e.ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "unreadable"}})
	if err != nil || len(pods) != 0 {
		t.Errorf("pods left by the refused RunPodSandbox: %v, %v", pods, err)
	}
}
