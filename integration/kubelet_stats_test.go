package integration

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// kubeletSysctls are the host sysctls kubelet rewrites at start; the test puts them back.
var kubeletSysctls = []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"}

// summaryPod is the part of kubelet's /stats/summary pod entry the test reads.
type summaryPod struct {
	PodRef struct {
		Name, Namespace, UID string
	} `json:"podRef"`
	Network *struct {
		Name    string  `json:"name"`
		RxBytes *uint64 `json:"rxBytes"`
		TxBytes *uint64 `json:"txBytes"`
	} `json:"network"`
	CPU *struct {
		UsageCoreNanoSeconds *uint64 `json:"usageCoreNanoSeconds"`
	} `json:"cpu"`
}

// TestKubeletSummaryShowsPodNetwork runs a real kubelet (standalone, a static pod, NODED_KUBELET names the
// binary, e.g. `$(hack/k8s/build.sh --print kubelet)/kubelet`) on noded and reads its /stats/summary. noded has
// no infra container, so the cAdvisor half of kubelet's default CRI stats provider finds no network of the pod;
// with the PodAndContainerStatsFromCRI feature gate kubelet takes everything, the pod network included, from
// ListPodSandboxStats. The gated run (with EventedPLEG too) must show the pod's counters, rising with traffic,
// and kubelet's evented PLEG must take a container's stop event; the default run's result is logged.
func TestKubeletSummaryShowsPodNetwork(t *testing.T) {
	bin := os.Getenv("NODED_KUBELET")
	if bin == "" {
		t.Skip("NODED_KUBELET (the kubelet binary) is not set")
	}
	for _, tc := range []struct {
		name     string
		gate     bool
		wantsNet bool
	}{
		{"PodAndContainerStatsFromCRI", true, true},
		{"default", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) { runKubeletSummary(t, bin, tc.gate, tc.wantsNet) })
	}
}

