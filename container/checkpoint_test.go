package container

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/ociruntime"
	"github.com/noded/noded/store"
	"github.com/noded/noded/store/storetest"
)

// checkpointRuntime records checkpoint calls and writes a CRIU-like image file.
type checkpointRuntime struct {
	ociruntime.Runtime
	calls []ociruntime.CheckpointOpts
}

func (r *checkpointRuntime) Name() string { return "runc" }

func (r *checkpointRuntime) Checkpoint(_ context.Context, id string, o ociruntime.CheckpointOpts) error {
	r.calls = append(r.calls, o)
	return os.WriteFile(filepath.Join(o.ImagePath, "inventory.img"), []byte("criu "+id), 0o600)
}

func newCheckpointManager(t *testing.T, probe func(context.Context) error) (*Manager, *checkpointRuntime, string) {
	t.Helper()
	st := storetest.New(t)
	if err := st.AddSandbox(&store.Sandbox{ID: "pod1", Name: "pod", State: store.SandboxReady,
		Config: &runtimeapi.PodSandboxConfig{}}); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "ctr1")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion":"1.2.0"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for id, state := range map[string]store.ContainerState{"ctr1": store.ContainerRunning, "ctr2": store.ContainerExited} {
		if err := st.AddContainer(&store.Container{ID: id, SandboxID: "pod1", Name: id, State: state, Runtime: "runc",
			Bundle: bundle, Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: id}}}); err != nil {
			t.Fatal(err)
		}
	}
	rt := &checkpointRuntime{}
	m := &Manager{cfg: Config{Store: st, Runtimes: map[string]ociruntime.Runtime{"runc": rt}, DefaultRuntime: "runc",
		CheckpointProbe: probe}}
	return m, rt, bundle
}

func TestCheckpointWithoutCRIUIsFailedPreconditionNamingTheCause(t *testing.T) {
	cause := errors.New("criu check: exit status 1: Error (criu/vdso.c): vDSO: unexpected symbol layout")
	m, rt, _ := newCheckpointManager(t, func(context.Context) error { return cause })
	loc := filepath.Join(t.TempDir(), "ctr1.tar")
	err := m.Checkpoint(context.Background(), "ctr1", loc, 0)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("err = %v, want FailedPrecondition", err)
	}
	if !strings.Contains(err.Error(), "vDSO") || !strings.Contains(err.Error(), "CRIU") {
		t.Fatalf("error %q does not name the cause", err)
	}
	if len(rt.calls) != 0 {
		t.Fatalf("runtime checkpoint called %d times without CRIU", len(rt.calls))
	}
	if _, err := os.Stat(loc); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("archive written without CRIU: %v", err)
	}
}

func TestCheckpointWithCRIUWritesTheArchiveAndLeavesItRunning(t *testing.T) {
	m, rt, bundle := newCheckpointManager(t, func(context.Context) error { return nil })
	loc := filepath.Join(t.TempDir(), "sub", "ctr1.tar")
	if err := m.Checkpoint(context.Background(), "ctr1", loc, 0); err != nil {
		t.Fatal(err)
	}
	if len(rt.calls) != 1 || !rt.calls[0].LeaveRunning {
		t.Fatalf("runtime checkpoint calls = %+v, want one with LeaveRunning", rt.calls)
	}
	f, err := os.Open(loc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	for _, want := range []string{"checkpoint/inventory.img", "spec.dump", "config.dump"} {
		if !slices.Contains(names, want) {
			t.Errorf("archive %v lacks %s", names, want)
		}
	}
	// The work directory in the bundle is gone.
	left, _ := filepath.Glob(filepath.Join(bundle, "checkpoint-*"))
	if len(left) != 0 {
		t.Errorf("work dirs left in the bundle: %v", left)
	}
}

func TestCheckpointRefusals(t *testing.T) {
	m, rt, _ := newCheckpointManager(t, func(context.Context) error { return nil })
	dir := t.TempDir()
	for _, tc := range []struct {
		id, loc string
		want    error
	}{
		{"ctr2", filepath.Join(dir, "a.tar"), errdefs.ErrFailedPrecondition}, // exited
		{"nope", filepath.Join(dir, "b.tar"), errdefs.ErrNotFound},
		{"ctr1", "relative.tar", errdefs.ErrInvalidArgument},
		{"ctr1", "", errdefs.ErrInvalidArgument},
	} {
		if err := m.Checkpoint(context.Background(), tc.id, tc.loc, 0); !errors.Is(err, tc.want) {
			t.Errorf("Checkpoint(%q, %q) = %v, want %v", tc.id, tc.loc, err, tc.want)
		}
	}
	if len(rt.calls) != 0 {
		t.Fatalf("runtime checkpoint called for refused requests: %+v", rt.calls)
	}
}
