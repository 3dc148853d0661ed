// Package cni attaches pods to the node's CNI network through libcni.
//
// A Manager loads the first valid network configuration from a directory (files ending in .conflist, .conf or
// .json, in lexical order; single-plugin files are wrapped into a one-element list) and notices changes to that
// directory cheaply: every call re-lists the directory and compares names, sizes and modification times, and
// reloads only when they differ. No goroutine or watch is started, so Close has nothing to stop.
//
// Setup runs CNI ADD for a pod (after bringing up "lo" in its netns), Teardown runs CNI DEL (idempotent), Status
// reports whether the network is usable, and GC asks plugins to drop attachments that are no longer live.
package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/noded/noded/errdefs"
)

// DefaultInterface is the pod-side interface name used unless WithInterfaceName says otherwise.
const DefaultInterface = "eth0"

// cleanupTimeout bounds the CNI DEL that undoes a failed ADD, which runs even if the caller's context is done.
const cleanupTimeout = time.Minute

// Option configures a Manager.
type Option func(*Manager)

// WithCacheDir sets libcni's cache directory (default /var/lib/cni). libcni keeps each attachment's config and
// result there so DEL gets the prevResult; noded should use a directory of its own.
func WithCacheDir(dir string) Option { return func(m *Manager) { m.cacheDir = dir } }

// WithInterfaceName sets the pod-side interface name (default eth0).
func WithInterfaceName(name string) Option { return func(m *Manager) { m.ifName = name } }

// Manager runs CNI operations for pods. It is safe for concurrent use.
type Manager struct {
	confDir  string
	binDirs  []string
	cacheDir string
	ifName   string
	cni      *libcni.CNIConfig
	observe  Observer

	mu       sync.Mutex
	stamp    string // fingerprint of confDir's config files at the last load
	list     *libcni.NetworkConfigList
	confFile string
	loadErr  error // why no config is loaded (nil when list != nil)
}

// New returns a Manager for the configs in confDir and the plugin binaries in binDirs. A missing or empty
// confDir is not an error: Status reports it and Setup fails until a config appears.
func New(confDir string, binDirs []string, opts ...Option) (*Manager, error) {
	if confDir == "" {
		return nil, errdefs.InvalidArgument("cni: empty config directory")
	}
	if len(binDirs) == 0 {
		return nil, errdefs.InvalidArgument("cni: no plugin directories")
	}
	m := &Manager{confDir: confDir, binDirs: append([]string(nil), binDirs...), cacheDir: libcni.CacheDir, ifName: DefaultInterface}
	for _, o := range opts {
		o(m)
	}
	m.cni = libcni.NewCNIConfigWithCacheDir(m.binDirs, m.cacheDir, nil)
	m.mu.Lock()
	m.reloadLocked()
	m.mu.Unlock()
	return m, nil
}

// Close releases the Manager. It starts nothing in the background, so this only exists for symmetry.
func (m *Manager) Close() error { return nil }

// ConfigFile returns the path of the loaded config file, or "" when none is loaded.
func (m *Manager) ConfigFile() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reloadLocked()
	return m.confFile
}

// network returns the current config list, reloading it if the directory changed.
func (m *Manager) network() (*libcni.NetworkConfigList, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reloadLocked()
	if m.list == nil {
		return nil, errdefs.FailedPrecondition("cni: no network config: %v", m.loadErr)
	}
	return m.list, nil
}

var confExts = []string{".conflist", ".conf", ".json"}

