package sandbox

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/store/storetest"
)

// BenchmarkList250 is ListPodSandbox on a node with 250 pods, unfiltered (kubelet's relist) and by label.
func BenchmarkList250(b *testing.B) {
	st := storetest.New(b)
	storetest.Fill(b, st, 250)
	m := &Manager{cfg: Config{Store: st}}
	for _, bc := range []struct {
		name string
		f    *runtimeapi.PodSandboxFilter
	}{
		{"all", &runtimeapi.PodSandboxFilter{}},
		{"label", &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": "00000007-0000-4000-8000-000000000007"}}},
		{"ready", &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got := m.List(bc.f); len(got) == 0 {
					b.Fatal("no sandboxes")
				}
			}
		})
	}
}
