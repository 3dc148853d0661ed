package framework

import (
	"strings"
	"testing"

	"github.com/noded/noded/config"
)

// The generated file decodes, through the config package, to the instance's settings over the defaults; raw
// TOML of a test (top-level keys, tables the generator also knows) is kept without a repeated key.
func TestConfigFile(t *testing.T) {
	o := Options{
		Mirrors:   map[string]string{"docker.io": "http://127.0.0.1:5000", "quay.io": "http://127.0.0.1:5001"},
		TopConfig: "host_resolv_conf = \"/tmp/resolv.conf\"\n",
		Config:    "[runtimes.runc]\npath = \"/usr/sbin/runc\"\n[registry.hosts.\"private.example.com\"]\nplain_http = true\n",
	}
	doc, err := configFile(o, "/noded-it-x", "/tmp/cni")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("generated config does not parse: %v\n%s", err, doc)
	}
	if cfg.CgroupDriver != config.CgroupDriverCgroupfs || cfg.CgroupParent != "/noded-it-x" || cfg.CNI.ConfDir != "/tmp/cni" {
		t.Errorf("driver %q, parent %q, CNI dir %q", cfg.CgroupDriver, cfg.CgroupParent, cfg.CNI.ConfDir)
	}
	if got := cfg.Registry.Hosts["docker.io"].Mirrors; len(got) != 1 || got[0].URL != "http://127.0.0.1:5000" {
		t.Errorf("docker.io mirrors %v", got)
	}
	if !cfg.Registry.Hosts["private.example.com"].PlainHTTP || cfg.Runtimes["runc"].Path != "/usr/sbin/runc" ||
		cfg.HostResolvConf != "/tmp/resolv.conf" {
		t.Errorf("raw TOML lost: %+v", cfg)
	}
	if len(cfg.CNI.BinDirs) != 2 || cfg.Runtimes["crun"].Path != "crun" {
		t.Errorf("defaults lost: bin dirs %v, runtimes %v", cfg.CNI.BinDirs, cfg.Runtimes)
	}
	// Tests rewrite the file with a top-level key in front (logredact_test): only changed keys are written.
	if _, err := config.Parse([]byte("log_level = 4\n" + doc)); err != nil {
		t.Errorf("a prepended log_level repeats a key: %v", err)
	}
	// A test may still define the parent tables of the generated ones.
	if _, err := config.Parse([]byte(doc + "[registry]\nmax_concurrent_downloads = 1\n")); err != nil {
		t.Errorf("raw [registry] after the generated mirrors: %v\n%s", err, doc)
	}
	if strings.Contains(doc, "max_concurrent_pod_starts") {
		t.Errorf("default keys written:\n%s", doc)
	}

	// The systemd driver is written as given; no mirrors and no raw TOML still make a valid file.
	doc, err = configFile(Options{CgroupDriver: "systemd"}, "nodeditx.slice", "/tmp/cni")
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := config.Parse([]byte(doc)); err != nil || cfg.CgroupDriver != config.CgroupDriverSystemd ||
		len(cfg.Registry.Hosts) != 0 {
		t.Errorf("systemd: %v %+v\n%s", err, cfg, doc)
	}
}
