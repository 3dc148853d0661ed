package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/testimage"
	"github.com/noded/noded/snapshotter"
	digest "github.com/opencontainers/go-digest"
)

func configDigest(t testing.TB, img v1.Image) string {
	t.Helper()
	d, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func layerDigests(t testing.TB, img v1.Image) []string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.String())
	}
	return out
}

func TestPullByTagAndDigest(t *testing.T) {
	reg := startRegistry(t)
	cfg := v1.Config{User: "1000", Env: []string{"A=b"}, Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "true"},
		WorkingDir: "/w", StopSignal: "SIGQUIT", Labels: map[string]string{"l": "v"}, Volumes: map[string]struct{}{"/data": {}}}
	img := buildImage(t, testimage.Gzip, testimage.OCI, cfg, nil,
		map[string]string{"etc/a": "base", "etc/b": "b"}, map[string]string{"etc/a": "top"})
	mdigest := reg.push(t, "app/web:v1", img)
	e := newEnv(t, plainHTTPConfig(reg.host))
	ctx := context.Background()

	got, err := e.svc.Pull(ctx, reg.host+"/app/web:v1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := configDigest(t, img)
	if got.ID != id {
		t.Fatalf("ID = %s, want config digest %s", got.ID, id)
	}
	if want := []string{reg.host + "/app/web:v1"}; !slices.Equal(got.RepoTags, want) {
		t.Errorf("RepoTags = %v, want %v", got.RepoTags, want)
	}
	if want := []string{reg.host + "/app/web@" + mdigest.String()}; !slices.Equal(got.RepoDigests, want) {
		t.Errorf("RepoDigests = %v, want %v", got.RepoDigests, want)
	}
	c := got.Config
	if c.User != "1000" || !slices.Equal(c.Env, []string{"A=b"}) || c.Entrypoint[0] != "/bin/sh" || c.Cmd[1] != "true" ||
		c.WorkingDir != "/w" || c.StopSignal != "SIGQUIT" || c.Labels["l"] != "v" || !slices.Equal(c.Volumes, []string{"/data"}) {
		t.Errorf("config = %+v", c)
	}
	cfgSize, _ := img.Manifest()
	want := cfgSize.Config.Size
	for _, l := range cfgSize.Layers {
		want += l.Size
	}
	if got.Size != want {
		t.Errorf("Size = %d, want %d", got.Size, want)
	}
	if len(got.Layers) != 2 || got.Layers[0].ChainID != got.Layers[0].DiffID ||
		got.Layers[1].ChainID != digest.FromString(got.Layers[0].DiffID.String()+" "+got.Layers[1].DiffID.String()) {
		t.Fatalf("layers = %+v", got.Layers)
	}
	if c, ok := e.sn.fileOf(got.ChainID(), "etc/a"); !ok || c != "top" {
		t.Errorf("etc/a = %q, %v; want top", c, ok)
	}
	if c, ok := e.sn.fileOf(got.ChainID(), "etc/b"); !ok || c != "b" {
		t.Errorf("etc/b = %q, %v", c, ok)
	}
	info, err := e.sn.Stat(ctx, got.ChainID())
	if err != nil || info.Kind != snapshotter.KindCommitted || info.Labels[LabelLayer] != got.Layers[1].DiffID.String() {
		t.Errorf("top snapshot = %+v, %v", info, err)
	}
	for _, d := range append(layerDigests(t, img), id, mdigest.String()) {
		if !e.svc.content.Exists(digest.Digest(d), -1) {
			t.Errorf("blob %s not in the content store", d)
		}
	}
	raw, err := e.svc.ConfigJSON(ctx, got)
	if err != nil || digest.FromBytes(raw).String() != id {
		t.Errorf("ConfigJSON: %v", err)
	}

	// By digest: same image, one more name; no new blob download.
	before := reg.blobGets()
	got2, err := e.svc.Pull(ctx, reg.host+"/app/web@"+mdigest.String(), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got2.ID != id || len(got2.RepoTags) != 1 || len(got2.RepoDigests) != 1 {
		t.Errorf("pull by digest = %+v", got2)
	}
	if after := reg.blobGets(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("re-pull downloaded blobs again: %v -> %v", before, after)
	}

	// Lookups.
	for _, ref := range []string{id, strings.TrimPrefix(id, "sha256:"), id[:19], strings.TrimPrefix(id, "sha256:")[:12],
		reg.host + "/app/web:v1", reg.host + "/app/web@" + mdigest.String()} {
		g, err := e.svc.Get(ctx, ref)
		if err != nil || g.ID != id {
			t.Errorf("Get(%q) = %s, %v", ref, g.ID, err)
		}
	}
	for _, ref := range []string{reg.host + "/app/web:v2", "busybox", "sha256:0123"} {
		if _, err := e.svc.Get(ctx, ref); !errdefs.IsNotFound(err) {
			t.Errorf("Get(%q) error = %v, want NotFound", ref, err)
		}
	}
	imgs, err := e.svc.List(ctx)
	if err != nil || len(imgs) != 1 {
		t.Fatalf("List = %v, %v", imgs, err)
	}

	// The record survives a restart.
	e.svc.Close()
	e.open(t)
	if g, err := e.svc.Get(ctx, reg.host+"/app/web:v1"); err != nil || g.ID != id {
		t.Fatalf("after reopen: %v", err)
	}
	if _, ok := e.sn.fileOf(got.ChainID(), "etc/a"); !ok {
		t.Fatal("reopen collected the layers of an existing image")
	}
}

func TestPullNormalisesDockerHubNames(t *testing.T) {
	// docker.io/library/busybox is served from a mirror as repository library/busybox.
	reg := startRegistry(t)
	img := buildImage(t, testimage.Gzip, testimage.Docker, v1.Config{}, nil, map[string]string{"bin/sh": "x"})
	reg.push(t, "library/busybox:latest", img)
	cfg := DefaultRegistryConfig()
	cfg.Hosts["docker.io"] = HostConfig{Mirrors: []Endpoint{{URL: "http://" + reg.host}}, MirrorsOnly: true}
	e := newEnv(t, cfg)
	got, err := e.svc.Pull(context.Background(), "busybox", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.RepoTags, []string{"docker.io/library/busybox:latest"}) {
		t.Fatalf("RepoTags = %v", got.RepoTags)
	}
	if _, err := e.svc.Get(context.Background(), "busybox:latest"); err != nil {
		t.Fatal(err)
	}
}

func TestPullIndexPicksPlatform(t *testing.T) {
	reg := startRegistry(t)
	var entries []testimage.PlatformImage
	var wantID string
	for _, p := range []v1.Platform{
		{OS: "linux", Architecture: "s390x"},
		{OS: "linux", Architecture: runtime.GOARCH},
		{OS: "windows", Architecture: runtime.GOARCH},
		{OS: "linux", Architecture: "ppc64le"},
	} {
		p := p
		img := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{}, &p, map[string]string{"platform": p.OS + "/" + p.Architecture})
		if p.OS == "linux" && p.Architecture == runtime.GOARCH {
			wantID = configDigest(t, img)
		}
		entries = append(entries, testimage.PlatformImage{Platform: p, Image: img})
	}
	idx, err := testimage.Index(testimage.OCI, entries...)
	if err != nil {
		t.Fatal(err)
	}
	idxDigest, err := testimage.PushIndex(context.Background(), reg.host, "multi:1", idx)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, plainHTTPConfig(reg.host))
	got, err := e.svc.Pull(context.Background(), reg.host+"/multi:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != wantID {
		t.Fatalf("pulled %s, want the linux/%s image %s", got.ID, runtime.GOARCH, wantID)
	}
	if c, _ := e.sn.fileOf(got.ChainID(), "platform"); c != "linux/"+runtime.GOARCH {
		t.Errorf("unpacked %q", c)
	}
	if want := reg.host + "/multi@" + idxDigest.String(); !slices.Equal(got.RepoDigests, []string{want}) {
		t.Errorf("RepoDigests = %v, want the index digest %s", got.RepoDigests, want)
	}
	// Only the chosen platform's layers were fetched.
	if n := len(reg.blobGets()); n != 2 {
		t.Errorf("%d blobs fetched, want 2 (config + layer): %v", n, reg.blobGets())
	}

	e2 := newEnv(t, plainHTTPConfig(reg.host))
	e2.svc.opts.Platform = Platform{OS: "linux", Architecture: "riscv64"}
	if _, err := e2.svc.Pull(context.Background(), reg.host+"/multi:1", PullOptions{}); !errdefs.IsNotFound(err) {
		t.Errorf("pull for a missing platform: %v, want NotFound", err)
	}
}

