package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/noded/noded/integration/framework"
)

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

// TestKubeletSummaryShowsPodNetwork runs a real kubelet (standalone, a static pod; framework.StartKubelet) on
// noded and reads its /stats/summary. noded has no infra container, so the cAdvisor half of kubelet's default
// CRI stats provider finds no network of the pod; with the PodAndContainerStatsFromCRI feature gate kubelet
// takes everything, the pod network included, from ListPodSandboxStats. The gated run (with EventedPLEG too)
// must show the pod's counters, rising with traffic, and kubelet's evented PLEG must take a container's stop
// event; the default run's result is logged (docs/kubelet.md "Stats": no pod network there).
func TestKubeletSummaryShowsPodNetwork(t *testing.T) {
	framework.RequireRoot(t)
	bin := framework.KubeletBinary(t)
	for _, tc := range []struct {
		name  string
		gates map[string]bool
	}{
		// EventedPLEG too: its events must carry the pod status (kubelet drops them otherwise; at -v 4 it logs
		// the relists they request).
		{"PodAndContainerStatsFromCRI", map[string]bool{"PodAndContainerStatsFromCRI": true, "EventedPLEG": true}},
		{"default", nil},
	} {
		t.Run(tc.name, func(t *testing.T) { runKubeletSummary(t, bin, tc.gates) })
	}
}

func runKubeletSummary(t *testing.T, bin string, gates map[string]bool) {
	gated := gates["PodAndContainerStatsFromCRI"]
	e := newPodEnv(t, 74, nil)
	o := framework.KubeletOptions{Binary: bin, FeatureGates: gates}
	if gated {
		o.Verbosity = 4
	}
	k := framework.StartKubelet(t, e.n, o)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	name := k.PodName("netstats")
	k.WriteStaticPod("netstats", staticPod("netstats", obj{
		"terminationGracePeriodSeconds": 2,
		"containers": []obj{
			busyboxContainer("httpd", "mkdir -p /tmp/www && dd if=/dev/zero of=/tmp/www/blob bs=1024 count=1024 2>/dev/null && exec httpd -f -p 8080 -h /tmp/www"),
			busyboxContainer("quitter", "sleep 1; exit 1"),
		},
	}))
	defer func() {
		if !t.Failed() {
			if errs := errorLines(k.Log()); errs != "" {
				t.Logf("--- kubelet's error lines ---\n%s", errs)
			}
		}
		for _, err := range k.Cleanup() {
			t.Errorf("kubelet cleanup: %v", err)
		}
		if left := k.Leftovers(); len(left) > 0 {
			t.Errorf("kubelet left on the host:\n%s", strings.Join(left, "\n"))
		}
	}()

	summary := func() (*summaryPod, error) {
		body, err := k.Get(ctx, "/stats/summary")
		if err != nil {
			return nil, err
		}
		var s struct {
			Pods []summaryPod `json:"pods"`
		}
		if err := json.Unmarshal(body, &s); err != nil {
			return nil, err
		}
		for i := range s.Pods {
			if s.Pods[i].PodRef.Name == name {
				return &s.Pods[i], nil
			}
		}
		return nil, errors.New("the static pod is not in stats/summary yet")
	}
	pod := k.WaitPod(ctx, kubeletNS, name, 3*time.Minute, "running httpd with a pod IP", func(p *framework.KubeletPod) bool {
		c := p.Container("httpd")
		return p.Status.PodIP != "" && c != nil && c.State.Running != nil
	})
	httpc := &http.Client{Timeout: 10 * time.Second}
	download := func() error {
		resp, err := httpc.Get(fmt.Sprintf("http://%s:8080/blob", pod.Status.PodIP))
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
			return false
		}
		first = p
		return p.CPU != nil && p.CPU.UsageCoreNanoSeconds != nil
	})
	if first.Network == nil || first.Network.TxBytes == nil {
		if gated {
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
	if !gated {
		return
	}
	// kubelet probes PodSandboxStats with an empty ID at start and falls back to cAdvisor on Unimplemented only.
	if strings.Contains(k.Log(), "CRI implementation does not support PodSandboxStats") {
		t.Error("kubelet took noded's answer to its PodSandboxStats probe for Unimplemented")
	}
	// The quitter container exits (and is restarted): kubelet's evented PLEG takes its stop events.
	waitFor(t, 2*time.Minute, "kubelet's evented PLEG to take a container stop event", func() bool {
		return strings.Contains(k.Log(), "Evented PLEG: requested pod relist after container termination")
	})
	if strings.Contains(k.Log(), "with nil PodSandboxStatus") {
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
