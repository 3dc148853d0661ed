package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// testBuilder returns a builder using the shared cache (NODED_TESTIMAGE_CACHE
// or DefaultCacheDir), skipping when the Debian tooling is missing.
func testBuilder(t *testing.T) *Builder {
	t.Helper()
	for _, tool := range []string{"apt-get", "dpkg-deb", "dpkg-query", "ldd", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	dir := os.Getenv("NODED_TESTIMAGE_CACHE")
	if dir == "" {
		dir = DefaultCacheDir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cache dir %s unusable: %v", dir, err)
	}
	return NewBuilder(Options{CacheDir: dir, Logf: t.Logf})
}

// flatten returns the image's merged filesystem (whiteouts applied).
func flatten(t *testing.T, img v1.Image) map[string]tarEntry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]tarEntry{}
	for _, e := range readTar(t, b) {
		out["/"+strings.TrimSuffix(e.hdr.Name, "/")] = e
	}
	return out
}

func TestBusyboxDeterministic(t *testing.T) {
	ctx := context.Background()
	b := testBuilder(t)
	img1, err := b.Busybox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A second builder repeats every step (tree, tar, compression).
	img2, err := NewBuilder(Options{CacheDir: b.opts.CacheDir}).Busybox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img1.Digest()
	d2, _ := img2.Digest()
	if d1 != d2 {
		t.Fatalf("two builds differ: %s vs %s", d1, d2)
	}
	f1, _ := WithFile(img1, "/x", []byte("1"))
	f2, _ := WithFile(img1, "/x", []byte("2"))
	if a, b := digestOf(t, f1), digestOf(t, f2); a == b {
		t.Error("WithFile with different contents gave one image")
	}
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBusyboxContent(t *testing.T) {
	img, err := testBuilder(t).Busybox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	entries := layerTar(t, layers[0])
	hdrs := map[string]*tar.Header{}
	var leader string // the name carrying the busybox data
	for _, e := range entries {
		hdrs["/"+strings.TrimSuffix(e.hdr.Name, "/")] = e.hdr
		if e.hdr.Name == "bin/busybox" && e.hdr.Typeflag == tar.TypeReg {
			leader = "bin/busybox"
		}
	}
	bb := hdrs["/bin/busybox"]
	if bb == nil {
		t.Fatal("no /bin/busybox")
	}
	if bb.Typeflag == tar.TypeLink {
		leader = bb.Linkname
	}
	if leader == "" || hdrs["/"+leader].Typeflag != tar.TypeReg || hdrs["/"+leader].Size < 100000 {
		t.Fatalf("busybox data entry %q missing or small", leader)
	}
	for _, applet := range []string{"sh", "ls", "cat", "httpd", "id"} {
		h := hdrs["/bin/"+applet]
		switch {
		case h == nil:
			t.Errorf("/bin/%s missing", applet)
		case h.Name == leader:
		case h.Typeflag != tar.TypeLink || h.Linkname != leader:
			t.Errorf("/bin/%s is %c -> %q, want a hard link to %s", applet, h.Typeflag, h.Linkname, leader)
		}
	}
	for _, p := range []string{"/bin/pgrep", "/bin/ipcs", "/etc/passwd", "/etc/group", "/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"} {
		if h := hdrs[p]; h == nil || h.Typeflag != tar.TypeReg {
			t.Errorf("%s missing or not a regular file", p)
		}
	}
	if h := hdrs["/tmp"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("/tmp = %+v, want mode 1777", h)
	}
	fsys := flatten(t, img)
	passwd := string(fsys["/etc/passwd"].data)
	for _, want := range []string{"root:x:0:0:", "www-data:x:33:33:", "nobody:x:65534:65534:"} {
		if !strings.Contains(passwd, want) {
			t.Errorf("/etc/passwd lacks %q:\n%s", want, passwd)
		}
	}
	if group := string(fsys["/etc/group"].data); !strings.Contains(group, "nogroup:x:65534:") || !strings.Contains(group, "www-data:x:33:") {
		t.Errorf("/etc/group:\n%s", group)
	}
	cf, _ := img.ConfigFile()
	if !equalStrings(cf.Config.Cmd, []string{"sh"}) || cf.Architecture != "amd64" || cf.OS != "linux" {
		t.Errorf("config cmd %v platform %s/%s", cf.Config.Cmd, cf.OS, cf.Architecture)
	}
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s", mt)
	}
}

