package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
	"github.com/noded/noded/internal/testimage"
)

// initPID returns the host PID of a shared-PID pod's init from the verbose sandbox status.
func (e *podEnv) initPID(t *testing.T, podID string) int {
	t.Helper()
	st, err := e.n.Runtime.PodSandboxStatus(e.ctx, podID, true)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		InitPid int `json:"initPid"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.InitPid == 0 {
		t.Fatalf("no initPid in verbose status %q: %v", st.Info["info"], err)
	}
	return info.InitPid
}

// writableProcPaths reads a process's mountinfo (a read-only look from the host: nothing is opened for writing)
// and returns each p/sys and p/sysrq-trigger, for every procfs mount point p, that exists and is not on a
// read-only mount.
func writableProcPaths(t *testing.T, pid int) []string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	type mnt struct {
		point string
		ro    bool
		proc  bool
	}
	var mounts []mnt
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 6 || sep < 0 || sep+1 >= len(f) {
			t.Fatalf("mountinfo line %q", line)
		}
		mounts = append(mounts, mnt{point: f[4], ro: slices.Contains(strings.Split(f[5], ","), "ro"), proc: f[sep+1] == "proc"})
	}
	// roAt reports whether the last mount covering p (the one visible there) is read-only.
	roAt := func(p string) bool {
		ro := false
		for _, m := range mounts {
			if p == m.point || strings.HasPrefix(p, strings.TrimSuffix(m.point, "/")+"/") {
				ro = m.ro
			}
		}
		return ro
	}
	var out []string
	for _, m := range mounts {
		if !m.proc {
			continue
		}
		for _, p := range []string{path.Join(m.point, "sys"), path.Join(m.point, "sysrq-trigger")} {
			// lstat only, through the process's root: a path the kernel does not have (no CONFIG_MAGIC_SYSRQ)
			// is not writable.
			if _, err := os.Lstat(fmt.Sprintf("/proc/%d/root%s", pid, p)); errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if !roAt(p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// TestPodInitGivesNoHostProc: containers of a shared-PID pod see the pod init as PID 1 and its root at
// /proc/1/root. A root container (default capabilities, no seccomp) must not reach a writable /proc/sys or
// /proc/sysrq-trigger of the host through it. A pod config without namespace options shares one PID namespace
// too (PID = POD is enum value 0), so it is checked as well.
func TestPodInitGivesNoHostProc(t *testing.T) {
	e := newPodEnv(t, 75, nil)
	for name, linux := range map[string]*runtimeapi.LinuxPodSandboxConfig{
		"pid-pod": {SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}}},
		"no-namespace-options": nil,
	} {
		t.Run(name, func(t *testing.T) {
			podCfg := e.podConfig(t, name)
			podCfg.Linux = linux
			podID := e.runPod(t, podCfg)
			t.Cleanup(func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, podID) })

			// Writes the host's core_pattern back unchanged if it can: harmless, and it proves the write. With
			// CAP_SYS_PTRACE the container gets through /proc/1/root (owned by the init's user), so the write
			// must then fail on the read-only /proc.
			const write = `v=$(cat /proc/1/root/proc/sys/kernel/core_pattern); printf %s "$v" > /proc/1/root/proc/sys/kernel/core_pattern`
			ptrace := func(c *runtimeapi.ContainerConfig) {
				c.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"SYS_PTRACE"}}
			}
			for name, opt := range map[string]ctrOpts{"core-pattern": nil, "core-pattern-ptrace": ptrace} {
				if code, out := e.output(t, podID, podCfg, name, opt, "sh", "-c", write); code == 0 {
					t.Fatalf("%s: a root container wrote kernel.core_pattern through /proc/1/root (output %q)", name, out)
				}
			}
			// sysrq-trigger is never opened: the host reads the init's mountinfo.
			code, out := e.output(t, podID, podCfg, "status", nil, "grep", "-E", `^(Uid|Gid|CapEff|CapBnd|NoNewPrivs|Seccomp):`, "/proc/1/status")
			if code != 0 {
				t.Fatalf("status of the pod init: exit %d: %s", code, out)
			}
			pid := e.initPID(t, podID)
			if w := writableProcPaths(t, pid); len(w) > 0 {
				mi, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
				t.Errorf("writable in the pod init's mount namespace: %v\n%s", w, mi)
			}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) < 2:
					t.Errorf("status line %q", line)
				case (f[0] == "Uid:" || f[0] == "Gid:") && !slices.Equal(f[1:], []string{"65535", "65535", "65535", "65535"}):
					t.Errorf("pod init %s", line)
				case (f[0] == "CapEff:" || f[0] == "CapBnd:") && f[1] != "0000000000000000":
					t.Errorf("pod init %s", line)
				case f[0] == "NoNewPrivs:" && f[1] != "1", f[0] == "Seccomp:" && f[1] != "2":
					t.Errorf("pod init %s", line)
				}
			}
		})
	}
}

// TestRuntimeDefaultSeccompWithoutFeaturesCommand runs a container with the RuntimeDefault profile on a
// runtime whose `features` command fails (as crun 1.8 has none): the profile must still be applied. A runtime
// whose features say it has no seccomp fails CreateContainer with FailedPrecondition.
func TestRuntimeDefaultSeccompWithoutFeaturesCommand(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "nofeatures-runc")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nfor a; do [ \"$a\" = features ] && { echo 'unknown command features' >&2; exit 1; }; done\nexec /usr/local/sbin/runc \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	noSeccomp := filepath.Join(dir, "noseccomp-runc")
	if err := os.WriteFile(noSeccomp, []byte("#!/bin/sh\nfor a; do [ \"$a\" = features ] && { echo '{\"ociVersionMin\":\"1.0.0\",\"linux\":{\"seccomp\":{\"enabled\":false}}}'; exit 0; }; done\nexec /usr/local/sbin/runc \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newPodEnvWith(t, 76, fmt.Sprintf("[runtimes.nofeatures]\npath = %q\n[runtimes.noseccomp]\npath = %q\n", script, noSeccomp))
	podCfg := e.podConfig(t, "nofeatures")
	podID, err := e.n.Runtime.RunPodSandbox(e.ctx, podCfg, "nofeatures")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, podID) })
	seccomp := func(c *runtimeapi.ContainerConfig) {
		c.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	}
	code, out := e.output(t, podID, podCfg, "seccomp", seccomp, "grep", "^Seccomp:", "/proc/self/status")
	if code != 0 || strings.Fields(out)[len(strings.Fields(out))-1] != "2" {
		t.Fatalf("RuntimeDefault on a runtime without `features`: exit %d, %q, want Seccomp: 2 (filter)", code, out)
	}

	podCfg = e.podConfig(t, "noseccomp")
	podID, err = e.n.Runtime.RunPodSandbox(e.ctx, podCfg, "noseccomp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, podID) })
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "seccomp"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
		Command: []string{"true"}, Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}},
	}
	seccomp(cfg)
	if _, err := e.n.Runtime.CreateContainer(e.ctx, podID, cfg, podCfg); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("RuntimeDefault on a runtime without seccomp: %v, want FailedPrecondition", err)
	}
}

// toolSource is a static helper for the security tests: "euid" prints the effective uid; "socket F..." tries
// socket(F, SOCK_STREAM or SOCK_SEQPACKET, 0) for each family and prints "F:ok" or "F:<errno name>".
const toolSource = `package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "socket" {
		for _, a := range os.Args[2:] {
			f, _ := strconv.Atoi(a)
			typ := syscall.SOCK_STREAM
			if f == 38 {
				typ = syscall.SOCK_SEQPACKET
			}
			fd, err := syscall.Socket(f, typ, 0)
			if err == nil {
				syscall.Close(fd)
				fmt.Printf("%d:ok\n", f)
			} else if err == syscall.EPERM {
				fmt.Printf("%d:EPERM\n", f)
			} else {
				fmt.Printf("%d:%v\n", f, err)
			}
		}
		return
	}
	fmt.Printf("euid=%d\n", os.Geteuid())
}
`

// securityImage returns busybox with /usr/local/bin/tool (toolSource) setuid-root, and a /secret readable by
// everyone (in the image). NODED_TEST_SECTOOL names a prebuilt tool (for the guest, which has no Go).
func securityImage(t *testing.T) v1.Image {
	t.Helper()
	if p := os.Getenv("NODED_TEST_SECTOOL"); p != "" {
		bin, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return securityImageWith(t, bin)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(toolSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/sectool\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", "sectool", ".")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the test tool: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "sectool"))
	if err != nil {
		t.Fatal(err)
	}
	return securityImageWith(t, bin)
}

func securityImageWith(t *testing.T, bin []byte) v1.Image {
	t.Helper()
	layer := testimage.NewFS()
	layer.WriteFile("/usr/local/bin/tool", bin, 0o755|fs.ModeSetuid)
	layer.WriteFile("/secret", []byte("container-secret\n"), 0o644)
	img, err := testimage.Derive(framework.Busybox(t), layer, nil)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// asNobody runs argv on the host as uid/gid 65534 without supplementary groups. A shell that already runs as
// nobody executes argv: setpriv's own execve resolves the path while it still holds root's capabilities.
func asNobody(argv ...string) (string, error) {
	out, err := exec.Command("setpriv", append([]string{"--reuid", "65534", "--regid", "65534", "--clear-groups", "--",
		"/bin/sh", "-c", `exec "$@"`, "sh"}, argv...)...).CombinedOutput()
	return string(out), err
}

// TestBundleNotReachableByHostUsers: a host user that is not root must neither run a container's setuid-root
// binaries as root nor read its files: the bundle dir is 0700 (0710 to the pod root's group with a user
// namespace) and the host-side rootfs mount is nosuid,nodev. Inside the container setuid still works.
func TestBundleNotReachableByHostUsers(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	e := newPodEnv(t, 77, map[string]v1.Image{"library/suid:latest": securityImage(t)})
	if _, err := e.n.Image.PullImage(e.ctx, &runtimeapi.ImageSpec{Image: "suid"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	asUser := func(uid int64) ctrOpts {
		return func(c *runtimeapi.ContainerConfig) {
			c.Image.Image = "suid"
			c.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: uid}
		}
	}
	for _, userns := range []bool{false, true} {
		t.Run(fmt.Sprintf("userns=%v", userns), func(t *testing.T) {
			podCfg := e.podConfig(t, fmt.Sprintf("bundle-userns-%v", userns))
			if userns {
				podCfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOptions(0, usernsHostID, 65536)
			}
			podID := e.runPod(t, podCfg)
			t.Cleanup(func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, podID) })

			// Inside, a non-root user runs the setuid-root binary as root (as critest's no_new_privs test needs).
			id := e.runContainer(t, podID, podCfg, "suid", asUser(1000), "/usr/local/bin/tool")
			st := e.waitExited(t, id)
			if out := criLogMessages(t, st.LogPath); st.ExitCode != 0 || out != "euid=0\n" {
				t.Fatalf("setuid binary in the container: exit %d, %q, want euid=0", st.ExitCode, out)
			}
			// ... and no_new_privs still stops it, as critest's no_new_privs test expects.
			nnp := func(c *runtimeapi.ContainerConfig) { asUser(1000)(c); c.Linux.SecurityContext.NoNewPrivs = true }
			if code, out := e.output(t, podID, podCfg, "nnp", nnp, "/usr/local/bin/tool"); code != 0 || out != "euid=1000\n" {
				t.Fatalf("setuid binary with no_new_privs: exit %d, %q, want euid=1000", code, out)
			}

			bundle := filepath.Join(e.n.State, "containers", id)
			fi, err := os.Stat(bundle)
			if err != nil {
				t.Fatal(err)
			}
			wantMode, wantGID := os.FileMode(0o700), uint32(0)
			if userns {
				wantMode, wantGID = 0o710, usernsHostID
			}
			if gid := fi.Sys().(*syscall.Stat_t).Gid; fi.Mode().Perm() != wantMode || gid != wantGID {
				t.Errorf("bundle %s: mode %#o group %d, want %#o group %d", bundle, fi.Mode().Perm(), gid, wantMode, wantGID)
			}
			rootfs := filepath.Join(bundle, "rootfs")
			if out, err := asNobody(filepath.Join(rootfs, "usr/local/bin/tool")); err == nil {
				t.Errorf("host user nobody ran the container's setuid binary: %s", out)
			}
			if out, err := asNobody("cat", filepath.Join(rootfs, "secret")); err == nil {
				t.Errorf("host user nobody read a container file: %s", out)
			}

			if userns {
				return // the ID-mapped root is not nosuid: its setuid files belong to the pod's unprivileged IDs
			}
			// The second layer on its own: with the bundle opened up, the setuid bit still does nothing on the host.
			if err := os.Chmod(bundle, 0o711); err != nil {
				t.Fatal(err)
			}
			out, err := asNobody(filepath.Join(rootfs, "usr/local/bin/tool"))
			if err := os.Chmod(bundle, 0o700); err != nil {
				t.Fatal(err)
			}
			if err != nil || out != "euid=65534\n" {
				t.Errorf("setuid binary run by nobody from the host-side rootfs: %v, %q, want euid=65534 (nosuid)", err, out)
			}
		})
	}
}

// TestRuntimeDefaultSeccompBlocksVsockAndAlg: under RuntimeDefault, socket(AF_ALG) and socket(AF_VSOCK) fail
// with EPERM while AF_INET and AF_UNIX sockets work.
func TestRuntimeDefaultSeccompBlocksVsockAndAlg(t *testing.T) {
	e := newPodEnv(t, 78, map[string]v1.Image{"library/sectool:latest": securityImage(t)})
	if _, err := e.n.Image.PullImage(e.ctx, &runtimeapi.ImageSpec{Image: "sectool"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	podID, podCfg := e.newPod(t, "sockets")
	code, out := e.output(t, podID, podCfg, "sockets", func(c *runtimeapi.ContainerConfig) {
		c.Image.Image = "sectool"
		c.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	}, "/usr/local/bin/tool", "socket", "1", "2", "38", "40")
	if want := "1:ok\n2:ok\n38:EPERM\n40:EPERM\n"; code != 0 || out != want {
		t.Fatalf("sockets under RuntimeDefault: exit %d, %q, want %q", code, out, want)
	}
}

// TestOldRuncRefusedAtStart: noded does not start with a runtime handler whose runc predates the
// CVE-2024-21626 fix (1.1.12), and says why.
func TestOldRuncRefusedAtStart(t *testing.T) {
	framework.RequireRoot(t)
	dir := t.TempDir()
	old := filepath.Join(dir, "runc-1.1.11")
	if err := os.WriteFile(old, []byte("#!/bin/sh\n[ \"$1\" = --version ] && printf 'runc version 1.1.11\\ncommit: v1.1.11-0-g4bccb38c\\nspec: 1.0.2-dev\\n' && exit 0\nexec /usr/local/sbin/runc \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	parent := fmt.Sprintf("/noded-it-oldrunc-%d", os.Getpid())
	// Should noded start after all, the namespace pin mount and the cgroups it made are removed.
	t.Cleanup(func() { _ = framework.CleanupDirs(dir, parent) })
	cfg := filepath.Join(dir, "config.toml")
	conf := fmt.Sprintf("cgroup_driver = \"cgroupfs\"\ncgroup_parent = %q\n[cni]\nconf_dir = %q\n[runtimes.old]\npath = %q\n", parent, filepath.Join(dir, "cni"), old)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, framework.Binary(t), "--config", cfg, "--root", filepath.Join(dir, "root"),
		"--state", filepath.Join(dir, "state"), "--listen", filepath.Join(dir, "state", "sock"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("noded started with runc 1.1.11:\n%s", out)
	}
	for _, want := range []string{"CVE-2024-21626", old} {
		if !strings.Contains(string(out), want) {
			t.Errorf("error output %q does not mention %q", out, want)
		}
	}
}

// TestPprofOnRootOnlyUnixSocket: pprof is served on a unix socket of mode 0600 owned by root, and answers there.
func TestPprofOnRootOnlyUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "pprof.sock")
	n := framework.Start(t, framework.Options{Config: fmt.Sprintf("[debug]\npprof_socket = %q\n", sock)})
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("pprof socket %s: mode %v owner %d:%d, want a 0600 socket of root", sock, fi.Mode(), st.Uid, st.Gid)
	}
	if g := goroutines(t, sock); g <= 0 {
		t.Errorf("goroutine profile over the socket: %d", g)
	}
	if !n.Running() {
		t.Fatal("noded died")
	}
}

// TestDistributionRuncStartsWithWarning: Debian 12's runc 1.1.5+ds1 (with the backported CVE-2024-21626 fix)
// does not stop noded; its log says to check the package.
func TestDistributionRuncStartsWithWarning(t *testing.T) {
	out, err := exec.Command("/usr/sbin/runc", "--version").Output()
	if err != nil || !strings.Contains(string(out), "+ds") {
		t.Skipf("no distribution runc older than 1.1.12 at /usr/sbin/runc (%q, %v)", out, err)
	}
	n := framework.Start(t, framework.Options{Config: "[runtimes.distro]\npath = \"/usr/sbin/runc\"\n"})
	if log := n.Log(); !strings.Contains(log, "CVE-2024-21626") || !strings.Contains(log, "distro") {
		t.Errorf("no CVE-2024-21626 warning for the distro handler in the log:\n%s", log)
	}
}
