package cri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/stats"
	"github.com/noded/noded/store"
	"github.com/noded/noded/store/storetest"
)

// sendStream records what a server-streaming RPC sends.
type sendStream[T any] struct {
	grpc.ServerStream
	ctx  context.Context
	sent []*T
}

func (s *sendStream[T]) Context() context.Context { return s.ctx }
func (s *sendStream[T]) Send(r *T) error          { s.sent = append(s.sent, r); return nil }

// newStatsServer returns a RuntimeServer whose stats read a fake cgroup v2 tree holding n running containers of
// one pod, each using 1 ms of CPU and 1 MiB of memory.
func newStatsServer(t *testing.T, n int) *RuntimeServer {
	t.Helper()
	dir := t.TempDir()
	st := storetest.New(t)
	sb := &store.Sandbox{ID: "pod1", Name: "pod1", State: store.SandboxReady, CgroupParent: "/noded",
		Config: &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns"}}}
	if err := st.AddSandbox(sb); err != nil {
		t.Fatal(err)
	}
	cgRoot := filepath.Join(dir, "cgroup")
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("ctr%04d", i)
		c := &store.Container{ID: id, SandboxID: "pod1", Name: id, State: store.ContainerRunning,
			CgroupsPath: "/noded/" + id, Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: id}}}
		if err := st.AddContainer(c); err != nil {
			t.Fatal(err)
		}
		cg := filepath.Join(cgRoot, "noded", id)
		if err := os.MkdirAll(cg, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]string{"cpu.stat": "usage_usec 1000\n", "memory.current": "1048576\n"} {
			if err := os.WriteFile(filepath.Join(cg, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	p, err := stats.New(stats.Config{Store: st, Cgroups: cgstats.NewReader(cgRoot, true),
		Network: func(string) ([]stats.NetDev, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return newTestServer(t, Info{}, Backends{Store: st, Stats: p})
}

func TestStatsRPCs(t *testing.T) {
	s := newStatsServer(t, 2)
	ctx := context.Background()

	resp, err := s.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: "ctr0001"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Stats.Attributes.Id != "ctr0001" || resp.Stats.Cpu.UsageCoreNanoSeconds.Value != 1_000_000 ||
		resp.Stats.Memory.UsageBytes.Value != 1<<20 {
		t.Errorf("ContainerStats = %v", resp.Stats)
	}
	if _, err := s.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: "nope"}); !errdefs.IsNotFound(err) {
		t.Errorf("unknown container: err = %v, want NotFound", err)
	}
	if _, err := s.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("empty ID: err = %v, want InvalidArgument", err)
	}
	list, err := s.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{
		Filter: &runtimeapi.ContainerStatsFilter{Id: "ctr0000"}})
	if err != nil || len(list.Stats) != 1 {
		t.Errorf("ListContainerStats = %v, %v", list, err)
	}
	pod, err := s.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: "pod1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pod.Stats.Linux.Containers) != 2 || pod.Stats.Linux.Cpu.UsageCoreNanoSeconds.Value != 2_000_000 {
		t.Errorf("PodSandboxStats = %v", pod.Stats)
	}
	if _, err := s.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: "nope"}); !errdefs.IsNotFound(err) {
		t.Errorf("unknown pod: err = %v, want NotFound", err)
	}
	pods, err := s.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{})
	if err != nil || len(pods.Stats) != 1 {
		t.Errorf("ListPodSandboxStats = %v, %v", pods, err)
	}
	descs, err := s.ListMetricDescriptors(ctx, &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil || len(descs.Descriptors) == 0 {
		t.Errorf("ListMetricDescriptors = %v, %v", descs, err)
	}
	metrics, err := s.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil || len(metrics.PodMetrics) != 1 || len(metrics.PodMetrics[0].ContainerMetrics) != 2 {
		t.Errorf("ListPodSandboxMetrics = %v, %v", metrics, err)
	}
}

func TestStatsStreamsChunk(t *testing.T) {
	s := newStatsServer(t, streamChunk+1)
	ctx := context.Background()
	cs := &sendStream[runtimeapi.StreamContainerStatsResponse]{ctx: ctx}
	if err := s.StreamContainerStats(&runtimeapi.StreamContainerStatsRequest{}, cs); err != nil {
		t.Fatal(err)
	}
	if len(cs.sent) != 2 || len(cs.sent[0].ContainerStats) != streamChunk || len(cs.sent[1].ContainerStats) != 1 {
		t.Errorf("StreamContainerStats sent %d messages", len(cs.sent))
	}
	ps := &sendStream[runtimeapi.StreamPodSandboxStatsResponse]{ctx: ctx}
	if err := s.StreamPodSandboxStats(&runtimeapi.StreamPodSandboxStatsRequest{}, ps); err != nil {
		t.Fatal(err)
	}
	if len(ps.sent) != 1 || len(ps.sent[0].PodSandboxStats) != 1 {
		t.Errorf("StreamPodSandboxStats sent %v", ps.sent)
	}
	ms := &sendStream[runtimeapi.StreamPodSandboxMetricsResponse]{ctx: ctx}
	if err := s.StreamPodSandboxMetrics(&runtimeapi.StreamPodSandboxMetricsRequest{}, ms); err != nil {
		t.Fatal(err)
	}
	if len(ms.sent) != 1 || len(ms.sent[0].PodSandboxMetrics) != 1 {
		t.Errorf("StreamPodSandboxMetrics sent %v", ms.sent)
	}
}

// kubelet's start-up probe of PodSandboxStats (an empty ID; only Unimplemented makes it fall back to cAdvisor
// stats): a noded with stats answers InvalidArgument, so kubelet uses the CRI stats; one without stats answers
// Unimplemented, so kubelet falls back.
func TestPodSandboxStatsKubeletProbe(t *testing.T) {
	ctx := context.Background()
	_, err := newStatsServer(t, 1).PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{})
	if c := errdefs.Code(err); c != codes.InvalidArgument {
		t.Errorf("empty ID with stats: %v (code %v), want InvalidArgument (anything but Unimplemented keeps kubelet on CRI stats)", err, c)
	}
	_, err = newTestServer(t, Info{}, Backends{Stats: StatsUnavailable{}}).PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{})
	if c := errdefs.Code(err); c != codes.Unimplemented {
		t.Errorf("empty ID without stats: %v (code %v), want Unimplemented (kubelet then falls back to cAdvisor)", err, c)
	}
}
