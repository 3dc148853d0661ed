package ociruntime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Test-only fixtures: a busybox rootfs and a minimal config.json. The real spec generator
// lives elsewhere; this one only covers what these tests need.

const testRunc = "/usr/local/sbin/runc"

// testCgroupBase is this test process's own cgroup parent, so a leftover of another run cannot fail this one.
var testCgroupBase = fmt.Sprintf("noded-test-rt-%d", os.Getpid())

var (
	rootfsOnce sync.Once
	rootfsDir  string
	rootfsErr  error
)

// requireRuntime skips unless the test can run real containers.
func requireRuntime(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, p := range []string{testRunc, DefaultConmonPath, "/bin/busybox"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s", p)
		}
	}
}

// testRootfs builds (once per test binary) a read-only-usable rootfs holding the host's
// dynamic busybox, its libraries per ldd, and applet symlinks.
func testRootfs(t *testing.T) string {
	t.Helper()
	rootfsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "noded-ocirt-rootfs-")
		if err != nil {
			rootfsErr = err
			return
		}
		rootfsDir = dir
		rootfsErr = buildRootfs(dir)
	})
	if rootfsErr != nil {
		t.Fatalf("build rootfs: %v", rootfsErr)
	}
	return rootfsDir
}

func buildRootfs(dir string) error {
	for _, d := range []string{"bin", "proc", "dev", "tmp", "sys", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := copyFile("/bin/busybox", filepath.Join(dir, "bin/busybox"), 0o755); err != nil {
		return err
	}
	out, err := exec.Command("ldd", "/bin/busybox").Output()
	if err != nil {
		return fmt.Errorf("ldd: %w", err)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
		var lib string
		for f := range strings.FieldsSeq(line) {
			if strings.HasPrefix(f, "/") {
				lib = f
				break
			}
		}
		if lib == "" {
			continue
		}
		if err := copyFile(lib, filepath.Join(dir, lib), 0o755); err != nil {
			return err
		}
	}
	for _, applet := range []string{"sh", "echo", "sleep", "cat", "true", "head", "tr", "tail", "printf", "seq"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src) // follows symlinks: the file content is what matters
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

type specOpt func(*specs.Spec)

func withHostPID(s *specs.Spec) {
	var ns []specs.LinuxNamespace
	for _, n := range s.Linux.Namespaces {
		if n.Type != specs.PIDNamespace {
			ns = append(ns, n)
		}
	}
	s.Linux.Namespaces = ns
}

func withMemoryLimit(bytes int64) specOpt {
	return func(s *specs.Spec) {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &bytes, Swap: &bytes}
	}
}

// writeBundle creates <tmp>/<id>/config.json running `sh -c script`.
func writeBundle(t *testing.T, id, script string, opts ...specOpt) string {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), id)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	caps := []string{"CAP_KILL", "CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"}
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: testRootfs(t), Readonly: true},
		Process: &specs.Process{
			Args: []string{"/bin/sh", "-c", script},
			Env:  []string{"PATH=/bin"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: true,
		},
		Hostname: id[:min(len(id), 12)],
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "size=65536k"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: "/" + testCgroupBase + "/" + id,
			Resources:   &specs.LinuxResources{},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace},
			},
		},
	}
	for _, o := range opts {
		o(s)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return bundle
}

// newTestCLI makes a runtime whose directories live in a temp dir, and registers cleanup of
// the test cgroup parents.
func newTestCLI(t *testing.T) *CLI {
	t.Helper()
	requireRuntime(t)
	base := t.TempDir()
	r, err := New(Config{
		Name: "runc", Path: testRunc,
		Root:        filepath.Join(base, "runc"),
		ExitDir:     filepath.Join(base, "exits"),
		PersistRoot: filepath.Join(base, "persist"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroupParents(t) })
	return r
}

// cgroupDirs lists /sys/fs/cgroup/*/noded-test-rt[/id] that exist.
func cgroupDirs(id string) []string {
	pattern := filepath.Join("/sys/fs/cgroup", "*", testCgroupBase)
	if id != "" {
		pattern = filepath.Join(pattern, id)
	}
	m, _ := filepath.Glob(pattern)
	return m
}

func removeCgroupParents(t *testing.T) {
	for _, d := range cgroupDirs("") {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove cgroup parent %s: %v", d, err)
		}
	}
}

// createContainer creates a container and registers its forced deletion.
func createContainer(t *testing.T, r *CLI, o CreateOpts) int {
	t.Helper()
	pid, err := r.Create(context.Background(), o)
	if err != nil {
		t.Fatalf("create %s: %v", o.ID, err)
	}
	t.Cleanup(func() {
		if err := r.Delete(context.Background(), o.ID, true); err != nil {
			t.Errorf("cleanup delete %s: %v", o.ID, err)
		}
		if left := cgroupDirs(o.ID); len(left) > 0 {
			t.Errorf("cgroups left after delete: %v", left)
		}
	})
	return pid
}

func newWatcher(t *testing.T, r *CLI) *Watcher {
	t.Helper()
	w, err := NewWatcher(r.cfg.ExitDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// waitExit waits for id's exit event.
func waitExit(t *testing.T, w *Watcher, id string, timeout time.Duration) ExitEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watcher closed: %v", w.Err())
			}
			if ev.ID == id {
				return ev
			}
		case <-deadline:
			t.Fatalf("no exit event for %s within %s", id, timeout)
		}
	}
}

type logLine struct {
	ts      time.Time
	stream  string
	tag     string
	content string
}

// readCRILog parses a CRI log file, failing on any malformed line.
func readCRILog(t *testing.T, path string) []logLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) < 3 {
			t.Fatalf("malformed CRI log line %q", sc.Text())
		}
		ts, err := time.Parse(time.RFC3339Nano, parts[0])
		if err != nil {
			t.Fatalf("bad timestamp in %q: %v", sc.Text(), err)
		}
		if parts[1] != "stdout" && parts[1] != "stderr" {
			t.Fatalf("bad stream in %q", sc.Text())
		}
		if parts[2] != "P" && parts[2] != "F" {
			t.Fatalf("bad tag in %q", sc.Text())
		}
		l := logLine{ts: ts, stream: parts[1], tag: parts[2]}
		if len(parts) == 4 {
			l.content = parts[3]
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// cgroupProcs lists the PIDs in the container's pids cgroup.
func cgroupProcs(t *testing.T, id string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", testCgroupBase, id, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

// procStatusField reads a field (e.g. "VmRSS", "PPid") of /proc/<pid>/status.
func procStatusField(pid int, field string) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// alive reports whether pid exists and is not a zombie waiting for its (foreign) parent.
func alive(pid int) bool {
	st := procStatusField(pid, "State")
	return st != "" && !strings.HasPrefix(st, "Z")
}
