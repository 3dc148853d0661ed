package stats

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/nsutil"
)

// TestReadNetDevInPinnedNamespace pins a fresh network namespace, adds a veth pair eth0/peer0 and sends loopback traffic in
// it, then checks ReadNetDev sees that namespace's interfaces and counters rather than the host's.
func TestReadNetDevInPinnedNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	root := filepath.Join(t.TempDir(), "ns")
	if err := nsutil.PrepareRoot(root); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nsutil.ReleaseRoot(root) })
	pins, err := nsutil.Pin(context.Background(), filepath.Join(root, "pod"), []nsutil.Type{nsutil.Net})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nsutil.UnpinAll(pins); err != nil {
			t.Errorf("unpin: %v", err)
		}
	})
	ns := pins[nsutil.Net]
	const payload = 1000
	err = nsutil.WithNetNS(ns, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		// A veth pair made inside the namespace stays inside it and disappears with it.
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer0"}); err != nil {
			return err
		}
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := conn.WriteToUDP(make([]byte, payload), conn.LocalAddr().(*net.UDPAddr)); err != nil {
			return err
		}
		_, _, err = conn.ReadFromUDP(make([]byte, 2*payload))
		return err
	})
	if err != nil {
		t.Fatalf("set up namespace: %v", err)
	}
	devs, err := ReadNetDev(ns)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]NetDev{}
	for _, d := range devs {
		byName[d.Name] = d
	}
	if len(devs) != 3 {
		t.Errorf("interfaces %+v, want lo, eth0 and peer0 only", devs)
	}
	if _, ok := byName["eth0"]; !ok {
		t.Errorf("no eth0 in %+v", devs)
	}
	if lo := byName["lo"]; lo.RxBytes < payload || lo.TxPackets < 1 {
		t.Errorf("lo counters %+v, want the %d-byte datagram counted", lo, payload)
	}
	if _, err := ReadNetDev(filepath.Join(root, "missing")); !errdefs.IsNotFound(err) {
		t.Errorf("missing namespace: err = %v, want NotFound", err)
	}
}
