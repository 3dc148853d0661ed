// Package archive unpacks uncompressed OCI layer tar streams into an overlayfs upper directory.
//
// Apply writes every entry beneath the target directory only: entry names are cleaned and a name that
// escapes (after "..") is refused, a leading "/" is taken as relative to the target, and every parent
// directory is opened component by component with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV),
// so an entry whose parent path goes through a symlink (wherever it points) is refused rather than followed.
// Malicious or unsupported entries fail the whole apply with an errdefs.InvalidArgument error; the caller
// then discards the directory.
//
// OCI whiteouts become overlayfs whiteouts: ".wh.NAME" is a 0/0 character device at NAME and ".wh..wh..opq"
// sets trusted.overlay.opaque=y on its directory. Requires Linux 5.6 or later (openat2).
package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

// Overlay whiteout conventions.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
	overlayXattrNS = "trusted.overlay."
	paxXattrPrefix = "SCHILY.xattr."
)

// Options tune Apply.
type Options struct {
	// AllowDevices permits character and block device entries. Without it they are refused, except the
	// 0/0 character device (an overlay whiteout). FIFOs are always allowed.
	AllowDevices bool
	// Parents are the directories of the layers below dir, nearest first. They are only read: a hard link
	// whose target is not in this layer is resolved in them and the target is copied up into dir first (so
	// both names share one inode in the upper layer, hiding the lower copy), and a parent directory that
	// the tar does not list is created with the attributes it has in the nearest parent layer.
	Parents []string
	// LoadParents, when set instead of Parents, returns them when first needed (a hard link to a file not in
	// this layer, a parent directory the tar does not list). It lets a layer be unpacked while the layers below
	// are still being unpacked: LoadParents waits for them. It is called at most once.
	LoadParents func() ([]string, error)
	// NoSync skips the final syncfs of dir's filesystem.
	NoSync bool
	// DropWhiteouts ignores whiteout and opaque entries instead of converting them: for the bottom layer
	// of an image, where they hide nothing and would only show up as 0/0 devices in a bind mount.
	DropWhiteouts bool
}

// Apply unpacks the uncompressed layer tar r into dir (an overlay upper directory) and returns the number
// of bytes of regular file content written. Unless opts.NoSync, it ends with one syncfs(2) of dir's
// filesystem instead of an fsync per file: a single call that makes the whole layer durable before the
// caller commits it.
func Apply(ctx context.Context, dir string, r io.Reader, opts Options) (int64, error) {
	rootFd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open layer dir %s: %w", dir, err)
	}
	a := &applier{
		ctx:     ctx,
		dir:     dir,
		root:    rootFd,
		opts:    opts,
		buf:     make([]byte, 256<<10),
		dirIdx:  map[string]int{},
		lastFd:  -1,
		parents: make([]int, 0, len(opts.Parents)),
	}
	defer a.close()
	if opts.LoadParents == nil {
		if err := a.openParents(opts.Parents); err != nil {
			return 0, err
		}
	}

	tr := tar.NewReader(bufio.NewReaderSize(r, 256<<10))
	for {
		if err := ctx.Err(); err != nil {
			return a.written, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return a.written, errdefs.InvalidArgument("read layer tar: %v", err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return a.written, fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
	if err := a.finishDirs(); err != nil {
		return a.written, err
	}
	if !opts.NoSync {
		if err := unix.Syncfs(rootFd); err != nil {
			return a.written, fmt.Errorf("syncfs %s: %w", dir, err)
		}
	}
	return a.written, nil
}

func (a *applier) openParents(dirs []string) error {
	a.parentsOpen = true
	for _, p := range dirs {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open parent layer %s: %w", p, err)
		}
		a.parents = append(a.parents, fd)
	}
	return nil
}

// lowerLayers returns fds of the layers below, nearest first, loading them on first use.
func (a *applier) lowerLayers() ([]int, error) {
	if !a.parentsOpen {
		dirs, err := a.opts.LoadParents()
		if err != nil {
			a.parentsOpen = true
			return nil, fmt.Errorf("layers below: %w", err)
		}
		if err := a.openParents(dirs); err != nil {
			return nil, err
		}
	}
	return a.parents, nil
}

type dirTimes struct {
	rel          string
	atime, mtime time.Time
}

type applier struct {
	ctx     context.Context
	dir     string
	root    int
	parents []int
	// parentsOpen: parents holds the layers below (opened at the start, or loaded on first use).
	parentsOpen bool
	opts        Options
	buf         []byte
	written     int64

	// The most recently resolved parent directory; entries of one directory are usually consecutive.
	lastDir string
	lastFd  int

	// Directory times are set at the end, after their contents are written.
	dirs   []dirTimes
	dirIdx map[string]int
}

func (a *applier) close() {
	a.dropCache()
	for _, fd := range a.parents {
		unix.Close(fd)
	}
	unix.Close(a.root)
}

func (a *applier) dropCache() {
	if a.lastFd >= 0 {
		unix.Close(a.lastFd)
	}
	a.lastFd, a.lastDir = -1, ""
}

func invalid(format string, args ...any) error { return errdefs.InvalidArgument(format, args...) }

// cleanName turns a tar path into a clean path relative to the layer root, refusing escapes.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", invalid("path %q contains a NUL byte", name)
	}
	c := path.Clean(strings.TrimLeft(name, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", invalid("path %q escapes the layer root", name)
	}
	return c, nil
}

