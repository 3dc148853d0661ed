package integration

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestContainerAndPodStats(t *testing.T) {
	e := newPodEnv(t, 6, nil)
	cfg := e.podConfig(t, "stats")
	pod := e.runPod(t, cfg)
	// 32 MiB in the pod's /dev/shm (charged to the writer's memory cgroup), then a busy loop.
	c := e.createContainer(t, pod, cfg, "burner", "sh", "-c",
		"dd if=/dev/zero of=/dev/shm/fill bs=1M count=32 2>/dev/null; while :; do :; done")
	if err := e.n.Runtime.StartContainer(e.ctx, c); err != nil {
		t.Fatal(err)
	}
	var first, last *runtimeapi.ContainerStats
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, err := e.n.Runtime.ContainerStats(e.ctx, c)
		if err != nil {
			t.Fatalf("ContainerStats: %v", err)
		}
		if first == nil {
			first = st
		}
		last = st
		if st.GetCpu().GetUsageCoreNanoSeconds().GetValue() > first.GetCpu().GetUsageCoreNanoSeconds().GetValue()+200e6 &&
			st.GetMemory().GetWorkingSetBytes().GetValue() >= 32<<20 && st.GetCpu().GetUsageNanoCores().GetValue() > 0 {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	cpu0, cpu1 := first.GetCpu().GetUsageCoreNanoSeconds().GetValue(), last.GetCpu().GetUsageCoreNanoSeconds().GetValue()
	if cpu1 <= cpu0+200e6 {
		t.Errorf("CPU usage did not grow by 200ms under a busy loop: %d -> %d", cpu0, cpu1)
	}
	if ws := last.GetMemory().GetWorkingSetBytes().GetValue(); ws < 32<<20 {
		t.Errorf("working set %d, want >= 32 MiB", ws)
	}
	if last.GetCpu().GetUsageNanoCores().GetValue() == 0 {
		t.Error("usage_nano_cores is 0 for a busy container")
	}
	if last.GetWritableLayer().GetFsId().GetMountpoint() == "" {
		t.Error("writable layer has no filesystem id")
	}
	// The writable layer's usage is measured in the background: its timestamp says when, never after the call's.
	if wl, cpu := last.GetWritableLayer().GetTimestamp(), last.GetCpu().GetTimestamp(); wl <= 0 || wl > cpu {
		t.Errorf("writable layer timestamp %d, want in (0, %d] (the CPU sample's)", wl, cpu)
	}
	list, err := e.n.Runtime.ListContainerStats(e.ctx, &runtimeapi.ContainerStatsFilter{PodSandboxId: pod})
	if err != nil || len(list) != 1 || list[0].GetAttributes().GetId() != c {
		t.Fatalf("ListContainerStats = %v, %v", list, err)
	}
	ps, err := e.n.Runtime.PodSandboxStats(e.ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if ps.GetLinux().GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 || ps.GetLinux().GetNetwork() == nil {
		t.Errorf("pod stats lack CPU or network: %+v", ps.GetLinux())
	}
	if err := e.n.Runtime.RemovePodSandbox(e.ctx, pod); err != nil {
		t.Fatal(err)
	}
}

// kubelet's start-up probe in CRI-stats mode, PodSandboxStats with an empty ID, gets InvalidArgument from the
// real noded: not Unimplemented, which would make kubelet fall back to cAdvisor stats.
func TestPodSandboxStatsEmptyIDProbe(t *testing.T) {
	e := newPodEnv(t, 79, nil)
	_, err := e.n.Runtime.PodSandboxStats(e.ctx, "")
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("PodSandboxStats(\"\"): %v, want InvalidArgument", err)
	}
}
