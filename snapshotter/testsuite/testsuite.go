// Package testsuite is a behavioural test suite that any snapshotter.Snapshotter implementation can run.
// Run needs root and overlayfs and skips without them; RunMetadata is the half that mounts nothing, for any
// implementation (in-memory fakes included).
package testsuite

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/snapshotter"
)

// NewFunc opens a snapshotter rooted at root. The suite closes it.
type NewFunc func(t *testing.T, root string) snapshotter.Snapshotter

// Run runs every test of the suite against snapshotters made by newSnapshotter.
func Run(t *testing.T, newSnapshotter NewFunc) {
	if os.Geteuid() != 0 {
		t.Skip("snapshotter test suite needs root")
	}
	if !overlaySupported() {
		t.Skip("overlayfs not available")
	}
	runTests(t, newSnapshotter, append(metadataTests, []suiteTest{
		{"MountReadBack", testMountReadBack},
		{"ViewIsReadOnly", testViewReadOnly},
		{"AppliedWhiteouts", testAppliedWhiteouts},
		{"Chain128", testChain128},
		{"Usage", testUsage},
		{"RemoveWithChildren", testRemoveChildren},
		{"ConcurrentPrepare", testConcurrentPrepare},
		{"LayerApplierOnto", testLayerApplierOnto},
		{"LayerApplierOntoErrors", testLayerApplierOntoErrors},
	}...))
	t.Run("Reopen", func(t *testing.T) { testReopen(t, newSnapshotter) })
}

type suiteTest struct {
	name string
	fn   func(*testing.T, snapshotter.Snapshotter)
}

// metadataTests mount nothing: they hold an implementation to the API's contract (kinds, parents, labels,
// errors, Walk) without root.
var metadataTests = []suiteTest{
	{"Lifecycle", testLifecycle},
	{"Errors", testErrors},
	{"Walk", testWalk},
}

// RunMetadata runs the tests of the suite that mount nothing; it needs neither root nor overlayfs.
func RunMetadata(t *testing.T, newSnapshotter NewFunc) {
	runTests(t, newSnapshotter, metadataTests)
}

func runTests(t *testing.T, newSnapshotter NewFunc, tests []suiteTest) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			sn := newSnapshotter(t, root)
			t.Cleanup(func() { sn.Close() })
			tc.fn(t, sn)
		})
	}
}

func overlaySupported() bool {
	b, err := os.ReadFile("/proc/filesystems")
	return err == nil && bytes.Contains(b, []byte("\toverlay\n"))
}

