package testimage

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Options configures a Builder.
type Options struct {
	// CacheDir holds downloaded .debs, extracted packages and compiled
	// helpers (DefaultCacheDir if empty).
	CacheDir string
	// Compression of the layers built (Gzip if empty).
	Compression Compression
	// Format of the images built (OCI if empty).
	Format Format
	// Logf receives progress messages (discarded if nil).
	Logf func(format string, args ...any)
}

// Builder builds test images from Debian packages. It memoises the busybox
// root filesystem and base image; it is safe for concurrent use.
type Builder struct {
	opts Options
	debs *Debs

	mu     sync.Mutex
	rootfs *FS
	base   v1.Image
}

// NewBuilder returns a Builder with defaults filled in.
func NewBuilder(opts Options) *Builder {
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir
	}
	if opts.Compression == "" {
		opts.Compression = Gzip
	}
	if opts.Format == "" {
		opts.Format = OCI
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return &Builder{opts: opts, debs: NewDebs(opts.CacheDir, opts.Logf)}
}

// Debs returns the builder's package cache.
func (b *Builder) Debs() *Debs { return b.debs }

// Busybox builds the busybox base image with default options; see
// Builder.Busybox.
func Busybox(ctx context.Context, opts Options) (v1.Image, error) {
	return NewBuilder(opts).Busybox(ctx)
}

// User is an /etc/passwd entry with its primary group.
type User struct {
	Name string
	UID  int
	GID  int
	Home string
}

// Group is an /etc/group entry.
type Group struct {
	Name    string
	GID     int
	Members []string
}

// BaseUsers and BaseGroups are the accounts of the busybox image.
var (
	BaseUsers = []User{
		{Name: "root", UID: 0, GID: 0, Home: "/root"},
		{Name: "www-data", UID: 33, GID: 33, Home: "/var/www"},
		{Name: "nobody", UID: 65534, GID: 65534, Home: "/nonexistent"},
	}
	BaseGroups = []Group{
		{Name: "root", GID: 0},
		{Name: "www-data", GID: 33},
		{Name: "nogroup", GID: 65534},
	}
)

// PasswdFiles renders /etc/passwd and /etc/group for the given accounts.
func PasswdFiles(users []User, groups []Group) (passwd, group []byte) {
	var p, g strings.Builder
	for _, u := range users {
		shell := "/bin/sh"
		if u.UID != 0 {
			shell = "/bin/false"
		}
		fmt.Fprintf(&p, "%s:x:%d:%d:%s:%s:%s\n", u.Name, u.UID, u.GID, u.Name, u.Home, shell)
	}
	for _, gr := range groups {
		fmt.Fprintf(&g, "%s:x:%d:%s\n", gr.Name, gr.GID, strings.Join(gr.Members, ","))
	}
	return []byte(p.String()), []byte(g.String())
}

// BusyboxFS returns (a copy of) the busybox root filesystem: Debian's dynamic
// busybox at /bin/busybox with every applet hard-linked beside it in /bin,
// its libraries, static pgrep and ipcs helpers, accounts, and /tmp (1777).
func (b *Builder) BusyboxFS(ctx context.Context) (*FS, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rootfs == nil {
		fsys, err := b.buildBusyboxFS(ctx)
		if err != nil {
			return nil, err
		}
		b.rootfs = fsys
	}
	c := NewFS()
	c.Merge(b.rootfs)
	return c, nil
}

func (b *Builder) buildBusyboxFS(ctx context.Context) (*FS, error) {
	root, err := b.debs.Extract(ctx, "busybox")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(root, "bin", "busybox")
	data, err := b.debs.ReadFile(ctx, "busybox", "/bin/busybox")
	if err != nil {
		return nil, err
	}
	out, err := run(ctx, "", bin, "--list")
	if err != nil {
		return nil, fmt.Errorf("listing busybox applets: %w", err)
	}
	fsys := NewFS()
	for _, d := range []string{"/dev", "/proc", "/sys", "/etc", "/home", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/sbin", "/var/www", "/var/log", "/run"} {
		fsys.Mkdir(d, 0o755)
	}
	fsys.Mkdir("/root", 0o700)
	fsys.Mkdir("/tmp", 0o777|fs.ModeSticky)
	// As in Debian's base-files: programs that write /var/run/*.pid (nginx) find it in /run.
	fsys.Mkdir("/run", 0o755)
	fsys.Mkdir("/var", 0o755)
	fsys.Symlink("/run", "/var/run")
	fsys.WriteFile("/bin/busybox", data, 0o755)
	applets := strings.Fields(string(out))
	sort.Strings(applets)
	for _, a := range applets {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		fsys.Link("/bin/busybox", "/bin/"+a)
	}
	if err := b.addLibs(ctx, fsys, bin); err != nil {
		return nil, err
	}
	for _, h := range []string{"pgrep", "ipcs"} {
		hb, err := b.debs.CompileStatic(ctx, h)
		if err != nil {
			return nil, err
		}
		fsys.WriteFile("/bin/"+h, hb, 0o755)
	}
	passwd, group := PasswdFiles(BaseUsers, BaseGroups)
	fsys.WriteFile("/etc/passwd", passwd, 0o644)
	fsys.WriteFile("/etc/group", group, 0o644)
	fsys.WriteFile("/etc/nsswitch.conf", []byte("passwd: files\ngroup: files\nhosts: files dns\n"), 0o644)
	if err := fsys.Chown("/var/www", 33, 33); err != nil {
		return nil, err
	}
	return fsys, nil
}

// addLibs adds the shared libraries binary (a path on this host) needs.
func (b *Builder) addLibs(ctx context.Context, fsys *FS, binary string) error {
	libs, err := b.debs.Libs(ctx, binary)
	if err != nil {
		return err
	}
	for _, l := range libs {
		fsys.WriteFile(l.Path, l.Data, 0o755)
	}
	return nil
}

// Busybox returns the busybox base image: one layer with BusyboxFS, PATH set,
// CMD ["sh"].
func (b *Builder) Busybox(ctx context.Context) (v1.Image, error) {
	fsys, err := b.BusyboxFS(ctx)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.base != nil {
		return b.base, nil
	}
	l, err := LayerFromFS(fsys, b.opts.Compression, b.opts.Format)
	if err != nil {
		return nil, fmt.Errorf("busybox layer: %w", err)
	}
	img, err := Assemble([]v1.Layer{l}, v1.Config{Env: []string{DefaultPath}, Cmd: []string{"sh"}}, b.opts.Format, nil)
	if err != nil {
		return nil, err
	}
	b.base = img
	return img, nil
}
