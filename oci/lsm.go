package oci

import (
	"os"
	"path/filepath"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

// SELinuxMode is the state of SELinux on the host.
type SELinuxMode string

// SELinux modes.
const (
	SELinuxDisabled   SELinuxMode = "" // not in the kernel, not enabled, or no policy loaded
	SELinuxPermissive SELinuxMode = "permissive"
	SELinuxEnforcing  SELinuxMode = "enforcing"
)

// DetectLSM reads, from the sysfs tree below root ("/" for the host), whether AppArmor is enabled and the SELinux
// mode. AppArmor counts as enabled as runc decides it (its securityfs directory exists and the module parameter
// says Y), so that noded applies a profile exactly where the runtime will. SELinux is enforcing or permissive by
// selinuxfs's enforce file, which exists only once a policy is loaded.
func DetectLSM(root string) (appArmor bool, selinux SELinuxMode) {
	if fi, err := os.Stat(filepath.Join(root, "sys/kernel/security/apparmor")); err == nil && fi.IsDir() {
		b, err := os.ReadFile(filepath.Join(root, "sys/module/apparmor/parameters/enabled"))
		appArmor = err == nil && strings.HasPrefix(string(b), "Y")
	}
	if b, err := os.ReadFile(filepath.Join(root, "sys/fs/selinux/enforce")); err == nil {
		switch strings.TrimSpace(string(b)) {
		case "1":
			selinux = SELinuxEnforcing
		case "0":
			selinux = SELinuxPermissive
		}
	}
	return appArmor, selinux
}

// hasSELinuxLabel reports whether o asks for any label part.
func hasSELinuxLabel(o *runtimeapi.SELinuxOption) bool {
	return o.GetUser() != "" || o.GetRole() != "" || o.GetType() != "" || o.GetLevel() != ""
}

// errSELinux is the answer to SELinux labels on an enforcing host: noded cannot label processes or relabel
// volumes, and running them with the wrong (or no) label is not what the pod asked for.
func errSELinux(what string) error {
	return errdefs.FailedPrecondition("%s: SELinux is enforcing on this host and noded does not support SELinux labels", what)
}

// CheckPodSELinux refuses a pod sandbox config with SELinux options on a host where SELinux is enforcing. On
// other hosts the options have no effect, as before.
func CheckPodSELinux(h HostInfo, cfg *runtimeapi.PodSandboxConfig) error {
	if h.SELinux != SELinuxEnforcing {
		return nil
	}
	if hasSELinuxLabel(cfg.GetLinux().GetSecurityContext().GetSelinuxOptions()) {
		return errSELinux("pod selinux_options")
	}
	return nil
}

// checkSELinux is CheckPodSELinux for a container: its own and its pod's options and the relabel flag of its
// mounts.
func checkSELinux(p Params, sc *runtimeapi.LinuxContainerSecurityContext) error {
	if p.Host.SELinux != SELinuxEnforcing {
		return nil
	}
	if hasSELinuxLabel(sc.GetSelinuxOptions()) {
		return errSELinux("container selinux_options")
	}
	for _, m := range p.Config.GetMounts() {
		if m.GetSelinuxRelabel() {
			return errSELinux("mount " + m.GetContainerPath() + ": selinux_relabel")
		}
	}
	return CheckPodSELinux(p.Host, p.SandboxConfig)
}
