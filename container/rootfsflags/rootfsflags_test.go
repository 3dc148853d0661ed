package rootfsflags

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRemountFlagsDropOnlyNosuidNodev(t *testing.T) {
	got := RemountFlags(unix.ST_RDONLY | unix.ST_NOSUID | unix.ST_NODEV | unix.ST_NOEXEC | unix.ST_RELATIME)
	want := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOEXEC | unix.MS_RELATIME)
	if got != want {
		t.Fatalf("flags %#x, want %#x", got, want)
	}
	if got := RemountFlags(unix.ST_NOSUID | unix.ST_NODEV); got&(unix.MS_NOSUID|unix.MS_NODEV) != 0 {
		t.Fatalf("flags %#x keep nosuid/nodev", got)
	}
}

// nsChild starts a shell in a mount namespace of its own. With pivot, it binds the nosuid,nodev tmpfs root onto
// itself and pivots into it, as a runtime's create leaves a container's init; it then waits on its stdin.
func nsChild(t *testing.T, root string, pivot bool) int {
	t.Helper()
	script := `echo ready && read x`
	if pivot {
		script = `mount --bind "$0" "$0" && cd "$0" && pivot_root . old && echo ready && read x || echo failed`
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, root)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return cmd.Process.Pid
}

// rootMountOptions returns the per-mount options of the mount at "/" in process pid's view.
func rootMountOptions(t *testing.T, pid int, path string) []string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	var opts []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[4] == path {
			opts = strings.Split(f[5], ",") // the last mount on the path is the visible one
		}
	}
	if opts == nil {
		t.Fatalf("no mount at %s in /proc/%d/mountinfo", path, pid)
	}
	return opts
}

func has(opts []string, o string) bool {
	for _, x := range opts {
		if x == o {
			return true
		}
	}
	return false
}

func nosuidTmpfs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) not installed")
	}
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	return root
}

// TestAllowSetuidInClearsOnlyTheContainersView: the container's root loses nosuid and nodev (and keeps ro); the
// host-side mount keeps both.
func TestAllowSetuidInClearsOnlyTheContainersView(t *testing.T) {
	root := nosuidTmpfs(t)
	if err := os.Mkdir(filepath.Join(root, "old"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("", root, "", unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_RDONLY, "size=1m"); err != nil {
		t.Fatal(err)
	}
	pid := nsChild(t, root, true)
	if opts := rootMountOptions(t, pid, "/"); !has(opts, "nosuid") || !has(opts, "nodev") {
		t.Fatalf("before: the child's root is %v, want nosuid,nodev", opts)
	}
	if err := AllowSetuidIn(pid, root); err != nil {
		t.Fatal(err)
	}
	if opts := rootMountOptions(t, pid, "/"); has(opts, "nosuid") || has(opts, "nodev") || !has(opts, "ro") {
		t.Errorf("after: the child's root is %v, want ro without nosuid,nodev", opts)
	}
	if opts := rootMountOptions(t, os.Getpid(), root); !has(opts, "nosuid") || !has(opts, "nodev") {
		t.Errorf("the host-side mount is %v, want nosuid,nodev", opts)
	}
}

// TestAllowSetuidInRefusesAnotherRoot: a namespace whose root is not the container's rootfs is left alone.
func TestAllowSetuidInRefusesAnotherRoot(t *testing.T) {
	root := nosuidTmpfs(t)
	pid := nsChild(t, root, false)
	before := rootMountOptions(t, pid, "/")
	if err := AllowSetuidIn(pid, root); err == nil || !strings.Contains(err.Error(), "is not its rootfs") {
		t.Fatalf("AllowSetuidIn into a namespace rooted elsewhere: %v, want a refusal", err)
	}
	if after := rootMountOptions(t, pid, "/"); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("root of the other namespace changed: %v -> %v", before, after)
	}
	if err := AllowSetuidIn(1<<22+12345, root); err == nil {
		t.Error("AllowSetuidIn for a missing process: no error")
	}
}
