package pod

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/store"
	"github.com/noded/noded/store/storetest"
)

// journal records the calls of the fakes in order, with whether the pod lock was held.
type journal struct {
	mu     sync.Mutex
	locked map[string]bool
	calls  []string
}

func (j *journal) add(call, pod string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.locked[pod] {
		call += " (unlocked)"
	}
	j.calls = append(j.calls, call)
}

type fakeSandboxes struct {
	j       *journal
	st      *store.Store
	failRm  error
	orphans []string
}

func (f *fakeSandboxes) Lock(id string) func() {
	f.j.mu.Lock()
	f.j.locked[id] = true
	f.j.mu.Unlock()
	return func() { f.j.mu.Lock(); delete(f.j.locked, id); f.j.mu.Unlock() }
}
func (f *fakeSandboxes) Stop(_ context.Context, id string) error {
	f.j.add("sandbox stop "+id, id)
	return nil
}
func (f *fakeSandboxes) Remove(_ context.Context, id string) error {
	f.j.add("sandbox remove "+id, id)
	if f.failRm != nil {
		return f.failRm
	}
	return f.st.DeleteSandbox(id)
}
func (f *fakeSandboxes) ReapOrphans(ctx context.Context, _ time.Duration, remove func(context.Context, string) error) int {
	n := 0
	for _, id := range f.orphans {
		if remove(ctx, id) == nil {
			n++
		}
	}
	return n
}

type fakeContainers struct {
	j        *journal
	st       *store.Store
	failStop error
}

func (f *fakeContainers) pod(id string) string {
	c, _ := f.st.Container(id)
	return c.SandboxID
}
func (f *fakeContainers) Create(_ context.Context, sb store.Sandbox, cfg *runtimeapi.ContainerConfig) (string, error) {
	f.j.add("container create "+cfg.GetMetadata().GetName()+" in "+string(sb.State), sb.ID)
	return "c-" + cfg.GetMetadata().GetName(), nil
}
func (f *fakeContainers) Stop(_ context.Context, id string, timeout time.Duration) error {
	f.j.add("container stop "+id+" "+timeout.String(), f.pod(id))
	return f.failStop
}
func (f *fakeContainers) Remove(_ context.Context, id string) error {
	f.j.add("container remove "+id, f.pod(id))
	return f.st.DeleteContainer(id)
}
func (f *fakeContainers) RemoveInPod(_ context.Context, id string) error {
	f.j.add("container remove "+id, f.pod(id))
	return f.st.DeleteContainerDeferred(id)
}
func (f *fakeContainers) ReapOrphans(context.Context, time.Duration) int {
	f.j.add("container reap", "")
	return 0
}

func newService(t *testing.T) (*Service, *journal, *fakeSandboxes, *fakeContainers, *store.Store) {
	t.Helper()
	st := storetest.New(t)
	if err := st.AddSandbox(&store.Sandbox{ID: "p1", Name: "p1", State: store.SandboxReady, Config: &runtimeapi.PodSandboxConfig{}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if err := st.AddContainer(&store.Container{ID: id, SandboxID: "p1", Name: id, Config: &runtimeapi.ContainerConfig{}}); err != nil {
			t.Fatal(err)
		}
	}
	j := &journal{locked: map[string]bool{}}
	sbs, cs := &fakeSandboxes{j: j, st: st}, &fakeContainers{j: j, st: st}
	return New(sbs, cs, st), j, sbs, cs, st
}

// assertOrder checks that calls are the two container calls (in either order: the store does not order
// containers of the same pod) and then the sandbox call, each made under the pod lock (no "(unlocked)").
func assertOrder(t *testing.T, what string, calls []string, c1, c2, sb string) {
	t.Helper()
	if len(calls) != 3 || calls[2] != sb || !((calls[0] == c1 && calls[1] == c2) || (calls[0] == c2 && calls[1] == c1)) {
		t.Fatalf("%s calls: %v, want %s and %s (any order), then %s", what, calls, c1, c2, sb)
	}
}

// Stop and Remove act on the containers, then the sandbox, all under the pod's lock.
func TestStopAndRemoveOrder(t *testing.T) {
	p, j, _, _, st := newService(t)
	ctx := context.Background()
	if err := p.Stop(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	assertOrder(t, "Stop", j.calls, "container stop a 0s", "container stop b 0s", "sandbox stop p1")
	j.calls = nil
	if err := p.Remove(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	assertOrder(t, "Remove", j.calls, "container remove a", "container remove b", "sandbox remove p1")
	if len(st.Sandboxes()) != 0 || len(st.Containers("")) != 0 {
		t.Fatal("records left")
	}
	j.calls = nil
	if err := p.Stop(ctx, "p1"); err != nil || len(j.calls) != 0 {
		t.Fatalf("Stop of an unknown pod: %v, calls %v", err, j.calls)
	}
	if err := p.Remove(ctx, "p1"); err != nil || len(j.calls) != 0 {
		t.Fatalf("Remove of an unknown pod: %v, calls %v", err, j.calls)
	}
}

// A container that cannot be stopped stops the pod's Stop before its network goes.
func TestStopFailsOnAContainer(t *testing.T) {
	p, j, _, cs, _ := newService(t)
	cs.failStop = errors.New("stuck")
	if err := p.Stop(context.Background(), "p1"); err == nil || !strings.Contains(err.Error(), "stuck") {
		t.Fatalf("Stop = %v", err)
	}
	if got := strings.Join(j.calls, "; "); strings.Contains(got, "sandbox stop") {
		t.Fatalf("sandbox stopped although a container was not: %s", got)
	}
}

// CreateContainer reads the sandbox under its lock and hands it to the container domain.
func TestCreateContainerUnderPodLock(t *testing.T) {
	p, j, _, _, _ := newService(t)
	id, err := p.CreateContainer(context.Background(), "p1", &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "web"}})
	if err != nil || id != "c-web" {
		t.Fatalf("CreateContainer = %s, %v", id, err)
	}
	if got := strings.Join(j.calls, "; "); got != "container create web in ready" {
		t.Fatalf("calls: %s", got)
	}
	if _, err := p.CreateContainer(context.Background(), "nope", &runtimeapi.ContainerConfig{}); err == nil {
		t.Fatal("CreateContainer in an unknown pod succeeded")
	}
}

// The reaper reaps containers first, then removes each unclaimed pod through Remove (containers, then sandbox).
func TestReapOrphansRemovesThroughTheDomain(t *testing.T) {
	p, j, sbs, _, _ := newService(t)
	sbs.orphans = []string{"p1"}
	p.ReapOrphans(context.Background(), time.Minute)
	if len(j.calls) == 0 || j.calls[0] != "container reap (unlocked)" {
		t.Fatalf("calls %v: containers are not reaped first", j.calls)
	}
	assertOrder(t, "reap", j.calls[1:], "container remove a", "container remove b", "sandbox remove p1")
}
