package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// loggedRunc writes a runc wrapper that appends its arguments to a log, one exec per line, then execs runc.
func loggedRunc(t *testing.T) (script, log string) {
	t.Helper()
	dir := t.TempDir()
	script, log = filepath.Join(dir, "logged-runc"), filepath.Join(dir, "argv.log")
	if err := os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\necho \"$*\" >>%s\nexec /usr/local/sbin/runc \"$@\"\n", log)), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, log
}

// runtimeKills returns the `kill` invocations of the runtime that name container id.
func runtimeKills(t *testing.T, log, id string) []string { return runtimeCalls(t, log, "kill", id) }

// runtimeCalls returns the invocations of the runtime's command cmd that name container id.
func runtimeCalls(t *testing.T, log, cmd, id string) []string {
	t.Helper()
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); slices.Contains(f, cmd) && slices.Contains(f, id) {
			calls = append(calls, l)
		}
	}
	return calls
}

// procsInCgroupOf returns the host PIDs whose cgroup path names container id.
func procsInCgroupOf(id string) []string {
	var pids []string
	ents, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, p := range ents {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), id) {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}

// TestStopPidfd: a container with its own PID namespace is stopped without `runc kill` (its init is signalled
// through a pidfd), with the same outcome as before: the stop signal reaches the container's trap and it exits
// with its own code; a stop with timeout 0 kills exec'd processes too. A pod sharing its PID namespace is still
// stopped by `runc kill`, all its containers, but its pod init is killed through a pidfd and deleted without
// --force.
func TestStopPidfd(t *testing.T) {
	script, log := loggedRunc(t)
	e := newPodEnvWith(t, 84, fmt.Sprintf("[runtimes.logged]\npath = %q\n", script))

	t.Run("own namespace", func(t *testing.T) {
		cfg := e.podConfig(t, "pidfd-own")
		pod, err := e.n.Runtime.RunPodSandbox(e.ctx, cfg, "logged")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, pod) }()

		// (a) The stop signal reaches the trap, which logs and exits with its own code.
		trap := e.runContainer(t, pod, cfg, "trap", nil, "sh", "-c", "trap 'echo got TERM; exit 3' TERM; echo ready; while true; do sleep 0.1; done")
		logPath := filepath.Join(cfg.LogDirectory, "trap.log")
		waitLog(t, logPath, "ready")
		if err := e.n.Runtime.StopContainer(e.ctx, trap, 30); err != nil {
			t.Fatal(err)
		}
		if st := e.waitExited(t, trap); st.ExitCode != 3 {
			t.Errorf("exit code %d after a graceful stop, want 3 (the trap's)", st.ExitCode)
		}
		waitLog(t, logPath, "got TERM")

		// (b) Timeout 0 with a running exec: everything dies, the exec returns, nothing is left in the cgroup.
		busy := e.runContainer(t, pod, cfg, "busy", nil, "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done")
		execDone := make(chan error, 1)
		go func() {
			_, _, err := e.n.Runtime.ExecSync(e.ctx, busy, []string{"sh", "-c", "trap '' TERM; sleep 4321"}, 2*time.Minute)
			execDone <- err
		}()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			// Anchored: the exec's sh and this probe's own sh name "sleep 4321" in their command lines too.
			if out, _ := readExec(e, busy, "sh", "-c", "pgrep -f '^sleep 4321' || true"); strings.TrimSpace(out) != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the exec'd sleep never showed up")
			}
		}
		if n := len(procsInCgroupOf(busy)); n < 3 {
			t.Fatalf("%d processes in the container's cgroup before the stop, want init, sh and sleep of the exec", n)
		}
		if err := e.n.Runtime.StopContainer(e.ctx, busy, 0); err != nil {
			t.Fatal(err)
		}
		if st := e.waitExited(t, busy); st.ExitCode != 137 {
			t.Errorf("exit code %d after a kill, want 137", st.ExitCode)
		}
		select {
		case <-execDone:
		case <-time.After(30 * time.Second):
			t.Fatal("ExecSync still running 30s after the container was killed")
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			left := procsInCgroupOf(busy)
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("processes left in the killed container's cgroup: %v", left)
			}
		}

		// (d) Neither stop exec'd `runc kill`; stopping again is fine.
		for _, id := range []string{trap, busy} {
			if k := runtimeKills(t, log, id); len(k) != 0 {
				t.Errorf("runtime kills of %s: %q, want none", id, k)
			}
			if err := e.n.Runtime.StopContainer(e.ctx, id, 0); err != nil {
				t.Errorf("second stop: %v", err)
			}
		}
	})

	t.Run("shared namespace", func(t *testing.T) {
		// (c) Every container of a pod sharing its PID namespace is stopped, by the runtime.
		cfg := e.podConfig(t, "pidfd-shared")
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
		pod, err := e.n.Runtime.RunPodSandbox(e.ctx, cfg, "logged")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, pod) }()
		var ids []string
		for _, name := range []string{"one", "two"} {
			ids = append(ids, e.runContainer(t, pod, cfg, name, nil, "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"))
		}
		for _, id := range ids {
			if err := e.n.Runtime.StopContainer(e.ctx, id, 1); err != nil {
				t.Fatal(err)
			}
			if st := e.waitExited(t, id); st.ExitCode != 137 {
				t.Errorf("exit code %d, want 137", st.ExitCode)
			}
			if k := runtimeKills(t, log, id); len(k) != 2 {
				t.Errorf("runtime kills of %s in a shared PID namespace: %q, want the stop signal and kill --all", id, k)
			}
			if left := procsInCgroupOf(id); len(left) != 0 {
				t.Errorf("processes left in the cgroup of %s: %v", id, left)
			}
		}

		// (e) The pod's init, PID 1 of the shared namespace, is killed through a pidfd too: StopPodSandbox
		// exec's no `runc kill` of it, and nothing is left in its cgroup.
		initID, initCgroup := "podinit-"+pod, "podinit-"+pod[:12]
		if left := procsInCgroupOf(initCgroup); len(left) != 1 {
			t.Fatalf("processes in the pod init's cgroup before the stop: %v, want the init", left)
		}
		if err := e.n.Runtime.StopPodSandbox(e.ctx, pod); err != nil {
			t.Fatal(err)
		}
		if k := runtimeKills(t, log, initID); len(k) != 0 {
			t.Errorf("runtime kills of the pod init: %q, want none", k)
		}
		// Its delete is a plain one (runc's --force sleeps 100 ms even for an exited init).
		if d := runtimeCalls(t, log, "delete", initID); len(d) != 1 || strings.Contains(d[0], "--force") {
			t.Errorf("runtime deletes of the pod init: %q, want one without --force", d)
		}
		if left := procsInCgroupOf(initCgroup); len(left) != 0 {
			t.Errorf("processes left in the pod init's cgroup: %v", left)
		}
	})

	assertNoLeaks(t, e.n)
}
