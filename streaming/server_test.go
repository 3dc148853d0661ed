package streaming

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noded/noded/internal/spdytest"

	"golang.org/x/net/websocket"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/ociruntime"
)

// fakeBackend interprets a tiny command language instead of running containers:
//
//	echo ARGS...   writes ARGS to stdout        err ARGS...  writes ARGS to stderr
//	exit N         exits with N                 cat          copies stdin to stdout until EOF
//	size           prints the first terminal size it receives
//	block          waits for ctx to end (the cancellation is recorded)
type fakeBackend struct {
	mu        sync.Mutex
	cancelled int
	netns     map[string]string

	blocking chan struct{} // receives when a block command starts
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{netns: map[string]string{}, blocking: make(chan struct{}, 16)}
}

func (f *fakeBackend) ExecStream(ctx context.Context, id string, cmd []string, tty bool, stdio ociruntime.StreamIO) (int, error) {
	if id != "ctr" {
		return -1, errdefs.NotFound("container %s not found", id)
	}
	out, errOut := stdio.Stdout, stdio.Stderr
	if out == nil {
		out = io.Discard
	}
	if errOut == nil {
		errOut = io.Discard
	}
	switch cmd[0] {
	case "echo":
		fmt.Fprintln(out, strings.Join(cmd[1:], " "))
	case "err":
		fmt.Fprintln(errOut, strings.Join(cmd[1:], " "))
	case "exit":
		n, _ := strconv.Atoi(cmd[1])
		return n, nil
	case "cat":
		if _, err := io.Copy(out, stdio.Stdin); err != nil {
			return -1, err
		}
	case "size":
		select {
		case sz := <-stdio.Resize:
			fmt.Fprintf(out, "%d %d\n", sz.Height, sz.Width)
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	case "block":
		f.blocking <- struct{}{}
		<-ctx.Done()
		f.mu.Lock()
		f.cancelled++
		f.mu.Unlock()
		return -1, ctx.Err()
	default:
		return -1, fmt.Errorf("unknown command %q", cmd[0])
	}
	return 0, nil
}

func (f *fakeBackend) AttachStream(ctx context.Context, id string, stdio ociruntime.StreamIO) error {
	for i := 0; ; i++ {
		if stdio.Stdout != nil {
			fmt.Fprintf(stdio.Stdout, "line-%d\n", i)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (f *fakeBackend) PodNetNS(id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.netns[id]
	if !ok {
		return "", errdefs.NotFound("pod %s not found", id)
	}
	return p, nil
}

func (f *fakeBackend) cancelCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cancelled
}

func startServer(t *testing.T, b Backend) *Server {
	t.Helper()
	s, err := New(Config{}, NewRuntime(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

type execResult struct {
	stdout, stderr string
	status         map[string]any // the v4 status; nil on success
}

type execOpts struct {
	stdin    io.Reader
	tty      bool
	noStderr bool // the request did not ask for stderr
	resize   []ociruntime.TerminalSize
}

// spdyRemoteCommand runs a remote command session (v4 protocol) at url, the way kubectl does.
func spdyRemoteCommand(t *testing.T, url string, o execOpts) execResult {
	t.Helper()
	conn := spdytest.Dial(t, url, "v4.channel.k8s.io")
	defer conn.Close()
	stream := func(typ string) httpstream.Stream {
		h := http.Header{}
		h.Set("streamType", typ)
		s, err := conn.CreateStream(h)
		if err != nil {
			t.Fatalf("create %s stream: %v", typ, err)
		}
		return s
	}
	errStream := stream("error")
	if o.stdin != nil {
		in := stream("stdin")
		go func() {
			_, _ = io.Copy(in, o.stdin)
			in.Close()
		}()
	}
	var res execResult
	var wg sync.WaitGroup
	var stdout, stderr bytes.Buffer
	read := func(s httpstream.Stream, buf *bytes.Buffer) {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = io.Copy(buf, s) }()
	}
	read(stream("stdout"), &stdout)
	if !o.tty && !o.noStderr {
		read(stream("stderr"), &stderr)
	}
	if o.tty {
		rs := stream("resize")
		for _, sz := range o.resize {
			if err := json.NewEncoder(rs).Encode(map[string]uint16{"Width": sz.Width, "Height": sz.Height}); err != nil {
				t.Fatal(err)
			}
		}
	}
	status, err := io.ReadAll(errStream)
	if err != nil {
		t.Fatalf("read error stream: %v", err)
	}
	wg.Wait()
	res.stdout, res.stderr = stdout.String(), stderr.String()
	if len(status) > 0 {
		if err := json.Unmarshal(status, &res.status); err != nil {
			t.Fatalf("status %q: %v", status, err)
		}
		if res.status["status"] == "Success" {
			res.status = nil
		}
	}
	return res
}

func (s *Server) execURL(t *testing.T, req *runtimeapi.ExecRequest) string {
	t.Helper()
	resp, err := s.GetExec(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Url
}

// exitCode extracts the exit code cause of a v4 status (-1 if none).
func exitCode(status map[string]any) int {
	details, _ := status["details"].(map[string]any)
	causes, _ := details["causes"].([]any)
	for _, c := range causes {
		m, _ := c.(map[string]any)
		if m["reason"] == "ExitCode" {
			n, _ := strconv.Atoi(fmt.Sprint(m["message"]))
			return n
		}
	}
	return -1
}

func TestExecOverSPDY(t *testing.T) {
	s := startServer(t, newFakeBackend())

	res := spdyRemoteCommand(t, s.execURL(t, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"echo", "2"}, Stdout: true, Stderr: true}), execOpts{})
	if res.stdout != "2\n" || res.status != nil {
		t.Fatalf("echo: %+v", res)
	}
	res = spdyRemoteCommand(t, s.execURL(t, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"err", "oops"}, Stdout: true, Stderr: true}), execOpts{})
	if res.stderr != "oops\n" || res.stdout != "" {
		t.Fatalf("stderr: %+v", res)
	}
	res = spdyRemoteCommand(t, s.execURL(t, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"exit", "42"}, Stdout: true, Stderr: true}), execOpts{})
	if res.status == nil || res.status["reason"] != "NonZeroExitCode" || exitCode(res.status) != 42 {
		t.Fatalf("exit 42: status %v", res.status)
	}
	res = spdyRemoteCommand(t, s.execURL(t, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"cat"}, Stdin: true, Stdout: true, Stderr: true}),
		execOpts{stdin: strings.NewReader("piped\n")})
	if res.stdout != "piped\n" || res.status != nil {
		t.Fatalf("cat: %+v", res)
	}
	res = spdyRemoteCommand(t, s.execURL(t, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"size"}, Tty: true, Stdout: true}),
		execOpts{tty: true, resize: []ociruntime.TerminalSize{{Width: 120, Height: 40}}})
	if res.stdout != "40 120\n" || res.status != nil {
		t.Fatalf("size: %+v", res)
	}
	// A backend error is a failure status, not an exit code.
	res = spdyRemoteCommand(t, s.execURL(t, &runtimeapi.ExecRequest{ContainerId: "gone", Cmd: []string{"echo"}, Stdout: true}), execOpts{noStderr: true})
	if res.status == nil || exitCode(res.status) != -1 || !strings.Contains(fmt.Sprint(res.status["message"]), "not found") {
		t.Fatalf("unknown container: status %v", res.status)
	}
}

