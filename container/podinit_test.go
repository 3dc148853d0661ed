package container

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/oci"
	"github.com/noded/noded/ociruntime"
	"github.com/noded/noded/store"
)

// TestPodInitSpecIsUnprivileged pins the pod init's spec: containers of a shared-PID pod reach the init's root
// through /proc/1/root, so it must hold nothing worth reaching (only a read-only procfs with the default masked
// and read-only paths: a writable one would be the host's /proc/sys) and run as an unprivileged user with no
// capabilities under the RuntimeDefault seccomp profile.
func TestPodInitSpecIsUnprivileged(t *testing.T) {
	sb := &store.Sandbox{ID: "pod1", Namespaces: map[string]string{"net": "/run/netns/x", "ipc": "/p/ipc", "uts": "/p/uts"}}
	host := oci.HostInfo{Seccomp: true, Kernel: "6.1.0"}
	s, err := podInitSpec(sb, "/usr/bin/noded", "/b/rootfs", "/pods/podinit-pod1", host, oci.Features{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Mounts {
		if m.Type == "sysfs" || m.Destination == "/sys" {
			t.Errorf("pod init has %s mounted at %s", m.Type, m.Destination)
		}
		if !slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "nosuid") {
			t.Errorf("mount %s is not ro,nosuid: %v", m.Destination, m.Options)
		}
	}
	if u := s.Process.User; u.UID != 65535 || u.GID != 65535 || len(u.AdditionalGids) != 0 {
		t.Errorf("pod init user %+v, want 65535:65535", u)
	}
	c := s.Process.Capabilities
	if c == nil || len(c.Bounding)+len(c.Effective)+len(c.Permitted)+len(c.Inheritable)+len(c.Ambient) != 0 {
		t.Errorf("pod init capabilities %+v, want none", c)
	}
	if !s.Process.NoNewPrivileges || !s.Root.Readonly {
		t.Errorf("noNewPrivileges %v, read-only root %v", s.Process.NoNewPrivileges, s.Root.Readonly)
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Errorf("pod init seccomp %+v, want the RuntimeDefault profile", s.Linux.Seccomp)
	}
	for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger"} {
		if !slices.Contains(s.Linux.ReadonlyPaths, p) {
			t.Errorf("%s not read-only", p)
		}
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") {
		t.Errorf("masked paths %v", s.Linux.MaskedPaths)
	}
	var types []specs.LinuxNamespaceType
	for _, ns := range s.Linux.Namespaces {
		types = append(types, ns.Type)
	}
	for _, want := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace} {
		if !slices.Contains(types, want) {
			t.Errorf("namespaces %v lack %s", types, want)
		}
	}

	// The profile follows the container rules: none without kernel support or when the runtime says it has none.
	if s, _ := podInitSpec(sb, "/n", "/r", "/c", oci.HostInfo{}, oci.Features{}); s.Linux.Seccomp != nil {
		t.Error("seccomp profile on a kernel without seccomp")
	}
	if s, _ := podInitSpec(sb, "/n", "/r", "/c", host, oci.Features{Known: true}); s.Linux.Seccomp != nil {
		t.Error("seccomp profile for a runtime without seccomp")
	}
}

// TestPodInitUserInUserns: in a pod's user namespace the init runs as 65535 when the mapping has it, else as
// the namespace's root (an unprivileged host ID either way).
func TestPodInitUserInUserns(t *testing.T) {
	for length, want := range map[uint32]uint32{65536: 65535, 1000: 0} {
		m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 1 << 20, Length: length}}
		sb := &store.Sandbox{ID: "pod1", Namespaces: map[string]string{"user": "/p/user"},
			Config: &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}},
			}}}}
		s, err := podInitSpec(sb, "/n", "/r", "/c", oci.HostInfo{Seccomp: true}, oci.Features{})
		if err != nil {
			t.Fatal(err)
		}
		if u := s.Process.User; u.UID != want || u.GID != want {
			t.Errorf("mapping of %d IDs: user %+v, want %d", length, u, want)
		}
		if !slices.ContainsFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
			return ns.Type == specs.UserNamespace && ns.Path == "/p/user"
		}) {
			t.Errorf("user namespace not joined: %v", s.Linux.Namespaces)
		}
	}
}

// The pod init is killed through the host (a pidfd SIGKILL that waits for its exit), not by `runc kill`, and then
// deleted without force; an init the host cannot verify is killed by the runtime, then deleted the same way.
func TestStopPodInitKillsDirectly(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			e := newLifecycleEnv(t)
			sb := e.sb
			sb.PodPID, sb.InitPID = true, 4242
			id := podInitID(sb.ID)
			e.rt.state[id] = ociruntime.StatusRunning
			var gotPath string
			if direct {
				e.host.killInit = func(pid int, cgroupsPath string) error {
					gotPath = cgroupsPath
					e.rt.mu.Lock()
					defer e.rt.mu.Unlock()
					if len(e.rt.forced) != 0 {
						t.Errorf("the pod init was deleted before it was killed")
					}
					e.rt.state[id] = ociruntime.StatusStopped
					return nil
				}
			}
			if err := e.m.StopPodInit(context.Background(), &sb); err != nil {
				t.Fatal(err)
			}
			want := sb.CgroupParent + "/" + podInitCgroup(sb.ID)
			switch {
			case direct && (len(e.host.initKilled) != 1 || e.host.initKilled[0] != 4242 || gotPath != want):
				t.Errorf("direct kills %v of %q, want [4242] of %q", e.host.initKilled, gotPath, want)
			case direct && len(e.rt.kills) != 0:
				t.Errorf("runtime kills %v, want none", e.rt.kills)
			case !direct && (len(e.rt.kills) != 1 || e.rt.kills[0] != syscall.SIGKILL):
				t.Errorf("runtime kills %v, want SIGKILL", e.rt.kills)
			}
			// Either way the exited init gets one plain delete (runc's forced one sleeps 100 ms).
			if _, left := e.rt.state[id]; left || !slices.Equal(e.rt.forced, []bool{false}) {
				t.Errorf("pod init left in the runtime (%v), deletes forced %v, want [false]", left, e.rt.forced)
			}
		})
	}
}

// killOwnInit sends nothing to a process that is not the init of a nested PID namespace.
func TestKillOwnInitRefusesOtherProcesses(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := killOwnInit(context.Background(), cmd.Process.Pid, "/test/x", time.Second); !errors.Is(err, errNotInit) {
		t.Fatalf("killOwnInit of a host process: %v, want errNotInit", err)
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the refused process was signalled: %v", err)
	}
}
