package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/testimage"
	"github.com/noded/noded/snapshotter"
	bolt "go.etcd.io/bbolt"
)

// fakeSnapshotter keeps snapshots in memory; ApplyLayer records the regular files of the layer tar.
type fakeSnapshotter struct {
	mu    sync.Mutex
	snaps map[string]*fakeSnap
	// applyHook, when set, runs before each ApplyLayer.
	applyHook func(key string)
}

type fakeSnap struct {
	info  snapshotter.Info
	files map[string]string
}

func newFakeSnapshotter() *fakeSnapshotter { return &fakeSnapshotter{snaps: map[string]*fakeSnap{}} }

func (f *fakeSnapshotter) Stat(_ context.Context, key string) (snapshotter.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.snaps[key]
	if !ok {
		return snapshotter.Info{}, errdefs.NotFound("snapshot %s", key)
	}
	return s.info, nil
}

func (f *fakeSnapshotter) create(key, parent string, kind snapshotter.Kind, opts []snapshotter.Opt) ([]snapshotter.Mount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if key == "" {
		return nil, errdefs.InvalidArgument("empty snapshot key")
	}
	if _, ok := f.snaps[key]; ok {
		return nil, errdefs.AlreadyExists("snapshot %s", key)
	}
	if parent != "" {
		p, ok := f.snaps[parent]
		if !ok {
			return nil, errdefs.NotFound("parent %s", parent)
		}
		if p.info.Kind != snapshotter.KindCommitted {
			return nil, errdefs.FailedPrecondition("parent %s not committed", parent)
		}
	}
	info := snapshotter.Info{Key: key, Parent: parent, Kind: kind, Created: time.Now()}
	for _, o := range opts {
		o(&info)
	}
	f.snaps[key] = &fakeSnap{info: info, files: map[string]string{}}
	return []snapshotter.Mount{{Type: "bind", Source: "/fake/" + key}}, nil
}

func (f *fakeSnapshotter) Prepare(_ context.Context, key, parent string, opts ...snapshotter.Opt) ([]snapshotter.Mount, error) {
	return f.create(key, parent, snapshotter.KindActive, opts)
}

func (f *fakeSnapshotter) View(_ context.Context, key, parent string, opts ...snapshotter.Opt) ([]snapshotter.Mount, error) {
	return f.create(key, parent, snapshotter.KindView, opts)
}

func (f *fakeSnapshotter) Mounts(_ context.Context, key string) ([]snapshotter.Mount, error) {
	in, err := f.Stat(context.Background(), key)
	if err != nil {
		return nil, err
	}
	if in.Kind == snapshotter.KindCommitted {
		return nil, errdefs.FailedPrecondition("snapshot %s is committed", key)
	}
	return []snapshotter.Mount{{Type: "bind", Source: "/fake/" + key}}, nil
}

func (f *fakeSnapshotter) Commit(_ context.Context, name, key string, opts ...snapshotter.Opt) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.snaps[key]
	if !ok {
		return errdefs.NotFound("snapshot %s", key)
	}
	if s.info.Kind != snapshotter.KindActive {
		return errdefs.FailedPrecondition("snapshot %s is not active", key)
	}
	if _, ok := f.snaps[name]; ok {
		return errdefs.AlreadyExists("snapshot %s", name)
	}
	delete(f.snaps, key)
	info := snapshotter.Info{Key: name, Parent: s.info.Parent, Kind: snapshotter.KindCommitted, Created: time.Now()}
	for _, o := range opts {
		o(&info)
	}
	f.snaps[name] = &fakeSnap{info: info, files: s.files}
	return nil
}

func (f *fakeSnapshotter) Remove(_ context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.snaps[key]; !ok {
		return errdefs.NotFound("snapshot %s", key)
	}
	for _, s := range f.snaps {
		if s.info.Parent == key {
			return errdefs.FailedPrecondition("snapshot %s has children", key)
		}
	}
	delete(f.snaps, key)
	return nil
}

func (f *fakeSnapshotter) Usage(_ context.Context, key string) (snapshotter.Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.snaps[key]
	if !ok {
		return snapshotter.Usage{}, errdefs.NotFound("snapshot %s", key)
	}
	u := snapshotter.Usage{Inodes: int64(len(s.files))}
	for _, c := range s.files {
		u.Size += int64(len(c))
	}
	return u, nil
}

