// Package sandbox runs pod sandboxes: a set of namespaces (net, ipc, uts; pid when the pod asks) pinned by bind
// mounts, the pod's /etc files and /dev/shm, and its network set up through CNI. There is no infra container.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/noded/noded/cni"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/faultinject"
	"github.com/noded/noded/internal/intent"
	"github.com/noded/noded/internal/keymutex"
	"github.com/noded/noded/internal/nsutil"
	"github.com/noded/noded/internal/weakmemo"
	"github.com/noded/noded/sandbox/podfiles"
	"github.com/noded/noded/store"
)

// DefaultShmSize is the size of a pod's /dev/shm.
const DefaultShmSize = 64 << 20

// Network is the CNI side of a sandbox (implemented by *cni.Manager).
type Network interface {
	Setup(ctx context.Context, pn cni.PodNetwork) (*cni.Result, error)
	Teardown(ctx context.Context, pn cni.PodNetwork, cachedResult []byte) error
}

// PodInit runs the init process of pods that share a PID namespace.
type PodInit interface {
	StartPodInit(ctx context.Context, sb *store.Sandbox) (pid int, err error)
	StopPodInit(ctx context.Context, sb *store.Sandbox) error
}

// Config configures a Manager.
type Config struct {
	StateDir            string // pods live under <StateDir>/pods, pins under <StateDir>/ns
	Store               *store.Store
	Network             Network
	DefaultCgroupParent string
	// ValidCgroupParent, if set, checks a pod's cgroup parent against the cgroup driver.
	ValidCgroupParent func(string) error
	// Init starts the init of pods with a pod-wide PID namespace.
	Init PodInit
	// ValidHandler reports whether a runtime handler name is configured ("" is the default handler).
	ValidHandler func(string) bool
	// CheckUserns returns a FailedPrecondition error when a handler cannot run pods with a user namespace.
	CheckUserns func(ctx context.Context, handler string) error
	// HostResolvConf is the host resolver file copied into pods without a DNS config ("" = /etc/resolv.conf).
	HostResolvConf string
	// HostHosts is the host hosts file copied into host-network pods ("" = /etc/hosts).
	HostHosts string
	// CheckSecurity, if set, refuses pod security settings this host cannot honour (SELinux labels where
	// SELinux is enforcing) with FailedPrecondition.
	CheckSecurity func(cfg *runtimeapi.PodSandboxConfig) error
	// Host pins namespaces and mounts /dev/shm (nil = RealHost).
	Host Host
}

// Manager runs pod sandboxes.
type Manager struct {
	cfg     Config
	host    Host
	podsDir string
	nsDir   string
	locks   keymutex.KeyMutex
	// entries are the ListPodSandbox entries of the stored records.
	entries weakmemo.Memo[store.Sandbox, *runtimeapi.PodSandbox]

	mu       sync.Mutex
	creating map[string]chan struct{} // sandbox name → closed when its creation in flight ends
}

// New prepares the state dirs and returns a Manager.
func New(cfg Config) (*Manager, error) {
	m := &Manager{cfg: cfg, podsDir: filepath.Join(cfg.StateDir, "pods"), nsDir: filepath.Join(cfg.StateDir, "ns"),
		creating: map[string]chan struct{}{}, host: cfg.Host}
	if m.host == nil {
		m.host = RealHost{}
	}
	if err := os.MkdirAll(m.podsDir, 0o711); err != nil {
		return nil, err
	}
	if err := m.host.PrepareRoot(m.nsDir); err != nil {
		return nil, err
	}
	return m, nil
}

// Lock serialises operations on one sandbox; callers that combine sandbox and container work hold it.
func (m *Manager) Lock(id string) func() { return m.locks.Lock(id) }

// UniqueName is the name a sandbox is reserved under: one per pod attempt.
func UniqueName(md *runtimeapi.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%d", md.GetName(), md.GetNamespace(), md.GetUid(), md.GetAttempt())
}

