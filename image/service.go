package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/image/content"
	"github.com/noded/noded/image/registry"
	"github.com/noded/noded/snapshotter"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/semaphore"
	"k8s.io/klog/v2"
)

// Snapshot labels and keys used by the image service.
const (
	// LabelLayer marks a committed snapshot as an image layer (value: the layer's diff ID). Only snapshots with
	// this label are garbage-collected by the image service.
	LabelLayer = "noded.io/image.layer"
	// labelUnpack marks the temporary active snapshot a layer is unpacked into (value: the chain ID).
	labelUnpack = "noded.io/image.unpack"
	// unpackKeyPrefix starts the keys of temporary unpack snapshots.
	unpackKeyPrefix = "image-unpack-"
)

// ApplyFunc applies an uncompressed layer tar to the active snapshot key (whose mounts are given) and returns
// the bytes written. It is used when the snapshotter does not implement snapshotter.DirectApplier.
type ApplyFunc func(ctx context.Context, key string, mounts []snapshotter.Mount, r io.Reader) (int64, error)

// Options configure a Service.
type Options struct {
	// Root is the directory of the image service's own files; the content store is Root/content.
	Root string
	// DB is the node's bbolt database; the service uses only its top-level bucket "images".
	DB *bolt.DB
	// Snapshotter receives the unpacked layers.
	Snapshotter snapshotter.Snapshotter
	// Registry configures mirrors, TLS and credentials per registry host.
	Registry RegistryConfig
	// RegistryOptions tune retries and the stall timeout (zero fields: defaults).
	RegistryOptions RegistryOptions
	// Platform selects images from indexes; zero: DefaultPlatform().
	Platform Platform
	// MaxConcurrentDownloads limits parallel blob downloads across all pulls; zero: 3.
	MaxConcurrentDownloads int
	// Apply is the fallback layer applier for snapshotters that are not a snapshotter.DirectApplier.
	Apply ApplyFunc
	// Observer receives pull durations and downloaded bytes.
	Observer Observer
}

// Service pulls, records and removes images. It is safe for concurrent use.
type Service struct {
	opts    Options
	content *content.Store
	meta    *metaStore
	client  *registry.Client
	sn      snapshotter.Snapshotter

	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	pulls     *flight[*fetched] // by manifest digest
	layers    *flight[struct{}] // by chain ID
	downloads *downloads
	// unpackSlots bounds the layers unpacking at once (with a snapshotter.LayerApplier).
	unpackSlots *semaphore.Weighted

	// gcMu is held shared by every pull and exclusively by garbage collection, which therefore never removes
	// what a running pull is about to reference. gcPending asks the last pull to finish to collect.
	gcMu      sync.RWMutex
	gcPending atomic.Bool

	usageMu    sync.Mutex
	layerUsage map[string]snapshotter.Usage // by chain ID; committed layers never change
}

// New opens the image service: it creates the content store under opts.Root, discards partial downloads and
// temporary unpack snapshots of a previous run, and garbage-collects blobs and layer snapshots no image
// references (a pull interrupted by a crash starts over).
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Root == "" || opts.DB == nil || opts.Snapshotter == nil {
		return nil, errdefs.InvalidArgument("image service: Root, DB and Snapshotter are required")
	}
	if opts.Platform == (Platform{}) {
		opts.Platform = DefaultPlatform()
	}
	if opts.MaxConcurrentDownloads <= 0 {
		opts.MaxConcurrentDownloads = 3
	}
	if opts.Registry.Hosts == nil {
		opts.Registry = DefaultRegistryConfig()
	}
	cs, err := content.Open(filepath.Join(opts.Root, "content"))
	if err != nil {
		return nil, err
	}
	meta, err := newMetaStore(opts.DB)
	if err != nil {
		return nil, err
	}
	client, err := registry.New(opts.Registry, opts.RegistryOptions)
	if err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.Background())
	s := &Service{
		opts: opts, content: cs, meta: meta, client: client, sn: opts.Snapshotter,
		base: base, cancel: cancel, layerUsage: map[string]snapshotter.Usage{},
	}
	s.pulls = newFlight[*fetched](base, &s.wg)
	s.layers = newFlight[struct{}](base, &s.wg)
	s.downloads = newDownloads(base, &s.wg, cs, opts.MaxConcurrentDownloads)
	s.unpackSlots = semaphore.NewWeighted(int64(max(2, runtime.GOMAXPROCS(0))))
	s.downloads.onBytes = opts.Observer.downloaded
	if err := s.Prune(ctx); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// Close cancels running pulls and waits for their goroutines. It does not close the database or snapshotter.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	s.client.Close()
	return nil
}

