package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestExecSyncTimeoutKillsProcess: the exec'd process is gone after its deadline, in a pod with its own PID
// namespace per container and in one sharing the pod's.
func TestExecSyncTimeoutKillsProcess(t *testing.T) {
	e := newPodEnv(t, 7, nil)
	for _, mode := range []runtimeapi.NamespaceMode{runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_POD} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := e.podConfig(t, "exectimeout-"+strings.ToLower(mode.String()))
			cfg.Linux.SecurityContext.NamespaceOptions.Pid = mode
			pod := e.runPod(t, cfg)
			defer func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, pod) }()
			c := e.createContainer(t, pod, cfg, "top", "sh", "-c", "top")
			if err := e.n.Runtime.StartContainer(e.ctx, c); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, _, err := e.n.Runtime.ExecSync(e.ctx, c, []string{"sleep", "4321"}, time.Second)
			if err == nil {
				t.Fatal("ExecSync of sleep 4321 with a 1s timeout succeeded")
			}
			if status.Code(err) != codes.DeadlineExceeded && !strings.Contains(err.Error(), "timed out") {
				t.Errorf("timeout error = %v", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("ExecSync returned after %s", d)
			}
			out, _, err := e.n.Runtime.ExecSync(e.ctx, c, []string{"sh", "-c", "pgrep sleep || true"}, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if s := strings.TrimSpace(string(out)); s != "" {
				ps, _, _ := e.n.Runtime.ExecSync(e.ctx, c, []string{"ps", "-o", "pid,ppid,stat,args"}, 10*time.Second)
				t.Fatalf("sleep still there after the timeout: pids %s\n%s\nhost: %s", s, ps, hostZombies())
			}
		})
	}
}

// hostZombies describes zombie processes on the host and their parents (for failure messages).
func hostZombies() string {
	var b strings.Builder
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		st, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil || !strings.Contains(string(st), "State:\tZ") {
			continue
		}
		ppid := ""
		for _, l := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(l, "PPid:") {
				ppid = strings.TrimSpace(strings.TrimPrefix(l, "PPid:"))
			}
		}
		parent, _ := os.ReadFile("/proc/" + ppid + "/cmdline")
		fmt.Fprintf(&b, "zombie %s parent %s (%s); ", e.Name(), ppid, strings.ReplaceAll(string(parent), "\x00", " "))
	}
	return b.String()
}
