// Package boltschema versions the layout of the bbolt files noded keeps (the state and image records in
// noded.db, the snapshot records in snapshots/metadata.db).
//
// Each part of a file that one package owns has a name and a version, stored as decimal text under that name
// in the top-level bucket "schema":
//
//	schema/state      store's sandboxes and containers
//	schema/images     image's records and names
//	schema/snapshots  overlay's snapshot records
//
// A part without a version was written before versions existed and is version 1. At open, a part newer than
// the running code is refused (a downgrade could lose or misread records); an older one is brought up to date
// step by step inside the caller's transaction, so a crash mid-migration leaves the old layout intact.
package boltschema

import (
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/noded/noded/errdefs"
)

// Bucket is the top-level bucket holding the versions.
var Bucket = []byte("schema")

// Unversioned is the version of a part written before versions existed: today's first layout.
const Unversioned = 1

// Migration moves a part from one version to the next inside tx. It must tolerate the part's buckets being
// absent (a new file).
type Migration func(tx *bolt.Tx) error

// Schema describes one part of a bbolt file.
type Schema struct {
	// Name is the part's key in the schema bucket.
	Name string
	// Current is the version the running code reads and writes.
	Current int
	// Migrations[i] moves the part from version i+1 to i+2; len(Migrations) must be Current-1.
	Migrations []Migration
}

// Version returns the stored version of the part (Unversioned when none is stored).
func (s Schema) Version(tx *bolt.Tx) (int, error) {
	b := tx.Bucket(Bucket)
	if b == nil {
		return Unversioned, nil
	}
	v := b.Get([]byte(s.Name))
	if v == nil {
		return Unversioned, nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s schema version %q is not a positive number", s.Name, v)
	}
	return n, nil
}

// Ensure brings the part in tx (a writable transaction) to Current: it refuses a newer version with
// FailedPrecondition, runs the migrations from the stored version on and records Current.
func (s Schema) Ensure(tx *bolt.Tx) error {
	if len(s.Migrations) != s.Current-1 {
		return fmt.Errorf("%s schema: %d migrations for version %d", s.Name, len(s.Migrations), s.Current)
	}
	have, err := s.Version(tx)
	if err != nil {
		return err
	}
	if have > s.Current {
		return errdefs.FailedPrecondition("%s schema version %d was written by a newer noded (this one knows up to %d);"+
			" run that version or restore a backup of the database", s.Name, have, s.Current)
	}
	for v := have; v < s.Current; v++ {
		if err := s.Migrations[v-1](tx); err != nil {
			return fmt.Errorf("migrate %s schema from version %d to %d: %w", s.Name, v, v+1, err)
		}
	}
	b, err := tx.CreateBucketIfNotExists(Bucket)
	if err != nil {
		return err
	}
	if cur := b.Get([]byte(s.Name)); cur != nil && string(cur) == strconv.Itoa(s.Current) {
		return nil
	}
	return b.Put([]byte(s.Name), []byte(strconv.Itoa(s.Current)))
}

// Set records version v for the part. It is meant for tests that stage an old or a newer file.
func (s Schema) Set(tx *bolt.Tx, v int) error {
	b, err := tx.CreateBucketIfNotExists(Bucket)
	if err != nil {
		return err
	}
	return b.Put([]byte(s.Name), []byte(strconv.Itoa(v)))
}

// Clear removes the part's version, as a file written before versions existed has none.
func (s Schema) Clear(tx *bolt.Tx) error {
	b := tx.Bucket(Bucket)
	if b == nil {
		return nil
	}
	return b.Delete([]byte(s.Name))
}
