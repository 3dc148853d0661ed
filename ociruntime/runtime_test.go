package ociruntime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

// helperEnv makes the test binary act as a short-lived "noded" that creates and starts a
// container, then exits (see TestConmonOutlivesCaller).
const helperEnv = "NODED_OCIRT_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(helperMain(spec))
	}
	code := m.Run()
	if rootfsDir != "" {
		os.RemoveAll(rootfsDir)
	}
	os.Exit(code)
}

// helperMain: spec is "root|exitdir|persist|id|bundle|logpath".
func helperMain(spec string) int {
	p := strings.Split(spec, "|")
	r, err := New(Config{Name: "runc", Path: testRunc, Root: p[0], ExitDir: p[1], PersistRoot: p[2]})
	if err == nil {
		_, err = r.Create(context.Background(), CreateOpts{ID: p[3], Bundle: p[4], LogPath: p[5]})
	}
	if err == nil {
		err = r.Start(context.Background(), p[3])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestEchoExitCodeAndCRILog(t *testing.T) {
	r := newTestCLI(t)
	w := newWatcher(t, r)
	id := "echo-exit"
	logPath := filepath.Join(t.TempDir(), "c.log")
	bundle := writeBundle(t, id, "echo hello; echo oops >&2; exit 3")
	pid := createContainer(t, r, CreateOpts{ID: id, Bundle: bundle, LogPath: logPath})
	if pid <= 0 {
		t.Fatalf("pid %d", pid)
	}
	st, err := r.State(context.Background(), id)
	if err != nil || st.Status != StatusCreated || st.Pid != pid {
		t.Fatalf("state after create = %+v, %v; want created pid %d", st, err, pid)
	}
	if err := r.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	ev := waitExit(t, w, id, 10*time.Second)
	if ev.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", ev.ExitCode)
	}
	if time.Since(ev.ExitedAt) > time.Minute || ev.ExitedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("implausible exit time %v", ev.ExitedAt)
	}
	code, at, err := r.ExitStatus(id)
	if err != nil || code != 3 || !at.Equal(ev.ExitedAt) {
		t.Errorf("ExitStatus = %d, %v, %v; want 3 at %v", code, at, err, ev.ExitedAt)
	}
	if r.OOMKilled(id) {
		t.Error("OOMKilled true for a normal exit")
	}
	st, err = r.State(context.Background(), id)
	if err != nil || st.Status != StatusStopped {
		t.Errorf("state after exit = %+v, %v; want stopped", st, err)
	}
	lines := readCRILog(t, logPath)
	var got []string
	for _, l := range lines {
		got = append(got, l.stream+" "+l.tag+" "+l.content)
		if time.Since(l.ts) > time.Minute {
			t.Errorf("log timestamp %v is not now", l.ts)
		}
	}
	for _, want := range []string{"stdout F hello", "stderr F oops"} {
		if !slices.Contains(got, want) {
			t.Errorf("log lines %q lack %q", got, want)
		}
	}
	raw, _ := os.ReadFile(logPath)
	if !strings.Contains(string(raw), "+00:00 stdout F hello\n") {
		t.Errorf("log is not RFC 3339 UTC CRI format: %q", raw)
	}

	// Delete is idempotent and removes the runtime state, conmon files and cgroups.
	for i := range 2 {
		if err := r.Delete(context.Background(), id, false); err != nil {
			t.Fatalf("delete #%d: %v", i+1, err)
		}
	}
	if _, err := r.State(context.Background(), id); !errdefs.IsNotFound(err) {
		t.Errorf("state after delete: %v, want NotFound", err)
	}
	if _, _, err := r.ExitStatus(id); !errdefs.IsNotFound(err) {
		t.Errorf("ExitStatus after delete: %v, want NotFound", err)
	}
	if _, err := os.Stat(r.persistDir(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("persist dir left: %v", err)
	}
	if left := cgroupDirs(id); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

func TestLongLineIsSplitIntoPartials(t *testing.T) {
	r := newTestCLI(t)
	w := newWatcher(t, r)
	id := "long-line"
	logPath := filepath.Join(t.TempDir(), "c.log")
	const n = 20000
	bundle := writeBundle(t, id, fmt.Sprintf("head -c %d /dev/zero | tr '\\0' a; echo; echo next", n))
	createContainer(t, r, CreateOpts{ID: id, Bundle: bundle, LogPath: logPath})
	if err := r.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	waitExit(t, w, id, 10*time.Second)
	lines := readCRILog(t, logPath)
	var joined strings.Builder
	partials := 0
	i := 0
	for ; i < len(lines); i++ {
		joined.WriteString(lines[i].content)
		if lines[i].tag == "F" {
			break
		}
		partials++
	}
	if partials == 0 {
		t.Errorf("a %d-byte line produced no partial (P) entries: %d lines", n, len(lines))
	}
	if joined.String() != strings.Repeat("a", n) {
		t.Errorf("reassembled line has %d bytes, want %d a's", joined.Len(), n)
	}
	if i+1 >= len(lines) || lines[i+1].content != "next" || lines[i+1].tag != "F" {
		t.Errorf("line after the long one is missing or wrong")
	}
}

func TestLogSizeMax(t *testing.T) {
	r := newTestCLI(t)
	w := newWatcher(t, r)
	id := "log-max"
	logPath := filepath.Join(t.TempDir(), "c.log")
	bundle := writeBundle(t, id, "i=0; while [ $i -lt 60 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done")
	createContainer(t, r, CreateOpts{ID: id, Bundle: bundle, LogPath: logPath, LogSizeMax: 1000})
	if err := r.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	waitExit(t, w, id, 10*time.Second)
	st, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 1000 {
		t.Errorf("log is %d bytes, over the 1000 limit", st.Size())
	}
	lines := readCRILog(t, logPath)
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1].content, "line-59-") {
		t.Errorf("last log line is not the last output: %+v", lines)
	}
}

