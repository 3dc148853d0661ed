package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// CNI plugin cost (--cni-cost): what the CNI plugins alone spend on one pod's ADD + DEL, for several plugin
// builds and configurations of noded's network list, at several numbers of pods already attached. Each variant
// runs in a network namespace of its own (the "host" the plugins see: its own bridge, its own iptables and
// nftables rules) and every pod namespace is held by an open descriptor only, never by a mount, so whatever the
// plugins make is gone with the process, also when it is killed. The CPU is the plugins' own (getrusage of the
// waited children: the plugin processes and the iptables/nft they exec), so it is valid on a loaded machine;
// the samples of the variants are interleaved one by one. Each variant is also checked to reach an "outside"
// namespace (a veth from its host namespace) through SNAT: a TCP connection from a pod must arrive from the host
// side's address.

// cniVariant is one plugin build and configuration of the network list.
type cniVariant struct {
	name    string
	binDir  string
	ipMasq  bool
	backend string // bridge ipMasqBackend and portmap backend; "" leaves both unset (the plugins' default)
	// staticMasq: one nftables masquerade rule for the whole pod subnet, made once in the host namespace
	// (what a runtime or an ip-masq-agent can install at start) instead of the bridge plugin's rules per pod.
	staticMasq bool
}

// cniVariants resolves --cni-cost-variants: names of the built-in variants, "debian-*" with the plugins of
// debianDir, "new-*" with those of newDir.
func cniVariants(spec, debianDir, newDir string) ([]cniVariant, error) {
	known := map[string]cniVariant{
		"debian-masq":   {binDir: debianDir, ipMasq: true},
		"debian-nomasq": {binDir: debianDir},
		"new-nft":       {binDir: newDir, ipMasq: true, backend: "nftables"},
		"new-ipt":       {binDir: newDir, ipMasq: true, backend: "iptables"},
		"new-nomasq":    {binDir: newDir},
		"debian-static": {binDir: debianDir, staticMasq: true},
	}
	var out []cniVariant
	for _, n := range strings.Split(spec, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		v, ok := known[n]
		if !ok {
			return nil, fmt.Errorf("unknown variant %q (known: debian-masq, debian-nomasq, debian-static, new-nft, new-ipt, new-nomasq)", n)
		}
		if v.binDir == "" {
			return nil, fmt.Errorf("variant %s: no plugin dir (--cni-cost-new-bin)", n)
		}
		v.name = n
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("no variants")
	}
	return out, nil
}

// renderVariant makes the network list of v from the conflist template (hack/cni/10-noded.conflist): the
// placeholders filled in, host-local's state in ipamDir, and ipMasq and the masquerade/portmap backends set.
func renderVariant(template []byte, v cniVariant, bridge, subnet, ipamDir string) ([]byte, error) {
	s := strings.NewReplacer("@NAME@", "noded-cost-"+v.name, "@BRIDGE@", bridge, "@SUBNET@", subnet).Replace(string(template))
	var list map[string]any
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		return nil, fmt.Errorf("conflist template: %w", err)
	}
	plugins, _ := list["plugins"].([]any)
	for _, p := range plugins {
		pm, _ := p.(map[string]any)
		switch pm["type"] {
		case "bridge":
			pm["ipMasq"] = v.ipMasq
			delete(pm, "ipMasqBackend")
			if v.backend != "" {
				pm["ipMasqBackend"] = v.backend
			}
			if ipam, ok := pm["ipam"].(map[string]any); ok {
				ipam["dataDir"] = ipamDir
			}
		case "portmap":
			delete(pm, "backend")
			if v.backend != "" {
				pm["backend"] = v.backend
			}
		}
	}
	return json.MarshalIndent(list, "", "  ")
}

// nsWorker runs functions on one OS thread that lives in a network namespace of its own, so the plugins it
// execs see that namespace as the host's. The namespace goes away when the worker stops (its thread exits).
type nsWorker struct {
	fns  chan func()
	done chan struct{}
	fd   *os.File // the namespace, for netlink handles
}

