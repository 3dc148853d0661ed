// Package config holds noded's configuration: one TOML file with safe defaults, plus drop-ins merged in name order.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"
)

// Default paths.
const (
	DefaultConfigPath = "/etc/noded/config.toml"
	DefaultRoot       = "/var/lib/noded"
	DefaultState      = "/run/noded"
	DefaultSocket     = "/run/noded/noded.sock"
)

// Cgroup drivers.
const (
	CgroupDriverAuto     = "auto"
	CgroupDriverSystemd  = "systemd"
	CgroupDriverCgroupfs = "cgroupfs"
)

// Config is the whole daemon configuration.
type Config struct {
	// DefaultRuntime names the runtime handler used when a pod asks for none.
	DefaultRuntime string `toml:"default_runtime"`
	// Runtimes maps a RuntimeClass handler name to its OCI runtime.
	Runtimes map[string]Runtime `toml:"runtimes"`
	// Conmon is the path of the conmon binary that watches each container.
	Conmon string `toml:"conmon"`
	// CgroupDriver is auto, systemd or cgroupfs.
	CgroupDriver string `toml:"cgroup_driver"`
	// CgroupParent is the absolute cgroup (cgroupfs) or slice (systemd) used when kubelet gives none.
	CgroupParent string `toml:"cgroup_parent"`
	// MaxConcurrentPodStarts bounds RunPodSandbox+CreateContainer work in flight; more wait, then ResourceExhausted.
	MaxConcurrentPodStarts int `toml:"max_concurrent_pod_starts"`
	// LogLevel is the klog verbosity (like -v, which overrides it at start); SIGHUP applies a change.
	LogLevel int `toml:"log_level"`
	// PodStartQueueWait is how long a start beyond the limit waits for a slot before ResourceExhausted.
	PodStartQueueWait Duration `toml:"pod_start_queue_wait"`
	// UnclaimedCreateTimeout is how long a creation finished after its caller gave up waits for the retry.
	UnclaimedCreateTimeout Duration `toml:"unclaimed_create_timeout"`
	// HostResolvConf is the host's resolver file, copied into pods that have no DNS config (missing: empty file).
	HostResolvConf string `toml:"host_resolv_conf"`
	// HostHostsFile is the host's hosts file, copied into host-network pods (missing: localhost entries only).
	HostHostsFile string `toml:"host_hosts_file"`

	CNI       CNI       `toml:"cni"`
	CDI       CDI       `toml:"cdi"`
	Registry  Registry  `toml:"registry"`
	Streaming Streaming `toml:"streaming"`
	Metrics   Metrics   `toml:"metrics"`
	Stats     Stats     `toml:"stats"`
	Debug     Debug     `toml:"debug"`
}

// Runtime is one OCI runtime handler.
type Runtime struct {
	// Path is the runtime binary: an absolute path or a name looked up in PATH.
	Path string `toml:"path"`
	// Root is the runtime's state dir (--root); empty means <state>/runtimes/<handler>.
	Root string `toml:"root"`
}

// CNI configures pod networking.
type CNI struct {
	ConfDir string   `toml:"conf_dir"`
	BinDirs []string `toml:"bin_dirs"`
	// MasqueradeSubnets are pod subnets (CIDRs, IPv4 or IPv6) whose traffic leaving them is masqueraded by one
	// rule per subnet in noded's nat chain NODED-MASQ, made at start (cni/masquerade.go); for networks whose
	// bridge plugin runs with ipMasq false. Empty: noded makes none (and removes those it made before).
	MasqueradeSubnets []string `toml:"masquerade_subnets"`
}

// CDI configures Container Device Interface devices.
type CDI struct {
	// SpecDirs are the directories of CDI spec files, later ones winning over earlier ones for the same device.
	SpecDirs []string `toml:"spec_dirs"`
}

// Registry configures image pulls.
type Registry struct {
	// MaxConcurrentDownloads is how many layers of one pull download in parallel.
	MaxConcurrentDownloads int `toml:"max_concurrent_downloads"`
	// StallTimeout aborts a download that makes no progress for this long.
	StallTimeout Duration `toml:"stall_timeout"`
	// Hosts maps a registry host (e.g. docker.io) to its mirrors and credentials.
	Hosts map[string]RegistryHost `toml:"hosts"`
}

// RegistryHost configures one upstream registry host.
type RegistryHost struct {
	// Mirrors are tried in order before the upstream; an http:// URL allows plain HTTP for that mirror only.
	Mirrors []Mirror `toml:"mirrors"`
	// MirrorsOnly forbids falling back to the upstream host.
	MirrorsOnly bool `toml:"mirrors_only"`
	// Auth holds credentials for the host and its mirrors.
	Auth *Auth `toml:"auth"`
	// PlainHTTP reaches the host itself (not its mirrors) over plain HTTP: an insecure registry.
	PlainHTTP bool `toml:"plain_http"`
	// SkipVerify does not verify the TLS certificate of the host itself.
	SkipVerify bool `toml:"skip_verify"`
}

