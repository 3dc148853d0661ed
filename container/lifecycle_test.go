package container

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/oci"
	"github.com/noded/noded/ociruntime"
	"github.com/noded/noded/store"
)

// assertClean fails when a container left a record, a runtime container, a snapshot, a mount or a bundle.
func (e *lcEnv) assertClean(t *testing.T) {
	t.Helper()
	if cs := e.st.Containers(""); len(cs) != 0 {
		t.Errorf("records left: %+v", cs)
	}
	if n := e.rt.live(); n != 0 {
		t.Errorf("%d runtime containers left", n)
	}
	if len(e.snaps.active) != 0 {
		t.Errorf("snapshots left: %v", e.snaps.active)
	}
	if len(e.host.mounted) != 0 {
		t.Errorf("mounts left: %v", e.host.mounted)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.state, "containers")); len(ents) != 0 {
		t.Errorf("bundles left: %v", ents)
	}
}

func TestContainerLifecycle(t *testing.T) {
	e := newLifecycleEnv(t)
	ctx := context.Background()
	id, err := e.m.Create(ctx, e.sb, ctrConfig("app"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := e.st.Container(id)
	if c.State != store.ContainerCreated || c.Orphaned || c.Pid == 0 || c.ImageRef == "" {
		t.Fatalf("after Create: %+v", c)
	}
	if e.snaps.active[c.SnapshotKey] != "sha256:layer" || !e.host.mounted[c.Rootfs] {
		t.Fatalf("rootfs: snapshots %v, mounts %v", e.snaps.active, e.host.mounted)
	}
	// The container's own view of its nosuid,nodev root gets both back from its created init, not from a hook.
	if pid := e.host.setuid[c.Rootfs]; pid != c.Pid {
		t.Fatalf("AllowSetuid: %v, want %s from pid %d", e.host.setuid, c.Rootfs, c.Pid)
	}
	if _, err := os.Stat(filepath.Join(c.Bundle, "config.json")); err != nil {
		t.Fatal(err)
	}
	if o := e.rt.created[0]; o.Bundle != c.Bundle || o.LogPath != filepath.Join(e.sb.Config.LogDirectory, "app.log") {
		t.Fatalf("runtime create: %+v", o)
	}
	if _, err := e.m.Create(ctx, e.sb, ctrConfig("app")); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second Create of the name: %v, want AlreadyExists", err)
	}

	if err := e.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if c, _ = e.st.Container(id); c.State != store.ContainerRunning || c.StartedAt == 0 {
		t.Fatalf("after Start: %+v", c)
	}
	if err := e.m.Start(ctx, id); err != nil {
		t.Fatalf("Start of a running container: %v", err)
	}
	if err := e.m.Stop(ctx, id, time.Minute); err != nil {
		t.Fatal(err)
	}
	if c, _ = e.st.Container(id); c.State != store.ContainerExited || c.ExitCode != 128+int32(syscall.SIGTERM) || c.Reason != "Error" {
		t.Fatalf("after Stop: %+v", c)
	}
	if e.rt.kills[0] != syscall.SIGTERM {
		t.Fatalf("kills %v, want SIGTERM first", e.rt.kills)
	}
	if err := e.m.Stop(ctx, id, time.Minute); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := e.m.Start(ctx, id); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Start of an exited container: %v, want FailedPrecondition", err)
	}
	if err := e.m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t)
	if err := e.m.Remove(ctx, id); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

