package stats

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/noded/noded/errdefs"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadV2(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, filepath.Join(root, "kubepods.slice", "pod1"), map[string]string{
		"cpu.stat":            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n",
		"memory.current":      "10485760\n",
		"memory.stat":         "anon 4096000\nfile 6000000\nkernel 12\ninactive_file 2485760\nactive_file 10\npgfault 77\npgmajfault 3\n",
		"memory.max":          "20971520\n",
		"memory.swap.current": "4096\n",
		"memory.swap.max":     "max\n",
		"pids.current":        "7\n",
		"pids.max":            "max\n",
		"io.stat":             "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n",
	})
	r := NewReader(root, true)
	s, err := r.Read("/kubepods.slice/pod1", WantAll)
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU != (CPU{UsageNanos: 1_500_000, UserNanos: 1_000_000, SystemNanos: 500_000}) {
		t.Errorf("cpu = %+v", s.CPU)
	}
	wantMem := Memory{Usage: 10485760, WorkingSet: 8000000, RSS: 4096000, Cache: 6000000, InactiveFile: 2485760,
		PageFaults: 77, MajorFaults: 3, Limit: 20971520, HasSwap: true, SwapUsage: 4096}
	if s.Memory != wantMem {
		t.Errorf("memory = %+v, want %+v", s.Memory, wantMem)
	}
	if s.Pids != (Pids{Current: 7}) {
		t.Errorf("pids = %+v", s.Pids)
	}
	if s.IO != (IO{ReadBytes: 101, WriteBytes: 202}) {
		t.Errorf("io = %+v", s.IO)
	}
	if s.Time.IsZero() {
		t.Error("no timestamp")
	}

	// Only what is asked for is read.
	s, err = r.Read("/kubepods.slice/pod1", WantCPU)
	if err != nil {
		t.Fatal(err)
	}
	if s.Memory != (Memory{}) || s.Pids != (Pids{}) || s.CPU.UsageNanos == 0 {
		t.Errorf("WantCPU sample = %+v", s)
	}
}

func TestReadV2WorkingSetFloorsAtZeroAndMissingController(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, filepath.Join(root, "a"), map[string]string{
		"memory.current": "100\n",
		"memory.stat":    "inactive_file 150\n",
		"memory.max":     "max\n",
	})
	writeFiles(t, filepath.Join(root, "b"), map[string]string{"cpu.stat": "usage_usec 1\n"})
	r := NewReader(root, true)
	s, err := r.Read("/a", WantMemory)
	if err != nil {
		t.Fatal(err)
	}
	if s.Memory.WorkingSet != 0 || s.Memory.Limit != 0 || s.Memory.HasSwap {
		t.Errorf("memory = %+v", s.Memory)
	}
	// No memory controller enabled: zero memory, no error.
	s, err = r.Read("/b", WantAll)
	if err != nil {
		t.Fatal(err)
	}
	if s.Memory != (Memory{}) || s.CPU.UsageNanos != 1000 {
		t.Errorf("sample = %+v", s)
	}
}

func TestReadV1(t *testing.T) {
	root := t.TempDir()
	p := "/noded/pod1/ctr"
	writeFiles(t, filepath.Join(root, "cpu,cpuacct", p), map[string]string{
		"cpuacct.usage": "123456789\n",
		"cpuacct.stat":  "user 7\nsystem 3\n",
	})
	writeFiles(t, filepath.Join(root, "memory", p), map[string]string{
		"memory.usage_in_bytes":       "50000\n",
		"memory.stat":                 "cache 1\nrss 2\ntotal_cache 30000\ntotal_rss 20000\ntotal_swap 512\ntotal_pgfault 9\ntotal_pgmajfault 1\ntotal_inactive_file 10000\n",
		"memory.limit_in_bytes":       "9223372036854771712\n",
		"memory.memsw.limit_in_bytes": "9223372036854771712\n",
	})
	writeFiles(t, filepath.Join(root, "pids", p), map[string]string{"pids.current": "3\n", "pids.max": "100\n"})
	writeFiles(t, filepath.Join(root, "blkio", p), map[string]string{
		"blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\nTotal 12288\n",
	})
	r := NewReader(root, false)
	s, err := r.Read(p, WantAll)
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU != (CPU{UsageNanos: 123456789, UserNanos: 70_000_000, SystemNanos: 30_000_000}) {
		t.Errorf("cpu = %+v", s.CPU)
	}
	wantMem := Memory{Usage: 50000, WorkingSet: 40000, RSS: 20000, Cache: 30000, InactiveFile: 10000, PageFaults: 9,
		MajorFaults: 1, HasSwap: true, SwapUsage: 512}
	if s.Memory != wantMem {
		t.Errorf("memory = %+v, want %+v", s.Memory, wantMem)
	}
	if s.Pids != (Pids{Current: 3, Limit: 100}) {
		t.Errorf("pids = %+v", s.Pids)
	}
	if s.IO != (IO{ReadBytes: 4096, WriteBytes: 8192}) {
		t.Errorf("io = %+v", s.IO)
	}
}