func newNSWorker() (*nsWorker, error) {
	w := &nsWorker{fns: make(chan func()), done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		defer close(w.done)
		runtime.LockOSThread() // never unlocked: the thread, and with it the namespace, exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare netns: %w", err)
			return
		}
		f, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		w.fd = f
		errc <- nil
		for fn := range w.fns {
			fn()
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return w, nil
}

func (w *nsWorker) do(fn func()) {
	ran := make(chan struct{})
	w.fns <- func() { fn(); close(ran) }
	<-ran
}

func (w *nsWorker) stop() {
	close(w.fns)
	<-w.done
	if w.fd != nil {
		w.fd.Close()
	}
}

// newNetns makes a network namespace held only by the returned descriptor.
func newNetns() (*os.File, error) {
	type res struct {
		f   *os.File
		err error
	}
	c := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			c <- res{nil, fmt.Errorf("unshare netns: %w", err)}
			return
		}
		f, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		c <- res{f, err}
	}()
	r := <-c
	return r.f, r.err
}

// fdPath is a path the plugins (other processes) can open to reach the namespace behind f.
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()) }

// inNetns runs fn on a thread that has joined the namespace behind f (the thread is discarded afterwards).
func inNetns(f *os.File, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// cniEnv is one variant's host namespace, its network list and the pods attached there.
type cniEnv struct {
	v        cniVariant
	w        *nsWorker
	cni      *libcni.CNIConfig
	list     *libcni.NetworkConfigList
	attached []*os.File
	n        int // container IDs handed out
	samples  []cniSample
	snat     string
}

type cniSample struct {
	pods             int
	addWall, delWall time.Duration
	addCPU, delCPU   time.Duration
	execs            map[string]int
}

func (e *cniEnv) close() {
	for _, f := range e.attached {
		f.Close()
	}
	e.w.stop()
}

func childrenCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (e *cniEnv) rt(ns *os.File) *libcni.RuntimeConf {
	e.n++
	id := fmt.Sprintf("noded-cost-%s-%d", e.v.name, e.n)
	return &libcni.RuntimeConf{ContainerID: id, NetNS: fdPath(ns), IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "noded-bench"}, {"K8S_POD_NAME", id}}}
}

// attach adds pods (CNI ADD, untimed) until n are attached.
func (e *cniEnv) attach(ctx context.Context, n int) error {
	for len(e.attached) < n {
		ns, err := newNetns()
		if err != nil {
			return err
		}
		rt := e.rt(ns)
		e.w.do(func() { _, err = e.cni.AddNetworkList(ctx, e.list, rt) })
		if err != nil {
			ns.Close()
			return fmt.Errorf("%s: attach pod %d: %w", e.v.name, len(e.attached), err)
		}
		e.attached = append(e.attached, ns)
	}
	return nil
}

// sample times one ADD and one DEL of a new pod, with the CPU of the plugins (and what they exec) for each.
func (e *cniEnv) sample(ctx context.Context, ec *execCounter) error {
	ns, err := newNetns()
	if err != nil {
		return err
	}
	defer ns.Close()
	rt := e.rt(ns)
	var before map[string]int
	if ec != nil {
		before = ec.snapshot()[0]
	}
	s := cniSample{pods: len(e.attached)}
	var addErr, delErr error
	e.w.do(func() {
		c0, t0 := childrenCPU(), time.Now()
		_, addErr = e.cni.AddNetworkList(ctx, e.list, rt)
		c1, t1 := childrenCPU(), time.Now()
		delErr = e.cni.DelNetworkList(context.WithoutCancel(ctx), e.list, rt)
		c2, t2 := childrenCPU(), time.Now()
		s.addWall, s.delWall, s.addCPU, s.delCPU = t1.Sub(t0), t2.Sub(t1), c1-c0, c2-c1
	})
	if err := errors.Join(addErr, delErr); err != nil {
		return fmt.Errorf("%s: %w", e.v.name, err)
	}
	if ec != nil {
		s.execs = execDelta(before, ec.snapshot()[0])
	}
	e.samples = append(e.samples, s)
	return nil
}

