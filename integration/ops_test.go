package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
	"github.com/noded/noded/internal/testimage"
)

// Network indexes 70-79 belong to the operations tests.
const opsNetMetrics = 70

var metricsAddrRE = regexp.MustCompile(`"Metrics endpoint serving" address="([^"]+)"`)

// waitDaemonLog waits until noded's log contains s at least count times and returns the log.
func waitDaemonLog(t *testing.T, n *framework.Noded, s string, count int) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		log := n.Log()
		if strings.Count(log, s) >= count {
			return log
		}
		if time.Now().After(deadline) {
			t.Fatalf("noded log has %q %d times, want %d:\n%s", s, strings.Count(log, s), count, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrape fetches the metrics endpoint and returns its samples by "name{labels}" as exposed (labels sorted by
// name, as client_golang writes them).
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s: %s", resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsAfterPodLifecycle(t *testing.T) {
	e := newPodEnvWith(t, opsNetMetrics, "[metrics]\naddress = \"127.0.0.1:0\"\n")
	m := metricsAddrRE.FindStringSubmatch(waitDaemonLog(t, e.n, "Metrics endpoint serving", 1))
	if m == nil {
		t.Fatalf("no metrics address in the log")
	}
	addr := m[1]

	podCfg := e.podConfig(t, "metrics")
	podID := e.runPod(t, podCfg)
	ctrID := e.createContainer(t, podID, podCfg, "sleeper", "sleep", "300")
	if err := e.n.Runtime.StartContainer(e.ctx, ctrID); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	// An expected error: the status of a container that does not exist.
	if _, err := e.n.Runtime.ContainerStatus(e.ctx, "does-not-exist", false); err == nil {
		t.Fatal("ContainerStatus of an unknown container succeeded")
	}

	running := scrape(t, addr)
	for series, want := range map[string]float64{
		`noded_pods{state="ready"}`:          1,
		`noded_pods{state="notready"}`:       0,
		`noded_containers{state="running"}`:  1,
		`noded_containers{state="exited"}`:   0,
		`noded_containers{state="created"}`:  0,
		`noded_containers{state="creating"}`: 0,
	} {
		if got, ok := running[series]; !ok || got != want {
			t.Errorf("while running: %s = %v (present %v), want %v", series, got, ok, want)
		}
	}

	if err := e.n.Runtime.StopContainer(e.ctx, ctrID, 0); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	if err := e.n.Runtime.StopPodSandbox(e.ctx, podID); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	stopped := scrape(t, addr)
	if stopped[`noded_pods{state="notready"}`] != 1 || stopped[`noded_containers{state="exited"}`] != 1 ||
		stopped[`noded_containers{state="running"}`] != 0 {
		t.Errorf("after stop: pods notready=%v, containers exited=%v running=%v", stopped[`noded_pods{state="notready"}`],
			stopped[`noded_containers{state="exited"}`], stopped[`noded_containers{state="running"}`])
	}
	if err := e.n.Runtime.RemovePodSandbox(e.ctx, podID); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}

	s := scrape(t, addr)
	const rs = "/runtime.v1.RuntimeService/"
	atLeast := map[string]float64{
		`noded_cri_request_duration_seconds_count{method="` + rs + `RunPodSandbox"}`:            1,
		`noded_cri_request_duration_seconds_count{method="` + rs + `CreateContainer"}`:          1,
		`noded_cri_request_duration_seconds_count{method="` + rs + `StartContainer"}`:           1,
		`noded_cri_request_duration_seconds_count{method="` + rs + `RemovePodSandbox"}`:         1,
		`noded_cri_request_duration_seconds_count{method="/runtime.v1.ImageService/PullImage"}`: 1,
		`noded_cri_request_errors_total{code="NotFound",method="` + rs + `ContainerStatus"}`:    1,
		`noded_image_pull_duration_seconds_count{result="success"}`:                             1,
		`noded_image_pull_bytes_total`: 1,
		`noded_cni_operation_duration_seconds_count{operation="setup",result="success"}`:                   1,
		`noded_cni_operation_duration_seconds_count{operation="teardown",result="success"}`:                1,
		`noded_oci_runtime_operation_duration_seconds_count{operation="create",runtime="runc"}`:            1,
		`noded_oci_runtime_operation_duration_seconds_count{operation="start",runtime="runc"}`:             1,
		`noded_oci_runtime_operation_duration_seconds_count{operation="delete",runtime="runc"}`:            1,
		`noded_cri_request_duration_seconds_bucket{method="` + rs + `RunPodSandbox",le="+Inf"}`:            1,
		`noded_cni_operation_duration_seconds_bucket{operation="setup",result="success",le="+Inf"}`:        1,
		`noded_oci_runtime_operation_duration_seconds_bucket{operation="create",runtime="runc",le="+Inf"}`: 1,
	}
	for series, min := range atLeast {
		if got, ok := s[series]; !ok || got < min {
			t.Errorf("%s = %v (present %v), want at least %v", series, got, ok, min)
		}
	}
	if s[`noded_pods{state="notready"}`] != 0 || s[`noded_containers{state="exited"}`] != 0 {
		t.Errorf("after removal: pods/containers still counted: %v %v", s[`noded_pods{state="notready"}`], s[`noded_containers{state="exited"}`])
	}
	for series := range s {
		if strings.HasPrefix(series, "noded_cri_request_errors_total") && strings.Contains(series, `code="OK"`) {
			t.Errorf("a successful call counted as an error: %s", series)
		}
	}
	t.Logf("pulled %v bytes; RunPodSandbox took %.3fs in total", s[`noded_image_pull_bytes_total`],
		s[`noded_cri_request_duration_seconds_sum{method="`+rs+`RunPodSandbox"}`])
}

// TestSIGHUPReload changes the docker.io mirror, sends SIGHUP and checks that pulls now go to the new mirror; a
// changed key that needs a restart is named in the log; a broken config is reported and the working one kept;
// a changed log_level takes effect.
func TestSIGHUPReload(t *testing.T) {
	framework.RequireRoot(t)
	busybox := framework.Busybox(t)
	imgB, err := testimage.WithLabel(busybox, "mirror", "b")
	if err != nil {
		t.Fatal(err)
	}
	hostA := framework.Registry(t, nil)
	hostB, countB := testimage.StartCountingRegistry(t)
	if _, err := testimage.Push(context.Background(), hostB, "reload/img:b", imgB); err != nil {
		t.Fatal(err)
	}
	mirrors := func(host string) string {
		return fmt.Sprintf("[registry.hosts.\"docker.io\"]\nmirrors = [{ url = \"http://%s\" }]\nmirrors_only = true\n", host)
	}
	n := framework.Start(t, framework.Options{Config: mirrors(hostA)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	base, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(doc string) {
		t.Helper()
		if err := os.WriteFile(n.ConfigPath, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hup := func(reloads int, marker string) string {
		t.Helper()
		if err := syscall.Kill(n.PID(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		return waitDaemonLog(t, n, marker, reloads)
	}
	pull := func(ref string) error {
		_, err := n.Image.PullImage(ctx, &runtimeapi.ImageSpec{Image: ref}, nil, nil)
		return err
	}

	if err := pull("reload/img:b"); err == nil {
		t.Fatal("pull of an image only mirror B has succeeded through mirror A")
	}

	// 1. New mirror: applied live.
	rewrite(strings.Replace(string(base), hostA, hostB, 1))
	log := hup(1, `"Configuration reloaded"`)
	if !strings.Contains(log, `registry.hosts.\"docker.io\".mirrors`) && !strings.Contains(log, `registry.hosts."docker.io".mirrors`) {
		t.Errorf("reload did not name the mirrors key as applied:\n%s", log)
	}
	if err := pull("reload/img:b"); err != nil {
		t.Fatalf("pull after switching the mirror to B: %v", err)
	}
	if len(countB.Digests()) == 0 {
		t.Fatal("mirror B served no blob")
	}
	if strings.Contains(log, "need a restart") {
		t.Errorf("a mirror change was reported as needing a restart:\n%s", log)
	}

	// 2. A key that needs a restart: named in the log, not applied; log_level: applied.
	withRestartKey := "max_concurrent_pod_starts = 8\nlog_level = 4\n" + strings.Replace(string(base), hostA, hostB, 1)
	rewrite(withRestartKey)
	log = hup(2, `"Configuration reloaded"`)
	if !strings.Contains(log, "need a restart") || !strings.Contains(log, "max_concurrent_pod_starts") {
		t.Errorf("the changed max_concurrent_pod_starts is not reported as not applied:\n%s", log)
	}
	if _, err := n.Runtime.Version(ctx, ""); err != nil {
		t.Fatal(err)
	}
	waitDaemonLog(t, n, `"RPC" method="/runtime.v1.RuntimeService/Version"`, 1) // logged at -v=4 only

	// 3. A broken config: reported, the current one kept (pulls still go to B).
	rewrite("bogus_key = 1\n" + withRestartKey)
	log = hup(1, `"Configuration reload failed, keeping the current configuration"`)
	if !strings.Contains(log, "bogus_key") {
		t.Errorf("the reload error does not name the bad key:\n%s", log)
	}
	if err := n.Image.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: "reload/img:b"}); err != nil {
		t.Fatal(err)
	}
	countB.Reset()
	if err := pull("reload/img:b"); err != nil {
		t.Fatalf("pull after a failed reload: %v", err)
	}
	if len(countB.Digests()) == 0 {
		t.Fatal("after a failed reload, mirror B served no blob")
	}
	if !n.Running() {
		t.Fatal("noded exited")
	}
}
