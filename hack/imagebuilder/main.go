// Command imagebuilder builds noded's test images from Debian packages and
// pushes them to a local registry.
//
//	go run ./hack/imagebuilder --registry 127.0.0.1:5000 [--set test|critest|bench|all]
//	go run ./hack/imagebuilder --set busybox --layout DIR   # an OCI image layout instead (e.g. for a test guest)
//	go run ./hack/imagebuilder --set e2enode --agnhost BIN --porter DIR   # the node e2e suite's images
//
// The test and bench sets go to noded/... repositories. The critest set goes
// to each image's upstream repository path without its host
// (registry.k8s.io/e2e-test-images/busybox:1.29-2 -> e2e-test-images/busybox:1.29-2),
// so one registry serves as the mirror endpoint of every upstream host
// (registry.k8s.io, k8s.gcr.io, gcr.io, docker.io, quay.io, public.ecr.aws).
// The e2enode set (Kubernetes node e2e, hack/e2e-node/run.sh) is keyed the
// same way; it needs the agnhost binary (--agnhost) and, for porter's TLS
// port, the directory of its localhost.crt and localhost.key (--porter).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/noded/noded/internal/testimage"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuilder:", err)
		os.Exit(1)
	}
}

func run() error {
	registry := flag.String("registry", "127.0.0.1:5000", "registry host:port to push to (plain HTTP)")
	set := flag.String("set", "all", "image set: test, critest, bench, busybox, e2enode or all (comma-separated list allowed)")
	agnhost := flag.String("agnhost", "", "agnhost binary for the e2enode set")
	porter := flag.String("porter", "", "directory with porter's localhost.crt and localhost.key for the e2enode set")
	cache := flag.String("cache", testimage.DefaultCacheDir, "cache directory for .debs, extracted packages and helpers")
	compression := flag.String("compression", string(testimage.Gzip), "layer compression of the base images: gzip, zstd or none")
	format := flag.String("format", string(testimage.OCI), "manifest format of the base images: oci or docker")
	dryRun := flag.Bool("dry-run", false, "build and print digests without pushing")
	layoutDir := flag.String("layout", "", "write the set's images into an OCI image layout at this directory instead of pushing")
	verbose := flag.Bool("v", false, "log progress")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logf := func(string, ...any) {}
	if *verbose {
		logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, "imagebuilder: "+f+"\n", a...) }
	}
	b := testimage.NewBuilder(testimage.Options{
		CacheDir:    *cache,
		Compression: testimage.Compression(*compression),
		Format:      testimage.Format(*format),
		Logf:        logf,
	})

	builders := map[string]func(context.Context) (*testimage.Set, error){
		"test":    b.TestSet,
		"critest": b.CritestSet,
		"bench":   b.BenchSet,
		"e2enode": func(ctx context.Context) (*testimage.Set, error) {
			return b.E2ENodeSet(ctx, testimage.E2ENodeOptions{AgnhostPath: *agnhost, PorterDir: *porter})
		},
		"busybox": func(ctx context.Context) (*testimage.Set, error) {
			img, err := b.Busybox(ctx)
			if err != nil {
				return nil, err
			}
			return &testimage.Set{Images: map[string]v1.Image{testimage.TestBusybox: img}}, nil
		},
	}
	names := strings.Split(*set, ",")
	if *set == "all" {
		names = []string{"test", "critest", "bench"}
	}
	all := &testimage.Set{Images: map[string]v1.Image{}, Indexes: map[string]v1.ImageIndex{}}
	for _, n := range names {
		build, ok := builders[n]
		if !ok {
			return fmt.Errorf("unknown set %q (want test, critest, bench, busybox, e2enode or all)", n)
		}
		start := time.Now()
		s, err := build(ctx)
		if err != nil {
			return fmt.Errorf("building set %s: %w", n, err)
		}
		// Force layer compression and digests now, so the time is the build's.
		for _, name := range s.Names() {
			if err := digestOf(s, name); err != nil {
				return err
			}
		}
		logf("built set %s (%d names) in %s", n, len(s.Names()), time.Since(start).Round(time.Millisecond))
		all.Merge(s)
	}

	report := func(name string, d v1.Hash) { fmt.Printf("%s/%s\t%s\n", *registry, name, d) }
	if *dryRun {
		for _, name := range all.Names() {
			d, err := digest(all, name)
			if err != nil {
				return err
			}
			report(name, d)
		}
		return nil
	}
	if *layoutDir != "" {
		if len(all.Indexes) > 0 {
			return fmt.Errorf("--layout takes images only; the set has %d indexes", len(all.Indexes))
		}
		if err := testimage.WriteLayout(*layoutDir, all.Images); err != nil {
			return err
		}
		for _, name := range all.Names() {
			d, err := digest(all, name)
			if err != nil {
				return err
			}
			fmt.Printf("%s\t%s\n", name, d)
		}
		return nil
	}
	start := time.Now()
	if _, err := all.Push(ctx, *registry, report); err != nil {
		return err
	}
	logf("pushed %d names in %s", len(all.Names()), time.Since(start).Round(time.Millisecond))
	return nil
}

func digest(s *testimage.Set, name string) (v1.Hash, error) {
	var d v1.Hash
	var err error
	if img, ok := s.Images[name]; ok {
		d, err = img.Digest()
	} else {
		d, err = s.Indexes[name].Digest()
	}
	if err != nil {
		return v1.Hash{}, fmt.Errorf("digest of %s: %w", name, err)
	}
	return d, nil
}

func digestOf(s *testimage.Set, name string) error {
	_, err := digest(s, name)
	return err
}
