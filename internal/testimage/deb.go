package testimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/noded/noded/errdefs"
)

// DefaultCacheDir is where .debs, extracted packages and compiled helpers are
// kept between builds.
const DefaultCacheDir = "/var/cache/noded-testimages"

//go:embed csrc/*.c
var csrc embed.FS

// Debs fetches Debian packages into a cache directory and reads files out of
// them. It is safe for concurrent use.
type Debs struct {
	dir  string
	logf func(format string, args ...any)

	mu     sync.Mutex
	owners map[string][2]string // host path -> {package, path inside the package}
}

// NewDebs returns a package cache rooted at dir (created if needed).
func NewDebs(dir string, logf func(string, ...any)) *Debs {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Debs{dir: dir, logf: logf, owners: map[string][2]string{}}
}

func run(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Fetch returns the path of PKG's .deb in the cache, downloading it with
// `apt-get download` if no version of it is cached yet.
func (d *Debs) Fetch(ctx context.Context, pkg string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	name := strings.SplitN(pkg, ":", 2)[0]
	debDir := filepath.Join(d.dir, "debs")
	if err := os.MkdirAll(debDir, 0o755); err != nil {
		return "", fmt.Errorf("creating deb cache: %w", err)
	}
	find := func() string {
		matches, _ := filepath.Glob(filepath.Join(debDir, name+"_*.deb"))
		sort.Strings(matches)
		if len(matches) == 0 {
			return ""
		}
		return matches[len(matches)-1]
	}
	if p := find(); p != "" {
		return p, nil
	}
	d.logf("apt-get download %s", pkg)
	if _, err := run(ctx, debDir, "apt-get", "download", "-q", pkg); err != nil {
		return "", fmt.Errorf("downloading package %s: %w", pkg, err)
	}
	p := find()
	if p == "" {
		return "", errdefs.NotFound("apt-get download %s left no %s_*.deb in %s", pkg, name, debDir)
	}
	return p, nil
}

// Extract returns a directory holding the unpacked contents of PKG.
func (d *Debs) Extract(ctx context.Context, pkg string) (string, error) {
	deb, err := d.Fetch(ctx, pkg)
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dst := filepath.Join(d.dir, "extract", strings.TrimSuffix(filepath.Base(deb), ".deb"))
	if _, err := os.Stat(filepath.Join(dst, ".complete")); err == nil {
		return dst, nil
	}
	if err := os.RemoveAll(dst); err != nil {
		return "", fmt.Errorf("clearing %s: %w", dst, err)
	}
	tmp := dst + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("clearing %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", tmp, err)
	}
	if _, err := run(ctx, "", "dpkg-deb", "-x", deb, tmp); err != nil {
		return "", fmt.Errorf("extracting %s: %w", deb, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return "", fmt.Errorf("marking %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("renaming %s: %w", tmp, err)
	}
	return dst, nil
}

// ReadFile returns the content of the file at p (an absolute path as
// packaged) inside PKG, following symbolic links that stay inside the package.
func (d *Debs) ReadFile(ctx context.Context, pkg, p string) ([]byte, error) {
	root, err := d.Extract(ctx, pkg)
	if err != nil {
		return nil, err
	}
	resolved, err := resolveIn(root, p)
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", pkg, err)
	}
	b, err := os.ReadFile(filepath.Join(root, resolved))
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", pkg, err)
	}
	return b, nil
}

// resolveIn follows symlinks of p inside the tree at root.
func resolveIn(root, p string) (string, error) {
	p = clean(p)
	for i := 0; i < 40; i++ {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			return "", errdefs.NotFound("%s: %v", p, err)
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return p, nil
		}
		t, err := os.Readlink(filepath.Join(root, p))
		if err != nil {
			return "", fmt.Errorf("readlink %s: %w", p, err)
		}
		if !path.IsAbs(t) {
			t = path.Join(path.Dir(p), t)
		}
		p = clean(t)
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", p)
}