// Get resolves ref: a full image ID, a unique ID prefix, a tag or a digest reference ("busybox" is
// "docker.io/library/busybox:latest"). NotFound when there is no such image.
func (s *Service) Get(_ context.Context, ref string) (Image, error) {
	return s.meta.resolve(ref)
}

// List returns every image, sorted by ID.
func (s *Service) List(context.Context) ([]Image, error) {
	imgs, err := s.meta.list()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(imgs, func(a, b Image) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return imgs, nil
}

// SetPinned sets the pinned flag (exempt from kubelet image GC) of the image ref names.
func (s *Service) SetPinned(_ context.Context, ref string, pinned bool) error {
	img, err := s.meta.resolve(ref)
	if err != nil {
		return err
	}
	return s.meta.setPinned(img.ID, pinned)
}

// ConfigJSON returns the image's config blob as pulled.
func (s *Service) ConfigJSON(_ context.Context, img Image) ([]byte, error) {
	return s.content.ReadAll(digestOf(img.ID))
}

// Remove deletes the image ref names with all its tags and digest references, then garbage-collects its
// blobs and layer snapshots that nothing else uses (right away, or when the pulls running now have finished).
// It returns NotFound when there is no such image.
func (s *Service) Remove(ctx context.Context, ref string) error {
	img, err := s.meta.resolve(ref)
	if err != nil {
		return err
	}
	if err := s.meta.remove(img.ID); err != nil {
		return fmt.Errorf("remove image %s: %w", img.ID, err)
	}
	s.gcPending.Store(true)
	s.tryGC(ctx)
	return nil
}

// tryGC collects garbage if a collection is pending and no pull is running.
func (s *Service) tryGC(ctx context.Context) {
	if !s.gcPending.Load() || !s.gcMu.TryLock() {
		return
	}
	defer s.gcMu.Unlock()
	s.gcPending.Store(false)
	if err := s.gcLocked(ctx); err != nil {
		klog.FromContext(ctx).Error(err, "image garbage collection")
	}
}

// Prune garbage-collects blobs, layer snapshots and temporary unpack snapshots that no image references. It
// waits for running pulls to finish.
func (s *Service) Prune(ctx context.Context) error {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.gcPending.Store(false)
	return s.gcLocked(ctx)
}

// FsUsage is the disk usage of the image store.
type FsUsage struct {
	Mountpoint string // the snapshotter's root when it reports one, else the content store's directory
	UsedBytes  uint64 // compressed blobs + unpacked image layers
	InodesUsed uint64
	Timestamp  time.Time
}

// Usage measures the image store: the content store and every committed image layer snapshot. Layer usage
// is cached per chain ID (committed layers never change).
func (s *Service) Usage(ctx context.Context) (FsUsage, error) {
	bytes, inodes, err := s.content.Usage()
	if err != nil {
		return FsUsage{}, err
	}
	u := FsUsage{Mountpoint: s.content.Root(), UsedBytes: uint64(bytes), InodesUsed: uint64(inodes), Timestamp: time.Now()}
	if fu, ok := s.sn.(snapshotter.FsUsager); ok {
		u.Mountpoint = fu.Root()
	}
	var layers []string
	err = s.sn.Walk(ctx, func(_ context.Context, info snapshotter.Info) error {
		if info.Kind == snapshotter.KindCommitted && info.Labels[LabelLayer] != "" {
			layers = append(layers, info.Key)
		}
		return nil
	})
	if err != nil {
		return FsUsage{}, fmt.Errorf("image fs usage: %w", err)
	}
	s.usageMu.Lock()
	defer s.usageMu.Unlock()
	seen := make(map[string]bool, len(layers))
	for _, key := range layers {
		seen[key] = true
		lu, ok := s.layerUsage[key]
		if !ok {
			lu, err = s.sn.Usage(ctx, key)
			if errors.Is(err, errdefs.ErrNotFound) {
				continue
			}
			if err != nil {
				return FsUsage{}, fmt.Errorf("image fs usage of layer %s: %w", key, err)
			}
			s.layerUsage[key] = lu
		}
		u.UsedBytes += uint64(lu.Size)
		u.InodesUsed += uint64(lu.Inodes)
	}
	for k := range s.layerUsage {
		if !seen[k] {
			delete(s.layerUsage, k)
		}
	}
	return u, nil
}
