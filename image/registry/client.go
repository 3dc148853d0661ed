// Package registry pulls manifests and blobs from OCI/Docker registries, built on go-containerregistry's
// transport (ping, basic and bearer-token authentication) with noded's own endpoint selection: per-host mirrors
// tried in order, then the host itself unless mirrors-only; plain http only where an endpoint says http:// and,
// for a registry on a loopback host that nothing configures, when it does not speak TLS (see loopbackDefault).
// Blob transfers retry transient failures, resume with Range requests and abort a transfer that stalls.
package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/image/reference"
	digest "github.com/opencontainers/go-digest"
)

// Descriptor identifies a manifest or blob.
type Descriptor struct {
	MediaType string
	Digest    digest.Digest
	Size      int64
}

// Client pulls from registries. It is safe for concurrent use and reuses connections across pulls.
type Client struct {
	cfg  atomic.Pointer[Config] // replaced whole by SetConfig
	opts Options

	mu         sync.Mutex
	transports map[bool]*http.Transport // by skipVerify
}

// New returns a client for the configuration cfg.
func New(cfg Config, opts Options) (*Client, error) {
	ncfg, err := cfg.Normalize()
	if err != nil {
		return nil, err
	}
	c := &Client{opts: opts.withDefaults(), transports: map[bool]*http.Transport{}}
	c.cfg.Store(&ncfg)
	return c, nil
}

// SetConfig replaces the mirrors and credentials for pulls that resolve after it returns; pulls already
// connected keep their endpoint. An invalid cfg is refused and the current one kept.
func (c *Client) SetConfig(cfg Config) error {
	ncfg, err := cfg.Normalize()
	if err != nil {
		return err
	}
	c.cfg.Store(&ncfg)
	return nil
}

// Close releases idle connections.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.transports {
		t.CloseIdleConnections()
	}
}

func (c *Client) baseTransport(skipVerify bool) *http.Transport {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.transports[skipVerify]; ok {
		return t
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = c.opts.StallTimeout
	if skipVerify {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // configured per host by the admin
	}
	c.transports[skipVerify] = t
	return t
}

// endpoints lists where ref's repository can be pulled from, in order.
func (c *Client) endpoints(ref reference.Reference) []endpoint {
	hc := c.cfg.Load().Hosts[ref.Domain]
	var eps []endpoint
	for _, m := range hc.Mirrors {
		ep, err := parseEndpoint(m) // validated by Normalize
		if err == nil {
			eps = append(eps, ep)
		}
	}
	if !hc.MirrorsOnly {
		ep := endpoint{host: upstreamHost(ref.Domain), plainHTTP: hc.PlainHTTP, skipVerify: hc.SkipVerify}
		if !hc.reachConfigured() {
			ep = loopbackDefault(ep)
		}
		eps = append(eps, ep)
	}
	return eps
}

// authFor picks the credentials for an endpoint: the request's when they are for this registry (their server
// address is empty and the endpoint is the registry itself, or the address names the endpoint's host), else the
// configured ones of the endpoint's host (or, for the registry itself, of the reference's domain).
// Credentials given for a registry are never sent to a mirror unless addressed to it.
func (c *Client) authFor(ref reference.Reference, ep endpoint, creds *Credentials) authn.Authenticator {
	if !creds.Empty() {
		sa := serverAddressHost(creds.ServerAddress)
		if (sa == "" && !ep.mirror) || sa == canonicalHost(ep.host) || (!ep.mirror && sa == ref.Domain) {
			return toAuthn(creds)
		}
	}
	cfg := c.cfg.Load()
	if hc, ok := cfg.Hosts[canonicalHost(ep.host)]; ok && !hc.Auth.Empty() {
		return toAuthn(hc.Auth)
	}
	if !ep.mirror {
		if hc, ok := cfg.Hosts[ref.Domain]; ok && !hc.Auth.Empty() {
			return toAuthn(hc.Auth)
		}
	}
	return authn.Anonymous
}

func toAuthn(c *Credentials) authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{
		Username: c.Username, Password: c.Password, Auth: c.Auth,
		IdentityToken: c.IdentityToken, RegistryToken: c.RegistryToken,
	})
}

// Repository is an authenticated connection to one repository on one endpoint.
type Repository struct {
	client *Client
	ep     endpoint
	repo   name.Repository
	rt     http.RoundTripper
	ref    reference.Reference
}

// Endpoint describes where the repository is served from, e.g. "http://127.0.0.1:5000/prefix".
func (r *Repository) Endpoint() string { return r.ep.String() }

// Name is the repository as the endpoint knows it, e.g. "127.0.0.1:5000/library/busybox".
func (r *Repository) Name() string { return r.repo.Name() }

