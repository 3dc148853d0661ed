package registry

import (
	"context"
	"encoding/json"
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
	"github.com/noded/noded/image/reference"
)

// TestLoopbackDefault: how the registry host itself is reached, by host and configuration. Only loopback hosts
// without mirrors, plain_http or skip_verify get the loopback default; credentials alone do not count.
func TestLoopbackDefault(t *testing.T) {
	auth := &Credentials{Username: "u", Password: "p"}
	for _, tc := range []struct {
		ref      string
		hc       *HostConfig
		want     string // the host endpoint
		fallback bool
	}{
		{"localhost:5000/pause:testing", nil, "https://localhost:5000", true},
		{"127.0.0.1:5000/x", nil, "https://127.0.0.1:5000", true},
		{"127.1.2.3:5000/x", nil, "https://127.1.2.3:5000", true},
		{"[::1]:5000/x", nil, "https://[::1]:5000", true},
		{"localhost:80/x", nil, "http://localhost:80", false},
		{"localhost:443/x", nil, "https://localhost:443", false},
		{"localhost/x", nil, "https://localhost", false},
		{"[::1]/x", nil, "https://[::1]", false},
		{"localhost:5000/x", &HostConfig{Auth: auth}, "https://localhost:5000", true},
		// Not loopback.
		{"registry.example.com:5000/x", nil, "https://registry.example.com:5000", false},
		{"10.0.0.5:5000/x", nil, "https://10.0.0.5:5000", false},
		{"128.0.0.1:5000/x", nil, "https://128.0.0.1:5000", false},
		{"localhost.example.com:5000/x", nil, "https://localhost.example.com:5000", false},
		{"[::2]:5000/x", nil, "https://[::2]:5000", false},
		// Configured: exactly as configured.
		{"127.0.0.1:5000/x", &HostConfig{SkipVerify: true}, "https://127.0.0.1:5000", false},
		{"127.0.0.1:5000/x", &HostConfig{PlainHTTP: true}, "http://127.0.0.1:5000", false},
		{"localhost:5000/x", &HostConfig{Mirrors: []Endpoint{{URL: "https://127.0.0.1:6000"}}}, "https://localhost:5000", false},
	} {
		cfg := DefaultConfig()
		if tc.hc != nil {
			cfg.Hosts[strings.Split(tc.ref, "/")[0]] = *tc.hc
		}
		c, err := New(cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ref, err := reference.Parse(tc.ref)
		if err != nil {
			t.Fatalf("%s: %v", tc.ref, err)
		}
		eps := c.endpoints(ref)
		ep := eps[len(eps)-1]
		if ep.String() != tc.want || ep.httpFallback != tc.fallback || ep.mirror {
			t.Errorf("%s with %+v: endpoint %s (fallback %v), want %s (fallback %v)", tc.ref, tc.hc, ep, ep.httpFallback, tc.want, tc.fallback)
		}
		for _, m := range eps[:len(eps)-1] {
			if m.httpFallback || m.loopback {
				t.Errorf("%s: mirror %s got the loopback default", tc.ref, m)
			}
		}
	}
}

// tokenRegistry is a plain-http registry on loopback that wants a bearer token from the realm it names; the
// token service (on the same server) takes basic credentials u:p.
type tokenRegistry struct {
	srv         *httptest.Server
	realm       atomic.Pointer[string]
	tokenAsks   atomic.Int64
	tokenWithPW atomic.Int64
}

func startTokenRegistry(t *testing.T) *tokenRegistry {
	tr := &tokenRegistry{}
	inner := ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))
	var open atomic.Bool
	open.Store(true)
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			tr.tokenAsks.Add(1)
			if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			tr.tokenWithPW.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]string{"token": "T"})
			return
		}
		if !open.Load() && r.Header.Get("Authorization") != "Bearer T" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+*tr.realm.Load()+`",service="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(tr.srv.Close)
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(tr.host()+"/tok/img:1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	open.Store(false)
	return tr
}

func (tr *tokenRegistry) host() string { return strings.TrimPrefix(tr.srv.URL, "http://") }

// TestLoopbackFallbackKeepsPlainHTTPOnItself: over the plain-http fallback the credentials go to the token
// service when it is on the registry's own host and port; a token realm elsewhere over plain http is refused
// before any request is sent there.
func TestLoopbackFallbackKeepsPlainHTTPOnItself(t *testing.T) {
	tr := startTokenRegistry(t)
	ctx := context.Background()
	c, _ := New(DefaultConfig(), Options{Attempts: 1, Backoff: 1})
	defer c.Close()
	ref, _ := reference.Parse(tr.host() + "/tok/img:1")
	creds := &Credentials{Username: "u", Password: "p"}

	same := "http://" + tr.host() + "/token"
	tr.realm.Store(&same)
	repo, _, _, err := c.Resolve(ctx, ref, creds)
	if err != nil {
		t.Fatalf("token realm on the registry itself: %v", err)
	}
	if repo.Endpoint() != "http://"+tr.host() || tr.tokenWithPW.Load() == 0 {
		t.Fatalf("endpoint %s, %d token requests with the password", repo.Endpoint(), tr.tokenWithPW.Load())
	}

	// The same server under another name: not the registry's host, so not over plain http.
	other := "http://" + strings.Replace(tr.host(), "127.0.0.1", "localhost", 1) + "/token"
	tr.realm.Store(&other)
	before := tr.tokenAsks.Load()
	if _, _, _, err := c.Resolve(ctx, ref, creds); err == nil || !strings.Contains(err.Error(), "plain http to") {
		t.Fatalf("token realm %s over plain http: %v, want refused", other, err)
	}
	if n := tr.tokenAsks.Load() - before; n != 0 {
		t.Fatalf("%d requests reached the token realm on another host", n)
	}
}
