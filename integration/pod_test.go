package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
)

// podEnv is a noded with a registry holding busybox as docker.io/library/busybox:latest and a CNI network of
// the test's own.
type podEnv struct {
	n   *framework.Noded
	net *framework.Network
	ctx context.Context
}

func newPodEnv(t *testing.T, netIdx int, extra map[string]v1.Image) *podEnv {
	return newPodEnvWithImages(t, netIdx, "", extra)
}

// newPodEnvWith is newPodEnv with extra TOML for noded's config.
func newPodEnvWith(t *testing.T, netIdx int, config string) *podEnv {
	return newPodEnvWithImages(t, netIdx, config, nil)
}

func newPodEnvWithImages(t *testing.T, netIdx int, config string, extra map[string]v1.Image) *podEnv {
	t.Helper()
	return fromFramework(framework.NewPodEnv(t, netIdx, framework.Options{Config: config}, extra, 5*time.Minute))
}

// fromFramework is the package's short-named view of a framework.PodEnv.
func fromFramework(p *framework.PodEnv) *podEnv {
	return &podEnv{n: p.Noded, net: p.Network, ctx: p.Ctx}
}

func (e *podEnv) podConfig(t *testing.T, name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "it", Uid: name + "-uid"},
		Hostname:     name,
		LogDirectory: filepath.Join(t.TempDir(), "logs"),
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"it.svc.cluster.local"}, Options: []string{"ndots:5"}},
		Labels:       map[string]string{"app": name},
		// As kubelet sends for a pod without shareProcessNamespace.
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
		}},
	}
}

