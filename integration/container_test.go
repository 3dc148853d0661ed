package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
	"github.com/noded/noded/internal/testimage"
)

// ctrOpts adjusts a container config before it is created.
type ctrOpts func(*runtimeapi.ContainerConfig)

// runContainer creates and starts a container of the pod with command cmd.
func (e *podEnv) runContainer(t *testing.T, podID string, podCfg *runtimeapi.PodSandboxConfig, name string, opt ctrOpts, cmd ...string) string {
	t.Helper()
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  cmd,
		LogPath:  name + ".log",
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: podCfg.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
	if opt != nil {
		opt(cfg)
	}
	id, err := e.n.Runtime.CreateContainer(e.ctx, podID, cfg, podCfg)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	if err := e.n.Runtime.StartContainer(e.ctx, id); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	return id
}

// output runs cmd in a new container of the pod, waits for it to exit and returns its exit code and the
// messages of its log (CRI format checked and stripped).
func (e *podEnv) output(t *testing.T, podID string, podCfg *runtimeapi.PodSandboxConfig, name string, opt ctrOpts, cmd ...string) (int32, string) {
	t.Helper()
	id := e.runContainer(t, podID, podCfg, name, opt, cmd...)
	st := e.waitExited(t, id)
	return st.ExitCode, criLogMessages(t, st.LogPath)
}

// criLogMessages reads a CRI log file, checks every record's format and returns the full lines (partial records
// joined per stream), one per line.
func criLogMessages(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	var out strings.Builder
	partial := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, " ", 4)
		if len(f) == 3 { // an empty message
			f = append(f, "")
		}
		if len(f) != 4 {
			t.Fatalf("log record %q is not in CRI format", line)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil || (f[1] != "stdout" && f[1] != "stderr") || (f[2] != "F" && f[2] != "P") {
			t.Fatalf("log record %.80q is not in CRI format", line)
		}
		partial[f[1]] += f[3]
		if f[2] == "F" {
			out.WriteString(partial[f[1]] + "\n")
			delete(partial, f[1])
		}
	}
	return out.String()
}

func (e *podEnv) exec(t *testing.T, id string, cmd ...string) string {
	t.Helper()
	stdout, stderr, err := e.n.Runtime.ExecSync(e.ctx, id, cmd, 20*time.Second)
	if err != nil {
		t.Fatalf("exec %v: %v (stderr %q)", cmd, err, stderr)
	}
	return string(stdout)
}

// newPod runs a pod removed when the (sub)test ends.
func (e *podEnv) newPod(t *testing.T, name string) (string, *runtimeapi.PodSandboxConfig) {
	t.Helper()
	cfg := e.podConfig(t, name)
	id := e.runPod(t, cfg)
	t.Cleanup(func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, id) })
	return id, cfg
}

// statusBits parses a hexadecimal capability line ("CapEff:\t...") of /proc/self/status.
func statusBits(t *testing.T, status, field string) uint64 {
	t.Helper()
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("parse %s: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in %q", field, status)
	return 0
}

