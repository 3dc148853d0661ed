package stats

import (
	"context"
	"testing"
	"time"

	"github.com/noded/noded/cgroupsv2"
	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/store"
)

func (f *fakeSnapshotter) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeSnapshotter) set(key string, u snapshotter.Usage) {
	f.mu.Lock()
	f.usage[key] = u
	f.mu.Unlock()
}

// TestLayerSyncServesStats checks that while RunLayerSync runs, stats calls read the usage its pass measured
// (with the time it was measured as the writable layer's timestamp, while CPU and memory carry the call's) and
// walk no layer themselves, however old the usage; that a container the pass has not reached is walked once; and
// that once the loop ends the TTL applies again.
func TestLayerSyncServesStats(t *testing.T) {
	e := newEnv(t, cgroupsv2.DriverCgroupfs)
	sb := e.addPod(t, "p1", "", store.SandboxReady, nil)
	for _, id := range []string{"a", "b", "c"} {
		e.addContainer(t, sb, id, store.ContainerRunning, nil)
		e.writeCgroup(t, e.ctrPath(t, id), 1, 1, 0, 0, 1)
	}
	e.addContainer(t, sb, "making", store.ContainerCreating, nil)
	syncedAt := e.clock.Now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.p.RunLayerSync(ctx); close(done) }()
	for e.snaps.callCount() < 3 { // the first pass runs at once; a creating container is not walked
		time.Sleep(time.Millisecond)
	}
	for !e.p.syncing.Load() {
		time.Sleep(time.Millisecond)
	}
	e.clock.Advance(time.Hour) // far past the TTL: the sync loop's usage is still the one served
	e.snaps.set("snap-a", snapshotter.Usage{Size: 1 << 20, Inodes: 9})
	list, err := e.p.ListContainerStats(ctx, nil)
	if err != nil || len(list) != 3 {
		t.Fatalf("%d stats, %v", len(list), err)
	}
	for _, st := range list {
		if st.WritableLayer.GetTimestamp() != syncedAt.UnixNano() || st.WritableLayer.UsedBytes.GetValue() != 4096 {
			t.Errorf("%s: writable layer %v, want 4096 bytes measured at %d", st.Attributes.Id, st.WritableLayer, syncedAt.UnixNano())
		}
		if st.Cpu.GetTimestamp() != e.clock.Now().UnixNano() {
			t.Errorf("%s: cpu timestamp %d, want the call's %d", st.Attributes.Id, st.Cpu.GetTimestamp(), e.clock.Now().UnixNano())
		}
	}
	if n := e.snaps.callCount(); n != 3 {
		t.Errorf("%d walks after the list, want the pass's 3", n)
	}
	// A container the pass has not reached yet is walked once, then served from the cache.
	e.addContainer(t, sb, "new", store.ContainerCreated, nil)
	for i := 0; i < 2; i++ {
		st, err := e.p.ContainerStats(ctx, "new")
		if err != nil || st.WritableLayer.GetTimestamp() != e.clock.Now().UnixNano() {
			t.Fatalf("new container: %v, %v", st.GetWritableLayer(), err)
		}
	}
	if n := e.snaps.callCount(); n != 4 {
		t.Errorf("%d walks, want 4", n)
	}
	cancel()
	<-done
	if e.p.syncing.Load() {
		t.Fatal("still syncing after the loop ended")
	}
	// Without the loop, a usage older than the TTL is walked again.
	st, err := e.p.ContainerStats(context.Background(), "a")
	if err != nil || st.WritableLayer.UsedBytes.GetValue() != 1<<20 || e.snaps.callCount() != 5 {
		t.Errorf("after the loop: %v, %d walks, %v", st.GetWritableLayer(), e.snaps.callCount(), err)
	}
}

// TestSyncLayersDropsRemovedContainers checks that a pass measures every container with a snapshot and forgets
// the containers that are gone.
func TestSyncLayersDropsRemovedContainers(t *testing.T) {
	e := newEnv(t, cgroupsv2.DriverCgroupfs)
	sb := e.addPod(t, "p1", "", store.SandboxReady, nil)
	e.addContainer(t, sb, "a", store.ContainerRunning, nil)
	e.addContainer(t, sb, "b", store.ContainerExited, nil)
	ctx := context.Background()
	e.p.SyncLayers(ctx)
	if _, layers := e.p.cacheSizes(); layers != 2 || e.snaps.callCount() != 2 {
		t.Fatalf("%d layers cached after %d walks, want 2 and 2", layers, e.snaps.callCount())
	}
	if err := e.store.DeleteContainer("b"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(DefaultLayerUsagePeriod)
	e.p.SyncLayers(ctx)
	if _, layers := e.p.cacheSizes(); layers != 1 || e.snaps.callCount() != 3 {
		t.Errorf("%d layers cached after %d walks, want 1 and 3", layers, e.snaps.callCount())
	}
	// The container filesystem's sum is as old as its oldest usage.
	u, err := e.p.ContainerFsUsage(ctx)
	if err != nil || u.Timestamp != e.clock.Now().UnixNano() || u.UsedBytes.GetValue() != 4096 {
		t.Errorf("container fs %v, %v", u, err)
	}
}
