// Package features decides what noded advertises in Status: what the node's kernel and filesystems can do,
// probed once at start (Host), combined with what each runtime handler's binary says it supports (Runtime).
// A feature is advertised only when both sides have it, so kubelet never schedules a pod that then fails.
package features

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Host is what the node can do, whatever the runtime.
type Host struct {
	// Kernel is the kernel release (uname -r).
	Kernel string `json:"kernel"`
	// RecursiveReadOnly: the kernel is >= 5.12 (mount_setattr with AT_RECURSIVE) and a recursive read-only
	// attribute could be set on a mount clone.
	RecursiveReadOnly bool `json:"recursiveReadOnly"`
	// IDMappedMounts: an ID-mapped clone of a directory on the snapshot filesystem works, and an overlay over
	// ID-mapped lower layers mounts (Linux >= 5.19), as a container's rootfs in a user namespace needs.
	IDMappedMounts bool `json:"idmappedMounts"`
	// Reasons says why a feature is off, by feature name.
	Reasons map[string]string `json:"reasons,omitempty"`
}

// Runtime is what a runtime handler's binary reports (`runc features`).
type Runtime struct {
	RecursiveReadOnly bool // mountOptions contains "rro"
	UserNamespaces    bool // linux.namespaces contains "user"
	IDMapMounts       bool // linux.mountExtensions.idmap.enabled
}

// Handler is what one runtime handler gets advertised (RuntimeHandlerFeatures) and used for.
type Handler struct {
	RecursiveReadOnly bool
	// UserNamespaces as Kubernetes means it: user namespaces and ID-mapped mounts (for the rootfs and volumes).
	UserNamespaces bool
	// IDMapMounts: mounts with uid/gid mappings can be asked of the runtime.
	IDMapMounts bool
	// Reasons says why a feature is off, by feature name.
	Reasons map[string]string
}

// Feature names used in Reasons.
const (
	FeatureRecursiveReadOnly = "recursiveReadOnly"
	FeatureUserNamespaces    = "userNamespaces"
	FeatureIDMapMounts       = "idmapMounts"
)

// Combine is the handler's features: each needs the host and the runtime.
func Combine(h Host, r Runtime) Handler {
	out := Handler{Reasons: map[string]string{}}
	why := func(name string, hostOK bool, hostWhy string, rtOK bool, rtWhy string) bool {
		switch {
		case !rtOK:
			out.Reasons[name] = rtWhy
		case !hostOK:
			out.Reasons[name] = hostWhy
		}
		return hostOK && rtOK
	}
	out.RecursiveReadOnly = why(FeatureRecursiveReadOnly, h.RecursiveReadOnly, h.Reasons[FeatureRecursiveReadOnly],
		r.RecursiveReadOnly, `the runtime does not list the "rro" mount option`)
	out.IDMapMounts = why(FeatureIDMapMounts, h.IDMappedMounts, h.Reasons[FeatureIDMapMounts],
		r.IDMapMounts, "the runtime does not support ID-mapped mounts")
	switch {
	case !r.UserNamespaces:
		out.Reasons[FeatureUserNamespaces] = "the runtime does not support user namespaces"
	case !out.IDMapMounts:
		out.Reasons[FeatureUserNamespaces] = "ID-mapped mounts are not available: " + out.Reasons[FeatureIDMapMounts]
	default:
		out.UserNamespaces = true
	}
	if len(out.Reasons) == 0 {
		out.Reasons = nil
	}
	return out
}

// Probes are the host checks; the real ones are RealProbes, tests pass fakes.
type Probes struct {
	// KernelRelease returns the kernel release (uname -r).
	KernelRelease func() (string, error)
	// RecursiveReadOnly sets the recursive read-only attribute on a detached clone of a mount below dir.
	RecursiveReadOnly func(dir string) error
	// IDMappedOverlay mounts, below dir, an overlay over an ID-mapped lower layer and checks the mapping shows.
	IDMappedOverlay func(ctx context.Context, dir string) error
}

// Minimum kernel versions of the features.
var (
	minRecursiveReadOnly = [2]int{5, 12}
	minIDMappedOverlay   = [2]int{5, 19}
)

// ProbeHost checks the host's kernel and the filesystem of dir (the snapshot root, where rootfs layers live).
func ProbeHost(ctx context.Context, p Probes, dir string) Host {
	h := Host{Reasons: map[string]string{}}
	rel, err := p.KernelRelease()
	if err != nil {
		h.Reasons[FeatureRecursiveReadOnly] = fmt.Sprintf("kernel release unknown: %v", err)
		h.Reasons[FeatureIDMapMounts] = h.Reasons[FeatureRecursiveReadOnly]
		return h
	}
	h.Kernel = rel
	ver, ok := parseRelease(rel)
	switch {
	case !ok:
		h.Reasons[FeatureRecursiveReadOnly] = fmt.Sprintf("kernel release %q not understood", rel)
	case !atLeast(ver, minRecursiveReadOnly):
		h.Reasons[FeatureRecursiveReadOnly] = fmt.Sprintf("kernel %s is older than 5.12", rel)
	default:
		if err := p.RecursiveReadOnly(dir); err != nil {
			h.Reasons[FeatureRecursiveReadOnly] = fmt.Sprintf("recursive read-only mount attribute: %v", err)
		} else {
			h.RecursiveReadOnly = true
		}
	}
	switch {
	case !ok:
		h.Reasons[FeatureIDMapMounts] = fmt.Sprintf("kernel release %q not understood", rel)
	case !atLeast(ver, minIDMappedOverlay):
		h.Reasons[FeatureIDMapMounts] = fmt.Sprintf("kernel %s is older than 5.19 (overlay over ID-mapped layers)", rel)
	default:
		if err := p.IDMappedOverlay(ctx, dir); err != nil {
			h.Reasons[FeatureIDMapMounts] = fmt.Sprintf("ID-mapped mount on %s: %v", dir, err)
		} else {
			h.IDMappedMounts = true
		}
	}
	if len(h.Reasons) == 0 {
		h.Reasons = nil
	}
	return h
}

// parseRelease reads major.minor from a kernel release such as "6.1.0-18-amd64" or "5.12".
func parseRelease(rel string) ([2]int, bool) {
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return [2]int{}, false
	}
	major, err := strconv.Atoi(parts[0])
	if err != nil {
		return [2]int{}, false
	}
	minorDigits := parts[1]
	if i := strings.IndexFunc(minorDigits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minorDigits = minorDigits[:i]
	}
	minor, err := strconv.Atoi(minorDigits)
	if err != nil {
		return [2]int{}, false
	}
	return [2]int{major, minor}, true
}

func atLeast(v, min [2]int) bool {
	return v[0] > min[0] || (v[0] == min[0] && v[1] >= min[1])
}
