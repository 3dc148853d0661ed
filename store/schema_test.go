package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

// writeUnversionedFixture writes a state file as noded did before schema versions existed: the records of
// today's code path (a ready pod with a running container), and no version.
func writeUnversionedFixture(t *testing.T, path string) (sbID, ctrID string) {
	t.Helper()
	db := openDB(t, path)
	defer db.Close()
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"}}
	sb := &Sandbox{ID: NewID(), Name: "p_ns_u_0", Config: cfg, State: SandboxReady, CreatedAt: 1, IPs: []string{"10.0.0.2"}}
	if err := s.AddSandbox(sb); err != nil {
		t.Fatal(err)
	}
	c := &Container{ID: NewID(), SandboxID: sb.ID, Name: "c_p_0", Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"}}, State: ContainerRunning, Pid: 4242, StartedAt: 3}
	if err := s.AddContainer(c); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(Schema.Clear); err != nil {
		t.Fatal(err)
	}
	return sb.ID, c.ID
}

func TestOpenUnversionedFileKeepsRunningContainers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "noded.db")
	sbID, ctrID := writeUnversionedFixture(t, path)
	db := openDB(t, path)
	defer db.Close()
	var before int
	if err := db.View(func(tx *bolt.Tx) (err error) { before, err = Schema.Version(tx); return err }); err != nil {
		t.Fatal(err)
	}
	if before != 1 {
		t.Fatalf("unversioned file reads as version %d, want 1", before)
	}
	s, err := Open(db)
	if err != nil {
		t.Fatalf("open an unversioned state file: %v", err)
	}
	sb, err := s.Sandbox(sbID)
	if err != nil || sb.State != SandboxReady || len(sb.IPs) != 1 {
		t.Fatalf("sandbox after upgrade: %+v, %v", sb, err)
	}
	c, err := s.Container(ctrID)
	if err != nil || c.State != ContainerRunning || c.Pid != 4242 || c.Config.GetMetadata().GetName() != "c" {
		t.Fatalf("running container after upgrade: %+v, %v", c, err)
	}
	var after int
	if err := db.View(func(tx *bolt.Tx) (err error) { after, err = Schema.Version(tx); return err }); err != nil {
		t.Fatal(err)
	}
	if after != Schema.Current {
		t.Fatalf("version after open = %d, want %d", after, Schema.Current)
	}
}

func TestOpenRefusesNewerStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "noded.db")
	writeUnversionedFixture(t, path)
	db := openDB(t, path)
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return Schema.Set(tx, Schema.Current+1) }); err != nil {
		t.Fatal(err)
	}
	_, err := Open(db)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "newer noded") {
		t.Fatalf("Open over a newer file = %v, want FailedPrecondition saying a newer noded wrote it", err)
	}
}
