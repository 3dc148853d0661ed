package ociruntime

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/noded/noded/errdefs"
)

func TestReadSync(t *testing.T) {
	pid, err := readSync(strings.NewReader("{\"data\": 4242}\n"))
	if err != nil || pid != 4242 {
		t.Errorf("readSync pid = %d, %v", pid, err)
	}
	_, err = readSync(strings.NewReader(`{"data": -1, "message": "time=\"x\" level=error msg=\"runc create failed: container with id exists: c1\"\n"}` + "\n"))
	if err == nil || !strings.Contains(err.Error(), "container with id exists: c1") {
		t.Errorf("failure message not surfaced: %v", err)
	}
	_, err = readSync(strings.NewReader(`{"data": -1, "message": "container \"c\" does not exist"}` + "\n"))
	if !errdefs.IsNotFound(err) {
		t.Errorf("does-not-exist not classified NotFound: %v", err)
	}
	if _, err := readSync(strings.NewReader("")); err == nil {
		t.Error("EOF without a message accepted")
	}
	if _, err := readSync(strings.NewReader("garbage\n")); err == nil {
		t.Error("garbage accepted")
	}
	if _, err := readSync(strings.NewReader(`{"message": "x"}` + "\n")); err == nil {
		t.Error("message without data accepted")
	}
}

