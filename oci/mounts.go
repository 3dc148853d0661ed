package oci

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

func isCleanAbs(p string) bool { return filepath.IsAbs(p) && filepath.Clean(p) == p }

// DefaultMounts returns the mounts every container gets (before CRI and sandbox mounts).
func DefaultMounts(privileged bool) []specs.Mount {
	sysOpt := "ro"
	if privileged {
		sysOpt = "rw"
	}
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", sysOpt}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", sysOpt}},
	}
	return ms
}

// propagationOption maps a CRI propagation to the OCI bind option.
func propagationOption(p runtimeapi.MountPropagation) (string, error) {
	switch p {
	case runtimeapi.MountPropagation_PROPAGATION_PRIVATE:
		return "rprivate", nil
	case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		return "rslave", nil
	case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		return "rshared", nil
	}
	return "", errdefs.InvalidArgument("unknown mount propagation %v", p)
}

// allowedMountOptions are the CRI mount_options accepted (passed through to the OCI mount).
var allowedMountOptions = []string{
	"nosuid", "suid", "nodev", "dev", "noexec", "exec", "noatime", "atime", "relatime", "norelatime",
	"strictatime", "nostrictatime", "nodiratime", "diratime", "nosymfollow",
	"rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec", "rnoatime", "ratime", "rrelatime", "rnorelatime",
	"rstrictatime", "rnostrictatime", "rnodiratime", "rdiratime", "rnosymfollow",
}

func mounts(p Params, s *specs.Spec, privileged bool) error {
	cfg := p.Config
	sc := cfg.GetLinux().GetSecurityContext()
	var criMounts []specs.Mount
	dests := map[string]bool{}
	rootProp := ""
	for i, m := range cfg.GetMounts() {
		om, prop, err := criMount(p, i, m)
		if err != nil {
			return err
		}
		if dests[om.Destination] {
			return errdefs.InvalidArgument("mounts[%d]: duplicate container_path %q", i, om.Destination)
		}
		dests[om.Destination] = true
		switch {
		case prop == "rshared":
			rootProp = "rshared"
		case prop == "rslave" && rootProp == "":
			rootProp = "rslave"
		}
		criMounts = append(criMounts, om)
	}
	// Mount parents before children whatever the request's order.
	slices.SortStableFunc(criMounts, func(a, b specs.Mount) int {
		return strings.Count(a.Destination, "/") - strings.Count(b.Destination, "/")
	})
	s.Linux.RootfsPropagation = rootProp

	// Sandbox files: a CRI mount at the same path wins (kubelet manages /etc/hosts itself for most pods).
	var sandbox []specs.Mount
	fileOpt := "rw"
	if sc.GetReadonlyRootfs() {
		fileOpt = "ro"
	}
	for _, f := range []struct{ src, dst string }{
		{p.SandboxFiles.Hosts, "/etc/hosts"},
		{p.SandboxFiles.Hostname, "/etc/hostname"},
		{p.SandboxFiles.ResolvConf, "/etc/resolv.conf"},
	} {
		if f.src == "" || dests[f.dst] {
			continue
		}
		if !filepath.IsAbs(f.src) {
			return errdefs.InvalidArgument("sandbox file %q for %s must be absolute", f.src, f.dst)
		}
		sandbox = append(sandbox, specs.Mount{Destination: f.dst, Type: "bind", Source: f.src,
			Options: []string{"rbind", "rprivate", fileOpt}})
	}
	if !dests["/dev/shm"] {
		if p.SandboxFiles.ShmDir != "" {
			if !filepath.IsAbs(p.SandboxFiles.ShmDir) {
				return errdefs.InvalidArgument("sandbox shm dir %q must be absolute", p.SandboxFiles.ShmDir)
			}
			sandbox = append(sandbox, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: p.SandboxFiles.ShmDir,
				Options: []string{"rbind", "rprivate", "nosuid", "nodev", "noexec", "rw"}})
		} else {
			sandbox = append(sandbox, specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
				Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}})
		}
	}

	for _, m := range DefaultMounts(privileged) {
		// A CRI mount replacing a default one (e.g. /dev/mqueue) drops the default.
		if !dests[m.Destination] {
			s.Mounts = append(s.Mounts, m)
		}
	}
	s.Mounts = append(s.Mounts, sandbox...)
	s.Mounts = append(s.Mounts, criMounts...)
	return nil
}

