package image

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/snapshotter/overlay"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// BenchmarkPullRegistry pulls an image from a real registry over plain HTTP into the overlay snapshotter on
// disk, the path noded takes, and reports compressed and uncompressed MB/s and the unpack time of each layer.
// It runs only with NODED_BENCH_REGISTRY set (host:port of a registry holding the bench set, e.g. started
// with hack/registry-start.sh and filled with `go run ./hack/imagebuilder --set bench`); NODED_BENCH_IMAGE
// picks another repository:tag (default noded/large:latest) and NODED_BENCH_DIR the directory to unpack under
// (default: a directory under /var/tmp, on disk). Set NODED_BENCH_VERBOSE=1 for per-layer times and
// NODED_BENCH_SEQUENTIAL=1 to unpack one layer after the other (the snapshotter hides its LayerApplier).
func BenchmarkPullRegistry(b *testing.B) {
	host := os.Getenv("NODED_BENCH_REGISTRY")
	if host == "" {
		b.Skip("NODED_BENCH_REGISTRY not set")
	}
	if os.Geteuid() != 0 {
		b.Skip("needs root (the overlay snapshotter keeps ownership)")
	}
	ref := host + "/" + envOr("NODED_BENCH_IMAGE", "noded/large:latest")
	parent := envOr("NODED_BENCH_DIR", "/var/tmp")
	var compressed, uncompressed int64
	var last []layerTime
	var cpu time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		dir, err := os.MkdirTemp(parent, "noded-bench-pull-")
		if err != nil {
			b.Fatal(err)
		}
		svc, sn := openDiskService(b, dir, host)
		c0 := cpuTime()
		b.StartTimer()
		img, err := svc.Pull(context.Background(), ref, PullOptions{})
		b.StopTimer()
		cpu += cpuTime() - c0
		if err != nil {
			b.Fatal(err)
		}
		compressed, uncompressed = img.Size, sn.applied()
		last = sn.times()
		svc.Close()
		sn.Close()
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.SetBytes(uncompressed)
	b.ReportMetric(float64(compressed)/1e6/(b.Elapsed().Seconds()/float64(b.N)), "compressed-MB/s")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
	if os.Getenv("NODED_BENCH_VERBOSE") != "" {
		for i, lt := range last {
			b.Logf("layer %3d: %8.1f MB unpacked in %v (start %v)", i, float64(lt.bytes)/1e6, lt.dur.Round(time.Millisecond), lt.start.Round(time.Millisecond))
		}
	}
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func openDiskService(b *testing.B, dir, host string) (*Service, *timedSnapshotter) {
	b.Helper()
	ov, err := overlay.New(filepath.Join(dir, "snapshots"))
	if err != nil {
		b.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	sn := &timedSnapshotter{Snapshotter: ov, ov: ov, db: db, t0: time.Now(), byKey: map[string]*layerTime{}}
	var wrapped snapshotter.Snapshotter = timedLayerApplier{sn}
	if os.Getenv("NODED_BENCH_SEQUENTIAL") != "" {
		wrapped = sn
	}
	svc, err := New(context.Background(), Options{
		Root: filepath.Join(dir, "images"), DB: db, Snapshotter: wrapped, Registry: plainHTTPConfig(host),
		MaxConcurrentDownloads: 3,
	})
	if err != nil {
		b.Fatal(err)
	}
	return svc, sn
}

type layerTime struct {
	start, dur time.Duration
	bytes      int64
}

// timedSnapshotter records how long each ApplyLayer of the overlay snapshotter takes.
type timedSnapshotter struct {
	snapshotter.Snapshotter
	ov *overlay.Snapshotter
	db *bolt.DB
	t0 time.Time

	mu    sync.Mutex
	byKey map[string]*layerTime
}

func (s *timedSnapshotter) ApplyLayer(ctx context.Context, key string, r io.Reader) (int64, error) {
	start := time.Now()
	n, err := s.ov.ApplyLayer(ctx, key, r)
	s.mu.Lock()
	s.byKey[key] = &layerTime{start: start.Sub(s.t0), dur: time.Since(start), bytes: n}
	s.mu.Unlock()
	return n, err
}

// timedLayerApplier is a timedSnapshotter that also unpacks layers in parallel.
type timedLayerApplier struct{ *timedSnapshotter }

func (s timedLayerApplier) ApplyLayerOnto(ctx context.Context, key, parent string, waitParent func() error, r io.Reader) (int64, error) {
	start := time.Now()
	n, err := s.ov.ApplyLayerOnto(ctx, key, parent, waitParent, r)
	s.mu.Lock()
	s.byKey[key] = &layerTime{start: start.Sub(s.t0), dur: time.Since(start), bytes: n}
	s.mu.Unlock()
	return n, err
}

func (s timedLayerApplier) CommitOnto(ctx context.Context, name, key, parent string, opts ...snapshotter.Opt) error {
	return s.ov.CommitOnto(ctx, name, key, parent, opts...)
}

func (s timedLayerApplier) Sync(ctx context.Context) error { return s.ov.Sync(ctx) }

func (s *timedSnapshotter) applied() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, lt := range s.byKey {
		n += lt.bytes
	}
	return n
}

func (s *timedSnapshotter) times() []layerTime {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]layerTime, 0, len(s.byKey))
	for _, lt := range s.byKey {
		out = append(out, *lt)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	return out
}

func (s *timedSnapshotter) Close() error {
	s.db.Close()
	return s.ov.Close()
}

var (
	_ snapshotter.DirectApplier = (*timedSnapshotter)(nil)
	_ snapshotter.LayerApplier  = timedLayerApplier{}
)