func TestPullLayerCompressions(t *testing.T) {
	reg := startRegistry(t)
	e := newEnv(t, plainHTTPConfig(reg.host))
	for _, tc := range []struct {
		c testimage.Compression
		f testimage.Format
	}{
		{testimage.Gzip, testimage.OCI}, {testimage.Zstd, testimage.OCI}, {testimage.Uncompressed, testimage.OCI},
		{testimage.Gzip, testimage.Docker}, {testimage.Uncompressed, testimage.Docker},
	} {
		name := fmt.Sprintf("%s-%s", tc.f, tc.c)
		t.Run(name, func(t *testing.T) {
			img := buildImage(t, tc.c, tc.f, v1.Config{}, nil,
				map[string]string{"f": name, "big": strings.Repeat("x", 1<<20)}, map[string]string{"g": name})
			reg.push(t, "comp:"+name, img)
			got, err := e.svc.Pull(context.Background(), reg.host+"/comp:"+name, PullOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if c, _ := e.sn.fileOf(got.ChainID(), "f"); c != name {
				t.Errorf("f = %q", c)
			}
			if c, _ := e.sn.fileOf(got.ChainID(), "big"); len(c) != 1<<20 {
				t.Errorf("big has %d bytes", len(c))
			}
		})
	}
}

func TestPullAuth(t *testing.T) {
	reg := startRegistry(t)
	img := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{}, nil, map[string]string{"f": "secret"})
	reg.push(t, "private:1", img)
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		if ok && u == "alice" && p == "s3cret" {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		return true
	})
	ref := reg.host + "/private:1"
	ctx := context.Background()

	e := newEnv(t, plainHTTPConfig(reg.host))
	if _, err := e.svc.Pull(ctx, ref, PullOptions{}); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("anonymous pull: %v, want Unauthenticated", err)
	}
	if _, err := e.svc.Pull(ctx, ref, PullOptions{Auth: &Credentials{Username: "alice", Password: "wrong"}}); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("wrong password: %v, want Unauthenticated", err)
	} else if !strings.Contains(err.Error(), "credentials") {
		t.Errorf("unclear message: %v", err)
	}
	if _, err := e.svc.Pull(ctx, ref, PullOptions{Auth: &Credentials{Username: "alice", Password: "s3cret"}}); err != nil {
		t.Errorf("username/password: %v", err)
	}
	// base64 "auth" form, and credentials addressed to another registry are not used.
	e2 := newEnv(t, plainHTTPConfig(reg.host))
	if _, err := e2.svc.Pull(ctx, ref, PullOptions{Auth: &Credentials{Auth: "YWxpY2U6czNjcmV0", ServerAddress: "other.example.com"}}); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("credentials for another server were used: %v", err)
	}
	if _, err := e2.svc.Pull(ctx, ref, PullOptions{Auth: &Credentials{Auth: "YWxpY2U6czNjcmV0", ServerAddress: "http://" + reg.host}}); err != nil {
		t.Errorf("auth field: %v", err)
	}
	// Credentials from the config.
	cfg := plainHTTPConfig(reg.host)
	cfg.Hosts[reg.host] = HostConfig{PlainHTTP: true, Auth: &Credentials{Username: "alice", Password: "s3cret"}}
	e3 := newEnv(t, cfg)
	if _, err := e3.svc.Pull(ctx, ref, PullOptions{}); err != nil {
		t.Errorf("config credentials: %v", err)
	}
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestMirrors(t *testing.T) {
	mirror := startRegistry(t)
	img := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{}, nil, map[string]string{"f": "mirrored"})
	mirror.push(t, "e2e-test-images/busybox:1.29-2", img)
	mirror.push(t, "cache/e2e-test-images/busybox:1.29-2", img)
	upstream := startRegistry(t) // has nothing: reached only as a fallback
	down := closedPort(t)
	ctx := context.Background()

	t.Run("first mirror down, second used", func(t *testing.T) {
		cfg := DefaultRegistryConfig()
		cfg.Hosts["registry.k8s.io"] = HostConfig{MirrorsOnly: true, Mirrors: []Endpoint{
			{URL: "http://" + down}, {URL: "http://" + mirror.host},
		}}
		e := newEnv(t, cfg)
		got, err := e.svc.Pull(ctx, "registry.k8s.io/e2e-test-images/busybox:1.29-2", PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.RepoTags, []string{"registry.k8s.io/e2e-test-images/busybox:1.29-2"}) {
			t.Errorf("RepoTags = %v", got.RepoTags)
		}
	})
	t.Run("path prefix", func(t *testing.T) {
		cfg := DefaultRegistryConfig()
		cfg.Hosts["registry.k8s.io"] = HostConfig{MirrorsOnly: true, Mirrors: []Endpoint{{URL: "http://" + mirror.host + "/cache"}}}
		e := newEnv(t, cfg)
		if _, err := e.svc.Pull(ctx, "registry.k8s.io/e2e-test-images/busybox:1.29-2", PullOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("mirror lacks image, upstream serves", func(t *testing.T) {
		upstream.push(t, "only/upstream:1", img)
		cfg := DefaultRegistryConfig()
		cfg.Hosts[upstream.host] = HostConfig{PlainHTTP: true, Mirrors: []Endpoint{{URL: "http://" + down}, {URL: "http://" + mirror.host}}}
		e := newEnv(t, cfg)
		if _, err := e.svc.Pull(ctx, upstream.host+"/only/upstream:1", PullOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("mirrors only: no fallback to upstream", func(t *testing.T) {
		upstream.push(t, "e2e/x:1", img)
		cfg := DefaultRegistryConfig()
		cfg.Hosts[upstream.host] = HostConfig{PlainHTTP: true, MirrorsOnly: true, Mirrors: []Endpoint{{URL: "http://" + down}}}
		e := newEnv(t, cfg)
		_, err := e.svc.Pull(ctx, upstream.host+"/e2e/x:1", PullOptions{})
		if !errors.Is(err, errdefs.ErrUnavailable) {
			t.Fatalf("err = %v, want Unavailable", err)
		}
		cfg.Hosts[upstream.host] = HostConfig{PlainHTTP: true, Mirrors: []Endpoint{{URL: "http://" + down}}}
		e2 := newEnv(t, cfg)
		if _, err := e2.svc.Pull(ctx, upstream.host+"/e2e/x:1", PullOptions{}); err != nil {
			t.Fatalf("with fallback: %v", err)
		}
	})
	t.Run("unknown image", func(t *testing.T) {
		e := newEnv(t, plainHTTPConfig(mirror.host))
		if _, err := e.svc.Pull(ctx, mirror.host+"/no/such:1", PullOptions{}); !errdefs.IsNotFound(err) {
			t.Fatalf("err = %v, want NotFound", err)
		}
	})
}

// TestPlainHTTPRefusedUnlessConfigured: a registry that speaks only plain http is not reached over it unless
// configured: on a host that is not loopback (an address of lo in a network namespace of the test's own), and
// on loopback through a configured https:// mirror or a host entry without plain_http (configured endpoints keep
// their scheme; the loopback default applies only to unconfigured hosts).
func TestPlainHTTPRefusedUnlessConfigured(t *testing.T) {
	if !inPrivateNetns(t) {
		return
	}
	img := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{}, nil, map[string]string{"f": "x"})
	ctx := context.Background()
	remote := startRegistryOn(t, nonLoopbackAddr+":0")
	remote.push(t, "x:1", img)
	e := newEnv(t, DefaultRegistryConfig())
	_, err := e.svc.Pull(ctx, remote.host+"/x:1", PullOptions{})
	if err == nil {
		t.Fatalf("pulled over plain http from %s, a registry not on loopback and not configured for it", remote.host)
	}
	if !strings.Contains(err.Error(), "https://"+remote.host) {
		t.Errorf("error does not name the https endpoint: %v", err)
	}
	if _, err := newEnv(t, plainHTTPConfig(remote.host)).svc.Pull(ctx, remote.host+"/x:1", PullOptions{}); err != nil {
		t.Fatalf("with plain_http: %v", err)
	}

	local := startRegistry(t)
	local.push(t, "x:1", img)
	for name, hc := range map[string]struct {
		ref string
		cfg HostConfig
	}{
		"https mirror on loopback":       {"example.test/x:1", HostConfig{MirrorsOnly: true, Mirrors: []Endpoint{{URL: "https://" + local.host}}}},
		"loopback host with skip_verify": {local.host + "/x:1", HostConfig{SkipVerify: true}},
		"loopback host behind a mirror":  {local.host + "/x:1", HostConfig{Mirrors: []Endpoint{{URL: "https://" + local.host}}}},
	} {
		cfg := DefaultRegistryConfig()
		cfg.Hosts[strings.Split(hc.ref, "/")[0]] = hc.cfg
		if _, err := newEnv(t, cfg).svc.Pull(ctx, hc.ref, PullOptions{}); err == nil {
			t.Errorf("%s: reached over plain http", name)
		}
	}
	if gets := local.blobGets(); len(gets) != 0 {
		t.Fatalf("blobs were served by the loopback registry: %v", gets)
	}
}

// TestLoopbackRegistryPlainHTTPFallback: a plain-http registry on loopback with no configuration is pulled from
// over plain http after https failed, as 127.0.0.1:port and as localhost:port, with the pull's credentials.
func TestLoopbackRegistryPlainHTTPFallback(t *testing.T) {
	reg := startRegistry(t)
	img := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{}, nil, map[string]string{"f": "local"})
	reg.push(t, "private/pause:testing", img)
	var authorized, refused atomic.Int64
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if u, p, ok := r.BasicAuth(); ok && u == "user" && p == "password" {
			authorized.Add(1)
			return false
		}
		refused.Add(1)
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		return true
	})
	ctx := context.Background()
	_, port, _ := net.SplitHostPort(reg.host)
	creds := func(server string) *Credentials {
		return &Credentials{Username: "user", Password: "password", ServerAddress: server}
	}
	for _, host := range []string{reg.host, "localhost:" + port} {
		e := newEnv(t, DefaultRegistryConfig())
		ref := host + "/private/pause:testing"
		if _, err := e.svc.Pull(ctx, ref, PullOptions{}); !errors.Is(err, errdefs.ErrUnauthenticated) {
			t.Errorf("%s without credentials: %v, want Unauthenticated", ref, err)
		}
		got, err := e.svc.Pull(ctx, ref, PullOptions{Auth: creds(host)})
		if err != nil {
			t.Fatalf("%s with credentials: %v", ref, err)
		}
		if c, _ := e.sn.fileOf(got.ChainID(), "f"); c != "local" {
			t.Errorf("%s: f = %q", ref, c)
		}
		// Credentials for another registry are not sent to it.
		if _, err := e.svc.Pull(ctx, ref, PullOptions{Auth: creds("other.example.com")}); !errors.Is(err, errdefs.ErrUnauthenticated) {
			t.Errorf("%s with credentials for another registry: %v, want Unauthenticated", ref, err)
		}
	}
	if authorized.Load() == 0 || refused.Load() == 0 {
		t.Fatalf("authorized %d, refused %d requests", authorized.Load(), refused.Load())
	}
}

func TestConcurrentPullsShareDownloads(t *testing.T) {
	reg := startRegistry(t)
	img := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{}, nil,
		map[string]string{"a": strings.Repeat("a", 3<<20)}, map[string]string{"b": strings.Repeat("b", 2<<20)},
		map[string]string{"c": "c"})
	d := reg.push(t, "shared:1", img)
	e := newEnv(t, plainHTTPConfig(reg.host))
	// Slow the registry down so the pulls overlap.
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if _, ok := blobDigest(r); ok {
			time.Sleep(50 * time.Millisecond)
		}
		return false
	})
	refs := []string{reg.host + "/shared:1", reg.host + "/shared:1", reg.host + "/shared@" + d.String(), reg.host + "/shared:1"}
	var wg sync.WaitGroup
	errs := make([]error, len(refs))
	ids := make([]string, len(refs))
	for i, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := e.svc.Pull(context.Background(), ref, PullOptions{})
			errs[i], ids[i] = err, img.ID
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
		if ids[i] != ids[0] {
			t.Fatalf("different IDs: %v", ids)
		}
	}
	gets := reg.blobGets()
	for _, dg := range append(layerDigests(t, img), configDigest(t, img)) {
		if gets[dg] != 1 {
			t.Errorf("blob %s fetched %d times, want 1", dg, gets[dg])
		}
	}
}

