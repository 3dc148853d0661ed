package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// MasqueradeChain is noded's nat chain holding one MASQUERADE rule per pod subnet (cni.masquerade_subnets), for
// networks whose bridge plugin runs with ipMasq false: one static rule per subnet instead of a chain per pod.
const MasqueradeChain = "NODED-MASQ"

const (
	masqComment      = "noded: masquerade "                // + subnet: the rule of one subnet
	masqJumpComment  = "noded: pod subnet masquerade"      // POSTROUTING's jump to MasqueradeChain
	masqMcastComment = "noded: no masquerade to multicast" // the chain's first rule
	masqStateFile    = "cni-masquerade.json"               // below noded's root: the subnets this noded made
	natSaveTable     = "nat"
)

// NATTable reads and changes the nat table of one address family (iptables or ip6tables).
type NATTable interface {
	// Family is "ipv4" or "ipv6", for messages.
	Family() string
	// Available reports whether the family's tools exist on this host.
	Available() bool
	// Save returns the nat table in iptables-save format.
	Save(ctx context.Context) (string, error)
	// Restore applies rules (iptables-restore format, one *nat ... COMMIT block) as one transaction that keeps
	// everything it does not name (--noflush).
	Restore(ctx context.Context, rules string) error
}

// ExecNAT is the NATTable of the host: it execs iptables-save -t nat and iptables-restore -w --noflush (ip6tables-*
// for IPv6).
type ExecNAT struct{ IPv6 bool }

func (e ExecNAT) tool(suffix string) string {
	if e.IPv6 {
		return "ip6tables-" + suffix
	}
	return "iptables-" + suffix
}

