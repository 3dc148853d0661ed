// Package cgroup tests noded's cgroup drivers on a host with systemd as PID 1 and a pure cgroup v2 hierarchy (the
// test guest of hack/guest-test.sh): the real noded, runc and conmon, driven through the CRI, with the systemd
// driver (containers in transient scopes of kubelet-style pod slices) and with the cgroupfs driver (absolute
// paths). Elsewhere every test skips.
package cgroup

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/cgroupsv2"
	"github.com/noded/noded/integration/framework"
)

// RuncEnv names the runc binary noded uses in the guest (hack/guest-test.sh shares the host's in); empty means
// the one on PATH.
const RuncEnv = "NODED_TEST_RUNC"

// requireSystemdV2 skips unless systemd is PID 1 on a pure cgroup v2 hierarchy.
func requireSystemdV2(t *testing.T) {
	t.Helper()
	framework.RequireRoot(t)
	if h := cgroupsv2.DetectHost(); !h.SystemdPID1 || !h.Unified {
		t.Skip("needs systemd as PID 1 on a pure cgroup v2 hierarchy (run hack/guest-test.sh)")
	}
}

// env is one noded with one cgroup driver, a registry with busybox and a CNI network.
type env struct {
	driver string
	n      *framework.Noded
	ctx    context.Context
	// top is the test's own kubelet-like root ("itpods"): pods get kubelet's parent forms below it.
	top string
}

func newEnv(t *testing.T, driver string, netIdx int) *env {
	t.Helper()
	var config string
	if runc := os.Getenv(RuncEnv); runc != "" {
		config = fmt.Sprintf("[runtimes.runc]\npath = %q\n", runc)
	}
	e := &env{driver: driver, top: "itpods"}
	// Whatever a failed test leaves below the test's root goes (registered before noded's own cleanup, so it
	// runs after it).
	t.Cleanup(func() {
		if driver == cgroupsv2.DriverSystemd {
			_ = exec.Command("systemctl", "stop", e.top+".slice").Run()
			for _, err := range framework.RemoveCgroupTree("/" + e.top + ".slice") {
				t.Errorf("cleanup: %v", err)
			}
			return
		}
		for _, err := range framework.RemoveCgroupTree("/" + e.top) {
			t.Errorf("cleanup: %v", err)
		}
	})
	p := framework.NewPodEnv(t, netIdx, framework.Options{CgroupDriver: driver, Config: config}, nil, 10*time.Minute)
	e.n, e.ctx = p.Noded, p.Ctx
	return e
}

// parent is the cgroup parent kubelet sends for a burstable pod with this UID under the env's driver.
func (e *env) parent(uid string) string {
	if e.driver == cgroupsv2.DriverSystemd {
		return fmt.Sprintf("/%[1]s.slice/%[1]s-burstable.slice/%[1]s-burstable-pod%[2]s.slice", e.top, uid)
	}
	return fmt.Sprintf("/%s/burstable/pod%s", e.top, uid)
}

// cgroupDir is where the container (or pod init) named name of a pod under parent must have its cgroup,
// worked out independently of noded's code: a scope noded-<name>.scope in the slice, or <parent>/<name>.
func (e *env) cgroupDir(parent, name string) string {
	if e.driver == cgroupsv2.DriverSystemd {
		return filepath.Join("/sys/fs/cgroup", parent, "noded-"+name+".scope")
	}
	return filepath.Join("/sys/fs/cgroup", parent, name)
}

func (e *env) podConfig(t *testing.T, name, uid string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "guest", Uid: uid},
		Hostname:     name,
		LogDirectory: filepath.Join(t.TempDir(), "logs"),
		// As kubelet sends for ClusterFirst pods (the guest has no /etc/resolv.conf of its own).
		DnsConfig: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"guest.svc.cluster.local"}},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: e.parent(uid),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
			},
		},
	}
}

func (e *env) runPod(t *testing.T, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	id, err := e.n.Runtime.RunPodSandbox(e.ctx, cfg, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	return id
}

func (e *env) createContainer(t *testing.T, pod string, podCfg *runtimeapi.PodSandboxConfig, name string,
	res *runtimeapi.LinuxContainerResources, cmd ...string) string {
	t.Helper()
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  cmd,
		LogPath:  name + ".log",
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: res,
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: podCfg.GetLinux().GetSecurityContext().GetNamespaceOptions(),
			},
		},
	}
	id, err := e.n.Runtime.CreateContainer(e.ctx, pod, cfg, podCfg)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	return id
}

