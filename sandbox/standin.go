package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/noded/noded/cni"
	"github.com/noded/noded/internal/nsutil"
	"github.com/noded/noded/store"
)

// standInNetNS makes a network namespace for the CNI DEL of a pod whose own namespace is gone, holding an
// interface of the pod's interface name with the pod's addresses. Plugins find a pod's per-attachment host rules
// from the addresses on its interface (the bridge plugin's ipMasq rules) and skip removing them when DEL comes
// without a namespace, which would leak them. It returns "" when the pod's addresses are not known.
func (m *Manager) standInNetNS(ctx context.Context, sb *store.Sandbox) (path string, cleanup func(), err error) {
	addrs := podAddresses(sb)
	if len(addrs) == 0 {
		return "", func() {}, nil
	}
	dir := filepath.Join(m.nsDir, sb.ID+".standin")
	pins, err := nsutil.Pin(ctx, dir, []nsutil.Type{nsutil.Net})
	if err != nil {
		return "", nil, fmt.Errorf("stand-in network namespace: %w", err)
	}
	path = pins[nsutil.Net]
	cleanup = func() {
		_ = nsutil.Unpin(path)
		_ = os.RemoveAll(dir)
	}
	err = nsutil.WithNetNS(path, func() error {
		// A veth pair with both ends in the stand-in: the one link type every CNI host has (dummy may be absent).
		link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: cni.DefaultInterface}, PeerName: "standin0"}
		if err := netlink.LinkAdd(link); err != nil {
			return err
		}
		for _, a := range addrs {
			if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: a}); err != nil {
				return err
			}
		}
		return netlink.LinkSetUp(link)
	})
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("stand-in network namespace: %w", err)
	}
	return path, cleanup, nil
}

// podAddresses are the pod's addresses with their prefix lengths, from the CNI result recorded at setup (or, without
// one, the recorded IPs as host addresses).
func podAddresses(sb *store.Sandbox) []*net.IPNet {
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	var out []*net.IPNet
	if len(sb.CNIResult) > 0 && json.Unmarshal(sb.CNIResult, &res) == nil {
		for _, a := range res.IPs {
			if ip, ipn, err := net.ParseCIDR(a.Address); err == nil {
				ipn.IP = ip
				out = append(out, ipn)
			}
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, s := range sb.IPs {
		if ip := net.ParseIP(s); ip != nil {
			bits := 32
			if ip.To4() == nil {
				bits = 128
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		}
	}
	return out
}
