package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
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

// A creation whose caller gave up is handed to the retry with the same name, once; one no retry claims is reaped.
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
	if n := e.m.ReapOrphans(context.Background(), time.Hour); n != 0 {
		t.Fatalf("reaped %d younger than maxAge", n)
	}
	if n := e.m.ReapOrphans(context.Background(), 0); n != 1 {
		t.Fatalf("reaped %d, want 1", n)
	}
	if _, err := e.st.Container(lonely); !errdefs.IsNotFound(err) {
		t.Fatalf("unclaimed orphan still recorded: %v", err)
	}
	if _, err := e.st.Container(id); err != nil {
		t.Fatalf("claimed container reaped: %v", err)
	}
}

// Recovery after a restart: an interrupted creation is rolled back, exits while noded was down are recorded,
// a container the runtime lost is unknown, one started just before the crash is running.
func TestContainerRecover(t *testing.T) {
	e := newLifecycleEnv(t)
	ctx := context.Background()
	mk := func(name string, start bool) string {
		id, err := e.m.Create(ctx, e.sb, ctrConfig(name))
		if err != nil {
			t.Fatal(err)
		}
		if start {
			if err := e.m.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	running := mk("running", true)
	exitedWhileDown := mk("exited", true)
	lost := mk("lost", true)
	startedAtCrash := mk("started", false)
	conmonDied := mk("conmondied", true)
	// An interrupted creation: intent recorded, snapshot prepared, rootfs mounted, bundle made.
	creating := store.NewID()
	bundle := filepath.Join(e.state, "containers", creating)
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := e.snaps.Prepare(ctx, "ctr-"+creating, "sha256:layer"); err != nil {
		t.Fatal(err)
	}
	e.host.mounted[filepath.Join(bundle, "rootfs")] = true
	if err := e.st.AddContainer(&store.Container{ID: creating, SandboxID: e.sb.ID, Name: "creating", State: store.ContainerCreating,
		Config: ctrConfig("creating"), Runtime: "runc", Bundle: bundle, Rootfs: filepath.Join(bundle, "rootfs"),
		SnapshotKey: "ctr-" + creating}); err != nil {
		t.Fatal(err)
	}

	// What happened while noded was down.
	e.rt.exit = nil
	e.rt.state[exitedWhileDown], e.rt.exitCode[exitedWhileDown] = ociruntime.StatusStopped, 3
	delete(e.rt.state, lost)
	e.rt.state[startedAtCrash] = ociruntime.StatusRunning
	e.rt.state[conmonDied] = ociruntime.StatusStopped

	e.m.Recover(ctx)
	want := map[string]store.ContainerState{running: store.ContainerRunning, exitedWhileDown: store.ContainerExited,
		lost: store.ContainerUnknown, startedAtCrash: store.ContainerRunning, conmonDied: store.ContainerExited}
	for id, st := range want {
		c, err := e.st.Container(id)
		if err != nil || c.State != st {
			t.Errorf("%s after Recover: %s (%v), want %s", c.Name, c.State, err, st)
		}
	}
	if c, _ := e.st.Container(exitedWhileDown); c.ExitCode != 3 {
		t.Errorf("exit code recorded from the exit file: %d, want 3", c.ExitCode)
	}
	if c, _ := e.st.Container(conmonDied); c.ExitCode != 255 {
		t.Errorf("exit code of a container whose conmon died: %d, want 255", c.ExitCode)
	}
	if _, err := e.st.Container(creating); !errdefs.IsNotFound(err) {
		t.Errorf("interrupted creation still recorded: %v", err)
	}
	if e.host.mounted[filepath.Join(bundle, "rootfs")] || e.snaps.active["ctr-"+creating] != "" {
		t.Error("interrupted creation's rootfs still mounted or its snapshot still there")
	}
	if _, err := os.Stat(bundle); !os.IsNotExist(err) {
		t.Errorf("interrupted creation's bundle: %v", err)
	}
	// The unknown one is still removable.
	if err := e.m.Remove(ctx, lost); err != nil {
		t.Fatalf("Remove of an unknown container: %v", err)
	}
}
