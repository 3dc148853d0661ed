package testimage

import (
	"context"
	"fmt"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/noded/noded/errdefs"
)

// Set is a group of images and indexes to push, keyed by repository:tag
// (without registry host).
type Set struct {
	Images  map[string]v1.Image
	Indexes map[string]v1.ImageIndex
}

func newSet() *Set {
	return &Set{Images: map[string]v1.Image{}, Indexes: map[string]v1.ImageIndex{}}
}

// Names returns every repository:tag of the set, sorted.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.Images)+len(s.Indexes))
	for n := range s.Images {
		out = append(out, n)
	}
	for n := range s.Indexes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Merge adds other's entries to s.
func (s *Set) Merge(other *Set) {
	for n, img := range other.Images {
		s.Images[n] = img
	}
	for n, idx := range other.Indexes {
		s.Indexes[n] = idx
	}
}

// Push uploads every entry to registryHost and returns the pushed digests by
// repository:tag. report, if not nil, is called after each push.
func (s *Set) Push(ctx context.Context, registryHost string, report func(name string, d v1.Hash), opts ...remote.Option) (map[string]v1.Hash, error) {
	out := map[string]v1.Hash{}
	for _, n := range s.Names() {
		var d v1.Hash
		var err error
		if img, ok := s.Images[n]; ok {
			d, err = Push(ctx, registryHost, n, img, opts...)
		} else {
			d, err = PushIndex(ctx, registryHost, n, s.Indexes[n], opts...)
		}
		if err != nil {
			return out, err
		}
		out[n] = d
		if report != nil {
			report(n, d)
		}
	}
	return out, nil
}

// Test-set names, under the noded/ namespace.
const (
	TestBusybox                   = "noded/busybox:latest"
	TestBusyboxDocker             = "noded/busybox:docker"
	TestBusyboxZstd               = "noded/busybox:zstd"
	TestBusyboxUncompressed       = "noded/busybox:uncompressed"
	TestBusyboxDockerUncompressed = "noded/busybox:docker-uncompressed"
	TestNonRoot                   = "noded/nonroot:latest"
	TestWhiteouts                 = "noded/whiteouts:latest"
	TestManyLayers                = "noded/manylayers:latest"
	TestMultiPlatform             = "noded/multiplatform:latest"
	TestPause                     = "noded/pause:latest"
	TestNginx                     = "noded/nginx:latest"
	BenchLarge                    = "noded/large:latest"
)

// TestSet builds the images noded's own tests pull.
func (b *Builder) TestSet(ctx context.Context) (*Set, error) {
	bb, err := b.Busybox(ctx)
	if err != nil {
		return nil, err
	}
	s := newSet()
	s.Images[TestBusybox] = bb
	for name, v := range map[string]struct {
		c Compression
		f Format
	}{
		TestBusyboxDocker:             {Gzip, Docker},
		TestBusyboxZstd:               {Zstd, OCI},
		TestBusyboxUncompressed:       {Uncompressed, OCI},
		TestBusyboxDockerUncompressed: {Uncompressed, Docker},
	} {
		img, err := Convert(bb, v.c, v.f)
		if err != nil {
			return nil, fmt.Errorf("building %s: %w", name, err)
		}
		s.Images[name] = img
	}
	if s.Images[TestNonRoot], err = NonRootUser(bb); err != nil {
		return nil, fmt.Errorf("building %s: %w", TestNonRoot, err)
	}
	if s.Images[TestWhiteouts], _, err = MultiLayerWhiteouts(bb, b.opts.Compression, b.opts.Format); err != nil {
		return nil, fmt.Errorf("building %s: %w", TestWhiteouts, err)
	}
	if s.Images[TestManyLayers], err = ManyLayers(bb, 128, b.opts.Compression, b.opts.Format); err != nil {
		return nil, fmt.Errorf("building %s: %w", TestManyLayers, err)
	}
	if s.Indexes[TestMultiPlatform], err = MultiPlatform(bb, b.opts.Compression, b.opts.Format); err != nil {
		return nil, fmt.Errorf("building %s: %w", TestMultiPlatform, err)
	}
	if s.Images[TestPause], err = b.Pause(ctx, "3.10"); err != nil {
		return nil, fmt.Errorf("building %s: %w", TestPause, err)
	}
	if s.Images[TestNginx], err = b.Nginx(ctx, 80); err != nil {
		return nil, fmt.Errorf("building %s: %w", TestNginx, err)
	}
	return s, nil
}

// BenchSet builds the images for pull benchmarks: Large on busybox.
func (b *Builder) BenchSet(ctx context.Context) (*Set, error) {
	bb, err := b.Busybox(ctx)
	if err != nil {
		return nil, err
	}
	s := newSet()
	if s.Images[BenchLarge], err = Large(bb, LargeOptions{}, b.opts.Compression, b.opts.Format); err != nil {
		return nil, fmt.Errorf("building %s: %w", BenchLarge, err)
	}
	return s, nil
}

// CritestSet builds Critest's images keyed by the repository:tag a mirror
// serves them under (upstream reference minus host). It fails if two hosts'
// images would collide on one registry.
func (b *Builder) CritestSet(ctx context.Context) (*Set, error) {
	imgs, err := b.Critest(ctx)
	if err != nil {
		return nil, err
	}
	coll, err := MirrorCollisions(imgs)
	if err != nil {
		return nil, err
	}
	if len(coll) > 0 {
		return nil, errdefs.FailedPrecondition("critest images collide on one mirror registry: %v", coll)
	}
	s := newSet()
	for ref, img := range imgs {
		_, rt, err := MirrorRepo(ref)
		if err != nil {
			return nil, err
		}
		s.Images[rt] = img
	}
	return s, nil
}
