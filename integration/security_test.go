package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// initPID returns the host PID of a shared-PID pod's init from the verbose sandbox status.
func (e *podEnv) initPID(t *testing.T, podID string) int {
	t.Helper()
	st, err := e.n.Runtime.PodSandboxStatus(e.ctx, podID, true)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		InitPid int `json:"initPid"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.InitPid == 0 {
		t.Fatalf("no initPid in verbose status %q: %v", st.Info["info"], err)
	}
	return info.InitPid
}

// writableProcPaths reads a process's mountinfo (a read-only look from the host: nothing is opened for writing)
// and returns each p/sys and p/sysrq-trigger, for every procfs mount point p, that exists and is not on a
// read-only mount.
func writableProcPaths(t *testing.T, pid int) []string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	type mnt struct {
		point string
		ro    bool
		proc  bool
	}
	var mounts []mnt
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 6 || sep < 0 || sep+1 >= len(f) {
			t.Fatalf("mountinfo line %q", line)
		}
		mounts = append(mounts, mnt{point: f[4], ro: slices.Contains(strings.Split(f[5], ","), "ro"), proc: f[sep+1] == "proc"})
	}
	// roAt reports whether the last mount covering p (the one visible there) is read-only.
	roAt := func(p string) bool {
		ro := false
		for _, m := range mounts {
			if p == m.point || strings.HasPrefix(p, strings.TrimSuffix(m.point, "/")+"/") {
				ro = m.ro
			}
		}
		return ro
	}
	var out []string
	for _, m := range mounts {
		if !m.proc {
			continue
		}
		for _, p := range []string{path.Join(m.point, "sys"), path.Join(m.point, "sysrq-trigger")} {
			// lstat only, through the process's root: a path the kernel does not have (no CONFIG_MAGIC_SYSRQ)
			// is not writable.
			if _, err := os.Lstat(fmt.Sprintf("/proc/%d/root%s", pid, p)); errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if !roAt(p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// TestPodInitGivesNoHostProc: containers of a shared-PID pod see the pod init as PID 1 and its root at
// /proc/1/root. A root container (default capabilities, no seccomp) must not reach a writable /proc/sys or
// /proc/sysrq-trigger of the host through it. A pod config without namespace options shares one PID namespace
// too (PID = POD is enum value 0), so it is checked as well.
func TestPodInitGivesNoHostProc(t *testing.T) {
	e := newPodEnv(t, 75, nil)
	for name, linux := range map[string]*runtimeapi.LinuxPodSandboxConfig{
		"pid-pod": {SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}}},
		"no-namespace-options": nil,
	} {
		t.Run(name, func(t *testing.T) {
			podCfg := e.podConfig(t, name)
			podCfg.Linux = linux
			podID := e.runPod(t, podCfg)
			t.Cleanup(func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, podID) })

			// Writes the host's core_pattern back unchanged if it can: harmless, and it proves the write. With
			// CAP_SYS_PTRACE the container gets through /proc/1/root (owned by the init's user), so the write
			// must then fail on the read-only /proc.
			const write = `v=$(cat /proc/1/root/proc/sys/kernel/core_pattern); printf %s "$v" > /proc/1/root/proc/sys/kernel/core_pattern`
			ptrace := func(c *runtimeapi.ContainerConfig) {
				c.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"SYS_PTRACE"}}
			}
			for name, opt := range map[string]ctrOpts{"core-pattern": nil, "core-pattern-ptrace": ptrace} {
				if code, out := e.output(t, podID, podCfg, name, opt, "sh", "-c", write); code == 0 {
					t.Fatalf("%s: a root container wrote kernel.core_pattern through /proc/1/root (output %q)", name, out)
				}
			}
			// sysrq-trigger is never opened: the host reads the init's mountinfo.
			code, out := e.output(t, podID, podCfg, "status", nil, "grep", "-E", `^(Uid|Gid|CapEff|CapBnd|NoNewPrivs|Seccomp):`, "/proc/1/status")
			if code != 0 {
				t.Fatalf("status of the pod init: exit %d: %s", code, out)
			}
			pid := e.initPID(t, podID)
			if w := writableProcPaths(t, pid); len(w) > 0 {
				mi, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
				t.Errorf("writable in the pod init's mount namespace: %v\n%s", w, mi)
			}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) < 2:
					t.Errorf("status line %q", line)
				case (f[0] == "Uid:" || f[0] == "Gid:") && !slices.Equal(f[1:], []string{"65535", "65535", "65535", "65535"}):
					t.Errorf("pod init %s", line)
				case (f[0] == "CapEff:" || f[0] == "CapBnd:") && f[1] != "0000000000000000":
					t.Errorf("pod init %s", line)
				case f[0] == "NoNewPrivs:" && f[1] != "1", f[0] == "Seccomp:" && f[1] != "2":
					t.Errorf("pod init %s", line)
				}
			}
		})
	}
}

// TestRuntimeDefaultSeccompWithoutFeaturesCommand runs a container with the RuntimeDefault profile on a
// runtime whose `features` command fails (as crun 1.8 has none): the profile must still be applied. A runtime
// whose features say it has no seccomp fails CreateContainer with FailedPrecondition.
func TestRuntimeDefaultSeccompWithoutFeaturesCommand(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "nofeatures-runc")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nfor a; do [ \"$a\" = features ] && { echo 'unknown command features' >&2; exit 1; }; done\nexec /usr/local/sbin/runc \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	noSeccomp := filepath.Join(dir, "noseccomp-runc")
	if err := os.WriteFile(noSeccomp, []byte("#!/bin/sh\nfor a; do [ \"$a\" = features ] && { echo '{\"ociVersionMin\":\"1.0.0\",\"linux\":{\"seccomp\":{\"enabled\":false}}}'; exit 0; }; done\nexec /usr/local/sbin/runc \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newPodEnvWith(t, 76, fmt.Sprintf("[runtimes.nofeatures]\npath = %q\n[runtimes.noseccomp]\npath = %q\n", script, noSeccomp))
	podCfg := e.podConfig(t, "nofeatures")
	podID, err := e.n.Runtime.RunPodSandbox(e.ctx, podCfg, "nofeatures")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, podID) })
	seccomp := func(c *runtimeapi.ContainerConfig) {
		c.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	}
	code, out := e.output(t, podID, podCfg, "seccomp", seccomp, "grep", "^Seccomp:", "/proc/self/status")
	if code != 0 || strings.Fields(out)[len(strings.Fields(out))-1] != "2" {
		t.Fatalf("RuntimeDefault on a runtime without `features`: exit %d, %q, want Seccomp: 2 (filter)", code, out)
	}

	podCfg = e.podConfig(t, "noseccomp")
	podID, err = e.n.Runtime.RunPodSandbox(e.ctx, podCfg, "noseccomp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, podID) })
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "seccomp"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
		Command: []string{"true"}, Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}},
	}
	seccomp(cfg)
	if _, err := e.n.Runtime.CreateContainer(e.ctx, podID, cfg, podCfg); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("RuntimeDefault on a runtime without seccomp: %v, want FailedPrecondition", err)
	}
}
