package cgroupsv2

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/errdefs"
)

func mkfiles(t *testing.T, root string, files ...string) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(root, f)
		if strings.HasSuffix(f, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func writeControllers(t *testing.T, dir, list string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte(list+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDetectHugetlb(t *testing.T) {
	sizes := t.TempDir()
	mkfiles(t, sizes, "hugepages-1048576kB/", "hugepages-2048kB/", "hugepages-64kB/", "other/")
	unifiedDirs := map[string]bool{}
	isUnified := func(d string) bool { return unifiedDirs[d] }

	// Pure v2 with the controller: available.
	v2 := t.TempDir()
	unifiedDirs[v2] = true
	writeControllers(t, v2, "cpuset cpu io memory hugetlb pids")
	h := detectHugetlb(v2, sizes, isUnified)
	if !h.Available || h.Reason != "" || !slices.Equal(h.PageSizes, []string{"64KB", "2MB", "1GB"}) {
		t.Errorf("v2 with hugetlb: %+v", h)
	}
	// Pure v2 without it (the test guest): not available, with a reason.
	writeControllers(t, v2, "cpu io memory pids")
	if h := detectHugetlb(v2, sizes, isUnified); h.Available || !strings.Contains(h.Reason, "no hugetlb controller") {
		t.Errorf("v2 without hugetlb: %+v", h)
	}

	// Hybrid with hugetlb only in the unified hierarchy (this host): not available.
	hy := t.TempDir()
	mkfiles(t, hy, "cpu/cpu.shares", "memory/memory.limit_in_bytes", "pids/pids.max")
	writeControllers(t, filepath.Join(hy, "unified"), "hugetlb")
	unifiedDirs[filepath.Join(hy, "unified")] = true
	h = detectHugetlb(hy, sizes, isUnified)
	if h.Available || !strings.Contains(h.Reason, "unified hierarchy") {
		t.Errorf("hybrid, hugetlb in unified: %+v", h)
	}
	// v1 with a hugetlb hierarchy: available.
	mkfiles(t, hy, "hugetlb/hugetlb.2MB.limit_in_bytes")
	if h := detectHugetlb(hy, sizes, isUnified); !h.Available {
		t.Errorf("v1 hugetlb hierarchy: %+v", h)
	}

	// The real host, read only: it must not claim what runc then fails on.
	if cgstats.IsUnified(cgstats.DefaultRoot) {
		return
	}
	real := DetectHugetlb(cgstats.DefaultRoot, DefaultHugepagesDir)
	_, err := os.Stat(filepath.Join(cgstats.DefaultRoot, "hugetlb"))
	if real.Available != (err == nil) {
		t.Errorf("host: %+v, but a v1 hugetlb hierarchy exists: %v", real, err == nil)
	}
}

func TestHugetlbFilter(t *testing.T) {
	lim := func(size string, n uint64) specs.LinuxHugepageLimit {
		return specs.LinuxHugepageLimit{Pagesize: size, Limit: n}
	}
	// kubelet's request shape: every size of the node at 0, one asked for.
	kubelet := []specs.LinuxHugepageLimit{lim("2MB", 0), lim("1GB", 0)}

	on := Hugetlb{Available: true, PageSizes: []string{"2MB", "1GB"}}
	if got, err := on.Filter(kubelet); err != nil || !slices.Equal(got, kubelet) {
		t.Errorf("available: %v, %v; want all limits applied", got, err)
	}
	if got, err := on.Filter([]specs.LinuxHugepageLimit{lim("2MB", 4<<20)}); err != nil || len(got) != 1 || got[0].Limit != 4<<20 {
		t.Errorf("available, non-zero: %v, %v", got, err)
	}
	only2M := Hugetlb{Available: true, PageSizes: []string{"2MB"}}
	if got, err := only2M.Filter(kubelet); err != nil || !slices.Equal(got, kubelet[:1]) {
		t.Errorf("size the kernel lacks at 0: %v, %v; want it dropped", got, err)
	}
	if _, err := only2M.Filter([]specs.LinuxHugepageLimit{lim("1GB", 1<<30)}); !errors.Is(err, errdefs.ErrFailedPrecondition) ||
		!strings.Contains(err.Error(), "no 1GB pages") {
		t.Errorf("non-zero for a size the kernel lacks: %v", err)
	}

	off := Hugetlb{PageSizes: []string{"2MB"}, Reason: "no cgroup v1 hierarchy has the hugetlb controller"}
	if got, err := off.Filter(kubelet); err != nil || len(got) != 0 {
		t.Errorf("unavailable, zero limits: %v, %v; want none applied, no error", got, err)
	}
	_, err := off.Filter([]specs.LinuxHugepageLimit{lim("2MB", 0), lim("2MB", 2<<20)})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "2MB=2097152") || !strings.Contains(err.Error(), off.Reason) {
		t.Errorf("unavailable, non-zero: %v; want FailedPrecondition naming the limit and the reason", err)
	}
	if got, err := off.Filter(nil); err != nil || got != nil {
		t.Errorf("no limits: %v, %v", got, err)
	}
}

func TestPageSizeName(t *testing.T) {
	for b, want := range map[uint64]string{64 << 10: "64KB", 2 << 20: "2MB", 32 << 20: "32MB", 1 << 30: "1GB", 16 << 30: "16GB"} {
		if got := PageSizeName(b); got != want {
			t.Errorf("PageSizeName(%d) = %q, want %q", b, got, want)
		}
	}
}
