// Package streaming serves the CRI's streaming endpoints (exec, attach, port-forward) over HTTP
// with the SPDY and WebSocket protocols of k8s.io/cri-streaming. The CRI RPCs Exec, Attach and
// PortForward hand out one-time URLs of this server (GetExec, GetAttach, GetPortForward); the
// work behind a URL is done by a cri-streaming Runtime, normally this package's Runtime.
//
// Unlike cri-streaming's own Start, a Server learns when a client's connection goes away: the
// request context of a stream ends when its connection is closed or read fails, so that an exec
// whose client vanished is killed.
package streaming

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	crist "k8s.io/cri-streaming/pkg/streaming"

	"github.com/noded/noded/errdefs"
)

// DefaultAddr is where a Server listens when Config.Addr is empty: a free loopback port.
const DefaultAddr = "127.0.0.1:0"

// Config configures a Server. Zero durations and empty protocol lists take cri-streaming's defaults
// (SPDY v1-v5 channel protocols and WebSockets for remote commands; port-forward v1).
type Config struct {
	Addr string // host:port to listen on; DefaultAddr when empty
	// BaseURL prefixes the URLs handed out; default http(s)://<listening address>.
	BaseURL *url.URL
	// TLSCertFile and TLSKeyFile enable TLS (both or neither). TLSConfig, if set, is used instead.
	TLSCertFile, TLSKeyFile string
	TLSConfig               *tls.Config

	StreamIdleTimeout     time.Duration
	StreamCreationTimeout time.Duration

	SupportedRemoteCommandProtocols []string
	SupportedPortForwardProtocols   []string
}

// stopTimeout bounds how long Stop waits for stream handlers after closing their connections.
const stopTimeout = 10 * time.Second

// Server is the streaming HTTP server.
type Server struct {
	cri     crist.Server
	ln      *connTracker
	httpSrv *http.Server
	url     *url.URL

	handlers sync.WaitGroup // in-flight HTTP handlers (stream sessions)

	mu      sync.Mutex
	started bool
	stopped bool
	served  chan struct{} // closed when Serve returned
}

// New listens on cfg.Addr and prepares (but does not start) serving rt.
func New(cfg Config, rt crist.Runtime) (*Server, error) {
	if rt == nil {
		return nil, errdefs.InvalidArgument("streaming: nil runtime")
	}
	tlsCfg := cfg.TLSConfig
	if tlsCfg == nil && (cfg.TLSCertFile != "" || cfg.TLSKeyFile != "") {
		if cfg.TLSCertFile == "" || cfg.TLSKeyFile == "" {
			return nil, errdefs.InvalidArgument("streaming: TLS needs both a certificate and a key file")
		}
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, errdefs.InvalidArgument("streaming: load TLS key pair: %v", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("streaming: listen on %s: %w", addr, err)
	}
	s := &Server{ln: newConnTracker(raw), served: make(chan struct{})}

	base := cfg.BaseURL
	if base == nil {
		base = &url.URL{Scheme: "http", Host: raw.Addr().String()}
		if tlsCfg != nil {
			base.Scheme = "https"
		}
	}
	s.url = base
	ccfg := crist.DefaultConfig
	ccfg.Addr = raw.Addr().String()
	ccfg.BaseURL = base
	ccfg.TLSConfig = tlsCfg
	if cfg.StreamIdleTimeout > 0 {
		ccfg.StreamIdleTimeout = cfg.StreamIdleTimeout
	}
	if cfg.StreamCreationTimeout > 0 {
		ccfg.StreamCreationTimeout = cfg.StreamCreationTimeout
	}
	if len(cfg.SupportedRemoteCommandProtocols) > 0 {
		ccfg.SupportedRemoteCommandProtocols = cfg.SupportedRemoteCommandProtocols
	}
	if len(cfg.SupportedPortForwardProtocols) > 0 {
		ccfg.SupportedPortForwardProtocols = cfg.SupportedPortForwardProtocols
	}
	s.cri, err = crist.NewServer(ccfg, rt)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("streaming: %w", err)
	}

	var ln net.Listener = s.ln
	if tlsCfg != nil {
		tlsCfg = tlsCfg.Clone()
		tlsCfg.NextProtos = []string{"http/1.1"} // the upgrades need HTTP/1.1
		ln = tls.NewListener(s.ln, tlsCfg)
	}
	s.httpSrv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 30 * time.Second,
		ConnContext:       connContext,
	}
	s.ln.serveOn = ln
	return s, nil
}

