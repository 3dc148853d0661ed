package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/noded/noded/errdefs"
)

// OpenBlob streams the blob desc. Transient failures (connection reset, 5xx, a transfer that received nothing for
// StallTimeout) are retried with backoff, resuming at the current offset with a Range request (or skipping the
// bytes already read when the registry ignores Range). The reader does NOT verify the digest: the caller hashes
// what it reads (the content store does). Reading more than desc.Size bytes is an error.
func (r *Repository) OpenBlob(ctx context.Context, desc Descriptor) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, errdefs.InvalidArgument("invalid blob digest %q: %v", desc.Digest, err)
	}
	b := &blobReader{ctx: ctx, repo: r, desc: desc}
	if err := b.open(); err != nil {
		b.closeBody()
		return nil, err
	}
	return b, nil
}

type blobReader struct {
	ctx  context.Context
	repo *Repository
	desc Descriptor

	off      int64
	body     io.ReadCloser
	cancel   context.CancelFunc
	watchdog *time.Timer
	stalled  atomic.Bool
	failures int  // consecutive failures without progress
	noRange  bool // the registry refused a Range request
}

func (b *blobReader) url() string {
	u := url.URL{
		Scheme: "https",
		Host:   b.repo.ep.host,
		Path:   fmt.Sprintf("/v2/%s/blobs/%s", b.repo.repo.RepositoryStr(), b.desc.Digest),
	}
	if b.repo.ep.plainHTTP {
		u.Scheme = "http"
	}
	return u.String()
}

// open starts a transfer at b.off, retrying transient failures.
func (b *blobReader) open() error {
	for {
		err := b.openOnce()
		if err == nil {
			return nil
		}
		if err = b.retryable(err); err != nil {
			return err
		}
	}
}

// retryable returns nil when err may be retried (after waiting the backoff), else the error to report.
func (b *blobReader) retryable(err error) error {
	if b.ctx.Err() != nil {
		return b.ctx.Err()
	}
	if !transient(err) {
		return classify(err)
	}
	b.failures++
	if b.failures >= b.repo.client.opts.Attempts {
		return errdefs.Unavailable("blob %s from %s: giving up after %d attempts: %v", b.desc.Digest, b.repo.ep, b.failures, err)
	}
	wait := b.repo.client.opts.Backoff << (b.failures - 1)
	if serr := sleepCtx(b.ctx, wait); serr != nil {
		return serr
	}
	return nil
}

func (b *blobReader) openOnce() error {
	b.closeBody()
	ctx, cancel := context.WithCancel(b.ctx)
	b.stalled.Store(false)
	stall := b.repo.client.opts.StallTimeout
	b.watchdog = time.AfterFunc(stall, func() {
		b.stalled.Store(true)
		cancel()
	})
	b.cancel = cancel
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url(), nil)
	if err != nil {
		return err
	}
	if b.off > 0 && !b.noRange {
		if b.desc.Size > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", b.off, b.desc.Size-1))
		} else {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", b.off))
		}
	}
	resp, err := (&http.Client{Transport: b.repo.rt}).Do(req)
	if err != nil {
		return b.stallErr(err)
	}
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && req.Header.Get("Range") != "" {
		// The registry cannot resume: start over, skipping what was read.
		resp.Body.Close()
		b.noRange = true
		return b.openOnce()
	}
	if err := transport.CheckError(resp, http.StatusOK, http.StatusPartialContent); err != nil {
		resp.Body.Close()
		return err
	}
	b.body = resp.Body
	b.watchdog.Reset(stall)
	switch {
	case b.off > 0 && resp.StatusCode == http.StatusPartialContent:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != b.off {
			return fmt.Errorf("blob %s: registry answered range %q to a request from offset %d", b.desc.Digest, resp.Header.Get("Content-Range"), b.off)
		}
	case b.off > 0:
		// Range ignored: skip what was already delivered.
		if _, err := io.CopyN(io.Discard, &watchedReader{b}, b.off); err != nil {
			return b.stallErr(err)
		}
	}
	return nil
}

// watchedReader reads the body, feeding the stall watchdog.
type watchedReader struct{ b *blobReader }

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.b.body.Read(p)
	if n > 0 {
		w.b.watchdog.Reset(w.b.repo.client.opts.StallTimeout)
	}
	return n, err
}

func rangeStart(cr string) (int64, bool) {
	s, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok = strings.Cut(s, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func (b *blobReader) stallErr(err error) error {
	if b.stalled.Load() && b.ctx.Err() == nil {
		return fmt.Errorf("blob %s: no data for %s: %w", b.desc.Digest, b.repo.client.opts.StallTimeout, errStalled)
	}
	return err
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.desc.Size >= 0 && b.off >= b.desc.Size {
		// Everything expected was read; anything more is the registry's error.
		var one [1]byte
		if n, _ := b.body.Read(one[:]); n > 0 {
			return 0, errdefs.InvalidArgument("blob %s: registry sent more than the expected %d bytes", b.desc.Digest, b.desc.Size)
		}
		return 0, io.EOF
	}
	if b.desc.Size >= 0 && int64(len(p)) > b.desc.Size-b.off {
		p = p[:b.desc.Size-b.off]
	}
	for {
		n, err := (&watchedReader{b}).Read(p)
		b.off += int64(n)
		if n > 0 {
			b.failures = 0
			if errors.Is(err, io.EOF) {
				err = nil // report EOF (or a short body) on the next call
			}
		}
		if n > 0 || err == nil {
			return n, err
		}
		if errors.Is(err, io.EOF) {
			if b.desc.Size < 0 || b.off == b.desc.Size {
				return 0, io.EOF
			}
			err = fmt.Errorf("blob %s: connection closed after %d of %d bytes: %w", b.desc.Digest, b.off, b.desc.Size, io.ErrUnexpectedEOF)
		}
		if rerr := b.retryable(b.stallErr(err)); rerr != nil {
			return 0, rerr
		}
		if oerr := b.open(); oerr != nil {
			return 0, oerr
		}
	}
}

func (b *blobReader) closeBody() {
	if b.watchdog != nil {
		b.watchdog.Stop()
	}
	if b.cancel != nil {
		b.cancel()
	}
	if b.body != nil {
		b.body.Close()
		b.body = nil
	}
}

func (b *blobReader) Close() error {
	b.closeBody()
	return nil
}
