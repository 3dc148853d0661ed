package sandbox

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/store"
	"github.com/noded/noded/store/storetest"
)

func TestListFiltersAndOrder(t *testing.T) {
	st := storetest.New(t)
	sbs, _ := storetest.Fill(t, st, 3)
	if _, err := st.UpdateSandbox(sbs[1].ID, func(s *store.Sandbox) error { s.State = store.SandboxNotReady; return nil }); err != nil {
		t.Fatal(err)
	}
	creating := &store.Sandbox{ID: "creating", Name: "c", State: store.SandboxCreating, CreatedAt: 100, Config: &runtimeapi.PodSandboxConfig{}}
	if err := st.AddSandbox(creating); err != nil {
		t.Fatal(err)
	}
	m := &Manager{cfg: Config{Store: st}}
	ids := func(l []*runtimeapi.PodSandbox) []string {
		var out []string
		for _, p := range l {
			out = append(out, p.Id)
		}
		return out
	}
	all := []string{sbs[0].ID, sbs[1].ID, sbs[2].ID}
	for _, tc := range []struct {
		name string
		f    *runtimeapi.PodSandboxFilter
		want []string
	}{
		{"nil", nil, all},
		{"empty", &runtimeapi.PodSandboxFilter{}, all},
		{"id prefix", &runtimeapi.PodSandboxFilter{Id: sbs[2].ID[:12]}, []string{sbs[2].ID}},
		{"creating is never listed", &runtimeapi.PodSandboxFilter{Id: "creating"}, nil},
		{"ready", &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}, []string{sbs[0].ID, sbs[2].ID}},
		{"not ready", &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}}, []string{sbs[1].ID}},
		{"label", &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": "web-2", "app": "web"}}, []string{sbs[2].ID}},
		{"label mismatch", &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": "web-2", "app": "db"}}, nil},
	} {
		if got := ids(m.List(tc.f)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: listed %q, want %q", tc.name, got, tc.want)
		}
	}
	// A change shows in the next list.
	if _, err := st.UpdateSandbox(sbs[0].ID, func(s *store.Sandbox) error { s.State = store.SandboxNotReady; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := m.List(&runtimeapi.PodSandboxFilter{Id: sbs[0].ID}); len(got) != 1 || got[0].State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("after the update: %v", got)
	}
	sb := sbs[2]
	want := &runtimeapi.PodSandbox{Id: sb.ID, Metadata: sb.Config.Metadata, State: runtimeapi.PodSandboxState_SANDBOX_READY,
		CreatedAt: sb.CreatedAt, Labels: sb.Config.Labels, Annotations: sb.Config.Annotations, RuntimeHandler: sb.RuntimeHandler}
	if got := m.List(&runtimeapi.PodSandboxFilter{Id: sb.ID}); len(got) != 1 || !proto.Equal(got[0], want) {
		t.Errorf("entry = %v, want %v", got, want)
	}
}