// Mirror is one registry endpoint.
type Mirror struct {
	URL        string `toml:"url"`
	SkipVerify bool   `toml:"skip_verify"`
}

// Auth holds registry credentials.
type Auth struct {
	Username      string `toml:"username"`
	Password      string `toml:"password"`
	IdentityToken string `toml:"identity_token"`
	RegistryToken string `toml:"registry_token"`
}

// Streaming configures the exec/attach/port-forward server.
type Streaming struct {
	// Address is host:port; port 0 picks a free port.
	Address string `toml:"address"`
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Address is host:port of the endpoint; empty disables it.
	Address string `toml:"address"`
}

// Stats configures how container and pod statistics are gathered.
type Stats struct {
	// CollectionPeriod is how often the cgroup counters of every running container and pod are sampled in the
	// background; stats calls then serve those samples (each with the time it was taken) instead of reading every
	// cgroup per call. 0 reads on demand, per call.
	CollectionPeriod Duration `toml:"collection_period"`
}

// Debug configures debugging aids.
type Debug struct {
	// PprofSocket is the path of the unix socket (0600, root) serving the pprof endpoints (mutex and block
	// profiles sampling while it is on); empty disables it.
	PprofSocket string `toml:"pprof_socket"`
	// PprofAddress is the removed TCP endpoint: set, it is an error (pprof over TCP was reachable from pods on
	// the host network, unauthenticated).
	PprofAddress string `toml:"pprof_address"`
}

// Duration is a time.Duration written as a Go duration string ("90s", "2m").
type Duration struct{ time.Duration }

// UnmarshalText parses a duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q", string(b))
	}
	d.Duration = v
	return nil
}

// MarshalText formats the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Default returns the configuration used when no file sets anything.
func Default() Config {
	return Config{
		DefaultRuntime: "runc",
		Runtimes: map[string]Runtime{
			"runc": {Path: "runc"},
			"crun": {Path: "crun"},
		},
		Conmon:                 "/usr/bin/conmon",
		CgroupDriver:           CgroupDriverAuto,
		CgroupParent:           "",
		MaxConcurrentPodStarts: 64,
		PodStartQueueWait:      Duration{10 * time.Second},
		UnclaimedCreateTimeout: Duration{10 * time.Minute},
		HostResolvConf:         "/etc/resolv.conf",
		HostHostsFile:          "/etc/hosts",
		CNI: CNI{
			ConfDir:           "/etc/cni/net.d",
			BinDirs:           []string{"/usr/lib/cni", "/opt/cni/bin"},
			MasqueradeSubnets: []string{},
		},
		CDI: CDI{SpecDirs: []string{"/etc/cdi", "/var/run/cdi"}},
		Registry: Registry{
			MaxConcurrentDownloads: 3,
			StallTimeout:           Duration{time.Minute},
			Hosts:                  map[string]RegistryHost{},
		},
		Streaming: Streaming{Address: "127.0.0.1:0"},
		Stats:     Stats{CollectionPeriod: Duration{10 * time.Second}},
	}
}