// criMount validates and converts one CRI mount. It returns the propagation option used.
func criMount(p Params, i int, m *runtimeapi.Mount) (specs.Mount, string, error) {
	dst := m.GetContainerPath()
	if !isCleanAbs(dst) {
		return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: container_path %q must be an absolute clean path", i, dst)
	}
	if dst == "/" {
		return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: container_path must not be /", i)
	}
	if m.GetImage().GetImage() != "" {
		return imageMount(p, i, m)
	}
	src := m.GetHostPath()
	if !filepath.IsAbs(src) {
		return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: host_path %q must be absolute", i, src)
	}
	// A symlinked host path mounts its target.
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return specs.Mount{}, "", errdefs.NotFound("mounts[%d]: host_path %q does not exist", i, src)
		}
		return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: host_path %q: %v", i, src, err)
	}

	prop, err := propagationOption(m.GetPropagation())
	if err != nil {
		return specs.Mount{}, "", fmt.Errorf("mounts[%d]: %w", i, err)
	}
	if m.GetRecursiveReadOnly() {
		if !m.GetReadonly() {
			return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: recursive_read_only requires readonly", i)
		}
		if prop != "rprivate" {
			return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: recursive_read_only requires private propagation", i)
		}
		if !p.Runtime.RecursiveReadOnly {
			return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: recursive_read_only is not supported by the runtime", i)
		}
	}
	if prop != "rprivate" {
		info, err := mountPropagationOf(p.Host.MountInfo, real)
		if err != nil {
			return specs.Mount{}, "", fmt.Errorf("mounts[%d]: check propagation of %q: %w", i, real, err)
		}
		if prop == "rshared" && !info.shared {
			return specs.Mount{}, "", errdefs.FailedPrecondition("mounts[%d]: bidirectional propagation needs host_path %q to be on a shared mount, but %q is not shared", i, src, info.mountPoint)
		}
		if prop == "rslave" && !info.shared && !info.slave {
			return specs.Mount{}, "", errdefs.FailedPrecondition("mounts[%d]: host-to-container propagation needs host_path %q to be on a shared or slave mount, but %q is private", i, src, info.mountPoint)
		}
	}

	opts := []string{"rbind", prop}
	switch {
	case m.GetRecursiveReadOnly():
		opts = append(opts, "ro", "rro")
	case m.GetReadonly():
		opts = append(opts, "ro")
	default:
		opts = append(opts, "rw")
	}
	for _, o := range m.GetMountOptions() {
		if !slices.Contains(allowedMountOptions, o) {
			return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: mount option %q is not allowed", i, o)
		}
		if !slices.Contains(opts, o) {
			opts = append(opts, o)
		}
	}
	om := specs.Mount{Destination: dst, Type: "bind", Source: real, Options: opts}
	if len(m.GetUidMappings()) > 0 || len(m.GetGidMappings()) > 0 {
		if !p.Runtime.IDMapMounts {
			return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: idmap mounts are not supported by the runtime", i)
		}
		if om.UIDMappings, err = idMappings(fmt.Sprintf("mounts[%d].uidMappings", i), m.GetUidMappings()); err != nil {
			return specs.Mount{}, "", err
		}
		if om.GIDMappings, err = idMappings(fmt.Sprintf("mounts[%d].gidMappings", i), m.GetGidMappings()); err != nil {
			return specs.Mount{}, "", err
		}
		if len(om.UIDMappings) == 0 || len(om.GIDMappings) == 0 {
			return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: idmap mounts need both uidMappings and gidMappings", i)
		}
	}
	return om, prop, nil
}

// imageMount converts an image volume mount: a private, read-only bind of the path the caller prepared (the
// image's view, or its sub path). Image volumes are read-only whatever the request says.
func imageMount(p Params, i int, m *runtimeapi.Mount) (specs.Mount, string, error) {
	src, ok := p.ImageVolumes[i]
	if !ok || !filepath.IsAbs(src) {
		return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: image volume %q was not prepared", i, m.GetImage().GetImage())
	}
	if m.GetHostPath() != "" {
		return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: host_path and image are mutually exclusive", i)
	}
	if len(m.GetUidMappings()) > 0 || len(m.GetGidMappings()) > 0 {
		return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: idmap mappings are not supported on image volumes", i)
	}
	opts := []string{"rbind", "rprivate", "ro", "nosuid", "nodev"}
	if m.GetRecursiveReadOnly() {
		if !p.Runtime.RecursiveReadOnly {
			return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: recursive_read_only is not supported by the runtime", i)
		}
		opts = append(opts, "rro")
	}
	for _, o := range m.GetMountOptions() {
		if !slices.Contains(allowedMountOptions, o) {
			return specs.Mount{}, "", errdefs.InvalidArgument("mounts[%d]: mount option %q is not allowed", i, o)
		}
		if !slices.Contains(opts, o) {
			opts = append(opts, o)
		}
	}
	// In a user namespace the caller's view is already ID-mapped as the rootfs is.
	return specs.Mount{Destination: m.GetContainerPath(), Type: "bind", Source: src, Options: opts}, "rprivate", nil
}

type propagationInfo struct {
	mountPoint    string
	shared, slave bool
}

// mountPropagationOf finds the mount containing path in a mountinfo file and reports its propagation.
func mountPropagationOf(mountinfo, path string) (propagationInfo, error) {
	if mountinfo == "" {
		mountinfo = "/proc/self/mountinfo"
	}
	f, err := os.Open(mountinfo)
	if err != nil {
		return propagationInfo{}, err
	}
	defer f.Close()
	var best propagationInfo
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional fields...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if !pathWithin(path, mp) {
			continue
		}
		// Later entries at the same or a deeper mount point shadow earlier ones.
		if found && len(mp) < len(best.mountPoint) {
			continue
		}
		info := propagationInfo{mountPoint: mp}
		for _, opt := range fields[6:] {
			if opt == "-" {
				break
			}
			info.shared = info.shared || strings.HasPrefix(opt, "shared:")
			info.slave = info.slave || strings.HasPrefix(opt, "master:")
		}
		best, found = info, true
	}
	if err := sc.Err(); err != nil {
		return propagationInfo{}, err
	}
	if !found {
		return propagationInfo{}, fmt.Errorf("no mount found for %q in %s", path, mountinfo)
	}
	return best, nil
}

func pathWithin(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// unescapeMountinfo decodes the octal escapes (\040 etc.) of mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