// checkSNAT attaches one pod, connects from it over TCP to a listener in an "outside" namespace (reached by a
// veth from the host namespace, with no route back to the pod subnet) and reports the source address the
// listener saw; "no connection" when it could not connect (no masquerading). The pod is removed again.
func (e *cniEnv) checkSNAT(ctx context.Context, veth string) (string, error) {
	out, err := newNetns()
	if err != nil {
		return "", err
	}
	defer out.Close()
	hostAddr, outAddr := "10.232.254.1/24", "10.232.254.2/24"
	hh, err := netlink.NewHandleAt(netns.NsHandle(e.w.fd.Fd()))
	if err != nil {
		return "", err
	}
	defer hh.Close()
	oh, err := netlink.NewHandleAt(netns.NsHandle(out.Fd()))
	if err != nil {
		return "", err
	}
	defer oh.Close()
	if err := hh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: veth}, PeerName: "eth0",
		PeerNamespace: netlink.NsFd(int(out.Fd()))}); err != nil {
		return "", fmt.Errorf("veth %s: %w", veth, err)
	}
	for _, l := range []struct {
		h    *netlink.Handle
		name string
		addr string
	}{{hh, veth, hostAddr}, {oh, "eth0", outAddr}, {oh, "lo", ""}} {
		link, err := l.h.LinkByName(l.name)
		if err != nil {
			return "", err
		}
		if l.addr != "" {
			a, _ := netlink.ParseAddr(l.addr)
			if err := l.h.AddrAdd(link, a); err != nil {
				return "", fmt.Errorf("address %s: %w", l.addr, err)
			}
		}
		if err := l.h.LinkSetUp(link); err != nil {
			return "", err
		}
	}
	var ln net.Listener
	if err := inNetns(out, func() (err error) { ln, err = net.Listen("tcp4", "10.232.254.2:0"); return err }); err != nil {
		return "", fmt.Errorf("listen outside: %w", err)
	}
	defer ln.Close()
	seen := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		seen <- c.RemoteAddr().(*net.TCPAddr).IP.String()
		c.Close()
	}()

	pod, err := newNetns()
	if err != nil {
		return "", err
	}
	defer pod.Close()
	rt := e.rt(pod)
	e.w.do(func() { _, err = e.cni.AddNetworkList(ctx, e.list, rt) })
	if err != nil {
		return "", fmt.Errorf("snat pod: %w", err)
	}
	defer e.w.do(func() { _ = e.cni.DelNetworkList(context.WithoutCancel(ctx), e.list, rt) })
	var dialErr error
	_ = inNetns(pod, func() error {
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.DialContext(ctx, "tcp4", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		dialErr = err
		return nil
	})
	if dialErr != nil {
		return "no connection", nil
	}
	select {
	case src := <-seen:
		if src+"/24" == hostAddr {
			return "ok (from " + src + ")", nil
		}
		return "from " + src + " (not SNAT)", nil
	case <-time.After(2 * time.Second):
		return "", errors.New("connected but the listener saw nothing")
	}
}