func (a *applier) entry(hdr *tar.Header, tr *tar.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	dir, base := path.Split(name)
	dir = path.Clean(dir)
	if base == "." {
		base = ""
	}

	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(dir, base)
	}
	if hdr.Typeflag == tar.TypeChar && hdr.Devmajor == 0 && hdr.Devminor == 0 && a.opts.DropWhiteouts {
		return nil
	}
	if name == "." {
		// The layer root itself: only its attributes apply.
		if hdr.Typeflag != tar.TypeDir {
			return invalid("layer root entry is not a directory")
		}
		if err := a.setAttrs(a.root, ".", hdr, unix.S_IFDIR); err != nil {
			return err
		}
		a.deferDirTimes(".", hdr.AccessTime, hdr.ModTime)
		return nil
	}

	pfd, err := a.parentDir(dir, true)
	if err != nil {
		return err
	}

	var existing unix.Stat_t
	exists := true
	if err := unix.Fstatat(pfd, base, &existing, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("stat: %w", err)
		}
		exists = false
	}
	wasWhiteout := exists && isWhiteout(&existing)
	if exists && !(hdr.Typeflag == tar.TypeDir && existing.Mode&unix.S_IFMT == unix.S_IFDIR) {
		// A later entry replaces an earlier one of this layer.
		if err := a.removeAt(pfd, base); err != nil {
			return err
		}
		// removeAt may have removed the cached directory itself; re-resolve.
		if pfd, err = a.parentDir(dir, true); err != nil {
			return err
		}
		exists = false
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if !exists {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return fmt.Errorf("mkdir: %w", err)
			}
		}
		if wasWhiteout {
			// The layer deleted the lower directory and made a new one: hide the lower contents.
			if err := a.setOpaqueAt(pfd, base); err != nil {
				return err
			}
		}
		if err := a.setAttrs(pfd, base, hdr, unix.S_IFDIR); err != nil {
			return err
		}
		a.deferDirTimes(name, hdr.AccessTime, hdr.ModTime)
		return nil
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont, '\x00':
		return a.regular(pfd, base, hdr, tr)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
		return a.setAttrs(pfd, base, hdr, unix.S_IFLNK)
	case tar.TypeLink:
		return a.hardlink(dir, base, name, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		mode := uint32(unix.S_IFCHR)
		if hdr.Typeflag == tar.TypeBlock {
			mode = unix.S_IFBLK
		}
		whiteoutDev := hdr.Typeflag == tar.TypeChar && hdr.Devmajor == 0 && hdr.Devminor == 0
		if !a.opts.AllowDevices && !whiteoutDev {
			return invalid("device node %d:%d refused (devices are not allowed)", hdr.Devmajor, hdr.Devminor)
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknodat(pfd, base, mode|0o600, dev); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
		return a.setAttrs(pfd, base, hdr, mode)
	case tar.TypeFifo:
		if err := unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0); err != nil {
			return fmt.Errorf("mkfifo: %w", err)
		}
		return a.setAttrs(pfd, base, hdr, unix.S_IFIFO)
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return invalid("unsupported tar entry type %q", hdr.Typeflag)
	}
}

func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func (a *applier) regular(pfd int, base string, hdr *tar.Header, tr *tar.Reader) error {
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	// Hide os.File.ReadFrom so the reusable buffer is used.
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, tr, a.buf)
	a.written += n
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := a.setAttrsFd(fd, pfd, base, hdr); err != nil {
		return err
	}
	return f.Close()
}

