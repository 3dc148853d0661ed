package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

func needRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (ownership, devices, trusted xattrs)")
	}
}

var mtime = time.Unix(1600000000, 123456789)

func reg(name, body string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: mtime, Linkname: body}
}

func dirH(name string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime}
}

func symlink(name, target string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, ModTime: mtime}
}

func hardlink(name, target string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target, ModTime: mtime}
}

func device(name string, typ byte, major, minor int64) *tar.Header {
	return &tar.Header{Name: name, Typeflag: typ, Mode: 0o600, Devmajor: major, Devminor: minor, ModTime: mtime}
}

// mkTar writes the headers; for regular files Linkname carries the body (and is cleared).
func mkTar(t testing.TB, hdrs ...*tar.Header) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		body := ""
		if h.Typeflag == tar.TypeReg {
			body, h.Linkname = h.Linkname, ""
		}
		h.Format = tar.FormatPAX // keeps sub-second times
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
	return bytes.NewReader(buf.Bytes())
}

func apply(t *testing.T, dir string, opts Options, hdrs ...*tar.Header) (int64, error) {
	t.Helper()
	opts.NoSync = true
	return Apply(context.Background(), dir, mkTar(t, hdrs...), opts)
}

func mustApply(t *testing.T, dir string, opts Options, hdrs ...*tar.Header) int64 {
	t.Helper()
	n, err := apply(t, dir, opts, hdrs...)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return n
}

func lstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return &st
}

func getxattr(p, name string) string {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func TestApplyPreservesMetadata(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	suid := reg("bin/su", "su")
	suid.Mode, suid.Uid, suid.Gid = 0o4755, 1000, 2000
	suid.PAXRecords = map[string]string{"SCHILY.xattr.user.note": "hello", "SCHILY.xattr.trusted.overlay.redirect": "/x"}
	d := dirH("bin/")
	d.Mode, d.Uid, d.Gid = 0o711, 5, 6
	d.ModTime = time.Unix(1500000000, 0)
	sl := symlink("bin/sh", "/bin/busybox")
	sl.Uid, sl.Gid = 7, 8
	n := mustApply(t, dir, Options{AllowDevices: true},
		d, suid, sl,
		reg("bin/busybox", "0123456789"), hardlink("bin/ls", "bin/busybox"),
		device("dev/null", tar.TypeChar, 1, 3), device("dev/sda", tar.TypeBlock, 8, 0),
		device("fifo", tar.TypeFifo, 0, 0),
	)
	if n != 12 {
		t.Errorf("Apply returned %d bytes, want 12", n)
	}
	st := lstat(t, filepath.Join(dir, "bin/su"))
	if st.Mode&0o7777 != 0o4755 || st.Uid != 1000 || st.Gid != 2000 {
		t.Errorf("bin/su mode %o uid %d gid %d", st.Mode, st.Uid, st.Gid)
	}
	if st.Mtim.Sec != mtime.Unix() || st.Mtim.Nsec != int64(mtime.Nanosecond()) {
		t.Errorf("bin/su mtime %v, want %v", st.Mtim, mtime)
	}
	if v := getxattr(filepath.Join(dir, "bin/su"), "user.note"); v != "hello" {
		t.Errorf("user.note = %q", v)
	}
	if v := getxattr(filepath.Join(dir, "bin/su"), "trusted.overlay.redirect"); v != "" {
		t.Errorf("a layer set trusted.overlay.redirect = %q", v)
	}
	st = lstat(t, filepath.Join(dir, "bin"))
	if st.Mode&0o7777 != 0o711 || st.Uid != 5 || st.Gid != 6 || st.Mtim.Sec != 1500000000 {
		t.Errorf("bin dir mode %o uid %d gid %d mtime %d (mtime must survive later entries)", st.Mode, st.Uid, st.Gid, st.Mtim.Sec)
	}
	st = lstat(t, filepath.Join(dir, "bin/sh"))
	if st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Uid != 7 || st.Gid != 8 || st.Mtim.Sec != mtime.Unix() {
		t.Errorf("bin/sh mode %o uid %d mtime %d", st.Mode, st.Uid, st.Mtim.Sec)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "bin/sh")); l != "/bin/busybox" {
		t.Errorf("bin/sh -> %q", l)
	}
	a, b := lstat(t, filepath.Join(dir, "bin/busybox")), lstat(t, filepath.Join(dir, "bin/ls"))
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hard link: inodes %d/%d nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	if st := lstat(t, filepath.Join(dir, "dev/null")); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("dev/null mode %o rdev %d", st.Mode, st.Rdev)
	}
	if st := lstat(t, filepath.Join(dir, "dev/sda")); st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != unix.Mkdev(8, 0) {
		t.Errorf("dev/sda mode %o rdev %d", st.Mode, st.Rdev)
	}
	if st := lstat(t, filepath.Join(dir, "fifo")); st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fifo mode %o", st.Mode)
	}
}

