package image

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/testimage"
	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/snapshotter/overlay"
	bolt "go.etcd.io/bbolt"
)

// overlayEnv is an image service on the real overlay snapshotter (which unpacks layers in parallel).
type overlayEnv struct {
	svc *Service
	sn  *overlay.Snapshotter
}

func newOverlayEnv(t *testing.T, cfg RegistryConfig) *overlayEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (overlay snapshotter)")
	}
	dir := t.TempDir()
	sn, err := overlay.New(filepath.Join(dir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := New(context.Background(), Options{
		Root: filepath.Join(dir, "root"), DB: db, Snapshotter: sn, Registry: cfg,
		RegistryOptions: RegistryOptions{StallTimeout: 5 * time.Second, Attempts: 3, Backoff: 10 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return &overlayEnv{svc: svc, sn: sn}
}

// view mounts a read-only view of the image's top layer and returns the mount point.
func (e *overlayEnv) view(t *testing.T, img Image) string {
	t.Helper()
	key := "view-" + randomHex()
	ms, err := e.sn.View(context.Background(), key, img.ChainID())
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	if err := snapshotter.MountAll(ms, target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := snapshotter.UnmountAll(target); err != nil {
			t.Errorf("unmount: %v", err)
		}
		_ = e.sn.Remove(context.Background(), key)
	})
	return target
}

// snapshotKeys lists every snapshot of the overlay snapshotter.
func (e *overlayEnv) snapshotKeys(t *testing.T) []snapshotter.Info {
	t.Helper()
	var out []snapshotter.Info
	if err := e.sn.Walk(context.Background(), func(_ context.Context, in snapshotter.Info) error {
		out = append(out, in)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func rawLayer(t *testing.T, hdrs ...*tar.Header) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Linkname))
		}
		body := ""
		if h.Typeflag == tar.TypeReg {
			body, h.Linkname = h.Linkname, ""
		}
		if h.Mode == 0 {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := testimage.NewLayer(buf.Bytes(), testimage.Gzip, testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// file is a regular file entry; its content travels in Linkname until rawLayer writes it.
func file(name, content string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Linkname: content}
}

func TestPullIntoOverlayWhiteoutsHardLinksImpliedDirs(t *testing.T) {
	reg := startRegistry(t)
	e := newOverlayEnv(t, plainHTTPConfig(reg.host))
	ctx := context.Background()

	wimg, want, err := testimage.MultiLayerWhiteouts(nil, testimage.Zstd, testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	reg.push(t, "whiteouts:1", wimg)
	got, err := e.svc.Pull(ctx, reg.host+"/whiteouts:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := e.view(t, got)
	for p, content := range want.Present {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != content {
			t.Errorf("%s = %q, %v; want %q", p, b, err, content)
		}
	}
	for _, p := range want.Absent {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s is visible (%v), want absent", p, err)
		}
	}

	// Layers that need the one below: a hard link to a lower file, a directory the tar does not list.
	l1 := rawLayer(t, &tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "opt/", Typeflag: tar.TypeDir, Mode: 0o711}, &tar.Header{Name: "opt/app/", Typeflag: tar.TypeDir, Mode: 0o750},
		file("etc/base", "base"))
	l2 := rawLayer(t, file("other", "o"))
	l3 := rawLayer(t, &tar.Header{Name: "link", Typeflag: tar.TypeLink, Linkname: "etc/base"}, file("opt/app/bin", "bin"))
	img, err := testimage.Assemble([]v1.Layer{l1, l2, l3}, v1.Config{}, testimage.OCI, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg.push(t, "links:1", img)
	got, err = e.svc.Pull(ctx, reg.host+"/links:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root = e.view(t, got)
	for p, content := range map[string]string{"etc/base": "base", "link": "base", "other": "o", "opt/app/bin": "bin"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != content {
			t.Errorf("%s = %q, %v; want %q", p, b, err, content)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "opt/app")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("opt/app: %v, %v; want mode 0750 from the layer below", fi.Mode(), err)
	}
	// Each layer is committed on the one below; no temporary snapshot is left.
	for i, l := range got.Layers {
		info, err := e.sn.Stat(ctx, l.ChainID.String())
		wantParent := ""
		if i > 0 {
			wantParent = got.Layers[i-1].ChainID.String()
		}
		if err != nil || info.Kind != snapshotter.KindCommitted || info.Parent != wantParent {
			t.Errorf("layer %d: %+v, %v; want committed on %q", i, info, err, wantParent)
		}
	}
	for _, in := range e.snapshotKeys(t) {
		if strings.HasPrefix(in.Key, unpackKeyPrefix) {
			t.Errorf("temporary snapshot %s left", in.Key)
		}
	}
}

func TestPullRefusesMaliciousLayers(t *testing.T) {
	reg := startRegistry(t)
	e := newOverlayEnv(t, plainHTTPConfig(reg.host))
	ctx := context.Background()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]*tar.Header{
		"dotdot":                    {file("../../../../../../../"+outside+"/pwned", "x")},
		"symlink then write":        {{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: outside}, file("evil/pwned", "x")},
		"relative symlink escaping": {{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../../../" + outside}, file("evil/pwned", "x")},
		"hard link escaping":        {{Name: "l", Typeflag: tar.TypeLink, Linkname: "../../../../../../../../" + secret}},
		"hard link via symlink":     {{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: outside}, {Name: "l", Typeflag: tar.TypeLink, Linkname: "evil/secret"}},
		"whiteout escaping":         {file("../.wh.secret", "")},
		"device node":               {{Name: "mem", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 1, Mode: 0o600}},
	}
	base := rawLayer(t, file("ok", "ok"))
	for name, hdrs := range cases {
		t.Run(name, func(t *testing.T) {
			img, err := testimage.Assemble([]v1.Layer{base, rawLayer(t, hdrs...), rawLayer(t, file("top", "top"))}, v1.Config{}, testimage.OCI, nil)
			if err != nil {
				t.Fatal(err)
			}
			ref := reg.host + "/evil:" + strings.ReplaceAll(name, " ", "-")
			reg.push(t, strings.TrimPrefix(ref, reg.host+"/"), img)
			_, err = e.svc.Pull(ctx, ref, PullOptions{})
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("pull: %v, want InvalidArgument", err)
			}
			t.Logf("refused: %v", err)
			if _, err := e.svc.Get(ctx, ref); !errdefs.IsNotFound(err) {
				t.Errorf("image recorded: %v", err)
			}
			ents, err := os.ReadDir(outside)
			if err != nil || len(ents) != 1 || ents[0].Name() != "secret" {
				t.Errorf("outside dir changed: %v %v", ents, err)
			}
			if b, err := os.ReadFile(secret); err != nil || string(b) != "secret" {
				t.Errorf("secret = %q, %v", b, err)
			}
			for _, in := range e.snapshotKeys(t) {
				if strings.HasPrefix(in.Key, unpackKeyPrefix) {
					t.Errorf("temporary snapshot %s left", in.Key)
				}
			}
		})
	}
	// What the failed pulls kept (the good layers) goes at the next collection.
	if err := e.svc.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if left := e.snapshotKeys(t); len(left) != 0 {
		t.Errorf("snapshots after prune: %+v", left)
	}
}
