package sandbox

import (
	"errors"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

// RunPodSandbox asks CheckSecurity before anything is made, and returns its answer.
func TestValidateAsksCheckSecurity(t *testing.T) {
	var asked *runtimeapi.PodSandboxConfig
	m := &Manager{cfg: Config{CheckSecurity: func(cfg *runtimeapi.PodSandboxConfig) error {
		asked = cfg
		if cfg.GetLinux().GetSecurityContext().GetSelinuxOptions() != nil {
			return errdefs.FailedPrecondition("selinux")
		}
		return nil
	}}}
	cfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"}}
	if err := m.validate(cfg, ""); err != nil || asked != cfg {
		t.Fatalf("validate = %v, asked %v", err, asked)
	}
	cfg.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
		SelinuxOptions: &runtimeapi.SELinuxOption{Type: "spc_t"}}}
	if err := m.validate(cfg, ""); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("validate = %v, want FailedPrecondition", err)
	}
}

// A bandwidth annotation that cannot be applied is InvalidArgument before anything is made; a pod on the host
// network gets no CNI setup and so is not refused for it.
func TestValidateBandwidth(t *testing.T) {
	m := &Manager{}
	cfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
		Annotations: map[string]string{"kubernetes.io/ingress-bandwidth": "lots"}}
	if err := m.validate(cfg, ""); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("malformed bandwidth: %v, want InvalidArgument", err)
	}
	cfg.Annotations["kubernetes.io/ingress-bandwidth"] = "10M"
	if err := m.validate(cfg, ""); err != nil {
		t.Fatalf("valid bandwidth: %v", err)
	}
	cfg.Annotations["kubernetes.io/egress-bandwidth"] = "2P"
	if err := m.validate(cfg, ""); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bandwidth above 1P: %v, want InvalidArgument", err)
	}
	cfg.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}}
	if err := m.validate(cfg, ""); err != nil {
		t.Fatalf("host-network pod with a bandwidth annotation: %v", err)
	}
}