// unpack writes the image's merged filesystem into dir (regular files,
// directories, symlinks and hard links only).
func unpack(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
			if err == nil {
				mode := os.FileMode(h.Mode & 0o777)
				if h.Mode&0o1000 != 0 {
					mode |= os.ModeSticky
				}
				err = os.Chmod(p, mode)
			}
		case tar.TypeReg:
			var data []byte
			if data, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, data, os.FileMode(h.Mode&0o777))
			}
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		case tar.TypeLink:
			err = os.Link(filepath.Join(dir, h.Linkname), p)
		}
		if err != nil {
			t.Fatalf("unpacking %s: %v", h.Name, err)
		}
	}
}

// TestBusyboxRunsInChroot runs the image's applets and helpers for real.
func TestBusyboxRunsInChroot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for chroot")
	}
	img, err := testBuilder(t).Busybox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unpack(t, img, dir)
	sh := func(script string) (string, error) {
		cmd := exec.Command("chroot", dir, "/bin/sh", "-c", script)
		cmd.Env = []string{DefaultPath}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := sh("ls /bin/ls && id -u www-data && id -g nobody && echo ok"); err != nil || out != "/bin/ls\n33\n65534\nok\n" {
		t.Fatalf("sh: %q, %v", out, err)
	}
	st1, _ := os.Stat(filepath.Join(dir, "bin/sh"))
	st2, _ := os.Stat(filepath.Join(dir, "bin/busybox"))
	if !os.SameFile(st1, st2) {
		t.Error("/bin/sh and /bin/busybox are not one file after unpacking")
	}

	// The static helpers read /proc, which the chroot lacks: run them from
	// the unpacked tree on the host instead.
	helper := func(name string, args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(dir, "bin", name), args...).CombinedOutput()
		return string(out), err
	}
	// pgrep finds a process by name and by command line; exit 1 if none.
	sleeper := exec.Command("chroot", dir, "/bin/sleep", "31337")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	pid := strconv.Itoa(sleeper.Process.Pid)
	var out string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		// Wait until chroot has exec'd busybox's sleep.
		if comm, _ := os.ReadFile("/proc/" + pid + "/comm"); string(comm) == "sleep\n" || time.Now().After(deadline) {
			break
		}
	}
	out, err = helper("pgrep", "-f", "^/bin/sleep 31337$")
	if err != nil || !containsLine(out, pid) {
		t.Errorf("pgrep -f: %q, %v (want pid %s)", out, err, pid)
	}
	if out, err := helper("pgrep", "-x", "sleep"); err != nil || !containsLine(out, pid) {
		t.Errorf("pgrep -x sleep: %q, %v", out, err)
	}
	if out, err := helper("pgrep", "-x", "no-such-process-name"); err == nil {
		t.Errorf("pgrep of a missing process succeeded: %q", out)
	}

	// ipcs -m lists a segment of the (host's) IPC namespace.
	shmid, err := unix.SysvShmGet(unix.IPC_PRIVATE, 4096, unix.IPC_CREAT|0o600)
	if err != nil {
		t.Fatalf("shmget: %v", err)
	}
	t.Cleanup(func() { _, _ = unix.SysvShmCtl(shmid, unix.IPC_RMID, nil) })
	out, err = helper("ipcs", "-m")
	if err != nil || !strings.Contains(out, "Shared Memory Segments") {
		t.Fatalf("ipcs -m: %q, %v", out, err)
	}
	found := false
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[1] == strconv.Itoa(shmid) && f[4] == "4096" && f[2] == "root" {
			found = true
		}
	}
	if !found {
		t.Errorf("ipcs -m does not list segment %d:\n%s", shmid, out)
	}
}

func TestMultiLayerWhiteouts(t *testing.T) {
	img, want, err := MultiLayerWhiteouts(nil, Gzip, OCI)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	if len(layers) < 3 {
		t.Fatalf("%d layers, want >= 3", len(layers))
	}
	var markers []string
	for _, l := range layers {
		for _, e := range layerTar(t, l) {
			if strings.Contains(e.hdr.Name, ".wh.") {
				markers = append(markers, e.hdr.Name)
			}
		}
	}
	if !equalStrings(markers, []string{"wh/.wh.remove.txt", "wh/opaque/.wh..wh..opq", "wh/.wh.gone"}) {
		t.Errorf("whiteout entries %v", markers)
	}
	fsys := flatten(t, img)
	for p, content := range want.Present {
		if e, ok := fsys[p]; !ok || string(e.data) != content {
			t.Errorf("%s: present=%v content %q, want %q", p, ok, e.data, content)
		}
	}
	for _, p := range want.Absent {
		if _, ok := fsys[p]; ok {
			t.Errorf("%s visible, want hidden", p)
		}
	}
}