// removePod stops and removes the pod (and its containers) and checks the call succeeded.
func (e *env) removePod(t *testing.T, pod string) {
	t.Helper()
	if err := e.n.Runtime.StopPodSandbox(e.ctx, pod); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if err := e.n.Runtime.RemovePodSandbox(e.ctx, pod); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
}

// waitLog waits until the container's log has a line containing s.
func waitLog(t *testing.T, path, s string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), s) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%q not logged in %s:\n%s", s, path, b)
}

func (e *env) waitExited(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	return e.n.WaitExited(e.ctx, t, id, 2*time.Minute)
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return strings.TrimSpace(string(b))
}

// readKV returns the value of key in a flat-keyed cgroup file (cpu.stat, memory.events).
func readKV(t *testing.T, dir, name, key string) uint64 {
	t.Helper()
	for _, line := range strings.Split(readFile(t, dir, name), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("%s %s: %v", name, key, err)
			}
			return n
		}
	}
	t.Fatalf("%s has no %s", name, key)
	return 0
}

// unitProps returns systemd's view of a unit: `systemctl show -p ...`.
func unitProps(t *testing.T, unit string, props ...string) map[string]string {
	t.Helper()
	args := []string{"show", unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	out, err := exec.Command("systemctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("systemctl %v: %v\n%s", args, err, out)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// nodedScopes lists the loaded systemd units named noded-*.scope (any state).
func nodedScopes(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("systemctl", "list-units", "--all", "--plain", "--no-legend", "noded-*.scope").CombinedOutput()
	if err != nil {
		t.Fatalf("systemctl list-units: %v\n%s", err, out)
	}
	var units []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			units = append(units, f[0])
		}
	}
	return units
}

// assertGone checks that a container's cgroup (and, under systemd, its scope unit) no longer exists.
func (e *env) assertGone(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cgroup %s still exists (%v)", dir, err)
	}
	if e.driver == cgroupsv2.DriverSystemd {
		unit := filepath.Base(dir)
		if p := unitProps(t, unit, "LoadState", "ActiveState"); p["LoadState"] != "not-found" {
			t.Errorf("scope %s still loaded: %v", unit, p)
		}
	}
}

func TestCgroupDrivers(t *testing.T) {
	requireSystemdV2(t)
	for i, driver := range []string{cgroupsv2.DriverSystemd, cgroupsv2.DriverCgroupfs} {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver, i)
			t.Run("RuntimeConfig", e.testRuntimeConfig)
			t.Run("Parents", e.testParents)
			t.Run("Resources", e.testResources)
			t.Run("OOMKilled", e.testOOMKilled)
			t.Run("PodInit", e.testPodInit)
			t.Run("PodCgroupThroughHostPath", e.testPodCgroupThroughHostPath)
			if driver == cgroupsv2.DriverSystemd {
				if left := nodedScopes(t); len(left) > 0 {
					t.Errorf("scopes left after every pod was removed: %v", left)
				}
			}
		})
	}
}

func (e *env) testRuntimeConfig(t *testing.T) {
	rc, err := e.n.Runtime.RuntimeConfig(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := runtimeapi.CgroupDriver_CGROUPFS
	if e.driver == cgroupsv2.DriverSystemd {
		want = runtimeapi.CgroupDriver_SYSTEMD
	}
	if got := rc.GetLinux().GetCgroupDriver(); got != want {
		t.Errorf("RuntimeConfig cgroup driver = %v, want %v", got, want)
	}
}

// testParents: a parent in the other driver's form is refused before anything is made.
func (e *env) testParents(t *testing.T) {
	cfg := e.podConfig(t, "badparent", "bad1")
	if e.driver == cgroupsv2.DriverSystemd {
		cfg.Linux.CgroupParent = "/" + e.top + "/burstable/podbad1"
	} else {
		cfg.Linux.CgroupParent = e.top + "-burstable-podbad1.slice"
	}
	_, err := e.n.Runtime.RunPodSandbox(e.ctx, cfg, "")
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("RunPodSandbox with parent %q = %v, want InvalidArgument", cfg.Linux.CgroupParent, err)
	}
	pods, err := e.n.Runtime.ListPodSandbox(e.ctx, nil)
	if err != nil || len(pods) != 0 {
		t.Fatalf("pods after a refused RunPodSandbox: %v, %v", pods, err)
	}
}

