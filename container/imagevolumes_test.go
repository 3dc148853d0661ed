package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/store"
)

func TestValidateSubPath(t *testing.T) {
	for _, ok := range []string{"", "data", "a/b/c", "a..b", ".hidden"} {
		if err := validateSubPath(0, ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"/etc", "..", "../x", "a/../../x", "a/..", "a//b", "a/", ".", "./a"} {
		if err := validateSubPath(0, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v, want InvalidArgument", bad, err)
		}
	}
}

func TestImageVolumeSourceStaysInsideTheImage(t *testing.T) {
	root := filepath.Join(t.TempDir(), "view")
	for _, d := range []string{"data/sub", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "data/file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"inner":    "data/sub",        // relative, inside
		"up":       "../../../../etc", // .. past the root
		"abs":      "/etc",            // absolute: the host's /etc if followed naively
		"dotdot":   "data/../..",
		"indirect": "up",
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	for sub, want := range map[string]string{
		"":          root,
		"data":      filepath.Join(root, "data"),
		"data/file": filepath.Join(root, "data/file"),
		"inner":     filepath.Join(root, "data/sub"),
	} {
		got, err := imageVolumeSource(0, root, sub)
		if err != nil || got != want {
			t.Errorf("sub path %q: %q, %v; want %q", sub, got, err, want)
		}
	}
	for _, sub := range []string{"up", "abs", "dotdot", "indirect", "abs/passwd"} {
		if got, err := imageVolumeSource(0, root, sub); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("escaping sub path %q: %q, %v; want InvalidArgument", sub, got, err)
		}
	}
	if _, err := imageVolumeSource(0, root, "missing/x"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing sub path: %v, want NotFound", err)
	}
	if _, err := imageVolumeSource(0, root, "data/file/x"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("sub path below a file: %v, want NotFound", err)
	}
}

// viewSnapshotter is a snapshotter of view snapshots only, each a read-only bind of one directory.
type viewSnapshotter struct {
	snapshotter.Snapshotter
	layer string
	mu    sync.Mutex
	views map[string]snapshotter.Info
}

func (s *viewSnapshotter) View(_ context.Context, key, parent string, opts ...snapshotter.Opt) ([]snapshotter.Mount, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.views[key]; ok {
		return nil, errdefs.AlreadyExists("snapshot %q exists", key)
	}
	in := snapshotter.Info{Key: key, Parent: parent, Kind: snapshotter.KindView}
	for _, o := range opts {
		o(&in)
	}
	s.views[key] = in
	return []snapshotter.Mount{{Type: "bind", Source: s.layer, Options: []string{"rbind", "ro"}}}, nil
}

func (s *viewSnapshotter) Mounts(_ context.Context, key string) ([]snapshotter.Mount, error) {
	return []snapshotter.Mount{{Type: "bind", Source: s.layer, Options: []string{"rbind", "ro"}}}, nil
}

func (s *viewSnapshotter) Remove(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.views[key]; !ok {
		return errdefs.NotFound("snapshot %q", key)
	}
	delete(s.views, key)
	return nil
}

func (s *viewSnapshotter) Walk(ctx context.Context, fn func(context.Context, snapshotter.Info) error) error {
	s.mu.Lock()
	infos := make([]snapshotter.Info, 0, len(s.views))
	for _, in := range s.views {
		infos = append(infos, in)
	}
	s.mu.Unlock()
	for _, in := range infos {
		if err := fn(ctx, in); err != nil {
			return err
		}
	}
	return nil
}

func (s *viewSnapshotter) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.views {
		out = append(out, k)
	}
	return out
}

