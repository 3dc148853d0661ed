package store

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

func openDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestSandboxesPersistAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db := openDB(t, path)
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"}, Hostname: "h"}
	sb := &Sandbox{ID: NewID(), Name: "p_ns_u_0", Config: cfg, State: SandboxCreating, CreatedAt: 1}
	if err := s.AddSandbox(sb); err != nil {
		t.Fatal(err)
	}
	dup := &Sandbox{ID: NewID(), Name: "p_ns_u_0", Config: cfg}
	if err := s.AddSandbox(dup); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("duplicate name: %v, want AlreadyExists", err)
	}
	if _, err := s.UpdateSandbox(sb.ID, func(x *Sandbox) error { x.State = SandboxReady; x.IPs = []string{"10.0.0.2"}; return nil }); err != nil {
		t.Fatal(err)
	}
	c := &Container{ID: NewID(), SandboxID: sb.ID, Name: "c_p_0", Config: &runtimeapi.ContainerConfig{Image: &runtimeapi.ImageSpec{Image: "busybox"}}, CreatedAt: 2}
	if err := s.AddContainer(c); err != nil {
		t.Fatal(err)
	}
	orphan := &Container{ID: NewID(), SandboxID: "nope", Name: "x"}
	if err := s.AddContainer(orphan); !errdefs.IsNotFound(err) {
		t.Fatalf("container of unknown sandbox: %v", err)
	}
	db.Close()

	db = openDB(t, path)
	defer db.Close()
	s, err = Open(db)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Sandbox(sb.ID[:12])
	if err != nil {
		t.Fatal(err)
	}
	if got.State != SandboxReady || got.IPs[0] != "10.0.0.2" || got.Config.GetHostname() != "h" {
		t.Fatalf("reloaded sandbox = %+v", got)
	}
	gc, err := s.Container(c.ID)
	if err != nil || gc.Config.GetImage().GetImage() != "busybox" {
		t.Fatalf("reloaded container = %+v, %v", gc, err)
	}
	if n := len(s.Containers(sb.ID)); n != 1 {
		t.Fatalf("containers of sandbox = %d", n)
	}
	if err := s.DeleteContainer(c.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSandbox(sb.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSandbox(sb.ID); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := s.Sandbox(sb.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("deleted sandbox: %v", err)
	}
	// The name is free again.
	if err := s.AddSandbox(dup); err != nil {
		t.Fatal(err)
	}
}

func TestPrefixResolution(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "s.db"))
	defer db.Close()
	s, _ := Open(db)
	_ = s.AddSandbox(&Sandbox{ID: "abc1", Name: "a"})
	_ = s.AddSandbox(&Sandbox{ID: "abc2", Name: "b"})
	if _, err := s.Sandbox("abc"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	if _, err := s.Sandbox(""); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("empty id: %v", err)
	}
	if sb, err := s.Sandbox("abc2"); err != nil || sb.Name != "b" {
		t.Fatalf("exact: %+v %v", sb, err)
	}
}