func TestApplyWhiteoutsToOverlayFormat(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	mustApply(t, dir, Options{},
		dirH("a/"), reg("a/.wh.gone", ""), reg(".wh.top", ""),
		dirH("o/"), reg("o/.wh..wh..opq", ""), reg("o/kept", "k"),
		reg(".wh..wh.plnk", ""),               // other AUFS metadata is dropped
		reg("same", "s"), reg(".wh.same", ""), // a whiteout does not hide an entry of its own layer
		reg("implied/deep/.wh.x", ""),
	)
	for _, p := range []string{"a/gone", "top", "implied/deep/x"} {
		st := lstat(t, filepath.Join(dir, p))
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("%s: mode %o rdev %d, want 0/0 char device", p, st.Mode, st.Rdev)
		}
	}
	if v := getxattr(filepath.Join(dir, "o"), "trusted.overlay.opaque"); v != "y" {
		t.Errorf("o opaque xattr = %q", v)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "same")); err != nil || string(b) != "s" {
		t.Errorf("same = %q, %v", b, err)
	}
	for _, p := range []string{"a/.wh.gone", ".wh.top", "o/.wh..wh..opq", ".wh..wh.plnk"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s exists in the upper dir", p)
		}
	}
}

func TestApplyDirReplacingWhiteoutIsOpaque(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	mustApply(t, dir, Options{}, reg(".wh.d", ""), dirH("d/"), reg("d/new", "n"))
	if st := lstat(t, filepath.Join(dir, "d")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Fatalf("d mode %o", st.Mode)
	}
	if v := getxattr(filepath.Join(dir, "d"), "trusted.overlay.opaque"); v != "y" {
		t.Errorf("d replaced a deleted lower dir but is not opaque (%q)", v)
	}
}

func TestApplyWhiteoutThenWriteInside(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	mustApply(t, dir, Options{}, reg(".wh.d", ""), reg("d/new", "n"))
	if v := getxattr(filepath.Join(dir, "d"), "trusted.overlay.opaque"); v != "y" {
		t.Errorf("d recreated after its whiteout is not opaque (%q)", v)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "d/new")); err != nil || string(b) != "n" {
		t.Errorf("d/new = %q, %v", b, err)
	}
}

func TestApplyDropWhiteouts(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	mustApply(t, dir, Options{DropWhiteouts: true}, dirH("o/"), reg("o/.wh..wh..opq", ""), reg(".wh.x", ""),
		device("w", tar.TypeChar, 0, 0), reg("f", "f"))
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 2 || ents[0].Name() != "f" || ents[1].Name() != "o" {
		t.Errorf("entries %v, %v; want f and o only", ents, err)
	}
	if v := getxattr(filepath.Join(dir, "o"), "trusted.overlay.opaque"); v != "" {
		t.Errorf("opaque xattr set with DropWhiteouts")
	}
}

func TestApplyReplacesEntries(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	mustApply(t, dir, Options{},
		reg("f", "one"), reg("f", "two"),
		dirH("d/"), reg("d/x", "x"), reg("d", "file now"),
		reg("e", "file"), dirH("e/"), reg("e/y", "y"),
	)
	for p, want := range map[string]string{"f": "two", "d": "file now", "e/y": "y"} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
}

func TestApplyImpliedParentsFromLowerLayer(t *testing.T) {
	needRoot(t)
	lower, upper := t.TempDir(), t.TempDir()
	d := dirH("usr/")
	d.Mode, d.Uid, d.Gid = 0o750, 3, 4
	mustApply(t, lower, Options{}, d)
	mustApply(t, upper, Options{Parents: []string{lower}}, reg("usr/f", "f"), reg("new/g", "g"))
	if st := lstat(t, filepath.Join(upper, "usr")); st.Mode&0o7777 != 0o750 || st.Uid != 3 || st.Gid != 4 {
		t.Errorf("implied usr: mode %o uid %d gid %d, want the lower layer's 750 3:4", st.Mode, st.Uid, st.Gid)
	}
	if st := lstat(t, filepath.Join(upper, "new")); st.Mode&0o7777 != 0o755 || st.Uid != 0 {
		t.Errorf("implied new: mode %o uid %d, want 755 root", st.Mode, st.Uid)
	}
}