// hostnameRE: DNS labels joined by dots, optionally absolute (a trailing dot). kubelet sends a pod's FQDN as its
// hostname for setHostnameAsFQDN, and that FQDN ends in a dot when the cluster domain is empty.
var hostnameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\.?$`)

// maxHostname is the kernel's limit for a UTS hostname (HOST_NAME_MAX); sethostname refuses a longer one.
const maxHostname = 64

func validateHostname(h string) error {
	if len(h) > maxHostname {
		return errdefs.InvalidArgument("hostname %q is %d bytes long, the kernel allows at most %d", h, len(h), maxHostname)
	}
	if !hostnameRE.MatchString(h) {
		return errdefs.InvalidArgument("hostname %q is not a valid DNS name", h)
	}
	return nil
}

func (m *Manager) validate(cfg *runtimeapi.PodSandboxConfig, handler string) error {
	md := cfg.GetMetadata()
	if md == nil || md.Name == "" || md.Namespace == "" || md.Uid == "" {
		return errdefs.InvalidArgument("sandbox metadata name, namespace and uid are required")
	}
	for _, s := range []string{md.Name, md.Namespace, md.Uid} {
		if strings.ContainsAny(s, "/\x00") || s == "." || s == ".." {
			return errdefs.InvalidArgument("sandbox metadata %q contains an invalid character", s)
		}
	}
	if h := cfg.GetHostname(); h != "" {
		if err := validateHostname(h); err != nil {
			return err
		}
	}
	if m.cfg.ValidHandler != nil && !m.cfg.ValidHandler(handler) {
		return errdefs.InvalidArgument("runtime handler %q is not configured", handler)
	}
	if dns := cfg.GetDnsConfig(); dns != nil {
		if err := podfiles.ValidateDNS(&podfiles.DNSConfig{Servers: dns.Servers, Searches: dns.Searches, Options: dns.Options}); err != nil {
			return err
		}
	}
	for k := range cfg.GetLinux().GetSysctls() {
		if _, err := nsutil.SysctlNamespace(k); err != nil {
			return err
		}
	}
	if err := validateUserns(cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()); err != nil {
		return err
	}
	if p := cfg.GetLinux().GetCgroupParent(); p != "" && strings.Contains(p, "..") {
		return errdefs.InvalidArgument("cgroup parent %q must not contain ..", p)
	}
	if m.cfg.ValidCgroupParent != nil {
		if err := m.cfg.ValidCgroupParent(cfg.GetLinux().GetCgroupParent()); err != nil {
			return err
		}
	}
	if err := validateBandwidth(cfg); err != nil {
		return err
	}
	if cfg.GetLogDirectory() != "" && !filepath.IsAbs(cfg.GetLogDirectory()) {
		return errdefs.InvalidArgument("log directory %q must be absolute", cfg.GetLogDirectory())
	}
	if m.cfg.CheckSecurity != nil {
		if err := m.cfg.CheckSecurity(cfg); err != nil {
			return err
		}
	}
	return nil
}

// validateUserns checks a pod's user namespace request the way kubelet builds one: NODE (the host's), or POD
// with exactly one uid and one gid mapping that maps container ID 0. CONTAINER and TARGET are not supported.
func validateUserns(u *runtimeapi.UserNamespace) error {
	if u == nil {
		return nil
	}
	switch u.GetMode() {
	case runtimeapi.NamespaceMode_NODE:
		if len(u.GetUids()) > 0 || len(u.GetGids()) > 0 {
			return errdefs.InvalidArgument("user namespace mode NODE takes no id mappings")
		}
		return nil
	case runtimeapi.NamespaceMode_POD:
	default:
		return errdefs.InvalidArgument("user namespace mode %v is not supported (only NODE and POD)", u.GetMode())
	}
	for what, m := range map[string][]*runtimeapi.IDMapping{"uid": u.GetUids(), "gid": u.GetGids()} {
		if len(m) != 1 {
			return errdefs.InvalidArgument("user namespace mode POD needs exactly one %s mapping, got %d", what, len(m))
		}
		if m[0].GetContainerId() != 0 {
			return errdefs.InvalidArgument("user namespace %s mapping must map container ID 0, it starts at %d", what, m[0].GetContainerId())
		}
		if m[0].GetLength() == 0 {
			return errdefs.InvalidArgument("user namespace %s mapping has length 0", what)
		}
	}
	return nil
}

// Run creates and starts a sandbox. The creation runs to its end (within CreateTimeout) even if the caller gives
// up: a retry with the same name (kubelet retries after its deadline) waits for a creation still in flight and
// is handed the sandbox it made; any other reuse of a live name is AlreadyExists.
func (m *Manager) Run(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	if err := m.validate(cfg, handler); err != nil {
		return "", err
	}
	if err := m.checkUserns(ctx, cfg, handler); err != nil {
		return "", err
	}
	name := UniqueName(cfg.GetMetadata())
	done, err := m.reserve(ctx, name)
	if err != nil {
		return "", err
	}
	defer done()
	if old, ok := m.cfg.Store.SandboxByName(name); ok {
		if id, handed, err := m.intents().HandOff(&old); handed || err != nil {
			return id, err
		}
		return "", errdefs.AlreadyExists("pod sandbox name %q is reserved by %s", name, old.ID)
	}

	id := store.NewID()
	unlock := m.locks.Lock(id)
	defer unlock()
	nsOpts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	sb := &store.Sandbox{
		ID:             id,
		Name:           name,
		Config:         cfg,
		RuntimeHandler: handler,
		State:          store.SandboxCreating,
		CreatedAt:      time.Now().UnixNano(),
		Dir:            filepath.Join(m.podsDir, id),
		HostNetwork:    nsOpts.GetNetwork() == runtimeapi.NamespaceMode_NODE,
		HostIPC:        nsOpts.GetIpc() == runtimeapi.NamespaceMode_NODE,
		HostPID:        nsOpts.GetPid() == runtimeapi.NamespaceMode_NODE,
		PodPID:         nsOpts.GetPid() == runtimeapi.NamespaceMode_POD,
		CgroupParent:   cfg.GetLinux().GetCgroupParent(),
		Namespaces:     map[string]string{},
	}
	if sb.CgroupParent == "" {
		sb.CgroupParent = m.cfg.DefaultCgroupParent
	}
	// The pins setup will make are named up front (unpinning a path never pinned is a no-op): one store write
	// fewer per pod than recording them after pinning.
	predicted := pinTypes(sb)
	if _, _, ok := PodUserns(cfg); ok {
		predicted = append(predicted, nsutil.User)
	}
	for _, t := range predicted {
		sb.Namespaces[string(t)] = filepath.Join(m.nsDir, sb.ID, string(t))
	}
	// The network is named up front too: the stored intent says teardown must run CNI DEL, so that CNI ADD needs
	// no store write of its own before it (one commit, two fdatasyncs, fewer per pod; issue 16). setup clears it
	// in memory when it fails before ADD, so that the rollback of such a failure runs no DEL; only recovery
	// after a crash before ADD runs a DEL of a pod the plugins never saw, which CNI requires them to accept (DEL
	// of missing resources succeeds), without a namespace when none was pinned yet (delNetwork). The crash tests
	// at sandbox.run.intent, .pinned and .podinit check that it leaks nothing and the pod's name is free again.
	sb.NetworkSetUp = !sb.HostNetwork
	// Intent first: a crash after this point leaves a record that recovery rolls back.
	if err := m.intents().Create(ctx, sb, func(ctx context.Context, sb *store.Sandbox) error {
		faultinject.Point(faultinject.SandboxIntent)
		return m.setup(ctx, sb)
	}, intent.Detached(intent.RollbackTimeout)); err != nil {
		return "", err
	}
	faultinject.Point(faultinject.SandboxReady)
	return id, nil
}

// setup makes the sandbox's side effects, persisting progress that teardown needs to know about.
func (m *Manager) setup(ctx context.Context, sb *store.Sandbox) (err error) {
	cfg := sb.Config
	// The stored intent names the network (see Run), and so does every store write of sb before ADD; the
	// rollback of a failure before ADD (which works on sb) must not run DEL.
	addReached := false
	defer func() {
		if err != nil && !addReached {
			sb.NetworkSetUp = false
		}
	}()
	if err := os.MkdirAll(sb.Dir, 0o711); err != nil {
		return fmt.Errorf("create pod dir: %w", err)
	}
	// The intent record already names these pins (see pinTypes), so a crash from here on unpins them.
	pins, err := m.pinNamespaces(ctx, sb, pinTypes(sb))
	if err != nil {
		return fmt.Errorf("pin namespaces: %w", err)
	}
	for t, p := range pins {
		sb.Namespaces[string(t)] = p
	}
	faultinject.Point(faultinject.SandboxPinned)
	if uts := pins[nsutil.UTS]; uts != "" && cfg.GetHostname() != "" {
		if err := m.host.SetHostname(uts, cfg.GetHostname()); err != nil {
			return err
		}
	}
	if sysctls := cfg.GetLinux().GetSysctls(); len(sysctls) > 0 {
		if err := m.host.ApplySysctls(pins, sysctls); err != nil {
			return err
		}
	}
	if !sb.HostIPC {
		if err := m.host.MountShm(filepath.Join(sb.Dir, "shm"), DefaultShmSize); err != nil {
			return err
		}
	}
	sb.Hostname = cfg.GetHostname()
	if sb.HostNetwork || sb.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("read the node's hostname: %w", err)
		}
		sb.Hostname = h
	}
	if err := podfiles.WriteHostname(filepath.Join(sb.Dir, "hostname"), sb.Hostname); err != nil {
		return err
	}
	resolv := filepath.Join(sb.Dir, "resolv.conf")
	if dns := cfg.GetDnsConfig(); dns != nil {
		err = podfiles.WriteResolvConf(resolv, &podfiles.DNSConfig{Servers: dns.Servers, Searches: dns.Searches, Options: dns.Options})
	} else {
		hostResolv := m.cfg.HostResolvConf
		if hostResolv == "" {
			hostResolv = podfiles.DefaultHostResolvConf
		}
		err = podfiles.CopyHostResolvConf(resolv, hostResolv)
	}
	if err != nil {
		return err
	}

	if sb.PodPID {
		if m.cfg.Init == nil {
			return errdefs.NotImplemented("pod-wide PID namespaces are not available")
		}
		pid, err := m.cfg.Init.StartPodInit(ctx, sb)
		if err != nil {
			return err
		}
		sb.InitPID = pid
		if err := m.persist(sb); err != nil {
			return err
		}
		faultinject.Point(faultinject.SandboxPodInit)
	}
	if !sb.HostNetwork {
		// The intent record already has NetworkSetUp (see Run): from here on, teardown calls CNI DEL.
		addReached = true
		faultinject.Point(faultinject.SandboxNetworkIntent)
		pn := podNetwork(sb)
		if err := m.host.LoopbackUp(pn.NetNS); err != nil {
			return fmt.Errorf("set up pod network: %w", err)
		}
		res, err := m.cfg.Network.Setup(ctx, pn)
		if err != nil {
			return fmt.Errorf("set up pod network: %w", err)
		}
		faultinject.Point(faultinject.SandboxNetworkAdded)
		sb.IPs = res.IPs
		sb.CNIResult = res.Raw
	}
	hosts := podfiles.Hosts{Hostname: sb.Hostname, PodIPs: sb.IPs}
	if sb.HostNetwork {
		hostHosts := m.cfg.HostHosts
		if hostHosts == "" {
			hostHosts = podfiles.DefaultHostHosts
		}
		if err := podfiles.CopyHostHosts(filepath.Join(sb.Dir, "hosts"), hostHosts); err != nil {
			return err
		}
	} else if err := podfiles.WriteHosts(filepath.Join(sb.Dir, "hosts"), hosts); err != nil {
		return err
	}
	return nil
}

// pinTypes are the namespaces a sandbox pins: net and uts unless it uses the host's network, ipc unless the host's.
func pinTypes(sb *store.Sandbox) []nsutil.Type {
	var types []nsutil.Type
	if !sb.HostNetwork {
		types = append(types, nsutil.Net, nsutil.UTS)
	}
	if !sb.HostIPC {
		types = append(types, nsutil.IPC)
	}
	return types
}

func (m *Manager) persist(sb *store.Sandbox) error {
	_, err := m.cfg.Store.UpdateSandbox(sb.ID, func(s *store.Sandbox) error { *s = *sb; return nil })
	return err
}

func podNetwork(sb *store.Sandbox) cni.PodNetwork {
	md := sb.Config.GetMetadata()
	pn := cni.PodNetwork{
		ID: sb.ID, Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid(),
		NetNS:        sb.Namespaces[string(nsutil.Net)],
		PortMappings: portMappings(sb.Config.GetPortMappings()),
	}
	if bw, err := cni.ParseBandwidth(sb.Config.GetAnnotations()); err == nil && bw != nil {
		pn.Bandwidth = bw
	}
	if dns := sb.Config.GetDnsConfig(); dns != nil {
		pn.DNS = &cni.DNS{Servers: dns.Servers, Searches: dns.Searches, Options: dns.Options}
	}
	return pn
}

// teardownNetwork runs CNI DEL if setup got that far and records that the network is gone. It works when the
// netns is already gone.
func (m *Manager) teardownNetwork(ctx context.Context, sb *store.Sandbox) error {
	done, err := m.delNetwork(ctx, sb)
	if err != nil || !done {
		return err
	}
	return m.networkTornDown(sb)
}

// delNetwork runs CNI DEL if setup got that far and clears sb.NetworkSetUp, without recording it; done says
// whether it ran. A crash before the caller records it runs DEL again on the next stop or remove (DEL is
// idempotent; see teardownInStandIn for a namespace already gone).
func (m *Manager) delNetwork(ctx context.Context, sb *store.Sandbox) (done bool, err error) {
	if !sb.NetworkSetUp {
		return false, nil
	}
	pn := podNetwork(sb)
	if pn.NetNS != "" && !m.host.IsPinned(pn.NetNS) {
		pn.NetNS = ""
		if err := m.teardownInStandIn(ctx, sb, pn); err != nil {
			// A DEL that already ran (a crash before it was recorded) may fail on the rules it removed:
			// the plain DEL without a namespace still releases the address.
			klog.InfoS("network teardown in a stand-in namespace failed; tearing down without one", "podSandboxID", sb.ID, "err", err)
		} else {
			sb.NetworkSetUp = false
			return true, nil
		}
	}
	if err := m.cfg.Network.Teardown(ctx, pn, sb.CNIResult); err != nil {
		return false, fmt.Errorf("tear down pod network: %w", err)
	}
	sb.NetworkSetUp = false
	return true, nil
}

// teardownInStandIn runs the CNI DEL of a pod whose namespace is gone in a stand-in namespace holding its
// addresses, so that plugins still find what to remove (see standInNetNS).
func (m *Manager) teardownInStandIn(ctx context.Context, sb *store.Sandbox, pn cni.PodNetwork) error {
	standIn, cleanup, err := m.standInNetNS(ctx, sb)
	if err != nil {
		return err
	}
	defer cleanup()
	if standIn == "" {
		return errors.New("the pod's addresses are not known")
	}
	pn.NetNS = standIn
	return m.cfg.Network.Teardown(ctx, pn, sb.CNIResult)
}

// networkTornDown records that the network is gone, so that a restart does not run DEL again.
func (m *Manager) networkTornDown(sb *store.Sandbox) error {
	sb.NetworkSetUp = false
	if _, err := m.cfg.Store.UpdateSandbox(sb.ID, func(s *store.Sandbox) error { s.NetworkSetUp = false; return nil }); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// stopInit stops the pod init. It runs whenever the pod has one, even with no PID recorded: a crash between
// starting the init and recording its PID must not leak it.
func (m *Manager) stopInit(ctx context.Context, sb *store.Sandbox) error {
	if !sb.PodPID || m.cfg.Init == nil {
		return nil
	}
	if err := m.cfg.Init.StopPodInit(ctx, sb); err != nil {
		return err
	}
	sb.InitPID = 0
	return nil
}

// teardown undoes every side effect of setup; it is safe to call on a partly set-up or torn-down sandbox.
func (m *Manager) teardown(ctx context.Context, sb *store.Sandbox) error {
	var errs []error
	if err := m.stopInit(ctx, sb); err != nil {
		errs = append(errs, err)
	}
	if err := m.teardownNetwork(ctx, sb); err != nil {
		errs = append(errs, err)
	}
	faultinject.Point(faultinject.SandboxRemoveNetwork)
	if err := m.host.UnmountShm(filepath.Join(sb.Dir, "shm")); err != nil {
		errs = append(errs, err)
	}
	for t, p := range sb.Namespaces {
		if t == "pid" {
			continue
		}
		if err := m.host.Unpin(p); err != nil {
			errs = append(errs, err)
		} else {
			delete(sb.Namespaces, t)
		}
	}
	_ = os.Remove(filepath.Join(m.nsDir, sb.ID))
	if len(errs) == 0 {
		if err := os.RemoveAll(sb.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stop tears down the sandbox's network and marks it not ready. Its containers must be stopped by the caller
// first. Unknown IDs succeed, and so does a second Stop. The caller holds the sandbox's lock.
func (m *Manager) Stop(ctx context.Context, id string) error {
	sb, err := m.cfg.Store.Sandbox(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := m.stopInit(ctx, &sb); err != nil {
		return err
	}
	// One store write for both the network being gone and the state, after the DEL.
	if _, err := m.delNetwork(ctx, &sb); err != nil {
		return err
	}
	faultinject.Point(faultinject.SandboxStopNetwork)
	if sb.State != store.SandboxUnknown || sb.Error == "" {
		sb.State = store.SandboxNotReady
	}
	return m.persist(&sb)
}

// Remove deletes everything of a stopped sandbox. Unknown IDs succeed. The caller holds the sandbox's lock and
// has removed its containers.
func (m *Manager) Remove(ctx context.Context, id string) error {
	sb, err := m.cfg.Store.Sandbox(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := m.teardown(ctx, &sb); err != nil {
		sb.State, sb.Error = store.SandboxUnknown, err.Error()
		_ = m.persist(&sb)
		return err
	}
	faultinject.Point(faultinject.SandboxRemoveTornDown)
	return m.cfg.Store.DeleteSandbox(sb.ID)
}

// Status returns the CRI status of a sandbox and, when verbose, its info map.
func (m *Manager) Status(id string, verbose bool) (*runtimeapi.PodSandboxStatus, map[string]string, error) {
	sb, err := m.cfg.Store.Sandbox(id)
	if err != nil {
		return nil, nil, err
	}
	st := ToStatus(&sb)
	var info map[string]string
	if verbose {
		b, _ := json.Marshal(verboseInfo(&sb))
		info = map[string]string{"info": string(b)}
	}
	return st, info, nil
}

func verboseInfo(sb *store.Sandbox) map[string]any {
	v := map[string]any{
		"id": sb.ID, "name": sb.Name, "state": sb.State, "dir": sb.Dir, "namespaces": sb.Namespaces,
		"cgroupParent": sb.CgroupParent, "runtimeHandler": sb.RuntimeHandler, "cniResult": sb.CNIResult,
		"initPid": sb.InitPID, "error": sb.Error, "config": sb.Config,
	}
	// cri-api's PodSandboxStatus has no field for pod-level resources: they are reported here.
	if res, ovh := PodResources(sb); res != nil || ovh != nil {
		v["podResources"] = map[string]any{"resources": res, "overhead": ovh}
	}
	return v
}

func criState(s store.SandboxState) runtimeapi.PodSandboxState {
	if s == store.SandboxReady {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

// ToStatus converts a stored sandbox to its CRI status.
func ToStatus(sb *store.Sandbox) *runtimeapi.PodSandboxStatus {
	cfg := sb.Config
	st := &runtimeapi.PodSandboxStatus{
		Id:             sb.ID,
		Metadata:       cfg.GetMetadata(),
		State:          criState(sb.State),
		CreatedAt:      sb.CreatedAt,
		Labels:         cfg.GetLabels(),
		Annotations:    cfg.GetAnnotations(),
		RuntimeHandler: sb.RuntimeHandler,
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
	if len(sb.IPs) > 0 {
		st.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: sb.IPs[0]}
		for _, ip := range sb.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	} else {
		st.Network = &runtimeapi.PodSandboxNetworkStatus{}
	}
	return st
}

// ToPodSandbox converts a stored sandbox to its CRI list entry.
func ToPodSandbox(sb *store.Sandbox) *runtimeapi.PodSandbox {
	p := &runtimeapi.PodSandbox{}
	fillPodSandbox(p, sb)
	return p
}

// fillPodSandbox sets the fields of a new list entry p from sb (sharing the record's metadata and maps).
func fillPodSandbox(p *runtimeapi.PodSandbox, sb *store.Sandbox) {
	p.Id, p.Metadata, p.State, p.CreatedAt = sb.ID, sb.Config.GetMetadata(), criState(sb.State), sb.CreatedAt
	p.Labels, p.Annotations, p.RuntimeHandler = sb.Config.GetLabels(), sb.Config.GetAnnotations(), sb.RuntimeHandler
}

// List returns the sandboxes that match filter, in creation order. The entries are shared between calls:
// callers must not modify them.
func (m *Manager) List(filter *runtimeapi.PodSandboxFilter) []*runtimeapi.PodSandbox {
	recs := m.cfg.Store.SandboxRecords()
	keep := make([]*store.Sandbox, 0, len(recs))
	for _, sb := range recs {
		if sb.State == store.SandboxCreating {
			continue
		}
		if filter != nil {
			if filter.Id != "" && !strings.HasPrefix(sb.ID, filter.Id) {
				continue
			}
			if filter.State != nil && criState(sb.State) != filter.State.State {
				continue
			}
			if !LabelsMatch(sb.Config.GetLabels(), filter.LabelSelector) {
				continue
			}
		}
		keep = append(keep, sb)
	}
	if len(keep) == 0 {
		return nil
	}
	out := make([]*runtimeapi.PodSandbox, len(keep))
	for i, sb := range keep {
		// The store never modifies a record once stored (an update replaces it), so the entry is made once per
		// record and shared by every list until the record is replaced or removed.
		out[i] = m.entries.Get(sb, ToPodSandbox)
	}
	return out
}

// LabelsMatch reports whether labels carry every key and value of selector.
func LabelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
