//go:build linux

package podfiles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// shmMount returns the mountinfo line of the mount at dir, or "".
func shmMount(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[4] == dir {
			return l
		}
	}
	return ""
}

func TestShm(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := filepath.Join(t.TempDir(), "shm")
	if err := MountShm(dir, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = UnmountShm(dir) })
	line := shmMount(t, dir)
	for _, want := range []string{"nosuid", "nodev", "noexec", "- tmpfs shm", "size=65536k"} {
		if !strings.Contains(line, want) {
			t.Errorf("mount %q lacks %q", line, want)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil || st.Mode&0o7777 != 0o1777 {
		t.Errorf("mode %o %v", st.Mode&0o7777, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil || uint64(fs.Blocks)*uint64(fs.Bsize) != DefaultShmSize {
		t.Errorf("size %d %v", uint64(fs.Blocks)*uint64(fs.Bsize), err)
	}
	if err := UnmountShm(dir); err != nil {
		t.Fatal(err)
	}
	if l := shmMount(t, dir); l != "" {
		t.Errorf("still mounted: %s", l)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir left: %v", err)
	}
	if err := UnmountShm(dir); err != nil {
		t.Errorf("second UnmountShm: %v", err)
	}

	// Custom size.
	if err := MountShm(dir, 8<<20); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(shmMount(t, dir), "size=8192k") {
		t.Errorf("custom size: %s", shmMount(t, dir))
	}
	if err := UnmountShm(dir); err != nil {
		t.Fatal(err)
	}
}
