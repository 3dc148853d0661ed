package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/cni"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/nsutil"
	"github.com/noded/noded/store"
)

func podConfig(name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "ns", Uid: name + "-uid"},
		Hostname: name,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD},
			}},
		PortMappings: []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 8080}},
	}
}

// assertClean fails when the sandbox left a record, a pin, a mount, a network attachment, a pod init or a
// directory behind.
func (e *env) assertClean(t *testing.T) {
	t.Helper()
	if sbs := e.st.Sandboxes(); len(sbs) != 0 {
		t.Errorf("records left: %+v", sbs)
	}
	if l := e.host.leftovers(); len(l) != 0 {
		t.Errorf("host state left: %v", l)
	}
	if n := e.net.attachedCount(); n != 0 {
		t.Errorf("%d network attachments left", n)
	}
	if len(e.init.running) != 0 {
		t.Errorf("pod inits left: %v", e.init.running)
	}
	for _, d := range []string{"pods", "ns"} {
		if ents, _ := os.ReadDir(filepath.Join(e.state, d)); len(ents) != 0 {
			t.Errorf("%s/ entries left: %v", d, ents)
		}
	}
}

func TestRunStopRemove(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id, err := e.m.Run(ctx, podConfig("web"), "")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := e.st.Sandbox(id)
	if err != nil {
		t.Fatal(err)
	}
	if sb.State != store.SandboxReady || sb.Orphaned || sb.InitPID != 4242 || len(sb.IPs) != 1 || !sb.NetworkSetUp {
		t.Fatalf("sandbox after Run: %+v", sb)
	}
	for _, ty := range []nsutil.Type{nsutil.Net, nsutil.IPC, nsutil.UTS} {
		if !e.host.IsPinned(sb.Namespaces[string(ty)]) {
			t.Errorf("%s not pinned: %v", ty, sb.Namespaces)
		}
	}
	if len(e.host.lo) != 1 || e.host.lo[0] != sb.Namespaces["net"] {
		t.Errorf("lo brought up in %v, want the pod's netns", e.host.lo)
	}
	pn := e.net.setups[0]
	if pn.NetNS != sb.Namespaces["net"] || len(pn.PortMappings) != 1 || pn.PortMappings[0].Protocol != "tcp" {
		t.Errorf("CNI ADD got %+v", pn)
	}
	for _, f := range []string{"hostname", "resolv.conf", "hosts"} {
		if _, err := os.Stat(filepath.Join(sb.Dir, f)); err != nil {
			t.Errorf("pod file: %v", err)
		}
	}
	if st, _, err := e.m.Status(id, false); err != nil || st.State != runtimeapi.PodSandboxState_SANDBOX_READY || st.Network.Ip != sb.IPs[0] {
		t.Errorf("Status = %+v, %v", st, err)
	}

	if err := e.m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	sb, _ = e.st.Sandbox(id)
	if sb.State != store.SandboxNotReady || sb.NetworkSetUp || e.net.attachedCount() != 0 || len(e.init.running) != 0 {
		t.Fatalf("after Stop: %+v, attached %d, inits %v", sb, e.net.attachedCount(), e.init.running)
	}
	if err := e.m.Stop(ctx, id); err != nil || len(e.net.teardowns) != 1 {
		t.Fatalf("second Stop: %v, teardowns %d (DEL must not run again)", err, len(e.net.teardowns))
	}
	if err := e.m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t)
	if err := e.m.Remove(ctx, id); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := e.m.Stop(ctx, "unknown"); err != nil {
		t.Fatalf("Stop of an unknown ID: %v", err)
	}
}

