package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultTOMLRoundTrips(t *testing.T) {
	got, err := Parse(DefaultTOML())
	if err != nil {
		t.Fatalf("default config does not parse: %v\n%s", err, DefaultTOML())
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Fatalf("parsed default differs:\n got %+v\nwant %+v", got, Default())
	}
}

func TestParseErrorsNameKeyAndLine(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"unknown top key", "conmon = \"/x\"\nbogus = 1\n", []string{"line 2", `"bogus"`}},
		{"unknown nested key", "[cni]\nconf_dir = \"/a\"\nbin_dir = [\"/b\"]\n", []string{"line 3", `"cni.bin_dir"`}},
		{"wrong type", "[registry]\nmax_concurrent_downloads = \"three\"\n", []string{"line 2"}},
		{"syntax", "conmon = \n", []string{"line 1"}},
		{"bad driver", "cgroup_driver = \"upstart\"\n", []string{"cgroup_driver", "upstart"}},
		{"relative parent", "cgroup_driver = \"cgroupfs\"\ncgroup_parent = \"kubepods\"\n", []string{"cgroup_parent", "absolute"}},
		{"unknown default runtime", "default_runtime = \"kata\"\n", []string{"default_runtime", "kata"}},
		{"mirror scheme", "[registry.hosts.\"docker.io\"]\nmirrors = [{ url = \"127.0.0.1:5000\" }]\n", []string{"mirrors[0].url"}},
		{"bad duration", "[registry]\nstall_timeout = \"soon\"\n", []string{"line 2", "soon"}},
		{"bad streaming", "[streaming]\naddress = \"nowhere\"\n", []string{"streaming.address"}},
		{"masquerade not a cidr", "[cni]\nmasquerade_subnets = [\"10.88.0.0/16\", \"10.88.0.0\"]\n", []string{"cni.masquerade_subnets[1]", "not a CIDR"}},
		{"masquerade bad v6", "[cni]\nmasquerade_subnets = [\"fd00::/129\"]\n", []string{"cni.masquerade_subnets[0]", "fd00::/129"}},
		{"masquerade host bits", "[cni]\nmasquerade_subnets = [\"10.88.0.1/16\"]\n", []string{"cni.masquerade_subnets[0]", "10.88.0.0/16"}},
		{"masquerade wrong type", "[cni]\nmasquerade_subnets = \"10.88.0.0/16\"\n", []string{"line 2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc))
			if err == nil {
				t.Fatalf("expected an error for %q", c.doc)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseOverlaysDefaults(t *testing.T) {
	doc := `
cgroup_driver = "cgroupfs"
cgroup_parent = "/noded-test"
[runtimes.kata]
path = "/opt/kata/bin/kata-runtime"
[registry]
stall_timeout = "30s"
[registry.hosts."docker.io"]
mirrors = [{ url = "http://127.0.0.1:5000" }, { url = "https://mirror.example" }]
mirrors_only = true
[registry.hosts."docker.io".auth]
username = "u"
password = "p"
`
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CgroupDriver != "cgroupfs" || cfg.CgroupParent != "/noded-test" {
		t.Errorf("cgroup settings not applied: %+v", cfg)
	}
	if cfg.Runtimes["runc"].Path != "runc" || cfg.Runtimes["kata"].Path != "/opt/kata/bin/kata-runtime" {
		t.Errorf("runtimes not merged with defaults: %+v", cfg.Runtimes)
	}
	if cfg.Registry.StallTimeout.Duration != 30*time.Second || cfg.Registry.MaxConcurrentDownloads != 3 {
		t.Errorf("registry: %+v", cfg.Registry)
	}
	h := cfg.Registry.Hosts["docker.io"]
	if len(h.Mirrors) != 2 || h.Mirrors[0].URL != "http://127.0.0.1:5000" || !h.MirrorsOnly || h.Auth.Username != "u" {
		t.Errorf("registry host: %+v", h)
	}
}

func TestMasqueradeSubnets(t *testing.T) {
	cfg, err := Parse([]byte("[cni]\nmasquerade_subnets = [\"10.88.0.0/16\", \"fd00:88::/64\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.88.0.0/16", "fd00:88::/64"}; !reflect.DeepEqual(cfg.CNI.MasqueradeSubnets, want) {
		t.Fatalf("masquerade_subnets = %q, want %q", cfg.CNI.MasqueradeSubnets, want)
	}
	if d := Default(); len(d.CNI.MasqueradeSubnets) != 0 {
		t.Fatalf("default masquerade_subnets = %q, want empty", d.CNI.MasqueradeSubnets)
	}
}

func TestStatsCollectionPeriod(t *testing.T) {
	if d := Default(); d.Stats.CollectionPeriod.Duration != 10*time.Second {
		t.Errorf("default stats.collection_period = %v, want 10s", d.Stats.CollectionPeriod)
	}
	cfg, err := Parse([]byte("[stats]\ncollection_period = \"0s\"\n"))
	if err != nil || cfg.Stats.CollectionPeriod.Duration != 0 {
		t.Errorf("collection_period 0s: %v, %v", cfg.Stats.CollectionPeriod, err)
	}
	if _, err := Parse([]byte("[stats]\ncollection_period = \"-1s\"\n")); err == nil || !strings.Contains(err.Error(), "stats.collection_period") {
		t.Errorf("negative collection_period: err = %v, want one naming stats.collection_period", err)
	}
}

func TestLoadMissingFileMeansDefaults(t *testing.T) {
	cfg, err := Load(filepath.Join(t.TempDir(), "none.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("got %+v", cfg)
	}
}

func TestLoadDropInsMergeInNameOrder(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("config.toml", "conmon = \"/main\"\nmax_concurrent_pod_starts = 7\n")
	write("config.d/20-b.toml", "conmon = \"/b\"\n")
	write("config.d/10-a.toml", "conmon = \"/a\"\n[cni]\nconf_dir = \"/cni-a\"\n")
	write("config.d/ignored.conf", "not toml at all = = =")
	cfg, err := Load(filepath.Join(dir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Conmon != "/b" || cfg.CNI.ConfDir != "/cni-a" || cfg.MaxConcurrentPodStarts != 7 {
		t.Fatalf("merge order wrong: conmon=%q conf_dir=%q max=%d", cfg.Conmon, cfg.CNI.ConfDir, cfg.MaxConcurrentPodStarts)
	}
	write("config.d/30-bad.toml", "[cni]\nconfdir = \"/x\"\n")
	_, err = Load(filepath.Join(dir, "config.toml"))
	if err == nil || !strings.Contains(err.Error(), "30-bad.toml") || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("drop-in error should name file and line: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultTOML())
	f.Add([]byte("[registry.hosts.\"a\"]\nmirrors=[{url=\"http://x\"}]"))
	f.Add([]byte("cgroup_driver = 1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config Validate rejects: %v", verr)
			}
		}
	})
}

// TestPprofOnlyOnAUnixSocket: the TCP pprof key is refused with a pointer to its replacement; the socket path
// must be absolute.
func TestPprofOnlyOnAUnixSocket(t *testing.T) {
	if _, err := Parse([]byte("[debug]\npprof_address = \"127.0.0.1:6069\"\n")); err == nil || !strings.Contains(err.Error(), "debug.pprof_socket") {
		t.Errorf("pprof_address: %v, want an error naming debug.pprof_socket", err)
	}
	if _, err := Parse([]byte("[debug]\npprof_socket = \"pprof.sock\"\n")); err == nil {
		t.Error("relative pprof_socket accepted")
	}
	c, err := Parse([]byte("[debug]\npprof_socket = \"/run/noded/pprof.sock\"\n"))
	if err != nil || c.Debug.PprofSocket != "/run/noded/pprof.sock" {
		t.Errorf("pprof_socket: %+v %v", c.Debug, err)
	}
}