func (m *Manager) reloadLocked() {
	ents, err := os.ReadDir(m.confDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		m.list, m.confFile, m.stamp, m.loadErr = nil, "", "", fmt.Errorf("read %s: %w", m.confDir, err)
		return
	}
	var files []string
	var stamp strings.Builder
	for _, e := range ents {
		if e.IsDir() || !hasConfExt(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		files = append(files, filepath.Join(m.confDir, e.Name()))
		fmt.Fprintf(&stamp, "%s\x00%d\x00%d\x00", e.Name(), info.Size(), info.ModTime().UnixNano())
	}
	if s := stamp.String(); s == m.stamp && (m.list != nil || m.loadErr != nil) {
		return
	}
	m.stamp = stamp.String()
	sort.Strings(files)
	var errs []error
	for _, f := range files {
		list, err := loadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.list, m.confFile, m.loadErr = list, f, nil
		return
	}
	m.list, m.confFile = nil, ""
	if len(errs) == 0 {
		m.loadErr = fmt.Errorf("no .conflist, .conf or .json file in %s", m.confDir)
	} else {
		m.loadErr = fmt.Errorf("no valid config in %s: %w", m.confDir, errors.Join(errs...))
	}
}

func hasConfExt(name string) bool {
	for _, e := range confExts {
		if strings.HasSuffix(name, e) {
			return true
		}
	}
	return false
}

// loadFile parses a conflist, or a single-plugin config wrapped into a list of one.
func loadFile(path string) (*libcni.NetworkConfigList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	var list *libcni.NetworkConfigList
	if _, isList := raw["plugins"]; isList || strings.HasSuffix(path, ".conflist") {
		list, err = libcni.NetworkConfFromFile(path)
	} else {
		wrapped, merr := json.Marshal(map[string]any{"name": raw["name"], "cniVersion": raw["cniVersion"], "plugins": []any{raw}})
		if merr != nil {
			return nil, fmt.Errorf("wrap %s: %w", path, merr)
		}
		list, err = libcni.NetworkConfFromBytes(wrapped)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if len(list.Plugins) == 0 {
		return nil, fmt.Errorf("load %s: no plugins", path)
	}
	return list, nil
}

// runtimeConf builds the libcni runtime config for a pod: CNI_ARGS and the capability args.
func (m *Manager) runtimeConf(pn *PodNetwork) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: pn.ID,
		NetNS:       pn.NetNS,
		IfName:      m.ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pn.Namespace},
			{"K8S_POD_NAME", pn.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", pn.ID},
			{"K8S_POD_UID", pn.UID},
		},
		CapabilityArgs: map[string]any{},
	}
	if len(pn.PortMappings) > 0 {
		rt.CapabilityArgs["portMappings"] = pn.PortMappings
	}
	if bw := pn.Bandwidth; bw != nil && (bw.IngressRate > 0 || bw.EgressRate > 0) {
		// Burst is given as the largest value the bandwidth plugin accepts, like kubelet does.
		c := map[string]uint64{}
		if bw.IngressRate > 0 {
			c["ingressRate"], c["ingressBurst"] = bw.IngressRate, 1<<31-1
		}
		if bw.EgressRate > 0 {
			c["egressRate"], c["egressBurst"] = bw.EgressRate, 1<<31-1
		}
		rt.CapabilityArgs["bandwidth"] = c
	}
	if pn.DNS != nil {
		rt.CapabilityArgs["dns"] = pn.DNS
	}
	if len(pn.IPs) > 0 {
		rt.CapabilityArgs["ips"] = pn.IPs
	}
	if len(pn.IPRanges) > 0 {
		// One range set per entry, the shape host-local expects for "ipRanges".
		sets := make([][]IPRange, 0, len(pn.IPRanges))
		for _, r := range pn.IPRanges {
			sets = append(sets, []IPRange{r})
		}
		rt.CapabilityArgs["ipRanges"] = sets
	}
	return rt
}

// Setup attaches the pod to the network: it runs CNI ADD for the whole plugin chain in pn.NetNS (the caller has
// brought lo up there).
// On failure it runs CNI DEL to undo a partial setup and returns the ADD error. Errors: InvalidArgument for a bad
// PodNetwork, FailedPrecondition when no config is loaded, otherwise the wrapped plugin error.
func (m *Manager) Setup(ctx context.Context, pn PodNetwork) (_ *Result, retErr error) {
	defer m.observed("setup", time.Now(), &retErr)
	if err := pn.validate(true); err != nil {
		return nil, err
	}
	list, err := m.network()
	if err != nil {
		return nil, err
	}
	rt := m.runtimeConf(&pn)
	res, err := m.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		addErr := fmt.Errorf("cni: add pod %s to network %q: %w", pn.ID, list.Name, err)
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := m.cni.DelNetworkList(dctx, list, rt); derr != nil {
			return nil, errors.Join(addErr, fmt.Errorf("cni: undo partial setup of %s: %w", pn.ID, derr))
		}
		return nil, addErr
	}
	out, err := m.buildResult(list.Name, res)
	if err != nil {
		return nil, fmt.Errorf("cni: pod %s: %w", pn.ID, err)
	}
	return out, nil
}

func (m *Manager) buildResult(network string, res types.Result) (*Result, error) {
	raw, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode CNI result: %w", err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("convert CNI result: %w", err)
	}
	var v4, v6 []string
	for _, ipc := range r.IPs {
		if ipc == nil || ipc.Address.IP == nil {
			continue
		}
		// Skip addresses a plugin reports for host-side interfaces.
		if i := ipc.Interface; i != nil && *i >= 0 && *i < len(r.Interfaces) && r.Interfaces[*i].Sandbox == "" {
			continue
		}
		if ip4 := ipc.Address.IP.To4(); ip4 != nil {
			v4 = append(v4, ip4.String())
		} else {
			v6 = append(v6, ipc.Address.IP.String())
		}
	}
	return &Result{Network: network, Interface: m.ifName, IPs: append(v4, v6...), Raw: raw}, nil
}

