package container

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/store"
	"github.com/noded/noded/store/storetest"
)

// TestFillImageSpecCopiesEveryField sets every field of the config's ImageSpec (whatever the CRI version adds)
// and expects the listed spec to be a copy of it with the user's image name.
func TestFillImageSpecCopiesEveryField(t *testing.T) {
	src := &runtimeapi.ImageSpec{}
	fields := src.ProtoReflect().Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			m := src.ProtoReflect().Mutable(fd).Map()
			m.Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfString("v-"+string(fd.Name())))
		case fd.Kind() == protoreflect.StringKind && !fd.IsList():
			src.ProtoReflect().Set(fd, protoreflect.ValueOfString("v-"+string(fd.Name())))
		default:
			t.Fatalf("ImageSpec field %s of kind %s: teach fillImageSpec and this test about it", fd.Name(), fd.Kind())
		}
	}
	c := &store.Container{ImageName: "busybox", Config: &runtimeapi.ContainerConfig{Image: src}}
	want := proto.Clone(src).(*runtimeapi.ImageSpec)
	want.Image = src.UserSpecifiedImage
	if got := imageSpec(c); !proto.Equal(got, want) {
		t.Errorf("imageSpec = %v, want %v", got, want)
	}
	src.UserSpecifiedImage = ""
	want = proto.Clone(src).(*runtimeapi.ImageSpec)
	want.Image = "busybox"
	if got := imageSpec(c); !proto.Equal(got, want) {
		t.Errorf("without a user-specified image: imageSpec = %v, want %v", got, want)
	}
	if got := imageSpec(&store.Container{ImageName: "busybox"}); got.Image != "busybox" {
		t.Errorf("no config image: %v", got)
	}
}

func listIDs(l []*runtimeapi.Container) []string {
	var ids []string
	for _, c := range l {
		ids = append(ids, c.Id)
	}
	return ids
}

func TestListFiltersAndOrder(t *testing.T) {
	st := storetest.New(t)
	sbs, ctrs := storetest.Fill(t, st, 3)
	// A second container in pod 1, exited, and one still being created (never listed).
	exited := &store.Container{ID: storetest.ID("exited", 0), SandboxID: sbs[1].ID, Name: "x", State: store.ContainerCreating,
		CreatedAt: 100, Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "x"},
			Labels: map[string]string{"io.kubernetes.pod.uid": "other"}}}
	if err := st.AddContainer(exited); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateContainer(exited.ID, func(c *store.Container) error { c.State = store.ContainerExited; return nil }); err != nil {
		t.Fatal(err)
	}
	creating := &store.Container{ID: storetest.ID("creating", 0), SandboxID: sbs[1].ID, Name: "y", State: store.ContainerCreating,
		CreatedAt: 101, Config: &runtimeapi.ContainerConfig{}}
	if err := st.AddContainer(creating); err != nil {
		t.Fatal(err)
	}
	m := &Manager{cfg: Config{Store: st}}
	all := []string{ctrs[0].ID, ctrs[1].ID, ctrs[2].ID, exited.ID}
	for _, tc := range []struct {
		name string
		f    *runtimeapi.ContainerFilter
		want []string
	}{
		{"nil", nil, all},
		{"empty", &runtimeapi.ContainerFilter{}, all},
		{"id prefix", &runtimeapi.ContainerFilter{Id: ctrs[2].ID[:12]}, []string{ctrs[2].ID}},
		{"id none", &runtimeapi.ContainerFilter{Id: "nope"}, nil},
		{"pod full", &runtimeapi.ContainerFilter{PodSandboxId: sbs[1].ID}, []string{ctrs[1].ID, exited.ID}},
		{"pod prefix", &runtimeapi.ContainerFilter{PodSandboxId: sbs[1].ID[:12]}, []string{ctrs[1].ID, exited.ID}},
		{"pod unknown", &runtimeapi.ContainerFilter{PodSandboxId: "unknown"}, nil},
		{"state", &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_EXITED}}, []string{exited.ID}},
		{"label", &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": ctrs[0].Config.Labels["io.kubernetes.pod.uid"]}}, []string{ctrs[0].ID}},
		{"label and pod", &runtimeapi.ContainerFilter{PodSandboxId: sbs[1].ID, LabelSelector: map[string]string{"io.kubernetes.pod.uid": "other"}}, []string{exited.ID}},
	} {
		if got := listIDs(m.List(tc.f)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: listed %q, want %q", tc.name, got, tc.want)
		}
	}
	got := m.List(&runtimeapi.ContainerFilter{Id: ctrs[0].ID})[0]
	c := ctrs[0]
	want := &runtimeapi.Container{Id: c.ID, PodSandboxId: c.SandboxID, Metadata: c.Config.Metadata,
		Image: &runtimeapi.ImageSpec{Image: c.ImageName}, ImageRef: c.ImageRef, ImageId: c.ImageID,
		State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: c.CreatedAt, Labels: c.Config.Labels,
		Annotations: c.Config.Annotations}
	if !proto.Equal(got, want) {
		t.Errorf("entry = %v, want %v", got, want)
	}
}
