package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/store"
)

// directSignals makes the fake host accept direct signals for the containers of e, delivering them like the
// runtime would (the pid and cgroups path must be a record's).
func (e *lcEnv) directSignals(t *testing.T) {
	t.Helper()
	e.host.signal = func(pid int, cgroupsPath string, sig syscall.Signal) error {
		for _, c := range e.st.Containers("") {
			if c.Pid == pid && c.CgroupsPath == cgroupsPath {
				return e.rt.deliver(c.ID, sig)
			}
		}
		return fmt.Errorf("no container with pid %d in %s: %w", pid, cgroupsPath, errNotInit)
	}
}

func startedContainer(t *testing.T, e *lcEnv, name string) string {
	t.Helper()
	ctx := context.Background()
	id, err := e.m.Create(ctx, e.sb, ctrConfig(name))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// A container with its own PID namespace gets its stop signal and the SIGKILL through the host, not the runtime.
func TestStopOwnPIDNamespaceSignalsDirectly(t *testing.T) {
	e := newLifecycleEnv(t)
	e.directSignals(t)
	id := startedContainer(t, e, "app")
	e.rt.ignoreTERM = true
	if err := e.m.Stop(context.Background(), id, time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	if len(e.rt.kills) != 0 {
		t.Fatalf("runtime kills %v, want none", e.rt.kills)
	}
	if len(e.host.signals) != 2 || e.host.signals[0] != syscall.SIGTERM || e.host.signals[1] != syscall.SIGKILL {
		t.Fatalf("direct signals %v, want SIGTERM then SIGKILL", e.host.signals)
	}
	if c, _ := e.st.Container(id); c.State != store.ContainerExited || c.ExitCode != 128+int32(syscall.SIGKILL) {
		t.Fatalf("after Stop: %+v", c)
	}
	// Stopping again is a no-op.
	if err := e.m.Stop(context.Background(), id, 0); err != nil || len(e.host.signals) != 2 || len(e.rt.kills) != 0 {
		t.Fatalf("second Stop: %v, signals %v, kills %v", err, e.host.signals, e.rt.kills)
	}
}

// Shared, host and target PID namespaces are always signalled by the runtime.
func TestStopNotOwnPIDNamespaceUsesRuntime(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*store.Sandbox, *runtimeapi.ContainerConfig)
	}{
		{"podPID", func(sb *store.Sandbox, _ *runtimeapi.ContainerConfig) { sb.PodPID = true }},
		{"hostPID", func(sb *store.Sandbox, _ *runtimeapi.ContainerConfig) { sb.HostPID = true }},
		{"nodeMode", func(_ *store.Sandbox, c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_NODE
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newLifecycleEnv(t)
			e.directSignals(t)
			cfg := ctrConfig("app")
			if cfg.Linux == nil {
				cfg.Linux = &runtimeapi.LinuxContainerConfig{}
			}
			if cfg.Linux.SecurityContext == nil {
				cfg.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{}
			}
			if cfg.Linux.SecurityContext.NamespaceOptions == nil {
				cfg.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{}
			}
			ctx := context.Background()
			id, err := e.m.Create(ctx, e.sb, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.m.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			// The pod's record changes after the container's creation only to test the stop's decision.
			sb := e.sb
			tc.edit(&sb, cfg)
			if _, err := e.st.UpdateSandbox(sb.ID, func(x *store.Sandbox) error { x.PodPID, x.HostPID = sb.PodPID, sb.HostPID; return nil }); err != nil {
				t.Fatal(err)
			}
			e.rt.ignoreTERM = true
			if err := e.m.Stop(ctx, id, time.Nanosecond); err != nil {
				t.Fatal(err)
			}
			if len(e.host.signals) != 0 {
				t.Fatalf("direct signals %v, want none", e.host.signals)
			}
			if len(e.rt.kills) != 2 || e.rt.kills[0] != syscall.SIGTERM || e.rt.kills[1] != syscall.SIGKILL {
				t.Fatalf("runtime kills %v, want SIGTERM then SIGKILL", e.rt.kills)
			}
		})
	}
}

// An init the host cannot verify (old record, reused PID, gone) is left to the runtime, with the same outcome.
func TestStopUnverifiedInitFallsBackToRuntime(t *testing.T) {
	e := newLifecycleEnv(t)
	id := startedContainer(t, e, "app")
	if err := e.m.Stop(context.Background(), id, 0); err != nil {
		t.Fatal(err)
	}
	if len(e.rt.kills) != 1 || e.rt.kills[0] != syscall.SIGKILL {
		t.Fatalf("runtime kills %v, want SIGKILL", e.rt.kills)
	}
	if c, _ := e.st.Container(id); c.State != store.ContainerExited || c.ExitCode != 137 {
		t.Fatalf("after Stop: %+v", c)
	}
}

func TestIsNamespaceInit(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   bool
	}{
		{"Name:\tsh\nPid:\t4242\nNSpid:\t4242\t1\n", true},
		{"NSpid:\t4242\t17\t1\n", true},
		{"NSpid:\t4242\t7\n", false}, // a process of a shared namespace
		{"NSpid:\t1\n", false},       // the host's init
		{"NSpid:\t4242\n", false},    // host PID namespace
		{"Name:\tsh\n", false},       // no NSpid: cannot tell
	} {
		if got := isNamespaceInit(tc.status); got != tc.want {
			t.Errorf("isNamespaceInit(%q) = %v, want %v", tc.status, got, tc.want)
		}
	}
}

func TestInCgroup(t *testing.T) {
	v1 := "9:name=systemd:/\n4:memory:/pods/ctr\n0::/pods/ctr\n"
	if !inCgroup(v1, "/pods/ctr") || inCgroup(v1, "/pods") || inCgroup(v1, "/pods/ctr2") || inCgroup("", "/pods/ctr") {
		t.Fatal("inCgroup matched wrongly")
	}
}

// The real host refuses what it cannot verify: this test process is no namespace init; a bad pid or cgroup path.
func TestSignalOwnInitRefuses(t *testing.T) {
	for _, tc := range []struct {
		pid int
		cg  string
	}{{os.Getpid(), "/"}, {os.Getpid(), "/noded-test-none"}, {0, "/x"}, {os.Getpid(), ""}, {1 << 30, "/x"}} {
		if err := (RealHost{}).SignalInit(tc.pid, tc.cg, syscall.Signal(0)); !errors.Is(err, errNotInit) {
			t.Errorf("SignalInit(%d, %q): %v, want errNotInit", tc.pid, tc.cg, err)
		}
	}
}