// Resolve finds the manifest (or index) ref names, trying each endpoint of its host in order, and returns the
// repository that served it with the manifest's descriptor and bytes. Errors carry errdefs kinds: NotFound
// for an unknown image, Unauthenticated/PermissionDenied for refused credentials, Unavailable for an
// unreachable registry; with several endpoints the kind is that of the last one tried.
func (c *Client) Resolve(ctx context.Context, ref reference.Reference, creds *Credentials) (*Repository, Descriptor, []byte, error) {
	var errs []string
	var last error
	for _, ep := range c.endpoints(ref) {
		repo, err := c.connect(ctx, ref, ep, creds)
		if err == nil {
			var desc Descriptor
			var data []byte
			desc, data, err = repo.manifest(ctx, ref.Object())
			if err == nil {
				if ref.Digest != "" && desc.Digest != ref.Digest {
					err = errdefs.InvalidArgument("manifest digest mismatch: got %s, want %s", desc.Digest, ref.Digest)
				} else {
					return repo, desc, data, nil
				}
			}
		}
		if ctx.Err() != nil {
			return nil, Descriptor{}, nil, ctx.Err()
		}
		last = err
		errs = append(errs, fmt.Sprintf("%s: %v", ep, err))
	}
	if last == nil {
		return nil, Descriptor{}, nil, errdefs.Unavailable("no endpoint configured for %s", ref.Domain)
	}
	if len(errs) == 1 {
		return nil, Descriptor{}, nil, fmt.Errorf("pull %s: %w", ref, last)
	}
	return nil, Descriptor{}, nil, fmt.Errorf("pull %s: every endpoint failed (%s): %w", ref, strings.Join(errs[:len(errs)-1], "; "), last)
}

// connect pings the endpoint and sets up authentication for pulling the repository. An endpoint with
// httpFallback that answers the TLS handshake with something else than TLS is connected to again over plain
// http, with the same credentials (the same host and port).
func (c *Client) connect(ctx context.Context, ref reference.Reference, ep endpoint, creds *Credentials) (*Repository, error) {
	repo, err := c.connectOnce(ctx, ref, ep, creds)
	if err != nil && ep.httpFallback && !ep.plainHTTP && notTLS(err) && ctx.Err() == nil {
		ep.plainHTTP = true
		repo, err = c.connectOnce(ctx, ref, ep, creds)
	}
	if err != nil {
		return nil, classify(err)
	}
	return repo, nil
}

// notTLS reports whether a request over https failed because the server does not speak TLS: its answer to the
// ClientHello is not a TLS record (a plain HTTP server answers "HTTP/1.1 400 Bad Request", which http.Client
// reports as ErrSchemeMismatch).
func notTLS(err error) bool {
	var rh tls.RecordHeaderError
	return errors.Is(err, http.ErrSchemeMismatch) || errors.As(err, &rh)
}

