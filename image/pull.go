package image

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/image/reference"
	"github.com/noded/noded/image/registry"
	"github.com/noded/noded/internal/faultinject"
	"github.com/noded/noded/snapshotter"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/klog/v2"
)

// Size limits of the JSON documents of an image: manifests and indexes are read up to registry.MaxManifestSize,
// configs up to maxConfigSize (both limits apply to the bytes read, not only to a descriptor's claimed size).
const (
	maxManifestSize = registry.MaxManifestSize
	maxConfigSize   = 4 << 20
	maxIndexDepth   = 4
)

// PullOptions configure one pull.
type PullOptions struct {
	// Auth are the credentials of the request (the CRI AuthConfig); see registry.Client for where they are sent.
	Auth *Credentials
}

// doc is a manifest or index document as fetched.
type doc struct {
	desc registry.Descriptor
	data []byte
}

// fetched is the result of fetching and unpacking one platform manifest: everything of the record but names.
type fetched struct {
	img Image
}

// Pull fetches ref (normalised: "busybox" is "docker.io/library/busybox:latest") for the node's platform,
// unpacks its layers into the snapshotter and records the image under ref's tag (if any) and its digest
// reference. Concurrent pulls of the same content share one download. The record is written in one
// transaction after every layer is committed: an interrupted pull leaves no image behind.
func (s *Service) Pull(ctx context.Context, ref string, opts PullOptions) (Image, error) {
	r, err := reference.Parse(ref)
	if err != nil {
		return Image{}, err
	}
	start := time.Now()
	s.gcMu.RLock()
	img, err := s.pull(ctx, r, opts)
	s.gcMu.RUnlock()
	s.opts.Observer.pulled(start, err)
	s.tryGC(context.WithoutCancel(ctx))
	return img, err
}

func (s *Service) pull(ctx context.Context, r reference.Reference, opts PullOptions) (Image, error) {
	log := klog.FromContext(ctx).WithValues("image", r.String())
	start := time.Now()
	repo, desc, data, err := s.client.Resolve(ctx, r, opts.Auth)
	if err != nil {
		return Image{}, err
	}
	docs := []doc{{desc, data}}
	for depth := 0; ; depth++ {
		kind, err := classifyDoc(desc.MediaType, data)
		if err != nil {
			return Image{}, fmt.Errorf("pull %s: %w", r, err)
		}
		if kind == docManifest {
			break
		}
		if depth == maxIndexDepth {
			return Image{}, errdefs.InvalidArgument("pull %s: image indexes nested too deeply", r)
		}
		child, err := pickManifest(data, s.opts.Platform)
		if err != nil {
			return Image{}, fmt.Errorf("pull %s: %w", r, err)
		}
		if child.Size > maxManifestSize {
			return Image{}, errdefs.InvalidArgument("pull %s: manifest %s too large", r, child.Digest)
		}
		desc, data, err = repo.Manifest(ctx, child.Digest)
		if err != nil {
			return Image{}, fmt.Errorf("pull %s: %w", r, err)
		}
		docs = append(docs, doc{desc, data})
	}
	for _, d := range docs {
		if err := s.storeBytes(d.desc.Digest, d.data); err != nil {
			return Image{}, err
		}
	}
	f, err := s.pulls.do(ctx, desc.Digest.String(), func(ctx context.Context) (*fetched, error) {
		return s.fetch(ctx, repo, desc, data)
	})
	if err != nil {
		return Image{}, fmt.Errorf("pull %s from %s: %w", r, repo.Endpoint(), err)
	}
	rec := f.img // shared with other callers of the flight: copy what is changed
	rec.Blobs = slices.Clone(rec.Blobs)
	for _, d := range docs {
		rec.Blobs = append(rec.Blobs, d.desc.Digest.String())
	}
	slices.Sort(rec.Blobs)
	rec.Blobs = slices.Compact(rec.Blobs)
	rec.Pulled = time.Now()
	names := []string{r.WithDigest(docs[0].desc.Digest)}
	if t := r.Tagged(); t != "" {
		names = append(names, t)
	}
	faultinject.Point(faultinject.ImageRecord)
	out, err := s.meta.commit(&rec, names)
	if err != nil {
		return Image{}, err
	}
	log.V(2).Info("pulled image", "id", out.ID, "from", repo.Endpoint(), "size", out.Size, "duration", time.Since(start))
	return out, nil
}

