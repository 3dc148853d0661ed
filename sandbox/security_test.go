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
