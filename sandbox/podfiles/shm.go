//go:build linux

package podfiles

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// DefaultShmSize is the size of a pod's /dev/shm when none is requested (64 MiB, as Docker and containerd use).
const DefaultShmSize = 64 << 20

// MountShm creates dir if needed and mounts a tmpfs for the pod's /dev/shm on it: mode 1777, nosuid, nodev,
// noexec, size sizeBytes (DefaultShmSize when <= 0). Containers bind-mount dir as /dev/shm. Undo with UnmountShm.
func MountShm(dir string, sizeBytes int64) error {
	if sizeBytes <= 0 {
		sizeBytes = DefaultShmSize
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create shm dir: %w", err)
	}
	data := fmt.Sprintf("mode=1777,size=%d", sizeBytes)
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, data); err != nil {
		return fmt.Errorf("mount shm tmpfs on %s: %w", dir, err)
	}
	return nil
}

// UnmountShm lazily unmounts the tmpfs at dir (every mount stacked there) and removes the directory. Idempotent:
// a missing or unmounted dir is not an error.
func UnmountShm(dir string) error {
	for {
		err := unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		if err == nil {
			continue // peel stacked mounts, if any
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break
		}
		return fmt.Errorf("unmount shm %s: %w", dir, err)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove shm dir %s: %w", dir, err)
	}
	return nil
}
