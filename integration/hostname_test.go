package integration

import (
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestFQDNHostname: with setHostnameAsFQDN kubelet sends the pod's FQDN as its hostname, and with an empty cluster
// domain that FQDN ends in a dot (node e2e "a pod with subdomain field has FQDN, when setHostnameAsFQDN is set to
// true"): the pod runs with it as its hostname. A hostname longer than the kernel's 64 bytes is InvalidArgument
// and leaves no sandbox (node e2e "...remain in Pending state generating FailedCreatePodSandBox events when the
// FQDN is longer than 64 bytes").
func TestFQDNHostname(t *testing.T) {
	e := newPodEnv(t, 0, nil)
	podCfg := e.podConfig(t, "fqdn")
	podCfg.Hostname = "fqdn-179847.t.hostfqdn-4400.svc."
	podID := e.runPod(t, podCfg)
	ctrID := e.createContainer(t, podID, podCfg, "host", "hostname")
	if err := e.n.Runtime.StartContainer(e.ctx, ctrID); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	cs := e.waitExited(t, ctrID)
	if cs.ExitCode != 0 {
		t.Fatalf("hostname exited %d", cs.ExitCode)
	}
	data, err := os.ReadFile(cs.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if log := string(data); !strings.Contains(log, " stdout F "+podCfg.Hostname+"\n") {
		t.Errorf("container's hostname is not %q; log:\n%s", podCfg.Hostname, log)
	}

	long := e.podConfig(t, "fqdn-long")
	long.Hostname = strings.Repeat("a", 60) + "-1.t.svc."
	_, err = e.n.Runtime.RunPodSandbox(e.ctx, long, "")
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("RunPodSandbox with a %d-byte hostname: %v, want InvalidArgument", len(long.Hostname), err)
	}
	sbs, err := e.n.Runtime.ListPodSandbox(e.ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "fqdn-long"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sbs) != 0 {
		t.Errorf("a refused sandbox is listed: %+v", sbs)
	}
}
