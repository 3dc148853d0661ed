package testsuite

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/snapshotter"
)

// testLayerApplierOnto unpacks three layers at once through LayerApplier, each committed on its parent when
// that is committed, and checks the result is what unpacking them one after the other gives: whiteouts,
// opaque dirs, a hard link to a file of a lower layer and a directory the tar does not list (both of which
// need the layers below, so only those layers wait for their parent).
func testLayerApplierOnto(t *testing.T, sn snapshotter.Snapshotter) {
	la, ok := sn.(snapshotter.LayerApplier)
	if !ok {
		t.Skip("snapshotter does not implement LayerApplier")
	}
	ctx := context.Background()
	dir := func(name string, mode int64) tarEntry { return tarEntry{name: name, typ: tar.TypeDir, mode: mode} }
	layers := [][]tarEntry{
		{dir("etc/", 0o755), {name: "etc/passwd", body: "root"}, {name: "etc/hosts", body: "hosts"},
			dir("opq/", 0o755), {name: "opq/old", body: "old"}, dir("deep/", 0o711), dir("deep/er/", 0o750),
			{name: "deep/er/f", body: "f"}, {name: "file", body: "v1"}},
		{dir("etc/", 0o755), {name: "etc/.wh.hosts"}, dir("opq/", 0o755), {name: "opq/.wh..wh..opq"},
			{name: "opq/new", body: "new"}, {name: "file", body: "v2"}, {name: "own", body: "own"}},
		// Needs the layers below: a hard link to a lower file and an unlisted parent (deep/er).
		{{name: "hard", typ: tar.TypeLink, link: "etc/passwd"}, {name: "deep/er/g", body: "g"}, {name: ".wh.file"}},
	}
	names := []string{"onto-1", "onto-2", "onto-3"}
	committed := make([]chan struct{}, len(layers))
	for i := range committed {
		committed[i] = make(chan struct{})
	}
	waits := make([]atomic.Int32, len(layers))
	var wg sync.WaitGroup
	errs := make([]error, len(layers))
	for i := range layers {
		key := names[i] + "-extract"
		if _, err := sn.Prepare(ctx, key, ""); err != nil {
			t.Fatal(err)
		}
		parent := ""
		if i > 0 {
			parent = names[i-1]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait := func() error {
				waits[i].Add(1)
				<-committed[i-1]
				return nil
			}
			if _, err := la.ApplyLayerOnto(ctx, key, parent, wait, bytes.NewReader(layerTar(t, layers[i]...))); err != nil {
				errs[i] = err
			} else if parent == "" {
				errs[i] = sn.Commit(ctx, names[i], key)
			} else {
				<-committed[i-1]
				errs[i] = la.CommitOnto(ctx, names[i], key, parent)
			}
			close(committed[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
	}
	if n := waits[1].Load(); n != 0 {
		t.Errorf("layer 2 waited for its parent %d times; it needs nothing from below", n)
	}
	if n := waits[2].Load(); n != 1 {
		t.Errorf("layer 3 waited for its parent %d times, want once", n)
	}
	for i, name := range names {
		info, err := sn.Stat(ctx, name)
		want := ""
		if i > 0 {
			want = names[i-1]
		}
		if err != nil || info.Kind != snapshotter.KindCommitted || info.Parent != want {
			t.Errorf("Stat(%s) = %+v, %v; want committed on %q", name, info, err, want)
		}
	}
	ms, err := sn.View(ctx, "onto-view", names[2])
	if err != nil {
		t.Fatal(err)
	}
	d := mount(t, ms)
	expectFile(t, filepath.Join(d, "etc/passwd"), "root")
	expectFile(t, filepath.Join(d, "hard"), "root")
	expectAbsent(t, filepath.Join(d, "etc/hosts"))
	expectAbsent(t, filepath.Join(d, "opq/old"))
	expectFile(t, filepath.Join(d, "opq/new"), "new")
	expectAbsent(t, filepath.Join(d, "file"))
	expectFile(t, filepath.Join(d, "own"), "own")
	expectFile(t, filepath.Join(d, "deep/er/f"), "f")
	expectFile(t, filepath.Join(d, "deep/er/g"), "g")
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(d, "deep/er"), &st); err != nil || st.Mode&0o7777 != 0o750 {
		t.Errorf("implied dir deep/er: mode %o, %v; want 0750 from the layer below", st.Mode&0o7777, err)
	}
	var a, b unix.Stat_t
	if unix.Lstat(filepath.Join(d, "hard"), &a) != nil || unix.Lstat(filepath.Join(d, "etc/passwd"), &b) != nil || a.Ino != b.Ino {
		t.Errorf("hard and etc/passwd are not one inode in the merged view")
	}
	if err := la.Sync(ctx); err != nil {
		t.Errorf("Sync: %v", err)
	}
}

// testLayerApplierOntoErrors checks CommitOnto's preconditions and that a failing waitParent fails the apply.
func testLayerApplierOntoErrors(t *testing.T, sn snapshotter.Snapshotter) {
	la, ok := sn.(snapshotter.LayerApplier)
	if !ok {
		t.Skip("snapshotter does not implement LayerApplier")
	}
	ctx := context.Background()
	applyLayer(t, sn, "base", "", tarEntry{name: "f", body: "f"})
	if _, err := sn.Prepare(ctx, "active-parent", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "k", ""); err != nil {
		t.Fatal(err)
	}
	expectKind(t, "CommitOnto missing parent", la.CommitOnto(ctx, "n", "k", "nope"), errdefs.ErrNotFound)
	expectKind(t, "CommitOnto active parent", la.CommitOnto(ctx, "n", "k", "active-parent"), errdefs.ErrFailedPrecondition)
	if _, err := sn.Prepare(ctx, "on-base", "base"); err != nil {
		t.Fatal(err)
	}
	expectKind(t, "CommitOnto of a snapshot with a parent", la.CommitOnto(ctx, "n", "on-base", "base"), errdefs.ErrFailedPrecondition)
	_, err := la.ApplyLayerOnto(ctx, "on-base", "base", func() error { return nil }, bytes.NewReader(layerTar(t, tarEntry{name: "x", body: "x"})))
	expectKind(t, "ApplyLayerOnto into a snapshot with a parent", err, errdefs.ErrFailedPrecondition)

	boom := errors.New("parent failed")
	_, err = la.ApplyLayerOnto(ctx, "k", "base", func() error { return boom },
		bytes.NewReader(layerTar(t, tarEntry{name: "h", typ: tar.TypeLink, link: "f"})))
	if !errors.Is(err, boom) {
		t.Errorf("apply needing a failed parent: %v, want %v", err, boom)
	}
	if err := la.CommitOnto(ctx, "n", "k", "base"); err != nil {
		t.Fatal(err)
	}
	if info, err := sn.Stat(ctx, "n"); err != nil || info.Parent != "base" {
		t.Errorf("Stat(n) = %+v, %v", info, err)
	}
	expectKind(t, "remove a rebased parent", sn.Remove(ctx, "base"), errdefs.ErrFailedPrecondition)
}
