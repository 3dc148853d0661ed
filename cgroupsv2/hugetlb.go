package cgroupsv2

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/errdefs"
)

// DefaultHugepagesDir lists the kernel's hugepage sizes (one hugepages-<n>kB directory each).
const DefaultHugepagesDir = "/sys/kernel/mm/hugepages"

// Hugetlb says whether containers' cgroups can carry hugepage limits on this host. kubelet sends a limit for every
// page size the node has (0 when the pod asks for none), and the OCI runtime fails the container when it cannot
// write one, so noded applies them only where the controller is in the hierarchy containers' cgroups live in:
// the cgroup2 root on a pure v2 host, a v1 hugetlb hierarchy on a v1 or hybrid one (on a hybrid host the OCI
// runtime places containers in the v1 hierarchies only, so a hugetlb controller bound to the unified one is out
// of reach).
type Hugetlb struct {
	Available bool `json:"available"`
	// PageSizes are the kernel's hugepage sizes as cgroup files and kubelet name them ("2MB", "1GB").
	PageSizes []string `json:"pageSizes"`
	// Reason says why limits cannot be applied (empty when Available).
	Reason string `json:"reason,omitempty"`
}

// DetectHugetlb finds out, once at start, whether hugepage limits can be applied to containers' cgroups under
// cgroupRoot (usually /sys/fs/cgroup), with the kernel's page sizes from hugepagesDir.
func DetectHugetlb(cgroupRoot, hugepagesDir string) Hugetlb {
	return detectHugetlb(cgroupRoot, hugepagesDir, cgstats.IsUnified)
}

// detectHugetlb is DetectHugetlb with the cgroup2 mount check given (tests fake it on plain directories).
func detectHugetlb(cgroupRoot, hugepagesDir string, isUnified func(dir string) bool) Hugetlb {
	h := Hugetlb{PageSizes: hugepageSizes(hugepagesDir)}
	if isUnified(cgroupRoot) {
		b, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers"))
		switch {
		case err != nil:
			h.Reason = fmt.Sprintf("read cgroup2 controllers: %v", err)
		case slices.Contains(strings.Fields(string(b)), "hugetlb"):
			h.Available = true
		default:
			h.Reason = fmt.Sprintf("the cgroup2 hierarchy at %s has no hugetlb controller", cgroupRoot)
		}
		return h
	}
	entries, _ := os.ReadDir(cgroupRoot)
	unified := ""
	for _, e := range entries {
		dir := filepath.Join(cgroupRoot, e.Name())
		if !e.IsDir() {
			continue
		}
		if isUnified(dir) {
			if b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers")); err == nil &&
				slices.Contains(strings.Fields(string(b)), "hugetlb") {
				unified = dir
			}
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "hugetlb.*.limit_in_bytes")); len(m) > 0 {
			h.Available = true
			return h
		}
	}
	h.Reason = "no cgroup v1 hierarchy has the hugetlb controller"
	if unified != "" {
		h.Reason += fmt.Sprintf(" (it is bound to the unified hierarchy %s, which containers' cgroups do not use on this hybrid host)", unified)
	}
	return h
}

// hugepageSizes lists the kernel's page sizes in cgroup spelling, smallest first.
func hugepageSizes(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var kb []uint64
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		n, ok = strings.CutSuffix(n, "kB")
		if !ok {
			continue
		}
		if v, err := strconv.ParseUint(n, 10, 64); err == nil && v > 0 {
			kb = append(kb, v)
		}
	}
	slices.Sort(kb)
	out := []string{}
	for _, v := range kb {
		out = append(out, PageSizeName(v<<10))
	}
	return out
}

// PageSizeName spells a page size in bytes as the kernel's hugetlb cgroup files (and kubelet) do: 64KB, 2MB, 1GB.
func PageSizeName(bytes uint64) string {
	switch {
	case bytes >= 1<<30:
		return strconv.FormatUint(bytes>>30, 10) + "GB"
	case bytes >= 1<<20:
		return strconv.FormatUint(bytes>>20, 10) + "MB"
	}
	return strconv.FormatUint(bytes>>10, 10) + "KB"
}

// Filter returns the hugepage limits the OCI runtime can apply here: all of them for page sizes the kernel has
// when the controller is available; a limit of 0 where it is not (or for a size the kernel lacks) is dropped, as
// it asks for no hugepages, which a node without them gives anyway. A non-zero limit that cannot be applied is
// FailedPrecondition: the pod asks for hugepages this node cannot limit.
func (h Hugetlb) Filter(limits []specs.LinuxHugepageLimit) ([]specs.LinuxHugepageLimit, error) {
	var out []specs.LinuxHugepageLimit
	for _, l := range limits {
		known := slices.Contains(h.PageSizes, l.Pagesize)
		switch {
		case h.Available && known:
			out = append(out, l)
		case l.Limit == 0:
		case !h.Available:
			return nil, errdefs.FailedPrecondition("hugepage limit %s=%d cannot be applied on this node: %s", l.Pagesize, l.Limit, h.Reason)
		default:
			have := strings.Join(h.PageSizes, ", ")
			if have == "" {
				have = "none"
			}
			return nil, errdefs.FailedPrecondition("hugepage limit %s=%d: the kernel has no %s pages (it has %s)", l.Pagesize, l.Limit,
				l.Pagesize, have)
		}
	}
	return out, nil
}
