package testimage

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// serveFakeRegistry serves files (path in the image → entry) under dir the way agnhost's fake-registry-server
// (k8s.io/kubernetes@v1.37.2 test/images/agnhost/fakeregistryserver/registryserver.go) does: /v2/<name>/
// manifests/<tag> redirects to the digest in the file manifests/<tag>; manifests and blobs by digest are read
// from <kind>/<alg>/<first two hex>/<hex>/data, a manifest with the Content-Type of its mediaType field.
func serveFakeRegistry(t *testing.T, files map[string]tarEntry, dir string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/"), "/")
		if len(parts) < 3 || (parts[1] != "manifests" && parts[1] != "blobs") {
			http.NotFound(w, r)
			return
		}
		img, kind, id := parts[0], parts[1], parts[2]
		if kind == "manifests" && !strings.HasPrefix(id, "sha256:") {
			e, ok := files[path.Join(dir, img, "manifests", id)]
			if !ok {
				http.NotFound(w, r)
				return
			}
			http.Redirect(w, r, strings.Replace(r.URL.String(), id, strings.TrimSpace(string(e.data)), 1), http.StatusTemporaryRedirect)
			return
		}
		alg, h, _ := strings.Cut(id, ":")
		if len(h) < 2 {
			http.NotFound(w, r)
			return
		}
		e, ok := files[path.Join(dir, img, kind, alg, h[:2], h, "data")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if kind == "manifests" {
			var m struct {
				MediaType string `json:"mediaType"`
			}
			if json.Unmarshal(e.data, &m) == nil && m.MediaType != "" {
				w.Header().Set("Content-Type", m.MediaType)
			}
		}
		_, _ = w.Write(e.data)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// checkFakeRegistry pulls name:tag from the fake registry over files and checks it is idx with every blob
// intact, and that every file and directory under dir is world-readable (the specs run the server as 5123).
func checkFakeRegistry(t *testing.T, files map[string]tarEntry, dir, repo, tag string, want v1.Hash) v1.ImageIndex {
	t.Helper()
	host := serveFakeRegistry(t, files, dir)
	ref, err := name.ParseReference(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("pull %s from the fake registry: %v", ref, err)
	}
	if d, _ := got.Digest(); d != want {
		t.Fatalf("index digest %s, want %s", d, want)
	}
	im, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, desc := range im.Manifests {
		img, err := got.Image(desc.Digest)
		if err != nil {
			t.Fatalf("manifest %s: %v", desc.Digest, err)
		}
		cfg, err := img.RawConfigFile()
		if err != nil {
			t.Fatalf("config of %s: %v", desc.Digest, err)
		}
		if cn, _ := img.ConfigName(); sha256Hex(cfg) != cn.Hex {
			t.Errorf("config of %s: digest mismatch", desc.Digest)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			ld, _ := l.Digest()
			rc, err := l.Compressed()
			if err != nil {
				t.Fatalf("layer %s: %v", ld, err)
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || sha256Hex(data) != ld.Hex {
				t.Errorf("layer %s: %v, or digest mismatch", ld, err)
			}
		}
	}
	n := 0
	for p, e := range files {
		if !strings.HasPrefix(p, dir+"/") {
			continue
		}
		n++
		want := int64(0o644)
		if e.hdr.Typeflag == tar.TypeDir {
			want = 0o755
		}
		if e.hdr.Mode&0o777 != want {
			t.Errorf("%s: mode %o, want %o", p, e.hdr.Mode&0o777, want)
		}
	}
	if n == 0 {
		t.Fatalf("nothing under %s", dir)
	}
	return got
}

func TestAddFakeRegistryImage(t *testing.T) {
	var imgs []PlatformImage
	for i, arch := range []string{"amd64", "arm64"} {
		fsys := NewFS()
		fsys.WriteFile("/bin/app", []byte(strings.Repeat(arch, 1000+i)), 0o755)
		l, err := LayerFromFS(fsys, Gzip, OCI)
		if err != nil {
			t.Fatal(err)
		}
		p := v1.Platform{OS: "linux", Architecture: arch}
		img, err := Assemble([]v1.Layer{l}, v1.Config{Entrypoint: []string{"/bin/app"}}, OCI, &p)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, PlatformImage{Platform: p, Image: img})
	}
	idx, err := Index(OCI, imgs...)
	if err != nil {
		t.Fatal(err)
	}
	fsys := NewFS()
	if err := AddFakeRegistryImage(fsys, FakeRegistryDir, "pause", "testing", idx); err != nil {
		t.Fatal(err)
	}
	tb, err := fsys.Tar()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]tarEntry{}
	for _, e := range readTar(t, tb) {
		files["/"+strings.TrimSuffix(e.hdr.Name, "/")] = e
	}
	want, _ := idx.Digest()
	checkFakeRegistry(t, files, FakeRegistryDir, "pause", "testing", want)
	for _, bad := range [][2]string{{"a/b", "t"}, {"", "t"}, {"x", ""}, {"x", "sha256:0"}} {
		if err := AddFakeRegistryImage(NewFS(), FakeRegistryDir, bad[0], bad[1], idx); err == nil {
			t.Errorf("AddFakeRegistryImage(%q, %q) accepted", bad[0], bad[1])
		}
	}
}
