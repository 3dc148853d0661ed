package integration

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestPodNetworkStatsCountTraffic checks the pod network counters kubelet's CRI stats provider reads
// (ListPodSandboxStats linux.network, taken from the pod's network namespace: noded has no infra container for
// cAdvisor to find): downloading 4 MiB from the pod over its eth0 raises the pod's tx bytes by at least that and
// its rx bytes too, and a second pod's counters stay its own.
func TestPodNetworkStatsCountTraffic(t *testing.T) {
	e := newPodEnv(t, 73, nil)
	cfg := e.podConfig(t, "netstats")
	pod := e.runPod(t, cfg)
	defer func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, pod) }()
	otherCfg := e.podConfig(t, "quiet")
	other := e.runPod(t, otherCfg)
	defer func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, other) }()
	e.runContainer(t, pod, cfg, "httpd", nil, "sh", "-c",
		"mkdir -p /tmp/www && dd if=/dev/zero of=/tmp/www/blob bs=1024 count=1024 2>/dev/null && exec httpd -f -p 8080 -h /tmp/www")
	url := fmt.Sprintf("http://%s:8080/blob", e.podIP(t, pod))

	netOf := func() map[string]*runtimeapi.NetworkInterfaceUsage {
		t.Helper()
		list, err := e.n.Runtime.ListPodSandboxStats(e.ctx, &runtimeapi.PodSandboxStatsFilter{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*runtimeapi.NetworkInterfaceUsage{}
		for _, s := range list {
			n := s.GetLinux().GetNetwork()
			if n.GetTimestamp() == 0 || n.GetDefaultInterface() == nil {
				t.Fatalf("pod %s stats have no network usage: %v", s.GetAttributes().GetId(), s.GetLinux())
			}
			out[s.GetAttributes().GetId()] = n.GetDefaultInterface()
		}
		return out
	}
	httpc := &http.Client{Timeout: 10 * time.Second}
	get := func() error {
		resp, err := httpc.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && n != 1<<20 {
			err = fmt.Errorf("got %d bytes", n)
		}
		return err
	}
	// httpd may take a moment to listen.
	waitFor(t, 30*time.Second, "the pod's httpd to answer", func() bool { return get() == nil })

	before := netOf()
	if before[pod].GetName() != "eth0" {
		t.Errorf("default interface %q, want eth0", before[pod].GetName())
	}
	for i := 0; i < 4; i++ {
		if err := get(); err != nil {
			t.Fatalf("download %d from the pod: %v", i, err)
		}
	}
	after := netOf()
	tx0, tx1 := before[pod].GetTxBytes().GetValue(), after[pod].GetTxBytes().GetValue()
	rx0, rx1 := before[pod].GetRxBytes().GetValue(), after[pod].GetRxBytes().GetValue()
	if tx1 < tx0+4<<20 {
		t.Errorf("pod tx bytes %d -> %d after serving 4 MiB", tx0, tx1)
	}
	if rx1 <= rx0 {
		t.Errorf("pod rx bytes %d -> %d after 4 requests", rx0, rx1)
	}
	if q0, q1 := before[other].GetTxBytes().GetValue(), after[other].GetTxBytes().GetValue(); q1 >= q0+1<<20 {
		t.Errorf("the quiet pod's tx bytes rose %d -> %d with the other pod's traffic", q0, q1)
	}
	ps, err := e.n.Runtime.PodSandboxStats(e.ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if got := ps.GetLinux().GetNetwork().GetDefaultInterface().GetTxBytes().GetValue(); got < tx1 {
		t.Errorf("PodSandboxStats tx bytes %d, below the listed %d", got, tx1)
	}
}
