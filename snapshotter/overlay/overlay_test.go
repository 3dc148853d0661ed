package overlay

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/snapshotter/testsuite"
)

func open(t *testing.T, root string) *Snapshotter {
	t.Helper()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSuite(t *testing.T) {
	testsuite.Run(t, func(t *testing.T, root string) snapshotter.Snapshotter { return open(t, root) })
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func layer(t *testing.T, files map[string]string) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

func TestCrashLeftoversCleanedOnNew(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	s := open(t, root)
	if _, err := s.Prepare(ctx, "kept", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A Prepare that crashed after creating its directory but before committing the record.
	orphan := filepath.Join(root, "snapshots", "999", "fs")
	if err := os.MkdirAll(orphan, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orphan, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = open(t, root)
	defer s.Close()
	if _, err := os.Stat(filepath.Join(root, "snapshots", "999")); !os.IsNotExist(err) {
		t.Errorf("orphaned snapshot dir survived New: %v", err)
	}
	if _, err := s.Stat(ctx, "kept"); err != nil {
		t.Errorf("recorded snapshot lost: %v", err)
	}
	ents, err := os.ReadDir(filepath.Join(root, "snapshots"))
	if err != nil || len(ents) != 1 {
		t.Errorf("snapshots dir = %v, %v; want the one recorded snapshot", ents, err)
	}
}

func TestDeepChainUsesRelativeLowerdirs(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	// A long root makes absolute lowerdirs overflow the page early.
	root := filepath.Join(t.TempDir(), strings.Repeat("r", 100))
	s := open(t, root)
	defer s.Close()
	parent := ""
	for i := range 40 {
		key := fmt.Sprintf("layer-%d", i)
		if _, err := s.Prepare(ctx, key+"-a", parent); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, key, key+"-a"); err != nil {
			t.Fatal(err)
		}
		parent = key
	}
	ms, err := s.Prepare(ctx, "c", parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Dir != filepath.Join(root, "snapshots") || strings.Contains(ms[0].Options[0], root) {
		t.Fatalf("deep chain mounts = %+v, want relative lowerdirs with Dir", ms)
	}
	ms, err = s.Prepare(ctx, "shallow", "layer-0")
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Dir != "" || !strings.Contains(ms[0].Options[0], root) {
		t.Errorf("shallow chain mounts = %+v, want absolute paths", ms)
	}
	target := t.TempDir()
	if err := snapshotter.MountAll(ms, target); err != nil {
		t.Fatal(err)
	}
	if err := snapshotter.UnmountAll(target); err != nil {
		t.Fatal(err)
	}
}

func TestApplyLayer(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	if _, err := s.Prepare(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	n, err := s.ApplyLayer(ctx, "a", layer(t, map[string]string{"x": "12345", "d/y": "67"}))
	if err != nil || n != 7 {
		t.Fatalf("ApplyLayer = %d, %v; want 7 bytes", n, err)
	}
	if err := s.Commit(ctx, "l1", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyLayer(ctx, "l1", layer(t, nil)); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("ApplyLayer on committed: %v, want FailedPrecondition", err)
	}
	if _, err := s.ApplyLayer(ctx, "missing", layer(t, nil)); !errdefs.IsNotFound(err) {
		t.Errorf("ApplyLayer on missing: %v, want NotFound", err)
	}
	// A malicious layer fails with InvalidArgument; the snapshot can then be removed.
	if _, err := s.Prepare(ctx, "bad", "l1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyLayer(ctx, "bad", layer(t, map[string]string{"../../escape": "x"})); !errdefs.IsInvalidArgument(err) {
		t.Errorf("malicious layer: %v, want InvalidArgument", err)
	}
	if err := s.Remove(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
}

func TestDiskUsage(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	s := open(t, root)
	defer s.Close()
	if s.Root() != root {
		t.Errorf("Root() = %s, want %s", s.Root(), root)
	}
	before, err := s.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyLayer(ctx, "a", layer(t, map[string]string{"f": strings.Repeat("z", 4096)})); err != nil {
		t.Fatal(err)
	}
	after, err := s.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The snapshot adds <id>/, fs/ and f.
	if after.Size-before.Size != 4096 || after.Inodes-before.Inodes != 3 {
		t.Errorf("DiskUsage grew by %d bytes, %d inodes; want 4096, 3", after.Size-before.Size, after.Inodes-before.Inodes)
	}
}

// TestChildCountsSurviveReopenAndCommitOnto: a parent stays while a child (made by Prepare or given by CommitOnto)
// names it, also after the metadata is reopened, and goes once they are gone.
func TestChildCountsSurviveReopenAndCommitOnto(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "p-active", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "p", "p-active"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "child", "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "onto-active", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitOnto(ctx, "onto", "onto-active", "p"); err != nil {
		t.Fatal(err)
	}
	// A failed CommitOnto (name taken) does not count a child.
	if _, err := s.Prepare(ctx, "dup-active", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitOnto(ctx, "onto", "dup-active", "p"); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("CommitOnto onto a taken name: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = New(root); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range []string{"child", "onto", ""} {
		err := s.Remove(ctx, "p")
		if k == "" {
			if err != nil {
				t.Fatalf("Remove of a parent without children: %v", err)
			}
			break
		}
		if !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("Remove of a parent with %s: %v", k, err)
		}
		if err := s.Remove(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkRemove250 prepares and removes a container's snapshot among 250 others (a node with 250 pods).
func BenchmarkRemove250(b *testing.B) {
	ctx := context.Background()
	s, err := New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.db.NoSync = true // the metadata's fsync is not what this measures
	if _, err := s.Prepare(ctx, "base-active", ""); err != nil {
		b.Fatal(err)
	}
	if err := s.Commit(ctx, "base", "base-active"); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 250; i++ {
		if _, err := s.Prepare(ctx, fmt.Sprintf("ctr-%d", i), "base"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Prepare(ctx, "new", "base"); err != nil {
			b.Fatal(err)
		}
		if err := s.Remove(ctx, "new"); err != nil {
			b.Fatal(err)
		}
	}
}

// Prepares queued behind one commit share the next: the one of a key already taken gets AlreadyExists and leaves
// nothing, the others are made (their transaction ran again without it), and the child counts match the records.
func TestPreparesSharingACommit(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := open(t, root)
	defer s.Close()
	if _, err := s.Prepare(ctx, "base-active", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "base", "base-active"); err != nil {
		t.Fatal(err)
	}
	in, out, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		held <- s.group.Update(func(*bolt.Tx) error { close(in); <-out; return nil }, nil)
	}()
	<-in
	keys := []string{"a", "b", "a", "c", "missing-parent"}
	errs := make([]chan error, len(keys))
	for i, key := range keys {
		errs[i] = make(chan error, 1)
		parent := "base"
		if key == "missing-parent" {
			parent = "nope"
		}
		go func() { _, err := s.Prepare(ctx, key, parent); errs[i] <- err }()
		for deadline := time.Now().Add(10 * time.Second); s.group.Queued() != i+1; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d prepares queued, want %d", s.group.Queued(), i+1)
			}
		}
	}
	close(out)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for i, want := range []func(error) bool{noError, noError, errdefs.IsAlreadyExists, noError, errdefs.IsNotFound} {
		if err := <-errs[i]; !want(err) {
			t.Errorf("Prepare %s: %v", keys[i], err)
		}
	}
	if n := s.childCount("base"); n != 3 {
		t.Errorf("base has %d children, want 3", n)
	}
	dirs, err := os.ReadDir(filepath.Join(root, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 4 { // base, a, b, c
		t.Errorf("%d snapshot directories, want 4: %v", len(dirs), dirs)
	}
	for _, key := range []string{"a", "b", "c"} {
		if err := s.Remove(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Remove(ctx, "base"); err != nil {
		t.Fatalf("remove base once its children are gone: %v", err)
	}
}

func noError(err error) bool { return err == nil }

// TestWritableMountsVolatile: with WithVolatile, an active snapshot on a parent mounts as a volatile overlay (its unmount then
// does not sync the filesystem under it) where the kernel has the option (5.10+); views do not.
func TestWritableMountsVolatile(t *testing.T) {
	needRoot(t)
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil || major < 5 || major == 5 && minor < 10 {
		t.Skipf("kernel %s has no volatile overlays", u.Release[:])
	}
	ctx := context.Background()
	s, err := New(t.TempDir(), WithVolatile(true))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Prepare(ctx, "base-a", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "base", "base-a"); err != nil {
		t.Fatal(err)
	}
	rw, err := s.Prepare(ctx, "c", "base")
	if err != nil {
		t.Fatal(err)
	}
	if len(rw) != 1 || rw[0].Type != "overlay" || !slices.Contains(rw[0].Options, "volatile") {
		t.Fatalf("writable mounts = %+v, want a volatile overlay", rw)
	}
	ro, err := s.View(ctx, "v", "base")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ro {
		if slices.Contains(m.Options, "volatile") {
			t.Errorf("view mounts = %+v, want no volatile", ro)
		}
	}
	target := t.TempDir()
	if err := snapshotter.MountAll(rw, target); err != nil {
		t.Fatal(err)
	}
	werr := os.WriteFile(filepath.Join(target, "f"), []byte("x"), 0o644)
	if err := snapshotter.UnmountAll(target); err != nil {
		t.Fatal(err)
	}
	if werr != nil {
		t.Fatal(werr)
	}
	if entries, _ := filepath.Glob(filepath.Join(s.root, ".volatile-probe-*")); len(entries) != 0 {
		t.Errorf("probe left %v", entries)
	}
}
