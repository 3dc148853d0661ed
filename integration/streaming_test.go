package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noded/noded/internal/spdytest"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"
)

func newStream(t *testing.T, conn httpstream.Connection, headers map[string]string) httpstream.Stream {
	t.Helper()
	h := http.Header{}
	for k, v := range headers {
		h.Set(k, v)
	}
	s, err := conn.CreateStream(h)
	if err != nil {
		t.Fatalf("create stream %v: %v", headers, err)
	}
	return s
}

// remoteExec runs an exec session (protocol v4) and returns stdout and the exit code from the status.
func remoteExec(t *testing.T, url string, tty bool, resize string) (string, int) {
	t.Helper()
	conn := spdytest.Dial(t, url, "v4.channel.k8s.io")
	defer conn.Close()
	errStream := newStream(t, conn, map[string]string{"streamType": "error"})
	var out bytes.Buffer
	var wg sync.WaitGroup
	stdout := newStream(t, conn, map[string]string{"streamType": "stdout"})
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = io.Copy(&out, stdout) }()
	if tty {
		rs := newStream(t, conn, map[string]string{"streamType": "resize"})
		if _, err := io.WriteString(rs, resize); err != nil {
			t.Fatal(err)
		}
	} else {
		stderr := newStream(t, conn, map[string]string{"streamType": "stderr"})
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = io.Copy(io.Discard, stderr) }()
	}
	status, _ := io.ReadAll(errStream)
	wg.Wait()
	code := 0
	if len(status) > 0 {
		var st struct {
			Status  string
			Details struct {
				Causes []struct{ Reason, Message string }
			}
		}
		if err := json.Unmarshal(status, &st); err != nil {
			t.Fatalf("status %q: %v", status, err)
		}
		if st.Status != "Success" {
			code = -1
			for _, c := range st.Details.Causes {
				if c.Reason == "ExitCode" {
					code, _ = strconv.Atoi(c.Message)
				}
			}
		}
	}
	return out.String(), code
}

func TestStreaming(t *testing.T) {
	e := newPodEnv(t, 20, nil)
	podCfg := e.podConfig(t, "streaming")
	podID := e.runPod(t, podCfg)
	ctrID := e.createContainer(t, podID, podCfg, "ticker", "sh", "-c",
		"nc -l -p 8080 -e echo hi & i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.1; done")
	if err := e.n.Runtime.StartContainer(e.ctx, ctrID); err != nil {
		t.Fatal(err)
	}
	execURL := func(cmd []string, tty bool) string {
		resp, err := e.n.Runtime.Exec(e.ctx, &runtimeapi.ExecRequest{ContainerId: ctrID, Cmd: cmd, Tty: tty, Stdout: true, Stderr: !tty})
		if err != nil {
			t.Fatalf("Exec: %v", err)
		}
		return resp.Url
	}

	if out, code := remoteExec(t, execURL([]string{"sh", "-c", "echo $((1+1))"}, false), false, ""); out != "2\n" || code != 0 {
		t.Fatalf("exec: %q code %d", out, code)
	}
	if _, code := remoteExec(t, execURL([]string{"sh", "-c", "exit 5"}, false), false, ""); code != 5 {
		t.Fatalf("exit code %d, want 5", code)
	}
	out, code := remoteExec(t, execURL([]string{"sh", "-c", "sleep 0.5; stty size"}, true), true, `{"Width":101,"Height":31}`)
	if code != 0 || !strings.Contains(out, "31 101") {
		t.Fatalf("tty exec: %q code %d", out, code)
	}

	// Attach reads the running container's output.
	resp, err := e.n.Runtime.Attach(e.ctx, &runtimeapi.AttachRequest{ContainerId: ctrID, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	conn := spdytest.Dial(t, resp.Url, "v4.channel.k8s.io")
	newStream(t, conn, map[string]string{"streamType": "error"})
	stdout := newStream(t, conn, map[string]string{"streamType": "stdout"})
	newStream(t, conn, map[string]string{"streamType": "stderr"})
	var got []byte
	buf := make([]byte, 256)
	for deadline := time.Now().Add(10 * time.Second); bytes.Count(got, []byte("tick-")) < 3 && time.Now().Before(deadline); {
		n, err := stdout.Read(buf)
		if err != nil {
			t.Fatalf("attach read: %v (got %q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	conn.Close()
	if bytes.Count(got, []byte("tick-")) < 3 {
		t.Fatalf("attach output %q", got)
	}

	// Port-forward reaches a server on the pod's loopback.
	pf, err := e.n.Runtime.PortForward(e.ctx, &runtimeapi.PortForwardRequest{PodSandboxId: podID, Port: []int32{8080}})
	if err != nil {
		t.Fatalf("PortForward: %v", err)
	}
	pconn := spdytest.Dial(t, pf.Url, "portforward.k8s.io")
	defer pconn.Close()
	hdr := func(typ string) map[string]string {
		return map[string]string{"streamType": typ, "port": "8080", "requestID": "0"}
	}
	errS := newStream(t, pconn, hdr("error"))
	data := newStream(t, pconn, hdr("data"))
	reply, _ := io.ReadAll(data)
	if msg, _ := io.ReadAll(errS); len(msg) > 0 {
		t.Fatalf("port-forward error: %s", msg)
	}
	if string(reply) != "hi\n" {
		t.Fatalf("port-forward reply %q", reply)
	}

	// Many execs in a row keep working (the in-process leak check is in package streaming).
	for i := range 20 {
		if out, code := remoteExec(t, execURL([]string{"echo", fmt.Sprint(i)}, false), false, ""); out != fmt.Sprintf("%d\n", i) || code != 0 {
			t.Fatalf("exec %d: %q code %d", i, out, code)
		}
	}
}
