package registry

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/noded/noded/errdefs"
)

// Config is the registry configuration of the node: per-host mirrors, TLS and credentials.
type Config struct {
	// Hosts maps a registry host as it appears in image references ("docker.io", "registry.k8s.io",
	// "127.0.0.1:5000") to its configuration. Hosts without an entry are reached over https at their own name,
	// except loopback hosts (see loopbackDefault).
	Hosts map[string]HostConfig
}

// HostConfig configures one registry host.
type HostConfig struct {
	// Mirrors are tried in order before the host itself.
	Mirrors []Endpoint
	// MirrorsOnly: never fall back to the host itself when every mirror failed.
	MirrorsOnly bool
	// Auth are the credentials for this host, used when the pull request carries none for it. They are also
	// used for a mirror whose endpoint host has this entry.
	Auth *Credentials
	// PlainHTTP: the host itself speaks plain http (an "insecure registry"). Mirrors say so in their URL.
	PlainHTTP bool
	// SkipVerify: do not verify the host's TLS certificate.
	SkipVerify bool
}

// Endpoint is one place to pull from.
type Endpoint struct {
	// URL is scheme://host[:port][/path]; the scheme is http or https. A path is a prefix of the repository
	// (e.g. a pull-through cache at https://cache.example.com/dockerhub serves docker.io/library/busybox as
	// repository dockerhub/library/busybox); a trailing "/v2" is ignored.
	URL string
	// PlainHTTP is derived from an http:// URL by Normalize; setting it alone does not downgrade https.
	PlainHTTP bool
	// SkipVerify: do not verify the endpoint's TLS certificate.
	SkipVerify bool
}

// Credentials authenticate to a registry. They mirror the CRI AuthConfig.
type Credentials struct {
	Username      string
	Password      string
	Auth          string // base64("username:password")
	IdentityToken string // exchanged for an access token (OAuth2 refresh token)
	RegistryToken string // sent as a bearer token as is
	// ServerAddress is the registry these credentials are for ("" = the registry of the image being pulled).
	ServerAddress string
}

// Empty reports whether c carries no credential.
func (c *Credentials) Empty() bool {
	return c == nil || (c.Username == "" && c.Password == "" && c.Auth == "" && c.IdentityToken == "" && c.RegistryToken == "")
}

// DefaultConfig is the configuration without mirrors or credentials: every registry over https.
func DefaultConfig() Config { return Config{Hosts: map[string]HostConfig{}} }

// Options tune the client's network behaviour.
type Options struct {
	// StallTimeout aborts (and retries) a transfer that received no byte for this long; it also bounds the wait
	// for response headers. It is not a limit on the total time of a download.
	StallTimeout time.Duration
	// Attempts is the number of tries of a request or blob transfer on transient errors (5xx, 429, connection
	// reset, stall).
	Attempts int
	// Backoff is the wait before the second try; it doubles on each further try.
	Backoff time.Duration
	// UserAgent is sent with every request.
	UserAgent string
}

// DefaultOptions are the options used for zero fields.
func DefaultOptions() Options {
	return Options{StallTimeout: time.Minute, Attempts: 5, Backoff: 500 * time.Millisecond, UserAgent: "noded"}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.StallTimeout <= 0 {
		o.StallTimeout = d.StallTimeout
	}
	if o.Attempts <= 0 {
		o.Attempts = d.Attempts
	}
	if o.Backoff <= 0 {
		o.Backoff = d.Backoff
	}
	if o.UserAgent == "" {
		o.UserAgent = d.UserAgent
	}
	return o
}

// endpoint is a parsed Endpoint.
type endpoint struct {
	host       string // host[:port]
	prefix     string // repository prefix, "" or "a/b"
	plainHTTP  bool
	skipVerify bool
	mirror     bool
	// loopback: the registry itself on a loopback host without configuration (see loopbackDefault). With
	// httpFallback, it is asked over https first and over plain http when it answers TLS with something else.
	loopback     bool
	httpFallback bool
}

func (e endpoint) String() string {
	s := "https://"
	if e.plainHTTP {
		s = "http://"
	}
	s += e.host
	if e.prefix != "" {
		s += "/" + e.prefix
	}
	return s
}