func TestKillSIGTERM(t *testing.T) {
	r := newTestCLI(t)
	w := newWatcher(t, r)
	// In its own PID namespace sleep would be PID 1, which ignores SIGTERM without a handler.
	id := "kill-term"
	bundle := writeBundle(t, id, "exec sleep 1000", withHostPID)
	createContainer(t, r, CreateOpts{ID: id, Bundle: bundle})
	ctx := context.Background()
	if err := r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if st, err := r.State(ctx, id); err != nil || st.Status != StatusRunning {
		t.Fatalf("state = %+v, %v; want running", st, err)
	}
	if err := r.Kill(ctx, id, syscall.SIGTERM, false); err != nil {
		t.Fatal(err)
	}
	if ev := waitExit(t, w, id, 10*time.Second); ev.ExitCode != 143 {
		t.Errorf("exit code %d, want 143", ev.ExitCode)
	}
	if err := r.Kill(ctx, id, syscall.SIGTERM, false); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("kill of a stopped container: %v, want FailedPrecondition", err)
	}
}

func TestStateTransitions(t *testing.T) {
	r := newTestCLI(t)
	w := newWatcher(t, r)
	ctx := context.Background()
	id := "states"
	bundle := writeBundle(t, id, "sleep 1000")
	pid := createContainer(t, r, CreateOpts{ID: id, Bundle: bundle})
	step := func(want Status) {
		t.Helper()
		st, err := r.State(ctx, id)
		if err != nil || st.Status != want {
			t.Fatalf("state = %+v, %v; want %s", st, err, want)
		}
	}
	step(StatusCreated)
	if err := r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	step(StatusRunning)
	if err := r.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	step(StatusPaused)
	if err := r.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	step(StatusRunning)
	limit := int64(64 << 20)
	if err := r.Update(ctx, id, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}); err != nil {
		t.Fatalf("update: %v", err)
	}
	got, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", testCgroupBase, id, "memory.limit_in_bytes"))
	if err != nil || strings.TrimSpace(string(got)) != strconv.FormatInt(limit, 10) {
		t.Errorf("memory limit after update = %q, %v", got, err)
	}
	if err := r.Delete(ctx, id, false); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("delete of running container without force: %v, want FailedPrecondition", err)
	}
	if err := r.Kill(ctx, id, syscall.SIGKILL, true); err != nil {
		t.Fatal(err)
	}
	if ev := waitExit(t, w, id, 10*time.Second); ev.ExitCode != 137 {
		t.Errorf("exit code %d, want 137", ev.ExitCode)
	}
	step(StatusStopped)
	if alive(pid) {
		t.Errorf("init pid %d still exists", pid)
	}
	if err := r.Start(ctx, id); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("start of stopped container: %v, want FailedPrecondition", err)
	}
	if _, err := r.State(ctx, "never-created"); !errdefs.IsNotFound(err) {
		t.Errorf("state of unknown container: %v, want NotFound", err)
	}
	if err := r.Delete(ctx, "never-created", true); err != nil {
		t.Errorf("delete of unknown container: %v", err)
	}
}