func TestApplyHardLinkCopiesUpFromParent(t *testing.T) {
	needRoot(t)
	base, mid, upper := t.TempDir(), t.TempDir(), t.TempDir()
	f := reg("etc/app.conf", "config")
	f.Mode, f.Uid, f.Gid = 0o640, 10, 20
	f.PAXRecords = map[string]string{"SCHILY.xattr.user.k": "v"}
	mustApply(t, base, Options{}, dirH("etc/"), f, reg("etc/deleted", "d"), dirH("opq/"), reg("opq/hidden", "h"))
	mustApply(t, mid, Options{Parents: []string{base}}, reg("etc/.wh.deleted", ""), dirH("opq/"), reg("opq/.wh..wh..opq", ""))
	parents := []string{mid, base}
	mustApply(t, upper, Options{Parents: parents}, hardlink("link", "etc/app.conf"))

	src := lstat(t, filepath.Join(base, "etc/app.conf"))
	cp, l := lstat(t, filepath.Join(upper, "etc/app.conf")), lstat(t, filepath.Join(upper, "link"))
	if cp.Ino != l.Ino || cp.Ino == src.Ino || cp.Nlink != 2 {
		t.Errorf("copy-up inode %d, link %d, lower %d, nlink %d", cp.Ino, l.Ino, src.Ino, cp.Nlink)
	}
	if cp.Mode&0o7777 != 0o640 || cp.Uid != 10 || cp.Gid != 20 || cp.Mtim != src.Mtim {
		t.Errorf("copy-up mode %o uid %d gid %d mtime %v", cp.Mode, cp.Uid, cp.Gid, cp.Mtim)
	}
	if b, _ := os.ReadFile(filepath.Join(upper, "link")); string(b) != "config" {
		t.Errorf("link content %q", b)
	}
	if v := getxattr(filepath.Join(upper, "link"), "user.k"); v != "v" {
		t.Errorf("copy-up lost xattr: %q", v)
	}
	if st := lstat(t, filepath.Join(base, "etc/app.conf")); st.Nlink != 1 {
		t.Errorf("lower file nlink %d: the parent layer was modified", st.Nlink)
	}
	// Targets deleted by a whiteout or hidden by an opaque dir in a nearer layer do not exist.
	for _, target := range []string{"etc/deleted", "opq/hidden", "nowhere"} {
		_, err := apply(t, t.TempDir(), Options{Parents: parents}, hardlink("l", target))
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("hard link to %s: %v, want InvalidArgument", target, err)
		}
	}
}

func TestApplyContextCancel(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, t.TempDir(), mkTar(t, reg("f", "x")), Options{NoSync: true})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with canceled ctx: %v", err)
	}
}

func TestApplyCorruptTar(t *testing.T) {
	needRoot(t)
	_, err := Apply(context.Background(), t.TempDir(), strings.NewReader(strings.Repeat("garbage!", 100)), Options{NoSync: true})
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("corrupt tar: %v, want InvalidArgument", err)
	}
}

