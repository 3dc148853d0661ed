package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/store"
)

// Image volumes (KEP-4639): a Mount naming an image mounts a read-only view of that image's layers. There is one
// view per image, shared by every container that mounts it: a View snapshot "imgvol-<image ID hex>" on the image's
// top layer, mounted at <StateDir>/image-volumes/<image ID hex> (and, ID-mapped, at <image ID hex>@<pod ID> for
// each pod with a user namespace). Each container bind-mounts it (or its image_sub_path) read-only. The users of a view are the container records whose ImageVolumes list the image; the
// view is unmounted and its snapshot removed when the last of them is removed, and Recover removes views no record
// uses (after a crash between the two).
const (
	imageVolumeKeyPrefix = "imgvol-"
	// LabelImageVolume marks the view snapshot of an image volume (value: the image ID).
	LabelImageVolume = "noded.io/image-volume"
)

// imageVolume is one image mount of a container request, resolved.
type imageVolume struct {
	index int // in ContainerConfig.Mounts
	image Image
}

func imageHex(id string) string { return strings.TrimPrefix(id, "sha256:") }

func (m *Manager) imageVolumesDir() string { return filepath.Join(m.cfg.StateDir, "image-volumes") }

// validateSubPath checks the syntax of an image_sub_path: relative, clean, without "..".
func validateSubPath(i int, p string) error {
	if p == "" {
		return nil
	}
	if filepath.IsAbs(p) || filepath.Clean(p) != p || p == "." || slices.Contains(strings.Split(p, "/"), "..") ||
		strings.ContainsRune(p, 0) {
		return errdefs.InvalidArgument("mounts[%d]: image_sub_path %q must be a clean relative path inside the image, without ..", i, p)
	}
	return nil
}

// resolveImageVolumes resolves the image mounts of a request: each image must have been pulled (NotFound), a mount
// must not name both an image and a host path, and sub paths must be well formed (InvalidArgument). It returns the
// volumes and the stored config: a copy of cfg whose image mounts carry the image's digested reference (reported
// as ContainerStatus.mounts[].image.image_ref).
func (m *Manager) resolveImageVolumes(ctx context.Context, cfg *runtimeapi.ContainerConfig) ([]imageVolume, error) {
	var vols []imageVolume
	for i, mt := range cfg.GetMounts() {
		if mt.GetImage().GetImage() == "" {
			continue
		}
		if mt.GetHostPath() != "" {
			return nil, errdefs.InvalidArgument("mounts[%d]: host_path and image are mutually exclusive", i)
		}
		if err := validateSubPath(i, mt.GetImageSubPath()); err != nil {
			return nil, err
		}
		img, err := m.cfg.Images.Resolve(ctx, mt.GetImage().GetImage())
		if err != nil {
			if errdefs.IsNotFound(err) {
				return nil, errdefs.NotFound("mounts[%d]: image volume %q not found: pull it first", i, mt.GetImage().GetImage())
			}
			return nil, fmt.Errorf("mounts[%d]: image volume %q: %w", i, mt.GetImage().GetImage(), err)
		}
		if img.ChainID == "" {
			return nil, errdefs.FailedPrecondition("mounts[%d]: image %q has no layers to mount", i, mt.GetImage().GetImage())
		}
		vols = append(vols, imageVolume{index: i, image: img})
	}
	return vols, nil
}

// imageVolumeIDs returns the distinct image IDs of vols.
func imageVolumeIDs(vols []imageVolume) []string {
	var ids []string
	for _, v := range vols {
		if !slices.Contains(ids, v.image.ID) {
			ids = append(ids, v.image.ID)
		}
	}
	return ids
}

// viewDir is where the view of image id is mounted for sandbox sb: one mount shared by every container in the
// host's user namespace, and one ID-mapped mount per pod with a user namespace (an overlay cannot be ID-mapped
// once mounted; its layers are, as for the rootfs).
func (m *Manager) viewDir(id string, sb *store.Sandbox) (string, snapshotter.IDMapping, bool) {
	dir := filepath.Join(m.imageVolumesDir(), imageHex(id))
	idm, userns := podUserns(sb)
	if userns {
		dir += "@" + sb.ID
	}
	return dir, idm, userns
}