// Load reads the config file at path (a missing file means defaults) and then every *.toml file of the drop-in
// dir path's dir + "/config.d", in name order, each overriding what it sets. The result is validated.
func Load(path string) (Config, error) {
	cfg := Default()
	files := []string{}
	if _, err := os.Stat(path); err == nil {
		files = append(files, path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	dropins, err := filepath.Glob(filepath.Join(filepath.Dir(path), "config.d", "*.toml"))
	if err != nil {
		return cfg, err
	}
	sort.Strings(dropins)
	files = append(files, dropins...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return cfg, fmt.Errorf("config %s: %w", f, err)
		}
		if err := decodeInto(&cfg, data); err != nil {
			return cfg, fmt.Errorf("config %s: %w", f, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		if len(files) > 0 {
			return cfg, fmt.Errorf("config %s: %w", strings.Join(files, ", "), err)
		}
		return cfg, err
	}
	return cfg, nil
}

// Parse decodes one TOML document over the defaults and validates the result.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	if err := decodeInto(&cfg, data); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// decodeInto overlays a TOML document on cfg. Unknown keys and syntax errors name the key and line.
func decodeInto(cfg *Config, data []byte) error {
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(cfg)
	if err == nil {
		return nil
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		msgs := make([]string, 0, len(strict.Errors))
		for i := range strict.Errors {
			row, col := strict.Errors[i].Position()
			msgs = append(msgs, fmt.Sprintf("line %d, column %d: unknown key %q", row, col,
				strings.Join(strict.Errors[i].Key(), ".")))
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	var derr *toml.DecodeError
	if errors.As(err, &derr) {
		row, col := derr.Position()
		key := strings.Join(derr.Key(), ".")
		if key != "" {
			return fmt.Errorf("line %d, column %d: key %q: %s", row, col, key, derr.Error())
		}
		return fmt.Errorf("line %d, column %d: %s", row, col, derr.Error())
	}
	return err
}

// Validate checks values that decoding cannot.
func (c *Config) Validate() error {
	switch c.CgroupDriver {
	case CgroupDriverAuto, CgroupDriverSystemd, CgroupDriverCgroupfs:
	default:
		return fmt.Errorf("cgroup_driver: %q is not one of auto, systemd, cgroupfs", c.CgroupDriver)
	}
	if c.CgroupParent != "" && c.CgroupDriver == CgroupDriverCgroupfs && !filepath.IsAbs(c.CgroupParent) {
		return fmt.Errorf("cgroup_parent: %q must be an absolute path with the cgroupfs driver", c.CgroupParent)
	}
	if c.CgroupParent != "" && strings.Contains(c.CgroupParent, "..") {
		return fmt.Errorf("cgroup_parent: %q must not contain a .. element", c.CgroupParent)
	}
	if _, ok := c.Runtimes[c.DefaultRuntime]; !ok {
		return fmt.Errorf("default_runtime: %q is not a key of [runtimes]", c.DefaultRuntime)
	}
	for name, rt := range c.Runtimes {
		if name == "" || strings.ContainsAny(name, "/ ") {
			return fmt.Errorf("runtimes: invalid handler name %q", name)
		}
		if rt.Path == "" {
			return fmt.Errorf("runtimes.%s.path: must be set", name)
		}
		if rt.Root != "" && !filepath.IsAbs(rt.Root) {
			return fmt.Errorf("runtimes.%s.root: %q must be absolute", name, rt.Root)
		}
	}
	if c.Conmon == "" {
		return errors.New("conmon: must be set")
	}
	if !filepath.IsAbs(c.HostResolvConf) {
		return fmt.Errorf("host_resolv_conf: %q must be an absolute path", c.HostResolvConf)
	}
	if !filepath.IsAbs(c.HostHostsFile) {
		return fmt.Errorf("host_hosts_file: %q must be an absolute path", c.HostHostsFile)
	}
	if c.Debug.PprofAddress != "" {
		return errors.New("debug.pprof_address: removed, pprof is no longer served over TCP; set debug.pprof_socket to a unix socket path (mode 0600)")
	}
	if p := c.Debug.PprofSocket; p != "" && !filepath.IsAbs(p) {
		return fmt.Errorf("debug.pprof_socket: %q must be an absolute path", p)
	}
	if c.LogLevel < 0 || c.LogLevel > 10 {
		return fmt.Errorf("log_level: %d is not between 0 and 10", c.LogLevel)
	}
	if c.MaxConcurrentPodStarts < 1 {
		return fmt.Errorf("max_concurrent_pod_starts: %d must be at least 1", c.MaxConcurrentPodStarts)
	}
	if c.PodStartQueueWait.Duration < 0 {
		return errors.New("pod_start_queue_wait: must not be negative")
	}
	if c.UnclaimedCreateTimeout.Duration <= 0 {
		return errors.New("unclaimed_create_timeout: must be positive")
	}
	if c.Stats.CollectionPeriod.Duration < 0 {
		return errors.New("stats.collection_period: must not be negative (0 reads on demand)")
	}
	if c.CNI.ConfDir == "" || len(c.CNI.BinDirs) == 0 {
		return errors.New("cni: conf_dir and bin_dirs must be set")
	}
	for i, sn := range c.CNI.MasqueradeSubnets {
		p, err := netip.ParsePrefix(sn)
		if err != nil {
			return fmt.Errorf("cni.masquerade_subnets[%d]: %q is not a CIDR (e.g. \"10.88.0.0/16\" or \"fd00:88::/64\")", i, sn)
		}
		if p.Masked() != p {
			return fmt.Errorf("cni.masquerade_subnets[%d]: %q is not a network address (want %q)", i, sn, p.Masked().String())
		}
	}
	for i, d := range c.CDI.SpecDirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("cdi.spec_dirs[%d]: %q must be absolute", i, d)
		}
	}
	if c.Registry.MaxConcurrentDownloads < 1 {
		return fmt.Errorf("registry.max_concurrent_downloads: %d must be at least 1", c.Registry.MaxConcurrentDownloads)
	}
	if c.Registry.StallTimeout.Duration <= 0 {
		return errors.New("registry.stall_timeout: must be positive")
	}
	for host, h := range c.Registry.Hosts {
		if host == "" || strings.ContainsAny(host, "/ ") {
			return fmt.Errorf("registry.hosts: invalid host %q (want host[:port])", host)
		}
		for i, m := range h.Mirrors {
			if !strings.HasPrefix(m.URL, "http://") && !strings.HasPrefix(m.URL, "https://") {
				return fmt.Errorf("registry.hosts.%q.mirrors[%d].url: %q must start with http:// or https://", host, i, m.URL)
			}
		}
	}
	for key, addr := range map[string]string{
		"streaming.address": c.Streaming.Address, "metrics.address": c.Metrics.Address,
	} {
		if addr == "" && key != "streaming.address" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s: %q is not host:port", key, addr)
		}
	}
	if (c.Streaming.TLSCert == "") != (c.Streaming.TLSKey == "") {
		return errors.New("streaming: tls_cert and tls_key must be set together")
	}
	return nil
}
