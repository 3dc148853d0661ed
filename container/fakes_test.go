package container

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/cgroupsv2"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/ociruntime"
	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/store"
	"github.com/noded/noded/store/storetest"
)

var errInjected = errors.New("injected failure")

// fakeRuntime is an OCI runtime that keeps containers in memory. A kill of a running container makes it exit
// (through exit, which the test wires to Manager.HandleExit) unless ignoreTERM keeps it alive on SIGTERM.
type fakeRuntime struct {
	ociruntime.Runtime // methods the lifecycle does not use panic

	mu         sync.Mutex
	failCreate error
	failStart  error
	failDelete error
	failState  error
	ignoreTERM bool
	state      map[string]ociruntime.Status
	exitCode   map[string]int // conmon's exit files
	created    []ociruntime.CreateOpts
	kills      []syscall.Signal
	features   *ociruntime.Features // what Features answers; nil: a runtime without a features command
	deletes    []bool               // whether each Delete's context had a deadline
	forced     []bool               // each Delete's force
	exit       func(ociruntime.ExitEvent)
	onDelete   func(id string) // when set, runs at the start of each Delete (with mu held)
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{state: map[string]ociruntime.Status{}, exitCode: map[string]int{}}
}

func (r *fakeRuntime) Name() string { return "runc" }

func (r *fakeRuntime) Features(context.Context) (*ociruntime.Features, error) {
	if r.features != nil {
		return r.features, nil
	}
	return &ociruntime.Features{}, nil
}

func (r *fakeRuntime) Create(_ context.Context, o ociruntime.CreateOpts) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.created = append(r.created, o)
	if r.failCreate != nil {
		return 0, r.failCreate
	}
	r.state[o.ID] = ociruntime.StatusCreated
	return 1000 + len(r.created), nil
}

func (r *fakeRuntime) Start(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failStart != nil {
		return r.failStart
	}
	if r.state[id] != ociruntime.StatusCreated {
		return errdefs.FailedPrecondition("%s is %q", id, r.state[id])
	}
	r.state[id] = ociruntime.StatusRunning
	return nil
}

func (r *fakeRuntime) Kill(_ context.Context, id string, sig syscall.Signal, _ bool) error {
	r.mu.Lock()
	r.kills = append(r.kills, sig)
	r.mu.Unlock()
	return r.deliver(id, sig)
}

// deliver is a signal reaching the container's init, from the runtime or a pidfd.
func (r *fakeRuntime) deliver(id string, sig syscall.Signal) error {
	r.mu.Lock()
	st, ok := r.state[id]
	if !ok {
		r.mu.Unlock()
		return errdefs.NotFound("container %s", id)
	}
	if st == ociruntime.StatusStopped || (sig == syscall.SIGTERM && r.ignoreTERM) {
		r.mu.Unlock()
		return nil
	}
	wasRunning := st == ociruntime.StatusRunning
	r.state[id] = ociruntime.StatusStopped
	r.exitCode[id] = 128 + int(sig)
	exit := r.exit
	r.mu.Unlock()
	if wasRunning && exit != nil {
		exit(ociruntime.ExitEvent{ID: id, ExitCode: 128 + int(sig), ExitedAt: time.Now()})
	}
	return nil
}

// Delete is runc's: without force it refuses a container that is not stopped (and deletes nothing).
func (r *fakeRuntime) Delete(ctx context.Context, id string, force bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.onDelete != nil {
		r.onDelete(id)
	}
	_, ok := ctx.Deadline()
	r.deletes = append(r.deletes, ok)
	r.forced = append(r.forced, force)
	if r.failDelete != nil {
		return r.failDelete
	}
	if st, known := r.state[id]; known && !force && st != ociruntime.StatusStopped {
		return fmt.Errorf("cannot delete container %s that is not stopped: %s", id, st)
	}
	delete(r.state, id)
	delete(r.exitCode, id)
	return nil
}

func (r *fakeRuntime) State(_ context.Context, id string) (ociruntime.State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failState != nil {
		return ociruntime.State{}, r.failState
	}
	st, ok := r.state[id]
	if !ok {
		return ociruntime.State{}, errdefs.NotFound("container %s", id)
	}
	return ociruntime.State{ID: id, Status: st}, nil
}

func (r *fakeRuntime) ExitStatus(id string) (int, time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	code, ok := r.exitCode[id]
	if !ok {
		return 0, time.Time{}, errdefs.NotFound("no exit file for %s", id)
	}
	return code, fakeExitedAt, nil
}

func (r *fakeRuntime) OOMKilled(string) bool { return false }

func (r *fakeRuntime) live() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.state)
}

// fakeSnapshots holds active snapshots by key.
type fakeSnapshots struct {
	snapshotter.Snapshotter
	mu          sync.Mutex
	failPrepare error
	active      map[string]string // key → parent
}

func (s *fakeSnapshots) Prepare(_ context.Context, key, parent string, _ ...snapshotter.Opt) ([]snapshotter.Mount, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPrepare != nil {
		return nil, s.failPrepare
	}
	if _, ok := s.active[key]; ok {
		return nil, errdefs.AlreadyExists("snapshot %s", key)
	}
	s.active[key] = parent
	return []snapshotter.Mount{{Type: "bind", Source: "/snap/" + key, Options: []string{"rbind"}}}, nil
}

