package streaming

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/noded/noded/internal/spdytest"

	"github.com/vishvananda/netlink"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/noded/noded/internal/nsutil"
)

// podNetNS pins a new network namespace with loopback up, removed when the test ends.
func podNetNS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	root := filepath.Join(t.TempDir(), "ns")
	if err := nsutil.PrepareRoot(root); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nsutil.ReleaseRoot(root); err != nil {
			t.Errorf("release ns root: %v", err)
		}
	})
	pins, err := nsutil.Pin(context.Background(), filepath.Join(root, "pod"), []nsutil.Type{nsutil.Net})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nsutil.UnpinAll(pins); err != nil {
			t.Errorf("unpin: %v", err)
		}
	})
	path := pins[nsutil.Net]
	if err := nsutil.WithNetNS(path, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		t.Fatal(err)
	}
	return path
}

// serveLines answers each connection's first line with prefix+line, then closes it.
func serveLines(t *testing.T, l net.Listener, prefix string) {
	t.Helper()
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				fmt.Fprint(c, prefix+line)
			}()
		}
	}()
}

// forward runs one port-forward exchange over SPDY: it sends data, half-closes and returns what
// came back on the data and error streams.
func forward(t *testing.T, s *Server, pod string, port int, data string) (reply, errMsg string) {
	t.Helper()
	resp, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: pod, Port: []int32{int32(port)}})
	if err != nil {
		t.Fatal(err)
	}
	conn := spdytest.Dial(t, resp.Url, "portforward.k8s.io")
	defer conn.Close()
	stream := func(typ string) (httpstream.Stream, error) {
		h := http.Header{}
		h.Set("streamType", typ)
		h.Set("port", strconv.Itoa(port))
		h.Set("requestID", "0")
		return conn.CreateStream(h)
	}
	errStream, err := stream("error")
	if err != nil {
		t.Fatalf("pod %s port %d: create error stream: %v", pod, port, err)
	}
	errCh := make(chan string, 1)
	go func() { b, _ := io.ReadAll(errStream); errCh <- string(b) }()
	var got []byte
	// A request the server refuses at once (an unknown pod) may be answered on the error stream and the
	// connection closed before the data stream's reply arrives: then only the error stream has something to say.
	if dataStream, err := stream("data"); err == nil {
		if _, err := io.WriteString(dataStream, data); err != nil {
			t.Fatal(err)
		}
		dataStream.Close() // half-close: we are done sending
		got, _ = io.ReadAll(dataStream)
	} else {
		t.Logf("pod %s port %d: data stream: %v", pod, port, err)
	}
	select {
	case errMsg = <-errCh:
	case <-time.After(10 * time.Second):
		t.Fatal("error stream not closed")
	}
	return string(got), errMsg
}

func TestPortForwardInsidePodNetNS(t *testing.T) {
	nsPath := podNetNS(t)
	// The same port on the host's loopback answers differently: the forward must not reach it.
	hostL, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveLines(t, hostL, "host:")
	port := hostL.Addr().(*net.TCPAddr).Port
	var podL net.Listener
	if err := nsutil.WithNetNS(nsPath, func() error {
		var err error
		podL, err = net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	serveLines(t, podL, "pod:")

	b := newFakeBackend()
	b.netns["pod1"] = nsPath
	b.netns["hostpod"] = ""
	s := startServer(t, b)

	if reply, errMsg := forward(t, s, "pod1", port, "hello\n"); reply != "pod:hello\n" || errMsg != "" {
		t.Fatalf("pod forward: reply %q error %q", reply, errMsg)
	}
	if reply, errMsg := forward(t, s, "hostpod", port, "hi\n"); reply != "host:hi\n" || errMsg != "" {
		t.Fatalf("host-network forward: reply %q error %q", reply, errMsg)
	}
	// Nothing listens on this port in the pod.
	closed, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	if reply, errMsg := forward(t, s, "pod1", closedPort, "x\n"); reply != "" || !strings.Contains(errMsg, "refused") {
		t.Fatalf("closed port: reply %q error %q", reply, errMsg)
	}
	if _, errMsg := forward(t, s, "nopod", port, "x\n"); !strings.Contains(errMsg, "not found") {
		t.Fatalf("unknown pod: error %q", errMsg)
	}
}