// Family implements NATTable.
func (e ExecNAT) Family() string {
	if e.IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// Available implements NATTable.
func (e ExecNAT) Available() bool {
	_, err1 := exec.LookPath(e.tool("save"))
	_, err2 := exec.LookPath(e.tool("restore"))
	return err1 == nil && err2 == nil
}

// Save implements NATTable.
func (e ExecNAT) Save(ctx context.Context) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, e.tool("save"), "-t", natSaveTable)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s -t nat: %w: %s", e.tool("save"), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Restore implements NATTable.
func (e ExecNAT) Restore(ctx context.Context, rules string) error {
	cmd := exec.CommandContext(ctx, e.tool("restore"), "-w", "--noflush")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s -w --noflush: %w: %s", e.tool("restore"), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Masquerade owns the rules of MasqueradeChain that this noded made. Several nodeds may share a host (each with
// its own root and subnets): each touches only the rules of the subnets it recorded in its state file, and the
// chain and its jump go when the last rule does.
type Masquerade struct {
	V4, V6 NATTable
	// StatePath records the subnets this noded made rules for, so that a later start with fewer removes theirs.
	StatePath string
}

// NewMasquerade is the host's Masquerade for a noded with the given root.
func NewMasquerade(root string) *Masquerade {
	return &Masquerade{V4: ExecNAT{}, V6: ExecNAT{IPv6: true}, StatePath: filepath.Join(root, masqStateFile)}
}

// Ensure makes the rules of subnets (CIDRs) exist exactly once and removes those of the subnets this noded made
// before that are no longer listed. An empty list with nothing recorded execs nothing.
func (m *Masquerade) Ensure(ctx context.Context, subnets []string) error {
	want, err := parseSubnets(subnets)
	if err != nil {
		return err
	}
	prev, err := m.readState()
	if err != nil {
		return err
	}
	if len(want) > 0 {
		// Recorded before the rules are made, so that a start cut short still knows them.
		all, _ := parseSubnets(append(prefixStrings(prev), subnets...))
		if err := m.writeState(all); err != nil {
			return err
		}
	}
	for _, t := range []struct {
		nat NATTable
		v6  bool
	}{{m.V4, false}, {m.V6, true}} {
		w, p := family(want, t.v6), family(prev, t.v6)
		if len(w) == 0 && len(p) == 0 {
			continue
		}
		if !t.nat.Available() {
			if len(w) > 0 {
				return fmt.Errorf("masquerade %s subnets %s: %s tools (iptables-save, iptables-restore) not found",
					t.nat.Family(), joinPrefixes(w), t.nat.Family())
			}
			continue // nothing can be left of rules made with tools that are gone
		}
		if err := ensureFamily(ctx, t.nat, t.v6, w, p); err != nil {
			return err
		}
	}
	if len(want) == 0 {
		if err := os.Remove(m.StatePath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("masquerade state: %w", err)
		}
		return nil
	}
	return m.writeState(want)
}

// Remove removes the rules of every subnet this noded recorded (Ensure with an empty list).
func (m *Masquerade) Remove(ctx context.Context) error { return m.Ensure(ctx, nil) }

func ensureFamily(ctx context.Context, nat NATTable, v6 bool, want, prev []netip.Prefix) error {
	saved, err := nat.Save(ctx)
	if err != nil {
		return fmt.Errorf("masquerade %s: read the nat table: %w", nat.Family(), err)
	}
	rules := PlanMasquerade(saved, v6, want, prev)
	if rules == "" {
		return nil
	}
	if err := nat.Restore(ctx, rules); err != nil {
		return fmt.Errorf("masquerade %s subnets %s: %w", nat.Family(), joinPrefixes(want), err)
	}
	return nil
}

// PlanMasquerade returns the iptables-restore transaction that brings the nat table saved (iptables-save output)
// to: a rule for each subnet of want, none for those of prev not in want, and MasqueradeChain with its multicast
// exception and exactly one jump from POSTROUTING while it holds a subnet rule (no chain nor jump when it holds
// none). Rules of subnets in neither list are kept. "" means nothing to change.
func PlanMasquerade(saved string, v6 bool, want, prev []netip.Prefix) string {
	var chainExists bool
	var jumps, mcast []string
	subnetRules := map[string][]string{} // comment subnet -> rules of MasqueradeChain
	var otherRules int                   // rules of MasqueradeChain that are not ours to know
	inNat := false
	for _, line := range strings.Split(saved, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			inNat = line == "*nat"
		case !inNat:
		case strings.HasPrefix(line, ":"+MasqueradeChain+" "):
			chainExists = true
		case strings.HasPrefix(line, "-A POSTROUTING ") && ruleTarget(line) == MasqueradeChain:
			jumps = append(jumps, line)
		case strings.HasPrefix(line, "-A "+MasqueradeChain+" "):
			c := ruleComment(line)
			switch {
			case c == masqMcastComment:
				mcast = append(mcast, line)
			case strings.HasPrefix(c, masqComment):
				sn := strings.TrimPrefix(c, masqComment)
				subnetRules[sn] = append(subnetRules[sn], line)
			default:
				otherRules++
			}
		}
	}
	wanted := map[string]bool{}
	for _, p := range want {
		wanted[p.String()] = true
	}
	var ops []string
	del := func(rule string) { ops = append(ops, "-D"+strings.TrimPrefix(rule, "-A")) }
	// Drop the subnets no longer wanted, and duplicates of the wanted ones.
	for _, p := range prev {
		if !wanted[p.String()] {
			for _, r := range subnetRules[p.String()] {
				del(r)
			}
			delete(subnetRules, p.String())
		}
	}
	for _, p := range want {
		rs := subnetRules[p.String()]
		for _, r := range rs[min(len(rs), 1):] {
			del(r)
		}
		subnetRules[p.String()] = rs[:min(len(rs), 1)]
	}
	left := otherRules
	for sn, rs := range subnetRules {
		if !wanted[sn] {
			left += len(rs)
		}
	}
	if len(want) == 0 && left == 0 {
		// Nothing of anyone's left in the chain: remove it and its jumps.
		if !chainExists {
			return ""
		}
		ops = ops[:0]
		for _, j := range jumps {
			del(j)
		}
		ops = append(ops, "-F "+MasqueradeChain, "-X "+MasqueradeChain)
		return "*nat\n" + strings.Join(ops, "\n") + "\nCOMMIT\n"
	}
	var head []string
	if !chainExists {
		head = append(head, ":"+MasqueradeChain+" - [0:0]")
	}
	if len(mcast) == 0 {
		mc := "224.0.0.0/4"
		if v6 {
			mc = "ff00::/8"
		}
		ops = append(ops, fmt.Sprintf("-I %s 1 -d %s -m comment --comment %q -j RETURN", MasqueradeChain, mc, masqMcastComment))
	} else {
		for _, r := range mcast[1:] {
			del(r)
		}
	}
	for _, p := range want {
		if len(subnetRules[p.String()]) == 0 {
			ops = append(ops, fmt.Sprintf("-A %s -s %s ! -d %s -m comment --comment %q -j MASQUERADE",
				MasqueradeChain, p, p, masqComment+p.String()))
		}
	}
	if len(jumps) == 0 {
		ops = append(ops, fmt.Sprintf("-A POSTROUTING -m comment --comment %q -j %s", masqJumpComment, MasqueradeChain))
	} else {
		for _, j := range jumps[1:] {
			del(j)
		}
	}
	if len(head) == 0 && len(ops) == 0 {
		return ""
	}
	return "*nat\n" + strings.Join(append(head, ops...), "\n") + "\nCOMMIT\n"
}

