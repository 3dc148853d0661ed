package stats

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestReadHostCgroup creates a real cgroup on this host, runs a process in it that fills 32 MiB of tmpfs and
// burns CPU, and checks that the counters read grow.
func TestReadHostCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	r := Detect()
	var b [4]byte
	_, _ = rand.Read(b[:])
	cg := "/noded-test-stats-" + hex.EncodeToString(b[:])
	var dirs []string
	if r.V2() {
		dirs = []string{filepath.Join(r.Root(), cg)}
	} else {
		for _, c := range []string{r.cpuacct, r.memory, r.pids} {
			if c == "" {
				t.Skip("cpuacct, memory or pids v1 controller not mounted")
			}
			dirs = append(dirs, filepath.Join(r.Root(), c, cg))
		}
	}
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("create cgroup: %v", err)
		}
		t.Cleanup(func() { removeCgroup(t, d) })
	}
	shm := filepath.Join(t.TempDir(), "unused")
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		shm = fmt.Sprintf("/dev/shm/noded-test-stats-%x", b)
	}
	t.Cleanup(func() { _ = os.Remove(shm) })

	// The child waits for a line on stdin, so it joins the cgroup before it allocates or spins.
	cmd := exec.Command("/bin/sh", "-c",
		`read go; dd if=/dev/zero of="$1" bs=1M count=32 2>/dev/null; echo ready; while :; do :; done`, "sh", shm)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatalf("move child into %s: %v", d, err)
		}
	}
	before, err := r.Read(cg, WantAll)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := stdout.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("child not ready: %q, %v", buf, err)
	}
	time.Sleep(300 * time.Millisecond)
	after, err := r.Read(cg, WantAll)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before %+v", before)
	t.Logf("after  %+v", after)
	if d := after.CPU.UsageNanos - before.CPU.UsageNanos; after.CPU.UsageNanos <= before.CPU.UsageNanos || d < uint64(50*time.Millisecond) {
		t.Errorf("cpu usage grew by %v, want ≥ 50ms", time.Duration(d))
	}
	if after.CPU.UserNanos+after.CPU.SystemNanos == 0 {
		t.Error("user+system time is 0")
	}
	const mib = 1 << 20
	if after.Memory.Usage < 32*mib || after.Memory.WorkingSet < 30*mib {
		t.Errorf("memory usage %d, working set %d; want ≥ 32 MiB of tmpfs charged", after.Memory.Usage, after.Memory.WorkingSet)
	}
	if after.Memory.PageFaults <= before.Memory.PageFaults {
		t.Errorf("page faults did not grow: %d → %d", before.Memory.PageFaults, after.Memory.PageFaults)
	}
	if after.Pids.Current < 1 {
		t.Errorf("pids.current = %d", after.Pids.Current)
	}
	if !after.Time.After(before.Time) {
		t.Error("timestamps do not advance")
	}
}

// removeCgroup kills what is left in the cgroup (only our child can be there) and removes it.
func removeCgroup(t *testing.T, dir string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("remove cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkReadHost samples the host's own cgroup of this process for CPU and memory (what container stats need).
func BenchmarkReadHost(b *testing.B) {
	r := Detect()
	for i := 0; i < b.N; i++ {
		if _, err := r.Read("/", WantCPU|WantMemory); err != nil {
			b.Fatal(err)
		}
	}
}
