package sandbox

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/store"
)

// UpdateResources records the pod-level resources kubelet sends with UpdatePodSandboxResources (KEP-1287, after
// it has resized the pod's cgroup itself), for PodSandboxStatus to report. noded owns no pod cgroup: a pod's
// cgroup parent is kubelet's pod cgroup, and pods without one share noded's default parent, which must not get
// one pod's limits; so nothing is written to a cgroup. A nil part keeps what was recorded. The values must have
// been validated. Updating to what is recorded is a no-op; an unknown or half-created pod is NotFound. The
// caller holds the sandbox's lock.
func (m *Manager) UpdateResources(id string, overhead, resources *runtimeapi.LinuxContainerResources) error {
	enc := func(r *runtimeapi.LinuxContainerResources) ([]byte, error) {
		if r == nil {
			return nil, nil
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encode pod resources: %w", err)
		}
		return b, nil
	}
	res, err := enc(resources)
	if err != nil {
		return err
	}
	ovh, err := enc(overhead)
	if err != nil {
		return err
	}
	sb, err := m.cfg.Store.Sandbox(id)
	if err != nil {
		return err
	}
	if sb.State == store.SandboxCreating {
		return errdefs.NotFound("pod sandbox %s not found", id)
	}
	if (res == nil || bytes.Equal(res, sb.ResourcesPB)) && (ovh == nil || bytes.Equal(ovh, sb.OverheadPB)) {
		return nil
	}
	_, err = m.cfg.Store.UpdateSandbox(id, func(s *store.Sandbox) error {
		if res != nil {
			s.ResourcesPB = res
		}
		if ovh != nil {
			s.OverheadPB = ovh
		}
		return nil
	})
	return err
}

// PodResources decodes the pod-level resources and overhead recorded for sb (nil when none).
func PodResources(sb *store.Sandbox) (resources, overhead *runtimeapi.LinuxContainerResources) {
	dec := func(b []byte) *runtimeapi.LinuxContainerResources {
		if len(b) == 0 {
			return nil
		}
		r := &runtimeapi.LinuxContainerResources{}
		if proto.Unmarshal(b, r) != nil {
			return nil
		}
		return r
	}
	return dec(sb.ResourcesPB), dec(sb.OverheadPB)
}
