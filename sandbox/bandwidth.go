package sandbox

import (
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/cni"
)

// validateBandwidth refuses a pod whose bandwidth annotations cannot be applied, as containerd does: a value that
// is not a quantity or lies outside kubelet's limits is InvalidArgument, not silently unshaped traffic. A pod on
// the host network gets no CNI setup, so its annotations are not read.
func validateBandwidth(cfg *runtimeapi.PodSandboxConfig) error {
	if cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE {
		return nil
	}
	if _, err := cni.ParseBandwidth(cfg.GetAnnotations()); err != nil {
		return fmt.Errorf("pod bandwidth: %w", err)
	}
	return nil
}
