package integration

import (
	"encoding/json"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podResources returns the "podResources" of a pod's verbose status info (nil when absent).
func (e *podEnv) podResources(t *testing.T, pod string) map[string]any {
	t.Helper()
	st, err := e.n.Runtime.PodSandboxStatus(e.ctx, pod, true)
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil {
		t.Fatalf("verbose info %q: %v", st.GetInfo()["info"], err)
	}
	pr, _ := info["podResources"].(map[string]any)
	return pr
}

// TestUpdatePodSandboxResources checks UpdatePodSandboxResources (in-place pod resize, KEP-1287) the way kubelet
// sends it: the pod-level resources and overhead are recorded and reported in the pod's verbose status, also
// after a restart; repeating the call changes nothing; bad input is InvalidArgument and leaves what was recorded;
// an unknown pod is NotFound.
func TestUpdatePodSandboxResources(t *testing.T) {
	e := newPodEnv(t, 72, nil)
	cfg := e.podConfig(t, "resize")
	pod := e.runPod(t, cfg)
	defer func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, pod) }()
	if pr := e.podResources(t, pod); pr != nil {
		t.Fatalf("a pod never resized reports pod resources %v", pr)
	}
	req := &runtimeapi.UpdatePodSandboxResourcesRequest{
		PodSandboxId: pod,
		Resources: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 150000, CpuShares: 1536,
			MemoryLimitInBytes: 512 << 20},
		Overhead: &runtimeapi.LinuxContainerResources{CpuShares: 25, MemoryLimitInBytes: 32 << 20},
	}
	for i := 0; i < 2; i++ { // the second call is the idempotent repeat
		if _, err := e.n.Runtime.UpdatePodSandboxResources(e.ctx, req); err != nil {
			t.Fatalf("UpdatePodSandboxResources (call %d): %v", i+1, err)
		}
	}
	check := func(when string) {
		t.Helper()
		pr := e.podResources(t, pod)
		res, _ := pr["resources"].(map[string]any)
		ovh, _ := pr["overhead"].(map[string]any)
		if res["cpu_quota"] != float64(150000) || res["cpu_shares"] != float64(1536) || res["memory_limit_in_bytes"] != float64(512<<20) {
			t.Errorf("%s: pod resources %v", when, res)
		}
		if ovh["memory_limit_in_bytes"] != float64(32<<20) {
			t.Errorf("%s: pod overhead %v", when, ovh)
		}
	}
	check("after the update")

	bad := []*runtimeapi.UpdatePodSandboxResourcesRequest{
		{Resources: req.Resources},
		{PodSandboxId: pod, Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: -5}},
		{PodSandboxId: pod, Overhead: &runtimeapi.LinuxContainerResources{CpuShares: -1}},
	}
	for _, r := range bad {
		if _, err := e.n.Runtime.UpdatePodSandboxResources(e.ctx, r); status.Code(err) != codes.InvalidArgument {
			t.Errorf("UpdatePodSandboxResources(%v) = %v, want InvalidArgument", r, err)
		}
	}
	if _, err := e.n.Runtime.UpdatePodSandboxResources(e.ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{
		PodSandboxId: "0123456789abcdef", Resources: req.Resources,
	}); status.Code(err) != codes.NotFound {
		t.Errorf("UpdatePodSandboxResources of an unknown pod = %v, want NotFound", err)
	}
	check("after refused updates")
	e.n.Restart()
	check("after a restart")

	// A resize down replaces the recorded values.
	req.Resources = &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 256 << 20}
	req.Overhead = nil
	if _, err := e.n.Runtime.UpdatePodSandboxResources(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	pr := e.podResources(t, pod)
	if res, _ := pr["resources"].(map[string]any); res["cpu_quota"] != float64(50000) || res["memory_limit_in_bytes"] != float64(256<<20) {
		t.Errorf("after a resize down: pod resources %v", res)
	}
	if ovh, _ := pr["overhead"].(map[string]any); ovh["memory_limit_in_bytes"] != float64(32<<20) {
		t.Errorf("an update without overhead dropped the recorded overhead: %v", ovh)
	}
}
