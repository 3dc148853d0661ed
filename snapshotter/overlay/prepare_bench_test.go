package overlay

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkPrepareConcurrent prepares containers' rootfs snapshots of one committed image from 1, 10 and 30
// goroutines at once, with the metadata synced as in noded: ns/op is per snapshot (a pod start's one snapshotter
// write per container), commits/op the metadata commits (each two fdatasyncs). Put it on a real disk:
// NODED_BENCH_DIR=/var/tmp/x go test ./snapshotter/overlay -run '^$' -bench PrepareConcurrent -count 6
func BenchmarkPrepareConcurrent(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1, 10, 30} {
		b.Run(fmt.Sprintf("writers=%d", n), func(b *testing.B) {
			root := b.TempDir()
			if d := os.Getenv("NODED_BENCH_DIR"); d != "" {
				var err error
				if root, err = os.MkdirTemp(d, "prepbench"); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { os.RemoveAll(root) })
			}
			s, err := New(root)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Prepare(ctx, "base-active", ""); err != nil {
				b.Fatal(err)
			}
			if err := s.Commit(ctx, "base", "base-active"); err != nil {
				b.Fatal(err)
			}
			txID := func() int {
				tx, err := s.db.Begin(false)
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = tx.Rollback() }()
				return int(tx.ID())
			}
			start := txID()
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, n)
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
						if _, err := s.Prepare(ctx, fmt.Sprintf("ctr-%d", i), "base"); err != nil {
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
			b.ReportMetric(float64(txID()-start)/float64(b.N), "commits/op")
		})
	}
}