// Every step of setup that fails rolls the sandbox back completely and returns the step's error.
func TestRunRollsBackEachStep(t *testing.T) {
	for _, step := range []string{"Pin", "SetHostname", "ApplySysctls", "MountShm", "PodInit", "LoopbackUp", "NetworkSetup"} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			switch step {
			case "PodInit":
				e.init.failStart = errInjected
			case "NetworkSetup":
				e.net.failSetup = errInjected
			default:
				e.host.fail[step] = true
			}
			_, err := e.m.Run(context.Background(), podConfig("web"), "")
			if !errors.Is(err, errInjected) {
				t.Fatalf("Run = %v, want the injected failure", err)
			}
			e.assertClean(t)
			// DEL runs whenever ADD may have run (the intent is recorded before it), and only then.
			wantDel := step == "LoopbackUp" || step == "NetworkSetup"
			if got := len(e.net.teardowns) == 1; got != wantDel {
				t.Errorf("CNI DEL ran: %v, want %v", got, wantDel)
			}
			// The name is free again.
			e.host.fail, e.init.failStart, e.net.failSetup = map[string]bool{}, nil, nil
			if _, err := e.m.Run(context.Background(), podConfig("web"), ""); err != nil {
				t.Fatalf("Run after a rolled-back attempt: %v", err)
			}
		})
	}
}

// A rollback that cannot undo everything keeps the record, as unknown with the reason and what is still held, so
// that a later Remove finishes it.
func TestRunFailedRollbackKeepsUnknownRecord(t *testing.T) {
	e := newEnv(t)
	e.net.failSetup = errInjected
	e.host.fail["Unpin"] = true
	_, err := e.m.Run(context.Background(), podConfig("web"), "")
	if !errors.Is(err, errInjected) {
		t.Fatalf("Run = %v", err)
	}
	sbs := e.st.Sandboxes()
	if len(sbs) != 1 {
		t.Fatalf("records: %+v", sbs)
	}
	sb := sbs[0]
	if sb.State != store.SandboxUnknown || !strings.Contains(sb.Error, "Unpin") || len(sb.Namespaces) == 0 {
		t.Fatalf("kept record: %+v", sb)
	}
	if _, err := e.m.Run(context.Background(), podConfig("web"), ""); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("Run over an unknown record: %v, want AlreadyExists", err)
	}
	// Remove fails the same way and keeps it; once the host lets go it finishes.
	if err := e.m.Remove(context.Background(), sb.ID); !errors.Is(err, errInjected) {
		t.Fatalf("Remove = %v", err)
	}
	if got, _ := e.st.Sandbox(sb.ID); got.State != store.SandboxUnknown {
		t.Fatalf("after a failed Remove: %+v", got)
	}
	delete(e.host.fail, "Unpin")
	if err := e.m.Remove(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t)
}

