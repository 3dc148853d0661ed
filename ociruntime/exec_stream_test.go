package ociruntime

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/noded/noded/errdefs"
)

// syncBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or the timeout passes.
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

// withDevpts gives the container a devpts for terminals.
func withDevpts() specOpt {
	return func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
			Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}})
	}
}

// startStreamContainer runs a long-lived container for exec tests.
func startStreamContainer(t *testing.T, r *CLI, id, script string, o CreateOpts, opts ...specOpt) {
	t.Helper()
	o.ID, o.Bundle = id, writeBundle(t, id, script, append([]specOpt{withDevpts()}, opts...)...)
	if _, err := r.Create(context.Background(), o); err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	t.Cleanup(func() {
		if err := r.Delete(context.Background(), id, true); err != nil {
			t.Errorf("cleanup delete %s: %v", id, err)
		}
	})
	if err := r.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

func execProc(tty bool, args ...string) *specs.Process {
	return &specs.Process{Args: args, Env: []string{"PATH=/bin", "TERM=xterm"}, Cwd: "/", Terminal: tty}
}

func countOpenFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestExecStreamPipes(t *testing.T) {
	r := newTestCLI(t)
	id := "xs-pipes"
	startStreamContainer(t, r, id, "sleep 1000", CreateOpts{})
	ctx := context.Background()

	var out, errOut syncBuffer
	code, err := r.ExecStream(ctx, id, execProc(false, "sh", "-c", "echo $((1+1)); echo oops >&2; exit 3"),
		StreamIO{Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 || out.String() != "2\n" || errOut.String() != "oops\n" {
		t.Fatalf("code %d stdout %q stderr %q; want 3, \"2\\n\", \"oops\\n\"", code, out.String(), errOut.String())
	}

	// Stdin reaches the process and its EOF ends it.
	out = syncBuffer{}
	code, err = r.ExecStream(ctx, id, execProc(false, "tr", "a-z", "A-Z"),
		StreamIO{Stdin: strings.NewReader("hello\n"), Stdout: &out})
	if err != nil || code != 0 || out.String() != "HELLO\n" {
		t.Fatalf("tr: code %d err %v out %q", code, err, out.String())
	}

	// A command that cannot start is an error, not an exit code.
	_, err = r.ExecStream(ctx, id, execProc(false, "/no/such/binary"), StreamIO{Stdout: io.Discard, Stderr: io.Discard})
	if err == nil {
		t.Fatal("exec of a missing binary succeeded")
	}

	// Unknown container.
	if _, err := r.ExecStream(ctx, "nope", execProc(false, "true"), StreamIO{}); !errdefs.IsNotFound(err) {
		t.Fatalf("unknown container: %v, want NotFound", err)
	}
}

func TestExecStreamTerminalResize(t *testing.T) {
	r := newTestCLI(t)
	id := "xs-tty"
	startStreamContainer(t, r, id, "sleep 1000", CreateOpts{})

	resize := make(chan TerminalSize, 1)
	resize <- TerminalSize{Width: 123, Height: 45}
	var out syncBuffer
	// Give the size change time to reach the container's terminal before asking for it.
	code, err := r.ExecStream(context.Background(), id, execProc(true, "sh", "-c", "sleep 0.5; busybox stty size; test -t 0 && echo isatty"),
		StreamIO{Stdout: &out, Resize: resize})
	if err != nil || code != 0 {
		t.Fatalf("code %d err %v out %q", code, err, out.String())
	}
	if got := out.String(); !strings.Contains(got, "45 123") || !strings.Contains(got, "isatty") {
		t.Fatalf("terminal output %q: want the size \"45 123\" and isatty", got)
	}

	// Input typed on the terminal reaches the process; the exit code is reported.
	pr, pw := io.Pipe()
	defer pw.Close()
	out = syncBuffer{}
	done := make(chan struct{})
	var gotCode int
	go func() {
		defer close(done)
		gotCode, err = r.ExecStream(context.Background(), id, execProc(true, "sh", "-c", "read x; echo got-$x; exit 7"),
			StreamIO{Stdin: pr, Stdout: &out})
	}()
	if _, werr := pw.Write([]byte("abc\r")); werr != nil {
		t.Fatal(werr)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("terminal exec did not finish")
	}
	if err != nil || gotCode != 7 || !strings.Contains(out.String(), "got-abc") {
		t.Fatalf("code %d err %v out %q; want 7 and got-abc", gotCode, err, out.String())
	}
}

func TestExecStreamCancelKills(t *testing.T) {
	r := newTestCLI(t)
	id := "xs-cancel"
	startStreamContainer(t, r, id, "sleep 1000", CreateOpts{}, withHostPID)
	for _, tty := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		var out syncBuffer
		done := make(chan error, 1)
		go func() {
			_, err := r.ExecStream(ctx, id, execProc(tty, "sh", "-c", "echo started; exec sleep 1000"), StreamIO{Stdout: &out, Stderr: &out})
			done <- err
		}()
		waitUntil(t, 10*time.Second, "exec to start", func() bool { return strings.Contains(out.String(), "started") })
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("tty=%v: err %v, want context.Canceled", tty, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("tty=%v: cancelled exec did not return", tty)
		}
		// Only the container's own sleep is left in its cgroup.
		waitUntil(t, 5*time.Second, "exec'd sleep to die", func() bool { return len(cgroupProcs(t, id)) == 1 })
	}
}

func TestExecStreamNoLeaks(t *testing.T) {
	r := newTestCLI(t)
	id := "xs-leak"
	startStreamContainer(t, r, id, "sleep 1000", CreateOpts{})
	run := func(tty bool) {
		resize := make(chan TerminalSize)
		_, err := r.ExecStream(context.Background(), id, execProc(tty, "echo", "x"),
			StreamIO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Resize: resize})
		if err != nil {
			t.Fatal(err)
		}
	}
	run(false)
	run(true)
	g0, f0 := runtime.NumGoroutine(), countOpenFDs(t)
	for i := range 20 {
		run(i%2 == 0)
	}
	waitUntil(t, 5*time.Second, "goroutines and fds to settle", func() bool {
		return runtime.NumGoroutine() <= g0 && countOpenFDs(t) <= f0
	})
}

func TestAttachStream(t *testing.T) {
	r := newTestCLI(t)
	id := "xs-attach"
	// Prints a line every 100ms to stdout and stderr, and echoes its stdin in upper case.
	startStreamContainer(t, r, id,
		`(i=0; while true; do echo out-$i; echo err-$i >&2; i=$((i+1)); sleep 0.1; done) & tr a-z A-Z`,
		CreateOpts{Stdin: true})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- r.AttachStream(ctx, id, StreamIO{Stdin: pr, Stdout: &out, Stderr: &errOut}) }()
	waitUntil(t, 10*time.Second, "attached output", func() bool {
		return strings.Contains(out.String(), "out-") && strings.Contains(errOut.String(), "err-")
	})
	if strings.Contains(out.String(), "err-") || strings.Contains(errOut.String(), "out-") {
		t.Fatalf("streams mixed up: stdout %q stderr %q", out.String(), errOut.String())
	}
	if _, err := pw.Write([]byte("shout\n")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "stdin echoed", func() bool { return strings.Contains(out.String(), "SHOUT") })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("attach ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("attach did not end on cancel")
	}
	pw.Close()

	// The container keeps running after a client detached.
	st, err := r.State(context.Background(), id)
	if err != nil || st.Status != StatusRunning {
		t.Fatalf("state after detach: %+v %v", st, err)
	}
}

func TestAttachStreamEndsWithContainer(t *testing.T) {
	r := newTestCLI(t)
	id := "xs-attach-exit"
	startStreamContainer(t, r, id, `read x; echo bye-$x; exit 0`, CreateOpts{Stdin: true, StdinOnce: true})
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- r.AttachStream(context.Background(), id, StreamIO{Stdin: strings.NewReader("now\n"), Stdout: &out})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("attach did not end when the container exited")
	}
	if !strings.Contains(out.String(), "bye-now") {
		t.Fatalf("output %q, want bye-now", out.String())
	}
}

func TestAttachStreamTerminal(t *testing.T) {
	r := newTestCLI(t)
	id := "xs-attach-tty"
	startStreamContainer(t, r, id, `while true; do busybox stty size; sleep 0.1; done`,
		CreateOpts{Terminal: true}, func(s *specs.Spec) { s.Process.Terminal = true })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resize := make(chan TerminalSize, 1)
	resize <- TerminalSize{Width: 99, Height: 33}
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- r.AttachStream(ctx, id, StreamIO{Stdout: &out, Resize: resize}) }()
	waitUntil(t, 10*time.Second, "resized terminal output", func() bool { return strings.Contains(out.String(), "33 99") })
	cancel()
	<-done
}
