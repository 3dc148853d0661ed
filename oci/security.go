package oci

import (
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/oci/seccomp"
)

// capabilityNames lists the Linux capabilities by number.
var capabilityNames = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// DefaultCapabilities returns the capability set of unprivileged containers.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
		"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
		"CAP_AUDIT_WRITE",
	}
}

// DefaultMaskedPaths returns the paths masked in unprivileged containers.
func DefaultMaskedPaths() []string {
	return []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
		"/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
}

// DefaultReadonlyPaths returns the paths made read-only in unprivileged containers.
func DefaultReadonlyPaths() []string {
	return []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
}

// allCapabilities returns the capabilities in mask (all known ones when mask is 0).
func allCapabilities(mask uint64) []string {
	var out []string
	for i, name := range capabilityNames {
		if mask == 0 || mask&(1<<uint(i)) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// normalizeCap turns "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" into "CAP_NET_ADMIN".
func normalizeCap(field, c string) (string, error) {
	name := strings.ToUpper(strings.TrimSpace(c))
	if !strings.HasPrefix(name, "CAP_") {
		name = "CAP_" + name
	}
	if !slices.Contains(capabilityNames[:], name) {
		return "", errdefs.InvalidArgument("%s: unknown capability %q", field, c)
	}
	return name, nil
}

func isAll(c string) bool { return strings.EqualFold(strings.TrimSpace(c), "ALL") }

// Capabilities computes the capability set from the CRI add/drop lists: "ALL" in add grants every capability,
// "ALL" in drop starts from none; then individual adds are applied, then individual drops.
func Capabilities(c *runtimeapi.Capability, hostCaps uint64) ([]string, error) {
	caps := DefaultCapabilities()
	if slices.ContainsFunc(c.GetAddCapabilities(), isAll) {
		caps = allCapabilities(hostCaps)
	}
	if slices.ContainsFunc(c.GetDropCapabilities(), isAll) {
		caps = nil
	}
	for _, a := range c.GetAddCapabilities() {
		if isAll(a) {
			continue
		}
		name, err := normalizeCap("add_capabilities", a)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(caps, name) {
			caps = append(caps, name)
		}
	}
	for _, d := range c.GetDropCapabilities() {
		if isAll(d) {
			continue
		}
		name, err := normalizeCap("drop_capabilities", d)
		if err != nil {
			return nil, err
		}
		caps = slices.DeleteFunc(caps, func(x string) bool { return x == name })
	}
	return caps, nil
}

func security(p Params, s *specs.Spec, sc *runtimeapi.LinuxContainerSecurityContext, uid uint32) error {
	privileged := sc.GetPrivileged()
	var caps []string
	var ambient []string
	if privileged {
		caps = allCapabilities(p.Host.Capabilities)
	} else {
		var err error
		if caps, err = Capabilities(sc.GetCapabilities(), p.Host.Capabilities); err != nil {
			return err
		}
		for _, a := range sc.GetCapabilities().GetAddAmbientCapabilities() {
			name, err := normalizeCap("add_ambient_capabilities", a)
			if err != nil {
				return err
			}
			if !slices.Contains(caps, name) {
				caps = append(caps, name)
			}
			if !slices.Contains(ambient, name) {
				ambient = append(ambient, name)
			}
		}
	}
	pc := &specs.LinuxCapabilities{
		Bounding:  caps,
		Effective: slices.Clone(caps),
		Permitted: slices.Clone(caps),
	}
	// Ambient capabilities only matter for non-root users; the kernel requires them to be inheritable too.
	if uid != 0 && len(ambient) > 0 {
		pc.Ambient = ambient
		pc.Inheritable = slices.Clone(ambient)
	}
	s.Process.Capabilities = pc
	s.Process.NoNewPrivileges = sc.GetNoNewPrivs() && !privileged

	if !privileged {
		s.Linux.MaskedPaths = DefaultMaskedPaths()
		s.Linux.ReadonlyPaths = DefaultReadonlyPaths()
		// kubelet sends the lists explicitly: the defaults for procMount Default, empty ones for Unmasked, which
		// it allows only with a user namespace (hostUsers: false). The CRI wire format cannot tell an empty list
		// from one not sent, so an empty list means "none" only in a user namespace, as kubelet enforces; outside
		// one it keeps the defaults.
		userns := slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UserNamespace })
		if m := sc.GetMaskedPaths(); len(m) > 0 || userns {
			s.Linux.MaskedPaths = slices.Clone(m)
		}
		if r := sc.GetReadonlyPaths(); len(r) > 0 || userns {
			s.Linux.ReadonlyPaths = slices.Clone(r)
		}
		for _, list := range [][]string{s.Linux.MaskedPaths, s.Linux.ReadonlyPaths} {
			for _, path := range list {
				if !isCleanAbs(path) {
					return errdefs.InvalidArgument("masked/readonly path %q must be absolute and clean", path)
				}
			}
		}
	}

	if err := applySeccomp(p, s, sc, caps); err != nil {
		return err
	}
	return applyAppArmor(p, s, sc)
}

