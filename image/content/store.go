// Package content is noded's content-addressed blob store: manifests, configs and compressed layers by digest
// under <root>/blobs/<algorithm>/<hex>. Blobs are written to a temporary file under <root>/ingest while being
// hashed and are renamed into place only after their digest and size have been verified, so a blob path never
// holds unverified bytes. Partial downloads are not resumed across restarts: Open empties the ingest directory.
package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/noded/noded/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// Store is a content-addressed blob store. It is safe for concurrent use.
type Store struct {
	root string
}

// Open opens (creating if needed) the store at root and removes partial downloads left by a previous run.
func Open(root string) (*Store, error) {
	s := &Store{root: root}
	for _, d := range []string{s.blobsDir(), s.ingestDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("content store: %w", err)
		}
	}
	entries, err := os.ReadDir(s.ingestDir())
	if err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.ingestDir(), e.Name())); err != nil {
			return nil, fmt.Errorf("content store: removing partial download: %w", err)
		}
	}
	return s, nil
}

// Root is the directory of the store.
func (s *Store) Root() string { return s.root }

func (s *Store) blobsDir() string  { return filepath.Join(s.root, "blobs") }
func (s *Store) ingestDir() string { return filepath.Join(s.root, "ingest") }

// Path is the file of blob d (which may not exist).
func (s *Store) Path(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", errdefs.InvalidArgument("invalid digest %q: %v", d, err)
	}
	return filepath.Join(s.blobsDir(), d.Algorithm().String(), d.Encoded()), nil
}

// Stat returns the size of blob d, or a NotFound error.
func (s *Store) Stat(d digest.Digest) (int64, error) {
	p, err := s.Path(d)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, errdefs.NotFound("blob %s not found", d)
	}
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return fi.Size(), nil
}

// Exists reports whether blob d is stored with the given size (size < 0: any size).
func (s *Store) Exists(d digest.Digest, size int64) bool {
	n, err := s.Stat(d)
	return err == nil && (size < 0 || n == size)
}

// Open opens blob d for reading.
func (s *Store) Open(d digest.Digest) (*os.File, error) {
	p, err := s.Path(d)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFound("blob %s not found", d)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	return f, nil
}

// ReadAll returns the content of blob d.
func (s *Store) ReadAll(d digest.Digest) ([]byte, error) {
	f, err := s.Open(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Delete removes blob d; a missing blob is not an error.
func (s *Store) Delete(d digest.Digest) error {
	p, err := s.Path(d)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	return nil
}

// Walk calls fn for every stored blob.
func (s *Store) Walk(fn func(d digest.Digest, size int64) error) error {
	algs, err := os.ReadDir(s.blobsDir())
	if err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	for _, a := range algs {
		if !a.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(s.blobsDir(), a.Name()))
		if err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		for _, e := range entries {
			d := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), e.Name())
			if d.Validate() != nil {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue // deleted meanwhile
			}
			if err := fn(d, info.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}

// Usage is the space taken by the store: bytes of all files (blobs and partial downloads) and inodes used.
func (s *Store) Usage() (bytes, inodes int64, err error) {
	err = filepath.WalkDir(s.root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		inodes++
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				bytes += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("content store usage: %w", err)
	}
	return bytes, inodes, nil
}

// Writer ingests one blob. Write appends (hashing as it goes); CloseWrite ends the data; Commit verifies the
// digest and size and moves the blob into place; Abort discards it. Readers from NewReader follow the data as it
// is written, which lets a layer be unpacked while it is still downloading.
type Writer struct {
	store    *Store
	expected digest.Digest
	size     int64 // expected size, < 0 when unknown
	path     string
	f        *os.File
	digester digest.Digester

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever written or state change
	written int64
	ended   bool  // CloseWrite was called
	endErr  error // the error CloseWrite was called with
	state   int   // writerOpen, writerCommitted, writerAborted
}

const (
	writerOpen = iota
	writerCommitted
	writerAborted
)

// NewWriter starts ingesting the blob with the expected digest and size (size < 0 when unknown).
func (s *Store) NewWriter(expected digest.Digest, size int64) (*Writer, error) {
	if err := expected.Validate(); err != nil {
		return nil, errdefs.InvalidArgument("invalid digest %q: %v", expected, err)
	}
	f, err := os.CreateTemp(s.ingestDir(), expected.Encoded()+"-*")
	if err != nil {
		return nil, fmt.Errorf("ingest %s: %w", expected, err)
	}
	return &Writer{
		store: s, expected: expected, size: size, path: f.Name(), f: f,
		digester: expected.Algorithm().Digester(), changed: make(chan struct{}),
	}, nil
}

func (w *Writer) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// Write appends p to the blob.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.ended || w.state != writerOpen {
		w.mu.Unlock()
		return 0, errors.New("write to a closed blob writer")
	}
	w.mu.Unlock()
	if w.size >= 0 && w.written+int64(len(p)) > w.size {
		return 0, fmt.Errorf("blob %s: more than the expected %d bytes", w.expected, w.size)
	}
	n, err := w.f.Write(p)
	_, _ = w.digester.Hash().Write(p[:n])
	w.mu.Lock()
	w.written += int64(n)
	w.notifyLocked()
	w.mu.Unlock()
	return n, err
}

