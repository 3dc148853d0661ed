package cni

import (
	"os/exec"
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
