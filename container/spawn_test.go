package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/noded/noded/ociruntime"
)

// spawningRuntime is the fake runtime with ociruntime.Spawner, as the CLI has it: Spawn records what the bundle
// held then, Run what it holds when the create goes ahead.
type spawningRuntime struct {
	*fakeRuntime
	mu      sync.Mutex
	spawns  []spawnSeen
	aborted int
	failRun error
}

type spawnSeen struct {
	bundleDir, logDir bool // at Spawn
	config, tmp       bool // at Run: config.json and its temporary name present
	ran               bool
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func (r *spawningRuntime) Spawn(_ context.Context, o ociruntime.CreateOpts) (ociruntime.Pending, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spawns = append(r.spawns, spawnSeen{bundleDir: exists(o.Bundle), logDir: o.LogPath == "" || exists(filepath.Dir(o.LogPath))})
	return &fakePending{r: r, o: o, i: len(r.spawns) - 1}, nil
}

type fakePending struct {
	r *spawningRuntime
	o ociruntime.CreateOpts
	i int
}

func (p *fakePending) Run(ctx context.Context) (int, error) {
	p.r.mu.Lock()
	s := &p.r.spawns[p.i]
	s.ran = true
	s.config, s.tmp = exists(filepath.Join(p.o.Bundle, "config.json")), exists(filepath.Join(p.o.Bundle, configTmpName))
	failRun := p.r.failRun
	p.r.mu.Unlock()
	if failRun != nil {
		return 0, failRun
	}
	return p.r.Create(ctx, p.o)
}

func (p *fakePending) Abort() {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	p.r.aborted++
}

func newSpawningEnv(t *testing.T) (*lcEnv, *spawningRuntime) {
	e := newLifecycleEnv(t)
	sr := &spawningRuntime{fakeRuntime: e.rt}
	e.m.cfg.Runtimes = map[string]ociruntime.Runtime{"runc": sr}
	return e, sr
}

// With a runtime that spawns, conmon starts once the bundle dir and the log dir exist, and the create goes ahead
// only when config.json has its name (a conmon orphaned before that would find none).
func TestCreateSpawnsBeforeTheBundleIsComplete(t *testing.T) {
	e, sr := newSpawningEnv(t)
	ctx := context.Background()
	id, err := e.m.Create(ctx, e.sb, ctrConfig("app"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.spawns) != 1 || sr.aborted != 0 {
		t.Fatalf("spawns %+v, aborted %d: want one, none aborted", sr.spawns, sr.aborted)
	}
	if s := sr.spawns[0]; !s.bundleDir || !s.logDir || !s.ran || !s.config || s.tmp {
		t.Fatalf("spawn saw %+v: want the bundle and log dirs at Spawn, config.json (and no temporary) at Run", s)
	}
	if err := e.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Stop(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t)
}

// A creation that fails after the spawn aborts the waiting conmon (or, when the create ran and failed, leaves
// it to Run's own cleanup) and is rolled back completely.
func TestCreateAbortsTheSpawnedConmon(t *testing.T) {
	for _, step := range []string{"Prepare", "Mount", "Run"} {
		t.Run(step, func(t *testing.T) {
			e, sr := newSpawningEnv(t)
			switch step {
			case "Prepare":
				e.snaps.failPrepare = errInjected
			case "Mount":
				e.host.failMount = errInjected
			case "Run":
				sr.failRun = errInjected
			}
			if _, err := e.m.Create(context.Background(), e.sb, ctrConfig("app")); !errors.Is(err, errInjected) {
				t.Fatalf("Create = %v, want the injected failure", err)
			}
			wantAborted := 1
			if step == "Run" {
				wantAborted = 0
			}
			if len(sr.spawns) != 1 || sr.aborted != wantAborted {
				t.Errorf("spawns %d, aborted %d: want 1, %d", len(sr.spawns), sr.aborted, wantAborted)
			}
			e.assertClean(t)
		})
	}
}
