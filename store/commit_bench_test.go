package store

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// benchDir is where the benchmarks put their bbolt file: NODED_BENCH_DIR when set (a real disk, so that each
// fdatasync costs what it costs on a node), else the test's temporary directory.
func benchDir(b *testing.B) string {
	if d := os.Getenv("NODED_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "storebench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

// txID is the ID of db's last committed write transaction: it grows by one per commit.
func txID(b *testing.B, db *bolt.DB) int {
	tx, err := db.Begin(false)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	return int(tx.ID())
}

// podStart makes the store writes of one pod start, in the order noded makes them: the sandbox's intent, its
// network and its readiness, then one container's intent, its creation and its start.
func podStart(s *Store, i int) error {
	name := fmt.Sprintf("web-%d", i)
	sb := &Sandbox{
		ID: NewID(), Name: name + "_default_uid_0", State: SandboxCreating, CreatedAt: int64(i),
		Config: &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: "uid"},
			Labels:   map[string]string{"app": "web", "io.kubernetes.pod.name": name},
		},
	}
	if err := s.AddSandbox(sb); err != nil {
		return err
	}
	for _, fn := range []func(*Sandbox) error{
		func(x *Sandbox) error { x.Namespaces = map[string]string{"net": "/run/noded/ns/" + x.ID}; return nil },
		func(x *Sandbox) error { x.NetworkSetUp = true; return nil },
		func(x *Sandbox) error { x.IPs = []string{"10.0.0.2"}; x.State = SandboxReady; return nil },
	} {
		if _, err := s.UpdateSandbox(sb.ID, fn); err != nil {
			return err
		}
	}
	c := &Container{
		ID: NewID(), SandboxID: sb.ID, Name: "app_" + sb.Name, State: ContainerCreating, CreatedAt: int64(i),
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
			Image:    &runtimeapi.ImageSpec{Image: "docker.io/library/busybox:latest"},
		},
	}
	if err := s.AddContainer(c); err != nil {
		return err
	}
	for _, st := range []ContainerState{ContainerCreated, ContainerRunning} {
		if _, err := s.UpdateContainer(c.ID, func(x *Container) error { x.State = st; return nil }); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkPodStartWrites measures the store writes of b.N pod starts made by 1, 10 and 30 goroutines at once on
// a synced bbolt file: ns/op is per pod, commits/pod the bbolt commits (each two fdatasyncs) per pod.
// Run it on a real disk: NODED_BENCH_DIR=/var/tmp/x go test ./store -run '^$' -bench PodStartWrites -count 6
func BenchmarkPodStartWrites(b *testing.B) {
	for _, n := range []int{1, 10, 30} {
		b.Run(fmt.Sprintf("writers=%d", n), func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(benchDir(b), "noded.db"), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			s, err := Open(db)
			if err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, n)
			start := txID(b, db)
			b.ResetTimer()
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						if err := podStart(s, int(i)); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(txID(b, db)-start)/float64(b.N), "commits/pod")
		})
	}
}