func (f *fakeSnapshotter) Walk(ctx context.Context, fn func(context.Context, snapshotter.Info) error) error {
	f.mu.Lock()
	infos := make([]snapshotter.Info, 0, len(f.snaps))
	for _, s := range f.snaps {
		infos = append(infos, s.info)
	}
	f.mu.Unlock()
	for _, i := range infos {
		if err := fn(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeSnapshotter) Close() error { return nil }

func (f *fakeSnapshotter) ApplyLayer(ctx context.Context, key string, r io.Reader) (int64, error) {
	if f.applyHook != nil {
		f.applyHook(key)
	}
	files := map[string]string{}
	var n int64
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, errdefs.InvalidArgument("bad tar: %v", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				return n, err
			}
			files[hdr.Name] = string(b)
			n += int64(len(b))
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.snaps[key]
	if !ok || s.info.Kind != snapshotter.KindActive {
		return n, errdefs.NotFound("active snapshot %s", key)
	}
	for k, v := range files {
		s.files[k] = v
	}
	return n, nil
}

// keys lists the snapshot keys, sorted.
func (f *fakeSnapshotter) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.snaps {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// fileOf returns the content of name in the chain ending at key (nearest layer wins).
func (f *fakeSnapshotter) fileOf(key, name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for key != "" {
		s, ok := f.snaps[key]
		if !ok {
			return "", false
		}
		if c, ok := s.files[name]; ok {
			return c, true
		}
		key = s.info.Parent
	}
	return "", false
}

var _ snapshotter.DirectApplier = (*fakeSnapshotter)(nil)

// tarOf builds an uncompressed layer tar with the given files.
func tarOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// buildImage makes an image with one layer per element of layers.
func buildImage(t testing.TB, c testimage.Compression, f testimage.Format, cfg v1.Config, plat *v1.Platform, layers ...map[string]string) v1.Image {
	t.Helper()
	var ls []v1.Layer
	for _, files := range layers {
		l, err := testimage.NewLayer(tarOf(t, files), c, f)
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	img, err := testimage.Assemble(ls, cfg, f, plat)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testRegistry is an in-process registry with hooks in front of it.
type testRegistry struct {
	host  string // 127.0.0.1:port (or the address given to startRegistryOn)
	inner http.Handler

	mu       sync.Mutex
	gets     map[string]int // blob GETs by digest
	requests int
	// hook may handle a request itself (returning true).
	hook func(w http.ResponseWriter, r *http.Request) bool
}

func startRegistry(t testing.TB) *testRegistry { return startRegistryOn(t, "127.0.0.1:0") }

// startRegistryOn starts the registry listening on addr (ip:port; port 0 picks one).
func startRegistryOn(t testing.TB, addr string) *testRegistry {
	t.Helper()
	tr := &testRegistry{gets: map[string]int{}}
	inner := registry.New(registry.Logger(nullLogger()))
	tr.inner = inner
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		tr.requests++
		if d, ok := blobDigest(r); ok && r.Method == http.MethodGet {
			tr.gets[d]++
		}
		hook := tr.hook
		tr.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		inner.ServeHTTP(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	tr.host = strings.TrimPrefix(srv.URL, "http://")
	return tr
}

func blobDigest(r *http.Request) (string, bool) {
	i := strings.LastIndex(r.URL.Path, "/blobs/")
	if i < 0 || !strings.HasPrefix(r.URL.Path, "/v2/") {
		return "", false
	}
	d := r.URL.Path[i+len("/blobs/"):]
	return d, strings.HasPrefix(d, "sha256:")
}

func (tr *testRegistry) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.hook = h
}

func (tr *testRegistry) blobGets() map[string]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[string]int{}
	for k, v := range tr.gets {
		out[k] = v
	}
	return out
}

func (tr *testRegistry) push(t testing.TB, repoTag string, img v1.Image) v1.Hash {
	t.Helper()
	d, err := testimage.Push(context.Background(), tr.host, repoTag, img)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// plainHTTPConfig allows plain http to the given registry hosts.
func plainHTTPConfig(hosts ...string) RegistryConfig {
	c := DefaultRegistryConfig()
	for _, h := range hosts {
		c.Hosts[h] = HostConfig{PlainHTTP: true}
	}
	return c
}

type env struct {
	svc  *Service
	sn   *fakeSnapshotter
	db   *bolt.DB
	opts Options
}

// newEnv opens a service on a fresh root and database.
func newEnv(t testing.TB, cfg RegistryConfig) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sn := newFakeSnapshotter()
	opts := Options{
		Root: filepath.Join(dir, "root"), DB: db, Snapshotter: sn, Registry: cfg,
		RegistryOptions: RegistryOptions{StallTimeout: 5 * time.Second, Attempts: 3, Backoff: 10 * time.Millisecond},
	}
	e := &env{sn: sn, db: db, opts: opts}
	e.open(t)
	return e
}

func (e *env) open(t testing.TB) {
	t.Helper()
	svc, err := New(context.Background(), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	t.Cleanup(func() { svc.Close() })
}

func nullLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// captureWriter records a response.
type captureWriter struct {
	header http.Header
	code   int
	body   []byte
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	c.body = append(c.body, b...)
	return len(b), nil
}
func (c *captureWriter) WriteHeader(code int) { c.code = code }

// regServe answers r from the registry itself (bypassing the hook) into w.
func regServe(tr *testRegistry, w http.ResponseWriter, r *http.Request) { tr.inner.ServeHTTP(w, r) }