func TestReadV1Limited(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, filepath.Join(root, "memory", "x"), map[string]string{
		"memory.usage_in_bytes":       "100\n",
		"memory.limit_in_bytes":       "1000\n",
		"memory.memsw.limit_in_bytes": "3000\n",
	})
	s, err := NewReader(root, false).Read("/x", WantMemory)
	if err != nil {
		t.Fatal(err)
	}
	if s.Memory.Limit != 1000 || s.Memory.SwapLimit != 2000 || s.Memory.WorkingSet != 100 {
		t.Errorf("memory = %+v", s.Memory)
	}
}

func TestReadNotFound(t *testing.T) {
	root := t.TempDir()
	for _, v2 := range []bool{true, false} {
		if !v2 {
			for _, c := range []string{"cpuacct", "memory", "pids"} {
				writeFiles(t, filepath.Join(root, c), nil)
			}
		}
		_, err := NewReader(root, v2).Read("/nope", WantAll)
		if !errdefs.IsNotFound(err) {
			t.Errorf("v2=%v: err = %v, want NotFound", v2, err)
		}
	}
	if _, err := NewReader(root, true).Read("relative", WantAll); !errdefs.IsInvalidArgument(err) {
		t.Errorf("relative path: err = %v", err)
	}
}

func TestReadCorruptFile(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, filepath.Join(root, "a"), map[string]string{"memory.current": "lots\n"})
	if _, err := NewReader(root, true).Read("/a", WantMemory); err == nil {
		t.Error("unparsable memory.current accepted")
	}
}

func TestResolvePath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/noded/pod/ctr", "/noded/pod/ctr"},
		{"/a//b/", "/a/b"},
		{"kubepods-burstable-pod12.slice:noded:abc", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/noded-abc.scope"},
		{"noded.slice:noded:abc", "/noded.slice/noded-abc.scope"},
		{"-.slice:cri:x", "/cri-x.scope"},
		{":cri:x", "/system.slice/cri-x.scope"},
		{"machine.slice::x", "/machine.slice/x.scope"},
		{"kubepods.slice:cri:kubepods-besteffort.slice", "/kubepods.slice/kubepods-besteffort.slice"},
	}
	for _, c := range cases {
		got, err := ResolvePath(c.in)
		if err != nil || got != c.want {
			t.Errorf("ResolvePath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "a:b", "x.service:p:n", "a--b.slice:p:n", "-a.slice:p:n", "/a/../b", "s.slice:p:"} {
		if got, err := ResolvePath(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ResolvePath(%q) = %q, %v; want InvalidArgument", bad, got, err)
		}
	}
}

func TestParseUint(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "42": 42, "18446744073709551615": 1<<64 - 1} {
		if got, ok := parseUint(in); !ok || got != want {
			t.Errorf("parseUint(%q) = %d, %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "-1", "1x", "18446744073709551616"} {
		if _, ok := parseUint(bad); ok {
			t.Errorf("parseUint(%q) accepted", bad)
		}
	}
}

// TestReadV2ExistenceWithoutCPUStat: NotFound comes from the directory, whichever groups are wanted; an existing
// cgroup without cpu.stat reads as zeros.
func TestReadV2ExistenceWithoutCPUStat(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, filepath.Join(root, "a"), map[string]string{"memory.current": "7\n"})
	for _, want := range []Want{WantCPU, WantMemory, WantCPU | WantMemory, WantAll} {
		s, err := NewReader(root, true).Read("/a", want)
		if err != nil {
			t.Fatalf("want %b: %v", want, err)
		}
		if s.CPU.UsageNanos != 0 || (want&WantMemory != 0) != (s.Memory.Usage == 7) {
			t.Errorf("want %b: %+v", want, s)
		}
		if _, err := NewReader(root, true).Read("/b", want); !errdefs.IsNotFound(err) {
			t.Errorf("want %b: missing cgroup: %v", want, err)
		}
	}
}

// TestReadFileLargerThanBuffer reads a file bigger than the pooled buffer whole, twice (the pool keeps working).
func TestReadFileLargerThanBuffer(t *testing.T) {
	dir := t.TempDir()
	var big []byte
	for i := 0; len(big) < 20<<10; i++ {
		big = append(big, []byte("key_"+string(rune('a'+i%26))+" 12345\n")...)
	}
	path := filepath.Join(dir, "memory.stat")
	if err := os.WriteFile(path, big, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		got, err := readFile(path)
		if err != nil || got != string(big) {
			t.Fatalf("read %d bytes of %d: %v", len(got), len(big), err)
		}
	}
	if _, err := readFile(filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
