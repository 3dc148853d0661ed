package stats

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

// TestOpenFilesRereadAndFallBack checks that a reader keeping its files open reads what a fresh open reads: new
// content written in place, a file whose kept descriptor broke (as a removed cgroup's does) read again the plain
// way, and a removed cgroup reported NotFound.
func TestOpenFilesRereadAndFallBack(t *testing.T) {
	root := t.TempDir()
	p := "/noded/pod1/ctr"
	dir := filepath.Join(root, p)
	writeFiles(t, dir, map[string]string{"cpu.stat": "usage_usec 10\n", "memory.current": "100\n", "memory.stat": "anon 1\n", "memory.max": "max\n"})
	r := NewReader(root, true).WithOpenFiles(time.Minute, 0)
	defer r.Close()
	s, err := r.Read(p, WantCPUUsage|WantMemory)
	if err != nil || s.CPU.UsageNanos != 10_000 || s.Memory.Usage != 100 {
		t.Fatalf("first read %+v, %v", s, err)
	}
	if n := r.files.size(); n != 4 {
		t.Fatalf("%d files kept open, want 4", n)
	}
	// Rewritten in place (a cgroup file's content changes under the same descriptor).
	writeFiles(t, dir, map[string]string{"cpu.stat": "usage_usec 20\n", "memory.current": "200\n"})
	if s, err = r.Read(p, WantCPUUsage|WantMemory); err != nil || s.CPU.UsageNanos != 20_000 || s.Memory.Usage != 200 {
		t.Fatalf("reread %+v, %v", s, err)
	}
	// A kept descriptor that fails its read is dropped and the file read afresh.
	f := r.files.files[filepath.Join(dir, "cpu.stat")]
	unix.Close(f.fd)
	if s, err = r.Read(p, WantCPUUsage); err != nil || s.CPU.UsageNanos != 20_000 {
		t.Fatalf("after a broken descriptor %+v, %v", s, err)
	}
	if g := r.files.files[filepath.Join(dir, "cpu.stat")]; g == nil || g == f {
		t.Errorf("the broken descriptor was not replaced")
	}
	r.Close()
	if n := r.files.size(); n != 0 {
		t.Errorf("%d files open after Close", n)
	}
	// Read again after Close (files reopened), then the cgroup goes away.
	if _, err = r.Read(p, WantCPUUsage); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	// A regular file stays readable through its descriptor once unlinked (a cgroup's does not: ENODEV); close it
	// as a removed cgroup's read would fail, then check the fallback reports the cgroup missing.
	unix.Close(r.files.files[filepath.Join(dir, "cpu.stat")].fd)
	if _, err = r.Read(p, WantCPUUsage); !errdefs.IsNotFound(err) {
		t.Errorf("removed cgroup: %v, want NotFound", err)
	}
}

// TestOpenFilesBounded checks the limit on kept files and that files unread for the idle time are closed.
func TestOpenFilesBounded(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a": "1\n", "b": "2\n", "c": "3\n"})
	o := newOpenFiles(time.Hour, 2)
	defer o.closeAll()
	for _, n := range []string{"a", "b", "c"} {
		if s, err := o.read(filepath.Join(dir, n)); err != nil || s == "" {
			t.Fatalf("%s: %q %v", n, s, err)
		}
	}
	if o.size() != 2 {
		t.Errorf("%d kept, want the limit 2", o.size())
	}
	if s, err := o.read(filepath.Join(dir, "c")); err != nil || s != "3\n" {
		t.Errorf("c past the limit: %q %v", s, err)
	}
	// Everything idle: the next read (once the sweep interval passed) closes the idle files.
	for _, f := range o.files {
		f.lastUse.Store(time.Now().Add(-2 * time.Hour).UnixNano())
	}
	o.swept.Store(time.Now().Add(-time.Hour).UnixNano())
	if _, err := o.read(filepath.Join(dir, "c")); err != nil {
		t.Fatal(err)
	}
	if o.size() != 0 {
		t.Errorf("after the sweep %d kept, want 0", o.size())
	}
	r := &Reader{files: o}
	if _, err := o.read(filepath.Join(dir, "a")); err != nil || o.size() != 1 {
		t.Fatalf("a not kept: %d, %v", o.size(), err)
	}
	r.CloseIdle() // within the sweep interval: nothing closed
	if o.size() != 1 {
		t.Errorf("CloseIdle within the interval closed a file in use")
	}
	o.files[filepath.Join(dir, "a")].lastUse.Store(time.Now().Add(-2 * time.Hour).UnixNano())
	o.swept.Store(time.Now().Add(-time.Hour).UnixNano())
	r.CloseIdle()
	if o.size() != 0 {
		t.Errorf("CloseIdle left %d idle files open", o.size())
	}
	if _, err := o.read(filepath.Join(dir, "c")); err != nil || o.size() != 1 {
		t.Errorf("c not kept once there is room: %d kept, %v", o.size(), err)
	}
}

// TestReadV1CPUUsageOnly checks that WantCPUUsage reads cpuacct.usage without cpuacct.stat.
func TestReadV1CPUUsageOnly(t *testing.T) {
	root := t.TempDir()
	p := "/noded/pod1/ctr"
	writeFiles(t, filepath.Join(root, "cpuacct", p), map[string]string{"cpuacct.usage": "42\n", "cpuacct.stat": "user 7\nsystem 3\n"})
	r := NewReader(root, false).WithOpenFiles(time.Minute, 0)
	defer r.Close()
	s, err := r.Read(p, WantCPUUsage)
	if err != nil || s.CPU != (CPU{UsageNanos: 42}) {
		t.Fatalf("%+v, %v", s, err)
	}
	if _, ok := r.files.files[filepath.Join(root, "cpuacct", p, "cpuacct.stat")]; ok || r.files.size() != 1 {
		t.Errorf("cpuacct.stat was read")
	}
	if s, err = r.Read(p, WantCPU); err != nil || s.CPU.UserNanos == 0 {
		t.Errorf("WantCPU: %+v, %v", s, err)
	}
	if _, err := r.Read("/noded/gone", WantCPUUsage); !errdefs.IsNotFound(err) {
		t.Errorf("missing cgroup: %v", err)
	}
}