func TestContainerSecurityAndLogs(t *testing.T) {
	bb := framework.Busybox(t)
	userImg, err := testimage.Derive(bb, nil, func(c *v1.Config) { c.User = "www-data" })
	if err != nil {
		t.Fatal(err)
	}
	stopImg, err := testimage.Derive(bb, nil, func(c *v1.Config) { c.StopSignal = "SIGUSR1" })
	if err != nil {
		t.Fatal(err)
	}
	e := newPodEnvWithImages(t, 31, "",
		map[string]v1.Image{"it/user:latest": userImg, "it/stopsig:latest": stopImg})
	for _, ref := range []string{"it/user", "it/stopsig"} {
		if _, err := e.n.Image.PullImage(e.ctx, &runtimeapi.ImageSpec{Image: ref}, nil, nil); err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
	}
	podID, podCfg := e.newPod(t, "security")

	t.Run("log format and exit codes", func(t *testing.T) {
		long := strings.Repeat("x", 40000) // longer than conmon's line buffer (8 KiB): split into P records
		code, out := e.output(t, podID, podCfg, "logs", nil, "sh", "-c",
			"echo out; echo err >&2; printf 'no newline'; echo; echo "+long+"; exit 0")
		if code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		for _, w := range []string{"out\n", "err\n", "no newline\n", long + "\n"} {
			if !strings.Contains(out, w) {
				t.Errorf("log messages lack %.40q:\n%.300s", w, out)
			}
		}
		// The long line was split into partial records.
		data, _ := os.ReadFile(filepath.Join(podCfg.LogDirectory, "logs.log"))
		if n := strings.Count(string(data), " stdout P "); n < 2 {
			t.Errorf("%d partial records for a 40000-byte line, want ≥ 2:\n%.400s", n, data)
		}
		for _, c := range []struct {
			cmd    string
			code   int32
			reason string
		}{{"exit 0", 0, "Completed"}, {"exit 42", 42, "Error"}, {"exit 255", 255, "Error"}} {
			id := e.runContainer(t, podID, podCfg, "exit-"+fmt.Sprint(c.code), nil, "sh", "-c", c.cmd)
			if st := e.waitExited(t, id); st.ExitCode != c.code || st.Reason != c.reason {
				t.Errorf("%q: exit code %d reason %q, want %d %q", c.cmd, st.ExitCode, st.Reason, c.code, c.reason)
			}
		}
	})

	t.Run("image stop signal", func(t *testing.T) {
		// The image's STOPSIGNAL (SIGUSR1) reaches the container: its handler exits 7 (SIGTERM would end it with
		// 143 and the SIGKILL after the timeout with 137).
		id := e.runContainer(t, podID, podCfg, "stopsig", func(c *runtimeapi.ContainerConfig) { c.Image.Image = "it/stopsig" },
			"sh", "-c", "trap 'echo got USR1; exit 7' USR1; trap '' TERM; echo ready; while true; do sleep 0.1; done")
		waitLog(t, filepath.Join(podCfg.LogDirectory, "stopsig.log"), "ready")
		if err := e.n.Runtime.StopContainer(e.ctx, id, 60); err != nil {
			t.Fatal(err)
		}
		st := e.waitExited(t, id)
		if st.ExitCode != 7 {
			t.Errorf("exit code %d after stop, want 7 (the image's SIGUSR1 handler)", st.ExitCode)
		}
	})

	t.Run("read-only rootfs", func(t *testing.T) {
		code, out := e.output(t, podID, podCfg, "rofs", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.ReadonlyRootfs = true
		}, "sh", "-c", "touch /etc/x 2>&1; touch /tmp/x 2>&1; touch /dev/shm/x && echo shm ok")
		if code != 0 || strings.Count(out, "Read-only file system") != 2 || !strings.Contains(out, "shm ok") {
			t.Errorf("read-only rootfs: code %d, output:\n%s", code, out)
		}
	})

	t.Run("users", func(t *testing.T) {
		uid := func(v int64) *runtimeapi.Int64Value { return &runtimeapi.Int64Value{Value: v} }
		for _, tc := range []struct {
			name string
			opt  ctrOpts
			want string
		}{
			{"run_as_user", func(c *runtimeapi.ContainerConfig) { c.Linux.SecurityContext.RunAsUser = uid(1234) }, "1234 0"},
			{"run_as_user_group", func(c *runtimeapi.ContainerConfig) {
				c.Linux.SecurityContext.RunAsUser, c.Linux.SecurityContext.RunAsGroup = uid(1234), uid(5678)
			}, "1234 5678"},
			{"run_as_username", func(c *runtimeapi.ContainerConfig) { c.Linux.SecurityContext.RunAsUsername = "nobody" }, "65534 65534"},
			{"image_user", func(c *runtimeapi.ContainerConfig) { c.Image.Image = "it/user" }, "33 33"},
		} {
			code, out := e.output(t, podID, podCfg, "user-"+strings.ReplaceAll(tc.name, "_", "-"), tc.opt, "sh", "-c", "echo $(id -u) $(id -g)")
			if code != 0 || strings.TrimSpace(out) != tc.want {
				t.Errorf("%s: code %d, uid gid %q, want %q", tc.name, code, strings.TrimSpace(out), tc.want)
			}
		}
	})

	t.Run("dropped capabilities", func(t *testing.T) {
		const capChown, capNetRaw = 0, 13
		status := func(name string, opt ctrOpts) string {
			code, out := e.output(t, podID, podCfg, name, opt, "cat", "/proc/self/status")
			if code != 0 {
				t.Fatalf("%s: exit %d", name, code)
			}
			return out
		}
		def := status("caps-default", nil)
		if statusBits(t, def, "CapEff")&(1<<capChown) == 0 {
			t.Fatalf("CAP_CHOWN not in the default set: %s", def)
		}
		dropped := status("caps-dropped", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"CHOWN", "CAP_NET_RAW"}}
		})
		for _, f := range []string{"CapEff", "CapBnd", "CapPrm"} {
			if b := statusBits(t, dropped, f); b&(1<<capChown|1<<capNetRaw) != 0 {
				t.Errorf("%s = %#x still has CHOWN or NET_RAW", f, b)
			}
		}
		code, out := e.output(t, podID, podCfg, "caps-chown", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"CHOWN"}}
		}, "sh", "-c", "touch /tmp/f && chown 1:1 /tmp/f")
		if code == 0 {
			t.Errorf("chown succeeded without CAP_CHOWN: %s", out)
		}
		all := status("caps-drop-all", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}}
		})
		if b := statusBits(t, all, "CapEff") | statusBits(t, all, "CapBnd"); b != 0 {
			t.Errorf("drop ALL left capabilities %#x", b)
		}
	})

	t.Run("seccomp RuntimeDefault", func(t *testing.T) {
		// Creating a user namespace needs no capability, so only the profile can refuse it.
		profile := func(typ runtimeapi.SecurityProfile_ProfileType) ctrOpts {
			return func(c *runtimeapi.ContainerConfig) {
				c.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: typ}
			}
		}
		cmd := []string{"sh", "-c", "unshare -U true && echo allowed"}
		code, out := e.output(t, podID, podCfg, "seccomp-unconfined", profile(runtimeapi.SecurityProfile_Unconfined), cmd...)
		if code != 0 || !strings.Contains(out, "allowed") {
			t.Fatalf("unconfined unshare: code %d, %s", code, out)
		}
		code, out = e.output(t, podID, podCfg, "seccomp-default", profile(runtimeapi.SecurityProfile_RuntimeDefault), cmd...)
		if code == 0 || strings.Contains(out, "allowed") || !strings.Contains(out, "Operation not permitted") {
			t.Errorf("RuntimeDefault did not block unshare: code %d, %s", code, out)
		}
	})

	if err := e.n.Runtime.RemovePodSandbox(e.ctx, podID); err != nil {
		t.Fatal(err)
	}
	assertNoLeaks(t, e.n)
}

