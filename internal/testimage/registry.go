package testimage

import (
	"crypto/subtle"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// RegistryConfig configures an in-process test registry.
type RegistryConfig struct {
	// Username and Password, if Username is set, are required as HTTP basic
	// auth on every request; others get 401 with a Basic challenge.
	Username, Password string
	// Counter, if set, records blob GETs.
	Counter *BlobCounter
}

// BlobCounter counts GET requests for blobs, per digest. Safe for concurrent use.
type BlobCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

// NewBlobCounter returns an empty counter.
func NewBlobCounter() *BlobCounter { return &BlobCounter{counts: map[string]int{}} }

func (c *BlobCounter) add(digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[digest]++
}

// Count returns how many times the blob with digest ("sha256:...") was fetched.
func (c *BlobCounter) Count(digest string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[digest]
}

// Counts returns a copy of all counts, by digest.
func (c *BlobCounter) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// Digests returns the fetched digests, sorted.
func (c *BlobCounter) Digests() []string {
	counts := c.Counts()
	out := make([]string, 0, len(counts))
	for k := range counts {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Reset forgets all counts.
func (c *BlobCounter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = map[string]int{}
}

// BasicRealm is the realm of the auth registry's challenge.
const BasicRealm = "noded-test-registry"

// RegistryHandler returns an in-memory OCI distribution registry handler
// (go-containerregistry's) wrapped as cfg asks.
func RegistryHandler(cfg RegistryConfig) http.Handler {
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if c := cfg.Counter; c != nil {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				if i := strings.LastIndex(r.URL.Path, "/blobs/"); i >= 0 && strings.HasPrefix(r.URL.Path, "/v2/") {
					if d := r.URL.Path[i+len("/blobs/"):]; strings.Contains(d, ":") {
						c.add(d)
					}
				}
			}
			inner.ServeHTTP(w, r)
		})
	}
	if cfg.Username != "" {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(cfg.Username)) != 1 ||
				subtle.ConstantTimeCompare([]byte(p), []byte(cfg.Password)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="`+BasicRealm+`"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
			inner.ServeHTTP(w, r)
		})
	}
	return h
}

// StartRegistryWith serves RegistryHandler(cfg) on 127.0.0.1:0 until the
// test ends and returns its host:port.
func StartRegistryWith(t testing.TB, cfg RegistryConfig) string {
	t.Helper()
	srv := httptest.NewServer(RegistryHandler(cfg))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// StartRegistry starts an anonymous in-memory registry for the test and
// returns its host:port.
func StartRegistry(t testing.TB) string {
	t.Helper()
	return StartRegistryWith(t, RegistryConfig{})
}

// StartAuthRegistry starts a registry requiring basic auth with username and
// password and returns its host:port.
func StartAuthRegistry(t testing.TB, username, password string) string {
	t.Helper()
	return StartRegistryWith(t, RegistryConfig{Username: username, Password: password})
}

// StartCountingRegistry starts a registry that counts blob GETs per digest.
func StartCountingRegistry(t testing.TB) (string, *BlobCounter) {
	t.Helper()
	c := NewBlobCounter()
	return StartRegistryWith(t, RegistryConfig{Counter: c}), c
}
