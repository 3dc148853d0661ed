// Package storetest opens a real store on a fresh bbolt file for unit tests of the packages above it.
package storetest

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/noded/noded/store"
)

// New opens a store in a new file below t.TempDir(); the file is closed when the test ends.
func New(t testing.TB) *store.Store {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "noded.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
