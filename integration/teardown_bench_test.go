package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
)

// daemonCPU is the CPU time of process pid and of its waited-for children (runc, CNI plugins and what they
// exec): utime + stime + cutime + cstime of /proc/PID/stat.
func daemonCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} { // fields 14-17 of stat, after pid and comm
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ = 100
}

// BenchmarkPodTeardown runs b.N pod lifecycles (a pod with a started busybox container) and reports, per call,
// the median wall time and the mean CPU of noded and its waited-for children for StopContainer,
// StopPodSandbox and RemovePodSandbox. Run as root:
//
//	NODED_TEST_SLOT=2 go test ./integration -run '^$' -bench PodTeardown -benchtime 30x
func BenchmarkPodTeardown(b *testing.B) {
	p := framework.NewPodEnv(b, 95, framework.Options{}, nil, 30*time.Minute)
	n, ctx := p.Noded, p.Ctx
	logs := filepath.Join(b.TempDir(), "logs")
	names := []string{"StopContainer", "StopPodSandbox", "RemovePodSandbox"}
	wall := make([][]time.Duration, len(names))
	cpu := make([]time.Duration, len(names))
	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("teardown-%d", i)
		podCfg := &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "it", Uid: name + "-uid"},
			Hostname:     name,
			LogDirectory: filepath.Join(logs, name),
			Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
			}},
		}
		podID, err := n.Runtime.RunPodSandbox(ctx, podCfg, "")
		if err != nil {
			b.Fatal(err)
		}
		ctr, err := n.Runtime.CreateContainer(ctx, podID, &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
			Image:    &runtimeapi.ImageSpec{Image: "busybox"},
			Command:  []string{"sleep", "3600"},
			LogPath:  "c.log",
		}, podCfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := n.Runtime.StartContainer(ctx, ctr); err != nil {
			b.Fatal(err)
		}
		calls := []func() error{
			func() error { return n.Runtime.StopContainer(ctx, ctr, 0) },
			func() error { return n.Runtime.StopPodSandbox(ctx, podID) },
			func() error { return n.Runtime.RemovePodSandbox(ctx, podID) },
		}
		for k, call := range calls {
			c0, t0 := daemonCPU(b, n.PID()), time.Now()
			b.StartTimer()
			err := call()
			b.StopTimer()
			wall[k] = append(wall[k], time.Since(t0))
			cpu[k] += daemonCPU(b, n.PID()) - c0
			if err != nil {
				b.Fatalf("%s: %v", names[k], err)
			}
		}
	}
	for k, name := range names {
		sort.Slice(wall[k], func(i, j int) bool { return wall[k][i] < wall[k][j] })
		b.ReportMetric(float64(wall[k][len(wall[k])/2])/1e6, name+"-p50-ms")
		b.ReportMetric(float64(cpu[k])/1e6/float64(b.N), name+"-cpu-ms/op")
	}
}
