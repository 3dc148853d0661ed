package store

import (
	"path/filepath"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
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
	if now := s.ContainerRecords(""); now[0].State != ContainerRunning {
		t.Errorf("new snapshot does not see the update: %s", now[0].State)
	}
}
