package snapshotter

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// testUserns starts a process in a new user namespace mapping 0-65535 to 100000-165535 and returns the
// namespace's path; the process is killed when the test ends.
func testUserns(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	maps := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: maps, GidMappings: maps}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "ns", "user")
}

func ownerOf(t *testing.T, path string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid
}

func TestMountAllIDMapped(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	userns := testUserns(t)
	for _, tc := range []struct {
		name   string
		mounts func(base string) []Mount
	}{
		{"overlay absolute", func(base string) []Mount {
			return []Mount{{Type: "overlay", Source: "overlay", Options: []string{
				"lowerdir=" + filepath.Join(base, "snaps/1/fs"), "upperdir=" + filepath.Join(base, "snaps/2/fs"),
				"workdir=" + filepath.Join(base, "snaps/2/work")}}}
		}},
		{"overlay relative", func(base string) []Mount {
			return []Mount{{Type: "overlay", Source: "overlay", Dir: filepath.Join(base, "snaps"),
				Options: []string{"lowerdir=1/fs", "upperdir=2/fs", "workdir=2/work"}}}
		}},
		{"bind", func(base string) []Mount {
			return []Mount{{Type: "bind", Source: filepath.Join(base, "snaps/1/fs"), Options: []string{"rbind", "rw"}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			for _, d := range []string{"snaps/1/fs", "snaps/2/fs", "snaps/2/work", "bundle/rootfs"} {
				if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			lower := filepath.Join(base, "snaps/1/fs")
			if err := os.WriteFile(filepath.Join(lower, "root-file"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(lower, "user-file"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(filepath.Join(lower, "user-file"), 1000, 1000); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(base, "bundle/rootfs")
			if err := MountAllIDMapped(tc.mounts(base), target, IDMapping{Userns: userns, RootUID: 100000, RootGID: 100000}); err != nil {
				t.Fatalf("MountAllIDMapped: %v", err)
			}
			defer func() {
				if err := UnmountAll(target); err != nil {
					t.Error(err)
				}
			}()
			if got := ownerOf(t, filepath.Join(target, "root-file")); got != 100000 {
				t.Errorf("root-owned file appears owned by %d, want 100000", got)
			}
			if got := ownerOf(t, filepath.Join(target, "user-file")); got != 101000 {
				t.Errorf("uid 1000 file appears owned by %d, want 101000", got)
			}
			// The top directory belongs to the namespace's root.
			if got := ownerOf(t, target); got != 100000 {
				t.Errorf("rootfs top appears owned by %d, want 100000", got)
			}
			// The host's root is not mapped: it cannot create files through an ID-mapped bind mount.
			if err := os.WriteFile(filepath.Join(target, "new"), nil, 0o644); err == nil && tc.name == "bind" {
				t.Error("host root (unmapped in the user namespace) could create a file on the ID-mapped mount")
			}
			if err := os.Chown(filepath.Join(target, "root-file"), 100005, 100005); err != nil {
				t.Fatalf("chown through the mapping: %v", err)
			}
			// A bind mount maps back to disk; an overlay copies up into its (unmapped) upper layer. The shared
			// lower layer never changes.
			disk, want := lower, uint32(5)
			if tc.name != "bind" {
				disk, want = filepath.Join(base, "snaps/2/fs"), 100005
				if got := ownerOf(t, filepath.Join(lower, "root-file")); got != 0 {
					t.Errorf("lower layer file owner changed to %d", got)
				}
			}
			if got := ownerOf(t, filepath.Join(disk, "root-file")); got != want {
				t.Errorf("on disk the chowned file is owned by %d, want %d", got, want)
			}
			if ents, _ := filepath.Glob(filepath.Join(base, "bundle/.idmap-*")); len(ents) != 0 {
				t.Errorf("temporary clone dirs left: %v", ents)
			}
		})
	}
}

func TestCommonDir(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"/a/s/1/fs", "/a/s/2/fs", "/a/s/2/work"}, "/a/s"},
		{[]string{"/a/s/1/fs"}, "/a/s/1"},
		{[]string{"/a/b", "/c/d"}, "/"},
		{[]string{"/a/s10/fs", "/a/s1/fs"}, "/a"},
	} {
		if got := commonDir(tc.in); got != tc.want {
			t.Errorf("commonDir(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