func TestMultiPlatformIndex(t *testing.T) {
	base, err := stack(nil, Gzip, OCI, NewFS())
	if err != nil {
		t.Fatal(err)
	}
	idx, err := MultiPlatform(base, Gzip, OCI)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != len(MultiPlatformEntries) {
		t.Fatalf("index %s with %d manifests", im.MediaType, len(im.Manifests))
	}
	seen := map[v1.Hash]bool{}
	for i, desc := range im.Manifests {
		want := MultiPlatformEntries[i]
		if desc.Platform == nil || !desc.Platform.Equals(want) {
			t.Errorf("manifest %d platform %+v, want %+v", i, desc.Platform, want)
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		if cf.Architecture != want.Architecture || cf.Variant != want.Variant {
			t.Errorf("manifest %d config platform %s/%s", i, cf.Architecture, cf.Variant)
		}
		if got := string(flatten(t, img)["/platform"].data); got != PlatformString(want)+"\n" {
			t.Errorf("manifest %d /platform = %q", i, got)
		}
		layers, _ := img.Layers()
		top, _ := layers[len(layers)-1].Digest()
		if seen[top] {
			t.Errorf("manifest %d shares its top layer with another platform", i)
		}
		seen[top] = true
	}
}

func TestManyLayersAndLarge(t *testing.T) {
	img, err := ManyLayers(nil, 128, Gzip, OCI)
	if err != nil {
		t.Fatal(err)
	}
	if layers, _ := img.Layers(); len(layers) != 128 {
		t.Fatalf("%d layers", len(layers))
	}
	if got := string(flatten(t, img)["/layers/0127"].data); got != "layer 127\n" {
		t.Errorf("/layers/0127 = %q", got)
	}

	o := LargeOptions{Layers: 3, LayerBytes: 2 << 20, Seed: 7}
	l1, err := Large(nil, o, Gzip, OCI)
	if err != nil {
		t.Fatal(err)
	}
	l2, _ := Large(nil, o, Gzip, OCI)
	if digestOf(t, l1) != digestOf(t, l2) {
		t.Error("Large is not deterministic")
	}
	o.Seed = 8
	if l3, _ := Large(nil, o, Gzip, OCI); digestOf(t, l3) == digestOf(t, l1) {
		t.Error("different seeds gave one image")
	}
	layers, _ := l1.Layers()
	if len(layers) != 3 {
		t.Fatalf("%d layers", len(layers))
	}
	for i, l := range layers {
		raw, _ := readUncompressed(l)
		var files int64
		for _, e := range readTar(t, raw) {
			files += int64(len(e.data))
		}
		size, _ := l.Size()
		ratio := float64(size) / float64(files)
		if files != 2<<20 || ratio < 0.15 || ratio > 0.8 {
			t.Errorf("layer %d: %d file bytes, compressed ratio %.2f (want 2 MiB, 0.15..0.8)", i, files, ratio)
		}
	}
}

func TestConvertFormats(t *testing.T) {
	f := NewFS()
	f.WriteFile("/etc/hello", []byte("hi\n"), 0o644)
	base, err := stack(nil, Gzip, OCI, f)
	if err != nil {
		t.Fatal(err)
	}
	base, _ = WithCmd(base, "cat", "/etc/hello")
	for _, tc := range []struct {
		c        Compression
		f        Format
		manifest types.MediaType
		layer    types.MediaType
	}{
		{Zstd, OCI, types.OCIManifestSchema1, types.OCILayerZStd},
		{Uncompressed, OCI, types.OCIManifestSchema1, types.OCIUncompressedLayer},
		{Gzip, Docker, types.DockerManifestSchema2, types.DockerLayer},
	} {
		img, err := Convert(base, tc.c, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := img.Manifest()
		if m.MediaType != tc.manifest || m.Layers[0].MediaType != tc.layer {
			t.Errorf("%s/%s: manifest %s layer %s", tc.c, tc.f, m.MediaType, m.Layers[0].MediaType)
		}
		cf, _ := img.ConfigFile()
		if !equalStrings(cf.Config.Cmd, []string{"cat", "/etc/hello"}) {
			t.Errorf("%s/%s: cmd %v", tc.c, tc.f, cf.Config.Cmd)
		}
		if got := flatten(t, img)["/etc/hello"].data; !bytes.Equal(got, []byte("hi\n")) {
			t.Errorf("%s/%s: /etc/hello = %q", tc.c, tc.f, got)
		}
		bd, _ := base.ConfigFile()
		if cf.RootFS.DiffIDs[0] != bd.RootFS.DiffIDs[0] {
			t.Errorf("%s/%s: diffID changed", tc.c, tc.f)
		}
	}
}

func TestCritestImages(t *testing.T) {
	b := testBuilder(t)
	imgs, err := b.Critest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	digest := func(ref string) v1.Hash {
		img, ok := imgs[ref]
		if !ok {
			t.Fatalf("no image %s", ref)
		}
		return digestOf(t, img)
	}
	const staging = "gcr.io/k8s-staging-cri-tools/"
	if digest("registry.k8s.io/pause:3.9") == digest("registry.k8s.io/pause:3.10") {
		t.Error("pause 3.9 and 3.10 are one image")
	}
	if digest("registry.k8s.io/pause:3.9") != digest("k8s.gcr.io/pause:3.9") {
		t.Error("pause:3.9 differs between hosts")
	}
	if digest(staging+"test-image-tags:1") != digest(staging+"test-image-tags:3") {
		t.Error("test-image-tags tags differ")
	}
	distinct := []string{staging + "test-image-1:latest", staging + "test-image-2:latest", staging + "test-image-3:latest",
		staging + "test-image-latest:latest", staging + "test-image-digest:latest", staging + "test-image-tag:test",
		staging + "test-image-tag:all", "public.ecr.aws/docker/library/busybox:1-musl", "public.ecr.aws/docker/library/busybox:latest"}
	seen := map[v1.Hash]string{}
	for _, ref := range distinct {
		if prev, ok := seen[digest(ref)]; ok {
			t.Errorf("%s and %s are one image", ref, prev)
		}
		seen[digest(ref)] = ref
	}
	for ref, user := range map[string]string{
		staging + "test-image-user-uid:latest": "1002", staging + "test-image-user-username:latest": "www-data",
		staging + "test-image-user-uid-group:latest": "1003:1004", staging + "test-image-user-username-group:latest": "www-data:1004",
		staging + "test-image-predefined-group:latest": "1000", "registry.k8s.io/pause:3.10": "65535:65535",
	} {
		cf, _ := imgs[ref].ConfigFile()
		if cf.Config.User != user {
			t.Errorf("%s: USER %q, want %q", ref, cf.Config.User, user)
		}
	}
	group := string(flatten(t, imgs[staging+"test-image-predefined-group:latest"])["/etc/group"].data)
	if !strings.Contains(group, "group-defined-in-image:x:50000:default-user") {
		t.Errorf("predefined-group /etc/group:\n%s", group)
	}
	nnp := flatten(t, imgs["registry.k8s.io/e2e-test-images/nonewprivs:1.3"])["/usr/local/bin/nnp"]
	if nnp.hdr == nil || nnp.hdr.Mode&0o4000 == 0 || nnp.hdr.Uid != 0 {
		t.Errorf("nnp is not setuid root: %+v", nnp.hdr)
	}
	nginx := flatten(t, imgs["registry.k8s.io/e2e-test-images/nginx:1.14-2"])
	for _, p := range []string{"/usr/sbin/nginx", "/lib/x86_64-linux-gnu/libpcre2-8.so.0", "/lib/x86_64-linux-gnu/libssl.so.3", "/bin/sh"} {
		if _, ok := nginx[p]; !ok {
			t.Errorf("nginx image lacks %s", p)
		}
	}
	if !strings.Contains(string(flatten(t, imgs[staging+"hostnet-nginx-amd64:latest"])["/etc/nginx/nginx.conf"].data), "listen 12003;") {
		t.Error("hostnet-nginx does not listen on 12003")
	}
	coll, err := MirrorCollisions(imgs)
	if err != nil || len(coll) != 0 {
		t.Errorf("mirror collisions %v, %v", coll, err)
	}
}

// TestNginxConfigValid has the image's nginx check its configuration in a
// chroot of the image: binary, libraries and configured paths must all work.
func TestNginxConfigValid(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for chroot")
	}
	b := testBuilder(t)
	img, err := b.Nginx(context.Background(), 18080)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unpack(t, img, dir)
	out, err := exec.Command("chroot", dir, "/usr/sbin/nginx", "-t").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test is successful") {
		t.Fatalf("nginx -t: %s, %v", out, err)
	}
}