// ruleTarget is the -j/-g target of an iptables-save rule line.
func ruleTarget(line string) string {
	w := strings.Fields(line)
	for i := 0; i+1 < len(w); i++ {
		if w[i] == "-j" || w[i] == "-g" {
			return w[i+1]
		}
	}
	return ""
}

// ruleComment is the --comment of an iptables-save rule line, unquoted ("" if none).
func ruleComment(line string) string {
	i := strings.Index(line, "--comment ")
	if i < 0 {
		return ""
	}
	rest := line[i+len("--comment "):]
	if !strings.HasPrefix(rest, `"`) {
		if j := strings.IndexByte(rest, ' '); j >= 0 {
			return rest[:j]
		}
		return rest
	}
	var b strings.Builder
	for k := 1; k < len(rest); k++ {
		switch rest[k] {
		case '\\':
			if k+1 < len(rest) {
				k++
				b.WriteByte(rest[k])
			}
		case '"':
			return b.String()
		default:
			b.WriteByte(rest[k])
		}
	}
	return b.String()
}

func parseSubnets(subnets []string) ([]netip.Prefix, error) {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for _, s := range subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("masquerade subnet %q: %w", s, err)
		}
		p = p.Masked()
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

func family(ps []netip.Prefix, v6 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is6() == v6 {
			out = append(out, p)
		}
	}
	return out
}

func prefixStrings(ps []netip.Prefix) []string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return s
}

func joinPrefixes(ps []netip.Prefix) string {
	return strings.Join(prefixStrings(ps), ",")
}

type masqState struct {
	Subnets []string `json:"subnets"`
}

func (m *Masquerade) readState() ([]netip.Prefix, error) {
	data, err := os.ReadFile(m.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("masquerade state: %w", err)
	}
	var st masqState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("masquerade state %s: %w", m.StatePath, err)
	}
	return parseSubnets(st.Subnets)
}

func (m *Masquerade) writeState(ps []netip.Prefix) error {
	st := masqState{Subnets: prefixStrings(ps)}
	data, _ := json.Marshal(st)
	if err := os.MkdirAll(filepath.Dir(m.StatePath), 0o711); err != nil {
		return fmt.Errorf("masquerade state: %w", err)
	}
	tmp := m.StatePath + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("masquerade state: %w", err)
	}
	if err := os.Rename(tmp, m.StatePath); err != nil {
		return fmt.Errorf("masquerade state: %w", err)
	}
	return nil
}
