package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/noded/noded/cni"
	"github.com/noded/noded/internal/nsutil"
	"github.com/noded/noded/store"
	"github.com/noded/noded/store/storetest"
)

var errInjected = errors.New("injected failure")

// fakeHost pins namespaces as plain files and tracks /dev/shm mounts in memory. fail names the operations
// (method names) that return errInjected.
type fakeHost struct {
	mu      sync.Mutex
	fail    map[string]bool
	pinned  map[string]bool
	shm     map[string]bool
	lo      []string
	standIn int
	// lastHostname is what SetHostname was last given.
	lastHostname string
}

func newFakeHost() *fakeHost {
	return &fakeHost{fail: map[string]bool{}, pinned: map[string]bool{}, shm: map[string]bool{}}
}

func (h *fakeHost) failing(op string) error {
	if h.fail[op] {
		return fmt.Errorf("%s: %w", op, errInjected)
	}
	return nil
}

func (h *fakeHost) PrepareRoot(dir string) error { return os.MkdirAll(dir, 0o700) }

func (h *fakeHost) Pin(_ context.Context, dir string, types []nsutil.Type, uids, _ []nsutil.IDMap) (map[nsutil.Type]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.failing("Pin"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if uids != nil {
		types = append(types, nsutil.User)
	}
	pins := map[nsutil.Type]string{}
	for _, t := range types {
		p := filepath.Join(dir, string(t))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return nil, err
		}
		h.pinned[p] = true
		pins[t] = p
	}
	return pins, nil
}

func (h *fakeHost) Unpin(path string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.failing("Unpin"); err != nil {
		return err
	}
	delete(h.pinned, path)
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

func (h *fakeHost) IsPinned(path string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pinned[path]
}

func (h *fakeHost) SetHostname(uts, hostname string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.failing("SetHostname"); err != nil {
		return err
	}
	h.lastHostname = hostname
	return nil
}

func (h *fakeHost) ApplySysctls(map[nsutil.Type]string, map[string]string) error {
	return h.failing("ApplySysctls")
}

func (h *fakeHost) MountShm(dir string, _ int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.failing("MountShm"); err != nil {
		return err
	}
	h.shm[dir] = true
	return nil
}

func (h *fakeHost) UnmountShm(dir string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.failing("UnmountShm"); err != nil {
		return err
	}
	delete(h.shm, dir)
	return nil
}

func (h *fakeHost) LoopbackUp(netns string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.failing("LoopbackUp"); err != nil {
		return err
	}
	h.lo = append(h.lo, netns)
	return nil
}

func (h *fakeHost) StandInNetNS(_ context.Context, dir string, _ []*net.IPNet) (string, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.failing("StandInNetNS"); err != nil {
		return "", nil, err
	}
	h.standIn++
	return filepath.Join(dir, "net"), func() {}, nil
}

// leftovers lists pins and shm mounts still held.
func (h *fakeHost) leftovers() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for p := range h.pinned {
		out = append(out, "pin "+p)
	}
	for p := range h.shm {
		out = append(out, "shm "+p)
	}
	return out
}

// fakeNetwork is a CNI that hands out 10.0.0.<n> and records its calls.
type fakeNetwork struct {
	mu                sync.Mutex
	failSetup         error
	failTeardown      error
	setups, teardowns []cni.PodNetwork
	attached          map[string]bool
	teardownDeadline  []bool                  // whether each DEL's context had a deadline
	onSetup           func(pn cni.PodNetwork) // when set, runs in each Setup (ADD), with mu held
}

func (n *fakeNetwork) Setup(_ context.Context, pn cni.PodNetwork) (*cni.Result, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.setups = append(n.setups, pn)
	if n.onSetup != nil {
		n.onSetup(pn)
	}
	if n.failSetup != nil {
		return nil, n.failSetup
	}
	if n.attached == nil {
		n.attached = map[string]bool{}
	}
	n.attached[pn.ID] = true
	ip := fmt.Sprintf("10.0.0.%d", len(n.setups)+1)
	return &cni.Result{Network: "fake", Interface: "eth0", IPs: []string{ip},
		Raw: []byte(fmt.Sprintf(`{"ips":[{"address":"%s/24"}]}`, ip))}, nil
}

func (n *fakeNetwork) Teardown(ctx context.Context, pn cni.PodNetwork, _ []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.teardowns = append(n.teardowns, pn)
	_, ok := ctx.Deadline()
	n.teardownDeadline = append(n.teardownDeadline, ok)
	if n.failTeardown != nil {
		return n.failTeardown
	}
	delete(n.attached, pn.ID)
	return nil
}

func (n *fakeNetwork) attachedCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.attached)
}

// fakeInit is a pod init that hands out PIDs.
type fakeInit struct {
	failStart, failStop error
	running             map[string]bool
}

func (f *fakeInit) StartPodInit(_ context.Context, sb *store.Sandbox) (int, error) {
	if f.failStart != nil {
		return 0, f.failStart
	}
	if f.running == nil {
		f.running = map[string]bool{}
	}
	f.running[sb.ID] = true
	return 4242, nil
}

func (f *fakeInit) StopPodInit(_ context.Context, sb *store.Sandbox) error {
	if f.failStop != nil {
		return f.failStop
	}
	delete(f.running, sb.ID)
	return nil
}

// env is a sandbox Manager over fakes and a real store in a temporary bbolt file.
type env struct {
	m     *Manager
	st    *store.Store
	host  *fakeHost
	net   *fakeNetwork
	init  *fakeInit
	state string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st := storetest.New(t)
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 10.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, host: newFakeHost(), net: &fakeNetwork{}, init: &fakeInit{}, state: filepath.Join(dir, "state")}
	var err error
	e.m, err = New(Config{StateDir: e.state, Store: st, Network: e.net, Init: e.init, Host: e.host, HostResolvConf: resolv})
	if err != nil {
		t.Fatal(err)
	}
	return e
}