// mount mounts ms on a fresh directory, unmounted at cleanup, and returns it.
func mount(t *testing.T, ms []snapshotter.Mount) string {
	t.Helper()
	target := t.TempDir()
	if err := snapshotter.MountAll(ms, target); err != nil {
		t.Fatalf("MountAll(%+v): %v", ms, err)
	}
	t.Cleanup(func() {
		if err := snapshotter.UnmountAll(target); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return target
}

func unmount(t *testing.T, target string) {
	t.Helper()
	if err := snapshotter.UnmountAll(target); err != nil {
		t.Fatalf("unmount: %v", err)
	}
}

// commitLayer makes committed snapshot name on parent, with fill run on the mounted active snapshot (nothing is
// mounted when fill is nil).
func commitLayer(t *testing.T, sn snapshotter.Snapshotter, name, parent string, fill func(dir string)) {
	t.Helper()
	ctx := context.Background()
	key := name + "-active"
	ms, err := sn.Prepare(ctx, key, parent)
	if err != nil {
		t.Fatalf("Prepare(%s, %s): %v", key, parent, err)
	}
	if fill != nil {
		dir := mount(t, ms)
		fill(dir)
		unmount(t, dir)
	}
	if err := sn.Commit(ctx, name, key); err != nil {
		t.Fatalf("Commit(%s): %v", name, err)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func expectFile(t *testing.T, p, content string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("read %s: %v", p, err)
		return
	}
	if string(b) != content {
		t.Errorf("%s = %q, want %q", p, b, content)
	}
}

func expectAbsent(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: want not exist, got %v", p, err)
	}
}

func expectKind(t *testing.T, what string, err error, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: error %v, want kind %v", what, err, kind)
	}
}

func testLifecycle(t *testing.T, sn snapshotter.Snapshotter) {
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	if _, err := sn.Prepare(ctx, "base-active", "", snapshotter.WithLabels(map[string]string{"a": "1"})); err != nil {
		t.Fatal(err)
	}
	in, err := sn.Stat(ctx, "base-active")
	if err != nil {
		t.Fatal(err)
	}
	if in.Kind != snapshotter.KindActive || in.Parent != "" || in.Labels["a"] != "1" || in.Created.Before(before) {
		t.Errorf("Stat(base-active) = %+v", in)
	}
	if err := sn.Commit(ctx, "base", "base-active", snapshotter.WithLabels(map[string]string{"b": "2"})); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Stat(ctx, "base-active"); !errdefs.IsNotFound(err) {
		t.Errorf("Stat of committed active key: %v, want NotFound", err)
	}
	in, err = sn.Stat(ctx, "base")
	if err != nil {
		t.Fatal(err)
	}
	if in.Kind != snapshotter.KindCommitted || in.Key != "base" || in.Labels["b"] != "2" {
		t.Errorf("Stat(base) = %+v", in)
	}
	if _, err := sn.View(ctx, "v", "base"); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "c", "base"); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]snapshotter.Info{
		"v": {Key: "v", Parent: "base", Kind: snapshotter.KindView},
		"c": {Key: "c", Parent: "base", Kind: snapshotter.KindActive},
	} {
		in, err := sn.Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if in.Key != want.Key || in.Parent != want.Parent || in.Kind != want.Kind {
			t.Errorf("Stat(%s) = %+v, want %+v", key, in, want)
		}
		if _, err := sn.Mounts(ctx, key); err != nil {
			t.Errorf("Mounts(%s): %v", key, err)
		}
	}
}

func testErrors(t *testing.T, sn snapshotter.Snapshotter) {
	ctx := context.Background()
	commitLayer(t, sn, "base", "", nil)
	if _, err := sn.Prepare(ctx, "active", "base"); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.View(ctx, "view", "base"); err != nil {
		t.Fatal(err)
	}
	_, err := sn.Prepare(ctx, "active", "")
	expectKind(t, "Prepare existing key", err, errdefs.ErrAlreadyExists)
	_, err = sn.View(ctx, "base", "")
	expectKind(t, "View on a committed key", err, errdefs.ErrAlreadyExists)
	_, err = sn.Prepare(ctx, "x", "missing")
	expectKind(t, "Prepare on missing parent", err, errdefs.ErrNotFound)
	_, err = sn.Prepare(ctx, "x", "active")
	expectKind(t, "Prepare on active parent", err, errdefs.ErrFailedPrecondition)
	_, err = sn.View(ctx, "x", "view")
	expectKind(t, "View on view parent", err, errdefs.ErrFailedPrecondition)
	_, err = sn.Prepare(ctx, "", "")
	expectKind(t, "Prepare empty key", err, errdefs.ErrInvalidArgument)
	expectKind(t, "Commit missing", sn.Commit(ctx, "n", "missing"), errdefs.ErrNotFound)
	expectKind(t, "Commit onto existing name", sn.Commit(ctx, "base", "active"), errdefs.ErrAlreadyExists)
	expectKind(t, "Commit a view", sn.Commit(ctx, "n", "view"), errdefs.ErrFailedPrecondition)
	expectKind(t, "Commit a committed", sn.Commit(ctx, "n", "base"), errdefs.ErrFailedPrecondition)
	_, err = sn.Mounts(ctx, "missing")
	expectKind(t, "Mounts missing", err, errdefs.ErrNotFound)
	_, err = sn.Mounts(ctx, "base")
	expectKind(t, "Mounts committed", err, errdefs.ErrFailedPrecondition)
	_, err = sn.Stat(ctx, "missing")
	expectKind(t, "Stat missing", err, errdefs.ErrNotFound)
	_, err = sn.Usage(ctx, "missing")
	expectKind(t, "Usage missing", err, errdefs.ErrNotFound)
	expectKind(t, "Remove missing", sn.Remove(ctx, "missing"), errdefs.ErrNotFound)
	// Failed calls left nothing behind.
	if _, err := sn.Stat(ctx, "x"); !errdefs.IsNotFound(err) {
		t.Errorf("failed Prepare left snapshot x: %v", err)
	}
	if _, err := sn.Stat(ctx, "n"); !errdefs.IsNotFound(err) {
		t.Errorf("failed Commit left snapshot n: %v", err)
	}
	if _, err := sn.Stat(ctx, "active"); err != nil {
		t.Errorf("failed Commit removed its active snapshot: %v", err)
	}
}

