package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
)

// startServer runs busybox httpd on port in a new container of the pod, serving body.
func (e *podEnv) startServer(t *testing.T, podID string, podCfg *runtimeapi.PodSandboxConfig, name string, port int, body string) string {
	t.Helper()
	id := e.createContainer(t, podID, podCfg, name, "sh", "-c",
		fmt.Sprintf("mkdir -p /tmp/www && echo %s > /tmp/www/index.html && exec httpd -f -p %d -h /tmp/www", body, port))
	if err := e.n.Runtime.StartContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

func (e *podEnv) podIP(t *testing.T, podID string) string {
	t.Helper()
	st, err := e.n.Runtime.PodSandboxStatus(e.ctx, podID, false)
	if err != nil {
		t.Fatal(err)
	}
	return st.Status.GetNetwork().GetIp()
}

func TestPodNetworking(t *testing.T) {
	e := newPodEnv(t, 2, nil)

	// Pod A serves HTTP on 8080 with a hostPort mapping; pod B reaches it by pod IP.
	aCfg := e.podConfig(t, "server")
	aCfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: 38080}}
	a := e.runPod(t, aCfg)
	e.startServer(t, a, aCfg, "httpd", 8080, "hello-from-a")
	aIP := e.podIP(t, a)

	bCfg := e.podConfig(t, "client")
	b := e.runPod(t, bCfg)
	client := e.createContainer(t, b, bCfg, "client", "sleep", "1000")
	if err := e.n.Runtime.StartContainer(e.ctx, client); err != nil {
		t.Fatal(err)
	}
	var out []byte
	var err error
	for i := 0; i < 50; i++ { // httpd may take a moment to listen
		out, _, err = e.n.Runtime.ExecSync(e.ctx, client, []string{"wget", "-q", "-O-", "http://" + aIP + ":8080/"}, 10*time.Second)
		if err == nil && strings.Contains(string(out), "hello-from-a") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(string(out), "hello-from-a") {
		t.Fatalf("pod B could not reach pod A at %s: %q %v", aIP, out, err)
	}

	// The hostPort answers on 127.0.0.1 from the host.
	httpc := &http.Client{Timeout: 3 * time.Second}
	resp, err := httpc.Get("http://127.0.0.1:38080/")
	if err != nil {
		t.Fatalf("hostPort 38080 on 127.0.0.1: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "hello-from-a") {
		t.Fatalf("hostPort answered %q", body)
	}

	// /etc/hosts names the pod.
	hosts, _, err := e.n.Runtime.ExecSync(e.ctx, client, []string{"cat", "/etc/hosts"}, 10*time.Second)
	if err != nil || !strings.Contains(string(hosts), e.podIP(t, b)+"\tclient") {
		t.Errorf("/etc/hosts = %q, %v", hosts, err)
	}

	for _, id := range []string{a, b} {
		if err := e.n.Runtime.StopPodSandbox(e.ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := e.n.Runtime.RemovePodSandbox(e.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := httpc.Get("http://127.0.0.1:38080/"); err == nil {
		t.Error("hostPort still answers after the pod was removed")
	}
	assertNoLeaks(t, e.n)
}

func TestHostNetworkPod(t *testing.T) {
	e := newPodEnv(t, 3, nil)
	cfg := e.podConfig(t, "hostnet")
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	cfg.DnsConfig = nil
	id := e.runPod(t, cfg)
	if ip := e.podIP(t, id); ip != "" {
		t.Errorf("host-network pod got a CNI IP %q", ip)
	}
	c := e.createContainer(t, id, cfg, "c", "sleep", "1000")
	if err := e.n.Runtime.StartContainer(e.ctx, c); err != nil {
		t.Fatal(err)
	}
	out, _, err := e.n.Runtime.ExecSync(e.ctx, c, []string{"sh", "-c", "readlink /proc/self/ns/net; hostname"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	hostNS, _ := os.Readlink("/proc/self/ns/net")
	hostName, _ := os.Hostname()
	lines := strings.Fields(string(out))
	if len(lines) != 2 || lines[0] != hostNS || lines[1] != hostName {
		t.Fatalf("host-network container sees netns/hostname %q, host has %s %s", out, hostNS, hostName)
	}
	if err := e.n.Runtime.RemovePodSandbox(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	assertNoLeaks(t, e.n)
}

func TestSandboxSysctls(t *testing.T) {
	e := newPodEnv(t, 4, nil)
	bad := e.podConfig(t, "badsysctl")
	bad.Linux.Sysctls = map[string]string{"kernel.panic": "1"}
	_, err := e.n.Runtime.RunPodSandbox(e.ctx, bad, "")
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "kernel.panic") {
		t.Fatalf("non-namespaced sysctl: %v, want InvalidArgument naming it", err)
	}
	if l, _ := e.n.Runtime.ListPodSandbox(e.ctx, nil); len(l) != 0 {
		t.Fatalf("a rejected sandbox was left: %v", l)
	}
	good := e.podConfig(t, "goodsysctl")
	good.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmni": "1000"}
	id := e.runPod(t, good)
	c := e.createContainer(t, id, good, "c", "sleep", "1000")
	if err := e.n.Runtime.StartContainer(e.ctx, c); err != nil {
		t.Fatal(err)
	}
	out, _, err := e.n.Runtime.ExecSync(e.ctx, c, []string{"cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start", "/proc/sys/kernel/shmmni"}, 10*time.Second)
	if err != nil || strings.Join(strings.Fields(string(out)), " ") != "0 1000" {
		t.Fatalf("sysctls inside the pod: %q %v", out, err)
	}
	if err := e.n.Runtime.RemovePodSandbox(e.ctx, id); err != nil {
		t.Fatal(err)
	}
}

// TestSandboxChurnLeaksNothing runs 200 run/stop/remove cycles and checks for leftover netns pins, veths, IP
// allocations, iptables rules and mounts.
func TestSandboxChurnLeaksNothing(t *testing.T) {
	e := newPodEnv(t, 5, nil)
	// Warm up once so the bridge and the plugins' base chains exist before the baseline is taken.
	warm := e.runPod(t, e.podConfig(t, "warm"))
	if err := e.n.Runtime.RemovePodSandbox(e.ctx, warm); err != nil {
		t.Fatal(err)
	}
	ipt := framework.IptablesSnapshot()
	links := bridgePorts(t, e.net.Bridge)
	cycles := 200
	if testing.Short() {
		cycles = 20
	}
	for i := 0; i < cycles; i++ {
		cfg := e.podConfig(t, fmt.Sprintf("churn-%d", i))
		cfg.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 39000}}
		id := e.runPod(t, cfg)
		if err := e.n.Runtime.StopPodSandbox(e.ctx, id); err != nil {
			t.Fatalf("cycle %d stop: %v", i, err)
		}
		if err := e.n.Runtime.RemovePodSandbox(e.ctx, id); err != nil {
			t.Fatalf("cycle %d remove: %v", i, err)
		}
	}
	assertNoLeaks(t, e.n)
	// Other tests or tools may change the host's rules meanwhile: only what names this test's network or
	// subnet counts.
	var ours []string
	for _, r := range framework.IptablesAdded(ipt) {
		if strings.Contains(r, "noded-it-"+e.net.Bridge) || strings.Contains(r, e.net.Prefix()) {
			ours = append(ours, r)
		}
	}
	if len(ours) > 0 {
		t.Errorf("iptables rules left after %d cycles: %v", cycles, ours)
	}
	if now := bridgePorts(t, e.net.Bridge); len(now) != len(links) {
		t.Errorf("veths on the test bridge before %v, after %v", links, now)
	}
	ipam, _ := filepath.Glob(filepath.Join(filepath.Dir(e.net.ConfDir), "ipam", "*", "10.*"))
	if len(ipam) > 0 {
		t.Errorf("IP allocations left: %v", ipam)
	}
}

// bridgePorts lists the interfaces enslaved to bridge.
func bridgePorts(t *testing.T, bridge string) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show", "master", bridge).Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l == "" {
			continue
		}
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	return names
}