// Normalize validates the configuration and fills in derived fields (Endpoint.PlainHTTP from the scheme).
func (c Config) Normalize() (Config, error) {
	out := Config{Hosts: make(map[string]HostConfig, len(c.Hosts))}
	for host, hc := range c.Hosts {
		if host == "" || strings.ContainsAny(host, "/ ") {
			return Config{}, errdefs.InvalidArgument("registry config: invalid host %q", host)
		}
		mirrors := make([]Endpoint, 0, len(hc.Mirrors))
		for _, m := range hc.Mirrors {
			ep, err := parseEndpoint(m)
			if err != nil {
				return Config{}, fmt.Errorf("registry config for %s: %w", host, err)
			}
			m.PlainHTTP = ep.plainHTTP
			mirrors = append(mirrors, m)
		}
		if hc.MirrorsOnly && len(mirrors) == 0 {
			return Config{}, errdefs.InvalidArgument("registry config for %s: mirrors_only without mirrors", host)
		}
		hc.Mirrors = mirrors
		out.Hosts[canonicalHost(host)] = hc
	}
	return out, nil
}

func parseEndpoint(e Endpoint) (endpoint, error) {
	u, err := url.Parse(e.URL)
	if err != nil {
		return endpoint{}, errdefs.InvalidArgument("invalid mirror URL %q: %v", e.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return endpoint{}, errdefs.InvalidArgument("invalid mirror URL %q: scheme must be http or https", e.URL)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return endpoint{}, errdefs.InvalidArgument("invalid mirror URL %q: want scheme://host[:port][/path]", e.URL)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix == "v2" {
		prefix = ""
	}
	prefix = strings.TrimSuffix(prefix, "/v2")
	return endpoint{host: u.Host, prefix: prefix, plainHTTP: u.Scheme == "http", skipVerify: e.SkipVerify, mirror: true}, nil
}

// reachConfigured reports whether hc says how to reach its host (mirrors, plain_http, skip_verify); credentials
// alone do not.
func (hc HostConfig) reachConfigured() bool {
	return len(hc.Mirrors) > 0 || hc.MirrorsOnly || hc.PlainHTTP || hc.SkipVerify
}

// loopbackDefault is how the registry host itself is reached when it is on this machine ("localhost",
// 127.0.0.0/8 or ::1, with or without a port) and nothing configures how to reach it: port 80 over plain http,
// no port or port 443 over https only, any other port over https first and, when the server answers the TLS
// handshake with something that is not TLS (a plain HTTP server), over plain http. TLS certificates are
// verified as for any host (a server that speaks TLS must present a valid one). Only
// processes of this machine can listen on a loopback address, and they could equally serve plain http on it.
// Other hosts are unchanged (https unless configured).
func loopbackDefault(ep endpoint) endpoint {
	host, port := splitHost(ep.host)
	if !isLoopback(host) {
		return ep
	}
	ep.loopback = true
	switch port {
	case "80":
		ep.plainHTTP = true
	case "", "443":
	default:
		ep.httpFallback = true
	}
	return ep
}

// splitHost splits hostport (host, host:port, [v6] or [v6]:port) into the host, without brackets, and the port
// ("" when it has none).
func splitHost(hostport string) (host, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		return hostport[1 : len(hostport)-1], ""
	}
	return hostport, ""
}

// isLoopback reports whether host (no port) is "localhost" or a loopback address (127.0.0.0/8, ::1).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// canonicalHost maps Docker Hub's aliases to "docker.io".
func canonicalHost(h string) string {
	switch h {
	case "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return h
}

// upstreamHost is the host serving the registry API for a reference domain.
func upstreamHost(domain string) string {
	if domain == "docker.io" {
		return "registry-1.docker.io"
	}
	return domain
}

// serverAddressHost extracts the host of a CRI AuthConfig.ServerAddress ("https://index.docker.io/v1/",
// "registry.example.com", "registry.example.com:5000/path").
func serverAddressHost(addr string) string {
	addr = strings.TrimSpace(addr)
	if i := strings.Index(addr, "://"); i >= 0 {
		addr = addr[i+3:]
	}
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr = addr[:i]
	}
	return canonicalHost(addr)
}
