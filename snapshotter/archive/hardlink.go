package archive

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// hardlink makes name (base in directory pfd) a hard link to the layer path linkname. The target is looked
// up in this layer first, then in opts.Parents (nearest first) honouring their whiteouts and opaque
// directories; a target found in a parent layer is copied up into this layer and the link made to the copy.
func (a *applier) hardlink(dir, base, name, linkname string) error {
	target, err := cleanName(linkname)
	if err != nil {
		return invalid("hard link target: %v", err)
	}
	if target == "." || target == name {
		return invalid("hard link to %q is not allowed", linkname)
	}
	tdir, tbase := path.Split(target)
	tdir = path.Clean(tdir)

	// Own fd for the target's directory: parentDir's fd belongs to the applier's cache.
	tfd, st, err := a.lookup(a.root, tdir, tbase)
	if err != nil {
		return err
	}
	switch st {
	case found:
	case hidden:
		return invalid("hard link target %q is not reachable: deleted in this layer, or a parent is a symlink or not a directory", linkname)
	case absent:
		if err := a.copyUp(tdir, tbase); err != nil {
			return err
		}
		if tfd, err = a.openBeneath(a.root, tdir); err != nil {
			return resolveErr(tdir, err)
		}
	}
	defer unix.Close(tfd)
	// Resolved again: the copy-up may have replaced the cached directory fd.
	pfd, err := a.parentDir(dir, true)
	if err != nil {
		return err
	}
	var tst unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &tst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat hard link target: %w", err)
	}
	if tst.Mode&unix.S_IFMT == unix.S_IFDIR {
		return invalid("hard link target %q is a directory", linkname)
	}
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("link to %q: %w", linkname, err)
	}
	return nil
}

type lookupState int

const (
	absent lookupState = iota // not in this layer; lower layers may have it
	found                     // present (fd is the directory holding it)
	hidden                    // whited out, or under an opaque or non-directory entry of this layer
)

// lookup finds dir/base in the layer rooted at layerFd without following symlinks. On found it returns an
// fd of dir, which the caller closes.
func (a *applier) lookup(layerFd int, dir, base string) (int, lookupState, error) {
	cur, err := unix.Dup(layerFd)
	if err != nil {
		return -1, absent, err
	}
	opaque := false
	if dir != "." {
		for _, c := range strings.Split(dir, "/") {
			next, err := a.openBeneath(cur, c)
			unix.Close(cur)
			switch {
			case errors.Is(err, unix.ENOENT):
				if opaque {
					return -1, hidden, nil
				}
				return -1, absent, nil
			case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
				// A file, symlink or whiteout here hides everything below it in lower layers.
				return -1, hidden, nil
			case err != nil:
				return -1, absent, fmt.Errorf("look up %q: %w", dir, err)
			}
			cur = next
			if isOpaque(cur) {
				opaque = true
			}
		}
	}
	var st unix.Stat_t
	err = unix.Fstatat(cur, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil && isWhiteout(&st):
		unix.Close(cur)
		return -1, hidden, nil
	case err == nil:
		return cur, found, nil
	case errors.Is(err, unix.ENOENT):
		unix.Close(cur)
		if opaque {
			return -1, hidden, nil
		}
		return -1, absent, nil
	default:
		unix.Close(cur)
		return -1, absent, fmt.Errorf("look up %q: %w", path.Join(dir, base), err)
	}
}

func isOpaque(fd int) bool {
	var b [1]byte
	n, err := unix.Fgetxattr(fd, opaqueXattr, b[:])
	return err == nil && n == 1 && b[0] == 'y'
}

// copyUp copies dir/base from the nearest parent layer that has it into this layer.
func (a *applier) copyUp(dir, base string) error {
	rel := path.Join(dir, base)
	lowers, err := a.lowerLayers()
	if err != nil {
		return err
	}
	for _, lfd := range lowers {
		sfd, st, err := a.lookup(lfd, dir, base)
		if err != nil {
			return err
		}
		switch st {
		case hidden:
			return invalid("hard link target %q does not exist: deleted in a parent layer, or a parent is a symlink or not a directory", rel)
		case absent:
			continue
		}
		err = a.copyFrom(sfd, dir, base)
		unix.Close(sfd)
		return err
	}
	return invalid("hard link target %q does not exist", rel)
}

func (a *applier) copyFrom(sdir int, dir, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(sdir, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat lower %q: %w", base, err)
	}
	pfd, err := a.parentDir(dir, true)
	if err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if err := a.copyRegular(sdir, pfd, base, &st); err != nil {
			return err
		}
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(sdir, base, buf)
		if err != nil {
			return fmt.Errorf("readlink lower %q: %w", base, err)
		}
		if err := unix.Symlinkat(string(buf[:n]), pfd, base); err != nil {
			return fmt.Errorf("copy up symlink: %w", err)
		}
	case unix.S_IFIFO:
		if err := unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0); err != nil {
			return fmt.Errorf("copy up fifo: %w", err)
		}
	default:
		return invalid("hard link target %q in a lower layer has unsupported type %o", path.Join(dir, base), st.Mode&unix.S_IFMT)
	}
	if err := unix.Fchownat(pfd, base, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("copy up chown: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(pfd, base, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("copy up chmod: %w", err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("copy up times: %w", err)
	}
	return nil
}

// copyRegular copies file content and xattrs (except overlay's own); owner, mode and times follow.
func (a *applier) copyRegular(sdir, pfd int, base string, st *unix.Stat_t) error {
	sfd, err := unix.Openat(sdir, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open lower %q: %w", base, err)
	}
	src := os.NewFile(uintptr(sfd), base)
	defer src.Close()
	dfd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create copy-up %q: %w", base, err)
	}
	dst := os.NewFile(uintptr(dfd), base)
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil { // copy_file_range where the filesystem can
		return fmt.Errorf("copy up %q: %w", base, err)
	}
	if err := copyXattrs(sfd, dfd); err != nil {
		return fmt.Errorf("copy up %q: %w", base, err)
	}
	return dst.Close()
}

func copyXattrs(src, dst int) error {
	sz, err := unix.Flistxattr(src, nil)
	if err != nil || sz == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	names := make([]byte, sz)
	if sz, err = unix.Flistxattr(src, names); err != nil {
		return err
	}
	for _, name := range strings.Split(strings.TrimRight(string(names[:sz]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, overlayXattrNS) {
			continue
		}
		vsz, err := unix.Fgetxattr(src, name, nil)
		if err != nil {
			return fmt.Errorf("getxattr %s: %w", name, err)
		}
		val := make([]byte, vsz)
		if vsz, err = unix.Fgetxattr(src, name, val); err != nil {
			return fmt.Errorf("getxattr %s: %w", name, err)
		}
		if err := unix.Fsetxattr(dst, name, val[:vsz], 0); err != nil {
			return fmt.Errorf("setxattr %s: %w", name, err)
		}
	}
	return nil
}
