package container

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/store/storetest"
)

// BenchmarkList250 is ListContainers on a node with 250 pods of one container each, unfiltered (kubelet's
// relist), by pod sandbox and by label.
func BenchmarkList250(b *testing.B) {
	st := storetest.New(b)
	sbs, _ := storetest.Fill(b, st, 250)
	m := &Manager{cfg: Config{Store: st}}
	for _, bc := range []struct {
		name string
		f    *runtimeapi.ContainerFilter
	}{
		{"all", &runtimeapi.ContainerFilter{}},
		{"pod", &runtimeapi.ContainerFilter{PodSandboxId: sbs[7].ID}},
		{"label", &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": "00000007-0000-4000-8000-000000000007"}}},
		{"running", &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got := m.List(bc.f); len(got) == 0 {
					b.Fatal("no containers")
				}
			}
		})
	}
}
