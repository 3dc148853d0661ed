package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// socketOwner returns the PID of the process that listens on the unix socket at path: the socket's inode from
// /proc/net/unix, then the lowest PID holding a descriptor on it.
func socketOwner(path string) (int, error) {
	// thread-self: the floor's netns pinning may leave the main thread of this process in another network
	// namespace (a goroutine that ends locked to the main thread parks it), and /proc/net follows the main thread.
	data, err := os.ReadFile("/proc/thread-self/net/unix")
	if err != nil {
		return 0, err
	}
	var inode string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		// Num RefCount Protocol Flags Type St Inode Path; flags 00010000 is a listening socket.
		if len(f) >= 8 && f[7] == path && f[3] == "00010000" {
			inode = f[6]
			break
		}
	}
	if inode == "" {
		return 0, fmt.Errorf("no process listens on %s", path)
	}
	want := "socket:[" + inode + "]"
	best := 0
	for _, pid := range pids() {
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && l == want {
				if best == 0 || pid < best {
					best = pid
				}
				break
			}
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("no process holds the socket %s (inode %s)", path, inode)
	}
	return best, nil
}

// pids lists the PIDs in /proc.
func pids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// Mem is a process's resident memory in bytes: RSS and PSS (proportional share: shared pages divided by the
// number of processes mapping them).
type Mem struct{ RSS, PSS uint64 }

// memOf reads /proc/PID/smaps_rollup.
func memOf(pid int) (Mem, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Mem{}, err
	}
	return parseRollup(data), nil
}

func parseRollup(data []byte) Mem {
	var m Mem
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			m.RSS = v << 10
		case "Pss:":
			m.PSS = v << 10
		}
	}
	return m
}

// Proc is one process as seen in /proc.
type Proc struct {
	PID, PPID int
	Comm      string
	Cgroups   []string // the cgroup paths of every hierarchy
}

func readProc(pid int) (Proc, error) {
	p := Proc{PID: pid}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, err
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses; it ends at the last ')'.
	s := string(stat)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return p, fmt.Errorf("bad stat of %d", pid)
	}
	p.Comm = s[open+1 : end]
	f := strings.Fields(s[end+1:])
	if len(f) < 2 {
		return p, fmt.Errorf("bad stat of %d", pid)
	}
	p.PPID, _ = strconv.Atoi(f[1])
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return p, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		if i := strings.LastIndexByte(line, ':'); i >= 0 {
			p.Cgroups = append(p.Cgroups, line[i+1:])
		}
	}
	return p, nil
}

// podOf returns the pod cgroup (the first path component below parent) a process is in, or "".
func (p Proc) podOf(parent string) string {
	prefix := strings.TrimSuffix(parent, "/") + "/"
	for _, c := range p.Cgroups {
		if strings.HasPrefix(c, prefix) {
			rest := c[len(prefix):]
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				rest = rest[:i]
			}
			if rest != "" {
				return rest
			}
		}
	}
	return ""
}

// PodProcs are the processes one benchmark pod costs: those in its cgroups that are not the workload
// (a pause or init process), and the helpers outside them that are their ancestors (conmon, shims) up to the
// daemon or PID 1.
type PodProcs struct {
	Infra   []Proc
	Helpers []Proc
}

// podProcesses finds, for every pod cgroup below parent, its infra and helper processes. workload is the comm
// of the pods' container processes. Helpers shared by several pods (one shim for many) count for each.
func podProcesses(parent, workload string, daemon int) map[string]*PodProcs {
	all := map[int]Proc{}
	for _, pid := range pids() {
		if p, err := readProc(pid); err == nil {
			all[pid] = p
		}
	}
	out := map[string]*PodProcs{}
	for _, p := range all {
		pod := p.podOf(parent)
		if pod == "" {
			continue
		}
		pp := out[pod]
		if pp == nil {
			pp = &PodProcs{}
			out[pod] = pp
		}
		if p.Comm != workload {
			pp.Infra = append(pp.Infra, p)
		}
		seen := map[int]bool{}
		for _, h := range pp.Helpers {
			seen[h.PID] = true
		}
		for a, ok := all[p.PPID]; ok && a.PID > 1 && a.PID != daemon && a.podOf(parent) == ""; a, ok = all[a.PPID] {
			if !seen[a.PID] {
				pp.Helpers = append(pp.Helpers, a)
				seen[a.PID] = true
			}
		}
	}
	return out
}

// helperSummary sums the memory of the helper and infra processes of every pod and returns per-pod averages
// of RSS and PSS, with a description of the processes by name ("conmon x1").
func helperSummary(pods map[string]*PodProcs) (rss, pss float64, names string, err error) {
	if len(pods) == 0 {
		return 0, 0, "", fmt.Errorf("no pod processes found")
	}
	count := map[string]int{}
	var total Mem
	for _, pp := range pods {
		for _, p := range append(append([]Proc(nil), pp.Helpers...), pp.Infra...) {
			m, err := memOf(p.PID)
			if err != nil {
				continue
			}
			total.RSS += m.RSS
			total.PSS += m.PSS
			count[p.Comm]++
		}
	}
	var parts []string
	for name, n := range count {
		parts = append(parts, fmt.Sprintf("%s x%.1f", name, float64(n)/float64(len(pods))))
	}
	sort.Strings(parts)
	n := float64(len(pods))
	return mib(total.RSS) / n, mib(total.PSS) / n, strings.Join(parts, ", "), nil
}

// cgroupRoots are the mount points of every cgroup hierarchy (v1 controllers and the unified one), read from
// /proc/self/mountinfo once: the host's cgroup mounts do not change during a run, and with hundreds of pods the
// mount table has thousands of lines, which the bench would otherwise parse after every pod it removes (its CPU
// counts in the machine's CPU per lifecycle).
var cgroupRoots = sync.OnceValue(func() []string {
	var out []string
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		parts := strings.SplitN(line, " - ", 2)
		if len(parts) != 2 {
			continue
		}
		f := strings.Fields(parts[1])
		if len(f) < 1 || (f[0] != "cgroup" && f[0] != "cgroup2") {
			continue
		}
		pre := strings.Fields(parts[0])
		if len(pre) < 5 {
			continue
		}
		out = append(out, pre[4])
	}
	return out
})

// cgroupDirs returns the directories of the cgroup path in every mounted hierarchy (v1 controllers and the
// unified one) that exist.
func cgroupDirs(path string) []string {
	var out []string
	for _, root := range cgroupRoots() {
		d := filepath.Join(root, path)
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			out = append(out, d)
		}
	}
	return out
}

// removeCgroupTree removes path and every cgroup below it, deepest first, in every hierarchy. Cgroups that
// still hold processes stay; the error names them.
func removeCgroupTree(path string) error {
	var left []string
	for _, top := range cgroupDirs(path) {
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !os.IsNotExist(err) {
				left = append(left, dirs[i])
			}
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("cgroups not removed: %s", strings.Join(left, " "))
	}
	return nil
}
