package content

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/noded/noded/errdefs"
	digest "github.com/opencontainers/go-digest"
)

func TestWriterCommitAndVerify(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello blob")
	d := digest.FromBytes(data)

	w, err := s.NewWriter(d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadAll(d)
	if err != nil || string(got) != string(data) {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if !s.Exists(d, int64(len(data))) || s.Exists(d, 3) {
		t.Fatal("Exists wrong")
	}

	// Wrong content: nothing stored, nothing left in ingest.
	other := digest.FromString("other")
	w, _ = s.NewWriter(other, int64(len(data)))
	_, _ = w.Write(data)
	if err := w.Commit(); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("mismatch commit: %v", err)
	}
	if s.Exists(other, -1) {
		t.Fatal("unverified blob stored")
	}
	// Too many bytes are refused while writing; too few at commit.
	w, _ = s.NewWriter(d, 3)
	if _, err := w.Write(data); err == nil {
		t.Fatal("overlong write accepted")
	}
	w.Abort()
	w, _ = s.NewWriter(d, 100)
	_, _ = w.Write(data)
	if err := w.Commit(); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("short commit: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(s.Root(), "ingest"))
	if len(entries) != 0 {
		t.Fatalf("ingest not empty: %v", entries)
	}

	var seen []digest.Digest
	_ = s.Walk(func(d digest.Digest, _ int64) error { seen = append(seen, d); return nil })
	if len(seen) != 1 || seen[0] != d {
		t.Fatalf("Walk = %v", seen)
	}
	if err := s.Delete(d); err != nil || s.Exists(d, -1) {
		t.Fatalf("Delete: %v", err)
	}
}

func TestFollowReaderAndRestartCleanup(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	parts := []string{"one ", "two ", "three"}
	all := "one two three"
	w, err := s.NewWriter(digest.FromString(all), int64(len(all)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := w.NewReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string)
	go func() {
		b, err := io.ReadAll(r)
		if err != nil {
			b = []byte("error: " + err.Error())
		}
		got <- string(b)
	}()
	for _, p := range parts {
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	w.CloseWrite(nil)
	if g := <-got; g != all {
		t.Fatalf("follower read %q", g)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	r.Close()

	// A reader of a failed ingest gets the failure; a cancelled reader its context's error.
	w2, _ := s.NewWriter(digest.FromString("x"), -1)
	r2, _ := w2.NewReader(context.Background())
	w2.CloseWrite(io.ErrClosedPipe)
	if _, err := io.ReadAll(r2); err != io.ErrClosedPipe {
		t.Fatalf("reader error = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r3, _ := w2.NewReader(ctx)
	cancel()
	if _, err := r3.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after failure/cancel succeeded")
	}

	// A partial download survives until the store is reopened.
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "ingest"))
	if len(entries) != 0 {
		t.Fatalf("partial downloads kept: %v", entries)
	}
	if b, n, err := s.Usage(); err != nil || b != int64(len(all)) || n < 4 {
		t.Fatalf("Usage = %d bytes, %d inodes, %v", b, n, err)
	}
}
