package boltschema

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/noded/noded/errdefs"
)

func openDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func version(t *testing.T, db *bolt.DB, s Schema) int {
	t.Helper()
	var v int
	if err := db.View(func(tx *bolt.Tx) (err error) { v, err = s.Version(tx); return err }); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEnsureStampsUnversionedFile(t *testing.T) {
	db := openDB(t)
	s := Schema{Name: "state", Current: 1}
	if got := version(t, db, s); got != Unversioned {
		t.Fatalf("version of an empty file = %d, want %d", got, Unversioned)
	}
	if err := db.Update(s.Ensure); err != nil {
		t.Fatal(err)
	}
	if got := version(t, db, s); got != 1 {
		t.Fatalf("version after Ensure = %d, want 1", got)
	}
}

func TestEnsureRefusesNewer(t *testing.T) {
	db := openDB(t)
	s := Schema{Name: "images", Current: 1}
	if err := db.Update(func(tx *bolt.Tx) error { return s.Set(tx, 3) }); err != nil {
		t.Fatal(err)
	}
	err := db.Update(s.Ensure)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("Ensure over a newer file = %v, want FailedPrecondition naming version 3", err)
	}
	if got := version(t, db, s); got != 3 {
		t.Fatalf("refused file's version changed to %d", got)
	}
}

func TestEnsureMigratesStepByStep(t *testing.T) {
	db := openDB(t)
	var ran []int
	step := func(n int) Migration {
		return func(tx *bolt.Tx) error {
			ran = append(ran, n)
			b, err := tx.CreateBucketIfNotExists([]byte("data"))
			if err != nil {
				return err
			}
			return b.Put([]byte("step"), []byte{byte('0' + n)})
		}
	}
	s := Schema{Name: "snapshots", Current: 3, Migrations: []Migration{step(1), step(2)}}
	if err := db.Update(s.Ensure); err != nil {
		t.Fatal(err)
	}
	if len(ran) != 2 || ran[0] != 1 || ran[1] != 2 {
		t.Fatalf("migrations ran %v, want [1 2]", ran)
	}
	if got := version(t, db, s); got != 3 {
		t.Fatalf("version = %d, want 3", got)
	}
	ran = nil
	if err := db.Update(s.Ensure); err != nil {
		t.Fatal(err)
	}
	if len(ran) != 0 {
		t.Fatalf("a current file ran migrations %v", ran)
	}
}

func TestFailedMigrationKeepsOldLayout(t *testing.T) {
	db := openDB(t)
	s := Schema{Name: "state", Current: 2, Migrations: []Migration{func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists([]byte("half")); err != nil {
			return err
		}
		return errors.New("boom")
	}}}
	if err := db.Update(s.Ensure); err == nil || !strings.Contains(err.Error(), "from version 1 to 2") {
		t.Fatalf("Ensure = %v, want the migration's error", err)
	}
	if err := db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("half")) != nil {
			return errors.New("half-made bucket survived")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := version(t, db, s); got != 1 {
		t.Fatalf("version after a failed migration = %d, want 1", got)
	}
}

func TestPartsAreIndependent(t *testing.T) {
	db := openDB(t)
	state, images := Schema{Name: "state", Current: 1}, Schema{Name: "images", Current: 1}
	if err := db.Update(func(tx *bolt.Tx) error { return images.Set(tx, 9) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(state.Ensure); err != nil {
		t.Fatalf("state refused because of the images part: %v", err)
	}
}

func TestBadStoredVersion(t *testing.T) {
	db := openDB(t)
	s := Schema{Name: "state", Current: 1}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(Bucket)
		if err != nil {
			return err
		}
		return b.Put([]byte("state"), []byte("x"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(s.Ensure); err == nil {
		t.Fatal("Ensure accepted a garbage version")
	}
}