// storeBytes writes a small document to the content store (if absent), verifying its digest.
func (s *Service) storeBytes(d digest.Digest, data []byte) error {
	if s.content.Exists(d, int64(len(data))) {
		return nil
	}
	w, err := s.content.NewWriter(d, int64(len(data)))
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return fmt.Errorf("store blob %s: %w", d, err)
	}
	return w.Commit()
}

// fetch downloads the config and layers of manifest mdesc and unpacks the layers. Layers download in parallel
// (up to the configured limit); each is unpacked as soon as its parent is committed, reading the blob as it
// arrives in the content store, so decompression and unpacking overlap the download.
func (s *Service) fetch(ctx context.Context, repo *registry.Repository, mdesc registry.Descriptor, mdata []byte) (*fetched, error) {
	m, err := parseManifest(mdata)
	if err != nil {
		return nil, err
	}
	cdesc := registry.Descriptor{MediaType: m.Config.MediaType, Digest: m.Config.Digest, Size: m.Config.Size}
	cdata, err := s.content.ReadAll(cdesc.Digest)
	if err != nil {
		if cdata, err = repo.ReadBlob(ctx, cdesc, maxConfigSize); err != nil {
			return nil, fmt.Errorf("image config %s: %w", cdesc.Digest, err)
		}
		if err := s.storeBytes(cdesc.Digest, cdata); err != nil {
			return nil, err
		}
	}
	cfg, err := parseConfig(cdata)
	if err != nil {
		return nil, err
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, errdefs.InvalidArgument("image config lists %d layers but the manifest %d", len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	chain := ChainIDs(cfg.RootFS.DiffIDs)
	img := Image{
		ID:       cdesc.Digest.String(),
		Size:     cdesc.Size,
		Config:   runtimeConfig(cfg.Config),
		Manifest: Descriptor{MediaType: mdesc.MediaType, Digest: mdesc.Digest, Size: mdesc.Size},
		Blobs:    []string{cdesc.Digest.String(), mdesc.Digest.String()},
		Platform: Platform{cfg.OS, cfg.Architecture, cfg.Variant}.String(),
	}
	if cfg.Created != nil {
		img.Created = *cfg.Created
	}
	for i, l := range m.Layers {
		img.Layers = append(img.Layers, Layer{
			Descriptor: Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size},
			DiffID:     cfg.RootFS.DiffIDs[i],
			ChainID:    chain[i],
		})
		img.Size += l.Size
		img.Blobs = append(img.Blobs, l.Digest.String())
	}
	if err := s.unpackAll(ctx, repo, img.Layers); err != nil {
		return nil, err
	}
	if la, ok := s.sn.(snapshotter.LayerApplier); ok {
		// The layers were not synced one by one: once for all, before the image is recorded. A crash before
		// this leaves committed layers no image references, which the next start collects.
		if err := la.Sync(ctx); err != nil {
			return nil, err
		}
	}
	return &fetched{img: img}, nil
}

func runtimeConfig(c ocispec.ImageConfig) Config {
	out := Config{
		User: c.User, Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd, WorkingDir: c.WorkingDir,
		StopSignal: c.StopSignal, Labels: c.Labels,
	}
	for v := range c.Volumes {
		out.Volumes = append(out.Volumes, v)
	}
	slices.Sort(out.Volumes)
	for p := range c.ExposedPorts {
		out.ExposedPorts = append(out.ExposedPorts, p)
	}
	slices.Sort(out.ExposedPorts)
	return out
}

// unpackAll makes sure every layer is a committed snapshot and its blob is in the content store. Downloads
// start bottom layer first. With a snapshotter.LayerApplier, layers unpack in parallel (a bounded number at
// a time, taken in layer order) and each is committed once the layer below is; otherwise each layer unpacks
// once the layer below is committed. Either way a layer streams from its download as the bytes arrive.
func (s *Service) unpackAll(ctx context.Context, repo *registry.Repository, layers []Layer) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := len(layers)
	dls := make([]*download, n)
	for i, l := range layers {
		dls[i] = s.downloads.acquire(registry.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}, repo)
	}
	defer func() {
		for _, dl := range dls {
			s.downloads.release(dl)
		}
	}()
	u := &unpacking{layers: layers, dls: dls, repo: repo, ready: make([]chan struct{}, n), turn: make([]chan struct{}, n), errs: make([]error, n)}
	u.la, _ = s.sn.(snapshotter.LayerApplier)
	for i := range n {
		u.ready[i], u.turn[i] = make(chan struct{}), make(chan struct{})
	}
	for i := range n {
		go func() {
			defer close(u.ready[i])
			if u.errs[i] = s.ensureLayer(lctx, u, i); u.errs[i] != nil {
				cancel()
			}
		}()
	}
	for i := range u.ready {
		<-u.ready[i]
	}
	// Report the first real failure, not the cancellations it caused.
	for _, err := range u.errs {
		if err != nil && !errors.Is(err, errParentFailed) && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, err := range u.errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// unpacking is the state of one unpackAll.
type unpacking struct {
	layers []Layer
	dls    []*download
	repo   *registry.Repository
	la     snapshotter.LayerApplier // nil: unpack one layer after the other
	ready  []chan struct{}          // ready[i] is closed when layer i is done; errs[i] is then set
	turn   []chan struct{}          // turn[i] is closed once layer i holds an unpack slot (or needs none)
	errs   []error
}

var errParentFailed = errors.New("parent layer failed")

// waitParent waits until layer i-1 is committed.
func (u *unpacking) waitParent(ctx context.Context, i int) error {
	if i == 0 {
		return nil
	}
	select {
	case <-u.ready[i-1]:
	case <-ctx.Done():
		return ctx.Err()
	}
	if u.errs[i-1] != nil || ctx.Err() != nil {
		return errParentFailed
	}
	return nil
}

// waitParentCommitted is waitParent for an unpack that may be shared with other pulls: a parent this pull
// failed to get (it was cancelled, say) may still have been committed by another.
func (s *Service) waitParentCommitted(ctx context.Context, u *unpacking, i int, parentKey string) error {
	err := u.waitParent(ctx, i)
	if errors.Is(err, errParentFailed) && ctx.Err() == nil {
		if ok, cerr := s.committed(ctx, parentKey); cerr == nil && ok {
			return nil
		}
	}
	return err
}

// ensureLayer gets layer i into the snapshotter and makes sure its blob is stored.
func (s *Service) ensureLayer(ctx context.Context, u *unpacking, i int) error {
	l := u.layers[i]
	parentKey := ""
	if i > 0 {
		parentKey = u.layers[i-1].ChainID.String()
	}
	var unpack func(context.Context) (struct{}, error)
	if u.la == nil {
		close(u.turn[i])
		if err := u.waitParent(ctx, i); err != nil {
			return err
		}
		unpack = func(ctx context.Context) (struct{}, error) {
			return struct{}{}, s.unpackLayer(ctx, u.repo, l, parentKey, nil, nil)
		}
	} else {
		// Unpack slots are taken in layer order, so the lowest unfinished layer always holds one: a layer
		// waiting for its parent never starves the parent.
		if i > 0 {
			select {
			case <-u.turn[i-1]:
			case <-ctx.Done():
				close(u.turn[i])
				return ctx.Err()
			}
		}
		err := s.unpackSlots.Acquire(ctx, 1)
		close(u.turn[i])
		if err != nil {
			return err
		}
		defer s.unpackSlots.Release(1)
		unpack = func(fctx context.Context) (struct{}, error) {
			wait := func() error { return s.waitParentCommitted(fctx, u, i, parentKey) }
			return struct{}{}, s.unpackLayer(fctx, u.repo, l, parentKey, u.la, wait)
		}
	}
	if _, err := s.layers.do(ctx, l.ChainID.String(), unpack); err != nil {
		return fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
	}
	// The snapshot may have existed already: the blob is still kept in the content store.
	if err := u.dls[i].wait(ctx); err != nil {
		return fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
	}
	return nil
}

// committed reports whether the committed snapshot key exists.
func (s *Service) committed(ctx context.Context, key string) (bool, error) {
	info, err := s.sn.Stat(ctx, key)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return info.Kind == snapshotter.KindCommitted, nil
}

// layerStream opens the download of layer l and returns its uncompressed stream, hashed into diff.
func (s *Service) layerStream(ctx context.Context, repo *registry.Repository, l Layer) (*download, io.Reader, func(), error) {
	dl := s.downloads.acquire(registry.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}, repo)
	rc, err := dl.open(ctx, s.content)
	if err != nil {
		s.downloads.release(dl)
		return nil, nil, nil, err
	}
	// Large reads of the blob as it arrives (flate would otherwise read it 4 KiB at a time).
	dec, err := decompress(l.MediaType, bufio.NewReaderSize(rc, 256<<10))
	if err != nil {
		rc.Close()
		s.downloads.release(dl)
		return nil, nil, nil, firstErr(dl.failed(), err)
	}
	return dl, faultinject.Reader(faultinject.ImageUnpack, dec), func() {
		dec.Close()
		rc.Close()
		s.downloads.release(dl)
	}, nil
}

