package container

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/store"
	"github.com/noded/noded/store/storetest"
)

func eventStore(t *testing.T) *store.Store {
	t.Helper()
	st := storetest.New(t)
	return st
}

// TestEventCarriesPodAndAllContainers checks the event kubelet's evented PLEG needs: the pod's status and every
// container of the pod (not those being created, not a deleted one, the event's own as given).
func TestEventCarriesPodAndAllContainers(t *testing.T) {
	st := eventStore(t)
	md := &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "uid-1"}
	if err := st.AddSandbox(&store.Sandbox{ID: "sb1", Name: "p", State: store.SandboxReady, IPs: []string{"10.0.0.5"},
		Config: &runtimeapi.PodSandboxConfig{Metadata: md}}); err != nil {
		t.Fatal(err)
	}
	ctr := func(id string, s store.ContainerState, at int64) *store.Container {
		c := &store.Container{ID: id, SandboxID: "sb1", Name: id, State: s, CreatedAt: at,
			Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: id}}}
		if err := st.AddContainer(c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctr("a", store.ContainerRunning, 1)
	b := ctr("b", store.ContainerRunning, 2)
	ctr("c", store.ContainerCreating, 3)
	m := &Manager{cfg: Config{Store: st}}

	exited := *b
	exited.State, exited.ExitCode = store.ContainerExited, 7 // the event's state, not yet in the store
	ev := m.event(&exited, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
	if ev.PodSandboxStatus.GetId() != "sb1" || ev.PodSandboxStatus.GetMetadata().GetUid() != "uid-1" ||
		ev.PodSandboxStatus.GetNetwork().GetIp() != "10.0.0.5" {
		t.Errorf("pod status = %v", ev.PodSandboxStatus)
	}
	var ids []string
	for _, s := range ev.ContainersStatuses {
		ids = append(ids, s.Id)
		if s.Id == "b" && (s.State != runtimeapi.ContainerState_CONTAINER_EXITED || s.ExitCode != 7) {
			t.Errorf("event's own container = %v, want the exited state given", s)
		}
	}
	if len(ids) != 2 || ids[0] != "a" || ids[1] != "b" {
		t.Errorf("container statuses %v, want [a b]", ids)
	}

	ev = m.event(b, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	if len(ev.ContainersStatuses) != 1 || ev.ContainersStatuses[0].Id != "a" || ev.PodSandboxStatus == nil {
		t.Errorf("deleted event carries %v, want only a and the pod", ev.ContainersStatuses)
	}
	created := &store.Container{ID: "d", SandboxID: "sb1", State: store.ContainerCreated}
	ev = m.event(created, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	if n := len(ev.ContainersStatuses); n != 3 || ev.ContainersStatuses[2].Id != "d" {
		t.Errorf("created event of a container not in the store carries %d statuses, want a, b and it", n)
	}
}
