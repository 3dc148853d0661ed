package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/image/reference"
	digest "github.com/opencontainers/go-digest"
)

func TestNormalizeConfig(t *testing.T) {
	c, err := Config{Hosts: map[string]HostConfig{
		"index.docker.io": {Mirrors: []Endpoint{{URL: "http://127.0.0.1:5000/v2"}, {URL: "https://m.example.com/cache/"}}},
	}}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	hc, ok := c.Hosts["docker.io"]
	if !ok || !hc.Mirrors[0].PlainHTTP || hc.Mirrors[1].PlainHTTP {
		t.Fatalf("normalised = %+v", c)
	}
	ep, _ := parseEndpoint(hc.Mirrors[1])
	if ep.prefix != "cache" || ep.host != "m.example.com" {
		t.Fatalf("endpoint = %+v", ep)
	}
	for _, bad := range []Config{
		{Hosts: map[string]HostConfig{"x": {Mirrors: []Endpoint{{URL: "ftp://x"}}}}},
		{Hosts: map[string]HostConfig{"x": {Mirrors: []Endpoint{{URL: "127.0.0.1:5000"}}}}},
		{Hosts: map[string]HostConfig{"x": {MirrorsOnly: true}}},
		{Hosts: map[string]HostConfig{"a/b": {}}},
	} {
		if _, err := bad.Normalize(); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Normalize(%+v) = %v", bad, err)
		}
	}
	if h := serverAddressHost("https://index.docker.io/v1/"); h != "docker.io" {
		t.Errorf("serverAddressHost = %q", h)
	}
}

func TestEndpointsOrder(t *testing.T) {
	c, _ := New(Config{Hosts: map[string]HostConfig{"docker.io": {Mirrors: []Endpoint{{URL: "http://a"}, {URL: "https://b/p"}}}}}, Options{})
	ref, _ := reference.Parse("busybox")
	var got []string
	for _, ep := range c.endpoints(ref) {
		got = append(got, ep.String())
	}
	if strings.Join(got, " ") != "http://a https://b/p https://registry-1.docker.io" {
		t.Fatalf("endpoints = %v", got)
	}
}

func TestTLSVerification(t *testing.T) {
	srv := httptest.NewTLSServer(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host + "/tls/img:1")
	if err := remote.Write(ref, img, remote.WithTransport(srv.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	r, _ := reference.Parse(host + "/tls/img:1")
	ctx := context.Background()

	strict, _ := New(DefaultConfig(), Options{Attempts: 1})
	if _, _, _, err := strict.Resolve(ctx, r, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate accepted: %v", err)
	}
	lax, _ := New(Config{Hosts: map[string]HostConfig{host: {SkipVerify: true}}}, Options{Attempts: 1})
	repo, desc, _, err := lax.Resolve(ctx, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if desc.Digest.String() != want.String() || !strings.HasPrefix(repo.Endpoint(), "https://") {
		t.Fatalf("resolved %s at %s", desc.Digest, repo.Endpoint())
	}
	cfgName, _ := img.ConfigName()
	m, _ := img.Manifest()
	data, err := repo.ReadBlob(ctx, Descriptor{Digest: digest.Digest(cfgName.String()), Size: m.Config.Size}, 1<<20)
	if err != nil || digest.FromBytes(data).String() != cfgName.String() {
		t.Fatalf("ReadBlob: %v", err)
	}
	// A wrong size or digest is caught.
	if _, err := repo.ReadBlob(ctx, Descriptor{Digest: digest.Digest(cfgName.String()), Size: m.Config.Size + 1}, 1<<20); err == nil {
		t.Fatal("size mismatch not detected")
	}
	if _, err := repo.ReadBlob(ctx, Descriptor{Digest: digest.FromString("nope"), Size: 4}, 1<<20); !errdefs.IsNotFound(err) {
		t.Fatalf("unknown blob: %v", err)
	}
}

func TestErrorKinds(t *testing.T) {
	for code, kind := range map[int]error{
		http.StatusUnauthorized:       errdefs.ErrUnauthenticated,
		http.StatusForbidden:          errdefs.ErrPermissionDenied,
		http.StatusNotFound:           errdefs.ErrNotFound,
		http.StatusServiceUnavailable: errdefs.ErrUnavailable,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				return
			}
			w.WriteHeader(code)
		}))
		host := strings.TrimPrefix(srv.URL, "http://")
		c, _ := New(Config{Hosts: map[string]HostConfig{host: {PlainHTTP: true}}}, Options{Attempts: 1, Backoff: 1})
		r, _ := reference.Parse(host + "/x:1")
		_, _, _, err := c.Resolve(context.Background(), r, nil)
		if !errors.Is(err, kind) {
			t.Errorf("status %d: %v, want %v", code, err, kind)
		}
		srv.Close()
	}
}

// TestManifestReadIsLimited: a registry streaming an endless manifest gets InvalidArgument after noded read
// MaxManifestSize bytes; the read itself stops (the server could write far less than the 100 MiB
// go-containerregistry would read).
func TestManifestReadIsLimited(t *testing.T) {
	var written atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		chunk := bytes.Repeat([]byte(" "), 64<<10)
		for written.Load() < 200<<20 {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c, _ := New(Config{Hosts: map[string]HostConfig{host: {PlainHTTP: true}}}, Options{Attempts: 1, Backoff: 1})
	defer c.Close()
	r, _ := reference.Parse(host + "/x:1")
	_, _, _, err := c.Resolve(context.Background(), r, nil)
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("endless manifest: %v, want InvalidArgument", err)
	}
	srv.CloseClientConnections()
	// What was written beyond the limit sits in socket buffers: a few MiB at most.
	if w := written.Load(); w > 32<<20 {
		t.Fatalf("the server wrote %d MiB of a manifest limited to %d MiB", w>>20, MaxManifestSize>>20)
	}
}