// connectOnce is connect without the fallback; its errors are not classified.
func (c *Client) connectOnce(ctx context.Context, ref reference.Reference, ep endpoint, creds *Credentials) (*Repository, error) {
	path := ref.Path
	if ep.prefix != "" {
		path = ep.prefix + "/" + path
	}
	var opts []name.Option
	if ep.plainHTTP {
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(ep.host+"/"+path, opts...)
	if err != nil {
		return nil, errdefs.InvalidArgument("repository %s on %s: %v", path, ep, err)
	}
	var rt http.RoundTripper = &schemeEnforcer{host: ep.host, plainHTTP: ep.plainHTTP, selfOnly: ep.loopback && ep.plainHTTP,
		inner: c.baseTransport(ep.skipVerify)}
	rt = transport.NewUserAgent(rt, c.opts.UserAgent)
	rt = transport.NewRetry(rt,
		transport.WithRetryBackoff(transport.Backoff{Duration: c.opts.Backoff, Factor: 2, Jitter: 0.1, Steps: c.opts.Attempts}),
		transport.WithRetryPredicate(transient),
		transport.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout))
	authed, err := transport.NewWithContext(ctx, repo.Registry, c.authFor(ref, ep, creds), rt, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	return &Repository{client: c, ep: ep, repo: repo, rt: authed, ref: ref}, nil
}

// Manifest fetches the manifest with digest d (a child of an index) and verifies it.
func (r *Repository) Manifest(ctx context.Context, d digest.Digest) (Descriptor, []byte, error) {
	desc, data, err := r.manifest(ctx, d.String())
	if err != nil {
		return Descriptor{}, nil, fmt.Errorf("manifest %s from %s: %w", d, r.ep, err)
	}
	if desc.Digest != d {
		return Descriptor{}, nil, errdefs.InvalidArgument("manifest digest mismatch from %s: got %s, want %s", r.ep, desc.Digest, d)
	}
	return desc, data, nil
}

// MaxManifestSize is the most noded reads of a manifest or index; larger ones are refused.
const MaxManifestSize = 4 << 20

// manifestMediaTypes are the Accept header of manifest requests (schema 1 only to refuse it clearly).
var manifestMediaTypes = []string{
	"application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.v1+prettyjws", "application/vnd.docker.distribution.manifest.v1+json",
}

// manifest fetches the manifest or index object (a tag or digest) and reads at most MaxManifestSize bytes of it.
func (r *Repository) manifest(ctx context.Context, object string) (Descriptor, []byte, error) {
	u := url.URL{Scheme: "https", Host: r.ep.host, Path: fmt.Sprintf("/v2/%s/manifests/%s", r.repo.RepositoryStr(), object)}
	if r.ep.plainHTTP {
		u.Scheme = "http"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Descriptor{}, nil, errdefs.InvalidArgument("manifest %s: %v", object, err)
	}
	req.Header.Set("Accept", strings.Join(manifestMediaTypes, ","))
	resp, err := (&http.Client{Transport: r.rt}).Do(req)
	if err != nil {
		return Descriptor{}, nil, classify(err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return Descriptor{}, nil, classify(err)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return Descriptor{}, nil, classify(err)
	}
	if len(data) > MaxManifestSize {
		return Descriptor{}, nil, errdefs.InvalidArgument("manifest %s is larger than %d bytes", object, MaxManifestSize)
	}
	mediaType, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	// The digest is computed locally from the bytes, never taken from the registry's headers.
	return Descriptor{MediaType: strings.TrimSpace(mediaType), Digest: digest.FromBytes(data), Size: int64(len(data))}, data, nil
}

// ReadBlob fetches a small blob (at most limit bytes) and verifies its digest and size.
func (r *Repository) ReadBlob(ctx context.Context, desc Descriptor, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, errdefs.InvalidArgument("blob %s too large: %d bytes (limit %d)", desc.Digest, desc.Size, limit)
	}
	rc, err := r.OpenBlob(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != desc.Size {
		return nil, errdefs.InvalidArgument("blob %s: size mismatch: got %d bytes, expected %d", desc.Digest, len(data), desc.Size)
	}
	if got := desc.Digest.Algorithm().FromBytes(data); got != desc.Digest {
		return nil, errdefs.InvalidArgument("blob digest mismatch: got %s, expected %s", got, desc.Digest)
	}
	return data, nil
}

// schemeEnforcer sends every request to the endpoint's host with the configured scheme. go-containerregistry
// uses plain http for loopback and private addresses on its own; noded only does where the config says so (or
// loopbackDefault decided it). With selfOnly (a loopback registry reached over plain http without being
// configured for it), plain http goes to that host alone: a token realm or redirect elsewhere over plain http
// is refused, so the credentials sent to the registry's token service do not leave this machine unencrypted.
type schemeEnforcer struct {
	host      string
	plainHTTP bool
	selfOnly  bool
	inner     http.RoundTripper
}

func (s *schemeEnforcer) RoundTrip(req *http.Request) (*http.Response, error) {
	if s.selfOnly && req.URL.Scheme == "http" && !sameHost(req.URL.Host, s.host) {
		return nil, errdefs.PermissionDenied("plain http to %s refused: only the loopback registry %s itself is "+
			"reached over plain http without configuration", req.URL.Host, s.host)
	}
	want := "https"
	if s.plainHTTP {
		want = "http"
	}
	if sameHost(req.URL.Host, s.host) && req.URL.Scheme != want {
		r2 := req.Clone(req.Context())
		r2.URL.Scheme = want
		return s.inner.RoundTrip(r2)
	}
	return s.inner.RoundTrip(req)
}

func sameHost(a, b string) bool {
	strip := func(h string) string {
		h = strings.TrimSuffix(h, ":443")
		return strings.TrimSuffix(h, ":80")
	}
	return strings.EqualFold(strip(a), strip(b))
}

var errStalled = errors.New("transfer stalled")

// transient reports whether a failed request or transfer is worth retrying.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.Temporary()
	}
	if errors.Is(err, errStalled) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// classify gives registry errors their errdefs kind.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) {
		has := func(codes ...transport.ErrorCode) bool {
			for _, d := range te.Errors {
				for _, c := range codes {
					if d.Code == c {
						return true
					}
				}
			}
			return false
		}
		switch {
		case te.StatusCode == http.StatusUnauthorized || has(transport.UnauthorizedErrorCode):
			return errdefs.Unauthenticated("registry refused the credentials or requires authentication: %v", err)
		case te.StatusCode == http.StatusForbidden || has(transport.DeniedErrorCode):
			return errdefs.PermissionDenied("registry denied access: %v", err)
		case te.StatusCode == http.StatusNotFound || has(transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode):
			return errdefs.NotFound("not found in registry: %v", err)
		case te.StatusCode == http.StatusTooManyRequests || has(transport.TooManyRequestsErrorCode):
			return errdefs.ResourceExhausted("registry rate limit: %v", err)
		case te.StatusCode >= 500:
			return errdefs.Unavailable("registry error: %v", err)
		}
		return fmt.Errorf("registry: %w", err)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) {
		return errdefs.Unavailable("registry unreachable: %v", err)
	}
	return err
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
