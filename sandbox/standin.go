package sandbox

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"

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
	return m.host.StandInNetNS(ctx, filepath.Join(m.nsDir, sb.ID+".standin"), addrs)
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