// waitLog waits until the log file contains s.
func waitLog(t *testing.T, path, s string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), s) {
			return string(b)
		}
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%s never contained %q:\n%s", path, s, b)
	return ""
}

func TestPodContainersShare(t *testing.T) {
	e := newPodEnv(t, 32, nil)
	podID, podCfg := e.newPod(t, "share")

	t.Run("volume", func(t *testing.T) {
		vol := t.TempDir()
		mount := func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{HostPath: vol, ContainerPath: "/data"}}
		}
		writer := e.runContainer(t, podID, podCfg, "vol-writer", mount, "sh", "-c", "echo from-writer > /data/w; sleep 1000")
		reader := e.runContainer(t, podID, podCfg, "vol-reader", mount, "sleep", "1000")
		var got string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && got != "from-writer\n"; time.Sleep(20 * time.Millisecond) {
			got, _ = readExec(e, reader, "cat", "/data/w")
		}
		if got != "from-writer\n" {
			t.Fatalf("reader sees %q in the shared volume", got)
		}
		e.exec(t, reader, "sh", "-c", "echo from-reader > /data/r")
		if got := e.exec(t, writer, "cat", "/data/r"); got != "from-reader\n" {
			t.Errorf("writer sees %q", got)
		}
		if b, err := os.ReadFile(filepath.Join(vol, "r")); err != nil || string(b) != "from-reader\n" {
			t.Errorf("host sees %q, %v", b, err)
		}
	})

	t.Run("localhost and IPC", func(t *testing.T) {
		server := e.runContainer(t, podID, podCfg, "server", nil, "sh", "-c",
			"touch /dev/mqueue/pod-queue; while true; do echo pong | nc -l -p 7777 127.0.0.1; done")
		client := e.runContainer(t, podID, podCfg, "client", nil, "sleep", "1000")
		var got string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && got != "pong"; time.Sleep(50 * time.Millisecond) {
			out, _ := readExec(e, client, "sh", "-c", "nc 127.0.0.1 7777 </dev/null")
			got = strings.TrimSpace(out)
		}
		if got != "pong" {
			t.Fatalf("client got %q from the server on 127.0.0.1", got)
		}
		// The message queue the server made is in the client's IPC namespace (mqueue mounts are per IPC
		// namespace), and both report the same namespaces.
		if out := e.exec(t, client, "ls", "/dev/mqueue"); !strings.Contains(out, "pod-queue") {
			t.Errorf("client's /dev/mqueue lacks the server's queue: %q", out)
		}
		ns := func(id string) string {
			return e.exec(t, id, "sh", "-c", "for n in ipc net uts; do readlink /proc/self/ns/$n; done")
		}
		if a, b := ns(server), ns(client); a != b {
			t.Errorf("namespaces differ:\nserver %s\nclient %s", a, b)
		}
		host, _ := os.Readlink("/proc/self/ns/ipc")
		if strings.Contains(ns(client), host) {
			t.Errorf("the pod uses the host's IPC namespace %s", host)
		}
	})

	t.Run("log reopen", func(t *testing.T) {
		id := e.runContainer(t, podID, podCfg, "reopen", nil, "sh", "-c",
			"i=0; while true; do i=$((i+1)); echo line $i; sleep 0.05; done")
		logPath := filepath.Join(podCfg.LogDirectory, "reopen.log")
		waitLog(t, logPath, "line 2\n")
		rotated := logPath + ".1"
		if err := os.Rename(logPath, rotated); err != nil {
			t.Fatal(err)
		}
		if err := e.n.Runtime.ReopenContainerLog(e.ctx, id); err != nil {
			t.Fatalf("ReopenContainerLog: %v", err)
		}
		// The new file gets the lines written from now on, in CRI format; the rotated one stops growing.
		waitLog(t, logPath, " stdout F line ")
		before, _ := os.ReadFile(rotated)
		waitLog(t, logPath, fmt.Sprintf("line %d\n", lastLine(t, string(before))+5))
		after, _ := os.ReadFile(rotated)
		if string(after) != string(before) {
			t.Errorf("the renamed log still grows after reopen")
		}
		criLogMessages(t, logPath)
		if err := e.n.Runtime.StopContainer(e.ctx, id, 0); err != nil {
			t.Fatal(err)
		}
		if err := e.n.Runtime.ReopenContainerLog(e.ctx, id); err == nil {
			t.Error("ReopenContainerLog of a stopped container succeeded")
		}
	})

	if err := e.n.Runtime.RemovePodSandbox(e.ctx, podID); err != nil {
		t.Fatal(err)
	}
	assertNoLeaks(t, e.n)
}

func readExec(e *podEnv, id string, cmd ...string) (string, error) {
	stdout, _, err := e.n.Runtime.ExecSync(e.ctx, id, cmd, 10*time.Second)
	return string(stdout), err
}

// lastLine returns the highest "line N" number in a log.
func lastLine(t *testing.T, log string) int {
	t.Helper()
	last := 0
	for _, l := range strings.Split(log, "\n") {
		if i := strings.LastIndex(l, "line "); i >= 0 {
			if n, err := strconv.Atoi(strings.TrimSpace(l[i+5:])); err == nil && n > last {
				last = n
			}
		}
	}
	if last == 0 {
		t.Fatalf("no line numbers in %q", log)
	}
	return last
}
