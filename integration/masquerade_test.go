package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/cni"
	"github.com/noded/noded/integration/framework"
	"github.com/noded/noded/internal/testnet"
)

// TestStaticMasquerade runs noded with cni.masquerade_subnets and a network whose bridge does not masquerade
// (ipMasq false): a pod's TCP connection to an "outside" namespace, reached through a veth from the host with no
// route back to the pod subnet, arrives from the host side's address. The rule is made once across restarts and
// removed when the list is emptied, after which the connection no longer arrives.
func TestStaticMasquerade(t *testing.T) {
	framework.RequireRoot(t)
	for _, tool := range []string{"iptables-save", "iptables-restore", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
	network := framework.NewNetwork(t, 45)
	confPath := filepath.Join(network.ConfDir, "10-test.conflist")
	conf, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	noMasq := strings.Replace(string(conf), `"ipMasq": true`, `"ipMasq": false`, 1)
	if noMasq == string(conf) {
		t.Fatal("the test network's conflist has no \"ipMasq\": true to turn off")
	}
	if err := os.WriteFile(confPath, []byte(noMasq), 0o644); err != nil {
		t.Fatal(err)
	}
	host := framework.Registry(t, map[string]v1.Image{"library/busybox:latest": framework.Busybox(t)})
	n := framework.Start(t, framework.Options{CNIConfDir: network.ConfDir, Mirrors: map[string]string{"docker.io": "http://" + host}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Whatever the test leaves of the rule (it fails half-way), removed as noded would with an empty list; runs
	// before noded's own cleanup removes the state file it reads.
	t.Cleanup(func() {
		m := cni.NewMasquerade(n.Root)
		if err := m.Remove(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if _, err := n.Image.PullImage(ctx, &runtimeapi.ImageSpec{Image: "busybox"}, nil, nil); err != nil {
		t.Fatalf("pull busybox: %v", err)
	}
	subnet := network.Subnet
	if got := masqRules(t, subnet); got != 0 {
		t.Fatalf("%d masquerade rules for %s before it is configured", got, subnet)
	}

	dropin := filepath.Join(filepath.Dir(n.ConfigPath), "config.d", "50-masq.toml")
	if err := os.MkdirAll(filepath.Dir(dropin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dropin, []byte(fmt.Sprintf("[cni]\nmasquerade_subnets = [%q]\n", subnet)), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		n.Restart()
		if got, jumps := masqRules(t, subnet), masqJumps(t); got != 1 || jumps != 1 {
			t.Fatalf("after start %d with the subnet listed: %d rules for %s, %d jumps to %s; want 1 and 1\n%s",
				i+1, got, subnet, jumps, cni.MasqueradeChain, natTable(t))
		}
	}

	out := newOutside(t)
	e := &podEnv{n: n, net: network, ctx: ctx}
	podCfg := e.podConfig(t, "masq")
	podID := e.runPod(t, podCfg)
	client := e.createContainer(t, podID, podCfg, "client", "sleep", "1000")
	if err := n.Runtime.StartContainer(ctx, client); err != nil {
		t.Fatal(err)
	}
	if ip := e.podIP(t, podID); !strings.HasPrefix(ip, network.Prefix()) {
		t.Fatalf("pod IP %q is not on %s", ip, subnet)
	}
	got, err := out.fetchFrom(ctx, n, client, 30*time.Second)
	if err != nil {
		t.Fatalf("the pod could not reach the outside namespace through the masquerade rule: %v\n%s", err, natTable(t))
	}
	if got != out.hostIP {
		t.Fatalf("the connection arrived from %s, want the host side's %s (masqueraded)", got, out.hostIP)
	}

	// Emptying the list removes the rule (and noded's chain and jump when no other noded's rule is in it).
	if err := os.WriteFile(dropin, []byte("[cni]\nmasquerade_subnets = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.Restart()
	if got := masqRules(t, subnet); got != 0 {
		t.Fatalf("%d rules for %s left after the list was emptied\n%s", got, subnet, natTable(t))
	}
	if _, err := os.Stat(filepath.Join(n.Root, "cni-masquerade.json")); !os.IsNotExist(err) {
		t.Errorf("masquerade state left with an empty list: %v", err)
	}
	// With neither rule, the outside namespace cannot answer the pod: the check above was the rule's doing.
	if got, err := out.fetchFrom(ctx, n, client, 10*time.Second); err == nil {
		t.Fatalf("the pod still reached the outside namespace (from %s) with no masquerade rule", got)
	}
}

// masqRules counts noded's masquerade rules of subnet in the host's nat table.
func masqRules(t *testing.T, subnet string) int {
	return strings.Count(natTable(t), fmt.Sprintf("--comment \"noded: masquerade %s\"", subnet))
}

// masqJumps counts POSTROUTING's jumps to noded's chain.
func masqJumps(t *testing.T) int {
	n := 0
	for _, l := range strings.Split(natTable(t), "\n") {
		if strings.HasPrefix(l, "-A POSTROUTING ") && strings.HasSuffix(l, "-j "+cni.MasqueradeChain) {
			n++
		}
	}
	return n
}

func natTable(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		t.Fatalf("iptables-save -t nat: %v", err)
	}
	return string(out)
}

// outside is a network namespace reached from the host through a veth, with a route to the veth's subnet only,
// and an HTTP server in it answering the address each request came from.
type outside struct {
	hostIP, outIP string
	port          int
}

func newOutside(t *testing.T) *outside {
	t.Helper()
	ns := testnet.Bridge("nodedmq", 45) // a name of this slot's own
	veth := ns + "h"
	link := testnet.Subnet(98) // 10.2xx.98.0/24, unused by the tests' pod networks
	prefix := link[:strings.LastIndex(link, ".")+1]
	o := &outside{hostIP: prefix + "1", outIP: prefix + "2"}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", ns).Run() // a previous run's, killed before its cleanup
	_ = exec.Command("ip", "link", "del", veth).Run()
	run("netns", "add", ns)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", veth).Run()
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("cleanup: ip netns del %s: %v: %s", ns, err, out)
		}
	})
	run("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	run("addr", "add", o.hostIP+"/24", "dev", veth)
	run("link", "set", veth, "up")
	run("-n", ns, "addr", "add", o.outIP+"/24", "dev", "eth0")
	run("-n", ns, "link", "set", "eth0", "up")
	run("-n", ns, "link", "set", "lo", "up")

	ln, err := listenInNetns("/run/netns/"+ns, o.outIP+":0")
	if err != nil {
		t.Fatalf("listen in %s: %v", ns, err)
	}
	o.port = ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "from=%s\n", h)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return o
}

// fetchFrom asks the outside server, from container id, where the request came from; the exec is bounded by
// timeout (busybox's wget -T crashes in the test image).
func (o *outside) fetchFrom(ctx context.Context, n *framework.Noded, id string, timeout time.Duration) (string, error) {
	url := fmt.Sprintf("http://%s:%d/", o.outIP, o.port)
	out, stderr, err := n.Runtime.ExecSync(ctx, id, []string{"wget", "-q", "-O-", url}, timeout)
	if err != nil {
		return "", fmt.Errorf("wget %s: %v: %s", url, err, stderr)
	}
	s := strings.TrimSpace(string(out))
	if !strings.HasPrefix(s, "from=") {
		return "", fmt.Errorf("wget %s: exit ok but answer %q: %s", url, s, stderr)
	}
	return strings.TrimPrefix(s, "from="), nil
}

// listenInNetns listens on addr inside the network namespace at path; the socket stays there.
func listenInNetns(path, addr string) (net.Listener, error) {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	target, err := os.Open(path)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("setns %s: %w", path, err)
	}
	ln, lerr := net.Listen("tcp4", addr)
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, and so dies with its goroutine instead of serving others in the wrong namespace.
		if ln != nil {
			ln.Close()
		}
		return nil, fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return ln, lerr
}
