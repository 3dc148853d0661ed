package snapshotter

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseOptions(t *testing.T) {
	flags, prop, data := parseOptions([]string{"rbind", "ro", "nosuid", "rw", "rprivate", "lowerdir=a:b", "index=off"})
	if flags != unix.MS_BIND|unix.MS_REC|unix.MS_NOSUID || prop != unix.MS_PRIVATE|unix.MS_REC || data != "lowerdir=a:b,index=off" {
		t.Errorf("parseOptions = %#x, %#x, %q", flags, prop, data)
	}
}

func TestMountAllRelativeDirAndUnmountAll(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	base := t.TempDir()
	for _, d := range []string{"l1", "l2", "up", "work", "target"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "l1", "f"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	cwd, _ := os.Getwd()
	target := filepath.Join(base, "target")
	t.Cleanup(func() { _ = UnmountAll(target) })
	mounts := []Mount{
		{Type: "overlay", Source: "overlay", Dir: base, Options: []string{"lowerdir=l2:l1", "upperdir=up", "workdir=work"}},
		{Type: "bind", Source: filepath.Join(base, "l1"), Options: []string{"ro"}}, // stacked on top
	}
	if err := MountAll(mounts, target); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.Getwd(); now != cwd {
		t.Errorf("working directory changed to %s", now)
	}
	if err := os.WriteFile(filepath.Join(target, "x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write to ro bind: %v, want EROFS", err)
	}
	if err := UnmountAll(target); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(target, 0); !errors.Is(err, unix.EINVAL) {
		t.Errorf("target still mounted after UnmountAll: %v", err)
	}
	// A failing mount undoes the earlier ones.
	bad := append(mounts[:1:1], Mount{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/nonexistent"}})
	if err := MountAll(bad, target); err == nil {
		t.Fatal("MountAll with a bad mount succeeded")
	}
	if err := unix.Unmount(target, 0); !errors.Is(err, unix.EINVAL) {
		t.Errorf("failed MountAll left a mount: %v", err)
	}
	if err := UnmountAll(filepath.Join(base, "missing")); err != nil {
		t.Errorf("UnmountAll of a missing path: %v", err)
	}
}
