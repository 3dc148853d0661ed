package stats

import (
	"path"
	"strings"

	"github.com/noded/noded/errdefs"
)

// ResolvePath turns a container's OCI cgroupsPath into its path within the cgroup hierarchy. An absolute path is
// returned cleaned. The systemd form "slice:prefix:name" names the transient unit <prefix>-<name>.scope (or
// <name> itself when it ends in ".slice") inside slice, which systemd nests by its dash-separated prefixes:
// "kubepods-burstable-pod12.slice:cri:abc" is
// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/cri-abc.scope.
func ResolvePath(cgroupsPath string) (string, error) {
	if cgroupsPath == "" {
		return "", errdefs.InvalidArgument("empty cgroups path")
	}
	if strings.HasPrefix(cgroupsPath, "/") {
		if strings.Contains(cgroupsPath, "..") {
			return "", errdefs.InvalidArgument("cgroups path %q must not contain ..", cgroupsPath)
		}
		return path.Clean(cgroupsPath), nil
	}
	parts := strings.Split(cgroupsPath, ":")
	if len(parts) != 3 {
		return "", errdefs.InvalidArgument("cgroups path %q is neither absolute nor slice:prefix:name", cgroupsPath)
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	if slice == "" {
		slice = "system.slice" // what runc's systemd driver uses when no parent is given
	}
	dir, err := ExpandSlice(slice)
	if err != nil {
		return "", err
	}
	if name == "" || strings.Contains(name, "/") {
		return "", errdefs.InvalidArgument("invalid unit name in cgroups path %q", cgroupsPath)
	}
	unit := name
	if !strings.HasSuffix(name, ".slice") {
		if prefix != "" {
			unit = prefix + "-" + name
		}
		unit += ".scope"
	}
	return path.Join(dir, unit), nil
}

// ExpandSlice returns the hierarchy path of a systemd slice unit: "a-b-c.slice" lives at
// /a.slice/a-b.slice/a-b-c.slice, and "-.slice" is the root.
func ExpandSlice(slice string) (string, error) {
	base, ok := strings.CutSuffix(slice, ".slice")
	if !ok || strings.Contains(slice, "/") {
		return "", errdefs.InvalidArgument("%q is not a systemd slice name", slice)
	}
	if base == "-" {
		return "/", nil
	}
	if base == "" || strings.HasPrefix(base, "-") || strings.HasSuffix(base, "-") || strings.Contains(base, "--") {
		return "", errdefs.InvalidArgument("invalid systemd slice name %q", slice)
	}
	var b strings.Builder
	for i := 0; i < len(base); i++ {
		if base[i] == '-' {
			b.WriteString("/" + base[:i] + ".slice")
		}
	}
	b.WriteString("/" + slice)
	return b.String(), nil
}