// acquireImageVolume makes sure the view of img is mounted for the sandbox's containers and returns its mount
// point. The caller's container record must already list img.ID in ImageVolumes, so that a concurrent release
// keeps the view.
func (m *Manager) acquireImageVolume(ctx context.Context, img Image, sb *store.Sandbox) (string, error) {
	m.volMu.Lock()
	defer m.volMu.Unlock()
	key := imageVolumeKeyPrefix + imageHex(img.ID)
	dir, idm, userns := m.viewDir(img.ID, sb)
	if mounted, err := isMountPoint(dir); err != nil {
		return "", err
	} else if mounted {
		return dir, nil
	}
	mounts, err := m.cfg.Snapshotter.View(ctx, key, img.ChainID, snapshotter.WithLabels(map[string]string{LabelImageVolume: img.ID}))
	if errdefs.IsAlreadyExists(err) {
		mounts, err = m.cfg.Snapshotter.Mounts(ctx, key)
	}
	if err != nil {
		return "", fmt.Errorf("image volume %s: view snapshot: %w", img.ID, err)
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", fmt.Errorf("image volume %s: %w", img.ID, err)
	}
	if userns {
		err = m.h().MountAllIDMapped(mounts, dir, idm)
	} else {
		err = m.h().MountAll(mounts, dir)
	}
	if err != nil {
		_ = os.Remove(dir)
		return "", fmt.Errorf("image volume %s: mount view: %w", img.ID, err)
	}
	return dir, nil
}