// The exit time comes from a file's mtime, which the kernel takes from a clock up to a tick behind the
// one StartedAt is read from: a container that exits at once is not reported as finished before it started.
func TestFinishedNeverBeforeStarted(t *testing.T) {
	e := newLifecycleEnv(t)
	ctx := context.Background()
	id, err := e.m.Create(ctx, e.sb, ctrConfig("quick"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	c, _ := e.st.Container(id)
	e.m.HandleExit(ociruntime.ExitEvent{ID: id, ExitCode: 0, ExitedAt: time.Unix(0, c.StartedAt).Add(-3 * time.Millisecond)})
	if c, _ = e.st.Container(id); c.State != store.ContainerExited || c.FinishedAt != c.StartedAt || c.Reason != "Completed" {
		t.Fatalf("after an exit stamped before the start: %+v, want EXITED Completed with FinishedAt == StartedAt", c)
	}
	later := time.Unix(0, c.StartedAt).Add(time.Second)
	id2, err := e.m.Create(ctx, e.sb, ctrConfig("slow"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start(ctx, id2); err != nil {
		t.Fatal(err)
	}
	e.m.HandleExit(ociruntime.ExitEvent{ID: id2, ExitCode: 3, ExitedAt: later})
	if c, _ = e.st.Container(id2); c.FinishedAt != later.UnixNano() || c.ExitCode != 3 {
		t.Fatalf("after a later exit: %+v, want FinishedAt %d", c, later.UnixNano())
	}
}

// The bundle's ociVersion is one the handler's runtime takes: crun 1.8 (no features command) refuses anything
// newer than 1.1.x with "unknown version specified".
func TestBundleOCIVersionFitsTheRuntime(t *testing.T) {
	for _, tc := range []struct {
		name  string
		feats *ociruntime.Features
		want  string
	}{
		{"no features command", nil, oci.FallbackOCIVersion},
		{"older runtime", &ociruntime.Features{Raw: &features.Features{OCIVersionMax: "1.1.0"}}, "1.1.0"},
		{"newer runtime", &ociruntime.Features{Raw: &features.Features{OCIVersionMax: "9.0.0"}}, specs.Version},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newLifecycleEnv(t)
			e.rt.features = tc.feats
			id, err := e.m.Create(context.Background(), e.sb, ctrConfig("app"))
			if err != nil {
				t.Fatal(err)
			}
			c, _ := e.st.Container(id)
			data, err := os.ReadFile(filepath.Join(c.Bundle, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			var spec specs.Spec
			if err := json.Unmarshal(data, &spec); err != nil {
				t.Fatal(err)
			}
			if spec.Version != tc.want {
				t.Fatalf("ociVersion %q, want %q", spec.Version, tc.want)
			}
		})
	}
}

// A container that ignores its stop signal is killed once the grace period is over.
func TestStopEscalatesToSIGKILL(t *testing.T) {
	e := newLifecycleEnv(t)
	ctx := context.Background()
	id, err := e.m.Create(ctx, e.sb, ctrConfig("app"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.rt.ignoreTERM = true
	if err := e.m.Stop(ctx, id, time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	if len(e.rt.kills) != 2 || e.rt.kills[0] != syscall.SIGTERM || e.rt.kills[1] != syscall.SIGKILL {
		t.Fatalf("kills %v, want SIGTERM then SIGKILL", e.rt.kills)
	}
	if c, _ := e.st.Container(id); c.State != store.ContainerExited || c.ExitCode != 128+int32(syscall.SIGKILL) {
		t.Fatalf("after Stop: %+v", c)
	}
	// Remove of a running container stops it first.
	id2, _ := e.m.Create(ctx, e.sb, ctrConfig("two"))
	if err := e.m.Start(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Remove(ctx, id2); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t)
}

// Refusals come before anything is made.
func TestCreateRefusals(t *testing.T) {
	e := newLifecycleEnv(t)
	ctx := context.Background()
	notReady := e.sb
	notReady.State = store.SandboxNotReady
	if _, err := e.m.Create(ctx, notReady, ctrConfig("app")); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Create in a pod that is not ready: %v", err)
	}
	cfg := ctrConfig("app")
	cfg.Image.Image = "missing"
	if _, err := e.m.Create(ctx, e.sb, cfg); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "pull it first") {
		t.Errorf("Create of a missing image: %v", err)
	}
	cfg = ctrConfig("app")
	cfg.LogPath = "../escape.log"
	if _, err := e.m.Create(ctx, e.sb, cfg); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Create with a log path outside the pod's: %v", err)
	}
	e.assertClean(t)
}

// Every failing step of creation rolls the container back completely and returns the step's error.
func TestCreateRollsBackEachStep(t *testing.T) {
	for _, step := range []string{"Prepare", "Mount", "RuntimeCreate"} {
		t.Run(step, func(t *testing.T) {
			e := newLifecycleEnv(t)
			switch step {
			case "Prepare":
				e.snaps.failPrepare = errInjected
			case "Mount":
				e.host.failMount = errInjected
			case "RuntimeCreate":
				e.rt.failCreate = errInjected
			}
			if _, err := e.m.Create(context.Background(), e.sb, ctrConfig("app")); !errors.Is(err, errInjected) {
				t.Fatalf("Create = %v, want the injected failure", err)
			}
			e.assertClean(t)
			e.snaps.failPrepare, e.host.failMount, e.rt.failCreate = nil, nil, nil
			if _, err := e.m.Create(context.Background(), e.sb, ctrConfig("app")); err != nil {
				t.Fatalf("Create after a rolled-back attempt: %v", err)
			}
		})
	}
}

// A rollback that cannot undo everything keeps the record as unknown with the reason; Remove finishes it later.
func TestCreateFailedRollbackKeepsUnknownRecord(t *testing.T) {
	e := newLifecycleEnv(t)
	e.rt.failCreate = errInjected
	e.host.failUmnt = errors.New("busy")
	if _, err := e.m.Create(context.Background(), e.sb, ctrConfig("app")); !errors.Is(err, errInjected) {
		t.Fatalf("Create = %v", err)
	}
	cs := e.st.Containers("")
	if len(cs) != 1 || cs[0].State != store.ContainerUnknown || !strings.Contains(cs[0].Error, "busy") {
		t.Fatalf("kept record: %+v", cs)
	}
	e.host.failUmnt = nil
	if err := e.m.Remove(context.Background(), cs[0].ID); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t)
}

// The kept record holds what the failed creation had made, not just its intent, as the sandbox's does: here the
// user resolved from the spec, which the status reports and the removal sees.
func TestCreateFailedRollbackKeepsProgress(t *testing.T) {
	e := newLifecycleEnv(t)
	e.rt.failCreate = errInjected
	e.host.failUmnt = errors.New("busy")
	cfg := ctrConfig("app")
	cfg.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
		RunAsUser: &runtimeapi.Int64Value{Value: 1234}}}
	if _, err := e.m.Create(context.Background(), e.sb, cfg); !errors.Is(err, errInjected) {
		t.Fatalf("Create = %v", err)
	}
	cs := e.st.Containers("")
	if len(cs) != 1 || cs[0].State != store.ContainerUnknown {
		t.Fatalf("kept record: %+v", cs)
	}
	if cs[0].UID != 1234 {
		t.Errorf("kept record has UID %d, want 1234: the creation's progress was not recorded", cs[0].UID)
	}
	e.host.failUmnt = nil
	if err := e.m.Remove(context.Background(), cs[0].ID); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t)
}

