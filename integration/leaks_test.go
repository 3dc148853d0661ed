package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/noded/noded/integration/framework"
)

// newPodEnvOpts is newPodEnv with framework options of the test's own (build tags, environment, config); the
// network, the registry mirror and busybox are set up as for newPodEnv.
func newPodEnvOpts(t *testing.T, netIdx int, o framework.Options, extra map[string]v1.Image) *podEnv {
	t.Helper()
	return fromFramework(framework.NewPodEnv(t, netIdx, o, extra, 20*time.Minute))
}

// removeAllPods stops and removes every pod noded lists (and so their containers), failing the test on errors.
func (e *podEnv) removeAllPods(t *testing.T) {
	t.Helper()
	pods, err := e.n.Runtime.ListPodSandbox(e.ctx, nil)
	if err != nil {
		t.Fatalf("ListPodSandbox: %v", err)
	}
	for _, p := range pods {
		if err := e.n.Runtime.StopPodSandbox(e.ctx, p.Id); err != nil {
			t.Errorf("StopPodSandbox %s (%v): %v", p.Id, p.State, err)
		}
		if err := e.n.Runtime.RemovePodSandbox(e.ctx, p.Id); err != nil {
			t.Errorf("RemovePodSandbox %s (%v): %v", p.Id, p.State, err)
		}
	}
	if cs, err := e.n.Runtime.ListContainers(e.ctx, nil); err != nil || len(cs) != 0 {
		t.Errorf("containers left after removing every pod: %v %v", cs, err)
	}
}

// leaks lists what is left of removed pods and containers: mounts, namespace pins, pod and bundle dirs (as
// assertNoLeaks), plus runtime containers, conmon and container processes, cgroups below noded's cgroup parent,
// IP allocations of the test network, its iptables rules, and conmon's exit and persist files.
func (e *podEnv) leaks(t *testing.T) []string {
	t.Helper()
	n := e.n
	var out []string
	for _, m := range framework.MountsBelow(n.Dir) {
		if m != filepath.Join(n.State, "ns") {
			out = append(out, "mount "+m)
		}
	}
	for _, dir := range []string{"pods", "ns", "containers", "exits", "persist"} {
		entries, _ := os.ReadDir(filepath.Join(n.State, dir))
		for _, en := range entries {
			out = append(out, fmt.Sprintf("%s/%s", dir, en.Name()))
		}
	}
	roots, _ := filepath.Glob(filepath.Join(n.State, "runtimes", "*"))
	for _, root := range roots {
		b, err := exec.Command("runc", "--root", root, "list", "-q").Output()
		if err != nil {
			out = append(out, fmt.Sprintf("runc list %s: %v", root, err))
		}
		for _, id := range strings.Fields(string(b)) {
			out = append(out, "runtime container "+id)
		}
	}
	for _, pid := range processesNaming(n.Dir, n.PIDOrZero()) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out = append(out, fmt.Sprintf("process %d %s", pid, strings.ReplaceAll(string(cmd), "\x00", " ")))
	}
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range append(hierarchies, "/sys/fs/cgroup") {
		entries, err := os.ReadDir(filepath.Join(h, n.CgroupParent))
		if err != nil {
			continue
		}
		for _, en := range entries {
			if en.IsDir() {
				out = append(out, "cgroup "+filepath.Join(h, n.CgroupParent, en.Name()))
			}
		}
	}
	ipam, _ := filepath.Glob(filepath.Join(filepath.Dir(e.net.ConfDir), "ipam", "*", e.net.Prefix()+"*"))
	for _, f := range ipam {
		out = append(out, "IP allocation "+filepath.Base(f))
	}
	for _, r := range framework.IptablesAdded(map[string]map[string]bool{}) {
		if strings.Contains(r, "noded-it-"+e.net.Bridge+`\"`) || strings.Contains(r, " "+e.net.Prefix()) {
			out = append(out, "iptables "+r)
		}
	}
	return out
}

// processesNaming returns the PIDs other than ours and except whose command line contains s.
func processesNaming(s string, except int) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, en := range entries {
		var pid int
		if _, err := fmt.Sscanf(en.Name(), "%d", &pid); err != nil || pid == os.Getpid() || pid == except {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), s) {
			continue
		}
		// Zombies (conmon's, reparented to a PID 1 that never reaps) hold nothing.
		if st, err := os.ReadFile(filepath.Join("/proc", en.Name(), "stat")); err == nil && strings.Contains(string(st), ") Z ") {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// assertNoLeaksFull fails the test with everything leaks finds.
func (e *podEnv) assertNoLeaksFull(t *testing.T) {
	t.Helper()
	if l := e.leaks(t); len(l) > 0 {
		t.Errorf("%d resources leaked:\n  %s", len(l), strings.Join(l, "\n  "))
	}
}