// releaseImageVolumes drops container c's use of its image volumes: the ID-mapped view of its pod goes with the
// pod's last user, and a view no other container record uses is unmounted everywhere and its snapshot removed.
func (m *Manager) releaseImageVolumes(ctx context.Context, c *store.Container) error {
	if len(c.ImageVolumes) == 0 {
		return nil
	}
	m.volMu.Lock()
	defer m.volMu.Unlock()
	var errs []error
	for _, id := range c.ImageVolumes {
		users := m.imageVolumeUsers(id, c.ID)
		if len(users) == 0 {
			if err := m.removeImageVolume(ctx, id); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if !slices.ContainsFunc(users, func(u *store.Container) bool { return u.SandboxID == c.SandboxID }) {
			if err := m.unmountView(filepath.Join(m.imageVolumesDir(), imageHex(id)+"@"+c.SandboxID)); err != nil {
				errs = append(errs, fmt.Errorf("image volume %s: %w", id, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) unmountView(dir string) error {
	if err := m.h().UnmountAll(dir); err != nil {
		return err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// removeImageVolume unmounts every view of image id and removes its snapshot and mount points. volMu is held.
func (m *Manager) removeImageVolume(ctx context.Context, id string) error {
	base := filepath.Join(m.imageVolumesDir(), imageHex(id))
	dirs, _ := filepath.Glob(base + "@*")
	var errs []error
	for _, dir := range append(dirs, base) {
		if err := m.unmountView(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("image volume %s: %w", id, errors.Join(errs...))
	}
	if err := m.cfg.Snapshotter.Remove(ctx, imageVolumeKeyPrefix+imageHex(id)); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("image volume %s: remove view snapshot: %w", id, err)
	}
	return nil
}

// imageVolumeUsers returns the containers (except except) that mount image id as a volume.
func (m *Manager) imageVolumeUsers(id, except string) []*store.Container {
	var users []*store.Container
	for _, c := range m.cfg.Store.ContainerRecords("") {
		if c.ID != except && slices.Contains(c.ImageVolumes, id) {
			users = append(users, c)
		}
	}
	return users
}

// ImageInUse fails with FailedPrecondition while a container mounts the image (its ID) as an image volume, for
// RemoveImage: the image stays until those containers are removed.
func (m *Manager) ImageInUse(imageID string) error {
	m.volMu.Lock()
	defer m.volMu.Unlock()
	users := m.imageVolumeUsers(imageID, "")
	if len(users) == 0 {
		return nil
	}
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	return errdefs.FailedPrecondition("image %s is mounted as an image volume by container(s) %s", imageID, strings.Join(ids, ", "))
}

// reconcileImageVolumes removes the views (snapshots and mounts) that no container record uses: left by a crash
// between a container's removal and its view's, or by a creation rolled back.
func (m *Manager) reconcileImageVolumes(ctx context.Context) {
	m.volMu.Lock()
	defer m.volMu.Unlock()
	stale := map[string]bool{}
	err := m.cfg.Snapshotter.Walk(ctx, func(_ context.Context, info snapshotter.Info) error {
		if id := info.Labels[LabelImageVolume]; id != "" && strings.HasPrefix(info.Key, imageVolumeKeyPrefix) {
			stale[id] = true
		}
		return nil
	})
	if err != nil {
		klog.ErrorS(err, "image volumes: walk snapshots")
	}
	entries, _ := os.ReadDir(m.imageVolumesDir())
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			// A temporary clone of MountAllIDMapped, left by a crash.
			_ = m.unmountView(filepath.Join(m.imageVolumesDir(), name))
			continue
		}
		hex, sb, perPod := strings.Cut(name, "@")
		id := "sha256:" + hex
		users := m.imageVolumeUsers(id, "")
		if perPod && len(users) > 0 && !slices.ContainsFunc(users, func(u *store.Container) bool { return u.SandboxID == sb }) {
			klog.InfoS("removing an image volume view of a pod none of whose containers uses it", "image", id, "podSandboxID", sb)
			if err := m.unmountView(filepath.Join(m.imageVolumesDir(), name)); err != nil {
				klog.ErrorS(err, "removing an unused image volume view", "image", id)
			}
		}
		stale[id] = true
	}
	for id := range stale {
		if len(m.imageVolumeUsers(id, "")) > 0 {
			continue
		}
		klog.InfoS("removing an image volume no container uses", "image", id)
		if err := m.removeImageVolume(ctx, id); err != nil {
			klog.ErrorS(err, "removing an unused image volume", "image", id)
		}
	}
}

// imageVolumeSource resolves the host path a container's image mount binds: the view's mount point, or
// sub below it. Symlinks in sub are followed inside the image only: one that leads out of it (absolute, or ..
// past its root) is refused, as is a sub path that does not exist.
func imageVolumeSource(i int, root, sub string) (string, error) {
	if sub == "" {
		return root, nil
	}
	dir, err := os.Open(root)
	if err != nil {
		return "", err
	}
	defer dir.Close()
	fd, err := unix.Openat2(int(dir.Fd()), sub, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return "", errdefs.NotFound("mounts[%d]: image_sub_path %q does not exist in the image", i, sub)
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP):
		return "", errdefs.InvalidArgument("mounts[%d]: image_sub_path %q leads out of the image (through a symlink)", i, sub)
	case err != nil:
		return "", fmt.Errorf("mounts[%d]: image_sub_path %q: %w", i, sub, err)
	}
	defer unix.Close(fd)
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", err
	}
	if real != root && !strings.HasPrefix(real, root+"/") {
		return "", errdefs.InvalidArgument("mounts[%d]: image_sub_path %q leads out of the image", i, sub)
	}
	return real, nil
}

// isMountPoint reports whether dir is the root of a mount (its device differs from its parent's, or it is a
// bind of the same filesystem: checked through mountinfo).
func isMountPoint(dir string) (bool, error) {
	var st, pst unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(dir), &pst); err != nil {
		return false, err
	}
	if st.Dev != pst.Dev {
		return true, nil
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true, nil
		}
	}
	return false, nil
}