// A start the runtime refuses records the container as exited with StartError.
func TestStartFailureRecordsExit(t *testing.T) {
	e := newLifecycleEnv(t)
	id, err := e.m.Create(context.Background(), e.sb, ctrConfig("app"))
	if err != nil {
		t.Fatal(err)
	}
	e.rt.failStart = errInjected
	if err := e.m.Start(context.Background(), id); !errors.Is(err, errInjected) {
		t.Fatalf("Start = %v", err)
	}
	if c, _ := e.st.Container(id); c.State != store.ContainerExited || c.Reason != "StartError" || c.ExitCode != 128 {
		t.Fatalf("after a failed Start: %+v", c)
	}
}

// A creation whose caller gave up is handed to the retry with the same name, once; one no retry claims is reaped,
// one that was started is not.
func TestContainerOrphanHandOffAndReap(t *testing.T) {
	e := newLifecycleEnv(t)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	id, err := e.m.Create(gone, e.sb, ctrConfig("app"))
	if err != nil {
		t.Fatalf("Create for a caller that gave up: %v", err)
	}
	if c, _ := e.st.Container(id); !c.Orphaned || c.State != store.ContainerCreated {
		t.Fatalf("abandoned creation: %+v", c)
	}
	again, err := e.m.Create(context.Background(), e.sb, ctrConfig("app"))
	if err != nil || again != id {
		t.Fatalf("retry = %s, %v; want the orphan %s", again, err, id)
	}
	if _, err := e.m.Create(context.Background(), e.sb, ctrConfig("app")); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second retry: %v, want AlreadyExists", err)
	}
	if len(e.rt.created) != 1 {
		t.Fatalf("runtime create ran %d times", len(e.rt.created))
	}
	lonely, err := e.m.Create(gone, e.sb, ctrConfig("lonely"))
	if err != nil {
		t.Fatal(err)
	}
	// An unclaimed orphan that was started was adopted (kubelet found it listed) and stays.
	adopted, err := e.m.Create(gone, e.sb, ctrConfig("adopted"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start(context.Background(), adopted); err != nil {
		t.Fatal(err)
	}
	if n := e.m.ReapOrphans(context.Background(), time.Hour); n != 0 {
		t.Fatalf("reaped %d younger than maxAge", n)
	}
	if n := e.m.ReapOrphans(context.Background(), 0); n != 1 {
		t.Fatalf("reaped %d, want 1", n)
	}
	if _, err := e.st.Container(lonely); !errdefs.IsNotFound(err) {
		t.Fatalf("unclaimed orphan still recorded: %v", err)
	}
	for _, kept := range []string{id, adopted} {
		if _, err := e.st.Container(kept); err != nil {
			t.Fatalf("claimed or adopted container %s reaped: %v", kept, err)
		}
	}
}

// interrupted records a creation that a crash cut short after the runtime created it: intent stored, snapshot
// prepared, rootfs mounted, bundle made, runtime container created.
func (e *lcEnv) interrupted(t *testing.T, name string) store.Container {
	t.Helper()
	id := store.NewID()
	bundle := filepath.Join(e.state, "containers", id)
	c := store.Container{ID: id, SandboxID: e.sb.ID, Name: UniqueName(&e.sb, ctrConfig(name).Metadata),
		State: store.ContainerCreating, Config: ctrConfig(name), Runtime: "runc", Bundle: bundle,
		Rootfs: filepath.Join(bundle, "rootfs"), SnapshotKey: "ctr-" + id, CgroupsPath: "/test/" + id}
	if err := os.MkdirAll(c.Rootfs, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := e.snaps.Prepare(context.Background(), c.SnapshotKey, "sha256:layer"); err != nil {
		t.Fatal(err)
	}
	e.host.mounted[c.Rootfs] = true
	e.rt.state[id] = ociruntime.StatusCreated
	if err := e.st.AddContainer(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// Recovery after a restart, state by state: an interrupted creation is rolled back completely, or kept as unknown
// when that fails; exits while noded was down are recorded; a container the runtime lost, or that cannot be asked,
// is unknown; one started just before the crash is running; the others stay as they were.
func TestContainerRecoverEachState(t *testing.T) {
	ctx := context.Background()
	// made returns a container created (and started when start), then what happened while noded was down.
	made := func(t *testing.T, e *lcEnv, start bool) string {
		t.Helper()
		id, err := e.m.Create(ctx, e.sb, ctrConfig("app"))
		if err != nil {
			t.Fatal(err)
		}
		if start {
			if err := e.m.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		e.rt.exit = nil
		return id
	}
	state := func(t *testing.T, e *lcEnv, id string) store.Container {
		t.Helper()
		c, err := e.st.Container(id)
		if err != nil {
			t.Fatalf("after Recover: %v", err)
		}
		return c
	}
	t.Run("CreatingRolledBack", func(t *testing.T) {
		e := newLifecycleEnv(t)
		c := e.interrupted(t, "cut")
		e.m.Recover(ctx)
		e.assertClean(t)
		if len(e.host.killed) != 1 || e.host.killed[0] != c.CgroupsPath {
			t.Errorf("cgroups killed %v, want the interrupted creation's", e.host.killed)
		}
		// The start context as it is: no time limit of the rollback's own.
		if len(e.rt.deletes) != 1 || e.rt.deletes[0] {
			t.Errorf("runtime deletes (with a deadline?) %v, want one without", e.rt.deletes)
		}
		if _, err := e.m.Create(ctx, e.sb, ctrConfig("cut")); err != nil {
			t.Errorf("Create of the rolled-back name: %v", err)
		}
	})
	t.Run("CreatingRollbackFails", func(t *testing.T) {
		e := newLifecycleEnv(t)
		c := e.interrupted(t, "stuck")
		e.host.failUmnt = errors.New("busy")
		e.m.Recover(ctx)
		if got := state(t, e, c.ID); got.State != store.ContainerUnknown || !strings.Contains(got.Error, "busy") {
			t.Fatalf("after Recover: %+v, want unknown with the reason", got)
		}
		if e.rt.live() != 0 || len(e.snaps.active) != 0 {
			t.Errorf("runtime containers %d, snapshots %v: the rollback stopped at the first failure", e.rt.live(), e.snaps.active)
		}
		if _, err := e.m.Create(ctx, e.sb, ctrConfig("stuck")); !errdefs.IsAlreadyExists(err) {
			t.Errorf("Create over the unknown record: %v, want AlreadyExists", err)
		}
		e.host.failUmnt = nil
		if err := e.m.Remove(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		e.assertClean(t)
	})
	t.Run("CreatedStillCreated", func(t *testing.T) {
		e := newLifecycleEnv(t)
		id := made(t, e, false)
		e.m.Recover(ctx)
		if got := state(t, e, id); got.State != store.ContainerCreated || got.StartedAt != 0 {
			t.Errorf("after Recover: %+v", got)
		}
		if err := e.m.Start(ctx, id); err != nil {
			t.Errorf("Start after Recover: %v", err)
		}
	})
	t.Run("CreatedStartedAtCrash", func(t *testing.T) {
		e := newLifecycleEnv(t)
		id := made(t, e, false)
		e.rt.state[id] = ociruntime.StatusRunning
		e.m.Recover(ctx)
		if got := state(t, e, id); got.State != store.ContainerRunning || got.StartedAt == 0 {
			t.Errorf("after Recover: %+v, want running", got)
		}
	})
	t.Run("RunningStillRunning", func(t *testing.T) {
		e := newLifecycleEnv(t)
		id := made(t, e, true)
		before := state(t, e, id)
		e.m.Recover(ctx)
		if got := state(t, e, id); got.State != store.ContainerRunning || got.StartedAt != before.StartedAt {
			t.Errorf("after Recover: %+v", got)
		}
	})
	t.Run("RunningExitedWhileDown", func(t *testing.T) {
		e := newLifecycleEnv(t)
		id := made(t, e, true)
		e.rt.state[id], e.rt.exitCode[id] = ociruntime.StatusStopped, 3
		e.m.Recover(ctx)
		if got := state(t, e, id); got.State != store.ContainerExited || got.ExitCode != 3 || got.FinishedAt != fakeExitedAt.UnixNano() {
			t.Errorf("after Recover: %+v, want exited 3 at the exit file's time", got)
		}
	})
	t.Run("CreatedExitedWhileDown", func(t *testing.T) {
		e := newLifecycleEnv(t)
		id := made(t, e, false)
		e.rt.state[id], e.rt.exitCode[id] = ociruntime.StatusStopped, 1
		e.m.Recover(ctx)
		if got := state(t, e, id); got.State != store.ContainerExited || got.ExitCode != 1 {
			t.Errorf("after Recover: %+v, want exited 1", got)
		}
	})
	t.Run("RunningConmonDied", func(t *testing.T) {
		e := newLifecycleEnv(t)
		id := made(t, e, true)
		e.rt.state[id] = ociruntime.StatusStopped // no exit file
		e.m.Recover(ctx)
		if got := state(t, e, id); got.State != store.ContainerExited || got.ExitCode != 255 {
			t.Errorf("after Recover: %+v, want exited 255 (the code is lost)", got)
		}
	})
	t.Run("RunningLostByRuntime", func(t *testing.T) {
		e := newLifecycleEnv(t)
		id := made(t, e, true)
		delete(e.rt.state, id)
		e.m.Recover(ctx)
		if got := state(t, e, id); got.State != store.ContainerUnknown || !strings.Contains(got.Error, "no longer knows") {
			t.Errorf("after Recover: %+v, want unknown", got)
		}
		if err := e.m.Remove(ctx, id); err != nil {
			t.Fatalf("Remove of an unknown container: %v", err)
		}
		e.assertClean(t)
	})
	t.Run("RunningRuntimeFails", func(t *testing.T) {
		e := newLifecycleEnv(t)
		id := made(t, e, true)
		e.rt.failState = errInjected
		e.m.Recover(ctx)
		if got := state(t, e, id); got.State != store.ContainerUnknown || got.Error != errInjected.Error() {
			t.Errorf("after Recover: %+v, want unknown with the runtime's error", got)
		}
	})
	t.Run("RunningHandlerGone", func(t *testing.T) {
		e := newLifecycleEnv(t)
		id := made(t, e, true)
		delete(e.m.cfg.Runtimes, "runc") // the handler was removed from the config across the restart
		e.m.Recover(ctx)
		if got := state(t, e, id); got.State != store.ContainerUnknown || !strings.Contains(got.Error, "not configured") {
			t.Errorf("after Recover: %+v, want unknown naming the handler", got)
		}
	})
	t.Run("ExitedAndUnknownUntouched", func(t *testing.T) {
		e := newLifecycleEnv(t)
		exited := made(t, e, true)
		e.rt.exit = e.m.HandleExit
		if err := e.m.Stop(ctx, exited, 0); err != nil {
			t.Fatal(err)
		}
		e.rt.failCreate, e.host.failUmnt = errInjected, errors.New("busy")
		if _, err := e.m.Create(ctx, e.sb, ctrConfig("unknown")); !errors.Is(err, errInjected) {
			t.Fatalf("Create = %v", err)
		}
		e.rt.failCreate, e.host.failUmnt = nil, nil
		before := map[string]store.Container{}
		var unknownRootfs string
		for _, c := range e.st.Containers("") {
			before[c.ID] = c
			if c.State == store.ContainerUnknown {
				unknownRootfs = c.Rootfs
			}
		}
		deletes := len(e.rt.deletes)
		e.m.Recover(ctx)
		for id, b := range before {
			if got := state(t, e, id); got.State != b.State || got.FinishedAt != b.FinishedAt || got.Error != b.Error {
				t.Errorf("%s changed: %+v, was %+v", b.Name, got, b)
			}
		}
		if len(e.rt.deletes) != deletes || !e.host.mounted[unknownRootfs] {
			t.Error("Recover cleaned up an unknown container (that is RemoveContainer's job)")
		}
	})
}

// TestReaperDeletesAfterExit: with the reaper running, an exited container's runtime state is deleted once
// its exit is recorded, and its removal then runs no second delete; a crash that loses the reaper's memory
// (a new manager on the same store) makes the removal delete again.
func TestReaperDeletesAfterExit(t *testing.T) {
	e := newLifecycleEnv(t)
	ctx := e.runReaper(t, true, 2)

	id := e.startAndStop(ctx, t)
	e.waitReaped(t, id)
	if n := e.rt.live(); n != 0 {
		t.Errorf("%d runtime containers left after the reaper", n)
	}
	e.rt.mu.Lock()
	before := len(e.rt.deletes)
	e.rt.mu.Unlock()
	if err := e.m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.rt.mu.Lock()
	after := len(e.rt.deletes)
	e.rt.mu.Unlock()
	if after != before {
		t.Errorf("Remove ran %d runtime deletes after the reaper's, want none", after-before)
	}
	e.assertClean(t)

	// Reaped by a manager that then went away: a new one removes with the runtime's delete.
	id2, err := e.m.Create(ctx, e.sb, ctrConfig("app2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Stop(ctx, id2, 0); err != nil {
		t.Fatal(err)
	}
	m2, err := New(e.m.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.rt.mu.Lock()
	before = len(e.rt.deletes)
	e.rt.mu.Unlock()
	if err := m2.Remove(ctx, id2); err != nil {
		t.Fatal(err)
	}
	e.rt.mu.Lock()
	after = len(e.rt.deletes)
	e.rt.mu.Unlock()
	if after == before {
		t.Error("a manager without the reaper's memory removed without the runtime's delete")
	}
	e.assertClean(t)
}

// TestDeferredStateDurableBeforeRuntimeDelete: Start's running and the exit are deferred store writes, rebuilt
// after a crash from the runtime's state and conmon's exit file; the runtime's delete removes both, so neither
// the reaper nor Remove may run it while such a write is not on disk.
func TestDeferredStateDurableBeforeRuntimeDelete(t *testing.T) {
	for _, reaper := range []bool{true, false} {
		t.Run(map[bool]string{true: "reaper", false: "remove"}[reaper], func(t *testing.T) {
			e := newLifecycleEnv(t)
			ctx := e.runReaper(t, reaper, 2)
			var notDurable []string
			e.rt.onDelete = func(id string) {
				if !e.st.ContainerDurable(id) {
					notDurable = append(notDurable, id)
				}
			}
			id := e.startAndStop(ctx, t)
			if c, _ := e.st.Container(id); c.State != store.ContainerExited {
				t.Fatalf("after Stop: %v, want EXITED in the index at once", c.State)
			}
			if reaper {
				e.waitReaped(t, id)
			}
			if err := e.m.Remove(ctx, id); err != nil {
				t.Fatal(err)
			}
			e.rt.mu.Lock()
			defer e.rt.mu.Unlock()
			if len(e.rt.deletes) == 0 {
				t.Fatal("no runtime delete ran")
			}
			if len(notDurable) != 0 {
				t.Fatalf("the runtime's delete ran while the container's deferred state was not on disk: %v", notDurable)
			}
		})
	}
}

// startAndStop creates, starts and stops (timeout 0) a container "app" in e's sandbox and returns its ID.
func (e *lcEnv) startAndStop(ctx context.Context, t *testing.T) string {
	t.Helper()
	id, err := e.m.Create(ctx, e.sb, ctrConfig("app"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Stop(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	return id
}

// waitReaped waits up to 10 s for the reaper to delete container id's runtime state.
func (e *lcEnv) waitReaped(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !e.m.wasReaped(id) {
		if time.Now().After(deadline) {
			t.Fatal("the reaper did not delete the exited container's runtime state")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestExitedDeletedWithoutForce: the runtime's delete of an exited container is the plain one (runc's forced
// delete sleeps 100 ms in its kill path even for a stopped container), by the reaper and by Remove alike; a
// container the runtime still runs is refused by it and then deleted with force.
func TestExitedDeletedWithoutForce(t *testing.T) {
	for _, reaper := range []bool{true, false} {
		t.Run(map[bool]string{true: "reaper", false: "remove"}[reaper], func(t *testing.T) {
			e := newLifecycleEnv(t)
			ctx := e.runReaper(t, reaper, 1)
			id := e.startAndStop(ctx, t)
			if reaper {
				e.waitReaped(t, id)
			}
			if err := e.m.Remove(ctx, id); err != nil {
				t.Fatal(err)
			}
			e.rt.mu.Lock()
			forced := slices.Clone(e.rt.forced)
			e.rt.mu.Unlock()
			if !slices.Equal(forced, []bool{false}) {
				t.Errorf("runtime deletes with force %v, want one plain delete", forced)
			}
			e.assertClean(t)
		})
	}
	// Removed while running: stopped first, then deleted without force.
	e := newLifecycleEnv(t)
	id, err := e.m.Create(context.Background(), e.sb, ctrConfig("running"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Remove(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.rt.forced, []bool{false}) {
		t.Errorf("a running container removed: deletes with force %v, want one plain delete", e.rt.forced)
	}
	e.assertClean(t)
	rt := newFakeRuntime()
	rt.state["c1"] = ociruntime.StatusRunning
	if err := deleteExited(context.Background(), rt, "c1"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rt.forced, []bool{false, true}) || rt.live() != 0 {
		t.Errorf("a running container: deletes with force %v, %d left; want a refused plain delete, then a forced one", rt.forced, rt.live())
	}
	if err := deleteExited(context.Background(), rt, "gone"); err != nil {
		t.Errorf("an unknown container: %v", err)
	}
}

// runReaper runs the manager's reaper with workers goroutines when on, until the test ends, and returns the
// context the test's calls use (cancelled at the end either way).
func (e *lcEnv) runReaper(t *testing.T, on bool, workers int) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if on {
		go func() { e.m.RunReaper(ctx, workers); close(done) }()
	} else {
		close(done)
	}
	t.Cleanup(func() { cancel(); <-done })
	return ctx
}

// TestReaperCommitsTheExitItself: the reaper commits a container's deferred exit itself, so that the runtime's
// delete does not wait for another writer's commit (StopPodSandbox's, after its CNI DEL) or, with none, for the
// deferred writes' timer (store.DeferDelay), and overlaps the rest of the pod's teardown. In a synctest bubble,
// whose clock moves only while every goroutine waits: waiting for the timer shows as DeferDelay gone by.
func TestReaperCommitsTheExitItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newLifecycleEnv(t)
		ctx := e.runReaper(t, true, 1)
		id := e.startAndStop(ctx, t)
		start := time.Now()
		for !e.m.wasReaped(id) && time.Since(start) < time.Minute {
			time.Sleep(time.Millisecond)
		}
		if !e.m.wasReaped(id) {
			t.Fatal("the reaper did not delete the exited container's runtime state")
		}
		if waited := time.Since(start); waited >= store.DeferDelay {
			t.Errorf("the reaper's delete waited %v (for the deferred writes' timer), want it to commit the exit itself", waited)
		}
		if !e.st.ContainerDurable(id) {
			t.Error("reaped before the exit was durable")
		}
	})
}