func TestDeleteForceRunning(t *testing.T) {
	r := newTestCLI(t)
	ctx := context.Background()
	id := "force-delete"
	bundle := writeBundle(t, id, "sleep 1000")
	pid, err := r.Create(ctx, CreateOpts{ID: id, Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	conmon, err := r.ConmonPID(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{pid, conmon} {
		if alive(p) {
			t.Errorf("pid %d survives forced delete", p)
		}
	}
	if _, err := os.Stat(r.exitFile(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("exit file left after delete: %v", err)
	}
	if left := cgroupDirs(id); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

func TestExecSync(t *testing.T) {
	r := newTestCLI(t)
	ctx := context.Background()
	id := "exec"
	bundle := writeBundle(t, id, "sleep 1000")
	createContainer(t, r, CreateOpts{ID: id, Bundle: bundle})
	if err := r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	proc := func(script string) *specs.Process {
		return &specs.Process{Args: []string{"/bin/sh", "-c", script}, Env: []string{"PATH=/bin"}, Cwd: "/"}
	}

	res, err := r.ExecSync(ctx, id, proc("echo $((1+1)); echo e >&2; exit 4"), 10*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "2\n" || string(res.Stderr) != "e\n" || res.ExitCode != 4 {
		t.Errorf("exec = stdout %q stderr %q code %d; want \"2\\n\" \"e\\n\" 4", res.Stdout, res.Stderr, res.ExitCode)
	}

	res, err = r.ExecSync(ctx, id, proc("head -c 100000 /dev/zero"), 10*time.Second, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stdout) != 1000 || !res.StdoutTruncated || res.StderrTruncated || res.ExitCode != 0 {
		t.Errorf("capped exec: %d bytes, truncated %v/%v, code %d", len(res.Stdout), res.StdoutTruncated, res.StderrTruncated, res.ExitCode)
	}

	before := cgroupProcs(t, id)
	start := time.Now()
	_, err = r.ExecSync(ctx, id, proc("sleep 100 & sleep 101"), time.Second, 0)
	if !errors.Is(err, ErrExecTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exec past its timeout: %v, want ErrExecTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timed-out exec returned after %s", d)
	}
	if after := cgroupProcs(t, id); !slices.Equal(before, after) {
		t.Errorf("processes left behind by the timed-out exec: before %v, after %v", before, after)
	}

	if _, err := r.ExecSync(ctx, "no-such", proc("true"), time.Second, 0); !errdefs.IsNotFound(err) {
		t.Errorf("exec in unknown container: %v, want NotFound", err)
	}
	res, err = r.ExecSync(ctx, id, &specs.Process{Args: []string{"/nonexistent"}, Cwd: "/"}, 5*time.Second, 0)
	if err == nil {
		t.Errorf("exec of a missing binary succeeded: %+v", res)
	}
}

func TestReopenLog(t *testing.T) {
	r := newTestCLI(t)
	ctx := context.Background()
	id := "reopen"
	logPath := filepath.Join(t.TempDir(), "c.log")
	bundle := writeBundle(t, id, "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.02; done")
	createContainer(t, r, CreateOpts{ID: id, Bundle: bundle, LogPath: logPath})
	if err := r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { st, err := os.Stat(logPath); return err == nil && st.Size() > 0 })
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := r.ReopenLog(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(logPath); err != nil {
		t.Fatalf("log not re-created: %v", err)
	}
	waitFor(t, func() bool { return len(readCRILog(t, logPath)) > 2 })
	old := readCRILog(t, rotated)
	time.Sleep(100 * time.Millisecond)
	if again := readCRILog(t, rotated); len(again) != len(old) {
		t.Errorf("rotated file still written to: %d -> %d lines", len(old), len(again))
	}
	if err := r.Resize(ctx, id, 80, 24); err != nil {
		t.Errorf("resize message: %v", err)
	}
	sock, err := r.AttachSocketPath(id)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(sock); err != nil || st.Mode()&os.ModeSocket == 0 {
		t.Errorf("attach socket %s: %v", sock, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10s")
}

func TestConmonOutlivesCaller(t *testing.T) {
	r := newTestCLI(t)
	w := newWatcher(t, r)
	ctx := context.Background()
	id := "outlive"
	logPath := filepath.Join(t.TempDir(), "c.log")
	bundle := writeBundle(t, id, "echo started; sleep 1000")
	t.Cleanup(func() {
		if err := r.Delete(context.Background(), id, true); err != nil {
			t.Errorf("delete: %v", err)
		}
	})
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join([]string{r.cfg.Root, r.cfg.ExitDir, r.cfg.PersistRoot, id, bundle, logPath}, "|"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper noded: %v: %s", err, out)
	}
	helperPID := cmd.Process.Pid
	conmon, err := r.ConmonPID(id)
	if err != nil {
		t.Fatalf("conmon gone after its caller exited: %v", err)
	}
	ppid, _ := strconv.Atoi(procStatusField(conmon, "PPid"))
	if ppid == helperPID || ppid == os.Getpid() {
		t.Errorf("conmon's parent is %d (helper %d, test %d): not detached", ppid, helperPID, os.Getpid())
	}
	if sid, err := unix.Getsid(conmon); err != nil || sid != conmon {
		t.Errorf("conmon session = %d, %v; want its own (%d)", sid, err, conmon)
	}
	if st, err := r.State(ctx, id); err != nil || st.Status != StatusRunning {
		t.Fatalf("state = %+v, %v; want running", st, err)
	}
	t.Logf("conmon pid %d ppid %d, VmRSS %s, oom_score_adj %s", conmon, ppid, procStatusField(conmon, "VmRSS"), readTrim(fmt.Sprintf("/proc/%d/oom_score_adj", conmon)))
	waitFor(t, func() bool { b, _ := os.ReadFile(logPath); return strings.Contains(string(b), "stdout F started") })
	if err := r.Kill(ctx, id, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if ev := waitExit(t, w, id, 10*time.Second); ev.ExitCode != 137 {
		t.Errorf("exit %d, want 137", ev.ExitCode)
	}
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func TestCreateFailureReportsRuntimeError(t *testing.T) {
	r := newTestCLI(t)
	id := "bad-create"
	bundle := writeBundle(t, id, "true", func(s *specs.Spec) { s.Process.Args = []string{"/no/such/binary"} })
	_, err := r.Create(context.Background(), CreateOpts{ID: id, Bundle: bundle})
	if err == nil {
		r.Delete(context.Background(), id, true)
		t.Fatal("create of a container with a missing binary succeeded")
	}
	if !strings.Contains(err.Error(), "no such file") && !strings.Contains(err.Error(), "not found") {
		t.Errorf("error lacks the runtime's reason: %v", err)
	}
	if _, err := os.Stat(r.persistDir(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("persist dir left after failed create: %v", err)
	}
	if _, err := r.State(context.Background(), id); !errdefs.IsNotFound(err) {
		t.Errorf("runtime state left after failed create: %v", err)
	}
	if left := cgroupDirs(id); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	if _, err := r.Create(context.Background(), CreateOpts{ID: "../x", Bundle: bundle}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad id: %v, want InvalidArgument", err)
	}
}

func TestOOMKilled(t *testing.T) {
	r := newTestCLI(t)
	w := newWatcher(t, r)
	id := "oom"
	// tail keeps the whole newline-free stream in memory.
	bundle := writeBundle(t, id, "head -c 200000000 /dev/zero | tail", withMemoryLimit(16<<20))
	createContainer(t, r, CreateOpts{ID: id, Bundle: bundle})
	if err := r.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	ev := waitExit(t, w, id, 30*time.Second)
	if !r.OOMKilled(id) {
		t.Errorf("OOMKilled false; exit code %d", ev.ExitCode)
	}
}

func TestFeaturesRunc(t *testing.T) {
	r := newTestCLI(t)
	f, err := r.Features(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f.Raw == nil || !f.RecursiveReadOnly || !f.IDMapMounts || !f.UserNamespaces || !f.Seccomp {
		t.Errorf("runc 1.5 features = %+v", f)
	}
	if f2, _ := r.Features(context.Background()); f2 != f {
		t.Error("features not cached")
	}
}

func TestFeaturesWithoutCommand(t *testing.T) {
	requireRuntime(t)
	crun, err := exec.LookPath("crun")
	if err != nil {
		t.Skip("no crun")
	}
	if exec.Command(crun, "features").Run() == nil {
		t.Skip("this crun has a features command")
	}
	base := t.TempDir()
	r, err := New(Config{Path: crun, Root: base + "/r", ExitDir: base + "/e", PersistRoot: base + "/p"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := r.Features(context.Background())
	if err != nil || f.Raw != nil || f.RecursiveReadOnly || r.Name() != "crun" {
		t.Errorf("features of old crun = %+v, %v", f, err)
	}
}

// TestMeasureStartLatency compares create+start through conmon with `runc run -d`, and
// reports conmon's resident memory.
// TestMeasureStartLatency prints create+start latencies through conmon and straight through runc. It is a
// measurement, not a check: run it with NODED_MEASURE=1 (hack/bench measures whole pod starts).
func TestMeasureStartLatency(t *testing.T) {
	if os.Getenv("NODED_MEASURE") == "" {
		t.Skip("measurement; set NODED_MEASURE=1 to run")
	}
	r := newTestCLI(t)
	ctx := context.Background()
	const n = 20
	var viaConmon, conmonCreate, direct, directCreateStart []time.Duration
	var rss []string
	for i := range n {
		id := fmt.Sprintf("lat-conmon-%d", i)
		bundle := writeBundle(t, id, "sleep 1000")
		t0 := time.Now()
		if _, err := r.Create(ctx, CreateOpts{ID: id, Bundle: bundle, LogPath: filepath.Join(t.TempDir(), "l")}); err != nil {
			t.Fatal(err)
		}
		conmonCreate = append(conmonCreate, time.Since(t0))
		if err := r.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		viaConmon = append(viaConmon, time.Since(t0))
		if pid, err := r.ConmonPID(id); err == nil {
			rss = append(rss, procStatusField(pid, "VmRSS"))
		}
		if err := r.Delete(ctx, id, true); err != nil {
			t.Fatal(err)
		}

		id = fmt.Sprintf("lat-direct-%d", i)
		bundle = writeBundle(t, id, "sleep 1000")
		t0 = time.Now()
		// The detached container inherits runc's stdio: give it a file, not a pipe we would wait on.
		errFile, err := os.CreateTemp(t.TempDir(), "stderr")
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(testRunc, "--root", r.cfg.Root, "run", "-d", "--bundle", bundle, id)
		cmd.Stderr = errFile
		err = cmd.Run()
		errFile.Close()
		if err != nil {
			out, _ := os.ReadFile(errFile.Name())
			t.Fatalf("runc run: %v: %s", err, out)
		}
		direct = append(direct, time.Since(t0))
		dcid := id
		t.Cleanup(func() { exec.Command(testRunc, "--root", r.cfg.Root, "delete", "-f", dcid).Run() })

		// The same two steps as through conmon, without conmon.
		id = fmt.Sprintf("lat-direct2-%d", i)
		bundle = writeBundle(t, id, "sleep 1000")
		t0 = time.Now()
		for _, args := range [][]string{{"create", "--bundle", bundle, id}, {"start", id}} {
			cmd := exec.Command(testRunc, append([]string{"--root", r.cfg.Root}, args...)...)
			if err := cmd.Run(); err != nil { // stdio is /dev/null: nothing to wait for
				t.Fatalf("runc %s: %v", args[0], err)
			}
		}
		directCreateStart = append(directCreateStart, time.Since(t0))
		cid := id
		t.Cleanup(func() { exec.Command(testRunc, "--root", r.cfg.Root, "delete", "-f", cid).Run() })
		if out, err := exec.Command(testRunc, "--root", r.cfg.Root, "delete", "-f", id).CombinedOutput(); err != nil {
			t.Fatalf("runc delete: %v: %s", err, out)
		}
	}
	for _, d := range [][]time.Duration{viaConmon, conmonCreate, direct, directCreateStart} {
		slices.Sort(d)
	}
	t.Logf("p50: conmon Create alone %v; runc create + runc start without conmon %v", conmonCreate[n/2], directCreateStart[n/2])
	t.Logf("create+start p50 over %d: conmon %v (min %v max %v), runc run -d %v (min %v max %v)",
		n, viaConmon[n/2], viaConmon[0], viaConmon[n-1], direct[n/2], direct[0], direct[n-1])
	t.Logf("conmon VmRSS samples: %v", rss)
}

func TestTerminalContainerLogsThroughPTY(t *testing.T) {
	r := newTestCLI(t)
	w := newWatcher(t, r)
	id := "tty"
	logPath := filepath.Join(t.TempDir(), "c.log")
	bundle := writeBundle(t, id, "[ -t 1 ] && echo is-a-tty", func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
			Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}})
	})
	createContainer(t, r, CreateOpts{ID: id, Bundle: bundle, LogPath: logPath, Terminal: true})
	if err := r.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if ev := waitExit(t, w, id, 10*time.Second); ev.ExitCode != 0 {
		t.Errorf("exit %d", ev.ExitCode)
	}
	var got []string
	for _, l := range readCRILog(t, logPath) {
		got = append(got, strings.TrimRight(l.content, "\r"))
	}
	if !slices.Contains(got, "is-a-tty") {
		t.Errorf("log %q lacks the tty check's output", got)
	}
}

func TestStdinThroughAttachSocket(t *testing.T) {
	r := newTestCLI(t)
	w := newWatcher(t, r)
	ctx := context.Background()
	id := "stdin"
	logPath := filepath.Join(t.TempDir(), "c.log")
	bundle := writeBundle(t, id, "read line; echo got-$line")
	createContainer(t, r, CreateOpts{ID: id, Bundle: bundle, LogPath: logPath, Stdin: true, StdinOnce: true})
	if err := r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	sock, err := r.AttachSocketPath(id)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 8192)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	// conmon prefixes attach output with the stream: 2 = stdout (1 stdin, 3 stderr).
	if n < 1 || buf[0] != 2 || string(buf[1:n]) != "got-ping\n" {
		t.Errorf("attach output %q", buf[:n])
	}
	if ev := waitExit(t, w, id, 10*time.Second); ev.ExitCode != 0 {
		t.Errorf("exit %d", ev.ExitCode)
	}
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "stdout F got-ping\n") {
		t.Errorf("log %q", b)
	}
}
