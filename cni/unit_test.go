package cni

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/noded/noded/errdefs"
)

func TestParseQuantity(t *testing.T) {
	for in, want := range map[string]int64{
		"10M": 10_000_000, "1Gi": 1 << 30, "1.5k": 1500, "2e3": 2000, "2E3": 2000, "1e+3": 1000, "500m": 1,
		"100": 100, "1Ki": 1024, "0.5Mi": 1 << 19, "1P": 1_000_000_000_000_000, "1E": 1_000_000_000_000_000_000,
		"+5": 5, "1.0001": 2, "0": 0,
	} {
		got, err := ParseQuantity(in)
		if err != nil || got != want {
			t.Errorf("ParseQuantity(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "10 M", "10MB", "1..2", "-1", "10Gb", "e3", "1e", "abc", "16Ei", " 1"} {
		if _, err := ParseQuantity(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseQuantity(%q): want InvalidArgument, got %v", in, err)
		}
	}
}

func TestParseBandwidth(t *testing.T) {
	bw, err := ParseBandwidth(map[string]string{"other": "x"})
	if bw != nil || err != nil {
		t.Errorf("no annotations: %v %v", bw, err)
	}
	bw, err = ParseBandwidth(map[string]string{IngressBandwidthAnnotation: "10M", EgressBandwidthAnnotation: "1Gi"})
	if err != nil || bw.IngressRate != 10_000_000 || bw.EgressRate != 1<<30 {
		t.Errorf("got %+v %v", bw, err)
	}
	bw, err = ParseBandwidth(map[string]string{EgressBandwidthAnnotation: "1k"})
	if err != nil || bw.IngressRate != 0 || bw.EgressRate != 1000 {
		t.Errorf("egress only: %+v %v", bw, err)
	}
	for _, v := range []string{"999", "2P", "fast"} {
		if _, err := ParseBandwidth(map[string]string{IngressBandwidthAnnotation: v}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: want InvalidArgument, got %v", v, err)
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

const loopbackList = `{"cniVersion":"1.0.0","name":"%s","plugins":[{"type":"loopback"}]}`

func TestConfigLoadingAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net.d")
	m, err := New(dir, []string{"/usr/lib/cni"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Status(context.Background()); !errorsIsFailedPrecondition(err) {
		t.Errorf("Status without config dir: %v", err)
	}
	if _, err := m.Setup(context.Background(), PodNetwork{ID: "x", NetNS: "/proc/self/ns/net"}); !errorsIsFailedPrecondition(err) {
		t.Errorf("Setup without config: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Invalid files are skipped; lexical order decides; a single-plugin .conf is wrapped into a list.
	writeFile(t, filepath.Join(dir, "05-broken.conflist"), `{"name":`)
	writeFile(t, filepath.Join(dir, "20-single.conf"), `{"cniVersion":"1.0.0","name":"single","type":"loopback"}`)
	writeFile(t, filepath.Join(dir, "README"), `not a config`)
	if got := m.ConfigFile(); got != filepath.Join(dir, "20-single.conf") {
		t.Errorf("ConfigFile = %q", got)
	}
	list, err := m.network()
	if err != nil || list.Name != "single" || len(list.Plugins) != 1 || list.Plugins[0].Network.Type != "loopback" {
		t.Fatalf("single conf: %+v %v", list, err)
	}
	writeFile(t, filepath.Join(dir, "10-list.conflist"), strings.Replace(loopbackList, "%s", "listnet", 1))
	if list, _ := m.network(); list == nil || list.Name != "listnet" {
		t.Errorf("after adding 10-list: %+v", list)
	}
	if err := m.Status(context.Background()); err != nil && !os.IsNotExist(err) {
		if _, statErr := os.Stat("/usr/lib/cni/loopback"); statErr == nil {
			t.Errorf("Status with loopback config: %v", err)
		}
	}
	// In-place edit with a new mtime is noticed.
	p := filepath.Join(dir, "10-list.conflist")
	writeFile(t, p, `{"cniVersion":"1.0.0","name":"listnet2","plugins":[{"type":"nodedmissingplugin"}]}`)
	future := time.Now().Add(time.Hour)
	_ = os.Chtimes(p, future, future)
	err = m.Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "nodedmissingplugin") {
		t.Errorf("Status with missing plugin: %v", err)
	}
	// GC on a 1.0.0 config is a no-op.
	if err := m.GC(context.Background(), nil); err != nil {
		t.Errorf("GC: %v", err)
	}
	if _, err := New("", []string{"/x"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("New with empty dir: %v", err)
	}
}

func errorsIsFailedPrecondition(err error) bool {
	return err != nil && errdefs.Code(err).String() == "FailedPrecondition"
}

func TestRuntimeConf(t *testing.T) {
	m := &Manager{ifName: "eth0"}
	rt := m.runtimeConf(&PodNetwork{
		ID: "sb1", Name: "web", Namespace: "default", UID: "u-1", NetNS: "/run/ns/net",
		PortMappings: []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}},
		Bandwidth:    &Bandwidth{IngressRate: 1000},
		DNS:          &DNS{Servers: []string{"10.0.0.10"}, Searches: []string{"svc"}},
		IPs:          []string{"10.1.0.5"},
		IPRanges:     []IPRange{{Subnet: "10.1.0.0/24"}},
	})
	var args []string
	for _, a := range rt.Args {
		args = append(args, a[0]+"="+a[1])
	}
	if got := strings.Join(args, ";"); got != "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=u-1" {
		t.Errorf("CNI_ARGS = %s", got)
	}
	caps, _ := json.Marshal(rt.CapabilityArgs)
	want := `{"bandwidth":{"ingressBurst":2147483647,"ingressRate":1000},"dns":{"servers":["10.0.0.10"],"searches":["svc"]},` +
		`"ipRanges":[[{"subnet":"10.1.0.0/24"}]],"ips":["10.1.0.5"],` +
		`"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"}]}`
	if string(caps) != want {
		t.Errorf("capabilities =\n%s\nwant\n%s", caps, want)
	}
	if rt.ContainerID != "sb1" || rt.IfName != "eth0" || rt.NetNS != "/run/ns/net" {
		t.Errorf("rt = %+v", rt)
	}
	for _, pm := range []PortMapping{
		{HostPort: 80, ContainerPort: 80, Protocol: "icmp"},
		{HostPort: 80, ContainerPort: 80, Protocol: "TCP"}, // the caller normalises
		{HostPort: 80, ContainerPort: 80},
		{ContainerPort: 80, Protocol: "tcp"}, // not published: the caller leaves it out
		{HostPort: 70000, ContainerPort: 80, Protocol: "tcp"},
	} {
		bad := PodNetwork{ID: "x", NetNS: "/n", PortMappings: []PortMapping{pm}}
		if err := bad.validate(true); !errdefs.IsInvalidArgument(err) {
			t.Errorf("port mapping %+v: %v, want InvalidArgument", pm, err)
		}
	}
}

func TestDefaultConflistTemplate(t *testing.T) {
	// As install-conf.sh writes it.
	conf, err := exec.Command("../hack/cni/render-conflist.sh", "noded", "noded0", "10.88.0.0/16").Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "10-noded.conflist"), string(conf))
	m, err := New(dir, []string{"/usr/lib/cni"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := m.network()
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, p := range list.Plugins {
		types = append(types, p.Network.Type)
	}
	if list.Name != "noded" || strings.Join(types, ",") != "bridge,portmap,loopback" {
		t.Errorf("template: name %q plugins %v", list.Name, types)
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err == nil {
		if err := m.Status(context.Background()); err != nil {
			t.Errorf("Status: %v", err)
		}
	}
}
