package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/image"
	"github.com/noded/noded/internal/boltschema"
	"github.com/noded/noded/snapshotter/overlay"
	"github.com/noded/noded/store"
)

// editDB runs fn on a bbolt file of a stopped noded.
func editDB(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// An upgrade from a noded that wrote no schema versions keeps the running container (and the pulled image): the
// new noded reads today's layout as version 1 and records the version in each file.
func TestUpgradeFromUnversionedStateKeepsRunningContainers(t *testing.T) {
	e := newPodEnv(t, 94, nil)
	cfg := e.podConfig(t, "upgrade")
	pod := e.runPod(t, cfg)
	c := e.createContainer(t, pod, cfg, "sleeper", "sleep", "1000")
	if err := e.n.Runtime.StartContainer(e.ctx, c); err != nil {
		t.Fatal(err)
	}
	stateDB, snapDB := filepath.Join(e.n.Root, "noded.db"), filepath.Join(e.n.Root, "snapshots", "metadata.db")
	parts := map[string][]boltschema.Schema{stateDB: {store.Schema, image.Schema}, snapDB: {overlay.Schema}}

	e.n.Stop()
	for path, schemas := range parts {
		editDB(t, path, func(tx *bolt.Tx) error {
			for _, s := range schemas {
				if err := s.Clear(tx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	e.n.Respawn()

	if st := e.containerStatus(t, c); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container after the upgrade: %v, want RUNNING", st.State)
	}
	out, _, err := e.n.Runtime.ExecSync(e.ctx, c, []string{"echo", "ok"}, 10*time.Second)
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("exec after the upgrade: %q %v", out, err)
	}
	if img, err := e.n.Image.ImageStatus(e.ctx, &runtimeapi.ImageSpec{Image: "busybox"}, false); err != nil || img.GetImage() == nil {
		t.Fatalf("image after the upgrade: %v %v", img, err)
	}

	e.n.Stop()
	for path, schemas := range parts {
		editDB(t, path, func(tx *bolt.Tx) error {
			for _, s := range schemas {
				b := tx.Bucket(boltschema.Bucket)
				if v, err := s.Version(tx); err != nil || v != s.Current || b == nil || b.Get([]byte(s.Name)) == nil {
					t.Errorf("%s schema of %s after the upgrade: version %d (%v), want %d recorded", s.Name, path, v, err, s.Current)
				}
			}
			return nil
		})
	}
	e.n.Respawn()
	e.removeAllPods(t)
	assertNoLeaks(t, e.n)
}