// URL is the base of the URLs handed out.
func (s *Server) URL() *url.URL { u := *s.url; return &u }

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Start serves in the background until Stop. It may be called once.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errdefs.FailedPrecondition("streaming: server stopped")
	}
	if s.started {
		return errdefs.FailedPrecondition("streaming: server already started")
	}
	s.started = true
	go func() {
		defer close(s.served)
		_ = s.httpSrv.Serve(s.ln.serveOn) // returns http.ErrServerClosed after Stop
	}()
	return nil
}

// Stop closes the listener and every connection, including streams in progress (whose execs are
// killed), and waits for the stream handlers to return. Safe to call more than once.
func (s *Server) Stop() error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	started := s.started
	s.mu.Unlock()

	err := s.httpSrv.Close() // listener and idle/active (non-hijacked) connections
	if !started {
		err = s.ln.Close()
	} else {
		<-s.served
	}
	s.ln.closeAll() // hijacked connections: the stream sessions
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(stopTimeout):
		return fmt.Errorf("streaming: stream handlers still running %s after stop", stopTimeout)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("streaming: stop: %w", err)
	}
	return nil
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.handlers.Add(1)
	defer s.handlers.Done()
	s.cri.ServeHTTP(w, r)
}

// GetExec validates req and returns a one-time URL serving it.
func (s *Server) GetExec(req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	return s.cri.GetExec(req)
}

// GetAttach validates req and returns a one-time URL serving it.
func (s *Server) GetAttach(req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	return s.cri.GetAttach(req)
}

// GetPortForward validates req and returns a one-time URL serving it.
func (s *Server) GetPortForward(req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	return s.cri.GetPortForward(req)
}

// connTracker wraps accepted connections so that their requests' contexts end when the client
// goes away, and so that Stop can close hijacked connections.
type connTracker struct {
	net.Listener
	serveOn net.Listener // what http.Server serves: the tracker, or a TLS listener over it

	mu     sync.Mutex
	conns  map[*watchedConn]struct{}
	closed bool
}

func newConnTracker(l net.Listener) *connTracker {
	return &connTracker{Listener: l, conns: map[*watchedConn]struct{}{}}
}

func (t *connTracker) Accept() (net.Conn, error) {
	c, err := t.Listener.Accept()
	if err != nil {
		return nil, err
	}
	w := &watchedConn{Conn: c, tracker: t}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		c.Close()
		return nil, net.ErrClosed
	}
	t.conns[w] = struct{}{}
	t.mu.Unlock()
	return w, nil
}

func (t *connTracker) closeAll() {
	t.mu.Lock()
	t.closed = true
	conns := make([]*watchedConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (t *connTracker) forget(c *watchedConn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// watchedConn runs its cancel functions once the connection is closed or a read from it fails
// (other than by a deadline, which net/http uses internally).
type watchedConn struct {
	net.Conn
	tracker *connTracker

	mu      sync.Mutex
	gone    bool
	cancels []context.CancelFunc
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		c.markGone()
	}
	return n, err
}

func (c *watchedConn) Close() error {
	err := c.Conn.Close()
	c.markGone()
	c.tracker.forget(c)
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *watchedConn) markGone() {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return
	}
	c.gone = true
	cancels := c.cancels
	c.cancels = nil
	c.mu.Unlock()
	for _, cancel := range cancels {
		cancel()
	}
}

// onGone registers cancel; it runs at once if the connection is already gone.
func (c *watchedConn) onGone(cancel context.CancelFunc) {
	c.mu.Lock()
	if !c.gone {
		c.cancels = append(c.cancels, cancel)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	cancel()
}

// connContext gives every request on a connection a context that ends when the connection goes.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	w, ok := c.(*watchedConn)
	if !ok {
		return ctx
	}
	ctx, cancel := context.WithCancel(ctx)
	w.onGone(cancel)
	return ctx
}
