package ociruntime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/noded/noded/errdefs"
)

// hideConfig moves a bundle's config.json aside, as the container manager keeps it until right before Run.
func hideConfig(t *testing.T, bundle string) (restore func()) {
	t.Helper()
	cfg := filepath.Join(bundle, "config.json")
	if err := os.Rename(cfg, cfg+".tmp"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Rename(cfg+".tmp", cfg); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSpawnWaitsForRun(t *testing.T) {
	r := newTestCLI(t)
	ctx := context.Background()
	id := "spawn-run"
	bundle := writeBundle(t, id, "sleep 30")
	restore := hideConfig(t, bundle)
	p, err := r.spawn(CreateOpts{ID: id, Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	// Blocked on its start pipe, conmon has run nothing: the runtime does not know the container.
	if _, err := r.State(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("state before Run: %v, want NotFound", err)
	}
	restore()
	pid, err := p.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Delete(ctx, id, true); err != nil {
			t.Errorf("delete: %v", err)
		}
	})
	st, err := r.State(ctx, id)
	if err != nil || st.Status != StatusCreated || st.Pid != pid || pid <= 0 {
		t.Fatalf("state after Run: %+v %v, want created with pid %d", st, err, pid)
	}
}

func TestSpawnAbort(t *testing.T) {
	r := newTestCLI(t)
	ctx := context.Background()
	id := "spawn-abort"
	bundle := writeBundle(t, id, "true")
	p, err := r.spawn(CreateOpts{ID: id, Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	p.Abort()
	if p.cmd.ProcessState == nil {
		t.Error("conmon not reaped after Abort")
	}
	if _, err := os.Stat(r.persistDir(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("persist dir left after Abort: %v", err)
	}
	if _, err := r.State(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("state after Abort: %v, want NotFound", err)
	}
	if left := cgroupDirs(id); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

func TestRunWithoutConfig(t *testing.T) {
	r := newTestCLI(t)
	ctx := context.Background()
	id := "spawn-noconfig"
	bundle := writeBundle(t, id, "true")
	hideConfig(t, bundle)
	p, err := r.spawn(CreateOpts{ID: id, Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run(ctx); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Run without config.json: %v, want InvalidArgument", err)
	}
	if _, err := os.Stat(r.persistDir(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("persist dir left: %v", err)
	}
	if _, err := r.Spawn(ctx, CreateOpts{ID: id, Bundle: filepath.Join(bundle, "missing")}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Spawn with a missing bundle dir: %v, want InvalidArgument", err)
	}
}

// TestSpawnOrphaned is a noded that dies between Spawn and Run: conmon reads end of file on its start pipe and
// goes on, and its runtime create fails because config.json is not in place yet; the runtime's delete (what
// recovery's rollback runs) then leaves nothing.
func TestSpawnOrphaned(t *testing.T) {
	r := newTestCLI(t)
	ctx := context.Background()
	id := "spawn-orphan"
	bundle := writeBundle(t, id, "sleep 30")
	hideConfig(t, bundle)
	p, err := r.spawn(CreateOpts{ID: id, Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	// Whatever a failing run leaves (a conmon whose create succeeded after all): killed and deleted.
	t.Cleanup(func() {
		if err := r.Delete(context.Background(), id, true); err != nil && !errdefs.IsNotFound(err) {
			t.Errorf("cleanup: delete %s: %v", id, err)
		}
	})
	p.startW.Close() // what noded's death does to the pipe
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("conmon launcher: %v", err)
	}
	if _, err := readSync(p.syncR); err == nil {
		t.Fatal("the orphaned conmon created a container without config.json")
	}
	p.syncR.Close()
	if err := r.Delete(ctx, id, true); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := r.State(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("state: %v, want NotFound", err)
	}
	for _, p := range []string{r.persistDir(id), r.exitFile(id)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", p, err)
		}
	}
	if left := cgroupDirs(id); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
}
