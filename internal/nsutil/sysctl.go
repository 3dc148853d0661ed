//go:build linux

package nsutil

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

// SetHostname sets the hostname inside the UTS namespace pinned at utsPath.
func SetHostname(utsPath, hostname string) error {
	if hostname == "" || len(hostname) > 64 || strings.ContainsRune(hostname, 0) {
		return errdefs.InvalidArgument("invalid hostname %q: must be 1-64 bytes", hostname)
	}
	return WithNS(utsPath, UTS, func() error {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
		return nil
	})
}

// SysctlNamespace returns the namespace type that isolates the sysctl key, or an InvalidArgument error naming the
// key when it is malformed or not namespaced. Keys use dots ("net.ipv4.ip_forward") or, as Kubernetes allows,
// slashes as separators when a segment contains dots ("net/ipv4/conf/eth0.100/forwarding").
// Namespaced: net.* (network namespace); kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* (IPC namespace).
func SysctlNamespace(key string) (Type, error) {
	segs, err := sysctlSegments(key)
	if err != nil {
		return "", err
	}
	switch {
	case segs[0] == "net" && len(segs) > 1:
		return Net, nil
	case segs[0] == "kernel" && len(segs) == 2 &&
		(strings.HasPrefix(segs[1], "shm") || strings.HasPrefix(segs[1], "msg") || segs[1] == "sem"):
		return IPC, nil
	case segs[0] == "fs" && len(segs) > 2 && segs[1] == "mqueue":
		return IPC, nil
	}
	return "", errdefs.InvalidArgument("sysctl %q is not namespaced and cannot be set per pod", key)
}

// sysctlSegments splits key into path segments under /proc/sys, refusing anything that could escape it.
func sysctlSegments(key string) ([]string, error) {
	sep := "."
	if strings.Contains(key, "/") {
		sep = "/"
	}
	segs := strings.Split(key, sep)
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return nil, errdefs.InvalidArgument("invalid sysctl name %q", key)
		}
		for _, c := range s {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '@' || c == ':') {
				return nil, errdefs.InvalidArgument("invalid character %q in sysctl name %q", c, key)
			}
		}
	}
	return segs, nil
}

// ValidateSysctls checks every key of sysctls and that the namespace each needs is present in pins (a pod on the
// host network cannot set net.* sysctls). It returns InvalidArgument errors.
func ValidateSysctls(pins map[Type]string, sysctls map[string]string) error {
	for _, k := range sortedKeys(sysctls) {
		t, err := SysctlNamespace(k)
		if err != nil {
			return err
		}
		if pins[t] == "" {
			return errdefs.InvalidArgument("sysctl %q needs a private %s namespace, but the pod shares the host's", k, t)
		}
		if strings.ContainsAny(sysctls[k], "\x00\n") {
			return errdefs.InvalidArgument("invalid value for sysctl %q", k)
		}
	}
	return nil
}

// ApplySysctls validates sysctls (see ValidateSysctls) and writes each into /proc/sys from a thread that joined
// the pinned namespace it belongs to. procfs resolves net.* and the IPC sysctls through the writing task's
// namespaces, so the host's values stay untouched. Keys are applied in sorted order; the first failure stops.
func ApplySysctls(pins map[Type]string, sysctls map[string]string) error {
	if err := ValidateSysctls(pins, sysctls); err != nil {
		return err
	}
	byNS := map[Type][]string{}
	for _, k := range sortedKeys(sysctls) {
		t, _ := SysctlNamespace(k)
		byNS[t] = append(byNS[t], k)
	}
	for _, t := range []Type{Net, IPC} {
		keys := byNS[t]
		if len(keys) == 0 {
			continue
		}
		err := WithNS(pins[t], t, func() error {
			for _, k := range keys {
				segs, _ := sysctlSegments(k)
				p := "/proc/sys/" + strings.Join(segs, "/")
				if err := os.WriteFile(p, []byte(sysctls[k]), 0); err != nil {
					if os.IsNotExist(err) {
						return errdefs.InvalidArgument("sysctl %q does not exist in the pod's %s namespace", k, t)
					}
					return fmt.Errorf("set sysctl %s=%q: %w", k, sysctls[k], err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