func TestCorruptBlobFailsCleanly(t *testing.T) {
	reg := startRegistry(t)
	img := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{}, nil,
		map[string]string{"a": "base"}, map[string]string{"b": strings.Repeat("payload", 10000)})
	reg.push(t, "bad:1", img)
	bad := layerDigests(t, img)[1]
	var corrupt sync.Mutex // held: serve corrupt bytes
	corrupt.Lock()
	corrupting := true
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		d, ok := blobDigest(r)
		if !ok || d != bad || r.Method != http.MethodGet {
			return false
		}
		if !corrupting {
			return false
		}
		rec := &captureWriter{header: http.Header{}}
		regServe(reg, rec, r)
		body := rec.body
		if len(body) > 100 {
			body[len(body)/2] ^= 0xff
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.code)
		_, _ = w.Write(body)
		return true
	})
	e := newEnv(t, plainHTTPConfig(reg.host))
	ctx := context.Background()
	_, err := e.svc.Pull(ctx, reg.host+"/bad:1", PullOptions{})
	if err == nil {
		t.Fatal("pull of a corrupt blob succeeded")
	}
	t.Logf("error: %v", err)
	if _, gerr := e.svc.Get(ctx, reg.host+"/bad:1"); !errdefs.IsNotFound(gerr) {
		t.Errorf("an image was recorded: %v", gerr)
	}
	if e.svc.content.Exists(digest.Digest(bad), -1) {
		t.Error("corrupt blob stored")
	}
	assertNoIngest(t, e)
	for _, k := range e.sn.keys() {
		if strings.HasPrefix(k, unpackKeyPrefix) {
			t.Errorf("temporary snapshot %s left", k)
		}
	}
	chain := ChainIDs([]digest.Digest{diffID(t, img, 0), diffID(t, img, 1)})
	if _, err := e.sn.Stat(ctx, chain[1].String()); !errdefs.IsNotFound(err) {
		t.Errorf("corrupt layer committed: %v", err)
	}
	// What a failed pull keeps (the verified base layer) goes at the next collection.
	if err := e.svc.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if k := e.sn.keys(); len(k) != 0 {
		t.Errorf("snapshots after prune: %v", k)
	}
	assertNoBlobs(t, e)

	corrupting = false
	corrupt.Unlock()
	if _, err := e.svc.Pull(ctx, reg.host+"/bad:1", PullOptions{}); err != nil {
		t.Fatalf("pull after the registry was fixed: %v", err)
	}
}

