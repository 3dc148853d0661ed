package snapshotter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

// IDMapping says how MountAllIDMapped maps a rootfs.
type IDMapping struct {
	// Userns is the path of the user namespace whose ID mappings apply (e.g. a pinned /proc/<pid>/ns/user).
	Userns string
	// RootUID and RootGID are the host IDs that the namespace's root maps to: an overlay's upper directory (new
	// and private to one container) is given to them, as overlayfs cannot use an ID-mapped upper layer.
	RootUID, RootGID int
}

// MountAllIDMapped mounts like MountAll, but image files are seen through the ID mappings of a user namespace: a
// file owned by host ID n on disk appears owned by the ID that n maps to, so root-owned image files belong to the
// root of a container in that user namespace. Shared layers are not chowned, nothing of them changes on disk.
//
// A bind mount is cloned with an ID mapping and attached on target. For an overlay, the directory holding its
// lower layers is cloned with the mapping onto a temporary directory beside target, the overlay is mounted with
// lower layers from that clone (overlayfs supports ID-mapped lower layers since Linux 5.19) and its own upper
// directory, whose top is chowned to the namespace's root, and the temporary mount is detached: the overlay keeps
// its own references to the layers.
//
// A filesystem or kernel without ID-mapped mounts gives a FailedPrecondition error.
func MountAllIDMapped(mounts []Mount, target string, idm IDMapping) error {
	if len(mounts) != 1 {
		return fmt.Errorf("ID-mapped rootfs: want one mount, got %d", len(mounts))
	}
	target, err := filepath.Abs(target)
	if err != nil {
		return fmt.Errorf("mount target %s: %w", target, err)
	}
	userns, err := unix.Open(idm.Userns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open user namespace %s: %w", idm.Userns, err)
	}
	defer unix.Close(userns)
	m := mounts[0]
	switch m.Type {
	case "bind":
		return attachIDMapped(m.Source, target, userns, slices.Contains(m.Options, "rbind"), slices.Contains(m.Options, "ro"))
	case "overlay":
		return mountOverlayIDMapped(m, target, userns, idm)
	}
	return fmt.Errorf("ID-mapped rootfs: unsupported mount type %q", m.Type)
}

// attachIDMapped clones the tree at src (recursively if rec), ID-maps it through userns and attaches it on target.
func attachIDMapped(src, target string, userns int, rec, ro bool) error {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	setFlags := uint(unix.AT_EMPTY_PATH)
	if rec {
		flags |= unix.AT_RECURSIVE
		setFlags |= unix.AT_RECURSIVE
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, flags)
	if err != nil {
		return fmt.Errorf("clone mount of %s: %w", src, err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns)}
	if ro {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(tree, "", setFlags, &attr); err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			return errdefs.FailedPrecondition("ID-mapped mount of %s is not supported by this kernel or filesystem: %v", src, err)
		}
		return fmt.Errorf("ID-map mount of %s: %w", src, err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach ID-mapped mount of %s on %s: %w", src, target, err)
	}
	return nil
}

func mountOverlayIDMapped(m Mount, target string, userns int, idm IDMapping) error {
	abs := func(p string) string {
		if m.Dir != "" && !filepath.IsAbs(p) {
			return filepath.Join(m.Dir, p)
		}
		return p
	}
	var lowers []string
	var rest []string // options other than lowerdir, layer paths made absolute
	upper := ""
	for _, o := range m.Options {
		switch k, v, _ := strings.Cut(o, "="); k {
		case "lowerdir":
			lowers = strings.Split(v, ":")
		case "upperdir", "workdir":
			if k == "upperdir" {
				upper = abs(v)
			}
			rest = append(rest, k+"="+abs(v))
		default:
			rest = append(rest, o)
		}
	}
	if len(lowers) == 0 {
		return fmt.Errorf("ID-mapped overlay: no lowerdir in %v", m.Options)
	}
	base := m.Dir
	if base == "" {
		base = commonDir(lowers)
		if base == "" || base == "/" {
			return fmt.Errorf("ID-mapped overlay: lower layers %v share no directory", lowers)
		}
	}
	if upper != "" {
		if err := os.Chown(upper, idm.RootUID, idm.RootGID); err != nil {
			return fmt.Errorf("ID-mapped overlay: give the upper layer to the user namespace's root: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(filepath.Dir(target), ".idmap-")
	if err != nil {
		return fmt.Errorf("ID-mapped overlay: %w", err)
	}
	defer os.Remove(tmp)
	if err := attachIDMapped(base, tmp, userns, false, false); err != nil {
		return err
	}
	// The overlay holds its own references to the layers: the clone can go once it is mounted.
	defer func() { _ = unix.Unmount(tmp, unix.MNT_DETACH) }()
	mapped := Mount{Type: m.Type, Source: m.Source}
	if m.Dir != "" {
		mapped.Dir = tmp // relative lower dirs now resolve in the clone
	} else {
		for i, d := range lowers {
			lowers[i] = tmp + strings.TrimPrefix(d, base)
		}
	}
	mapped.Options = append([]string{"lowerdir=" + strings.Join(lowers, ":")}, rest...)
	if len(strings.Join(mapped.Options, ",")) > maxOptionBytes {
		return errdefs.FailedPrecondition("ID-mapped overlay: mount options too long (%d layers)", len(lowers))
	}
	if err := MountAll([]Mount{mapped}, target); err != nil {
		return fmt.Errorf("ID-mapped overlay: %w", err)
	}
	return nil
}

// maxOptionBytes is the longest option string mount(2) takes (one page, NUL included).
var maxOptionBytes = os.Getpagesize() - 1

// commonDir returns the deepest directory that contains every one of the absolute paths.
func commonDir(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	common := filepath.Dir(filepath.Clean(paths[0]))
	for _, p := range paths[1:] {
		p = filepath.Clean(p)
		for common != "/" && p != common && !strings.HasPrefix(p, common+"/") {
			common = filepath.Dir(common)
		}
	}
	return common
}