func (e *podEnv) runPod(t *testing.T, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	id, err := e.n.Runtime.RunPodSandbox(e.ctx, cfg, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	return id
}

func (e *podEnv) createContainer(t *testing.T, podID string, podCfg *runtimeapi.PodSandboxConfig, name string, cmd ...string) string {
	t.Helper()
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  cmd,
		LogPath:  name + ".log",
		Labels:   map[string]string{"container": name},
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: podCfg.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
	id, err := e.n.Runtime.CreateContainer(e.ctx, podID, cfg, podCfg)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	return id
}

func (e *podEnv) waitExited(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	return e.n.WaitExited(e.ctx, t, id, 60*time.Second)
}

func TestPodLifecycle(t *testing.T) {
	e := newPodEnv(t, 0, nil)
	podCfg := e.podConfig(t, "lifecycle")
	podID := e.runPod(t, podCfg)

	// The sandbox is ready with an IP on the test bridge.
	st, err := e.n.Runtime.PodSandboxStatus(e.ctx, podID, true)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("sandbox state %v", st.Status.State)
	}
	if ip := st.Status.GetNetwork().GetIp(); !strings.HasPrefix(ip, e.net.Prefix()) {
		t.Fatalf("pod IP %q not on the test subnet", ip)
	}
	if st.Info["info"] == "" {
		t.Error("verbose status has no info")
	}

	// A container that prints and exits with a code.
	ctrID := e.createContainer(t, podID, podCfg, "printer", "sh", "-c",
		"echo hello; hostname; cat /etc/resolv.conf; echo err >&2; exit 3")
	if err := e.n.Runtime.StartContainer(e.ctx, ctrID); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	cs := e.waitExited(t, ctrID)
	if cs.ExitCode != 3 || cs.Reason != "Error" {
		t.Errorf("exit code %d reason %q, want 3 Error", cs.ExitCode, cs.Reason)
	}
	if cs.StartedAt == 0 || cs.FinishedAt < cs.StartedAt || cs.ImageId == "" {
		t.Errorf("status times/image: %+v", cs)
	}
	logData, err := os.ReadFile(cs.LogPath)
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	log := string(logData)
	for _, want := range []string{" stdout F hello", " stdout F lifecycle", " stdout F nameserver 10.96.0.10",
		" stdout F search it.svc.cluster.local", " stdout F options ndots:5", " stderr F err"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	// Every line is in the CRI format: RFC3339Nano time, stream, tag, message.
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		f := strings.SplitN(line, " ", 4)
		if len(f) < 3 {
			t.Errorf("log line %q is not in CRI format", line)
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil || (f[1] != "stdout" && f[1] != "stderr") || (f[2] != "F" && f[2] != "P") {
			t.Errorf("log line %q is not in CRI format", line)
		}
	}

	// A long-running container: exec, then stop (sleep as PID 1 ignores SIGTERM, so SIGKILL after the timeout).
	sleeper := e.createContainer(t, podID, podCfg, "sleeper", "sleep", "1000")
	if err := e.n.Runtime.StartContainer(e.ctx, sleeper); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := e.n.Runtime.ExecSync(e.ctx, sleeper, []string{"sh", "-c", "echo $((1+1))"}, 10*time.Second)
	if err != nil || strings.TrimSpace(string(stdout)) != "2" {
		t.Fatalf("ExecSync = %q, %v", stdout, err)
	}
	list, err := e.n.Runtime.ListContainers(e.ctx, &runtimeapi.ContainerFilter{
		PodSandboxId: podID, State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if err != nil || len(list) != 1 || list[0].Id != sleeper {
		t.Fatalf("running containers of the pod = %v, %v", list, err)
	}
	start := time.Now()
	if err := e.n.Runtime.StopContainer(e.ctx, sleeper, 1); err != nil {
		t.Fatal(err)
	}
	if cs := e.waitExited(t, sleeper); cs.ExitCode != 137 {
		t.Errorf("stopped sleeper exit code %d, want 137 (SIGKILL)", cs.ExitCode)
	}
	if time.Since(start) < time.Second {
		t.Error("stop did not wait for the timeout before SIGKILL")
	}
	if err := e.n.Runtime.StopContainer(e.ctx, sleeper, 1); err != nil {
		t.Errorf("second stop: %v", err)
	}

	// Stop and remove the pod, twice each; unknown IDs succeed too.
	for i := 0; i < 2; i++ {
		if err := e.n.Runtime.StopPodSandbox(e.ctx, podID); err != nil {
			t.Fatalf("StopPodSandbox #%d: %v", i, err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := e.n.Runtime.RemovePodSandbox(e.ctx, podID); err != nil {
			t.Fatalf("RemovePodSandbox #%d: %v", i, err)
		}
	}
	if err := e.n.Runtime.StopPodSandbox(e.ctx, "doesnotexist"); err != nil {
		t.Errorf("stop unknown: %v", err)
	}
	if _, err := e.n.Runtime.PodSandboxStatus(e.ctx, podID, false); err == nil {
		t.Error("removed sandbox still has a status")
	}
	if cs, err := e.n.Runtime.ListContainers(e.ctx, nil); err != nil || len(cs) != 0 {
		t.Errorf("containers left after pod removal: %v %v", cs, err)
	}
	assertNoLeaks(t, e.n)
}

// assertNoLeaks checks that nothing of removed pods remains: mounts below noded's dirs, pinned namespaces,
// bundles, runtime state.
func assertNoLeaks(t *testing.T, n *framework.Noded) {
	t.Helper()
	if m := framework.MountsBelow(n.Dir); len(m) > 0 {
		// The namespace pin root is a self bind mount by design.
		var rest []string
		for _, p := range m {
			if p != filepath.Join(n.State, "ns") {
				rest = append(rest, p)
			}
		}
		if len(rest) > 0 {
			t.Errorf("mounts left: %v", rest)
		}
	}
	for _, dir := range []string{"pods", "ns", "containers"} {
		entries, _ := os.ReadDir(filepath.Join(n.State, dir))
		if len(entries) > 0 {
			names := make([]string, len(entries))
			for i, e := range entries {
				names[i] = e.Name()
			}
			t.Errorf("%d left in %s: %v", len(entries), dir, names)
		}
	}
}

func TestPodSharedPIDNamespace(t *testing.T) {
	e := newPodEnv(t, 1, nil)
	podCfg := e.podConfig(t, "sharedpid")
	podCfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	podID := e.runPod(t, podCfg)
	a := e.createContainer(t, podID, podCfg, "a", "sleep", "1001")
	b := e.createContainer(t, podID, podCfg, "b", "sleep", "1002")
	for _, id := range []string{a, b} {
		if err := e.n.Runtime.StartContainer(e.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// PID 1 is noded's pod init, and b sees a's process.
	out, _, err := e.n.Runtime.ExecSync(e.ctx, b, []string{"sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o args"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "/init pod-init") || !strings.Contains(string(out), "sleep 1001") {
		t.Fatalf("shared PID namespace not seen:\n%s", out)
	}
	if err := e.n.Runtime.RemovePodSandbox(e.ctx, podID); err != nil {
		t.Fatal(err)
	}
	assertNoLeaks(t, e.n)
}
