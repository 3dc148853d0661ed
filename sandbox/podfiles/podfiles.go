// Package podfiles writes the per-pod files every container of a pod bind-mounts: /etc/hosts, /etc/hostname,
// /etc/resolv.conf, and the pod's /dev/shm tmpfs. Files are written atomically (temp file + rename in the same
// directory), so a container never sees a half-written file; note that a container which already bind-mounted
// the old file keeps seeing the old inode.
package podfiles

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/noded/noded/errdefs"
)

// Limits kubelet applies to a pod's resolv.conf.
const (
	MaxSearchDomains   = 32
	MaxSearchLineChars = 2048
	MaxNameservers     = 3
	fileMode           = 0o644
	hostsHeader        = "# Kubernetes-managed hosts file.\n"
	hostAliasesHeader  = "# Entries added by HostAliases.\n"
)

// DefaultHostResolvConf is the host's resolver file, copied into pods that have no DNS config.
const DefaultHostResolvConf = "/etc/resolv.conf"

// DefaultHostHosts is the host's hosts file, copied into host-network pods.
const DefaultHostHosts = "/etc/hosts"

// HostAlias maps one IP to extra hostnames (the pod spec's hostAliases).
type HostAlias struct {
	IP        string
	Hostnames []string
}

// Hosts describes the pod's /etc/hosts.
type Hosts struct {
	Hostname string      // pod hostname; written for every pod IP
	FQDN     string      // optional fully qualified name (hostname.subdomain.namespace.svc.<domain>), listed first
	PodIPs   []string    // pod IPs; empty for a pod without an IP yet
	Aliases  []HostAlias // hostAliases, appended after the managed entries
}

// WriteHosts writes a Kubernetes-style hosts file: localhost entries, one line per pod IP naming the pod, then
// the host aliases. Invalid IPs or names yield InvalidArgument.
func WriteHosts(path string, h Hosts) error {
	var b bytes.Buffer
	b.WriteString(hostsHeader)
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	names := []string{}
	for _, n := range []string{h.FQDN, h.Hostname} {
		if n != "" && (len(names) == 0 || names[0] != n) {
			if err := validName(n); err != nil {
				return err
			}
			names = append(names, n)
		}
	}
	if len(names) > 0 {
		for _, ip := range h.PodIPs {
			if net.ParseIP(ip) == nil {
				return errdefs.InvalidArgument("hosts: invalid pod IP %q", ip)
			}
			fmt.Fprintf(&b, "%s\t%s\n", ip, strings.Join(names, "\t"))
		}
	}
	if len(h.Aliases) > 0 {
		b.WriteString(hostAliasesHeader)
		for _, a := range h.Aliases {
			if net.ParseIP(a.IP) == nil {
				return errdefs.InvalidArgument("hosts: invalid host alias IP %q", a.IP)
			}
			for _, n := range a.Hostnames {
				if err := validName(n); err != nil {
					return err
				}
			}
			if len(a.Hostnames) > 0 {
				fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
			}
		}
	}
	return writeAtomic(path, b.Bytes())
}

// WriteHostname writes "<hostname>\n".
func WriteHostname(path, hostname string) error {
	if err := validName(hostname); err != nil {
		return err
	}
	return writeAtomic(path, []byte(hostname+"\n"))
}

// DNSConfig is the pod's DNS configuration (CRI DNSConfig).
type DNSConfig struct {
	Servers  []string
	Searches []string
	Options  []string
}

