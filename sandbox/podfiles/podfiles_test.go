package podfiles

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/noded/noded/errdefs"
)

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteHosts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "hosts")
	err := WriteHosts(p, Hosts{
		Hostname: "web-0", FQDN: "web-0.web.default.svc.cluster.local",
		PodIPs:  []string{"10.1.0.5", "fd00::5"},
		Aliases: []HostAlias{{IP: "10.9.9.9", Hostnames: []string{"foo.local", "bar"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := read(t, p)
	for _, want := range []string{
		"127.0.0.1\tlocalhost\n",
		"::1\tlocalhost ip6-localhost ip6-loopback\n",
		"10.1.0.5\tweb-0.web.default.svc.cluster.local\tweb-0\n",
		"fd00::5\tweb-0.web.default.svc.cluster.local\tweb-0\n",
		hostAliasesHeader + "10.9.9.9\tfoo.local\tbar\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("hosts lacks %q:\n%s", want, got)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	// Rewrite replaces atomically and leaves no temp files.
	if err := WriteHosts(p, Hosts{Hostname: "h"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(read(t, p), "web-0") {
		t.Error("old content survived rewrite")
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("temp files left: %v", ents)
	}
	for _, bad := range []Hosts{
		{Hostname: "h", PodIPs: []string{"10.1.0.300"}},
		{Hostname: "bad name"},
		{Aliases: []HostAlias{{IP: "x", Hostnames: []string{"a"}}}},
		{Aliases: []HostAlias{{IP: "1.2.3.4", Hostnames: []string{"a\nb"}}}},
	} {
		if err := WriteHosts(p, bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("WriteHosts(%+v): %v", bad, err)
		}
	}
}

func TestWriteHostname(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hostname")
	if err := WriteHostname(p, "pod-1"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got != "pod-1\n" {
		t.Errorf("got %q", got)
	}
	if err := WriteHostname(p, ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("empty: %v", err)
	}
}

func TestWriteResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	err := WriteResolvConf(p, &DNSConfig{
		Servers:  []string{"10.96.0.10", "fd00::a"},
		Searches: []string{"default.svc.cluster.local", "svc.cluster.local"},
		Options:  []string{"ndots:5", "edns0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver fd00::a\noptions ndots:5 edns0\n"
	if got := read(t, p); got != want {
		t.Errorf("got %q want %q", got, want)
	}
	if err := WriteResolvConf(p, &DNSConfig{}); err != nil || read(t, p) != "" {
		t.Errorf("empty config: %v %q", err, read(t, p))
	}
	// nil: copy of the host's file.
	if host, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		if err := WriteResolvConf(p, nil); err != nil || read(t, p) != string(host) {
			t.Errorf("host copy: %v", err)
		}
	}
	// A host without a resolv.conf gives the pod an empty one.
	if err := CopyHostResolvConf(p, filepath.Join(t.TempDir(), "missing")); err != nil || read(t, p) != "" {
		t.Errorf("missing host resolver: %v %q", err, read(t, p))
	}
}

// The host resolver file: copied; missing or a dangling symlink gives an empty file; unreadable is
// FailedPrecondition naming it.
func TestCopyHostResolvConf(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "pod", "resolv.conf")
	host := filepath.Join(dir, "host-resolv.conf")
	if err := os.WriteFile(host, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CopyHostResolvConf(dst, host); err != nil || read(t, dst) != "nameserver 192.0.2.53\n" {
		t.Errorf("copy: %v %q", err, read(t, dst))
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "run", "systemd", "resolve", "stub-resolv.conf"), dangling); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"missing": filepath.Join(dir, "missing"), "dangling symlink": dangling} {
		if err := CopyHostResolvConf(dst, src); err != nil || read(t, dst) != "" {
			t.Errorf("%s: %v %q; want an empty resolv.conf", name, err, read(t, dst))
		}
	}
	loop := filepath.Join(dir, "loop")
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"directory": dir, "symlink loop": loop} {
		if err := CopyHostResolvConf(dst, src); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), src) {
			t.Errorf("%s: %v; want FailedPrecondition naming %s", name, err, src)
		}
	}
}

func TestWriteResolvConfRefusesBadConfigs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	many := make([]string, 33)
	for i := range many {
		many[i] = "d.example"
	}
	long := []string{strings.Repeat("a", 1500), strings.Repeat("b", 600)}
	for name, c := range map[string]*DNSConfig{
		"33 searches":    {Searches: many},
		"long search":    {Searches: long},
		"bad server":     {Servers: []string{"dns.example"}},
		"4 servers":      {Servers: []string{"1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"}},
		"option spaces":  {Options: []string{"ndots: 5"}},
		"option colons":  {Options: []string{"a:b:c"}},
		"option empty":   {Options: []string{":5"}},
		"search newline": {Searches: []string{"a\nnameserver 1.2.3.4"}},
	} {
		if err := WriteResolvConf(p, c); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: want InvalidArgument, got %v", name, err)
		}
	}
	if err := ValidateDNS(&DNSConfig{Searches: many[:32]}); err != nil {
		t.Errorf("32 searches refused: %v", err)
	}
}