// profileFromLegacy turns the deprecated seccomp_profile_path / apparmor_profile strings into a SecurityProfile.
func profileFromLegacy(field, v string) (*runtimeapi.SecurityProfile, error) {
	switch {
	case v == "" || v == "unconfined":
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
	case v == "runtime/default" || v == "docker/default":
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
	case strings.HasPrefix(v, "localhost/"):
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost,
			LocalhostRef: strings.TrimPrefix(v, "localhost/")}, nil
	}
	return nil, errdefs.InvalidArgument("%s: unknown profile %q", field, v)
}

func applySeccomp(p Params, s *specs.Spec, sc *runtimeapi.LinuxContainerSecurityContext, caps []string) error {
	prof := sc.GetSeccomp()
	if prof == nil {
		var err error
		//lint:ignore SA1019 the deprecated field is still sent by older kubelets
		if prof, err = profileFromLegacy("seccomp_profile_path", sc.GetSeccompProfilePath()); err != nil {
			return err
		}
	}
	if sc.GetPrivileged() {
		return nil
	}
	var profile *seccomp.Profile
	switch prof.GetProfileType() {
	case runtimeapi.SecurityProfile_Unconfined:
		return nil
	case runtimeapi.SecurityProfile_RuntimeDefault:
		if !p.Runtime.Seccomp {
			return nil // nothing to enforce with; the pod still runs, as with other runtimes
		}
		profile = seccomp.DefaultProfile()
	case runtimeapi.SecurityProfile_Localhost:
		ref := prof.GetLocalhostRef()
		if ref == "" {
			return errdefs.InvalidArgument("seccomp: localhost profile without localhost_ref")
		}
		if !p.Runtime.Seccomp {
			return errdefs.InvalidArgument("seccomp: localhost profile %q requested but seccomp is not supported by the runtime", ref)
		}
		var err error
		if profile, err = seccomp.Load(ref); err != nil {
			if errdefs.IsNotFound(err) {
				return errdefs.InvalidArgument("seccomp: %v", err)
			}
			return err
		}
	default:
		return errdefs.InvalidArgument("seccomp: unknown profile type %v", prof.GetProfileType())
	}
	out, err := profile.ToOCI(seccomp.Target{Caps: caps, Kernel: p.Host.Kernel})
	if err != nil {
		return err
	}
	s.Linux.Seccomp = out
	return nil
}

func applyAppArmor(p Params, s *specs.Spec, sc *runtimeapi.LinuxContainerSecurityContext) error {
	prof := sc.GetApparmor()
	if prof == nil {
		var err error
		//lint:ignore SA1019 the deprecated field is still sent by older kubelets
		if prof, err = profileFromLegacy("apparmor_profile", sc.GetApparmorProfile()); err != nil {
			return err
		}
		//lint:ignore SA1019 the deprecated field is still sent by older kubelets
		if sc.GetApparmorProfile() == "" {
			prof = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		}
	}
	switch prof.GetProfileType() {
	case runtimeapi.SecurityProfile_Unconfined:
		return nil
	case runtimeapi.SecurityProfile_RuntimeDefault:
		if p.Host.AppArmor && !sc.GetPrivileged() {
			s.Process.ApparmorProfile = p.AppArmorDefaultProfile
		}
		return nil
	case runtimeapi.SecurityProfile_Localhost:
		if !p.Host.AppArmor {
			return errdefs.InvalidArgument("apparmor: profile %q requested but AppArmor is not enabled on this host", prof.GetLocalhostRef())
		}
		if prof.GetLocalhostRef() == "" {
			return errdefs.InvalidArgument("apparmor: localhost profile without localhost_ref")
		}
		if !sc.GetPrivileged() {
			s.Process.ApparmorProfile = prof.GetLocalhostRef()
		}
		return nil
	}
	return errdefs.InvalidArgument("apparmor: unknown profile type %v", prof.GetProfileType())
}
