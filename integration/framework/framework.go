// Package framework starts the real noded binary for integration tests, talks to it through k8s.io/cri-client and
// cleans up everything it and its containers made (processes, mounts, namespaces, cgroups), even when a test fails.
package framework

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	cgstats "github.com/noded/noded/cgroupsv2/stats"
)

type build struct {
	once sync.Once
	path string
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*build{}
)

// Binary builds cmd/noded once per test binary and returns its path. NODED_BINARY overrides the build.
func Binary(t testing.TB) string {
	t.Helper()
	return BinaryWithTags(t, "")
}

// BinaryWithTags builds cmd/noded with the given build tags (comma-separated, e.g. "faultinject") once per test
// binary and returns its path. NODED_BINARY overrides only the build without tags.
func BinaryWithTags(t testing.TB, tags string) string {
	t.Helper()
	buildsMu.Lock()
	b, ok := builds[tags]
	if !ok {
		b = &build{}
		builds[tags] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() {
		if p := os.Getenv("NODED_BINARY"); p != "" && tags == "" {
			b.path = p
			return
		}
		dir, err := os.MkdirTemp("", "noded-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "noded")
		// Static: the pod init runs the binary inside an empty root.
		args := []string{"build", "-o", b.path}
		if tags != "" {
			args = append(args, "-tags", tags)
		}
		cmd := exec.Command("go", append(args, "github.com/noded/noded/cmd/noded")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build noded (tags %q): %v\n%s", tags, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// RequireRoot skips the test when not run as root: noded needs root for mounts, namespaces and cgroups.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("integration tests need root")
	}
}

// Options configure one noded instance.
type Options struct {
	// Config is TOML appended to the generated config (written from config.Config: the cgroup driver and parent,
	// the CNI config dir and the mirrors, as the keys that differ from config.Default()).
	Config string
	// TopConfig is TOML of top-level keys, placed before the generated tables.
	TopConfig string
	// Mirrors maps registry hosts to mirror URLs (e.g. "docker.io" → "http://127.0.0.1:34567").
	Mirrors map[string]string
	// CNIConfDir is the CNI config dir; empty means a fresh empty dir.
	CNIConfDir string
	// CgroupDriver is the configured driver; empty means "cgroupfs".
	CgroupDriver string
	// CgroupParent is noded's default cgroup parent; empty means one of the instance's own ("/noded-it-<dir>"
	// with cgroupfs, "nodedit<dir>.slice" with systemd), removed at cleanup.
	CgroupParent string
	// ExtraArgs are appended to noded's command line.
	ExtraArgs []string
	// BuildTags builds noded with these tags (e.g. "faultinject").
	BuildTags string
	// Env is added to noded's environment.
	Env []string
}

// Noded is one running daemon with its private dirs.
type Noded struct {
	t            testing.TB
	Dir          string // everything of this instance lives below it
	Root, State  string
	Socket       string
	ConfigPath   string
	CgroupParent string // default cgroup parent of this instance, removed at cleanup
	LogPath      string
	args         []string
	env          []string

	proc    *child // nil when not running
	Runtime internalapi.RuntimeService
	Image   internalapi.ImageManagerService
}

// Start runs noded with fresh dirs and waits until it answers Version. Cleanup is registered on t.
func Start(t testing.TB, o Options) *Noded {
	t.Helper()
	RequireRoot(t)
	bin := BinaryWithTags(t, o.BuildTags)
	dir, err := os.MkdirTemp("/var/tmp", "noded-it-")
	if err != nil {
		t.Fatal(err)
	}
	// As noded's own dirs: the root of a pod's user namespace (an unprivileged host user) must reach the bundles.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	n := &Noded{
		t:            t,
		Dir:          dir,
		Root:         filepath.Join(dir, "root"),
		State:        filepath.Join(dir, "state"),
		Socket:       filepath.Join(dir, "sock", "noded.sock"),
		ConfigPath:   filepath.Join(dir, "config.toml"),
		CgroupParent: "/noded-it-" + filepath.Base(dir),
		LogPath:      filepath.Join(dir, "noded.log"),
	}
	switch {
	case o.CgroupParent != "":
		n.CgroupParent = o.CgroupParent
	case o.CgroupDriver == "systemd":
		// A dash would nest the slice: noded-it-x.slice lives in noded.slice/noded-it.slice.
		n.CgroupParent = strings.ReplaceAll("nodedit"+strings.TrimPrefix(filepath.Base(dir), "noded-it-"), "-", "_") + ".slice"
	}
	t.Cleanup(n.cleanup)
	cni := o.CNIConfDir
	if cni == "" {
		cni = filepath.Join(dir, "cni")
		if err := os.MkdirAll(cni, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := configFile(o, n.CgroupParent, cni)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.ConfigPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n.env = o.Env
	n.args = append([]string{bin, "--config", n.ConfigPath, "--root", n.Root, "--state", n.State,
		"--listen", n.Socket, "-v", "2"}, o.ExtraArgs...)
	n.start()
	return n
}

func (n *Noded) start() {
	n.t.Helper()
	c, err := startChild(n.args, n.env, n.LogPath)
	if err != nil {
		n.t.Fatal(err)
	}
	n.proc = c
	// A bound, not a measure: it returns as soon as noded answers. The UML guest under host load needs more than
	// 20 s for noded's start-up feature probes.
	if err := n.waitReady(90 * time.Second); err != nil {
		n.t.Fatalf("noded did not become ready: %v", err)
	}
}

func (n *Noded) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if st := n.proc.state(); st != nil {
			return fmt.Errorf("noded exited: %v", st)
		}
		if _, err := os.Stat(n.Socket); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			rt, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint("unix://" + n.Socket).
				WithConnectionTimeout(2 * time.Minute).Build(ctx)
			if err == nil {
				_, err = rt.Version(ctx, "")
			}
			if err == nil {
				img, ierr := remote.NewRemoteImageServiceBuilder().WithEndpoint("unix://" + n.Socket).
					WithConnectionTimeout(10 * time.Minute).Build(ctx)
				cancel()
				if ierr != nil {
					return ierr
				}
				n.Runtime, n.Image = rt, img
				return nil
			}
			cancel()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("socket %s not answering after %s", n.Socket, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log returns what noded wrote so far.
func (n *Noded) Log() string {
	b, _ := os.ReadFile(n.LogPath)
	return string(b)
}

// PID returns the daemon's process ID.
func (n *Noded) PID() int { return n.proc.pid() }

// PIDOrZero returns the daemon's process ID, or 0 when it is not running.
func (n *Noded) PIDOrZero() int {
	if n.proc == nil {
		return 0
	}
	return n.proc.pid()
}

// Stop sends SIGTERM and waits for noded to exit; it fails the test if noded does not exit cleanly.
func (n *Noded) Stop() {
	n.t.Helper()
	if n.proc == nil {
		return
	}
	if !n.proc.stop(30 * time.Second) {
		n.t.Errorf("noded did not stop within 30s of SIGTERM")
	}
	if st := n.proc.state(); st != nil && !st.Success() {
		n.t.Errorf("noded exited with %v\n--- noded log ---\n%s", st, n.Log())
	}
	n.proc = nil
}

// Kill stops noded with SIGKILL, as a crash would.
func (n *Noded) Kill() {
	if n.proc == nil {
		return
	}
	n.proc.kill()
	n.proc = nil
}

// Restart stops noded (SIGTERM) and starts it again on the same dirs.
func (n *Noded) Restart() {
	n.t.Helper()
	n.Stop()
	n.start()
}

// WaitExit waits up to timeout for the daemon to exit on its own (a crash) and reports whether it did.
func (n *Noded) WaitExit(timeout time.Duration) bool {
	if n.proc == nil {
		return true
	}
	if n.proc.wait(timeout) {
		n.proc = nil
		return true
	}
	return false
}

// Respawn starts noded again on the same dirs after it died (Kill, or a crash seen by WaitExit).
func (n *Noded) Respawn() {
	n.t.Helper()
	if n.proc != nil {
		n.t.Fatal("Respawn: noded is still running")
	}
	n.start()
}

// Running reports whether the daemon process is still alive.
func (n *Noded) Running() bool { return n.proc.running() }

func (n *Noded) cleanup() {
	if n.t.Failed() {
		n.t.Logf("--- noded log (%s) ---\n%s", n.LogPath, tail(n.Log(), 200))
	}
	if n.proc != nil {
		n.proc.stop(15 * time.Second)
		n.proc = nil
	}
	parent := n.CgroupParent
	if strings.HasSuffix(parent, ".slice") {
		// Stopping the slice stops every scope in it; what is left is then removed like any cgroup.
		_ = exec.Command("systemctl", "stop", filepath.Base(parent)).Run()
		if dir, err := cgstats.ExpandSlice(filepath.Base(parent)); err == nil {
			parent = dir
		}
	}
	for _, err := range CleanupDirs(n.Dir, parent) {
		n.t.Errorf("cleanup: %v", err)
	}
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// CleanupDirs removes what a noded instance rooted in dir may have left: container processes (found through the
// runtime state dirs below dir), conmon processes whose command line names dir, mounts below dir, the cgroup
// parent in every hierarchy, and dir itself. It returns what it could not remove.
func CleanupDirs(dir, cgroupParent string) []error {
	var errs []error
	// Containers: every runtime root below state/ is a runc --root.
	roots, _ := filepath.Glob(filepath.Join(dir, "state", "runtimes", "*"))
	for _, root := range roots {
		out, _ := exec.Command("runc", "--root", root, "list", "-q").Output()
		for _, id := range strings.Fields(string(out)) {
			_ = exec.Command("runc", "--root", root, "kill", "-a", id, "KILL").Run()
			_ = exec.Command("runc", "--root", root, "delete", "-f", id).Run()
		}
	}
	for _, pid := range processesMentioning(dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, m := range MountsBelow(dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	if cgroupParent != "" {
		errs = append(errs, RemoveCgroupTree(cgroupParent)...)
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// processesMentioning returns the PIDs (other than ours) whose command line contains s.
func processesMentioning(s string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// MountsBelow lists mount points at or below dir, deepest first.
func MountsBelow(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// RemoveCgroupTree removes the absolute cgroup path parent (and its children, bottom-up) from every mounted
// hierarchy: the v1 controllers and the unified one. It never touches anything outside that path.
func RemoveCgroupTree(parent string) []error {
	if !strings.HasPrefix(parent, "/") || parent == "/" || strings.Contains(parent, "..") {
		return []error{fmt.Errorf("refusing to remove cgroup %q", parent)}
	}
	var errs []error
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	hierarchies = append(hierarchies, "/sys/fs/cgroup")
	for _, h := range hierarchies {
		top := filepath.Join(h, parent)
		if _, err := os.Stat(filepath.Join(top, "cgroup.procs")); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := rmdirRetry(dirs[i]); err != nil {
				errs = append(errs, fmt.Errorf("rmdir cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errs
}

func rmdirRetry(p string) error {
	var err error
	for i := 0; i < 50; i++ {
		if err = syscall.Rmdir(p); err == nil || err == syscall.ENOENT {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// WaitExited polls ContainerStatus until container id has exited (or fails t after timeout) and returns its status.
func (n *Noded) WaitExited(ctx context.Context, t testing.TB, id string, timeout time.Duration) *runtimeapi.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := n.Runtime.ContainerStatus(ctx, id, false)
		if err != nil {
			t.Fatalf("ContainerStatus %s: %v", id, err)
		}
		if st.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st.Status
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("container %s did not exit within %s", id, timeout)
	return nil
}
