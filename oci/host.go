package oci

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"
)

// DetectHost reads the host facts Build needs from /proc and /sys of the running process.
func DetectHost() (HostInfo, error) {
	var h HostInfo
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return h, fmt.Errorf("read oom_score_adj: %w", err)
	}
	if h.OOMScoreAdjMin, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		return h, fmt.Errorf("parse oom_score_adj %q: %w", b, err)
	}
	// With CAP_SYS_RESOURCE any value can be set.
	if procCaps("CapEff:")&(1<<unix.CAP_SYS_RESOURCE) != 0 {
		h.OOMScoreAdjMin = -1000
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return h, fmt.Errorf("getrlimit: %w", err)
	}
	h.NofileMax = rl.Max
	h.Capabilities = procCaps("CapBnd:")
	h.AppArmor, h.SELinux = DetectLSM("/")
	h.Seccomp = SeccompEnabled()
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		h.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	return h, nil
}

// procCaps returns a capability set ("CapEff:", "CapBnd:") of this process, 0 when unknown.
func procCaps(field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			caps, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return caps
		}
	}
	return 0
}

// AppArmorEnabled reports whether the kernel has AppArmor enabled (see DetectLSM).
func AppArmorEnabled() bool {
	enabled, _ := DetectLSM("/")
	return enabled
}

// SeccompEnabled reports whether the kernel supports seccomp filters: PR_GET_SECCOMP answers (CONFIG_SECCOMP)
// and PR_SET_SECCOMP with SECCOMP_MODE_FILTER and no filter fails with EFAULT, not EINVAL
// (CONFIG_SECCOMP_FILTER). Nothing is installed by the probe.
func SeccompEnabled() bool {
	if _, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err != nil {
		return false
	}
	return unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, 0, 0, 0) == unix.EFAULT
}

// ParseFeatures derives Features from the output of `<runtime> features` (the OCI features document).
// CgroupV2 is not part of it and is left false.
func ParseFeatures(data []byte) (Features, error) {
	var f features.Features
	if err := json.Unmarshal(data, &f); err != nil {
		return Features{}, fmt.Errorf("parse runtime features: %w", err)
	}
	out := Features{Known: true}
	out.RecursiveReadOnly = slices.Contains(f.MountOptions, "rro")
	if l := f.Linux; l != nil {
		out.UserNamespaces = slices.Contains(l.Namespaces, "user")
		out.Seccomp = l.Seccomp != nil && l.Seccomp.Enabled != nil && *l.Seccomp.Enabled
		out.IDMapMounts = l.MountExtensions != nil && l.MountExtensions.IDMap != nil &&
			l.MountExtensions.IDMap.Enabled != nil && *l.MountExtensions.IDMap.Enabled
	}
	return out, nil
}