func testMountReadBack(t *testing.T, sn snapshotter.Snapshotter) {
	ctx := context.Background()
	commitLayer(t, sn, "l1", "", func(d string) {
		writeFile(t, filepath.Join(d, "keep"), "keep")
		writeFile(t, filepath.Join(d, "gone"), "gone")
		writeFile(t, filepath.Join(d, "edit"), "old")
		writeFile(t, filepath.Join(d, "dir/a"), "a")
		writeFile(t, filepath.Join(d, "dir/b"), "b")
	})
	commitLayer(t, sn, "l2", "l1", func(d string) {
		expectFile(t, filepath.Join(d, "keep"), "keep")
		if err := os.Remove(filepath.Join(d, "gone")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(d, "edit"), "new")
		// Replacing a directory makes it opaque: its old entries must not come back.
		if err := os.RemoveAll(filepath.Join(d, "dir")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(d, "dir/c"), "c")
		writeFile(t, filepath.Join(d, "added"), "added")
	})
	ms, err := sn.Prepare(ctx, "top", "l2")
	if err != nil {
		t.Fatal(err)
	}
	d := mount(t, ms)
	expectFile(t, filepath.Join(d, "keep"), "keep")
	expectFile(t, filepath.Join(d, "edit"), "new")
	expectFile(t, filepath.Join(d, "dir/c"), "c")
	expectFile(t, filepath.Join(d, "added"), "added")
	expectAbsent(t, filepath.Join(d, "gone"))
	expectAbsent(t, filepath.Join(d, "dir/a"))
	expectAbsent(t, filepath.Join(d, "dir/b"))
	writeFile(t, filepath.Join(d, "top"), "top")

	// Mounts returns the same filesystem again.
	ms2, err := sn.Mounts(ctx, "top")
	if err != nil {
		t.Fatal(err)
	}
	d2 := mount(t, ms2)
	expectFile(t, filepath.Join(d2, "top"), "top")

	// The lower layers are untouched by writes to the active snapshot.
	ms3, err := sn.View(ctx, "v1", "l1")
	if err != nil {
		t.Fatal(err)
	}
	d3 := mount(t, ms3)
	expectFile(t, filepath.Join(d3, "gone"), "gone")
	expectFile(t, filepath.Join(d3, "edit"), "old")
	expectFile(t, filepath.Join(d3, "dir/a"), "a")
	expectAbsent(t, filepath.Join(d3, "top"))
}

func testViewReadOnly(t *testing.T, sn snapshotter.Snapshotter) {
	ctx := context.Background()
	commitLayer(t, sn, "l1", "", func(d string) { writeFile(t, filepath.Join(d, "f"), "1") })
	commitLayer(t, sn, "l2", "l1", func(d string) { writeFile(t, filepath.Join(d, "g"), "2") })
	for _, parent := range []string{"", "l1", "l2"} {
		ms, err := sn.View(ctx, "view-of-"+parent, parent)
		if err != nil {
			t.Fatal(err)
		}
		d := mount(t, ms)
		if parent != "" {
			expectFile(t, filepath.Join(d, "f"), "1")
		}
		err = os.WriteFile(filepath.Join(d, "new"), nil, 0o644)
		if !errors.Is(err, unix.EROFS) {
			t.Errorf("write to view of %q: %v, want EROFS", parent, err)
		}
	}
}

