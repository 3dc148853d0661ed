//go:build linux

package nsutil

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// pinRoot prepares a temporary pin root and releases it when the test ends.
func pinRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "ns")
	if err := PrepareRoot(root); err != nil {
		t.Fatalf("PrepareRoot: %v", err)
	}
	t.Cleanup(func() {
		if err := ReleaseRoot(root); err != nil {
			t.Errorf("ReleaseRoot: %v", err)
		}
	})
	return root
}

func pinAll(t *testing.T, dir string) map[Type]string {
	t.Helper()
	pins, err := Pin(context.Background(), dir, []Type{Net, IPC, UTS})
	if err != nil {
		t.Fatalf("Pin: %v", err)
	}
	t.Cleanup(func() {
		if err := UnpinAll(pins); err != nil {
			t.Errorf("UnpinAll: %v", err)
		}
	})
	return pins
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	mps, err := mountPoints()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range mps {
		if strings.HasPrefix(m.path, dir+"/") {
			out = append(out, m.path)
		}
	}
	return out
}

func readSysctl(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestPinCreatesDistinctNamespaces(t *testing.T) {
	requireRoot(t)
	root := pinRoot(t)
	pins := pinAll(t, filepath.Join(root, "pod1"))
	for _, typ := range []Type{Net, IPC, UTS} {
		p := pins[typ]
		if p != filepath.Join(root, "pod1", string(typ)) {
			t.Errorf("pin path for %s = %q", typ, p)
		}
		host := inode(t, "/proc/self/ns/"+string(typ))
		if got := inode(t, p); got == host {
			t.Errorf("%s pin has the host's inode %d", typ, got)
		}
		// The calling thread must be back in the host namespaces.
		if got := inode(t, "/proc/thread-self/ns/"+string(typ)); got != host {
			t.Errorf("thread left in a foreign %s namespace", typ)
		}
	}
	// A second Pin of the same dir is refused and does not disturb the first.
	if _, err := Pin(context.Background(), filepath.Join(root, "pod1"), []Type{Net}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second Pin: want AlreadyExists, got %v", err)
	}
	if got := len(mountsUnder(t, filepath.Join(root, "pod1"))); got != 3 {
		t.Errorf("want 3 pin mounts, got %d", got)
	}
	// The pin root is unbindable.
	mps, _ := mountPoints()
	real, _ := filepath.EvalSymlinks(root)
	found := false
	for _, m := range mps {
		if m.path == real {
			found = true
			if !strings.Contains(m.propagation, "unbindable") {
				t.Errorf("pin root propagation %q, want unbindable", m.propagation)
			}
		}
	}
	if !found {
		t.Error("pin root is not a mount point")
	}
	// An rbind of the parent must skip the pins.
	dst := t.TempDir()
	parent := filepath.Dir(real)
	if err := unix.Mount(parent, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(dst, unix.MNT_DETACH)
	if got := mountsUnder(t, dst); len(got) != 0 {
		t.Errorf("rbind copied pin mounts: %v", got)
	}
}

func TestHostname(t *testing.T) {
	requireRoot(t)
	pins := pinAll(t, filepath.Join(pinRoot(t), "pod"))
	host, _ := os.Hostname()
	if err := SetHostname(pins[UTS], "pod-host-1"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := WithNS(pins[UTS], UTS, func() error {
		var err error
		got, err = os.Hostname()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got != "pod-host-1" {
		t.Errorf("hostname in pod = %q", got)
	}
	if h, _ := os.Hostname(); h != host {
		t.Errorf("host hostname changed to %q", h)
	}
	if err := SetHostname(pins[UTS], strings.Repeat("a", 65)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("long hostname: %v", err)
	}
}

func TestSysctls(t *testing.T) {
	requireRoot(t)
	pins := pinAll(t, filepath.Join(pinRoot(t), "pod"))
	hostFwd := readSysctl(t, "net.ipv4.ip_forward")
	hostPing := readSysctl(t, "net.ipv4.ping_group_range")
	hostShm := readSysctl(t, "kernel.shmmax")
	want := map[string]string{
		"net.ipv4.ip_forward":         "1",
		"net.ipv4.ping_group_range":   "0\t2147483647",
		"kernel.shmmax":               "123456789",
		"net/ipv4/conf/lo/forwarding": "1",
	}
	if hostFwd == "1" {
		want["net.ipv4.ip_forward"] = "0"
	}
	if err := ApplySysctls(pins, want); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	read := func(keys ...string) func() error {
		return func() error {
			for _, k := range keys {
				got[k] = readSysctl(t, k)
			}
			return nil
		}
	}
	if err := WithNetNS(pins[Net], read("net.ipv4.ip_forward", "net.ipv4.ping_group_range", "net.ipv4.conf.lo.forwarding")); err != nil {
		t.Fatal(err)
	}
	if err := WithNS(pins[IPC], IPC, read("kernel.shmmax")); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		k = strings.ReplaceAll(k, "/", ".")
		if got[k] != v {
			t.Errorf("%s in pod = %q, want %q", k, got[k], v)
		}
	}
	if h := readSysctl(t, "net.ipv4.ip_forward"); h != hostFwd {
		t.Errorf("host ip_forward changed: %q -> %q", hostFwd, h)
	}
	if h := readSysctl(t, "net.ipv4.ping_group_range"); h != hostPing {
		t.Errorf("host ping_group_range changed: %q -> %q", hostPing, h)
	}
	if h := readSysctl(t, "kernel.shmmax"); h != hostShm {
		t.Errorf("host shmmax changed: %q -> %q", hostShm, h)
	}
}

func TestSysctlValidation(t *testing.T) {
	for key, want := range map[string]Type{
		"net.ipv4.ip_forward":               Net,
		"net/ipv4/conf/eth0.100/forwarding": Net,
		"kernel.shmmax":                     IPC,
		"kernel.shm_rmid_forced":            IPC,
		"kernel.msgmnb":                     IPC,
		"kernel.sem":                        IPC,
		"fs.mqueue.msg_max":                 IPC,
	} {
		if got, err := SysctlNamespace(key); err != nil || got != want {
			t.Errorf("SysctlNamespace(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	for _, key := range []string{
		"kernel.hostname", "vm.swappiness", "kernel.sem_next_idx.x", "fs.file-max", "net",
		"net/../kernel/hostname", "net..ipv4", "/net/ipv4/ip_forward", "net/ipv4/../../vm/x",
		"net.ipv4.ip forward", "", "kernel.shmmax/..",
	} {
		_, err := SysctlNamespace(key)
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("SysctlNamespace(%q): want InvalidArgument, got %v", key, err)
		} else if key != "" && !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name the key", err)
		}
	}
	// Net sysctl without a private netns (host network pod).
	err := ValidateSysctls(map[Type]string{IPC: "/x"}, map[string]string{"net.ipv4.ip_forward": "1"})
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("net sysctl on host network: %v", err)
	}
	if err := ApplySysctls(map[Type]string{Net: "/x"}, map[string]string{"vm.swappiness": "1"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ApplySysctls non-namespaced: %v", err)
	}
}

func TestUnpinIdempotentAndNoMountLeft(t *testing.T) {
	requireRoot(t)
	root := pinRoot(t)
	dir := filepath.Join(root, "pod")
	pins, err := Pin(context.Background(), dir, []Type{Net, IPC, UTS})
	if err != nil {
		t.Fatal(err)
	}
	if err := UnpinAll(pins); err != nil {
		t.Fatal(err)
	}
	if err := UnpinAll(pins); err != nil {
		t.Errorf("second UnpinAll: %v", err)
	}
	if m := mountsUnder(t, dir); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	for _, p := range pins {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists: %v", p, err)
		}
	}
	if err := WithNetNS(pins[Net], func() error { return nil }); !errdefs.IsNotFound(err) {
		t.Errorf("WithNetNS on removed pin: %v", err)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestPinCyclesLeakNothing(t *testing.T) {
	requireRoot(t)
	root := pinRoot(t)
	// Only mounts below root: other processes on the machine mount and unmount elsewhere meanwhile.
	mountsBefore := mountsUnder(t, root)
	fdsBefore := countFDs(t)
	var durs []time.Duration
	for i := 0; i < 100; i++ {
		dir := filepath.Join(root, "cycle")
		start := time.Now()
		pins, err := Pin(context.Background(), dir, []Type{Net, IPC, UTS})
		durs = append(durs, time.Since(start))
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if err := SetHostname(pins[UTS], "h"); err != nil {
			t.Fatal(err)
		}
		if err := UnpinAll(pins); err != nil {
			t.Fatalf("cycle %d unpin: %v", i, err)
		}
	}
	if mountsAfter := mountsUnder(t, root); len(mountsAfter) != len(mountsBefore) {
		t.Errorf("mount count %d -> %d", len(mountsBefore), len(mountsAfter))
	}
	if fdsAfter := countFDs(t); fdsAfter > fdsBefore {
		t.Errorf("fd count %d -> %d", fdsBefore, fdsAfter)
	}
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	t.Logf("Pin(net+ipc+uts) p50=%v p90=%v max=%v", durs[50], durs[90], durs[99])
}

func TestPinErrors(t *testing.T) {
	if _, err := Pin(context.Background(), t.TempDir(), []Type{"mnt"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("mnt: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Pin(ctx, t.TempDir(), []Type{Net}); err == nil {
		t.Error("cancelled context accepted")
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/a\040b\134c\0`); got != `/a b\c\0` {
		t.Errorf("got %q", got)
	}
}