func diffID(t testing.TB, img v1.Image, i int) digest.Digest {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(cf.RootFS.DiffIDs[i].String())
}

func assertNoIngest(t *testing.T, e *env) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.opts.Root, "content", "ingest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("partial downloads left: %v", entries)
	}
}

func assertNoBlobs(t *testing.T, e *env) {
	t.Helper()
	var left []string
	_ = e.svc.content.Walk(func(d digest.Digest, _ int64) error {
		left = append(left, d.String())
		return nil
	})
	if len(left) != 0 {
		t.Errorf("blobs left: %v", left)
	}
}

func TestCrashMidLayerLeavesNoImage(t *testing.T) {
	reg := startRegistry(t)
	img := buildImage(t, testimage.Uncompressed, testimage.OCI, v1.Config{}, nil,
		map[string]string{"a": "base"}, map[string]string{"b": strings.Repeat("z", 4<<20)})
	reg.push(t, "crash:1", img)
	big := layerDigests(t, img)[1]
	halfSent := make(chan struct{})
	var once sync.Once
	blocking := true
	var mu sync.Mutex
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		d, ok := blobDigest(r)
		mu.Lock()
		b := blocking
		mu.Unlock()
		if !ok || d != big || r.Method != http.MethodGet || !b {
			return false
		}
		rec := &captureWriter{header: http.Header{}}
		regServe(reg, rec, r)
		w.Header().Set("Content-Length", fmt.Sprint(len(rec.body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(rec.body[:len(rec.body)/2])
		w.(http.Flusher).Flush()
		once.Do(func() { close(halfSent) })
		<-r.Context().Done()
		return true
	})
	e := newEnv(t, plainHTTPConfig(reg.host))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.svc.Pull(ctx, reg.host+"/crash:1", PullOptions{})
		done <- err
	}()
	select {
	case <-halfSent:
	case err := <-done:
		t.Fatalf("pull ended early: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("download never started")
	}
	time.Sleep(50 * time.Millisecond) // let the unpack consume what arrived
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("pull error = %v, want context.Canceled", err)
	}
	e.svc.Close()

	// Leftovers of a hard crash: a partial download and a temporary unpack snapshot.
	if err := os.WriteFile(filepath.Join(e.opts.Root, "content", "ingest", "partial"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sn.Prepare(context.Background(), unpackKeyPrefix+"crashed", "", snapshotter.WithLabels(map[string]string{labelUnpack: "x"})); err != nil {
		t.Fatal(err)
	}
	e.open(t)
	bg := context.Background()
	if imgs, _ := e.svc.List(bg); len(imgs) != 0 {
		t.Fatalf("images after crash: %v", imgs)
	}
	assertNoIngest(t, e)
	if k := e.sn.keys(); len(k) != 0 {
		t.Errorf("snapshots after reopen: %v", k)
	}
	assertNoBlobs(t, e)

	mu.Lock()
	blocking = false
	mu.Unlock()
	got, err := e.svc.Pull(bg, reg.host+"/crash:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := e.sn.fileOf(got.ChainID(), "b"); len(c) != 4<<20 {
		t.Fatalf("b has %d bytes", len(c))
	}
}

func TestStalledAndFailingTransfersAreRetried(t *testing.T) {
	reg := startRegistry(t)
	img := buildImage(t, testimage.Uncompressed, testimage.OCI, v1.Config{}, nil, map[string]string{"b": strings.Repeat("q", 1<<20)})
	reg.push(t, "flaky:1", img)
	layer := layerDigests(t, img)[0]
	var mu sync.Mutex
	calls := 0
	var ranges []string
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		d, ok := blobDigest(r)
		if !ok || d != layer || r.Method != http.MethodGet {
			return false
		}
		mu.Lock()
		calls++
		n := calls
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		switch n {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		case 2: // half the blob, then silence
			rec := &captureWriter{header: http.Header{}}
			regServe(reg, rec, r)
			w.Header().Set("Content-Length", fmt.Sprint(len(rec.body)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(rec.body[:len(rec.body)/2])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return true
		}
		return false
	})
	e := newEnv(t, plainHTTPConfig(reg.host))
	e.svc.Close()
	e.opts.RegistryOptions.StallTimeout = 300 * time.Millisecond
	e.open(t)
	got, err := e.svc.Pull(context.Background(), reg.host+"/flaky:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := e.sn.fileOf(got.ChainID(), "b"); len(c) != 1<<20 {
		t.Fatalf("b has %d bytes", len(c))
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 3 || !strings.HasPrefix(ranges[2], "bytes=") {
		t.Fatalf("calls = %d, ranges = %q; want a 503, a stall, then a resumed range request", calls, ranges)
	}
}

func TestTagMovesToNewImage(t *testing.T) {
	reg := startRegistry(t)
	e := newEnv(t, plainHTTPConfig(reg.host))
	ctx := context.Background()
	old := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{}, nil, map[string]string{"v": "1"})
	oldDigest := reg.push(t, "mv:latest", old)
	reg.push(t, "mv:stable", old)
	if _, err := e.svc.Pull(ctx, reg.host+"/mv:latest", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Pull(ctx, reg.host+"/mv:stable", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	nw := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{}, nil, map[string]string{"v": "2"})
	reg.push(t, "mv:latest", nw)
	got, err := e.svc.Pull(ctx, reg.host+"/mv:latest", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != configDigest(t, nw) || !slices.Equal(got.RepoTags, []string{reg.host + "/mv:latest"}) {
		t.Fatalf("new image = %+v", got)
	}
	o, err := e.svc.Get(ctx, configDigest(t, old))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.RepoTags, []string{reg.host + "/mv:stable"}) || !slices.Equal(o.RepoDigests, []string{reg.host + "/mv@" + oldDigest.String()}) {
		t.Fatalf("old image names = %v %v", o.RepoTags, o.RepoDigests)
	}
}

func TestRemoveCollectsGarbage(t *testing.T) {
	reg := startRegistry(t)
	e := newEnv(t, plainHTTPConfig(reg.host))
	ctx := context.Background()
	base := map[string]string{"base": "shared"}
	a := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{}, nil, base, map[string]string{"a": "a"})
	b := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{}, nil, base, map[string]string{"b": "b"}, map[string]string{"b2": "b"})
	reg.push(t, "a:1", a)
	reg.push(t, "b:1", b)
	imgA, err := e.svc.Pull(ctx, reg.host+"/a:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	imgB, err := e.svc.Pull(ctx, reg.host+"/b:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if imgA.Layers[0].ChainID != imgB.Layers[0].ChainID {
		t.Fatal("test images do not share their base layer")
	}
	// A container on image B.
	if _, err := e.sn.Prepare(ctx, "container-1", imgB.ChainID()); err != nil {
		t.Fatal(err)
	}

	if err := e.svc.Remove(ctx, reg.host+"/a:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Get(ctx, imgA.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("image A still there: %v", err)
	}
	if _, err := e.sn.Stat(ctx, imgA.ChainID()); !errdefs.IsNotFound(err) {
		t.Error("A's top layer not collected")
	}
	if _, err := e.sn.Stat(ctx, imgA.Layers[0].ChainID.String()); err != nil {
		t.Error("shared base layer collected")
	}
	if e.svc.content.Exists(imgA.Layers[1].Digest, -1) || e.svc.content.Exists(digest.Digest(imgA.ID), -1) {
		t.Error("A's blobs not collected")
	}
	if !e.svc.content.Exists(imgA.Layers[0].Digest, -1) {
		t.Error("shared blob collected")
	}

	// B is removed by ID, but a container still uses its layers.
	if err := e.svc.Remove(ctx, imgB.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Remove(ctx, imgB.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("second remove: %v", err)
	}
	if _, err := e.sn.Stat(ctx, imgB.ChainID()); err != nil {
		t.Error("layer under a container collected")
	}
	assertNoBlobs(t, e)
	// Container gone: the next collection takes the layers.
	if err := e.sn.Remove(ctx, "container-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if k := e.sn.keys(); len(k) != 0 {
		t.Errorf("snapshots left: %v", k)
	}
}

func TestPinned(t *testing.T) {
	reg := startRegistry(t)
	e := newEnv(t, plainHTTPConfig(reg.host))
	ctx := context.Background()
	img := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{}, nil, map[string]string{"p": "p"})
	reg.push(t, "pause:3", img)
	if _, err := e.svc.Pull(ctx, reg.host+"/pause:3", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetPinned(ctx, reg.host+"/pause:3", true); err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.Pull(ctx, reg.host+"/pause:3", PullOptions{}) // a re-pull keeps the pin
	if err != nil || !got.Pinned {
		t.Fatalf("pinned = %v, %v", got.Pinned, err)
	}
}

func TestUsage(t *testing.T) {
	reg := startRegistry(t)
	e := newEnv(t, plainHTTPConfig(reg.host))
	ctx := context.Background()
	u0, err := e.svc.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	img := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{}, nil, map[string]string{"f": strings.Repeat("u", 100000)})
	reg.push(t, "u:1", img)
	if _, err := e.svc.Pull(ctx, reg.host+"/u:1", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	u1, err := e.svc.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u1.UsedBytes < u0.UsedBytes+100000 || u1.InodesUsed <= u0.InodesUsed || u1.Mountpoint == "" {
		t.Fatalf("usage %+v -> %+v", u0, u1)
	}
}

func TestMirrorsTriedInOrder(t *testing.T) {
	first, second, upstream := startRegistry(t), startRegistry(t), startRegistry(t)
	img := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{}, nil, map[string]string{"f": "x"})
	for _, r := range []*testRegistry{first, second, upstream} {
		r.push(t, "app:1", img)
	}
	cfg := DefaultRegistryConfig()
	cfg.Hosts[upstream.host] = HostConfig{PlainHTTP: true, Mirrors: []Endpoint{{URL: "http://" + first.host}, {URL: "http://" + second.host}}}
	before := map[*testRegistry]int{}
	for _, r := range []*testRegistry{first, second, upstream} {
		r.mu.Lock()
		before[r] = r.requests
		r.mu.Unlock()
	}
	e := newEnv(t, cfg)
	if _, err := e.svc.Pull(context.Background(), upstream.host+"/app:1", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	requests := func(r *testRegistry) int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.requests - before[r]
	}
	if requests(first) == 0 || requests(second) != 0 || requests(upstream) != 0 {
		t.Fatalf("requests: first mirror %d, second %d, upstream %d; want only the first mirror asked",
			requests(first), requests(second), requests(upstream))
	}
}

// TestPullRefusesConfigOver4MiB: an image config larger than 4 MiB (here a label of 5 MiB) is InvalidArgument.
func TestPullRefusesConfigOver4MiB(t *testing.T) {
	reg := startRegistry(t)
	big := buildImage(t, testimage.Gzip, testimage.OCI, v1.Config{Labels: map[string]string{"big": strings.Repeat("x", 5<<20)}}, nil,
		map[string]string{"a": "a"})
	reg.push(t, "app/big:v1", big)
	e := newEnv(t, plainHTTPConfig(reg.host))
	if _, err := e.svc.Pull(context.Background(), reg.host+"/app/big:v1", PullOptions{}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("5 MiB config: %v, want InvalidArgument", err)
	}
}
