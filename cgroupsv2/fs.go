package cgroupsv2

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/errdefs"
)

// FS is the host's cgroup filesystems below a root: one cgroup2 mount (pure v2), or one mount per v1 controller
// (and possibly a cgroup2 mount beside them, hybrid).
type FS struct {
	root string
}

// NewFS returns the cgroup filesystems mounted at root (usually /sys/fs/cgroup).
func NewFS(root string) *FS { return &FS{root: root} }

// hierarchies lists the directories that hold a copy of every cgroup path: root itself when it is a cgroup2
// mount, else each cgroup mount directly below it.
func (f *FS) hierarchies() []string {
	if cgstats.IsUnified(f.root) {
		return []string{f.root}
	}
	entries, _ := os.ReadDir(f.root)
	var out []string
	for _, e := range entries {
		p := filepath.Join(f.root, e.Name())
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Exists reports the hierarchies in which the cgroup at dir (a hierarchy path) exists.
func (f *FS) Exists(dir string) []string {
	var out []string
	for _, h := range f.hierarchies() {
		if _, err := os.Stat(filepath.Join(h, dir, "cgroup.procs")); err == nil {
			out = append(out, filepath.Join(h, dir))
		}
	}
	return out
}

// Remove removes the leaf cgroup at dir (a hierarchy path) from every hierarchy. A cgroup that still holds
// processes is not removed (FailedPrecondition); one that does not exist is success.
func (f *FS) Remove(dir string) error {
	if !strings.HasPrefix(dir, "/") || dir == "/" || strings.Contains(dir, "..") {
		return errdefs.InvalidArgument("refusing to remove cgroup %q", dir)
	}
	var errs []error
	for _, p := range f.Exists(dir) {
		if procs, err := os.ReadFile(filepath.Join(p, "cgroup.procs")); err == nil && len(strings.TrimSpace(string(procs))) > 0 {
			errs = append(errs, errdefs.FailedPrecondition("cgroup %s still has processes", p))
			continue
		}
		if err := rmdir(p); err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// rmdir removes a cgroup directory, retrying briefly while exiting tasks still pin it (EBUSY).
func rmdir(p string) error {
	var err error
	for i := 0; i < 20; i++ {
		err = unix.Rmdir(p)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}
