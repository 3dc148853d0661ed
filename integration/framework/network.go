package framework

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/noded/noded/internal/testnet"
)

// Network is a CNI config of the test's own: a bridge and subnet no other test or the host uses, IPAM state in
// the test's dir. Its cleanup deletes the bridge, the iptables rules and chains that appeared while it existed,
// and restores net.ipv4.ip_forward.
type Network struct {
	ConfDir string
	Bridge  string
	Subnet  string
}

// NewNetwork writes a bridge + host-local + portmap conflist for network idx (0-99; bridge "nodedit<idx>" and
// subnet 10.251.<idx>.0/24 in test slot 0, see internal/testnet) and registers cleanup on t.
func NewNetwork(t testing.TB, idx int) *Network {
	t.Helper()
	bridge, subnet := testnet.Bridge("nodedit", idx), testnet.Subnet(idx)
	RequireRoot(t)
	dir := t.TempDir()
	n := &Network{ConfDir: filepath.Join(dir, "net.d"), Bridge: bridge, Subnet: subnet}
	if err := os.MkdirAll(n.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "noded-it-%[1]s",
  "plugins": [
    {"type": "bridge", "bridge": %[1]q, "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %[2]q}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": %[3]q}},
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
    {"type": "loopback"}
  ]
}`, bridge, subnet, filepath.Join(dir, "ipam"))
	if err := os.WriteFile(filepath.Join(n.ConfDir, "10-test.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	before := IptablesSnapshot()
	forward, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", bridge).Run()
		restoreIptables(t, before, n.owns)
		if len(forward) > 0 {
			_ = os.WriteFile("/proc/sys/net/ipv4/ip_forward", forward, 0o644)
		}
	})
	return n
}

// Prefix is the subnet's first three octets with the trailing dot ("10.251.3."): every address handed out starts so.
func (n *Network) Prefix() string {
	return n.Subnet[:strings.LastIndex(n.Subnet, ".")+1]
}

// owns reports whether an iptables rule belongs to this network: it names the network or an address of its subnet.
func (n *Network) owns(rule string) bool {
	return strings.Contains(rule, "noded-it-"+n.Bridge+`\"`) || strings.Contains(rule, " "+n.Prefix())
}

var iptTables = []string{"nat", "filter", "mangle"}

// iptablesSnapshot returns, per table, the set of chains and rules (iptables-save lines).
func IptablesSnapshot() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, tbl := range iptTables {
		b, err := exec.Command("iptables-save", "-t", tbl).Output()
		if err != nil {
			continue
		}
		set := map[string]bool{}
		for _, l := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(l, ":"):
				set[strings.Fields(l)[0]] = true
			case strings.HasPrefix(l, "-A "):
				set[l] = true
			}
		}
		out[tbl] = set
	}
	return out
}

// IptablesAdded lists the rules and chains present now that were not in before.
func IptablesAdded(before map[string]map[string]bool) []string {
	var added []string
	now := IptablesSnapshot()
	for tbl, set := range now {
		for l := range set {
			if !before[tbl][l] {
				added = append(added, tbl+": "+l)
			}
		}
	}
	return added
}

// restoreIptables removes the rules added since before that owns claims, then the other added rules (CNI's
// shared hostport scaffolding) only when no other CNI network's rules remain, then added chains left empty.
// Rules of other tools or test runs working at the same time are left alone.
func restoreIptables(t testing.TB, before map[string]map[string]bool, owns func(string) bool) {
	now := IptablesSnapshot()
	for tbl, set := range now {
		othersLeft := false
		for l := range set {
			if strings.HasPrefix(l, "-A ") && strings.Contains(l, `name: \"`) && !owns(l) {
				othersLeft = true
			}
		}
		// Chains of this network: those its rules jump to or live in. Another run's chain may be empty for a
		// moment (created, its rules not added yet): only ours, and the shared hostport scaffolding once no other
		// network is left, are removed.
		ours := map[string]bool{}
		for l := range set {
			if !strings.HasPrefix(l, "-A ") || !owns(l) {
				continue
			}
			f := strings.Fields(l)
			ours[f[1]] = true
			for i := range f[:len(f)-1] {
				if f[i] == "-j" || f[i] == "-g" {
					ours[f[i+1]] = true
				}
			}
		}
		var chains []string
		for l := range set {
			if before[tbl][l] {
				continue
			}
			if strings.HasPrefix(l, "-A ") {
				if !owns(l) && othersLeft {
					continue
				}
				args := append([]string{"-t", tbl, "-D"}, splitRule(strings.TrimPrefix(l, "-A "))...)
				if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
					t.Logf("cleanup: iptables %v: %v %s", args, err, out)
				}
			} else if c := strings.TrimPrefix(l, ":"); ours[c] || (!othersLeft && strings.HasPrefix(c, "CNI-HOSTPORT-")) {
				chains = append(chains, c)
			}
		}
		// Chains are removed only once empty and unreferenced; a chain still in use by others stays.
		for _, c := range chains {
			_ = exec.Command("iptables", "-t", tbl, "-X", c).Run()
		}
	}
}

// splitRule splits an iptables-save rule into arguments, honouring double quotes.
func splitRule(s string) []string {
	var args []string
	var cur strings.Builder
	inQuote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && inQuote && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			inQuote = !inQuote
		case c == ' ' && !inQuote:
			if cur.Len() > 0 {
				args = append(args, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		args = append(args, cur.String())
	}
	return args
}