// finishLayer hashes what is left of the layer stream after the tar's end, waits for the download to verify
// and checks the diff ID.
func finishLayer(ctx context.Context, dl *download, tee io.Reader, diff digest.Digester, l Layer) error {
	// The tar may end before the stream does (padding): hash the rest too.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return firstErr(dl.failed(), fmt.Errorf("decompress: %w", err))
	}
	if err := dl.wait(ctx); err != nil {
		return err
	}
	if got := diff.Digest(); got != l.DiffID {
		return errdefs.InvalidArgument("layer diff ID mismatch: got %s, the image config says %s", got, l.DiffID)
	}
	return nil
}

// removeUnpack removes a temporary unpack snapshot.
func (s *Service) removeUnpack(ctx context.Context, key string) {
	if err := s.sn.Remove(context.WithoutCancel(ctx), key); err != nil && !errdefs.IsNotFound(err) {
		klog.FromContext(ctx).Error(err, "removing unpack snapshot", "key", key)
	}
}

// unpackLayer applies layer l and commits it as l.ChainID on parentKey, unless that snapshot exists. The
// compressed stream is read from the content store as it is written there; the digest of the uncompressed
// stream must equal l.DiffID and the download must verify, else the snapshot is discarded.
//
// With la nil the layer is applied in a snapshot prepared on parentKey (any snapshotter). With a LayerApplier it
// is applied into a snapshot without a parent while the layers below may still be unpacking (waitParent returns
// once the parent is committed) and committed onto parentKey.
func (s *Service) unpackLayer(ctx context.Context, repo *registry.Repository, l Layer, parentKey string, la snapshotter.LayerApplier, waitParent func() error) (retErr error) {
	if ok, err := s.committed(ctx, l.ChainID.String()); err != nil || ok {
		return err
	}
	dl, dec, closeStream, err := s.layerStream(ctx, repo, l)
	if err != nil {
		return err
	}
	defer closeStream()

	key := unpackKeyPrefix + randomHex()
	prepareParent := parentKey
	if la != nil {
		prepareParent = ""
	}
	mounts, err := s.sn.Prepare(ctx, key, prepareParent, snapshotter.WithLabels(map[string]string{labelUnpack: l.ChainID.String()}))
	if err != nil {
		return fmt.Errorf("prepare snapshot: %w", err)
	}
	defer func() {
		if retErr != nil {
			s.removeUnpack(ctx, key)
		}
	}()
	diff := digest.SHA256.Digester()
	tee := io.TeeReader(dec, diff.Hash())
	if la != nil {
		_, err = la.ApplyLayerOnto(ctx, key, parentKey, waitParent, tee)
	} else {
		_, err = s.apply(ctx, key, mounts, tee)
	}
	if err != nil {
		return firstErr(dl.failed(), fmt.Errorf("apply: %w", err))
	}
	if err := finishLayer(ctx, dl, tee, diff, l); err != nil {
		return err
	}
	labels := snapshotter.WithLabels(map[string]string{LabelLayer: l.DiffID.String()})
	if la == nil || parentKey == "" {
		return s.commitLayer(ctx, l, key, func() error { return s.sn.Commit(ctx, l.ChainID.String(), key, labels) })
	}
	if err := waitParent(); err != nil {
		return err
	}
	return s.commitLayer(ctx, l, key, func() error { return la.CommitOnto(ctx, l.ChainID.String(), key, parentKey, labels) })
}

// commitLayer runs commit for the unpack snapshot key of layer l. A layer committed meanwhile by someone
// else serves: ours goes.
func (s *Service) commitLayer(ctx context.Context, l Layer, key string, commit func() error) error {
	err := commit()
	if errdefs.IsAlreadyExists(err) {
		s.removeUnpack(ctx, key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("commit snapshot %s: %w", l.ChainID, err)
	}
	faultinject.Point(faultinject.ImageLayerCommitted)
	return nil
}

func (s *Service) apply(ctx context.Context, key string, mounts []snapshotter.Mount, r io.Reader) (int64, error) {
	if da, ok := s.sn.(snapshotter.DirectApplier); ok {
		return da.ApplyLayer(ctx, key, r)
	}
	if s.opts.Apply != nil {
		return s.opts.Apply(ctx, key, mounts, r)
	}
	return 0, errdefs.NotImplemented("the snapshotter cannot apply layers and no Apply function is configured")
}

// firstErr prefers the download's error (the cause) over the error it produced downstream.
func firstErr(cause, err error) error {
	if cause != nil {
		return cause
	}
	return err
}

func randomHex() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func digestOf(id string) digest.Digest { return digest.Digest(id) }
