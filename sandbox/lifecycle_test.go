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

// Recovery rolls back an interrupted creation, keeps it as unknown when that fails, marks a ready sandbox whose
// pins are gone not ready and leaves the others alone.
func TestRecover(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ready, err := e.m.Run(ctx, podConfig("ready"), "")
	if err != nil {
		t.Fatal(err)
	}
	lost, err := e.m.Run(ctx, podConfig("lost"), "")
	if err != nil {
		t.Fatal(err)
	}
	lostSB, _ := e.st.Sandbox(lost)
	if err := e.host.Unpin(lostSB.Namespaces["net"]); err != nil { // a reboot took the pins
		t.Fatal(err)
	}
	stopped, err := e.m.Run(ctx, podConfig("stopped"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Stop(ctx, stopped); err != nil {
		t.Fatal(err)
	}
	// An interrupted creation: intent recorded, namespaces pinned, network ADD done.
	interrupted := func(name string) string {
		sb := &store.Sandbox{ID: store.NewID(), Name: name, Config: podConfig(name), State: store.SandboxCreating,
			Dir: filepath.Join(e.state, "pods", name), Namespaces: map[string]string{}, NetworkSetUp: true}
		pins, err := e.host.Pin(ctx, filepath.Join(e.state, "ns", sb.ID), []nsutil.Type{nsutil.Net, nsutil.IPC}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for ty, p := range pins {
			sb.Namespaces[string(ty)] = p
		}
		if err := os.MkdirAll(sb.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := e.st.AddSandbox(sb); err != nil {
			t.Fatal(err)
		}
		return sb.ID
	}
	creating := interrupted("creating")
	e.m.Recover(ctx)
	if _, err := e.st.Sandbox(creating); !errdefs.IsNotFound(err) {
		t.Errorf("interrupted creation still recorded: %v", err)
	}
	for id, want := range map[string]store.SandboxState{ready: store.SandboxReady, lost: store.SandboxNotReady, stopped: store.SandboxNotReady} {
		if sb, _ := e.st.Sandbox(id); sb.State != want {
			t.Errorf("%s after Recover: %s, want %s", sb.Name, sb.State, want)
		}
	}

	stuck := interrupted("stuck")
	e.host.fail["Unpin"] = true
	e.m.Recover(ctx)
	if sb, err := e.st.Sandbox(stuck); err != nil || sb.State != store.SandboxUnknown || sb.Error == "" {
		t.Fatalf("interrupted creation whose rollback failed: %+v, %v", sb, err)
	}
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
