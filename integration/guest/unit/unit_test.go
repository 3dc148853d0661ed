// Package unit tests noded as a systemd service: hack/install, noded.service (Type=notify, Delegate=yes,
// KillMode=process), a pod run through the installed socket, and a `systemctl restart noded` that the pod's
// container survives with the same PID.
//
// It changes the machine it runs on (installs into /usr/local and /etc, starts a service), so it runs only in the
// throwaway systemd guest (/work/shared/vm/run: its kernel command line has nodevm.ctl=) or where
// NODED_UNIT_TEST_HOST=1 says the machine is disposable; elsewhere it skips. hack/guest-test.sh builds noded, this
// test and the busybox test image (as an OCI layout: the guest has no gcc to build it) on the host and runs the
// test in the guest.
//
// Cgroup driver: the config is left at "auto", which picks systemd in the guest (systemd is PID 1 on a pure cgroup
// v2 host), as on a real node: containers then live in scopes below noded.slice, outside noded.service's cgroup,
// which is what lets them survive a restart. NODED_UNIT_CGROUP_DRIVER=cgroupfs tests the cgroupfs driver (with
// the absolute parent /noded-guest) instead.
package unit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	"github.com/noded/noded/integration/framework"
)

const socket = "/run/noded/noded.sock"

type (
	remoteRuntime = internalapi.RuntimeService
	remoteImage   = internalapi.ImageManagerService
)

func guestOnly(t *testing.T) {
	t.Helper()
	cmdline, _ := os.ReadFile("/proc/cmdline")
	if !strings.Contains(string(cmdline), "nodevm.ctl=") && os.Getenv("NODED_UNIT_TEST_HOST") != "1" {
		t.Skip("installs noded as a system service: runs only in the systemd test guest (or with NODED_UNIT_TEST_HOST=1)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		t.Skip("systemd is not the init system")
	}
}

// repoRoot finds the checkout: the nearest parent of the working directory with hack/install.
func repoRoot(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("NODED_SRC"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "install")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no checkout with hack/install above the working directory (set NODED_SRC)")
		}
		dir = parent
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// unitProps returns `systemctl show noded` properties.
func unitProps(t *testing.T, names ...string) map[string]string {
	t.Helper()
	out := run(t, "systemctl", "show", "noded", "-p", strings.Join(names, ","))
	props := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			props[k] = v
		}
	}
	return props
}

func journal(t *testing.T) string {
	out, _ := exec.Command("journalctl", "-u", "noded", "--no-pager", "-n", "200").CombinedOutput()
	return string(out)
}

func connect(t *testing.T, ctx context.Context) (remoteRuntime, remoteImage) {
	t.Helper()
	rt, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint("unix://" + socket).
		WithConnectionTimeout(2 * time.Minute).Build(ctx)
	if err != nil {
		t.Fatalf("connect runtime service: %v", err)
	}
	img, err := remote.NewRemoteImageServiceBuilder().WithEndpoint("unix://" + socket).
		WithConnectionTimeout(10 * time.Minute).Build(ctx)
	if err != nil {
		t.Fatalf("connect image service: %v", err)
	}
	return rt, img
}

func containerPID(t *testing.T, ctx context.Context, rt remoteRuntime, id string) (int, runtimeapi.ContainerState) {
	t.Helper()
	st, err := rt.ContainerStatus(ctx, id, true)
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil {
		t.Fatalf("verbose info: %v", err)
	}
	return info.Pid, st.GetStatus().GetState()
}