func runKubeletSummary(t *testing.T, bin string, gate, wantsNet bool) {
	e := newPodEnv(t, 74, nil)
	saveSysctls(t)
	cleanupDevicePluginSocket(t)
	for _, h := range cgroupHierarchies() { // kubelet wants its cgroupRoot to exist
		if err := os.MkdirAll(filepath.Join(h, e.n.CgroupParent), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(e.n.Dir, "kubelet") // removed (and its mounts) with noded's dir
	manifests := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	port, healthz := freePort(t), freePort(t)
	oom, _ := os.ReadFile("/proc/self/oom_score_adj")
	var nofile syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile)
	gates, verbosity := "", "2"
	if gate {
		// EventedPLEG too: its events must carry the pod status (kubelet drops them otherwise, at -v 4 it logs
		// the relists they request).
		gates, verbosity = "featureGates:\n  PodAndContainerStatsFromCRI: true\n  EventedPLEG: true\n", "4"
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: true
cgroupRoot: %q
enforceNodeAllocatable: []
staticPodPath: %s
podLogsDir: %s
fileCheckFrequency: 1s
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
oomScoreAdj: %s
maxOpenFiles: %d
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%"}
%s`, e.n.Socket, e.n.CgroupParent, manifests, filepath.Join(dir, "logs"), port, healthz,
		strings.TrimSpace(string(oom)), nofile.Max, gates)
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	pod := `apiVersion: v1
kind: Pod
metadata: {name: netstats, namespace: default, uid: netstats-uid}
spec:
  containers:
  - name: httpd
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /tmp/www && dd if=/dev/zero of=/tmp/www/blob bs=1024 count=1024 2>/dev/null && exec httpd -f -p 8080 -h /tmp/www"]
  - name: quitter
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "sleep 1; exit 1"]
`
	if err := os.WriteFile(filepath.Join(manifests, "netstats.yaml"), []byte(pod), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(e.n.Dir, "kubelet.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config", filepath.Join(dir, "config.yaml"), "--root-dir", filepath.Join(dir, "root"),
		"--cert-dir", filepath.Join(dir, "pki"), "--hostname-override", "noded-it-kubelet", "-v", verbosity)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	defer func() {
		stop()
		b, _ := os.ReadFile(logf.Name())
		if t.Failed() {
			t.Logf("--- kubelet log ---\n%s", tailLines(string(b), 80))
		} else if errs := errorLines(string(b)); errs != "" {
			t.Logf("--- kubelet's error lines ---\n%s", errs)
		}
		// kubelet leaves its pods running when it stops.
		e.removeAllPods(t)
	}()

	httpc := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // kubelet's self-signed cert
	summary := func() (*summaryPod, error) {
		resp, err := httpc.Get(fmt.Sprintf("https://127.0.0.1:%d/stats/summary", port))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("stats/summary: %s: %s", resp.Status, body)
		}
		var s struct {
			Pods []summaryPod `json:"pods"`
		}
		if err := json.Unmarshal(body, &s); err != nil {
			return nil, err
		}
		for i := range s.Pods {
			if s.Pods[i].PodRef.Name == "netstats-noded-it-kubelet" || s.Pods[i].PodRef.Name == "netstats" {
				return &s.Pods[i], nil
			}
		}
		return nil, errors.New("the static pod is not in stats/summary yet")
	}
	var podIP string
	waitFor(t, 3*time.Minute, "kubelet to run the static pod", func() bool {
		pods, err := e.n.Runtime.ListPodSandbox(e.ctx, &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
		if err != nil || len(pods) == 0 {
			return false
		}
		ctrs, err := e.n.Runtime.ListContainers(e.ctx, &runtimeapi.ContainerFilter{PodSandboxId: pods[0].Id,
			State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
		if err != nil || len(ctrs) == 0 {
			return false
		}
		podIP = e.podIP(t, pods[0].Id)
		return true
	})
	download := func() error {
		resp, err := httpc.Get(fmt.Sprintf("http://%s:8080/blob", podIP))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	waitFor(t, time.Minute, "the pod's httpd to answer", func() bool { return download() == nil })
	var first *summaryPod
	waitFor(t, 3*time.Minute, "the pod in stats/summary with CPU stats", func() bool {
		p, err := summary()
		if err != nil {
			t.Logf("summary: %v", err)
			return false
		}
		first = p
		return p.CPU != nil && p.CPU.UsageCoreNanoSeconds != nil
	})
	if first.Network == nil || first.Network.TxBytes == nil {
		if wantsNet {
			t.Fatalf("stats/summary has no network stats of the pod: %+v", first)
		}
		// Traffic and a later summary (after cAdvisor's housekeeping) change nothing: only logged, as this is
		// kubelet's behaviour, not noded's.
		for i := 0; i < 4; i++ {
			_ = download()
		}
		deadline := time.Now().Add(45 * time.Second)
		for time.Now().Before(deadline) {
			if p, err := summary(); err == nil && p.Network != nil {
				t.Logf("kubelet's default stats provider shows the pod network after all: %+v", *p.Network)
				return
			}
			time.Sleep(5 * time.Second)
		}
		t.Logf("kubelet's default stats provider shows no network stats of the pod, also 45 s after traffic " +
			"(it reads them from cAdvisor's view of an infra container, which noded does not have)")
		return
	}
	t.Logf("pod network in stats/summary: %s rx %d tx %d", first.Network.Name, *first.Network.RxBytes, *first.Network.TxBytes)
	// The quitter container exits (and is restarted): kubelet's evented PLEG takes its stop events.
	waitFor(t, 2*time.Minute, "kubelet's evented PLEG to take a container stop event", func() bool {
		b, _ := os.ReadFile(logf.Name())
		return strings.Contains(string(b), "Evented PLEG: requested pod relist after container termination")
	})
	if b, _ := os.ReadFile(logf.Name()); strings.Contains(string(b), "with nil PodSandboxStatus") {
		t.Error("kubelet dropped container events without a pod sandbox status")
	}
	for i := 0; i < 4; i++ {
		if err := download(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, time.Minute, "the pod's tx bytes in stats/summary to count 4 MiB more", func() bool {
		p, err := summary()
		return err == nil && p.Network != nil && p.Network.TxBytes != nil && *p.Network.TxBytes >= *first.Network.TxBytes+4<<20
	})
}

func cgroupHierarchies() []string {
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	var out []string
	for _, h := range append(hs, "/sys/fs/cgroup") {
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err == nil {
			out = append(out, h)
		}
	}
	return out
}

// saveSysctls restores, at cleanup, the host sysctls kubelet rewrites.
func saveSysctls(t *testing.T) {
	saved := map[string][]byte{}
	for _, k := range kubeletSysctls {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			t.Fatal(err)
		}
		saved[k] = b
	}
	t.Cleanup(func() {
		for k, v := range saved {
			if err := os.WriteFile("/proc/sys/"+k, v, 0o644); err != nil {
				t.Errorf("restore sysctl %s: %v", k, err)
			}
		}
	})
}

// cleanupDevicePluginSocket removes, at cleanup, the device plugin socket kubelet makes in /var/lib/kubelet
// whatever its root dir, and the directories above it, unless they were there before.
func cleanupDevicePluginSocket(t *testing.T) {
	const sock = "/var/lib/kubelet/device-plugins/kubelet.sock"
	var existed []string
	for _, p := range []string{sock, filepath.Dir(sock), "/var/lib/kubelet"} {
		if _, err := os.Lstat(p); err == nil {
			existed = append(existed, p)
		}
	}
	t.Cleanup(func() {
		for _, p := range []string{sock, filepath.Dir(sock), "/var/lib/kubelet"} {
			if !contains(existed, p) {
				_ = os.Remove(p) // directories only if empty
			}
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// errorLines returns klog's error lines of a log, at most 40.
func errorLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "E") && len(out) < 40 {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