func (s *fakeSnapshots) Remove(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.active[key]; !ok {
		return errdefs.NotFound("snapshot %s", key)
	}
	delete(s.active, key)
	return nil
}

func (s *fakeSnapshots) Walk(ctx context.Context, fn func(context.Context, snapshotter.Info) error) error {
	s.mu.Lock()
	var infos []snapshotter.Info
	for k, p := range s.active {
		infos = append(infos, snapshotter.Info{Key: k, Parent: p, Kind: snapshotter.KindActive})
	}
	s.mu.Unlock()
	for _, i := range infos {
		if err := fn(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// fakeMounts records the mounts of rootfs directories.
type fakeMounts struct {
	mu        sync.Mutex
	failMount error
	failUmnt  error
	mounted   map[string]bool
	killed    []string
	setuid    map[string]int // rootfs → pid AllowSetuid was called with
	// signal answers SignalInit; nil refuses every direct signal (errNotInit), as for an unverified init.
	signal  func(pid int, cgroupsPath string, sig syscall.Signal) error
	signals []syscall.Signal // the direct signals signal accepted
	// killInit answers KillInit; nil refuses (errNotInit).
	killInit   func(pid int, cgroupsPath string) error
	initKilled []int // the pids killInit accepted
}

func (h *fakeMounts) KillInit(_ context.Context, pid int, cgroupsPath string, _ time.Duration) error {
	if h.killInit == nil {
		return fmt.Errorf("fake: %w", errNotInit)
	}
	if err := h.killInit(pid, cgroupsPath); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.initKilled = append(h.initKilled, pid)
	return nil
}

func (h *fakeMounts) SignalInit(pid int, cgroupsPath string, sig syscall.Signal) error {
	if h.signal == nil {
		return fmt.Errorf("fake: %w", errNotInit)
	}
	if err := h.signal(pid, cgroupsPath, sig); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.signals = append(h.signals, sig)
	return nil
}

func (h *fakeMounts) MountAll(_ []snapshotter.Mount, target string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failMount != nil {
		return h.failMount
	}
	h.mounted[target] = true
	return nil
}

func (h *fakeMounts) MountAllIDMapped(ms []snapshotter.Mount, target string, _ snapshotter.IDMapping) error {
	return h.MountAll(ms, target)
}

func (h *fakeMounts) UnmountAll(target string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failUmnt != nil {
		return h.failUmnt
	}
	delete(h.mounted, target)
	return nil
}

func (h *fakeMounts) AllowSetuid(pid int, rootfs string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.setuid == nil {
		h.setuid = map[string]int{}
	}
	h.setuid[rootfs] = pid
	return nil
}

func (h *fakeMounts) KillCgroup(p string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.killed = append(h.killed, p)
	return nil
}

// fakeCgroups names cgroups without touching any.
type fakeCgroups struct{ cgroupsv2.Driver }

func (fakeCgroups) CgroupsPath(parent, name string) (string, error) { return parent + "/" + name, nil }
func (fakeCgroups) Remove(context.Context, string) error            { return nil }
func (fakeCgroups) Dir(string) (string, error)                      { return "", errdefs.NotFound("no cgroups here") }

type fakeImages struct{}

func (fakeImages) Resolve(_ context.Context, ref string) (Image, error) {
	if ref != "busybox" {
		return Image{}, errdefs.NotFound("image %q", ref)
	}
	return Image{ID: "sha256:" + fmt.Sprint(1234), Ref: "docker.io/library/busybox@sha256:1", ChainID: "sha256:layer"}, nil
}

// lcEnv is a container Manager over fakes, with one ready pod "pod1" in a real store.
type lcEnv struct {
	m     *Manager
	st    *store.Store
	rt    *fakeRuntime
	snaps *fakeSnapshots
	host  *fakeMounts
	sb    store.Sandbox
	state string
}

func newLifecycleEnv(t *testing.T) *lcEnv {
	t.Helper()
	dir := t.TempDir()
	st := storetest.New(t)
	sb := store.Sandbox{ID: "pod1", Name: "pod_ns_u_0", State: store.SandboxReady, Dir: filepath.Join(dir, "pod"),
		CgroupParent: "/test", Config: &runtimeapi.PodSandboxConfig{LogDirectory: filepath.Join(dir, "logs"),
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "pod", Namespace: "ns", Uid: "u"}},
		Namespaces: map[string]string{"net": "/run/netns/fake", "ipc": "/run/ipc/fake", "uts": "/run/uts/fake"}}
	if err := st.AddSandbox(&sb); err != nil {
		t.Fatal(err)
	}
	e := &lcEnv{st: st, rt: newFakeRuntime(), snaps: &fakeSnapshots{active: map[string]string{}},
		host: &fakeMounts{mounted: map[string]bool{}}, sb: sb, state: filepath.Join(dir, "state")}
	var err error
	e.m, err = New(Config{StateDir: e.state, Store: st, Images: fakeImages{}, Snapshotter: e.snaps,
		Runtimes: map[string]ociruntime.Runtime{"runc": e.rt}, DefaultRuntime: "runc", Cgroups: fakeCgroups{},
		Mounts: e.host})
	if err != nil {
		t.Fatal(err)
	}
	e.rt.exit = e.m.HandleExit
	return e
}

func ctrConfig(name string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"sleep", "1000"},
		LogPath:  name + ".log",
	}
}

// fakeExitedAt is the exit file time the fake runtime reports: later than any start a test records.
var fakeExitedAt = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