func containsLine(out, line string) bool {
	for _, l := range strings.Split(out, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func TestAgnhostCarriesWhatSpecsExec(t *testing.T) {
	ctx := context.Background()
	b := testBuilder(t)
	img, err := b.Agnhost(ctx, []byte("#!/bin/sh\n"), []byte("cert"), []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	files := flatten(t, img)
	for _, p := range []string{"/bin/bash", "/usr/bin/curl", "/usr/bin/dig", "/usr/bin/nc", "/bin/ip", "/bin/ss",
		"/usr/bin/socat", "/usr/bin/iperf", "/usr/bin/ipcs", "/agnhost", "/agnhost-2", "/uploads",
		"/localhost.crt", "/localhost.key", "/bin/sh"} {
		if _, ok := files[p]; !ok {
			t.Errorf("agnhost image lacks %s", p)
		}
	}
	if e := files["/agnhost-2"]; e.hdr == nil || e.hdr.Linkname != "agnhost" {
		t.Errorf("/agnhost-2 is not a link to agnhost: %+v", e.hdr)
	}
	// Every library the tools load is in the image.
	for _, tool := range agnhostTools {
		root, err := b.debs.Extract(ctx, tool.pkg)
		if err != nil {
			t.Fatal(err)
		}
		resolved, err := resolveIn(root, tool.path)
		if err != nil {
			t.Fatal(err)
		}
		libs, err := b.debs.Libs(ctx, filepath.Join(root, resolved))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range libs {
			if _, ok := files[l.Path]; !ok {
				t.Errorf("%s needs %s, not in the image", tool.path, l.Path)
			}
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/agnhost" {
		t.Errorf("entrypoint %q, want /agnhost", got)
	}
	if !strings.Contains(string(files["/etc/group"].data), "group-defined-in-image:x:50000:user-defined-in-image") {
		t.Errorf("/etc/group lacks group-defined-in-image: %s", files["/etc/group"].data)
	}
	// fake-registry-server serves pause:testing, a pause image, from /var/registry.
	pause, err := b.Pause(ctx, fakeRegistryPauseVersion)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Index(b.opts.Format, PlatformImage{Platform: DefaultPlatform, Image: pause})
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := want.Digest()
	idx := checkFakeRegistry(t, files, FakeRegistryDir, FakeRegistryImage, FakeRegistryTag, wd)
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 || im.Manifests[0].Platform == nil || im.Manifests[0].Platform.Architecture != DefaultPlatform.Architecture {
		t.Fatalf("pause:testing index: %+v, %v", im, err)
	}
	pimg, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	pcf, err := pimg.ConfigFile()
	if err != nil || strings.Join(pcf.Config.Entrypoint, " ") != "/pause" {
		t.Errorf("pause:testing config: %+v, %v", pcf, err)
	}
}

func TestE2ENodeBusyboxHasNmeter(t *testing.T) {
	ctx := context.Background()
	b := testBuilder(t)
	agn := filepath.Join(t.TempDir(), "agnhost")
	if err := os.WriteFile(agn, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := b.E2ENodeSet(ctx, E2ENodeOptions{AgnhostPath: agn})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"e2e-test-images/busybox:1.37.0-2", "e2e-test-images/agnhost:2.66.1",
		"e2e-test-images/nginx:1.27.0-2", "e2e-test-images/nonewprivs:1.4", "pause:3.10.2",
		"e2e-test-images/glibc-dns-testing:2.1.1", "e2e-test-images/ipc-utils:1.4"} {
		if s.Images[name] == nil {
			t.Errorf("set lacks %s", name)
		}
	}
	for name, file := range map[string]string{
		"e2e-test-images/busybox:1.37.0-2":        "/bin/nmeter",
		"e2e-test-images/agnhost:2.66.1":          "/bin/nmeter",
		"e2e-test-images/glibc-dns-testing:2.1.1": "/bin/hostname",
		"e2e-test-images/ipc-utils:1.4":           "/usr/bin/ipcmk",
	} {
		if s.Images[name] == nil {
			continue
		}
		files := flatten(t, s.Images[name])
		f, ok := files[file]
		if !ok {
			t.Errorf("%s lacks %s", name, file)
			continue
		}
		if bb, ok := files["/bin/busybox"]; ok && bytes.Equal(f.data, bb.data) {
			t.Errorf("%s: %s is busybox's applet, not the real tool", name, file)
		}
	}
	d1, _ := s.Images["e2e-test-images/agnhost:2.66.1"].Digest()
	d2, _ := s.Images["e2e-test-images/agnhost:2.55"].Digest()
	if d1 == d2 {
		t.Error("agnhost 2.55 and 2.66.1 are the same image")
	}
}
