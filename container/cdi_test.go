package container

import (
	"errors"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

type knownDevices []string

func (k knownDevices) Check(devices []string) error {
	for _, d := range devices {
		found := false
		for _, x := range k {
			found = found || x == d
		}
		if !found {
			return errdefs.FailedPrecondition("unknown CDI device %s", d)
		}
	}
	return nil
}

func (knownDevices) Inject(*specs.Spec, []string) error { return nil }

func TestCheckCDIBeforeAnythingIsMade(t *testing.T) {
	withDevice := func(name string) *runtimeapi.ContainerConfig {
		return &runtimeapi.ContainerConfig{CDIDevices: []*runtimeapi.CDIDevice{{Name: name}}}
	}
	m := &Manager{cfg: Config{CDI: knownDevices{"vendor.com/gpu=0"}}}
	if devs, err := m.checkCDI(withDevice("vendor.com/gpu=0")); err != nil || len(devs) != 1 {
		t.Fatalf("known device: %v, %v", devs, err)
	}
	if _, err := m.checkCDI(withDevice("vendor.com/gpu=1")); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("unknown device: %v", err)
	}
	if _, err := m.checkCDI(withDevice("gpu1")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("malformed device: %v", err)
	}
	if devs, err := m.checkCDI(&runtimeapi.ContainerConfig{}); err != nil || devs != nil {
		t.Fatalf("no devices: %v, %v", devs, err)
	}
	// Without a CDI registry a request for devices fails rather than running without them.
	if _, err := (&Manager{}).checkCDI(withDevice("vendor.com/gpu=0")); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("no registry: %v", err)
	}
}