func (e *env) testResources(t *testing.T) {
	const uid = "res1"
	cfg := e.podConfig(t, "resources", uid)
	pod := e.runPod(t, cfg)
	res := &runtimeapi.LinuxContainerResources{
		CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20,
		Unified: map[string]string{"pids.max": "64"},
	}
	// 16 MiB in the pod's /dev/shm (charged to the container's memory cgroup), some CPU, then idle.
	id := e.createContainer(t, pod, cfg, "limits", res, "sh", "-c",
		"dd if=/dev/zero of=/dev/shm/fill bs=1M count=16 2>/dev/null; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo ready; exec sleep 3600")
	if err := e.n.Runtime.StartContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	waitLog(t, filepath.Join(cfg.LogDirectory, "limits.log"), "ready")

	dir := e.cgroupDir(e.parent(uid), id)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("container cgroup: %v", err)
	}
	st, err := e.n.Runtime.ContainerStatus(e.ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		CgroupsPath string `json:"cgroupsPath"`
	}
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil {
		t.Fatalf("verbose info: %v", err)
	}
	wantPath := filepath.Join(e.parent(uid), id)
	if e.driver == cgroupsv2.DriverSystemd {
		wantPath = filepath.Base(e.parent(uid)) + ":noded:" + id
	}
	if info.CgroupsPath != wantPath {
		t.Errorf("OCI cgroupsPath = %q, want %q", info.CgroupsPath, wantPath)
	}
	if e.driver == cgroupsv2.DriverSystemd {
		p := unitProps(t, filepath.Base(dir), "Delegate", "ActiveState", "ControlGroup")
		if p["Delegate"] != "yes" || p["ActiveState"] != "active" || p["ControlGroup"] != strings.TrimPrefix(dir, "/sys/fs/cgroup") {
			t.Errorf("scope %s: %v, want Delegate=yes, active, in %s", filepath.Base(dir), p, dir)
		}
	}
	if got := readFile(t, dir, "memory.max"); got != strconv.Itoa(64<<20) {
		t.Errorf("memory.max = %s, want %d", got, 64<<20)
	}
	if got := readFile(t, dir, "cpu.max"); got != "50000 100000" {
		t.Errorf("cpu.max = %q, want \"50000 100000\"", got)
	}
	// runc converts shares to a weight: linearly before 1.3 (20 for 512), on a curve since (59); 100 is unset.
	if got := readFile(t, dir, "cpu.weight"); got != "20" && got != "59" {
		t.Errorf("cpu.weight = %s, want runc's conversion of 512 shares (20 or 59)", got)
	}
	if got := readFile(t, dir, "pids.max"); got != "64" {
		t.Errorf("pids.max = %s, want 64", got)
	}

	// Stats are the cgroup's own counters: CPU read before and after bracket the RPC's value.
	cpuBefore := readKV(t, dir, "cpu.stat", "usage_usec") * 1000
	memBefore, _ := strconv.ParseUint(readFile(t, dir, "memory.current"), 10, 64)
	cs, err := e.n.Runtime.ContainerStats(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	cpuAfter := readKV(t, dir, "cpu.stat", "usage_usec") * 1000
	memAfter, _ := strconv.ParseUint(readFile(t, dir, "memory.current"), 10, 64)
	cpu := cs.GetCpu().GetUsageCoreNanoSeconds().GetValue()
	if cpu == 0 || cpu < cpuBefore || cpu > cpuAfter {
		t.Errorf("CPU usage %d ns, want the cgroup's, between %d and %d", cpu, cpuBefore, cpuAfter)
	}
	mem := cs.GetMemory().GetUsageBytes().GetValue()
	const slack = 1 << 20 // the idle shell's pages may move a little between the reads
	if mem < 16<<20 || mem+slack < min(memBefore, memAfter) || mem > max(memBefore, memAfter)+slack {
		t.Errorf("memory usage %d, want the cgroup's memory.current (%d..%d) and at least 16 MiB", mem, memBefore, memAfter)
	}

	// The pod's stats are its parent cgroup's (the pod slice under systemd), which holds the container's usage.
	ps, err := e.n.Runtime.PodSandboxStats(e.ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if podCPU := ps.GetLinux().GetCpu().GetUsageCoreNanoSeconds().GetValue(); podCPU < cpu {
		t.Errorf("pod CPU usage %d < its container's %d", podCPU, cpu)
	}

	// Updates reach the live cgroup and are kept.
	upd := &runtimeapi.LinuxContainerResources{CpuShares: 512, CpuQuota: 20000, CpuPeriod: 100000, MemoryLimitInBytes: 96 << 20}
	if err := e.n.Runtime.UpdateContainerResources(e.ctx, id, &runtimeapi.ContainerResources{Linux: upd}); err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	if got := readFile(t, dir, "memory.max"); got != strconv.Itoa(96<<20) {
		t.Errorf("memory.max after update = %s, want %d", got, 96<<20)
	}
	if got := readFile(t, dir, "cpu.max"); got != "20000 100000" {
		t.Errorf("cpu.max after update = %q, want \"20000 100000\"", got)
	}
	if e.driver == cgroupsv2.DriverSystemd {
		// systemd's unit carries the new limits too, so a reload of systemd does not undo them.
		p := unitProps(t, filepath.Base(dir), "MemoryMax", "CPUQuotaPerSecUSec")
		if p["MemoryMax"] != strconv.Itoa(96<<20) || p["CPUQuotaPerSecUSec"] != "200ms" {
			t.Errorf("scope properties after update: %v, want MemoryMax=%d CPUQuotaPerSecUSec=200ms", p, 96<<20)
		}
	}
	st, err = e.n.Runtime.ContainerStatus(e.ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.GetStatus().GetResources().GetLinux(); r.GetMemoryLimitInBytes() != 96<<20 || r.GetCpuQuota() != 20000 {
		t.Errorf("ContainerStatus resources after update = %v", r)
	}

	// Stop and remove leave no cgroup and no scope.
	if err := e.n.Runtime.StopContainer(e.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.n.Runtime.RemoveContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	e.assertGone(t, dir)
	e.removePod(t, pod)
}

func (e *env) testOOMKilled(t *testing.T) {
	const uid = "oom1"
	cfg := e.podConfig(t, "oom", uid)
	pod := e.runPod(t, cfg)
	// dd's 64 MiB buffer does not fit in 32 MiB: the kernel's OOM killer kills it (it is the container's init).
	id := e.createContainer(t, pod, cfg, "hog", &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 32 << 20},
		"dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
	if err := e.n.Runtime.StartContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	st := e.waitExited(t, id)
	if st.Reason != "OOMKilled" || st.ExitCode != 137 {
		t.Errorf("exit: reason %q code %d, want OOMKilled 137", st.Reason, st.ExitCode)
	}
	if err := e.n.Runtime.RemoveContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	e.assertGone(t, e.cgroupDir(e.parent(uid), id))
	e.removePod(t, pod)
}

// testPodInit: a pod sharing one PID namespace has an init of noded's, in a cgroup of its own under the pod's
// parent, removed with the pod.
func (e *env) testPodInit(t *testing.T) {
	const uid = "init1"
	cfg := e.podConfig(t, "sharedpid", uid)
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	pod := e.runPod(t, cfg)
	dir := e.cgroupDir(e.parent(uid), "podinit-"+pod[:12])
	procs := readFile(t, dir, "cgroup.procs")
	if procs == "" {
		t.Errorf("pod init cgroup %s has no process", dir)
	}
	if e.driver == cgroupsv2.DriverSystemd {
		if p := unitProps(t, filepath.Base(dir), "Delegate", "ActiveState"); p["Delegate"] != "yes" || p["ActiveState"] != "active" {
			t.Errorf("pod init scope: %v", p)
		}
	}
	id := e.createContainer(t, pod, cfg, "app", nil, "sleep", "3600")
	if err := e.n.Runtime.StartContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	// The container's processes are in its own cgroup, not the init's.
	if slices.Contains(strings.Fields(readFile(t, e.cgroupDir(e.parent(uid), id), "cgroup.procs")), procs) {
		t.Errorf("the pod init's process is in the container's cgroup")
	}
	e.removePod(t, pod)
	e.assertGone(t, dir)
	e.assertGone(t, e.cgroupDir(e.parent(uid), id))
}

// TestAutoDriverIsSystemd: with the default configuration ("auto") noded picks the systemd driver here and says
// so to kubelet.
func TestAutoDriverIsSystemd(t *testing.T) {
	requireSystemdV2(t)
	n := framework.Start(t, framework.Options{CgroupDriver: "auto", CgroupParent: "nodeditauto.slice"})
	rc, err := n.Runtime.RuntimeConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := rc.GetLinux().GetCgroupDriver(); got != runtimeapi.CgroupDriver_SYSTEMD {
		t.Errorf("RuntimeConfig cgroup driver with \"auto\" = %v, want SYSTEMD", got)
	}
}

// testPodCgroupThroughHostPath does what the node e2e suite's pod cgroup checks do (test/e2e/common/node/framework/
// cgroups in Kubernetes v1.37: the in-place resize and pod-level resources specs): the first container mounts the
// host's /sys/fs/cgroup at /sysfscgroup (a hostPath volume), runs as a non-root user and finds its pod's cgroup
// with `find /sysfscgroup -name '*<uid with _>*' -o -name '*<uid>*'`, which must print exactly the pod's
// parent (kubelet's slice kubepods-burstable-pod<uid with _>.slice under systemd, pod<uid> under cgroupfs: nothing
// of noded's below it may carry the UID), then reads the pod's cpu.max there. It also logs the CPU one such exec
// costs inside the container's cgroup, the cost a CPU limit throttles: at the suite's 10m limits (cpu.max
// "1000 100000") the exec takes at least 100 times that in wall time.
func (e *env) testPodCgroupThroughHostPath(t *testing.T) {
	const uid = "5d0c1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
	nameUID := uid
	if e.driver == cgroupsv2.DriverSystemd {
		// kubelet's systemd names escape the UID's dashes (cm.GetPodContainerName: '-' is systemd's separator)
		nameUID = strings.ReplaceAll(uid, "-", "_")
	}
	cfg := e.podConfig(t, "hostcg", uid)
	cfg.Linux.CgroupParent = e.parent(nameUID)
	pod := e.runPod(t, cfg)
	ccfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c1"},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"sleep", "3600"},
		LogPath:  "c1.log",
		Mounts:   []*runtimeapi.Mount{{ContainerPath: "/sysfscgroup", HostPath: "/sys/fs/cgroup"}},
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{CpuShares: 2, CpuPeriod: 100000, CpuQuota: 1000},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(),
				RunAsUser:        &runtimeapi.Int64Value{Value: 1000},
			},
		},
	}
	id, err := e.n.Runtime.CreateContainer(e.ctx, pod, ccfg, cfg)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if err := e.n.Runtime.StartContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	dir := e.cgroupDir(e.parent(nameUID), id)
	if got := readFile(t, dir, "cpu.max"); got != "1000 100000" {
		t.Fatalf("container cpu.max = %q, want \"1000 100000\"", got)
	}
	// Lift the container's limit for the checks below (they cost a throttled exec minutes in the guest), as
	// kubelet's resize does, and keep the pod's own parent limit for the container to read.
	lifted := &runtimeapi.LinuxContainerResources{CpuShares: 2, CpuPeriod: 100000, CpuQuota: 50000}
	if err := e.n.Runtime.UpdateContainerResources(e.ctx, id, &runtimeapi.ContainerResources{Linux: lifted}); err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}

	find := fmt.Sprintf("find /sysfscgroup -name '*%s*' -o -name '*%s*'", strings.ReplaceAll(uid, "-", "_"), uid)
	before := readKV(t, dir, "cpu.stat", "usage_usec")
	stdout, stderr, err := e.n.Runtime.ExecSync(e.ctx, id, []string{"/bin/sh", "-c", find}, 2*time.Minute)
	after := readKV(t, dir, "cpu.stat", "usage_usec")
	if err != nil || len(stderr) > 0 {
		t.Fatalf("exec %q: %v, stderr %q", find, err, stderr)
	}
	want := "/sysfscgroup" + e.parent(nameUID)
	if got := strings.TrimSpace(string(stdout)); got != want {
		t.Fatalf("the suite's find printed %q, want exactly the pod's cgroup %q", got, want)
	}
	t.Logf("one exec of the suite's find cost %d us of CPU in the container's cgroup (%s): at cpu.max \"1000 100000\" "+
		"that is at least %.1f s wall", after-before, dir, float64(after-before)/1000*100/1e3)

	hostCPUMax := readFile(t, filepath.Join("/sys/fs/cgroup", e.parent(nameUID)), "cpu.max")
	stdout, _, err = e.n.Runtime.ExecSync(e.ctx, id, []string{"/bin/sh", "-c", "head -n 1 " + want + "/cpu.max"}, 2*time.Minute)
	if err != nil {
		t.Fatalf("read the pod's cpu.max in the container: %v", err)
	}
	if got := strings.TrimSpace(string(stdout)); got != hostCPUMax {
		t.Errorf("the pod's cpu.max seen in the container = %q, on the host %q", got, hostCPUMax)
	}
	e.removePod(t, pod)
	e.assertGone(t, dir)
}
