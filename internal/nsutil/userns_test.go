//go:build linux

package nsutil

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMain lets the test binary serve as the user namespace holder PinUserns runs.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == HoldCommand {
		os.Exit(Hold())
	}
	os.Exit(m.Run())
}

// ownerInode returns the inode of the user namespace that owns the namespace at path.
func ownerInode(t *testing.T, path string) uint64 {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	owner, err := unix.IoctlRetInt(fd, unix.NS_GET_USERNS)
	if err != nil {
		t.Fatalf("NS_GET_USERNS %s: %v", path, err)
	}
	defer unix.Close(owner)
	var st unix.Stat_t
	if err := unix.Fstat(owner, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestPinUserns(t *testing.T) {
	requireRoot(t)
	dir := filepath.Join(pinRoot(t), "pod")
	maps := []IDMap{{ContainerID: 0, HostID: 200000, Size: 65536}}
	pins, err := PinUserns(context.Background(), dir, []Type{Net, IPC, UTS}, maps, maps)
	if err != nil {
		t.Fatalf("PinUserns: %v", err)
	}
	defer func() {
		if err := UnpinAll(pins); err != nil {
			t.Errorf("UnpinAll: %v", err)
		}
		if m := mountsUnder(t, dir); len(m) != 0 {
			t.Errorf("mounts left after UnpinAll: %v", m)
		}
	}()
	if len(pins) != 4 {
		t.Fatalf("pins = %v, want user, net, ipc, uts", pins)
	}
	userIno := inode(t, pins[User])
	if userIno == inode(t, "/proc/self/ns/user") {
		t.Fatal("pinned user namespace is the host's")
	}
	for _, typ := range []Type{Net, IPC, UTS} {
		if inode(t, pins[typ]) == inode(t, "/proc/self/ns/"+string(typ)) {
			t.Errorf("%s namespace is the host's", typ)
		}
		if got := ownerInode(t, pins[typ]); got != userIno {
			t.Errorf("%s namespace is owned by user namespace %d, want the pinned %d", typ, got, userIno)
		}
	}
	// The mappings and setgroups as a process joining the namespace sees them.
	for file, want := range map[string]string{"uid_map": "0 200000 65536", "gid_map": "0 200000 65536", "setgroups": "allow"} {
		out, err := exec.Command("nsenter", "--user="+pins[User], "cat", "/proc/self/"+file).CombinedOutput()
		if err != nil {
			t.Fatalf("nsenter cat %s: %v: %s", file, err, out)
		}
		if got := strings.Join(strings.Fields(string(out)), " "); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	// The hostname can be set in the UTS namespace the user namespace owns.
	if err := SetHostname(pins[UTS], "userns-pod"); err != nil {
		t.Fatalf("SetHostname: %v", err)
	}
}

func TestPinUsernsErrors(t *testing.T) {
	requireRoot(t)
	root := pinRoot(t)
	maps := []IDMap{{ContainerID: 0, HostID: 200000, Size: 65536}}
	if _, err := PinUserns(context.Background(), filepath.Join(root, "a"), []Type{Net}, nil, maps); err == nil {
		t.Error("PinUserns without uid mappings succeeded")
	}
	if _, err := PinUserns(context.Background(), filepath.Join(root, "b"), []Type{Net, User}, maps, maps); err == nil {
		t.Error("PinUserns with User among the owned types succeeded")
	}
	// A mapping the kernel refuses (overlapping ranges) fails and leaves no pin behind.
	bad := []IDMap{{ContainerID: 0, HostID: 200000, Size: 10}, {ContainerID: 5, HostID: 300000, Size: 10}}
	dir := filepath.Join(root, "c")
	if _, err := PinUserns(context.Background(), dir, []Type{Net}, bad, maps); err == nil {
		t.Fatal("PinUserns with overlapping mappings succeeded")
	}
	if m := mountsUnder(t, dir); len(m) != 0 {
		t.Errorf("mounts left after a failed PinUserns: %v", m)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("pin files left after a failed PinUserns: %v", ents)
	}
}