// tarEntry is one entry of a generated layer.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func layerTar(t testing.TB, entries ...tarEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// applyLayer commits a layer built from entries, through DirectApplier when the snapshotter has it.
func applyLayer(t *testing.T, sn snapshotter.Snapshotter, name, parent string, entries ...tarEntry) {
	t.Helper()
	da, ok := sn.(snapshotter.DirectApplier)
	if !ok {
		t.Skip("snapshotter does not implement DirectApplier")
	}
	ctx := context.Background()
	key := name + "-extract"
	if _, err := sn.Prepare(ctx, key, parent); err != nil {
		t.Fatal(err)
	}
	if _, err := da.ApplyLayer(ctx, key, bytes.NewReader(layerTar(t, entries...))); err != nil {
		t.Fatalf("ApplyLayer(%s): %v", name, err)
	}
	if err := sn.Commit(ctx, name, key); err != nil {
		t.Fatal(err)
	}
}

func testAppliedWhiteouts(t *testing.T, sn snapshotter.Snapshotter) {
	ctx := context.Background()
	dir := tarEntry{typ: tar.TypeDir}
	at := func(e tarEntry, name string) tarEntry { e.name = name; return e }
	applyLayer(t, sn, "l1", "",
		at(dir, "etc/"), tarEntry{name: "etc/passwd", body: "root"},
		tarEntry{name: "etc/hosts", body: "hosts"},
		at(dir, "opq/"), tarEntry{name: "opq/old", body: "old"},
		at(dir, "rmdir/"), tarEntry{name: "rmdir/x", body: "x"},
		tarEntry{name: "file", body: "v1"},
		tarEntry{name: "bin", typ: tar.TypeSymlink, link: "usr/bin"},
		tarEntry{name: ".wh.nothing"}, // hides nothing in a bottom layer
	)
	applyLayer(t, sn, "l2", "l1",
		at(dir, "etc/"), tarEntry{name: "etc/.wh.hosts"},
		at(dir, "opq/"), tarEntry{name: "opq/.wh..wh..opq"}, tarEntry{name: "opq/new", body: "new"},
		tarEntry{name: ".wh.rmdir"},
		tarEntry{name: "file", body: "v2"},
		tarEntry{name: "hard", typ: tar.TypeLink, link: "etc/passwd"},
	)
	applyLayer(t, sn, "l3", "l2",
		tarEntry{name: ".wh.file"},
		at(dir, "rmdir/"), tarEntry{name: "rmdir/y", body: "y"},
	)
	ms, err := sn.View(ctx, "v", "l3")
	if err != nil {
		t.Fatal(err)
	}
	d := mount(t, ms)
	expectFile(t, filepath.Join(d, "etc/passwd"), "root")
	expectFile(t, filepath.Join(d, "hard"), "root")
	expectAbsent(t, filepath.Join(d, "etc/hosts"))
	expectAbsent(t, filepath.Join(d, "etc/.wh.hosts"))
	expectAbsent(t, filepath.Join(d, "opq/old"))
	expectAbsent(t, filepath.Join(d, "opq/.wh..wh..opq"))
	expectFile(t, filepath.Join(d, "opq/new"), "new")
	expectAbsent(t, filepath.Join(d, "file"))
	expectAbsent(t, filepath.Join(d, "rmdir/x"))
	expectFile(t, filepath.Join(d, "rmdir/y"), "y")
	if l, err := os.Readlink(filepath.Join(d, "bin")); err != nil || l != "usr/bin" {
		t.Errorf("bin -> %q, %v", l, err)
	}
	if names := readDir(t, d); strings.Join(names, ",") != "bin,etc,hard,opq,rmdir" {
		t.Errorf("root entries = %v", names)
	}
	// The bottom layer alone shows no trace of its whiteout.
	ms1, err := sn.View(ctx, "v1", "l1")
	if err != nil {
		t.Fatal(err)
	}
	if names := readDir(t, mount(t, ms1)); strings.Join(names, ",") != "bin,etc,file,opq,rmdir" {
		t.Errorf("bottom layer entries = %v", names)
	}
	// Middle layer still sees its own state.
	ms2, err := sn.View(ctx, "v2", "l2")
	if err != nil {
		t.Fatal(err)
	}
	d2 := mount(t, ms2)
	expectFile(t, filepath.Join(d2, "file"), "v2")
	expectAbsent(t, filepath.Join(d2, "rmdir"))
}