func TestExecOverWebSocket(t *testing.T) {
	s := startServer(t, newFakeBackend())
	u := s.execURL(t, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"exit", "3"}, Stdout: true, Stderr: true})
	cfg, err := websocket.NewConfig(strings.Replace(u, "http://", "ws://", 1), "http://localhost/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Protocol = []string{"v4.channel.k8s.io"}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var status []byte
	for {
		var msg []byte
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			break
		}
		if len(msg) > 1 && msg[0] == 3 { // the error channel
			status = append(status, msg[1:]...)
		}
	}
	var st map[string]any
	if err := json.Unmarshal(status, &st); err != nil {
		t.Fatalf("status %q: %v", status, err)
	}
	if exitCode(st) != 3 {
		t.Fatalf("status %v, want exit code 3", st)
	}
}

func TestAttachOverSPDY(t *testing.T) {
	s := startServer(t, newFakeBackend())
	resp, err := s.GetAttach(&runtimeapi.AttachRequest{ContainerId: "ctr", Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	conn := spdytest.Dial(t, resp.Url, "v4.channel.k8s.io")
	defer conn.Close()
	var streams []httpstream.Stream
	for _, typ := range []string{"error", "stdout", "stderr"} {
		h := http.Header{}
		h.Set("streamType", typ)
		st, err := conn.CreateStream(h)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	buf := make([]byte, 64)
	var got []byte
	deadline := time.Now().Add(10 * time.Second)
	for !bytes.Contains(got, []byte("line-2\n")) && time.Now().Before(deadline) {
		n, err := streams[1].Read(buf)
		if err != nil {
			t.Fatalf("read stdout: %v (got %q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.HasPrefix(got, []byte("line-0\nline-1\n")) {
		t.Fatalf("attach output %q", got)
	}
}

// TestClientGoneCancelsExec: when the client's connection closes, the exec's context ends.
func TestClientGoneCancelsExec(t *testing.T) {
	b := newFakeBackend()
	s := startServer(t, b)
	u := s.execURL(t, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"block"}, Stdout: true})
	conn := spdytest.Dial(t, u, "v4.channel.k8s.io")
	for _, typ := range []string{"error", "stdout"} {
		h := http.Header{}
		h.Set("streamType", typ)
		if _, err := conn.CreateStream(h); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-b.blocking:
	case <-time.After(10 * time.Second):
		t.Fatal("exec did not start")
	}
	conn.Close()
	waitUntil(t, 10*time.Second, "exec cancelled", func() bool { return b.cancelCount() == 1 })
}

// TestStopEndsSessions: Stop closes the sessions in progress and waits for them.
func TestStopEndsSessions(t *testing.T) {
	b := newFakeBackend()
	s, err := New(Config{}, NewRuntime(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	u := s.execURL(t, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"block"}, Stdout: true})
	conn := spdytest.Dial(t, u, "v4.channel.k8s.io")
	defer conn.Close()
	for _, typ := range []string{"error", "stdout"} {
		h := http.Header{}
		h.Set("streamType", typ)
		if _, err := conn.CreateStream(h); err != nil {
			t.Fatal(err)
		}
	}
	<-b.blocking
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if b.cancelCount() != 1 {
		t.Fatalf("exec not cancelled by Stop")
	}
	if _, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		t.Fatal("server still accepts connections after Stop")
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestNoGoroutineLeakAfterManyExecs(t *testing.T) {
	s := startServer(t, newFakeBackend())
	run := func(i int) {
		req := &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"cat"}, Stdin: true, Stdout: true, Stderr: true}
		res := spdyRemoteCommand(t, s.execURL(t, req), execOpts{stdin: strings.NewReader(fmt.Sprintf("x%d\n", i))})
		if res.stdout != fmt.Sprintf("x%d\n", i) {
			t.Fatalf("exec %d: %+v", i, res)
		}
	}
	for i := range 5 {
		run(i)
	}
	http.DefaultClient.CloseIdleConnections()
	before := runtime.NumGoroutine()
	for i := range 100 {
		run(i)
	}
	waitUntil(t, 10*time.Second, fmt.Sprintf("goroutines back to %d", before), func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{}, nil); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("nil runtime: %v", err)
	}
	if _, err := New(Config{TLSCertFile: "/nonexistent"}, NewRuntime(newFakeBackend())); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("cert without key: %v", err)
	}
	s, err := New(Config{}, NewRuntime(newFakeBackend()))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URL().String(), "http://127.0.0.1:") || strings.HasSuffix(s.URL().String(), ":0") {
		t.Fatalf("URL %s", s.URL())
	}
	// Stop without Start releases the port.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Fatal("Start after Stop succeeded")
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