// Teardown detaches the pod (CNI DEL for the chain, in reverse order). It is idempotent and tolerates a partial
// setup. If pn.NetNS no longer exists, an empty netns is passed as the CNI spec requires. prevResult is
// normally taken from libcni's cache; cachedResult (Result.Raw from Setup, may be nil) is used instead when that
// cache entry is gone.
func (m *Manager) Teardown(ctx context.Context, pn PodNetwork, cachedResult []byte) (retErr error) {
	defer m.observed("teardown", time.Now(), &retErr)
	if err := pn.validate(false); err != nil {
		return err
	}
	list, err := m.network()
	if err != nil {
		return err
	}
	if pn.NetNS != "" {
		if _, err := os.Stat(pn.NetNS); err != nil {
			pn.NetNS = ""
		}
	}
	rt := m.runtimeConf(&pn)
	if len(cachedResult) > 0 {
		if cached, _ := m.cni.GetNetworkListCachedResult(list, rt); cached == nil {
			if err := m.delWithPrevResult(ctx, list, rt, cachedResult); err != nil {
				return fmt.Errorf("cni: delete pod %s from network %q: %w", pn.ID, list.Name, err)
			}
			return nil
		}
	}
	if err := m.cni.DelNetworkList(ctx, list, rt); err != nil {
		return fmt.Errorf("cni: delete pod %s from network %q: %w", pn.ID, list.Name, err)
	}
	return nil
}

// delWithPrevResult runs DEL like libcni's DelNetworkList but with a prevResult supplied by the caller.
func (m *Manager) delWithPrevResult(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf, raw []byte) error {
	prev, err := create.CreateFromBytes(raw)
	if err != nil {
		return fmt.Errorf("decode cached result: %w", err)
	}
	if prev, err = prev.GetAsVersion(list.CNIVersion); err != nil {
		return fmt.Errorf("convert cached result to %s: %w", list.CNIVersion, err)
	}
	for i := len(list.Plugins) - 1; i >= 0; i-- {
		p := list.Plugins[i]
		inject := map[string]any{"name": list.Name, "cniVersion": list.CNIVersion, "prevResult": prev}
		rc := map[string]any{}
		for c, ok := range p.Network.Capabilities {
			if v, has := rt.CapabilityArgs[c]; ok && has {
				rc[c] = v
			}
		}
		if len(rc) > 0 {
			inject["runtimeConfig"] = rc
		}
		conf, err := libcni.InjectConf(p, inject)
		if err != nil {
			return fmt.Errorf("build config for plugin %s: %w", p.Network.Type, err)
		}
		path, err := invoke.FindInPath(p.Network.Type, m.binDirs)
		if err != nil {
			return err
		}
		args := &invoke.Args{Command: "DEL", ContainerID: rt.ContainerID, NetNS: rt.NetNS, PluginArgs: rt.Args,
			IfName: rt.IfName, Path: strings.Join(m.binDirs, string(os.PathListSeparator))}
		if err := invoke.ExecPluginWithoutResult(ctx, path, conf.Bytes, args, nil); err != nil {
			return fmt.Errorf("plugin %s failed (delete): %w", p.Network.Type, err)
		}
	}
	return nil
}

// Status reports whether pods can be networked: nil when a config is loaded and usable. For configs of spec
// version 1.1.0 or later it runs CNI STATUS; for older ones it checks that every plugin binary exists in the bin
// dirs. The error says what is missing.
func (m *Manager) Status(ctx context.Context) error {
	list, err := m.network()
	if err != nil {
		return err
	}
	var missing []string
	for _, p := range list.Plugins {
		if _, err := invoke.FindInPath(p.Network.Type, m.binDirs); err != nil {
			missing = append(missing, p.Network.Type)
		}
	}
	if len(missing) > 0 {
		return errdefs.FailedPrecondition("cni: network %q: plugin(s) %s not found in %s", list.Name,
			strings.Join(missing, ", "), strings.Join(m.binDirs, ":"))
	}
	if supportsV11(list) {
		if err := m.cni.GetStatusNetworkList(ctx, list); err != nil {
			return errdefs.Unavailable("cni: network %q not ready: %v", list.Name, err)
		}
	}
	return nil
}

// GC tells the network which attachments are still live. For configs of spec version 1.1.0 or later it runs
// libcni's GC: CNI DEL for every cached attachment of this network not in live, then CNI GC on each plugin.
// For older configs it does nothing (there is no way to ask those plugins, and deleting by the cache alone could
// remove attachments of another runtime sharing the cache dir); the caller tears down known dead pods itself.
func (m *Manager) GC(ctx context.Context, live []Attachment) error {
	list, err := m.network()
	if err != nil {
		return err
	}
	if !supportsV11(list) {
		return nil
	}
	args := &libcni.GCArgs{}
	for _, a := range live {
		ifName := a.IfName
		if ifName == "" {
			ifName = m.ifName
		}
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: a.ContainerID, IfName: ifName})
	}
	if err := m.cni.GCNetworkList(ctx, list, args); err != nil {
		return fmt.Errorf("cni: gc network %q: %w", list.Name, err)
	}
	return nil
}

func supportsV11(list *libcni.NetworkConfigList) bool {
	ok, err := version.GreaterThanOrEqualTo(list.CNIVersion, "1.1.0")
	return err == nil && ok
}