func readDir(t *testing.T, d string) []string {
	t.Helper()
	es, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func testChain128(t *testing.T, sn snapshotter.Snapshotter) {
	ctx := context.Background()
	const n = 128
	_, direct := sn.(snapshotter.DirectApplier)
	parent := ""
	for i := range n {
		name := fmt.Sprintf("sha256:%064x", i) // chain-ID-like keys, as real images use
		file := fmt.Sprintf("layer%03d", i)
		if direct {
			applyLayer(t, sn, name, parent, tarEntry{name: file, body: file}, tarEntry{name: "top", body: file})
		} else {
			commitLayer(t, sn, name, parent, func(d string) {
				writeFile(t, filepath.Join(d, file), file)
				writeFile(t, filepath.Join(d, "top"), file)
			})
		}
		parent = name
	}
	check := func(ms []snapshotter.Mount) string {
		for _, m := range ms {
			if l := len(strings.Join(m.Options, ",")); l >= os.Getpagesize() {
				t.Errorf("mount options are %d bytes, over the page size", l)
			}
		}
		d := mount(t, ms)
		for i := range n {
			f := fmt.Sprintf("layer%03d", i)
			expectFile(t, filepath.Join(d, f), f)
		}
		expectFile(t, filepath.Join(d, "top"), fmt.Sprintf("layer%03d", n-1))
		return d
	}
	ms, err := sn.View(ctx, "view", parent)
	if err != nil {
		t.Fatal(err)
	}
	check(ms)
	ms, err = sn.Prepare(ctx, "container", parent)
	if err != nil {
		t.Fatal(err)
	}
	d := check(ms)
	writeFile(t, filepath.Join(d, "written"), "w")
	expectFile(t, filepath.Join(d, "written"), "w")
}

func testUsage(t *testing.T, sn snapshotter.Snapshotter) {
	ctx := context.Background()
	ms, err := sn.Prepare(ctx, "a", "")
	if err != nil {
		t.Fatal(err)
	}
	empty, err := sn.Usage(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	d := mount(t, ms)
	writeFile(t, filepath.Join(d, "sub/one"), strings.Repeat("x", 1000))
	writeFile(t, filepath.Join(d, "two"), strings.Repeat("y", 5000))
	if err := os.Link(filepath.Join(d, "two"), filepath.Join(d, "two-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("two", filepath.Join(d, "sym")); err != nil {
		t.Fatal(err)
	}
	unmount(t, d)
	u, err := sn.Usage(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	// sub, one, two (linked twice), sym.
	if got := (snapshotter.Usage{Size: u.Size - empty.Size, Inodes: u.Inodes - empty.Inodes}); got != (snapshotter.Usage{Size: 6000, Inodes: 4}) {
		t.Errorf("usage growth = %+v, want 6000 bytes and 4 inodes", got)
	}
	if err := sn.Commit(ctx, "c", "a"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second call may be served from a cache
		uc, err := sn.Usage(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		if uc != u {
			t.Errorf("usage after commit = %+v, want %+v", uc, u)
		}
	}
	// A child's usage counts only its own data.
	ms, err = sn.Prepare(ctx, "child", "c")
	if err != nil {
		t.Fatal(err)
	}
	d = mount(t, ms)
	writeFile(t, filepath.Join(d, "three"), "zzz")
	unmount(t, d)
	uc, err := sn.Usage(ctx, "child")
	if err != nil {
		t.Fatal(err)
	}
	if uc.Size != empty.Size+3 {
		t.Errorf("child usage = %+v, want %d bytes", uc, empty.Size+3)
	}
}

func testRemoveChildren(t *testing.T, sn snapshotter.Snapshotter) {
	ctx := context.Background()
	commitLayer(t, sn, "p", "", func(d string) { writeFile(t, filepath.Join(d, "f"), "p") })
	if _, err := sn.Prepare(ctx, "child", "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.View(ctx, "view", "p"); err != nil {
		t.Fatal(err)
	}
	expectKind(t, "Remove parent with children", sn.Remove(ctx, "p"), errdefs.ErrFailedPrecondition)
	if err := sn.Remove(ctx, "child"); err != nil {
		t.Fatal(err)
	}
	expectKind(t, "Remove parent with a view", sn.Remove(ctx, "p"), errdefs.ErrFailedPrecondition)
	if err := sn.Remove(ctx, "view"); err != nil {
		t.Fatal(err)
	}
	if err := sn.Remove(ctx, "p"); err != nil {
		t.Fatalf("Remove childless parent: %v", err)
	}
	for _, k := range []string{"p", "child", "view"} {
		if _, err := sn.Stat(ctx, k); !errdefs.IsNotFound(err) {
			t.Errorf("Stat(%s) after Remove: %v", k, err)
		}
	}
	// The key is free again and the new snapshot starts empty.
	ms, err := sn.Prepare(ctx, "p", "")
	if err != nil {
		t.Fatal(err)
	}
	d := mount(t, ms)
	expectAbsent(t, filepath.Join(d, "f"))
}

func testWalk(t *testing.T, sn snapshotter.Snapshotter) {
	ctx := context.Background()
	commitLayer(t, sn, "base", "", nil)
	if _, err := sn.Prepare(ctx, "act", "base", snapshotter.WithLabels(map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.View(ctx, "view", "base"); err != nil {
		t.Fatal(err)
	}
	got := map[string]snapshotter.Info{}
	if err := sn.Walk(ctx, func(_ context.Context, in snapshotter.Info) error {
		got[in.Key] = in
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["base"].Kind != snapshotter.KindCommitted || got["act"].Kind != snapshotter.KindActive ||
		got["act"].Parent != "base" || got["act"].Labels["k"] != "v" || got["view"].Kind != snapshotter.KindView {
		t.Errorf("Walk = %+v", got)
	}
	stop := errors.New("stop")
	calls := 0
	err := sn.Walk(ctx, func(context.Context, snapshotter.Info) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Walk with failing fn: err %v after %d calls, want stop after 1", err, calls)
	}
}

func testConcurrentPrepare(t *testing.T, sn snapshotter.Snapshotter) {
	ctx := context.Background()
	commitLayer(t, sn, "base", "", func(d string) { writeFile(t, filepath.Join(d, "f"), "base") })
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = sn.Prepare(ctx, fmt.Sprintf("c%d", i), "base")
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Prepare c%d: %v", i, err)
		}
	}
	// All the snapshots are distinct.
	for i := range 2 {
		ms, err := sn.Mounts(ctx, fmt.Sprintf("c%d", i))
		if err != nil {
			t.Fatal(err)
		}
		d := mount(t, ms)
		writeFile(t, filepath.Join(d, "own"), fmt.Sprint(i))
	}
	ms, err := sn.Mounts(ctx, "c0")
	if err != nil {
		t.Fatal(err)
	}
	expectFile(t, filepath.Join(mount(t, ms), "own"), "0")
	ms, err = sn.Mounts(ctx, "c2")
	if err != nil {
		t.Fatal(err)
	}
	expectAbsent(t, filepath.Join(mount(t, ms), "own"))
}

func testReopen(t *testing.T, newSnapshotter NewFunc) {
	ctx := context.Background()
	root := t.TempDir()
	sn := newSnapshotter(t, root)
	commitLayer(t, sn, "base", "", func(d string) { writeFile(t, filepath.Join(d, "f"), "persisted") })
	if _, err := sn.Prepare(ctx, "act", "base", snapshotter.WithLabels(map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	if err := sn.Close(); err != nil {
		t.Fatal(err)
	}
	sn = newSnapshotter(t, root)
	t.Cleanup(func() { sn.Close() })
	in, err := sn.Stat(ctx, "act")
	if err != nil {
		t.Fatal(err)
	}
	if in.Parent != "base" || in.Kind != snapshotter.KindActive || in.Labels["k"] != "v" {
		t.Errorf("Stat after reopen = %+v", in)
	}
	ms, err := sn.Mounts(ctx, "act")
	if err != nil {
		t.Fatal(err)
	}
	expectFile(t, filepath.Join(mount(t, ms), "f"), "persisted")
}
