package stats

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/noded/noded/errdefs"
)

// OOMKills returns how many processes of the cgroup at path (or its descendants) the kernel's OOM killer killed
// because the cgroup hit its memory limit: oom_kill of memory.events (v2) or of memory.oom_control (v1). A
// cgroup that does not exist gives a NotFound error.
func (r *Reader) OOMKills(path string) (uint64, error) {
	if !filepath.IsAbs(path) || strings.Contains(path, "..") {
		return 0, errdefs.InvalidArgument("cgroup path %q must be absolute and clean", path)
	}
	var dir, file string
	if r.v2 {
		dir = filepath.Join(r.root, path)
		file = "memory.events"
	} else {
		if r.memory == "" {
			return 0, errdefs.NotFound("no memory cgroup is mounted below %s", r.root)
		}
		dir = filepath.Join(r.root, r.memory, path)
		file = "memory.oom_control"
	}
	if _, err := os.Stat(dir); err != nil {
		return 0, notFound(dir, err)
	}
	var kills uint64
	found := false
	if err := r.eachKV(filepath.Join(dir, file), func(k string, v uint64) {
		if k == "oom_kill" {
			kills, found = v, true
		}
	}); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, notFound(dir, err)
		}
		return 0, err
	}
	if !found {
		// The memory controller is not enabled for the cgroup (v2), or the kernel predates the counter.
		if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
			return 0, notFound(filepath.Join(dir, file), err)
		}
		return 0, fmt.Errorf("%s has no oom_kill counter", filepath.Join(dir, file))
	}
	return kills, nil
}