// setAttrsFd applies owner, mode, xattrs and times to an open regular file. Order matters: chown clears
// setuid bits and file capabilities, so it comes first.
func (a *applier) setAttrsFd(fd, pfd int, base string, hdr *tar.Header) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, tarMode(hdr)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for k, v := range xattrs(hdr) {
		if err := unix.Fsetxattr(fd, k, []byte(v), 0); err != nil {
			return fmt.Errorf("setxattr %s: %w", k, err)
		}
	}
	return setTimes(pfd, base, hdr.AccessTime, hdr.ModTime)
}

// setAttrs applies owner, mode, xattrs and (except for directories, done at the end) times to the entry
// base of directory pfd, which was just created with type typ (so it is not a symlink unless typ says so).
func (a *applier) setAttrs(pfd int, base string, hdr *tar.Header, typ uint32) error {
	if base == "." {
		if err := unix.Fchown(pfd, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
		if err := unix.Fchmod(pfd, tarMode(hdr)); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
		for k, v := range xattrs(hdr) {
			if err := unix.Fsetxattr(pfd, k, []byte(v), 0); err != nil {
				return fmt.Errorf("setxattr %s: %w", k, err)
			}
		}
		return nil
	}
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if typ != unix.S_IFLNK {
		if err := unix.Fchmodat(pfd, base, tarMode(hdr), 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if xa := xattrs(hdr); len(xa) > 0 {
		// lsetxattr through the trusted directory fd: only the final component is looked up, unfollowed.
		p := fmt.Sprintf("/proc/self/fd/%d/%s", pfd, base)
		for k, v := range xa {
			if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
				return fmt.Errorf("setxattr %s: %w", k, err)
			}
		}
	}
	if typ == unix.S_IFDIR {
		return nil
	}
	return setTimes(pfd, base, hdr.AccessTime, hdr.ModTime)
}

func tarMode(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 }

// xattrs returns the entry's extended attributes, without overlayfs' own (trusted.overlay.*), which a
// layer must not be able to forge (redirects, metacopy, origin).
func xattrs(hdr *tar.Header) map[string]string {
	var out map[string]string
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattrPrefix)
		if !ok || name == "" || strings.HasPrefix(name, overlayXattrNS) {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = v
	}
	return out
}

func setTimes(pfd int, base string, atime, mtime time.Time) error {
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func (a *applier) deferDirTimes(rel string, atime, mtime time.Time) {
	if i, ok := a.dirIdx[rel]; ok {
		a.dirs[i].atime, a.dirs[i].mtime = atime, mtime
		return
	}
	a.dirIdx[rel] = len(a.dirs)
	a.dirs = append(a.dirs, dirTimes{rel: rel, atime: atime, mtime: mtime})
}

// finishDirs sets directory times, deepest last-created first, once their contents are final.
func (a *applier) finishDirs() error {
	a.dropCache()
	for i := len(a.dirs) - 1; i >= 0; i-- {
		d := a.dirs[i]
		if d.rel == "." {
			if err := setTimes(a.root, ".", d.atime, d.mtime); err != nil {
				return err
			}
			continue
		}
		dir, base := path.Split(d.rel)
		pfd, err := a.openBeneath(a.root, path.Clean(dir))
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue // removed or replaced later in the layer
		}
		if err != nil {
			return fmt.Errorf("set times of %q: %w", d.rel, err)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = setTimes(pfd, base, d.atime, d.mtime)
			if err != nil {
				unix.Close(pfd)
				return fmt.Errorf("set times of %q: %w", d.rel, err)
			}
		}
		unix.Close(pfd)
	}
	return nil
}

const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_MAGICLINKS

// openBeneath opens directory rel (clean, relative) beneath dirfd without following any symlink.
func (a *applier) openBeneath(dirfd int, rel string) (int, error) {
	return unix.Openat2(dirfd, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: resolveFlags,
	})
}

func resolveErr(rel string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP):
		return invalid("parent path %q goes through a symlink", rel)
	case errors.Is(err, unix.ENOTDIR):
		return invalid("parent path %q is not a directory (symlinks are never followed)", rel)
	case errors.Is(err, unix.EXDEV):
		return invalid("parent path %q leaves the layer root", rel)
	}
	return fmt.Errorf("open %q: %w", rel, err)
}

