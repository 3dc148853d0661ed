package testimage

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

func readTar(t *testing.T, b []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s: %v", h.Name, err)
		}
		out = append(out, tarEntry{h, data})
	}
}

func layerTar(t *testing.T, l v1.Layer) []tarEntry {
	t.Helper()
	b, err := readUncompressed(l)
	if err != nil {
		t.Fatal(err)
	}
	return readTar(t, b)
}

func TestFSTarSortedFixedAndParents(t *testing.T) {
	f := NewFS()
	f.WriteFile("/z/file", []byte("z"), 0o600)
	f.WriteFile("/a/b/c", []byte("c"), 0o644)
	f.Symlink("../a/b/c", "/z/link")
	f.Mkdir("/tmp", 0o777|fs.ModeSticky)
	f.WriteFile("/bin/su", []byte("x"), 0o755|fs.ModeSetuid)
	if err := f.Chown("/z/file", 1000, 1001); err != nil {
		t.Fatal(err)
	}
	b, err := f.Tar()
	if err != nil {
		t.Fatal(err)
	}
	entries := readTar(t, b)
	var names []string
	byName := map[string]*tar.Header{}
	for _, e := range entries {
		names = append(names, e.hdr.Name)
		byName[e.hdr.Name] = e.hdr
		if !e.hdr.ModTime.Equal(Epoch) {
			t.Errorf("%s: mtime %v, want %v", e.hdr.Name, e.hdr.ModTime, Epoch)
		}
		if e.hdr.Uname != "" || e.hdr.Gname != "" {
			t.Errorf("%s: has user/group names %q/%q", e.hdr.Name, e.hdr.Uname, e.hdr.Gname)
		}
	}
	want := []string{"a/", "a/b/", "a/b/c", "bin/", "bin/su", "tmp/", "z/", "z/file", "z/link"}
	if !equalStrings(names, want) {
		t.Fatalf("entries %v, want %v", names, want)
	}
	if h := byName["tmp/"]; h.Mode != 0o1777 {
		t.Errorf("tmp mode %o, want 1777", h.Mode)
	}
	if h := byName["bin/su"]; h.Mode != 0o4755 {
		t.Errorf("su mode %o, want 4755", h.Mode)
	}
	if h := byName["z/file"]; h.Uid != 1000 || h.Gid != 1001 || h.Mode != 0o600 {
		t.Errorf("z/file owner %d:%d mode %o", h.Uid, h.Gid, h.Mode)
	}
	if h := byName["z/link"]; h.Typeflag != tar.TypeSymlink || h.Linkname != "../a/b/c" {
		t.Errorf("z/link = %c %q", h.Typeflag, h.Linkname)
	}
	b2, err := f.Tar()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Error("two serialisations of one tree differ")
	}
}

func TestFSHardLinkGroupWrittenFirstInOrder(t *testing.T) {
	f := NewFS()
	f.WriteFile("/bin/busybox", []byte("BB"), 0o755)
	f.Link("/bin/busybox", "/bin/sh")
	f.Link("/bin/busybox", "/bin/[")
	f.Link("/bin/busybox", "/bin/ls")
	b, err := f.Tar()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	regular := 0
	for _, e := range readTar(t, b) {
		switch e.hdr.Typeflag {
		case tar.TypeReg:
			regular++
			if e.hdr.Name != "bin/[" || string(e.data) != "BB" {
				t.Errorf("regular entry %s %q, want bin/[ holding the data", e.hdr.Name, e.data)
			}
		case tar.TypeLink:
			if !seen[e.hdr.Linkname] {
				t.Errorf("%s links to %s, which is not earlier in the archive", e.hdr.Name, e.hdr.Linkname)
			}
			if e.hdr.Mode != 0o755 {
				t.Errorf("%s mode %o", e.hdr.Name, e.hdr.Mode)
			}
		}
		seen[e.hdr.Name] = true
	}
	if regular != 1 {
		t.Errorf("%d regular files, want 1", regular)
	}

	bad := NewFS()
	bad.Link("/nowhere", "/x")
	if _, err := bad.Tar(); err == nil {
		t.Error("dangling hard link serialised without error")
	}
}

func TestLayerCompressionsRoundTrip(t *testing.T) {
	f := NewFS()
	f.WriteFile("/hello", bytes.Repeat([]byte("hello world\n"), 1000), 0o644)
	tb, err := f.Tar()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c  Compression
		f  Format
		mt types.MediaType
	}{
		{Gzip, OCI, types.OCILayer},
		{Zstd, OCI, types.OCILayerZStd},
		{Uncompressed, OCI, types.OCIUncompressedLayer},
		{Gzip, Docker, types.DockerLayer},
		{Uncompressed, Docker, types.DockerUncompressedLayer},
	} {
		l, err := NewLayer(tb, tc.c, tc.f)
		if err != nil {
			t.Fatalf("%s/%s: %v", tc.c, tc.f, err)
		}
		if mt, _ := l.MediaType(); mt != tc.mt {
			t.Errorf("%s/%s: media type %s, want %s", tc.c, tc.f, mt, tc.mt)
		}
		got, err := readUncompressed(l)
		if err != nil || !bytes.Equal(got, tb) {
			t.Errorf("%s/%s: uncompressed content differs (err %v)", tc.c, tc.f, err)
		}
		diffID, _ := l.DiffID()
		if diffID != sha(tb) {
			t.Errorf("%s/%s: diffID %s, want %s", tc.c, tc.f, diffID, sha(tb))
		}
		digest, _ := l.Digest()
		if (tc.c == Uncompressed) != (digest == diffID) {
			t.Errorf("%s/%s: digest %s vs diffID %s", tc.c, tc.f, digest, diffID)
		}
		again, _ := NewLayer(tb, tc.c, tc.f)
		if d2, _ := again.Digest(); d2 != digest {
			t.Errorf("%s/%s: compression not deterministic", tc.c, tc.f)
		}
	}
	if _, err := NewLayer(tb, Zstd, Docker); err == nil {
		t.Error("zstd layer in a Docker image accepted")
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