func TestParseFeatures(t *testing.T) {
	f, err := parseFeatures([]byte(`{"ociVersionMin":"1.0.0","mountOptions":["ro","rro"],
		"linux":{"namespaces":["pid","user"],"seccomp":{"enabled":true},"mountExtensions":{"idmap":{"enabled":true}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !f.RecursiveReadOnly || !f.UserNamespaces || !f.Seccomp || !f.IDMapMounts || f.Raw.OCIVersionMin != "1.0.0" {
		t.Errorf("features = %+v", f)
	}
	f, err = parseFeatures([]byte(`{"mountOptions":["ro"],"linux":{"namespaces":["pid"],"seccomp":{"enabled":false}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if f.RecursiveReadOnly || f.UserNamespaces || f.Seccomp || f.IDMapMounts {
		t.Errorf("features = %+v, want all false", f)
	}
	if _, err := parseFeatures([]byte("unknown command")); err == nil {
		t.Error("non-JSON accepted")
	}
}

func TestCappedBuffer(t *testing.T) {
	c := &cappedBuffer{limit: 5}
	for _, s := range []string{"abc", "def", "gh"} {
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("write = %d, %v", n, err)
		}
	}
	if c.buf.String() != "abcde" || !c.truncated {
		t.Errorf("buffer %q truncated %v", c.buf.String(), c.truncated)
	}
	c = &cappedBuffer{limit: 5}
	c.Write([]byte("abcde"))
	if c.truncated {
		t.Error("exactly-at-limit output flagged truncated")
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		stderr string
		kind   error
	}{
		{`time="2026-01-01T00:00:00Z" level=error msg="container does not exist"`, errdefs.ErrNotFound},
		{`time="x" level=error msg="cannot start a container that has stopped"`, errdefs.ErrFailedPrecondition},
		{"container not running", errdefs.ErrFailedPrecondition},
		{"cannot delete container abc that is not stopped: container is running", errdefs.ErrFailedPrecondition},
	}
	for _, c := range cases {
		err := classify("op", runtimeMessage([]byte(c.stderr)), errors.New("exit status 1"))
		if !errors.Is(err, c.kind) {
			t.Errorf("classify(%q) = %v, want kind %v", c.stderr, err, c.kind)
		}
	}
	err := classify("op", runtimeMessage([]byte(`level=error msg="weird \"quoted\" thing"`)), errors.New("exit status 1"))
	if !strings.Contains(err.Error(), `weird "quoted" thing`) || errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unclassified error = %v", err)
	}
}

func TestConmonArgs(t *testing.T) {
	r := &CLI{cfg: Config{Path: "/bin/runc", Root: "/s/runc", ExitDir: "/s/exits", ConmonLogLevel: "error", SystemdCgroup: true}}
	args := r.conmonArgs(CreateOpts{ID: "c1", Bundle: "/b", LogPath: "/l/c.log", LogSizeMax: 10, Stdin: true}, "/p/c1")
	joined := " " + strings.Join(args, " ") + " "
	for _, want := range []string{
		" --api-version 1 ", " --cid c1 ", " --cuuid c1 ", " --name c1 ", " --runtime /bin/runc ", " --bundle /b ",
		" --container-pidfile /p/c1/pidfile ", " --conmon-pidfile /p/c1/conmon.pid ", " --exit-dir /s/exits ",
		" --persist-dir /p/c1 ", " --runtime-arg --root=/s/runc ", " --log-path k8s-file:/l/c.log ",
		" --log-size-max 10 ", " --full-attach ", " --systemd-cgroup ", " --stdin ", " --leave-stdin-open ",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("conmon args %q lack %q", joined, want)
		}
	}
	if slices.Contains(args, "--terminal") {
		t.Error("--terminal without Terminal")
	}
	args = r.conmonArgs(CreateOpts{ID: "c1", Bundle: "/b", Stdin: true, StdinOnce: true}, "/p/c1")
	if slices.Contains(args, "--leave-stdin-open") || !slices.Contains(args, "none") {
		t.Errorf("StdinOnce / no-log args: %q", args)
	}
}

func TestWatcherReportsRenamedExitFiles(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWatcher(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeExit := func(id, content string) {
		tmp := filepath.Join(dir, id+".XYZ123")
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, id)); err != nil {
			t.Fatal(err)
		}
	}
	writeExit("aaa", "0")
	writeExit("bbb", "137")
	var got []ExitEvent
	for len(got) < 2 {
		select {
		case ev := <-w.Events():
			got = append(got, ev)
		case <-time.After(5 * time.Second):
			t.Fatalf("events so far %+v", got)
		}
	}
	if got[0].ID != "aaa" || got[0].ExitCode != 0 || got[1].ID != "bbb" || got[1].ExitCode != 137 {
		t.Errorf("events = %+v", got)
	}
	if got[1].ExitedAt.IsZero() {
		t.Error("no exit time")
	}
	// Files written in place (not renamed) and temp files are not events.
	if err := os.WriteFile(filepath.Join(dir, "ccc"), []byte("1"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.Events():
		t.Errorf("unexpected event %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
	code, _, err := ReadExitFile(filepath.Join(dir, "ccc"))
	if err != nil || code != 1 {
		t.Errorf("ReadExitFile = %d, %v", code, err)
	}
	if _, _, err := ReadExitFile(filepath.Join(dir, "none")); !errdefs.IsNotFound(err) {
		t.Errorf("missing exit file: %v, want NotFound", err)
	}

	// Close ends the goroutine: the channel gets closed, and Close is idempotent.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-w.Events():
		if ok {
			t.Error("event after close")
		}
	case <-time.After(time.Second):
		t.Error("events channel not closed by Close")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if w.Err() != nil {
		t.Errorf("Err after Close = %v", w.Err())
	}
}

func TestWatcherCloseWhileBlockedOnSend(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWatcher(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Fill the channel without consuming so the goroutine blocks on send.
	for i := range cap(w.events) + 5 {
		p := filepath.Join(dir, "t")
		os.WriteFile(p, []byte("0"), 0o600)
		os.Rename(p, filepath.Join(dir, "id"+strings.Repeat("x", i%3)+string(rune('a'+i%26))))
	}
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() { w.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs while the watcher is blocked sending")
	}
}

func TestPollExitSeesZombieAndMissingProcess(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Skip("no true binary:", err)
	}
	pid := cmd.Process.Pid
	// Not reaped yet: a zombie once it has exited.
	if err := pollExit(context.Background(), pid, 5*time.Second); err != nil {
		t.Fatalf("pollExit on an exited child: %v", err)
	}
	_ = cmd.Wait()
	if err := pollExit(context.Background(), pid, time.Second); err != nil {
		t.Fatalf("pollExit on a reaped child: %v", err)
	}
	if !exitedOrGone(pid) {
		t.Error("a reaped child is not reported gone")
	}
	if exitedOrGone(os.Getpid()) {
		t.Error("the test process is reported exited")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := pollExit(ctx, os.Getpid(), time.Minute); err == nil {
		t.Error("pollExit on a live process returned nil")
	}
}

// TestCommandTimeout: a runtime command that hangs is killed after CommandTimeout when the caller's context has
// no deadline, and the call fails with DeadlineExceeded instead of hanging.
func TestCommandTimeout(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hangingruntime")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexec sleep 1000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Path: bin, ConmonPath: "/bin/true", Root: filepath.Join(dir, "root"), ExitDir: filepath.Join(dir, "exits"),
		PersistRoot: filepath.Join(dir, "persist"), CommandTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := r.State(context.Background(), "c1"); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("State of a hanging runtime: %v, want DeadlineExceeded", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("State of a hanging runtime did not return")
	}
}
