package container

import (
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/cdi"
	"github.com/noded/noded/errdefs"
)

// checkCDI returns the CDI devices the container asks for, after checking that each is well formed
// (InvalidArgument) and known to the node (FailedPrecondition), so that nothing is made for a container that
// cannot get its devices.
func (m *Manager) checkCDI(cfg *runtimeapi.ContainerConfig) ([]string, error) {
	devices, err := cdi.Devices(cfg)
	if err != nil || len(devices) == 0 {
		return nil, err
	}
	if m.cfg.CDI == nil {
		return nil, errdefs.FailedPrecondition("container asks for CDI devices %v, but CDI is not configured", devices)
	}
	if err := m.cfg.CDI.Check(devices); err != nil {
		return nil, err
	}
	return devices, nil
}
