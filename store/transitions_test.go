package store

import (
	"errors"
	"path/filepath"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

// Every pair of sandbox states, through the store's update path: the legal ones are persisted, the others are
// FailedPrecondition and leave the record unchanged.
func TestSandboxTransitions(t *testing.T) {
	all := []SandboxState{SandboxCreating, SandboxReady, SandboxNotReady, SandboxUnknown}
	legal := map[[2]SandboxState]bool{
		{SandboxCreating, SandboxReady}: true, {SandboxCreating, SandboxUnknown}: true,
		{SandboxReady, SandboxNotReady}: true, {SandboxReady, SandboxUnknown}: true,
		{SandboxNotReady, SandboxUnknown}: true, {SandboxUnknown, SandboxNotReady}: true,
	}
	db := openDB(t, filepath.Join(t.TempDir(), "s.db"))
	defer db.Close()
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	for i, from := range all {
		for j, to := range all {
			sb := &Sandbox{ID: NewID(), Name: string(rune('a'+i)) + string(rune('a'+j)), State: from,
				Config: &runtimeapi.PodSandboxConfig{}}
			if err := s.AddSandbox(sb); err != nil {
				t.Fatal(err)
			}
			got, err := s.UpdateSandbox(sb.ID, func(x *Sandbox) error { x.State, x.Error = to, "changed"; return nil })
			want := from == to || legal[[2]SandboxState{from, to}]
			switch {
			case want && err != nil:
				t.Errorf("%s → %s refused: %v", from, to, err)
			case !want && !errors.Is(err, errdefs.ErrFailedPrecondition):
				t.Errorf("%s → %s: %v, want FailedPrecondition", from, to, err)
			case !want:
				if cur, _ := s.Sandbox(sb.ID); cur.State != from || cur.Error != "" || got.State != from {
					t.Errorf("%s → %s refused but the record changed: %+v", from, to, cur)
				}
			}
		}
	}
}

// Every pair of container states, through the store's update path.
func TestContainerTransitions(t *testing.T) {
	all := []ContainerState{ContainerCreating, ContainerCreated, ContainerRunning, ContainerExited, ContainerUnknown}
	legal := map[[2]ContainerState]bool{
		{ContainerCreating, ContainerCreated}: true, {ContainerCreating, ContainerUnknown}: true, {ContainerCreating, ContainerExited}: true,
		{ContainerCreated, ContainerRunning}: true, {ContainerCreated, ContainerExited}: true, {ContainerCreated, ContainerUnknown}: true,
		{ContainerRunning, ContainerExited}: true, {ContainerRunning, ContainerUnknown}: true,
		{ContainerUnknown, ContainerExited}: true,
	}
	db := openDB(t, filepath.Join(t.TempDir(), "s.db"))
	defer db.Close()
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	sb := &Sandbox{ID: NewID(), Name: "pod", Config: &runtimeapi.PodSandboxConfig{}}
	if err := s.AddSandbox(sb); err != nil {
		t.Fatal(err)
	}
	for i, from := range all {
		for j, to := range all {
			c := &Container{ID: NewID(), SandboxID: sb.ID, Name: string(rune('a'+i)) + string(rune('a'+j)), State: from,
				Config: &runtimeapi.ContainerConfig{}}
			if err := s.AddContainer(c); err != nil {
				t.Fatal(err)
			}
			_, err := s.UpdateContainer(c.ID, func(x *Container) error { x.State, x.Reason = to, "changed"; return nil })
			want := from == to || legal[[2]ContainerState{from, to}]
			switch {
			case want && err != nil:
				t.Errorf("%s → %s refused: %v", from, to, err)
			case !want && !errors.Is(err, errdefs.ErrFailedPrecondition):
				t.Errorf("%s → %s: %v, want FailedPrecondition", from, to, err)
			case !want:
				if cur, _ := s.Container(c.ID); cur.State != from || cur.Reason != "" {
					t.Errorf("%s → %s refused but the record changed: %+v", from, to, cur)
				}
			}
		}
	}
}