// parentDir returns an fd (owned by the applier's cache; do not close) of directory rel beneath the root,
// creating missing components when create is set.
func (a *applier) parentDir(rel string, create bool) (int, error) {
	if rel == "." {
		return a.root, nil
	}
	if a.lastFd >= 0 && a.lastDir == rel {
		return a.lastFd, nil
	}
	fd, err := a.openBeneath(a.root, rel)
	if create && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)) {
		fd, err = a.mkdirAll(rel)
	}
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, err
		}
		return -1, resolveErr(rel, err)
	}
	a.dropCache()
	a.lastDir, a.lastFd = rel, fd
	return fd, nil
}

// mkdirAll creates the missing components of rel one at a time beneath the root. Implied directories take
// their attributes from the nearest parent layer holding them, else root:root 0755.
func (a *applier) mkdirAll(rel string) (int, error) {
	cur, err := unix.Dup(a.root)
	if err != nil {
		return -1, err
	}
	soFar := ""
	for _, c := range strings.Split(rel, "/") {
		soFar = path.Join(soFar, c)
		next, err := a.openBeneath(cur, c)
		opaque := false
		if errors.Is(err, unix.ENOTDIR) && a.whiteoutAt(cur, c) {
			// The layer deleted this directory and then wrote into it: it is a new, opaque directory.
			if err = unix.Unlinkat(cur, c, 0); err == nil {
				err, opaque = unix.ENOENT, true
			}
		}
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(cur, c, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				if err := a.impliedAttrs(cur, c, soFar); err != nil {
					unix.Close(cur)
					return -1, err
				}
				next, err = a.openBeneath(cur, c)
				if err == nil && opaque {
					if err = unix.Fsetxattr(next, opaqueXattr, []byte("y"), 0); err != nil {
						unix.Close(next)
					}
				}
			}
		}
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

func (a *applier) impliedAttrs(pfd int, base, rel string) error {
	lowers, err := a.lowerLayers()
	if err != nil {
		return err
	}
	for _, lfd := range lowers {
		fd, err := a.openBeneath(lfd, rel)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err != nil {
			continue
		}
		if err := unix.Fchownat(pfd, base, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown implied dir %q: %w", rel, err)
		}
		if err := unix.Fchmodat(pfd, base, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("chmod implied dir %q: %w", rel, err)
		}
		a.deferDirTimes(rel, time.Unix(st.Atim.Unix()), time.Unix(st.Mtim.Unix()))
		return nil
	}
	return nil
}

// removeAt removes name (recursively) from directory pfd without following symlinks.
func (a *applier) removeAt(pfd int, name string) error {
	a.dropCache()
	if err := removeAt(pfd, name); err != nil {
		return fmt.Errorf("remove existing %q: %w", name, err)
	}
	return nil
}

func removeAt(pfd int, name string) error {
	err := unix.Unlinkat(pfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	if err := unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR); err == nil || !errors.Is(err, unix.ENOTEMPTY) {
		return err
	}
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeAt(fd, n); err != nil {
				break
			}
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR)
}

// whiteout converts an OCI whiteout entry (dir/base, base starting with ".wh.") to overlay format.
func (a *applier) whiteout(dir, base string) error {
	if strings.HasPrefix(base, whiteoutMeta) && base != whiteoutOpaque {
		return nil // other AUFS metadata (.wh..wh.plnk etc.) carries nothing for overlay
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if target == "" || target == "." || target == ".." {
		return invalid("whiteout %q names no file", path.Join(dir, base))
	}
	if a.opts.DropWhiteouts {
		return nil
	}
	if base == whiteoutOpaque {
		pfd, err := a.parentDir(dir, true)
		if err != nil {
			return err
		}
		if err := unix.Fsetxattr(pfd, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("set opaque: %w", err)
		}
		return nil
	}
	pfd, err := a.parentDir(dir, true)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, target, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		// A whiteout hides lower layers only: an entry of this same layer stays.
		return nil
	} else if !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("stat whiteout target: %w", err)
	}
	if err := unix.Mknodat(pfd, target, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("create whiteout: %w", err)
	}
	return nil
}

func (a *applier) whiteoutAt(pfd int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && isWhiteout(&st)
}

func (a *applier) setOpaqueAt(pfd int, base string) error {
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open dir: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("set opaque: %w", err)
	}
	return nil
}