// ValidateDNS checks the limits kubelet applies: at most 3 servers, all IPs; at most 32 search domains totalling
// at most 2048 characters on the search line; options as "name" or "name:value" without spaces.
func ValidateDNS(c *DNSConfig) error {
	if len(c.Servers) > MaxNameservers {
		return errdefs.InvalidArgument("dns: %d nameservers, at most %d allowed", len(c.Servers), MaxNameservers)
	}
	for _, s := range c.Servers {
		if net.ParseIP(s) == nil {
			return errdefs.InvalidArgument("dns: invalid nameserver %q", s)
		}
	}
	if len(c.Searches) > MaxSearchDomains {
		return errdefs.InvalidArgument("dns: %d search domains, at most %d allowed", len(c.Searches), MaxSearchDomains)
	}
	if n := len(strings.Join(c.Searches, " ")); n > MaxSearchLineChars {
		return errdefs.InvalidArgument("dns: search line is %d characters, at most %d allowed", n, MaxSearchLineChars)
	}
	for _, s := range c.Searches {
		if s == "" || strings.ContainsAny(s, " \t\n\r#;") {
			return errdefs.InvalidArgument("dns: invalid search domain %q", s)
		}
	}
	for _, o := range c.Options {
		name, _, _ := strings.Cut(o, ":")
		if name == "" || strings.ContainsAny(o, " \t\n\r#;") || strings.Count(o, ":") > 1 {
			return errdefs.InvalidArgument("dns: invalid option %q (want name or name:value)", o)
		}
	}
	return nil
}

// WriteResolvConf writes a resolv.conf from c after ValidateDNS. If c is nil (a pod without a DNS config) it
// copies the host's /etc/resolv.conf instead (see CopyHostResolvConf).
func WriteResolvConf(path string, c *DNSConfig) error {
	if c == nil {
		return CopyHostResolvConf(path, DefaultHostResolvConf)
	}
	if err := ValidateDNS(c); err != nil {
		return err
	}
	var b bytes.Buffer
	if len(c.Searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(c.Searches, " "))
	}
	for _, s := range c.Servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(c.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(c.Options, " "))
	}
	return writeAtomic(path, b.Bytes())
}

// CopyHostResolvConf copies the host's resolver file src to dst for a pod without a DNS config. A host without
// one (src missing, or a dangling symlink such as /etc/resolv.conf pointing into a systemd-resolved that is not
// running) gives an empty file: no name servers, as on the host. A src that exists but cannot be read (a
// directory, a symlink loop, no permission) is FailedPrecondition naming it: the node is misconfigured.
func CopyHostResolvConf(dst, src string) error {
	data, err := os.ReadFile(src)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		data = nil
	default:
		return errdefs.FailedPrecondition("host resolver file %s cannot be read: %v", src, err)
	}
	return writeAtomic(dst, data)
}

// CopyHostHosts copies the host's hosts file src to dst for a host-network pod. A host without one (src missing
// or a dangling symlink) gives the managed file WriteHosts writes without pod IPs: the localhost entries that
// kubelet and the pod's own programs expect to resolve, nothing else (the node's name is left to DNS, as on the
// host). A src that exists but cannot be read is FailedPrecondition naming it: the node is misconfigured.
func CopyHostHosts(dst, src string) error {
	data, err := os.ReadFile(src)
	switch {
	case err == nil:
		return writeAtomic(dst, data)
	case errors.Is(err, fs.ErrNotExist):
		return WriteHosts(dst, Hosts{})
	default:
		return errdefs.FailedPrecondition("host hosts file %s cannot be read: %v", src, err)
	}
}

// CopyFile atomically copies src (e.g. the host's /etc/hosts or /etc/resolv.conf) to dst with mode 0644.
func CopyFile(dst, src string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	return writeAtomic(dst, data)
}

func validName(n string) error {
	if n == "" || len(n) > 253 || strings.ContainsAny(n, " \t\n\r#/\x00") {
		return errdefs.InvalidArgument("invalid host name %q", n)
	}
	return nil
}

// writeAtomic writes data to a temp file next to path and renames it over path, so that a reader (a container
// that bind-mounts it) sees the old or the new file, never a partial one. It does not fsync: the pod files live
// in the runtime state dir (/run/noded, a tmpfs), which does not outlive the machine, and a crash of noded
// alone loses nothing from the page cache; a sync would only add a disk flush per file to every pod start.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(fileMode); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	ok = true
	return nil
}