// owner finds the Debian package that ships the host file p, trying the
// /usr-merged aliases of its path too. It returns the package name and the
// path as packaged.
func (d *Debs) owner(ctx context.Context, p string) (string, string, error) {
	d.mu.Lock()
	if o, ok := d.owners[p]; ok {
		d.mu.Unlock()
		return o[0], o[1], nil
	}
	d.mu.Unlock()
	candidates := []string{p}
	if strings.HasPrefix(p, "/usr/") {
		candidates = append(candidates, strings.TrimPrefix(p, "/usr"))
	} else {
		candidates = append(candidates, "/usr"+p)
	}
	if real, err := filepath.EvalSymlinks(p); err == nil && real != p {
		candidates = append(candidates, real)
	}
	for _, c := range candidates {
		out, err := run(ctx, "", "dpkg-query", "-S", c)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			pkgs, file, ok := strings.Cut(line, ": ")
			if !ok || strings.HasPrefix(line, "diversion ") || file != c {
				continue
			}
			pkg := strings.TrimSpace(strings.Split(pkgs, ",")[0])
			d.mu.Lock()
			d.owners[p] = [2]string{pkg, c}
			d.mu.Unlock()
			return pkg, c, nil
		}
	}
	return "", "", errdefs.NotFound("no Debian package ships %s", p)
}

// Lib is a shared library a binary needs.
type Lib struct {
	// Path is where the dynamic loader looks for it (as ldd reports it).
	Path string
	// Data is the library's content, taken from its Debian package.
	Data []byte
}

// Libs runs ldd on binary and returns the libraries it loads (including the
// dynamic loader), with contents read from the Debian packages that ship them.
// A library no package ships is read from the host.
func (d *Debs) Libs(ctx context.Context, binary string) ([]Lib, error) {
	out, err := run(ctx, "", "ldd", binary)
	if err != nil {
		return nil, fmt.Errorf("listing libraries of %s: %w", binary, err)
	}
	var libs []Lib
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		var p string
		switch {
		case len(fields) >= 3 && fields[1] == "=>" && strings.HasPrefix(fields[2], "/"):
			p = fields[2]
		case len(fields) >= 1 && strings.HasPrefix(fields[0], "/"):
			p = fields[0]
		case len(fields) >= 3 && fields[1] == "=>" && fields[2] == "not":
			return nil, errdefs.NotFound("%s: library %s not found", binary, fields[0])
		default:
			continue // linux-vdso and blank lines
		}
		data, err := d.libData(ctx, p)
		if err != nil {
			return nil, err
		}
		libs = append(libs, Lib{Path: p, Data: data})
	}
	sort.Slice(libs, func(i, j int) bool { return libs[i].Path < libs[j].Path })
	return libs, nil
}

func (d *Debs) libData(ctx context.Context, p string) ([]byte, error) {
	pkg, packaged, err := d.owner(ctx, p)
	if err == nil {
		if b, err := d.ReadFile(ctx, pkg, packaged); err == nil {
			return b, nil
		}
	}
	d.logf("library %s: no package copy, reading the host file", p)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("reading library %s: %w", p, err)
	}
	return b, nil
}

// CompileStatic compiles the embedded helper csrc/NAME.c with
// `gcc -static -Os -s` (plus extra flags) and returns the binary, caching it
// by a hash of source, flags and compiler version.
func (d *Debs) CompileStatic(ctx context.Context, name string, extra ...string) ([]byte, error) {
	src, err := csrc.ReadFile("csrc/" + name + ".c")
	if err != nil {
		return nil, errdefs.NotFound("no helper source %s.c", name)
	}
	ver, err := run(ctx, "", "gcc", "--version")
	if err != nil {
		return nil, fmt.Errorf("gcc: %w", err)
	}
	args := append([]string{"-static", "-Os", "-s", "-Wl,--build-id=none"}, extra...)
	h := sha256.New()
	for _, part := range [][]byte{src, ver, []byte(strings.Join(args, "\x00"))} {
		h.Write(part)
		h.Write([]byte{0})
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	binDir := filepath.Join(d.dir, "bin")
	cached := filepath.Join(binDir, name+"-"+key)
	if b, err := os.ReadFile(cached); err == nil {
		return b, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", binDir, err)
	}
	work, err := os.MkdirTemp(binDir, "build-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(work)
	if err := os.WriteFile(filepath.Join(work, name+".c"), src, 0o644); err != nil {
		return nil, fmt.Errorf("writing source: %w", err)
	}
	d.logf("gcc %s %s.c", strings.Join(args, " "), name)
	args = append(args, "-o", name, name+".c")
	if _, err := run(ctx, work, "gcc", args...); err != nil {
		return nil, fmt.Errorf("compiling %s: %w", name, err)
	}
	b, err := os.ReadFile(filepath.Join(work, name))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if err := os.WriteFile(cached+".tmp", b, 0o755); err != nil {
		return nil, fmt.Errorf("caching %s: %w", name, err)
	}
	if err := os.Rename(cached+".tmp", cached); err != nil {
		return nil, fmt.Errorf("caching %s: %w", name, err)
	}
	return b, nil
}