// staticMasq installs, in the variant's host namespace, one rule masquerading what leaves the pod subnet for
// anywhere but the subnet itself and multicast (what the bridge plugin's per-pod chain does).
func (e *cniEnv) staticMasq(ctx context.Context, subnet string) error {
	rules := fmt.Sprintf(`table ip noded_masq {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %[1]s ip daddr != %[1]s ip daddr != 224.0.0.0/4 masquerade
	}
}
`, subnet)
	var out []byte
	var err error
	e.w.do(func() {
		cmd := exec.CommandContext(ctx, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		out, err = cmd.CombinedOutput()
	})
	if err != nil {
		return fmt.Errorf("nft: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// benchCNICost runs the --cni-cost mode and prints its table.
func benchCNICost(ctx context.Context, o *options, variants []cniVariant, w io.Writer) error {
	template, err := os.ReadFile(o.cniCostTemplate)
	if err != nil {
		return err
	}
	dir := filepath.Join(o.workDir, "cni-cost")
	var envs []*cniEnv
	defer func() {
		for _, e := range envs {
			e.close()
		}
	}()
	for i, v := range variants {
		subnet := fmt.Sprintf("10.232.%d.0/24", i)
		conf, err := renderVariant(template, v, o.cniCostBridge, subnet, filepath.Join(dir, v.name, "ipam"))
		if err != nil {
			return err
		}
		list, err := libcni.NetworkConfFromBytes(conf)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		wk, err := newNSWorker()
		if err != nil {
			return err
		}
		e := &cniEnv{v: v, w: wk, list: list,
			cni: libcni.NewCNIConfigWithCacheDir([]string{v.binDir}, filepath.Join(dir, v.name, "cache"), nil)}
		envs = append(envs, e)
		if v.staticMasq {
			if err := e.staticMasq(ctx, subnet); err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
		}
		if e.snat, err = e.checkSNAT(ctx, o.cniCostBridge+"o"); err != nil {
			return fmt.Errorf("%s: SNAT check: %w", v.name, err)
		}
		fmt.Fprintf(os.Stderr, "bench: cni-cost: %s: SNAT to outside: %s\n", v.name, e.snat)
	}
	var ec *execCounter
	if o.countExecs {
		if ec, err = startExecCounter([]int{os.Getpid()}, o.execLog.forRoots("cni-cost")); err != nil {
			return err
		}
		defer ec.close()
	}
	for _, n := range o.cniCostPods {
		for _, e := range envs {
			fmt.Fprintf(os.Stderr, "bench: cni-cost: %s: attaching %d pods\n", e.v.name, n)
			if err := e.attach(ctx, n); err != nil {
				return err
			}
		}
		for s := 0; s < o.cniCostSamples; s++ {
			for _, i := range interleave(s, len(envs)) {
				if err := envs[i].sample(ctx, ec); err != nil {
					return err
				}
			}
		}
	}
	if ec != nil {
		if err := ec.lost(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: cni-cost: exec counts incomplete: %v\n", err)
		}
	}
	return printCNICost(w, envs, o.cniCostPods)
}

func medianDur(xs []time.Duration) float64 {
	var vs []float64
	for _, x := range xs {
		vs = append(vs, ms(x))
	}
	return median(vs)
}

func printCNICost(w io.Writer, envs []*cniEnv, counts []int) error {
	fmt.Fprintf(w, "CNI plugin cost per pod (ADD + DEL), medians; CPU = the plugins' and their children's (getrusage), %s\n", time.Now().Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "variant\tpods\tCPU ADD+DEL ms\tCPU ADD\tCPU DEL\twall ADD+DEL ms\twall ADD\twall DEL\texecs\tSNAT\t")
	for _, e := range envs {
		for _, n := range counts {
			var aw, dw, tw2, ac, dc, tc []time.Duration
			execs := map[string]int{}
			k := 0
			for _, s := range e.samples {
				if s.pods != n {
					continue
				}
				k++
				aw, dw, tw2 = append(aw, s.addWall), append(dw, s.delWall), append(tw2, s.addWall+s.delWall)
				ac, dc, tc = append(ac, s.addCPU), append(dc, s.delCPU), append(tc, s.addCPU+s.delCPU)
				for name, c := range s.execs {
					execs[name] += c
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t\n", e.v.name, n,
				medianDur(tc), medianDur(ac), medianDur(dc), medianDur(tw2), medianDur(aw), medianDur(dw),
				formatExecs(execs, k), e.snat)
		}
	}
	return tw.Flush()
}

// formatExecs is "name=count ..." per lifecycle, by count.
func formatExecs(execs map[string]int, n int) string {
	if len(execs) == 0 || n == 0 {
		return "-"
	}
	var names []string
	for k := range execs {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		return execs[names[i]] > execs[names[j]] || (execs[names[i]] == execs[names[j]] && names[i] < names[j])
	})
	var b bytes.Buffer
	for _, k := range names {
		fmt.Fprintf(&b, "%s=%.3g ", k, float64(execs[k])/float64(n))
	}
	return strings.TrimSpace(b.String())
}
