package streaming

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	crist "k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/nsutil"
	"github.com/noded/noded/ociruntime"
)

// Backend is what the streaming Runtime needs of noded: containers to exec in and attach to, and
// pods' network namespaces. The daemon implements it over the container manager and the store.
type Backend interface {
	// ExecStream runs cmd in the running container and returns its exit code; see
	// ociruntime.Streamer.ExecStream.
	ExecStream(ctx context.Context, containerID string, cmd []string, tty bool, stdio ociruntime.StreamIO) (int, error)
	// AttachStream connects stdio to the running container's main process.
	AttachStream(ctx context.Context, containerID string, stdio ociruntime.StreamIO) error
	// PodNetNS returns the path of the pod's network namespace, or "" for a pod on the host network.
	PodNetNS(podSandboxID string) (string, error)
}

// DialTimeout bounds connecting to a pod's port for a port-forward.
const DialTimeout = 10 * time.Second

// Runtime implements cri-streaming's Runtime over a Backend.
type Runtime struct {
	b Backend
}

var _ crist.Runtime = (*Runtime)(nil)

// NewRuntime returns a Runtime over b.
func NewRuntime(b Backend) *Runtime { return &Runtime{b: b} }

// Exec runs cmd in the container. A non-zero exit is returned as a utilexec.CodeExitError, which
// the stream server reports to the client as the command's exit code.
func (r *Runtime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	stdio, stop := streamIO(in, out, errOut, resize)
	defer stop()
	code, err := r.b.ExecStream(ctx, containerID, cmd, tty, stdio)
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
	}
	return nil
}

// Attach connects to the container's main process until it exits or the client goes away.
func (r *Runtime) Attach(ctx context.Context, containerID string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	stdio, stop := streamIO(in, out, errOut, resize)
	defer stop()
	return r.b.AttachStream(ctx, containerID, stdio)
}

// streamIO adapts the stream server's stdio to ociruntime's. The returned stop ends the resize
// forwarding goroutine and waits for it.
func streamIO(in io.Reader, out, errOut io.WriteCloser, resize <-chan remotecommand.TerminalSize) (ociruntime.StreamIO, func()) {
	var stdio ociruntime.StreamIO
	// Keep nil interfaces nil: a nil stream means the client did not ask for it.
	if in != nil {
		stdio.Stdin = in
	}
	if out != nil {
		stdio.Stdout = out
	}
	if errOut != nil {
		stdio.Stderr = errOut
	}
	if resize == nil {
		return stdio, func() {}
	}
	sizes := make(chan ociruntime.TerminalSize)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(sizes)
		for {
			var sz remotecommand.TerminalSize
			var ok bool
			select {
			case sz, ok = <-resize:
				if !ok {
					return
				}
			case <-done:
				return
			}
			select {
			case sizes <- ociruntime.TerminalSize{Width: sz.Width, Height: sz.Height}:
			case <-done:
				return
			}
		}
	}()
	stdio.Resize = sizes
	var once sync.Once
	return stdio, func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}

// PortForward connects stream to TCP port on the pod's loopback (127.0.0.1, else [::1]), dialled
// inside the pod's network namespace, and copies both ways. It returns when the pod side closes
// or either side fails; the client closing its sending side half-closes the pod connection.
func (r *Runtime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > 65535 {
		return errdefs.InvalidArgument("port %d out of range", port)
	}
	nsPath, err := r.b.PodNetNS(podSandboxID)
	if err != nil {
		return err
	}
	conn, err := dialPod(ctx, nsPath, int(port))
	if err != nil {
		return fmt.Errorf("port-forward to pod %s port %d: %w", podSandboxID, port, err)
	}
	defer conn.Close()
	stopAfter := context.AfterFunc(ctx, func() { conn.Close() })
	defer stopAfter()

	clientErr := make(chan error, 1)
	// Not waited for: after the pod side ends it may stay in stream.Read until the stream closes,
	// which the caller does when PortForward returns.
	go func() {
		_, err := io.Copy(conn, stream)
		if err == nil {
			_ = conn.CloseWrite() // the client finished sending
			clientErr <- nil
			return
		}
		clientErr <- err
		conn.Close() // the client's stream broke: end the pod side too
	}()
	_, err = io.Copy(stream, conn)
	select {
	case cerr := <-clientErr:
		if cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			return fmt.Errorf("port-forward to pod %s port %d: from client: %w", podSandboxID, port, cerr)
		}
	default:
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("port-forward to pod %s port %d: %w", podSandboxID, port, err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// dialPod connects to 127.0.0.1:port, or [::1]:port when that fails, in the network namespace at
// nsPath ("" for the host's). The socket is created on a thread inside the namespace and keeps
// belonging to it afterwards.
func dialPod(ctx context.Context, nsPath string, port int) (*net.TCPConn, error) {
	var conn net.Conn
	dial := func() error {
		d := net.Dialer{Timeout: DialTimeout}
		p := strconv.Itoa(port)
		c, err4 := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", p))
		if err4 == nil {
			conn = c
			return nil
		}
		c, err6 := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", p))
		if err6 == nil {
			conn = c
			return nil
		}
		return fmt.Errorf("%w; %w", err4, err6)
	}
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = nsutil.WithNetNS(nsPath, dial)
	}
	if err != nil {
		return nil, err
	}
	return conn.(*net.TCPConn), nil
}
