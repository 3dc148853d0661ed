package stats

import (
	"context"
	"testing"

	"github.com/noded/noded/cgroupsv2"
	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/store"
)

// TestContainerFsUsageSumsWritableLayers checks ImageFsInfo's container filesystem: the writable layers of every
// container (running, created or exited, in any pod), without the containers still being created and without
// snapshots that are gone, on the snapshotter's root.
func TestContainerFsUsageSumsWritableLayers(t *testing.T) {
	e := newEnv(t, cgroupsv2.DriverCgroupfs)
	a := e.addPod(t, "a", "", store.SandboxReady, nil)
	b := e.addPod(t, "b", "", store.SandboxNotReady, nil)
	e.addContainer(t, a, "run", store.ContainerRunning, nil)
	e.addContainer(t, a, "made", store.ContainerCreated, nil)
	e.addContainer(t, b, "done", store.ContainerExited, nil)
	e.addContainer(t, b, "making", store.ContainerCreating, nil)
	e.addContainer(t, b, "gone", store.ContainerExited, nil)
	e.snaps.usage["snap-run"] = snapshotter.Usage{Size: 4096, Inodes: 3}
	e.snaps.usage["snap-made"] = snapshotter.Usage{Size: 1, Inodes: 1}
	e.snaps.usage["snap-done"] = snapshotter.Usage{Size: 10000, Inodes: 7}
	e.snaps.usage["snap-making"] = snapshotter.Usage{Size: 1 << 30, Inodes: 1 << 20}
	delete(e.snaps.usage, "snap-gone")
	u, err := e.p.ContainerFsUsage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if u.UsedBytes.GetValue() != 14097 || u.InodesUsed.GetValue() != 11 {
		t.Errorf("container fs used %d bytes %d inodes, want 14097 and 11", u.UsedBytes.GetValue(), u.InodesUsed.GetValue())
	}
	if u.FsId.GetMountpoint() != "/var/lib/noded/snapshots" || u.Timestamp != e.clock.Now().UnixNano() {
		t.Errorf("fs id %v at %d", u.FsId, u.Timestamp)
	}
}