// The malicious cases: each must fail with InvalidArgument and leave everything outside dir untouched.
func TestApplyRefusesMaliciousLayers(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	secret := filepath.Join(outside, "secret")

	cases := []struct {
		name string
		hdrs []*tar.Header
		opts Options
	}{
		{"dotdot", []*tar.Header{reg("../outside/pwned", "x")}, Options{}},
		{"dotdot in the middle", []*tar.Header{dirH("a/"), reg("a/../../outside/pwned", "x")}, Options{}},
		{"dotdot dir", []*tar.Header{dirH("../outside/newdir/")}, Options{}},
		{"absolute symlink then write through it", []*tar.Header{symlink("evil", outside), reg("evil/pwned", "x")}, Options{}},
		{"relative escaping symlink then write through it", []*tar.Header{symlink("evil", "../outside"), reg("evil/pwned", "x")}, Options{}},
		{"symlink chain then write through it", []*tar.Header{dirH("d/"), symlink("d/l1", "../l2"), symlink("l2", "../outside"), reg("d/l1/pwned", "x")}, Options{}},
		{"symlink then dir through it", []*tar.Header{symlink("evil", outside), dirH("evil/newdir/")}, Options{}},
		{"symlink then symlink through it", []*tar.Header{symlink("evil", outside), symlink("evil/pwned", "/")}, Options{}},
		{"symlink then whiteout through it", []*tar.Header{symlink("evil", outside), reg("evil/.wh.secret", "")}, Options{}},
		{"symlink then opaque through it", []*tar.Header{symlink("evil", outside), reg("evil/.wh..wh..opq", "")}, Options{}},
		{"hard link escaping", []*tar.Header{hardlink("l", "../outside/secret")}, Options{}},
		{"hard link through symlink", []*tar.Header{symlink("evil", outside), hardlink("l", "evil/secret")}, Options{}},
		{"hard link through symlink in parent layer", []*tar.Header{hardlink("l", "evil/secret")}, Options{Parents: []string{filepath.Join(base, "lower")}}},
		{"hard link created through symlink", []*tar.Header{reg("t", "t"), symlink("evil", outside), hardlink("evil/pwned", "t")}, Options{}},
		{"whiteout escaping", []*tar.Header{reg("../.wh.secret", "")}, Options{}},
		{"whiteout escaping from dir", []*tar.Header{dirH("a/"), reg("a/../../outside/.wh.secret", "")}, Options{}},
		{"whiteout of dotdot", []*tar.Header{dirH("a/"), reg("a/.wh..", "")}, Options{}},
		{"char device", []*tar.Header{device("dev/mem", tar.TypeChar, 1, 1)}, Options{}},
		{"block device", []*tar.Header{device("dev/sda", tar.TypeBlock, 8, 0)}, Options{}},
		{"root replaced by file", []*tar.Header{reg(".", "x")}, Options{}},
	}
	lower := filepath.Join(base, "lower")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, d := range []string{root, outside, lower} {
				if err := os.RemoveAll(d); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(lower, "evil")); err != nil {
				t.Fatal(err)
			}
			_, err := apply(t, root, tc.opts, tc.hdrs...)
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("Apply: %v, want an InvalidArgument error", err)
			}
			t.Logf("refused: %v", err)
			ents, err := os.ReadDir(outside)
			if err != nil || len(ents) != 1 || ents[0].Name() != "secret" {
				t.Errorf("outside dir changed: %v %v", ents, err)
			}
			st := lstat(t, secret)
			if st.Nlink != 1 || st.Mode&unix.S_IFMT != unix.S_IFREG {
				t.Errorf("secret changed: nlink %d mode %o", st.Nlink, st.Mode)
			}
			if v := getxattr(outside, "trusted.overlay.opaque"); v != "" {
				t.Errorf("outside dir got opaque xattr")
			}
			if b, _ := os.ReadFile(secret); string(b) != "secret" {
				t.Errorf("secret content %q", b)
			}
			if ents, _ := os.ReadDir(base); len(ents) != 3 {
				t.Errorf("entries appeared beside root: %v", ents)
			}
		})
	}
}

func TestApplyAbsolutePathsStayInside(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	name := "/noded-archive-test-" + filepath.Base(dir)
	mustApply(t, dir, Options{}, reg(name, "x"), hardlink("/abs-link", name))
	if _, err := os.Lstat(name); !os.IsNotExist(err) {
		os.Remove(name)
		t.Fatalf("absolute entry written outside the root")
	}
	if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != "x" {
		t.Errorf("absolute entry inside root = %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "abs-link")); err != nil || string(b) != "x" {
		t.Errorf("absolute hard link inside root = %q, %v", b, err)
	}
}

func TestApplyReplacesSymlinkInsteadOfFollowing(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(outside, "target")
	if err := os.WriteFile(target, []byte("orig"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := dirH("dirlink/")
	d.Mode = 0o777
	mustApply(t, root, Options{}, symlink("f", target), reg("f", "new"), symlink("dirlink", outside), d)
	if b, _ := os.ReadFile(target); string(b) != "orig" {
		t.Errorf("file written through final symlink: %q", b)
	}
	if st := lstat(t, outside); st.Mode&0o777 != 0o755 {
		t.Errorf("outside dir chmodded through symlink: %o", st.Mode)
	}
	if st := lstat(t, filepath.Join(root, "f")); st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("f not replaced by a regular file")
	}
	if st := lstat(t, filepath.Join(root, "dirlink")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("dirlink not replaced by a directory")
	}
}
