package image

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/noded/noded/errdefs"
)

// TestMetaStoreUnversionedAndNewer opens an image database as noded wrote it before schema versions (today's
// records, no version): the records stay and the version is stamped. A newer version is refused.
func TestMetaStoreUnversionedAndNewer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "noded.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, err := newMetaStore(db)
	if err != nil {
		t.Fatal(err)
	}
	img := &Image{ID: "sha256:" + strings.Repeat("a", 64), Size: 7}
	if _, err := m.commit(img, []string{"docker.io/library/busybox:latest"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(Schema.Clear); err != nil {
		t.Fatal(err)
	}

	m, err = newMetaStore(db)
	if err != nil {
		t.Fatalf("open an unversioned image database: %v", err)
	}
	got, err := m.resolve("docker.io/library/busybox:latest")
	if err != nil || got.ID != img.ID || got.Size != 7 {
		t.Fatalf("image after upgrade: %+v, %v", got, err)
	}
	var v int
	if err := db.View(func(tx *bolt.Tx) (err error) { v, err = Schema.Version(tx); return err }); err != nil || v != Schema.Current {
		t.Fatalf("version after open = %d (%v), want %d", v, err, Schema.Current)
	}

	if err := db.Update(func(tx *bolt.Tx) error { return Schema.Set(tx, Schema.Current+1) }); err != nil {
		t.Fatal(err)
	}
	if _, err := newMetaStore(db); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "images schema") {
		t.Fatalf("newer image database: %v, want FailedPrecondition naming the images schema", err)
	}
}
