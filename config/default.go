package config

import (
	"bytes"
	"text/template"
)

// defaultTemplate documents every key. It is rendered from Default() so the printed values are the real ones.
const defaultTemplate = `# noded configuration. Every key is optional: this file shows the defaults.
# Drop-ins in config.d/*.toml beside this file are merged over it in name order.

# Runtime handler used when a pod names none (RunPodSandboxRequest.runtime_handler).
default_runtime = {{q .DefaultRuntime}}

# conmon watches each container, writes its CRI log and records its exit.
conmon = {{q .Conmon}}

# cgroup driver: "auto" (systemd when systemd is PID 1 on a pure cgroup v2 host, else cgroupfs),
# "systemd" or "cgroupfs". kubelet's --cgroup-driver must match what RuntimeConfig reports.
cgroup_driver = {{q .CgroupDriver}}

# Cgroup parent for pods whose config names none: an absolute path (cgroupfs) or a slice name (systemd).
# Empty means "/noded" (cgroupfs) or "noded.slice" (systemd).
cgroup_parent = {{q .CgroupParent}}

# Pod and container creations in flight at once. Up to as many more queue for pod_start_queue_wait, then fail
# with ResourceExhausted (as do calls finding the queue full); kubelet retries them.
max_concurrent_pod_starts = {{.MaxConcurrentPodStarts}}
pod_start_queue_wait = {{q .PodStartQueueWait.String}}

# A pod or container whose creation finished after its caller (kubelet) gave up is kept for the caller's retry
# with the same name; one no retry claims within this time of its creation is removed.
unclaimed_create_timeout = {{q .UnclaimedCreateTimeout.String}}

# The host's resolver file, copied into pods that have no DNS config. A missing file (or a dangling symlink, as
# /etc/resolv.conf is when systemd-resolved is not running) gives such pods an empty resolv.conf.
host_resolv_conf = {{q .HostResolvConf}}

# The host's hosts file, copied into host-network pods. A missing file (or a dangling symlink) gives such pods a
# hosts file with the localhost entries only.
host_hosts_file = {{q .HostHostsFile}}

# Log verbosity (klog -v): 0 logs starts, stops and errors; 2 adds pod and container lifecycle; 4 every CRI
# call. The -v flag overrides it at start; SIGHUP applies a changed value.
log_level = {{.LogLevel}}

# OCI runtimes by RuntimeClass handler name. path: absolute or looked up in PATH;
# root: the runtime's state dir (default <state>/runtimes/<handler>).
{{- range $name, $rt := .Runtimes}}
[runtimes.{{$name}}]
path = {{q $rt.Path}}
root = {{q $rt.Root}}
{{- end}}

[cni]
# The first valid *.conflist (or *.conf) in name order is used; changes are picked up without a restart.
conf_dir = {{q .CNI.ConfDir}}
bin_dirs = [{{range $i, $d := .CNI.BinDirs}}{{if $i}}, {{end}}{{q $d}}{{end}}]
# Pod subnets (CIDRs, IPv4 or IPv6) noded masquerades: one rule per subnet in its nat chain NODED-MASQ
# (-s SUBNET ! -d SUBNET -j MASQUERADE, not to multicast), jumped to once from POSTROUTING, made at start (a
# change needs a restart). For a network whose bridge plugin has "ipMasq": false. Empty: noded makes none and
# removes those it made at an earlier start. A failure to make them stops noded.
masquerade_subnets = [{{range $i, $d := .CNI.MasqueradeSubnets}}{{if $i}}, {{end}}{{q $d}}{{end}}]

[cdi]
# Directories of CDI spec files (*.json, *.yaml) resolving the devices of ContainerConfig.CDI_devices and of
# cdi.k8s.io/* annotations; a device defined in several, the later directory wins. Read when a container asks.
spec_dirs = [{{range $i, $d := .CDI.SpecDirs}}{{if $i}}, {{end}}{{q $d}}{{end}}]

[registry]
# Layers of one pull fetched in parallel.
max_concurrent_downloads = {{.Registry.MaxConcurrentDownloads}}
# A download that makes no progress for this long is aborted and retried (not a limit on total time).
stall_timeout = {{q .Registry.StallTimeout.String}}

# Mirrors and credentials per registry host. Mirrors are tried in order, then the host itself unless
# mirrors_only is true. Plain HTTP is used only for a mirror whose url starts with http://, and for the host
# itself only with plain_http = true, or when it is a loopback host (localhost, 127.0.0.0/8, ::1) on a port other
# than 443 with no mirrors, plain_http or skip_verify here that does not answer over TLS (docs/registries.md);
# skip_verify = true accepts any TLS certificate (of a mirror when set on it, of the host itself when set here).
# SIGHUP applies changes here to pulls that start afterwards.
# [registry.hosts."docker.io"]
# mirrors = [{ url = "https://mirror.example.com" }, { url = "http://127.0.0.1:5000", skip_verify = false }]
# mirrors_only = false
# plain_http = false
# skip_verify = false
# [registry.hosts."docker.io".auth]
# username = "user"
# password = "secret"

[streaming]
# Address of the exec/attach/port-forward server kubelet proxies to. Port 0 picks a free port.
address = {{q .Streaming.Address}}
# Serve TLS when both are set.
tls_cert = {{q .Streaming.TLSCert}}
tls_key = {{q .Streaming.TLSKey}}

[metrics]
# Prometheus endpoint (host:port, path /metrics); empty disables it. Keep it on loopback or a node-internal
# address, e.g. "127.0.0.1:9153".
address = {{q .Metrics.Address}}

[stats]
# How often the cgroup counters of every running container and pod are sampled in the background, for the
# stats calls to serve (each value carries the time it was taken); "0s" reads every cgroup on each call.
collection_period = {{q .Stats.CollectionPeriod.String}}

[debug]
# Unix socket (mode 0600, root only) serving Go's pprof endpoints; empty disables it. Use it with e.g.
# curl --unix-socket /run/noded/pprof.sock http://localhost/debug/pprof/goroutine?debug=1
pprof_socket = {{q .Debug.PprofSocket}}
`

// DefaultTOML returns the full default configuration as a commented TOML document.
func DefaultTOML() []byte {
	t := template.Must(template.New("config").Funcs(template.FuncMap{
		"q": func(s string) string { return tomlString(s) },
	}).Parse(defaultTemplate))
	var b bytes.Buffer
	if err := t.Execute(&b, Default()); err != nil {
		panic(err) // the template and Default() are both fixed: a failure is a programming error
	}
	return b.Bytes()
}

func tomlString(s string) string {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
