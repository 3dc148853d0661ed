package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// logLines returns the last "line N" number a counting container wrote to its CRI log, or -1.
func logCounter(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	last := -1
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.Index(l, " line "); i >= 0 {
			if n, err := strconv.Atoi(strings.TrimSpace(l[i+6:])); err == nil {
				last = n
			}
		}
	}
	return last
}

// waitLogPast waits until the counting container's log goes past n.
func waitLogPast(t *testing.T, path string, n int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c := logCounter(t, path); c > n {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("log %s did not go past line %d", path, n)
	return 0
}

// TestRestartRecovery restarts noded gracefully and with SIGKILL under running containers, and while it is
// down lets a container exit, removes a container's runtime state and a pod's netns pin. After each restart:
// running containers are RUNNING, exec works and their logs continue; the exit that happened while noded was
// down is reported with its real code and time; what cannot be recovered is reported (UNKNOWN container,
// NOTREADY pod), stops and removes; and nothing leaks.
func TestRestartRecovery(t *testing.T) {
	e := newPodEnv(t, 41, nil)
	cfg := e.podConfig(t, "restart")
	pod := e.runPod(t, cfg)
	counter := e.createContainer(t, pod, cfg, "counter", "sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done")
	if err := e.n.Runtime.StartContainer(e.ctx, counter); err != nil {
		t.Fatal(err)
	}
	logPath := e.containerStatus(t, counter).LogPath

	for _, mode := range []string{"SIGTERM", "SIGKILL"} {
		t.Run(mode, func(t *testing.T) {
			before := waitLogPast(t, logPath, logCounter(t, logPath))
			if mode == "SIGTERM" {
				e.n.Stop()
			} else {
				e.n.Kill()
			}
			// The container keeps logging while noded is down.
			down := waitLogPast(t, logPath, before)
			e.n.Respawn()
			st := e.containerStatus(t, counter)
			if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				t.Fatalf("container after the %s restart: %v, want RUNNING", mode, st.State)
			}
			out, _, err := e.n.Runtime.ExecSync(e.ctx, counter, []string{"echo", "ok"}, 10*time.Second)
			if err != nil || strings.TrimSpace(string(out)) != "ok" {
				t.Fatalf("exec after the restart: %q %v", out, err)
			}
			if err := e.n.Runtime.ReopenContainerLog(e.ctx, counter); err != nil {
				t.Fatalf("ReopenContainerLog after the restart: %v", err)
			}
			waitLogPast(t, logPath, down)
			pods, err := e.n.Runtime.ListPodSandbox(e.ctx, nil)
			if err != nil || len(pods) != 1 || pods[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
				t.Fatalf("pods after the restart: %v %v", pods, err)
			}
		})
	}

	t.Run("ExitWhileDown", func(t *testing.T) {
		c := e.createContainer(t, pod, cfg, "exiter", "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 7")
		if err := e.n.Runtime.StartContainer(e.ctx, c); err != nil {
			t.Fatal(err)
		}
		started := e.containerStatus(t, c).StartedAt
		e.n.Stop()
		down := time.Now().UnixNano()
		// Make it exit while noded is down, then wait for conmon to record the exit.
		if err := os.WriteFile(filepath.Join(e.n.State, "containers", c, "rootfs", "tmp", "go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		waitFile(t, filepath.Join(e.n.State, "exits", c))
		up := time.Now().UnixNano()
		e.n.Respawn()
		st := e.containerStatus(t, c)
		if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 7 || st.Reason != "Error" {
			t.Fatalf("container that exited while noded was down: %v code %d reason %q, want EXITED 7 Error", st.State, st.ExitCode, st.Reason)
		}
		// conmon's exit file carries the exit time as its mtime, which the kernel reads from its coarse
		// clock: up to one tick (its resolution) behind time.Now.
		var res unix.Timespec
		if err := unix.ClockGetres(unix.CLOCK_REALTIME_COARSE, &res); err != nil {
			t.Fatal(err)
		}
		if st.StartedAt != started || st.FinishedAt < down-res.Nano() || st.FinishedAt > up {
			t.Errorf("times: started %d (was %d), finished %d, want between %d and %d", st.StartedAt, started, st.FinishedAt, down-res.Nano(), up)
		}
		if err := e.n.Runtime.RemoveContainer(e.ctx, c); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("RuntimeStateLost", func(t *testing.T) {
		c := e.createContainer(t, pod, cfg, "lost", "sleep", "100000")
		if err := e.n.Runtime.StartContainer(e.ctx, c); err != nil {
			t.Fatal(err)
		}
		e.n.Kill()
		// Someone removed the runtime's state; the process goes on running.
		if err := os.RemoveAll(filepath.Join(e.n.State, "runtimes", "runc", c)); err != nil {
			t.Fatal(err)
		}
		e.n.Respawn()
		st := e.containerStatus(t, c)
		if st.State != runtimeapi.ContainerState_CONTAINER_UNKNOWN {
			t.Fatalf("container without runtime state: %v, want UNKNOWN", st.State)
		}
		// The other container and the pod are not held up.
		if e.containerStatus(t, counter).State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Error("the counter container is not RUNNING next to a lost one")
		}
		if err := e.n.Runtime.StopContainer(e.ctx, c, 1); err != nil {
			t.Fatalf("StopContainer of an UNKNOWN container: %v", err)
		}
		if st := e.containerStatus(t, c); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			t.Fatalf("UNKNOWN container after StopContainer: %v, want EXITED", st.State)
		}
		if err := e.n.Runtime.RemoveContainer(e.ctx, c); err != nil {
			t.Fatalf("RemoveContainer of a lost container: %v", err)
		}
	})

	t.Run("NetnsPinLost", func(t *testing.T) {
		other := e.runPod(t, e.podConfig(t, "pinlost"))
		e.n.Stop()
		pin := filepath.Join(e.n.State, "ns", other, "net")
		if err := syscall.Unmount(pin, syscall.MNT_DETACH); err != nil {
			t.Fatalf("unmount the netns pin: %v", err)
		}
		if err := os.Remove(pin); err != nil {
			t.Fatal(err)
		}
		e.n.Respawn()
		st, err := e.n.Runtime.PodSandboxStatus(e.ctx, other, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
			t.Fatalf("pod whose netns pin vanished: %v, want NOTREADY", st.Status.State)
		}
		if st, err := e.n.Runtime.PodSandboxStatus(e.ctx, pod, false); err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Fatalf("the other pod is not READY: %v %v", st, err)
		}
		if err := e.n.Runtime.StopPodSandbox(e.ctx, other); err != nil {
			t.Fatalf("StopPodSandbox of a pod without its netns: %v", err)
		}
		if err := e.n.Runtime.RemovePodSandbox(e.ctx, other); err != nil {
			t.Fatalf("RemovePodSandbox of a pod without its netns: %v", err)
		}
	})

	e.removeAllPods(t)
	e.assertNoLeaksFull(t)
}

func (e *podEnv) containerStatus(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	st, err := e.n.Runtime.ContainerStatus(e.ctx, id, false)
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return st.Status
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not appear", path)
}
