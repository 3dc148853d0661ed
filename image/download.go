package image

import (
	"context"
	"io"
	"slices"
	"sync"

	"github.com/noded/noded/image/content"
	"github.com/noded/noded/image/registry"
	"github.com/noded/noded/internal/faultinject"
	digest "github.com/opencontainers/go-digest"
)

// downloads runs blob downloads into the content store, at most a configured number at a time across the node
// (in the order they were asked for), one per digest: every user of a blob joins the running download. A
// download is cancelled when its last user releases it before it finished.
type downloads struct {
	base  context.Context
	wg    *sync.WaitGroup
	store *content.Store
	limit int
	// onBytes, if set, receives the bytes of each blob download.
	onBytes func(n int64)

	mu      sync.Mutex
	active  map[digest.Digest]*download
	running int
	queue   []*download // waiting for a free slot, first acquired first
}

type download struct {
	desc   registry.Descriptor
	repo   *registry.Repository
	ctx    context.Context
	refs   int
	cancel context.CancelFunc
	ready  chan struct{} // closed when writer is set (or the download failed before)
	writer *content.Writer
	done   chan struct{} // closed when finished; err is then set
	err    error
}

func newDownloads(base context.Context, wg *sync.WaitGroup, store *content.Store, limit int) *downloads {
	return &downloads{base: base, wg: wg, store: store, limit: limit, active: map[digest.Digest]*download{}}
}

// acquire returns the download of desc, joining a running or queued one or queueing one from repo; a blob
// already in the store gives a finished download. Downloads start in the order they were first acquired, at
// most limit at a time. Every acquire must be paired with a release.
func (m *downloads) acquire(desc registry.Descriptor, repo *registry.Repository) *download {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d, ok := m.active[desc.Digest]; ok {
		d.refs++
		return d
	}
	d := &download{desc: desc, refs: 1, ready: make(chan struct{}), done: make(chan struct{})}
	if m.store.Exists(desc.Digest, desc.Size) {
		d.cancel = func() {}
		close(d.ready)
		close(d.done)
		return d
	}
	d.ctx, d.cancel = context.WithCancel(m.base)
	d.repo = repo
	m.active[desc.Digest] = d
	m.queue = append(m.queue, d)
	m.dispatchLocked()
	return d
}

// dispatchLocked starts queued downloads while there are free slots.
func (m *downloads) dispatchLocked() {
	for m.running < m.limit && len(m.queue) > 0 {
		d := m.queue[0]
		m.queue[0] = nil
		m.queue = m.queue[1:]
		m.running++
		m.wg.Add(1)
		go m.run(d)
	}
}

func (m *downloads) release(d *download) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d.refs--
	if d.refs > 0 {
		return
	}
	select {
	case <-d.done:
	default:
		d.cancel()
		if m.active[d.desc.Digest] == d {
			delete(m.active, d.desc.Digest)
		}
		if i := slices.Index(m.queue, d); i >= 0 {
			// Never started: finish it here.
			m.queue = slices.Delete(m.queue, i, i+1)
			d.err = context.Canceled
			close(d.ready)
			close(d.done)
		}
	}
}

func (m *downloads) run(d *download) {
	defer m.wg.Done()
	err := m.fetch(d.ctx, d, d.repo)
	d.cancel()
	m.mu.Lock()
	if m.active[d.desc.Digest] == d {
		delete(m.active, d.desc.Digest)
	}
	d.err = err
	m.running--
	m.dispatchLocked()
	m.mu.Unlock()
	close(d.done)
}

func (m *downloads) fetch(ctx context.Context, d *download, repo *registry.Repository) (err error) {
	readyClosed := false
	defer func() {
		if !readyClosed {
			close(d.ready)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	w, err := m.store.NewWriter(d.desc.Digest, d.desc.Size)
	if err != nil {
		return err
	}
	d.writer = w
	close(d.ready)
	readyClosed = true
	rc, err := repo.OpenBlob(ctx, d.desc)
	if err == nil {
		var n int64
		n, err = io.CopyBuffer(w, faultinject.Reader(faultinject.ImageDownload, rc), make([]byte, 256<<10))
		rc.Close()
		if m.onBytes != nil {
			m.onBytes(n)
		}
	}
	if err != nil {
		w.CloseWrite(err)
		w.Abort()
		return err
	}
	return w.Commit()
}

// open returns a reader of the blob: following the download while it runs, from the store once it finished.
func (d *download) open(ctx context.Context, store *content.Store) (io.ReadCloser, error) {
	select {
	case <-d.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if d.writer != nil {
		if r, err := d.writer.NewReader(ctx); err == nil {
			return r, nil
		}
	}
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	return store.Open(d.desc.Digest)
}

// wait blocks until the download finished and returns its error: nil means the blob is verified and stored.
func (d *download) wait(ctx context.Context) error {
	select {
	case <-d.done:
		return d.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// failed returns the download's error if it already finished with one.
func (d *download) failed() error {
	select {
	case <-d.done:
		return d.err
	default:
		return nil
	}
}