func TestSystemdUnit(t *testing.T) {
	guestOnly(t)
	root := repoRoot(t)
	bin := os.Getenv("NODED_BINARY")
	if bin == "" {
		bin = filepath.Join(root, "bin", "noded")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("noded binary: %v (build it on the host: CGO_ENABLED=0 go build -o bin/noded ./cmd/noded)", err)
	}
	// The busybox test image, served by a registry in this process as docker.io's only mirror.
	host := framework.Registry(t, map[string]v1.Image{"library/busybox:latest": framework.Busybox(t)})

	// 1. Install.
	cmd := exec.Command(filepath.Join(root, "hack", "install"))
	cmd.Env = append(os.Environ(), "NODED_BINARY="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/install: %v\n%s", err, out)
	}
	for _, f := range []string{"/usr/local/bin/noded", "/etc/noded/config.toml", "/etc/systemd/system/noded.service"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("not installed: %v", err)
		}
	}
	if fi, err := os.Stat("/etc/noded/config.d"); err != nil || !fi.IsDir() {
		t.Fatalf("config.d not installed: %v", err)
	}
	if m, _ := filepath.Glob("/etc/cni/net.d/*.conflist"); len(m) == 0 {
		t.Fatal("no CNI conflist installed")
	}
	driver := os.Getenv("NODED_UNIT_CGROUP_DRIVER")
	if driver == "" {
		driver = "auto"
	}
	dropIn := fmt.Sprintf("cgroup_driver = %q\n", driver)
	if driver == "cgroupfs" {
		dropIn += "cgroup_parent = \"/noded-guest\"\n"
	}
	if runc := os.Getenv("NODED_TEST_RUNC"); runc != "" {
		// The runc hack/guest-test.sh shares in (the host's build, newer than the guest's Debian runc).
		dropIn += fmt.Sprintf("[runtimes.runc]\npath = %q\n", runc)
	}
	dropIn += fmt.Sprintf("[registry.hosts.\"docker.io\"]\nmirrors = [{ url = \"http://%s\" }]\nmirrors_only = true\n", host)
	if err := os.WriteFile("/etc/noded/config.d/50-guest-test.toml", []byte(dropIn), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("systemctl", "stop", "noded").Run()
		if t.Failed() {
			t.Logf("--- journalctl -u noded ---\n%s", journal(t))
		}
	})

	// 2. Start: with Type=notify, systemctl returns once noded reported READY=1, so the socket answers now.
	run(t, "systemctl", "start", "noded")
	props := unitProps(t, "ActiveState", "MainPID", "Type", "Delegate", "KillMode", "OOMScoreAdjust", "LimitNOFILE", "Restart", "ControlGroup")
	want := map[string]string{"ActiveState": "active", "Type": "notify", "Delegate": "yes", "KillMode": "process",
		"OOMScoreAdjust": "-999", "LimitNOFILE": "1048576", "Restart": "on-failure"}
	for k, v := range want {
		if props[k] != v {
			t.Errorf("noded.service %s = %q, want %q", k, props[k], v)
		}
	}
	firstPID := props["MainPID"]
	if adj, _ := os.ReadFile("/proc/" + firstPID + "/oom_score_adj"); strings.TrimSpace(string(adj)) != "-999" {
		t.Errorf("noded's oom_score_adj = %q", adj)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rt, img := connect(t, ctx)
	st, err := rt.Status(ctx, false)
	if err != nil {
		t.Fatalf("Status right after systemctl start: %v", err)
	}
	for _, c := range st.GetStatus().GetConditions() {
		if !c.Status {
			t.Errorf("condition %s is false: %s %s", c.Type, c.Reason, c.Message)
		}
	}
	rc, err := rt.RuntimeConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := rc.GetLinux().GetCgroupDriver()
	t.Logf("noded started as PID %s in %s; cgroup driver %v", firstPID, props["ControlGroup"], got)
	if wantDriver := runtimeapi.CgroupDriver_SYSTEMD; driver != "cgroupfs" && got != wantDriver {
		t.Errorf("cgroup driver = %v, want %v on a systemd + cgroup v2 host", got, wantDriver)
	} else if driver == "cgroupfs" && got != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("cgroup driver = %v, want cgroupfs as configured", got)
	}

	// 3. A pod with a long-running container, through the installed socket.
	if _, err := img.PullImage(ctx, &runtimeapi.ImageSpec{Image: "busybox"}, nil, nil); err != nil {
		t.Fatalf("PullImage: %v", err)
	}
	podCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "unit", Namespace: "guest", Uid: "unit-uid"},
		Hostname:     "unit",
		LogDirectory: t.TempDir(),
		// As kubelet sends (the guest has no /etc/resolv.conf to copy).
		DnsConfig: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}},
		Linux:     &runtimeapi.LinuxPodSandboxConfig{},
	}
	podID, err := rt.RunPodSandbox(ctx, podCfg, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	defer func() {
		_ = rt.StopPodSandbox(context.Background(), podID)
		_ = rt.RemovePodSandbox(context.Background(), podID)
	}()
	ctrID, err := rt.CreateContainer(ctx, podID, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "sleeper"},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"sleep", "3600"},
		LogPath:  "sleeper.log",
	}, podCfg)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if err := rt.StartContainer(ctx, ctrID); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	pid, state := containerPID(t, ctx, rt, ctrID)
	if state != runtimeapi.ContainerState_CONTAINER_RUNNING || pid <= 0 {
		t.Fatalf("container state %v pid %d", state, pid)
	}
	cg, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	t.Logf("container PID %d, cgroup %s", pid, strings.TrimSpace(string(cg)))
	if strings.Contains(string(cg), props["ControlGroup"]+"/") || strings.HasSuffix(strings.TrimSpace(string(cg)), props["ControlGroup"]) {
		t.Errorf("the container runs inside noded.service's cgroup %s: a restart would take it down", props["ControlGroup"])
	}

	// 4. Restart noded: the container keeps running, with the same PID.
	run(t, "systemctl", "restart", "noded")
	after := unitProps(t, "ActiveState", "MainPID", "NRestarts")
	if after["ActiveState"] != "active" || after["MainPID"] == firstPID || after["MainPID"] == "0" {
		t.Fatalf("after restart: %v (PID before %s)", after, firstPID)
	}
	rt, _ = connect(t, ctx)
	pid2, state2 := containerPID(t, ctx, rt, ctrID)
	if state2 != runtimeapi.ContainerState_CONTAINER_RUNNING || pid2 != pid {
		t.Fatalf("after restart: container state %v pid %d, want RUNNING with pid %d", state2, pid2, pid)
	}
	if comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err != nil || strings.TrimSpace(string(comm)) != "sleep" {
		t.Fatalf("container process %d after restart: %q %v", pid, comm, err)
	}
	pods, err := rt.ListPodSandbox(ctx, nil)
	if err != nil || len(pods) != 1 || pods[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("after restart: pods %v, %v", pods, err)
	}

	// 5. The container still works through the restarted noded: stop it and see the exit recorded.
	if err := rt.StopContainer(ctx, ctrID, 5); err != nil {
		t.Fatalf("StopContainer after restart: %v", err)
	}
	_, state3 := containerPID(t, ctx, rt, ctrID)
	if state3 != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Fatalf("after StopContainer: state %v", state3)
	}
	t.Logf("noded restarted as PID %s; container %s kept PID %d", after["MainPID"], ctrID[:12], pid)
}
