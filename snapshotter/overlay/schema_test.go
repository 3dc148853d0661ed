package overlay

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/noded/noded/errdefs"
)

func setVersion(t *testing.T, root string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(root, "metadata.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// TestUnversionedMetadataKeepsSnapshots opens a metadata.db as noded wrote it before schema versions (today's
// records, no version): the snapshots and their directories stay. A newer version is refused.
func TestUnversionedMetadataKeepsSnapshots(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := open(t, root)
	if _, err := s.Prepare(ctx, "active", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	setVersion(t, root, Schema.Clear)

	s = open(t, root)
	info, err := s.Stat(ctx, "active")
	if err != nil || info.Key != "active" {
		t.Fatalf("snapshot after upgrade: %+v, %v", info, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	setVersion(t, root, func(tx *bolt.Tx) error { return Schema.Set(tx, Schema.Current+1) })
	if s, err := New(root); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "snapshots schema") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("newer metadata.db: %v, want FailedPrecondition naming the snapshots schema", err)
	}
	setVersion(t, root, func(tx *bolt.Tx) error {
		if v, err := Schema.Version(tx); err != nil || v != Schema.Current+1 {
			t.Errorf("refused file's version = %d, %v", v, err)
		}
		return nil
	})
}
