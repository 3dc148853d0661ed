package store

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

func TestContainerRecordsSharedSnapshot(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	defer db.Close()
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	var sbs []string
	for i := 0; i < 2; i++ {
		sb := &Sandbox{ID: NewID(), Name: "p" + string(rune('a'+i)), Config: &runtimeapi.PodSandboxConfig{}}
		if err := s.AddSandbox(sb); err != nil {
			t.Fatal(err)
		}
		sbs = append(sbs, sb.ID)
	}
	var ids []string
	for i, created := range []int64{30, 10, 20} {
		c := &Container{ID: NewID(), SandboxID: sbs[i%2], Name: "c" + string(rune('a'+i)), CreatedAt: created, State: ContainerCreated}
		if err := s.AddContainer(c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	all := s.ContainerRecords("")
	if len(all) != 3 || all[0].ID != ids[1] || all[1].ID != ids[2] || all[2].ID != ids[0] {
		t.Fatalf("records not all there in creation order: %+v", all)
	}
	if got := s.ContainerRecords(sbs[1]); len(got) != 1 || got[0].ID != ids[1] {
		t.Fatalf("records of pod b: %+v", got)
	}
	// An update replaces the record: a snapshot taken before keeps the old state.
	if _, err := s.UpdateContainer(ids[1], func(c *Container) error { c.State = ContainerRunning; return nil }); err != nil {
		t.Fatal(err)
	}
	if all[0].State != ContainerCreated {
		t.Errorf("an update changed a record already handed out: %s", all[0].State)
	}
	now := s.ContainerRecords("")
	if now[0].State != ContainerRunning {
		t.Errorf("new snapshot does not see the update: %s", now[0].State)
	}
	// ContainerRecord hands out the same shared record, by full ID or unique prefix.
	if rec, err := s.ContainerRecord(ids[1][:12]); err != nil || rec != now[0] {
		t.Errorf("ContainerRecord(prefix) = %p, %v; want the shared record %p", rec, err, now[0])
	}
	if _, err := s.ContainerRecord("nosuch"); !errdefs.IsNotFound(err) {
		t.Errorf("ContainerRecord of an unknown ID: %v, want NotFound", err)
	}
}

// TestListsAndIndexesFollowChanges checks the cached sorted lists, the per-pod index and the name lookups across
// every kind of change, and after a reopen.
func TestListsAndIndexesFollowChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db := openDB(t, path)
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	sbIDs := func() []string {
		var out []string
		for _, sb := range s.SandboxRecords() {
			out = append(out, sb.ID)
		}
		return out
	}
	ctrIDs := func(pod string) []string {
		var out []string
		for _, c := range s.ContainerRecords(pod) {
			out = append(out, c.ID)
		}
		return out
	}
	for i, id := range []string{"sb-c", "sb-a", "sb-b"} {
		if err := s.AddSandbox(&Sandbox{ID: id, Name: "n-" + id, CreatedAt: int64([]int{3, 1, 1}[i]), State: SandboxCreating, Config: &runtimeapi.PodSandboxConfig{}}); err != nil {
			t.Fatal(err)
		}
	}
	// Creation order, ties by ID.
	if got := sbIDs(); !slices.Equal(got, []string{"sb-a", "sb-b", "sb-c"}) {
		t.Fatalf("sandboxes %q", got)
	}
	for i, c := range []struct{ id, pod string }{{"c1", "sb-a"}, {"c2", "sb-b"}, {"c3", "sb-a"}} {
		if err := s.AddContainer(&Container{ID: c.id, SandboxID: c.pod, Name: "n-" + c.id, CreatedAt: int64(10 - i), State: ContainerCreating}); err != nil {
			t.Fatal(err)
		}
	}
	if got := ctrIDs(""); !slices.Equal(got, []string{"c3", "c2", "c1"}) {
		t.Fatalf("containers %q", got)
	}
	if got := ctrIDs("sb-a"); !slices.Equal(got, []string{"c3", "c1"}) {
		t.Fatalf("containers of sb-a %q", got)
	}
	if c, ok := s.ContainerByName("n-c2"); !ok || c.ID != "c2" {
		t.Fatalf("by name: %v %v", c.ID, ok)
	}
	if _, err := s.UpdateContainer("c2", func(c *Container) error { c.SandboxID = "sb-a"; return nil }); err == nil {
		t.Fatal("a container moved to another pod")
	}
	// Updates show in the next list; a list handed out before is not changed.
	before := s.SandboxRecords()
	if _, err := s.UpdateSandbox("sb-b", func(sb *Sandbox) error { sb.State = SandboxReady; return nil }); err != nil {
		t.Fatal(err)
	}
	if before[1].State != SandboxCreating || s.SandboxRecords()[1].State != SandboxReady {
		t.Fatalf("update: before %q, now %q", before[1].State, s.SandboxRecords()[1].State)
	}
	if _, err := s.UpdateContainer("c1", func(c *Container) error { c.State = ContainerCreated; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := s.ContainerRecords("")[2]; got.ID != "c1" || got.State != ContainerCreated {
		t.Fatalf("container update not listed: %s %s", got.ID, got.State)
	}
	if err := s.DeleteContainer("c3"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSandbox("sb-c"); err != nil {
		t.Fatal(err)
	}
	if got := ctrIDs("sb-a"); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("containers of sb-a after a delete %q", got)
	}
	if _, ok := s.ContainerByName("n-c3"); ok {
		t.Fatal("deleted container found by name")
	}
	if got := ctrIDs(""); !slices.Equal(got, []string{"c2", "c1"}) {
		t.Fatalf("containers after a delete %q", got)
	}
	if got := sbIDs(); !slices.Equal(got, []string{"sb-a", "sb-b"}) {
		t.Fatalf("sandboxes after a delete %q", got)
	}
	// A reopened store rebuilds the same lists and index.
	db.Close()
	db = openDB(t, path)
	defer db.Close()
	if s, err = Open(db); err != nil {
		t.Fatal(err)
	}
	if got := sbIDs(); !slices.Equal(got, []string{"sb-a", "sb-b"}) {
		t.Fatalf("reopened sandboxes %q", got)
	}
	if got := ctrIDs("sb-a"); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("reopened containers of sb-a %q", got)
	}
	if got := ctrIDs("sb-b"); !slices.Equal(got, []string{"c2"}) {
		t.Fatalf("reopened containers of sb-b %q", got)
	}
}

// TestListsUnderConcurrentChanges: lists taken while records change are sorted and never see a record that was
// deleted before the list was asked for (run with -race).
func TestListsUnderConcurrentChanges(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	defer db.Close()
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				sbs := s.SandboxRecords()
				if !slices.IsSortedFunc(sbs, func(a, b *Sandbox) int { return int(a.CreatedAt - b.CreatedAt) }) {
					t.Error("sandboxes not sorted")
					return
				}
				cs := s.ContainerRecords("")
				if !slices.IsSortedFunc(cs, compareContainers) {
					t.Error("containers not sorted")
					return
				}
			}
		}()
	}
	for i := 0; i < 100; i++ {
		id := NewID()
		if err := s.AddSandbox(&Sandbox{ID: id, Name: id, CreatedAt: int64(i), State: SandboxCreating, Config: &runtimeapi.PodSandboxConfig{}}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddContainer(&Container{ID: id, SandboxID: id, Name: id, CreatedAt: int64(i), State: ContainerCreating}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := s.DeleteContainer(id); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteSandbox(id); err != nil {
				t.Fatal(err)
			}
			for _, sb := range s.SandboxRecords() {
				if sb.ID == id {
					t.Fatalf("deleted sandbox %s listed", id)
				}
			}
			for _, c := range s.ContainerRecords("") {
				if c.ID == id {
					t.Fatalf("deleted container %s listed", id)
				}
			}
		}
	}
	close(done)
	wg.Wait()
	if n := len(s.SandboxRecords()); n != 50 {
		t.Errorf("%d sandboxes listed, want 50", n)
	}
}
