package stats

import (
	"context"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/cgroupsv2"
	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/store/storetest"
)

// benchEnv is a provider over 250 kubelet-like pods of one running container each, with v2 cgroup files for
// every container and pod and one interface per pod.
func benchEnv(b *testing.B) *env { return benchEnvWith(b, nil) }

func benchEnvWith(b *testing.B, edit func(*Config)) *env {
	e := newEnvWith(b, cgroupsv2.DriverCgroupfs, edit)
	sbs, ctrs := storetest.Fill(b, e.store, 250)
	for i, c := range ctrs {
		e.writeCgroup(b, c.CgroupsPath, 2_000_000, 100<<20, 30<<20, 200<<20, 4)
		e.writeCgroup(b, sbs[i].CgroupParent, 2_000_000, 100<<20, 30<<20, 200<<20, 5)
		e.snaps.usage[c.SnapshotKey] = snapshotter.Usage{Size: 4096, Inodes: 3}
		e.net[sbs[i].Namespaces["net"]] = []NetDev{{Name: "eth0", RxBytes: 1, TxBytes: 2}}
	}
	// As the daemon reads: the counter files kept open, the layer usage from the sync loop's cache.
	e.p.cfg.Cgroups = e.p.cfg.Cgroups.WithOpenFiles(openFileIdle, 0)
	b.Cleanup(e.p.Close)
	e.p.SyncLayers(context.Background())
	e.p.syncing.Store(true)
	return e
}

// BenchmarkListContainerStats250 is kubelet's ListContainerStats (no filter) on 250 running containers.
func BenchmarkListContainerStats250(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		e.clock.Advance(10e9) // kubelet's period
		got, err := e.p.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{})
		if err != nil || len(got) != 250 {
			b.Fatal(len(got), err)
		}
	}
}

// BenchmarkListContainerStats250Collected is ListContainerStats on 250 running containers served from the
// collection's samples (stats.collection_period, the daemon's default), as kubelet's calls between two passes.
func BenchmarkListContainerStats250Collected(b *testing.B) {
	e := benchEnvWith(b, func(c *Config) { c.CollectionPeriod = 10e9 })
	ctx := context.Background()
	e.p.Collect(ctx)
	e.clock.Advance(10e9)
	e.p.Collect(ctx)
	b.ReportAllocs()
	for b.Loop() {
		got, err := e.p.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{})
		if err != nil || len(got) != 250 || got[0].Cpu.UsageNanoCores == nil {
			b.Fatal(len(got), err)
		}
	}
}

// BenchmarkListPodSandboxStats250 is ListPodSandboxStats (no filter) on 250 ready pods.
func BenchmarkListPodSandboxStats250(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		e.clock.Advance(10e9)
		got, err := e.p.ListPodSandboxStats(ctx, &runtimeapi.PodSandboxStatsFilter{})
		if err != nil || len(got) != 250 {
			b.Fatal(len(got), err)
		}
	}
}
