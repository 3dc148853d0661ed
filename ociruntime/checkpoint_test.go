package ociruntime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckpointRunsRuncCheckpointLeavingItRunning(t *testing.T) {
	dir := t.TempDir()
	bin, args := filepath.Join(dir, "fakeruntime"), filepath.Join(dir, "args")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho \"$@\" > "+args+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Name: "runc", Path: bin, ConmonPath: "/bin/true", Root: filepath.Join(dir, "root"),
		ExitDir: filepath.Join(dir, "exits"), PersistRoot: filepath.Join(dir, "persist")})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Checkpoint(context.Background(), "c1", CheckpointOpts{ImagePath: "/b/img", WorkPath: "/b/work", LeaveRunning: true}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(args)
	want := "--root " + filepath.Join(dir, "root") + " checkpoint --image-path /b/img --work-path /b/work --leave-running c1\n"
	if string(got) != want {
		t.Fatalf("runtime called with %q, want %q", got, want)
	}
	if err := r.Checkpoint(context.Background(), "c1", CheckpointOpts{ImagePath: "img", WorkPath: "/w"}); err == nil {
		t.Fatal("relative image path accepted")
	}
}

func TestCRIUCheckNamesTheCause(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	if err := CRIUCheck(context.Background()); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("without criu: %v", err)
	}
	criu := filepath.Join(dir, "criu")
	failing := "#!/bin/sh\necho 'Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds' >&2\nexit 1\n"
	if err := os.WriteFile(criu, []byte(failing), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CRIUCheck(context.Background()); err == nil || !strings.Contains(err.Error(), "vDSO area bounds") {
		t.Fatalf("failing criu check: %v", err)
	}
	if err := os.WriteFile(criu, []byte("#!/bin/sh\necho Looks good.\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CRIUCheck(context.Background()); err != nil {
		t.Fatalf("passing criu check: %v", err)
	}
}
