package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fuzzTar builds a layer tar from a script: one entry per line, "T name|arg", where T is f (file, arg is the
// content), d (dir), l (symlink to arg), h (hard link to arg), c (char device, arg "0" makes a whiteout
// device), b (block device), p (fifo), x (file with the xattr arg "key=value"), m (dir with mode 0 and
// owner 1000). Lines that make no header are skipped.
func fuzzTar(script string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, line := range strings.Split(script, "\n") {
		if line == "" {
			continue
		}
		name, arg, _ := strings.Cut(line[1:], "|")
		name = strings.TrimPrefix(name, " ")
		h := &tar.Header{Name: name, Mode: 0o644, Format: tar.FormatPAX}
		body := ""
		switch line[0] {
		case 'f':
			h.Typeflag, body = tar.TypeReg, arg
		case 'd':
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case 'm':
			h.Typeflag, h.Mode, h.Uid, h.Gid = tar.TypeDir, 0, 1000, 1000
		case 'l':
			h.Typeflag, h.Linkname = tar.TypeSymlink, arg
		case 'h':
			h.Typeflag, h.Linkname = tar.TypeLink, arg
		case 'c':
			h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, 1, 3
			if arg == "0" {
				h.Devmajor, h.Devminor = 0, 0
			}
		case 'b':
			h.Typeflag, h.Devmajor = tar.TypeBlock, 8
		case 'p':
			h.Typeflag = tar.TypeFifo
		case 'x':
			k, v, _ := strings.Cut(arg, "=")
			h.Typeflag, h.PAXRecords = tar.TypeReg, map[string]string{"SCHILY.xattr." + k: v}
		default:
			continue
		}
		h.Size = int64(len(body))
		if tw.WriteHeader(h) != nil {
			continue
		}
		_, _ = tw.Write([]byte(body))
	}
	_ = tw.Close()
	return buf.Bytes()
}

// FuzzApply applies generated layers, some malicious, on top of a lower layer that holds a symlink to a
// directory outside, and checks after each run that nothing outside the target directory changed: no
// panic, no write, link, whiteout or xattr outside, whatever the tar says. Errors are fine.
func FuzzApply(f *testing.F) {
	needRoot(f)
	for _, s := range []string{
		"d etc/\nf etc/passwd|root\nl bin|usr/bin\nh hard|etc/passwd",
		"f ../outside/pwned|x",
		"d a/\nf a/../../outside/pwned|x",
		"l evil|OUTSIDE\nf evil/pwned|x",
		"l evil|../outside\nf evil/pwned|x",
		"d d/\nl d/l1|../l2\nl l2|../outside\nf d/l1/pwned|x",
		"l evil|OUTSIDE\nd evil/newdir/",
		"l evil|OUTSIDE\nl evil/pwned|/",
		"l evil|OUTSIDE\nf evil/.wh.secret|",
		"l evil|OUTSIDE\nf evil/.wh..wh..opq|",
		"h l|../outside/secret",
		"h l|evil/secret",
		"h l|file",
		"h l|dir/inner",
		"f t|t\nl evil|OUTSIDE\nh evil/pwned|t",
		"f ../.wh.secret|",
		"d a/\nf a/.wh..|",
		"c dev/mem|1",
		"b dev/sda|",
		"c gone|0\nd gone/\nf gone/x|x",
		"f .wh.file|\nf .wh.dir|\nf dir/.wh..wh..opq|",
		"f /abs/path|x\nf ./././x|y\nf x/|z",
		"f .|x",
		"p fifo|\nx xa|user.k=v\nx xb|trusted.overlay.redirect=/x\nx xc|security.capability=zz",
		"m locked/\nf locked/inner|x\nd locked/",
		"f a|1\nd a/\nf a/b|2\nf a|3\nl a|b",
		"f dir/new|x\nh dir/link|dir/inner",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, script string, lazy bool) {
		base := t.TempDir()
		root, outside, lower := filepath.Join(base, "root"), filepath.Join(base, "outside"), filepath.Join(base, "lower")
		for _, d := range []string{root, outside, filepath.Join(lower, "dir")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		secret := filepath.Join(outside, "secret")
		for p, c := range map[string]string{secret: "secret", filepath.Join(lower, "file"): "lower", filepath.Join(lower, "dir/inner"): "inner"} {
			if err := os.WriteFile(p, []byte(c), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(outside, filepath.Join(lower, "evil")); err != nil {
			t.Fatal(err)
		}
		layer := fuzzTar(strings.ReplaceAll(script, "OUTSIDE", outside))
		opts := Options{NoSync: true, Parents: []string{lower}}
		if lazy {
			opts = Options{NoSync: true, LoadParents: func() ([]string, error) { return []string{lower}, nil }}
		}
		_, _ = Apply(context.Background(), root, bytes.NewReader(layer), opts)

		names := func(d string) []string {
			es, err := os.ReadDir(d)
			if err != nil {
				t.Fatalf("read %s: %v", d, err)
			}
			var out []string
			for _, e := range es {
				out = append(out, e.Name())
			}
			return out
		}
		if got := names(base); !slices.Equal(got, []string{"lower", "outside", "root"}) {
			t.Fatalf("entries beside the target: %v", got)
		}
		if got := names(outside); !slices.Equal(got, []string{"secret"}) {
			t.Fatalf("outside dir changed: %v", got)
		}
		if got := names(lower); !slices.Equal(got, []string{"dir", "evil", "file"}) {
			t.Fatalf("lower layer changed: %v", got)
		}
		if got := names(filepath.Join(lower, "dir")); !slices.Equal(got, []string{"inner"}) {
			t.Fatalf("lower dir changed: %v", got)
		}
		for p, c := range map[string]string{secret: "secret", filepath.Join(lower, "file"): "lower", filepath.Join(lower, "dir/inner"): "inner"} {
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil || st.Nlink != 1 || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != 0o600 || st.Uid != 0 {
				t.Fatalf("%s changed: %+v, %v", p, st, err)
			}
			if b, err := os.ReadFile(p); err != nil || string(b) != c {
				t.Fatalf("%s = %q, %v", p, b, err)
			}
		}
		for _, d := range []string{outside, lower, filepath.Join(lower, "dir"), base} {
			var buf [64]byte
			if n, err := unix.Listxattr(d, buf[:]); err == nil && n > 0 {
				t.Fatalf("%s got xattrs %q", d, buf[:n])
			}
		}
		if l, err := os.Readlink(filepath.Join(lower, "evil")); err != nil || l != outside {
			t.Fatalf("lower symlink changed: %q, %v", l, err)
		}
	})
}
