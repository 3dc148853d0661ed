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
// top layer, mounted at <StateDir>/image-volumes/<image ID hex>. Each container bind-mounts it (or its
// image_sub_path) read-only. The users of a view are the container records whose ImageVolumes list the image; the
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

// acquireImageVolume makes sure the shared view of img is mounted and returns its mount point. The caller's
// container record must already list img.ID in ImageVolumes, so that a concurrent release keeps the view.
func (m *Manager) acquireImageVolume(ctx context.Context, img Image) (string, error) {
	m.volMu.Lock()
	defer m.volMu.Unlock()
	key := imageVolumeKeyPrefix + imageHex(img.ID)
	dir := filepath.Join(m.imageVolumesDir(), imageHex(img.ID))
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
	if err := snapshotter.MountAll(mounts, dir); err != nil {
		return "", fmt.Errorf("image volume %s: mount view: %w", img.ID, err)
	}
	return dir, nil
}

// releaseImageVolumes drops container c's use of its image volumes: a view no other container record uses is
// unmounted and its snapshot removed.
func (m *Manager) releaseImageVolumes(ctx context.Context, c *store.Container) error {
	if len(c.ImageVolumes) == 0 {
		return nil
	}
	m.volMu.Lock()
	defer m.volMu.Unlock()
	var errs []error
	for _, id := range c.ImageVolumes {
		if len(m.imageVolumeUsers(id, c.ID)) > 0 {
			continue
		}
		if err := m.removeImageVolume(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeImageVolume unmounts the view of image id and removes its snapshot and mount point. volMu is held.
func (m *Manager) removeImageVolume(ctx context.Context, id string) error {
	dir := filepath.Join(m.imageVolumesDir(), imageHex(id))
	if err := snapshotter.UnmountAll(dir); err != nil {
		return fmt.Errorf("image volume %s: %w", id, err)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("image volume %s: %w", id, err)
	}
	if err := m.cfg.Snapshotter.Remove(ctx, imageVolumeKeyPrefix+imageHex(id)); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("image volume %s: remove view snapshot: %w", id, err)
	}
	return nil
}

// imageVolumeUsers returns the IDs of the containers (except except) that mount image id as a volume.
func (m *Manager) imageVolumeUsers(id, except string) []string {
	var users []string
	for _, c := range m.cfg.Store.ContainerRecords("") {
		if c.ID != except && slices.Contains(c.ImageVolumes, id) {
			users = append(users, c.ID)
		}
	}
	return users
}

// ImageInUse fails with FailedPrecondition while a container mounts the image (its ID) as an image volume, for
// RemoveImage: the image stays until those containers are removed.
func (m *Manager) ImageInUse(imageID string) error {
	m.volMu.Lock()
	defer m.volMu.Unlock()
	if users := m.imageVolumeUsers(imageID, ""); len(users) > 0 {
		return errdefs.FailedPrecondition("image %s is mounted as an image volume by container(s) %s", imageID, strings.Join(users, ", "))
	}
	return nil
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
		stale["sha256:"+e.Name()] = true
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