// TestImageVolumeSharedUntilTheLastUserGoes mounts one image's view for two containers: it is mounted once, kept
// (and the image reported in use) while either record remains, and unmounted with its snapshot removed after the
// last; Recover's reconciliation removes a view no record lists.
func TestImageVolumeSharedUntilTheLastUserGoes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	base := t.TempDir()
	layer := filepath.Join(base, "layer")
	if err := os.MkdirAll(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layer, "hello"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(base, "state.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddSandbox(&store.Sandbox{ID: "pod1", Name: "pod", State: store.SandboxReady, Config: &runtimeapi.PodSandboxConfig{}}); err != nil {
		t.Fatal(err)
	}
	sn := &viewSnapshotter{layer: layer, views: map[string]snapshotter.Info{}}
	m := &Manager{cfg: Config{StateDir: filepath.Join(base, "state"), Store: st, Snapshotter: sn}}
	img := Image{ID: "sha256:abcd", ChainID: "sha256:chain"}
	ctx := context.Background()
	dir := filepath.Join(base, "state", "image-volumes", "abcd")
	t.Cleanup(func() { _ = snapshotter.UnmountAll(dir) })

	var ctrs []*store.Container
	for _, id := range []string{"c1", "c2"} {
		c := &store.Container{ID: id, SandboxID: "pod1", Name: id, ImageVolumes: []string{img.ID},
			Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: id}}}
		if err := st.AddContainer(c); err != nil {
			t.Fatal(err)
		}
		got, err := m.acquireImageVolume(ctx, img, &store.Sandbox{ID: "pod1"})
		if err != nil || got != dir {
			t.Fatalf("acquire for %s: %q, %v", id, got, err)
		}
		ctrs = append(ctrs, c)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "hello")); err != nil || string(data) != "hi" {
		t.Fatalf("view content: %q, %v", data, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), nil, 0o644); err == nil {
		t.Fatal("the view is writable")
	}
	if n := mountsAt(t, dir); n != 1 {
		t.Fatalf("%d mounts at the view after two acquisitions, want 1", n)
	}
	if keys := sn.keys(); !slices.Equal(keys, []string{"imgvol-abcd"}) {
		t.Fatalf("view snapshots %v", keys)
	}
	if err := m.ImageInUse(img.ID); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("ImageInUse with two users: %v", err)
	}

	// The first user goes: the view stays.
	if err := m.releaseImageVolumes(ctx, ctrs[0]); err != nil {
		t.Fatal(err)
	}
	_ = st.DeleteContainer("c1")
	if n := mountsAt(t, dir); n != 1 || len(sn.keys()) != 1 {
		t.Fatalf("after the first user: %d mounts, snapshots %v", n, sn.keys())
	}
	if err := m.ImageInUse(img.ID); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("ImageInUse with one user: %v", err)
	}
	// The last user goes: unmounted, snapshot and mount point removed.
	if err := m.releaseImageVolumes(ctx, ctrs[1]); err != nil {
		t.Fatal(err)
	}
	_ = st.DeleteContainer("c2")
	if n := mountsAt(t, dir); n != 0 || len(sn.keys()) != 0 {
		t.Fatalf("after the last user: %d mounts, snapshots %v", n, sn.keys())
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("mount point left: %v", err)
	}
	if err := m.ImageInUse(img.ID); err != nil {
		t.Fatalf("ImageInUse without users: %v", err)
	}

	// A view left behind (a crash between a record's removal and its view's) is removed by reconciliation; one a
	// record still lists stays.
	c3 := &store.Container{ID: "c3", SandboxID: "pod1", Name: "c3", ImageVolumes: []string{img.ID},
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c3"}}}
	if err := st.AddContainer(c3); err != nil {
		t.Fatal(err)
	}
	if _, err := m.acquireImageVolume(ctx, img, &store.Sandbox{ID: "pod1"}); err != nil {
		t.Fatal(err)
	}
	m.reconcileImageVolumes(ctx)
	if n := mountsAt(t, dir); n != 1 {
		t.Fatalf("reconcile removed a view in use (%d mounts)", n)
	}
	_ = st.DeleteContainer("c3")
	m.reconcileImageVolumes(ctx)
	if n := mountsAt(t, dir); n != 0 || len(sn.keys()) != 0 {
		t.Fatalf("reconcile left an unused view: %d mounts, snapshots %v", n, sn.keys())
	}
}

func mountsAt(t *testing.T, dir string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			n++
		}
	}
	return n
}
