package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
)

func TestContainerEventsInOrder(t *testing.T) {
	e := newPodEnv(t, 8, nil)
	events := e.subscribeEvents(t)
	cfg := e.podConfig(t, "events")
	pod := e.runPod(t, cfg)
	c := e.createContainer(t, pod, cfg, "short", "sh", "-c", "exit 0")
	if err := e.n.Runtime.StartContainer(e.ctx, c); err != nil {
		t.Fatal(err)
	}
	e.waitExited(t, c)
	if err := e.n.Runtime.RemovePodSandbox(e.ctx, pod); err != nil {
		t.Fatal(err)
	}
	want := []runtimeapi.ContainerEventType{
		runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT,
	}
	var got []runtimeapi.ContainerEventType
	timeout := time.After(15 * time.Second)
	for len(got) < len(want) {
		select {
		case ev := <-events:
			if ev.ContainerId != c {
				continue
			}
			got = append(got, ev.ContainerEventType)
			// A deleted container is no longer one of the pod's: its pod (of one container) then has none.
			deleted := ev.ContainerEventType == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT
			if (len(ev.ContainersStatuses) == 0) != deleted || ev.CreatedAt == 0 || ev.PodSandboxStatus.GetId() != pod {
				t.Errorf("event %v lacks the pod or container status or time", ev.ContainerEventType)
			}
		case <-timeout:
			t.Fatalf("events so far %v, want %v", got, want)
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
}

// TestExecSyncLeaksNothing runs 1,000 ExecSync calls and compares noded's goroutines (from its pprof endpoint)
// and open file descriptors before and after.
func TestExecSyncLeaksNothing(t *testing.T) {
	framework.RequireRoot(t)
	pprof := filepath.Join(t.TempDir(), "pprof.sock")
	e := newPodEnvWith(t, 9, fmt.Sprintf("[debug]\npprof_socket = %q\n", pprof))
	cfg := e.podConfig(t, "execleak")
	pod := e.runPod(t, cfg)
	c := e.createContainer(t, pod, cfg, "sleeper", "sleep", "100000")
	if err := e.n.Runtime.StartContainer(e.ctx, c); err != nil {
		t.Fatal(err)
	}
	exec := func() {
		out, _, err := e.n.Runtime.ExecSync(e.ctx, c, []string{"echo", "ok"}, 10*time.Second)
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Fatalf("ExecSync: %q %v", out, err)
		}
	}
	for i := 0; i < 20; i++ { // warm up pools and caches
		exec()
	}
	g0, fd0 := goroutines(t, pprof), fds(t, e.n.PID())
	n := 1000
	if testing.Short() {
		n = 100
	}
	for i := 0; i < n; i++ {
		exec()
	}
	time.Sleep(500 * time.Millisecond)
	g1, fd1 := goroutines(t, pprof), fds(t, e.n.PID())
	t.Logf("after %d ExecSync: goroutines %d -> %d, fds %d -> %d", n, g0, g1, fd0, fd1)
	if g1 > g0+5 {
		t.Errorf("goroutines grew from %d to %d over %d ExecSync calls", g0, g1, n)
	}
	if fd1 > fd0+5 {
		t.Errorf("file descriptors grew from %d to %d over %d ExecSync calls", fd0, fd1, n)
	}
	if err := e.n.Runtime.RemovePodSandbox(e.ctx, pod); err != nil {
		t.Fatal(err)
	}
}

// pprofClient is an HTTP client talking to noded's pprof unix socket.
func pprofClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
}

// goroutines reads noded's goroutine count from its pprof socket.
func goroutines(t *testing.T, socket string) int {
	t.Helper()
	resp, err := pprofClient(socket).Get("http://noded/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	// "goroutine profile: total N"
	f := strings.Fields(line)
	n, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		t.Fatalf("goroutine profile header %q", line)
	}
	return n
}

func fds(t *testing.T, pid int) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		// The cgroup counter files the stats keep open between reads are not counted: the collection loop
		// (stats.collection_period) opens those of a running container whenever its pass comes, and they are
		// closed once unread for a minute (cgroupsv2/stats, TestOpenFiles*).
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(target, "/sys/fs/cgroup/") {
			continue
		}
		n++
	}
	return n
}

// subscribeEvents opens a GetContainerEvents stream for the rest of the test and returns once it is connected.
func (e *podEnv) subscribeEvents(t *testing.T) <-chan *runtimeapi.ContainerEventResponse {
	t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	t.Cleanup(cancel)
	events := make(chan *runtimeapi.ContainerEventResponse, 100)
	connected := make(chan struct{})
	go func() {
		_ = e.n.Runtime.GetContainerEvents(ctx, events, func(runtimeapi.RuntimeService_GetContainerEventsClient) { close(connected) })
	}()
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("event stream did not connect")
	}
	return events
}