// A creation whose caller gave up finishes and is handed to the retry with the same name, once; a sandbox no retry
// claims is reaped, one with containers is not.
func TestOrphanHandOffAndReap(t *testing.T) {
	e := newEnv(t)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	id, err := e.m.Run(gone, podConfig("web"), "")
	if err != nil {
		t.Fatalf("Run for a caller that gave up: %v", err)
	}
	if sb, _ := e.st.Sandbox(id); !sb.Orphaned || sb.State != store.SandboxReady {
		t.Fatalf("abandoned creation: %+v", sb)
	}
	again, err := e.m.Run(context.Background(), podConfig("web"), "")
	if err != nil || again != id {
		t.Fatalf("retry = %s, %v; want the orphan %s", again, err, id)
	}
	if sb, _ := e.st.Sandbox(id); sb.Orphaned {
		t.Fatal("handed-off sandbox still orphaned")
	}
	if _, err := e.m.Run(context.Background(), podConfig("web"), ""); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("a second retry: %v, want AlreadyExists", err)
	}
	if len(e.net.setups) != 1 {
		t.Fatalf("network set up %d times", len(e.net.setups))
	}

	// Two unclaimed orphans: one adopted by a container, one not.
	lonely, err := e.m.Run(gone, podConfig("lonely"), "")
	if err != nil {
		t.Fatal(err)
	}
	adopted, err := e.m.Run(gone, podConfig("adopted"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.AddContainer(&store.Container{ID: store.NewID(), SandboxID: adopted, Name: "c",
		Config: &runtimeapi.ContainerConfig{}}); err != nil {
		t.Fatal(err)
	}
	var removed []string
	remove := func(ctx context.Context, id string) error { removed = append(removed, id); return nil }
	if n := e.m.ReapOrphans(context.Background(), time.Hour, remove); n != 0 {
		t.Fatalf("reaped %d younger than maxAge", n)
	}
	if n := e.m.ReapOrphans(context.Background(), 0, remove); n != 1 || len(removed) != 1 || removed[0] != lonely {
		t.Fatalf("reaped %d: %v, want only %s", n, removed, lonely)
	}
}

// interrupted records a creation that a crash cut short after its side effects: intent stored, namespaces pinned,
// /dev/shm mounted, the pod init started and the network added.
func (e *env) interrupted(t *testing.T, name string) store.Sandbox {
	t.Helper()
	ctx := context.Background()
	id := store.NewID()
	cfg := podConfig(name)
	sb := &store.Sandbox{ID: id, Name: UniqueName(cfg.Metadata), Config: cfg, State: store.SandboxCreating, PodPID: true,
		Dir: filepath.Join(e.state, "pods", id), Namespaces: map[string]string{}, NetworkSetUp: true}
	pins, err := e.host.Pin(ctx, filepath.Join(e.state, "ns", id), []nsutil.Type{nsutil.Net, nsutil.IPC, nsutil.UTS}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for ty, p := range pins {
		sb.Namespaces[string(ty)] = p
	}
	if err := os.MkdirAll(sb.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := e.host.MountShm(filepath.Join(sb.Dir, "shm"), DefaultShmSize); err != nil {
		t.Fatal(err)
	}
	if sb.InitPID, err = e.init.StartPodInit(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if _, err := e.net.Setup(ctx, podNetwork(sb)); err != nil {
		t.Fatal(err)
	}
	if err := e.st.AddSandbox(sb); err != nil {
		t.Fatal(err)
	}
	return *sb
}

// Recovery at start, state by state: an interrupted creation is rolled back completely, or kept as unknown with
// what is still held when that fails; a ready sandbox whose pins are gone is not ready; the others stay as they were.
func TestRecoverEachState(t *testing.T) {
	ctx := context.Background()
	run := func(t *testing.T, e *env, name string) string {
		t.Helper()
		id, err := e.m.Run(ctx, podConfig(name), "")
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	t.Run("CreatingRolledBack", func(t *testing.T) {
		e := newEnv(t)
		e.interrupted(t, "cut")
		e.m.Recover(ctx)
		e.assertClean(t)
		if len(e.net.teardowns) != 1 {
			t.Errorf("CNI DEL ran %d times, want once", len(e.net.teardowns))
		}
		// The start context as it is: no time limit of the rollback's own.
		if len(e.net.teardownDeadline) == 1 && e.net.teardownDeadline[0] {
			t.Error("the rollback at start ran under a deadline of its own")
		}
		if _, err := e.m.Run(ctx, podConfig("cut"), ""); err != nil {
			t.Errorf("Run of the rolled-back name: %v", err)
		}
	})
	t.Run("CreatingRollbackFails", func(t *testing.T) {
		e := newEnv(t)
		sb := e.interrupted(t, "stuck")
		e.host.fail["Unpin"] = true
		e.m.Recover(ctx)
		got, err := e.st.Sandbox(sb.ID)
		if err != nil || got.State != store.SandboxUnknown || !strings.Contains(got.Error, "Unpin") {
			t.Fatalf("after Recover: %+v, %v; want unknown with the reason", got, err)
		}
		// What the rollback undid is recorded (DEL is not run again), what it could not is still named.
		if got.NetworkSetUp || len(got.Namespaces) != 3 || got.InitPID != 0 {
			t.Errorf("kept record does not hold the rollback's progress: %+v", got)
		}
		if e.net.attachedCount() != 0 || len(e.init.running) != 0 {
			t.Errorf("network attached %d, inits %v: the rollback stopped at the first failure", e.net.attachedCount(), e.init.running)
		}
		if _, err := e.m.Run(ctx, podConfig("stuck"), ""); !errdefs.IsAlreadyExists(err) {
			t.Errorf("Run over the unknown record: %v, want AlreadyExists", err)
		}
		e.m.Recover(ctx) // a second start leaves it for removal
		if again, _ := e.st.Sandbox(sb.ID); again.State != store.SandboxUnknown || len(e.net.teardowns) != 1 {
			t.Errorf("second Recover: %+v, DELs %d", again, len(e.net.teardowns))
		}
		delete(e.host.fail, "Unpin")
		if err := e.m.Remove(ctx, sb.ID); err != nil {
			t.Fatal(err)
		}
		e.assertClean(t)
	})
	t.Run("ReadyPinned", func(t *testing.T) {
		e := newEnv(t)
		id := run(t, e, "ready")
		before, _ := e.st.Sandbox(id)
		e.m.Recover(ctx)
		if got, _ := e.st.Sandbox(id); got.State != store.SandboxReady || !got.NetworkSetUp || len(got.Namespaces) != len(before.Namespaces) {
			t.Errorf("after Recover: %+v", got)
		}
		if len(e.net.teardowns) != 0 || e.net.attachedCount() != 1 {
			t.Errorf("Recover tore down a ready sandbox: DELs %d", len(e.net.teardowns))
		}
	})
	t.Run("ReadyPinGone", func(t *testing.T) {
		e := newEnv(t)
		id := run(t, e, "lost")
		sb, _ := e.st.Sandbox(id)
		if err := e.host.Unpin(sb.Namespaces["ipc"]); err != nil { // a reboot, or someone, took a pin
			t.Fatal(err)
		}
		e.m.Recover(ctx)
		if got, _ := e.st.Sandbox(id); got.State != store.SandboxNotReady {
			t.Errorf("after Recover: %s, want %s", got.State, store.SandboxNotReady)
		}
		// Stop and Remove still clean it up.
		if err := e.m.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := e.m.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
		e.assertClean(t)
	})
	t.Run("NotReady", func(t *testing.T) {
		e := newEnv(t)
		id := run(t, e, "stopped")
		if err := e.m.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
		e.m.Recover(ctx)
		if got, err := e.st.Sandbox(id); err != nil || got.State != store.SandboxNotReady {
			t.Errorf("after Recover: %+v, %v", got, err)
		}
	})
	t.Run("Unknown", func(t *testing.T) {
		e := newEnv(t)
		e.net.failSetup = errInjected
		e.host.fail["Unpin"] = true
		if _, err := e.m.Run(ctx, podConfig("unknown"), ""); !errors.Is(err, errInjected) {
			t.Fatalf("Run = %v", err)
		}
		before := e.st.Sandboxes()
		if len(before) != 1 || before[0].State != store.SandboxUnknown {
			t.Fatalf("records: %+v", before)
		}
		dels := len(e.net.teardowns)
		delete(e.host.fail, "Unpin")
		e.m.Recover(ctx)
		if got, err := e.st.Sandbox(before[0].ID); err != nil || got.State != store.SandboxUnknown || got.Error != before[0].Error {
			t.Errorf("after Recover: %+v, %v; want it left for removal", got, err)
		}
		if len(e.net.teardowns) != dels || len(e.host.leftovers()) == 0 {
			t.Error("Recover tore down an unknown sandbox (that is RemovePodSandbox's job)")
		}
	})
}

// Stop that cannot tear the network down fails and keeps the sandbox ready for a retry.
func TestStopNetworkFailureKeepsState(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id, err := e.m.Run(ctx, podConfig("web"), "")
	if err != nil {
		t.Fatal(err)
	}
	e.net.failTeardown = errInjected
	if err := e.m.Stop(ctx, id); !errors.Is(err, errInjected) {
		t.Fatalf("Stop = %v", err)
	}
	if sb, _ := e.st.Sandbox(id); sb.State != store.SandboxReady || !sb.NetworkSetUp {
		t.Fatalf("after a failed Stop: %+v", sb)
	}
	e.net.failTeardown = nil
	if err := e.m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t)
}

// A pod whose netns pin is gone is torn down in a stand-in namespace holding its addresses.
func TestTeardownUsesStandInWhenPinGone(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id, err := e.m.Run(ctx, podConfig("web"), "")
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := e.st.Sandbox(id)
	if err := e.host.Unpin(sb.Namespaces["net"]); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if e.host.standIn != 1 || len(e.net.teardowns) != 1 || !strings.HasSuffix(filepath.Dir(e.net.teardowns[0].NetNS), ".standin") {
		t.Fatalf("stand-in used %d times, DEL %+v", e.host.standIn, e.net.teardowns)
	}
}

// TestHostnames: kubelet's FQDN hostname (setHostnameAsFQDN) may end in a dot and is set as is; what the kernel
// or DNS would refuse is InvalidArgument before anything is made.
func TestHostnames(t *testing.T) {
	for _, tc := range []struct {
		hostname string
		ok       bool
	}{
		{"web-0", true},
		{"hostfqdn-179847.t.hostfqdn-4400.svc.", true},
		{"web-0.t.ns.svc.cluster.local", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{strings.Repeat("a.", 32) + "b", false},
		{"web..t", false},
		{".web", false},
		{"web.\n127.0.0.1 evil", false},
		{"Web", false},
		{"web-", false},
	} {
		t.Run(tc.hostname, func(t *testing.T) {
			e := newEnv(t)
			cfg := podConfig("web")
			cfg.Hostname = tc.hostname
			id, err := e.m.Run(context.Background(), cfg, "")
			if !tc.ok {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("Run: %v, want InvalidArgument", err)
				}
				e.assertClean(t)
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if id == "" {
				t.Fatal("no sandbox id")
			}
			if got := e.host.lastHostname; got != tc.hostname {
				t.Errorf("hostname set %q, want %q", got, tc.hostname)
			}
		})
	}
}

// The record on disk names the network before CNI ADD runs, with no store write of its own between the intent
// and ADD: a crash at any point before ADD is rolled back with a DEL (which plugins accept for a pod they never
// saw), and a crash during or after ADD with the DEL that undoes it.
func TestNetworkNamedByTheIntent(t *testing.T) {
	e := newEnv(t)
	var stored []store.Sandbox
	e.net.onSetup = func(pn cni.PodNetwork) { stored = e.st.Sandboxes() }
	if _, err := e.m.Run(context.Background(), podConfig("web"), ""); err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || !stored[0].NetworkSetUp || stored[0].State != store.SandboxCreating {
		t.Fatalf("records at CNI ADD: %+v, want one creating sandbox that names its network", stored)
	}
	// A crash before ADD: the intent as stored, recovered.
	sb := stored[0]
	sb.ID, sb.Name, sb.Namespaces = store.NewID(), "crashed_ns_u_0", map[string]string{}
	if err := e.st.AddSandbox(&sb); err != nil {
		t.Fatal(err)
	}
	before := len(e.net.teardowns)
	e.m.Recover(context.Background())
	if _, err := e.st.Sandbox(sb.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("a creation cut short before ADD is still stored: %v", err)
	}
	if len(e.net.teardowns) != before+1 {
		t.Fatalf("recovery ran %d DELs for a creation cut short before ADD, want 1", len(e.net.teardowns)-before)
	}
}
