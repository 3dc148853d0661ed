package cni

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// iptablesState maps table -> set of lines from iptables-save.
type iptablesState map[string]map[string]bool

var iptTables = []string{"nat", "filter", "mangle"}

func saveIptables(t *testing.T, bin string) iptablesState {
	t.Helper()
	st := iptablesState{}
	for _, tbl := range iptTables {
		out, err := exec.Command(bin+"-save", "-t", tbl).Output()
		if err != nil {
			t.Logf("%s-save -t %s: %v", bin, tbl, err)
			continue
		}
		st[tbl] = map[string]bool{}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "-A ") || strings.HasPrefix(l, ":") {
				st[tbl][chainDecl(l)] = true
			}
		}
	}
	return st
}

// chainDecl normalizes ":CHAIN POLICY [x:y]" to ":CHAIN" so counters don't matter.
func chainDecl(l string) string {
	if strings.HasPrefix(l, ":") {
		return strings.Fields(l)[0]
	}
	return l
}

// linesMatching returns the rules of st containing any of the needles.
func (st iptablesState) linesMatching(needles ...string) []string {
	var out []string
	for tbl, lines := range st {
		for l := range lines {
			for _, n := range needles {
				if strings.Contains(l, n) {
					out = append(out, tbl+": "+l)
					break
				}
			}
		}
	}
	return out
}

// restoreIptables removes rules and chains added since before that belong to the test: rules mentioning any
// marker, then CNI-* chains that did not exist before (with the jumps to them), if they are empty.
func restoreIptables(t *testing.T, bin string, before iptablesState, markers ...string) {
	t.Helper()
	after := saveIptables(t, bin)
	marked := func(l string) bool {
		for _, m := range markers {
			if strings.Contains(l, m) {
				return true
			}
		}
		return false
	}
	// The test's chains: new CNI-* chains that a rule naming the test (a marker) lives in or jumps to. Other new
	// chains belong to whoever else runs CNI on this machine meanwhile (and may be empty for a moment): left alone.
	newChains := map[string]map[string]bool{}
	for tbl, lines := range after {
		newChains[tbl] = map[string]bool{}
		for l := range lines {
			if !strings.HasPrefix(l, "-A ") || before[tbl][l] || !marked(l) {
				continue
			}
			f := splitRule(l)
			for i := range f {
				if (i == 1 || (i > 1 && f[i-1] == "-j")) && strings.HasPrefix(f[i], "CNI-") && !before[tbl][":"+f[i]] {
					newChains[tbl][f[i]] = true
				}
			}
		}
	}
	for tbl, lines := range after {
		for l := range lines {
			if !strings.HasPrefix(l, "-A ") || before[tbl][l] {
				continue
			}
			f := splitRule(l)
			ours := marked(l)
			if len(f) >= 2 && newChains[tbl][f[1]] {
				ours = true // a rule inside a chain the test created
			}
			for i := range f {
				if f[i] == "-j" && i+1 < len(f) && newChains[tbl][f[i+1]] {
					ours = true // a jump to a chain the test created
				}
			}
			if !ours {
				continue
			}
			args := append([]string{"-w", "-t", tbl, "-D"}, f[1:]...)
			if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				t.Logf("cleanup %s %v: %v %s", bin, args, err, out)
			}
		}
		for c := range newChains[tbl] {
			_ = exec.Command(bin, "-w", "-t", tbl, "-F", c).Run()
			_ = exec.Command(bin, "-w", "-t", tbl, "-X", c).Run()
		}
	}
	removeNewPortmapChains(t, bin, before)
}

// portmapShared are the nat chains the portmap plugin makes once and shares among all pods (with their jumps from
// the built-in chains). They name no pod, so the marker rules above never match them.
var portmapShared = []string{"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"}

// removeNewPortmapChains removes portmap's shared chains and their jumps when they did not exist before the test
// and nobody else uses them now (no per-pod rule is left in CNI-HOSTPORT-DNAT: another runtime's port mapping
// would be one); if another runtime on the machine made them meanwhile, they stay.
func removeNewPortmapChains(t *testing.T, bin string, before iptablesState) {
	t.Helper()
	for _, c := range portmapShared {
		if before["nat"][":"+c] {
			return
		}
	}
	after := saveIptables(t, bin)
	var jumps [][]string
	for l := range after["nat"] {
		f := splitRule(l)
		if len(f) < 2 || f[0] != "-A" {
			continue
		}
		if f[1] == "CNI-HOSTPORT-DNAT" {
			return // a port mapping of someone still running
		}
		for i := range f {
			if f[i] == "-j" && i+1 < len(f) && slices.Contains(portmapShared, f[i+1]) && !slices.Contains(portmapShared, f[1]) {
				jumps = append(jumps, f[1:])
			}
		}
	}
	for _, j := range jumps {
		args := append([]string{"-w", "-t", "nat", "-D"}, j...)
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Logf("cleanup %s %v: %v %s", bin, args, err, out)
		}
	}
	for _, c := range portmapShared {
		if after["nat"][":"+c] {
			_ = exec.Command(bin, "-w", "-t", "nat", "-F", c).Run()
			_ = exec.Command(bin, "-w", "-t", "nat", "-X", c).Run()
		}
	}
}

// splitRule splits an iptables-save rule line into words, honouring double quotes and backslash escapes.
func splitRule(l string) []string {
	var out []string
	var cur strings.Builder
	inQ, have := false, false
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case c == '\\' && i+1 < len(l):
			i++
			cur.WriteByte(l[i])
			have = true
		case c == '"':
			inQ = !inQ
			have = true
		case c == ' ' && !inQ:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

func TestSplitRule(t *testing.T) {
	got := splitRule(`-A POSTROUTING -s 10.0.0.2/32 -m comment --comment "name: \"n\" id: \"x y\"" -j CNI-1`)
	want := []string{"-A", "POSTROUTING", "-s", "10.0.0.2/32", "-m", "comment", "--comment", `name: "n" id: "x y"`, "-j", "CNI-1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q", got)
	}
}
