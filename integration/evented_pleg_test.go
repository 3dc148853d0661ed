package integration

import (
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestContainerExitEventCarriesPodStatus checks what kubelet's evented PLEG needs of an event: a container exit
// reaches a GetContainerEvents client with the pod's status (kubelet drops events without it) and the statuses
// of all the pod's containers, the exited one as exited and its sibling as running.
func TestContainerExitEventCarriesPodStatus(t *testing.T) {
	e := newPodEnv(t, 70, nil)
	events := e.subscribeEvents(t)
	cfg := e.podConfig(t, "pleg")
	pod := e.runPod(t, cfg)
	defer func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, pod) }()
	sleeper := e.runContainer(t, pod, cfg, "sleeper", nil, "sleep", "3600")
	quitter := e.createContainer(t, pod, cfg, "quitter", "sh", "-c", "exit 3")
	if err := e.n.Runtime.StartContainer(e.ctx, quitter); err != nil {
		t.Fatal(err)
	}
	var stopped *runtimeapi.ContainerEventResponse
	timeout := time.After(60 * time.Second)
	for stopped == nil {
		select {
		case ev := <-events:
			if ev.PodSandboxStatus == nil || ev.PodSandboxStatus.Metadata == nil {
				t.Errorf("%v event of %s has no pod sandbox status (kubelet drops it)", ev.ContainerEventType, ev.ContainerId)
			}
			if ev.ContainerId == quitter && ev.ContainerEventType == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT {
				stopped = ev
			}
		case <-timeout:
			t.Fatal("no CONTAINER_STOPPED_EVENT of the exiting container")
		}
	}
	ps := stopped.PodSandboxStatus
	if ps.GetId() != pod || ps.GetMetadata().GetUid() != cfg.Metadata.Uid || ps.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("pod status in the event = id %q uid %q state %v, want %s %s ready", ps.GetId(), ps.GetMetadata().GetUid(), ps.GetState(), pod, cfg.Metadata.Uid)
	}
	if ps.GetNetwork().GetIp() == "" {
		t.Error("pod status in the event has no pod IP")
	}
	got := map[string]*runtimeapi.ContainerStatus{}
	for _, st := range stopped.ContainersStatuses {
		got[st.Id] = st
	}
	if len(got) != 2 {
		t.Fatalf("event carries %d container statuses, want the pod's 2: %v", len(got), stopped.ContainersStatuses)
	}
	if st := got[quitter]; st == nil || st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 3 || st.FinishedAt == 0 {
		t.Errorf("exited container's status in the event = %v, want exited with code 3", st)
	}
	if st := got[sleeper]; st == nil || st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("sibling's status in the event = %v, want running", st)
	}
	if got[quitter].GetMetadata().GetName() != "quitter" || got[sleeper].GetMetadata().GetName() != "sleeper" {
		t.Error("container statuses in the event lack their metadata")
	}
}