// CloseWrite marks the end of the data: readers get io.EOF after the last byte when err is nil, else err.
func (w *Writer) CloseWrite(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	w.ended, w.endErr = true, err
	w.notifyLocked()
}

// Written is the number of bytes written so far.
func (w *Writer) Written() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written
}

// Commit verifies the blob's size and digest, syncs it and moves it into the store. On a mismatch the blob is
// discarded and an InvalidArgument-kind error returned.
func (w *Writer) Commit() error {
	w.CloseWrite(nil)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != writerOpen {
		return errors.New("blob writer already finished")
	}
	fail := func(err error) error {
		w.abortLocked()
		return err
	}
	if w.endErr != nil {
		return fail(w.endErr)
	}
	if w.size >= 0 && w.written != w.size {
		return fail(errdefs.InvalidArgument("blob %s: size mismatch: got %d bytes, expected %d", w.expected, w.written, w.size))
	}
	if got := w.digester.Digest(); got != w.expected {
		return fail(errdefs.InvalidArgument("blob digest mismatch: got %s, expected %s", got, w.expected))
	}
	if err := w.f.Sync(); err != nil {
		return fail(fmt.Errorf("sync blob %s: %w", w.expected, err))
	}
	if err := w.f.Close(); err != nil {
		return fail(fmt.Errorf("close blob %s: %w", w.expected, err))
	}
	dst, _ := w.store.Path(w.expected)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fail(fmt.Errorf("commit blob %s: %w", w.expected, err))
	}
	if err := os.Chmod(w.path, 0o600); err != nil {
		return fail(fmt.Errorf("commit blob %s: %w", w.expected, err))
	}
	if err := os.Rename(w.path, dst); err != nil {
		return fail(fmt.Errorf("commit blob %s: %w", w.expected, err))
	}
	w.state = writerCommitted
	w.notifyLocked()
	return nil
}

// Abort discards the blob. It is a no-op after Commit or Abort.
func (w *Writer) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == writerOpen {
		w.abortLocked()
	}
}

func (w *Writer) abortLocked() {
	if !w.ended {
		w.ended, w.endErr = true, errors.New("blob ingest aborted")
	}
	_ = w.f.Close()
	_ = os.Remove(w.path)
	w.state = writerAborted
	w.notifyLocked()
}

// NewReader returns a reader of the blob's bytes that follows the writer: it blocks for data not yet written and
// returns io.EOF after CloseWrite(nil) or the error passed to CloseWrite. It fails once the writer has finished;
// read committed blobs with Store.Open.
// Reading fails with ctx's error once ctx is done.
func (w *Writer) NewReader(ctx context.Context) (io.ReadCloser, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != writerOpen {
		return nil, errors.New("blob writer already finished")
	}
	f, err := os.Open(w.path)
	if err != nil {
		return nil, fmt.Errorf("follow blob %s: %w", w.expected, err)
	}
	return &followReader{ctx: ctx, w: w, f: f}, nil
}

type followReader struct {
	ctx context.Context
	w   *Writer
	f   *os.File
	off int64
}

func (r *followReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r.w.mu.Lock()
		written, ended, endErr, aborted, ch := r.w.written, r.w.ended, r.w.endErr, r.w.state == writerAborted, r.w.changed
		r.w.mu.Unlock()
		if r.off < written {
			if int64(len(p)) > written-r.off {
				p = p[:written-r.off]
			}
			n, err := r.f.ReadAt(p, r.off)
			r.off += int64(n)
			if n > 0 {
				return n, nil
			}
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if aborted && endErr == nil {
			return 0, errors.New("blob ingest aborted")
		}
		if ended {
			if endErr != nil {
				return 0, endErr
			}
			return 0, io.EOF
		}
		select {
		case <-ch:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

func (r *followReader) Close() error { return r.f.Close() }
