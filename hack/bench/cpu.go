package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// userHZ is the unit of the tick counts in /proc/stat and /proc/PID/stat (USER_HZ, 100 on every Linux ABI
// this tool runs on).
const userHZ = 100

// jiffiesMs converts ticks of USER_HZ to milliseconds.
func jiffiesMs(j uint64) float64 { return float64(j) * 1000 / userHZ }

// CPUStat is the machine-wide "cpu" line of /proc/stat, in ticks.
type CPUStat struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// Total is every tick counted (guest time is already part of user and nice, so it is not added again).
func (s CPUStat) Total() uint64 {
	return s.User + s.Nice + s.System + s.Idle + s.IOWait + s.IRQ + s.SoftIRQ + s.Steal
}

// Busy is the ticks some task of this machine ran: everything but idle, iowait (idle waiting for I/O) and steal
// (time the hypervisor gave to another guest).
func (s CPUStat) Busy() uint64 { return s.User + s.Nice + s.System + s.IRQ + s.SoftIRQ }

// sub returns s - o field by field; a counter that went backwards (never expected) counts 0.
func (s CPUStat) sub(o CPUStat) CPUStat {
	d := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	return CPUStat{d(s.User, o.User), d(s.Nice, o.Nice), d(s.System, o.System), d(s.Idle, o.Idle),
		d(s.IOWait, o.IOWait), d(s.IRQ, o.IRQ), d(s.SoftIRQ, o.SoftIRQ), d(s.Steal, o.Steal)}
}

// parseProcStat reads the aggregate "cpu " line of /proc/stat. Kernels older than 2.6.11 have no steal
// column; it is then 0.
func parseProcStat(data []byte) (CPUStat, error) {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 5 {
			return CPUStat{}, fmt.Errorf("/proc/stat: short cpu line %q", line)
		}
		var v [8]uint64
		for i := 0; i < 8 && i+1 < len(f); i++ {
			n, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return CPUStat{}, fmt.Errorf("/proc/stat: cpu field %d: %w", i+1, err)
			}
			v[i] = n
		}
		return CPUStat{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}, nil
	}
	return CPUStat{}, fmt.Errorf("/proc/stat: no cpu line")
}

// settle waits until the machine has been nearly idle (busy below frac of its CPUs over a 200 ms window) or max
// has passed. A teardown returns while the kernel is still destroying what it removed (network namespaces,
// cgroups) in its workers; a concurrent round ends its CPU bracket only after that, so the work is counted for the
// runtime that caused it, and the next round does not start on a machine still busy with it.
func settle(ctx context.Context, frac float64, max time.Duration) {
	deadline := time.Now().Add(max)
	prev, err := readCPUStat()
	if err != nil {
		return
	}
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
		now, err := readCPUStat()
		if err != nil {
			return
		}
		total := now.Total() - prev.Total()
		if total > 0 && float64(now.Busy()-prev.Busy())/float64(total) < frac {
			return
		}
		prev = now
	}
}

func readCPUStat() (CPUStat, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUStat{}, err
	}
	return parseProcStat(data)
}

// parseLoadavg returns the 1-minute load average of /proc/loadavg.
func parseLoadavg(data []byte) (float64, error) {
	f := strings.Fields(string(data))
	if len(f) < 1 {
		return 0, fmt.Errorf("/proc/loadavg: empty")
	}
	return strconv.ParseFloat(f[0], 64)
}

func readLoad1() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	l, err := parseLoadavg(data)
	if err != nil {
		return -1
	}
	return l
}

// parsePidStat returns utime + stime (fields 14 and 15) of /proc/PID/stat: the ticks the process itself ran
// (its threads included, its children not).
func parsePidStat(data []byte) (uint64, error) {
	s := string(data)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("bad /proc/PID/stat")
	}
	f := strings.Fields(s[end+1:])
	// f[0] is field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("bad /proc/PID/stat: %d fields", len(f))
	}
	u, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	st, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return u + st, nil
}

// pidCPU returns the ticks PID has run, 0 when it is unknown (pid 0 or gone).
func pidCPU(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	t, err := parsePidStat(data)
	if err != nil {
		return 0
	}
	return t
}

// cpuMeter sums the machine's busy ticks over several brackets (one per pod lifecycle, say) so that the CPU of
// interleaved work can be given to the endpoint that did it.
type cpuMeter struct {
	busy, daemon uint64
	runtimeNs    uint64 // CPU of the runtime's cgroups (runtimeCgroups), when cgroups is set
	cgroups      []string
	n            int
	start        CPUStat
	startDaemon  uint64
	startCg      uint64
	pid          int
}

func (m *cpuMeter) begin(pid int) {
	m.pid = pid
	m.start, _ = readCPUStat()
	m.startDaemon = pidCPU(pid)
	m.startCg = m.cgroupNs()
}

func (m *cpuMeter) cgroupNs() uint64 {
	var t uint64
	for _, f := range m.cgroups {
		t += cgroupCPU(f)
	}
	return t
}

// end closes the bracket begun last; it held items units of work (pod lifecycles).
func (m *cpuMeter) end(items int) {
	now, _ := readCPUStat()
	d := pidCPU(m.pid)
	cg := m.cgroupNs()
	m.runtimeNs += cg - min(cg, m.startCg)
	m.add(now.sub(m.start), d-min(d, m.startDaemon), items)
}

// runtimePerItemMs is the CPU of the runtime's cgroups per item in milliseconds, NaN without cgroups.
func (m *cpuMeter) runtimePerItemMs() float64 {
	if len(m.cgroups) == 0 || m.n == 0 {
		return math.NaN()
	}
	return float64(m.runtimeNs) / 1e6 / float64(m.n)
}

// add counts one bracket of items units of work: the machine's CPU delta and the daemon's ticks in it.
func (m *cpuMeter) add(d CPUStat, daemon uint64, items int) {
	m.busy += d.Busy()
	m.daemon += daemon
	m.n += items
}

// perItemMs is the machine's busy CPU per bracket, and the daemon's, in milliseconds.
func (m *cpuMeter) perItemMs() (machine, daemon float64) {
	if m.n == 0 {
		return 0, 0
	}
	return jiffiesMs(m.busy) / float64(m.n), jiffiesMs(m.daemon) / float64(m.n)
}

// PhaseStat is how busy the machine was during one phase: what the other tenants of a shared machine (steal,
// load) took is what makes a run's numbers trustworthy or not.
type PhaseStat struct {
	Name              string
	Wall              time.Duration
	BusyPct, StealPct float64 // of all CPU time of the machine (every CPU) during the phase
	Load1Start        float64
	Load1End          float64
}

// phaseStat computes a PhaseStat from the /proc/stat delta over the phase.
func phaseStat(name string, wall time.Duration, d CPUStat, l0, l1 float64) PhaseStat {
	ps := PhaseStat{Name: name, Wall: wall, Load1Start: l0, Load1End: l1}
	if t := d.Total(); t > 0 {
		ps.BusyPct = 100 * float64(d.Busy()) / float64(t)
		ps.StealPct = 100 * float64(d.Steal) / float64(t)
	}
	return ps
}

// phaseLog records the PhaseStat of every phase of a run.
type phaseLog struct{ phases []PhaseStat }

// run times fn as phase name and records how busy the machine was meanwhile; it prints the line to stderr too.
func (l *phaseLog) run(name string, fn func() error) error {
	s0, _ := readCPUStat()
	l0 := readLoad1()
	t0 := time.Now()
	err := fn()
	s1, _ := readCPUStat()
	ps := phaseStat(name, time.Since(t0), s1.sub(s0), l0, readLoad1())
	l.phases = append(l.phases, ps)
	fmt.Fprintf(os.Stderr, "bench: phase %s: %.1fs, machine busy %.1f%%, steal %.2f%%, load1 %.2f -> %.2f\n",
		ps.Name, ps.Wall.Seconds(), ps.BusyPct, ps.StealPct, ps.Load1Start, ps.Load1End)
	return err
}

func (l *phaseLog) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "phase\twall s\tmachine busy %%\tsteal %%\tload1 start\tload1 end\t\n")
	for _, p := range l.phases {
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.2f\t%.2f\t%.2f\t\n", p.Name, p.Wall.Seconds(), p.BusyPct, p.StealPct, p.Load1Start, p.Load1End)
	}
	return tw.Flush()
}

// interleave returns the order in which n endpoints take their turn in round i: forwards in even rounds,
// backwards in odd ones (A B, B A, A B, ...), so neither always goes first after the other's work.
func interleave(i, n int) []int {
	out := make([]int, n)
	for k := range out {
		if i%2 == 0 {
			out[k] = k
		} else {
			out[k] = n - 1 - k
		}
	}
	return out
}

// cgroupCPUFile is the file that counts the CPU of cgroup path (as /proc/PID/cgroup names it): cpuacct.usage
// (nanoseconds) in a v1 cpuacct hierarchy, else cpu.stat (usage_usec) in the unified one. mountinfo is
// /proc/self/mountinfo, cgroupLines /proc/PID/cgroup (or "" to use path for both kinds).
func cgroupCPUFile(mountinfo, cgroupLines, path string) string {
	var v1, v2 string
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, pf := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(pf) < 3 {
			continue
		}
		switch pf[0] {
		case "cgroup":
			for _, o := range strings.Split(pf[2], ",") {
				if o == "cpuacct" && v1 == "" {
					v1 = f[4]
				}
			}
		case "cgroup2":
			if v2 == "" {
				v2 = f[4]
			}
		}
	}
	p1, p2 := path, path
	if cgroupLines != "" {
		p1, p2 = "", ""
		for _, line := range strings.Split(cgroupLines, "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 {
				continue
			}
			if parts[1] == "" {
				p2 = parts[2]
			}
			for _, c := range strings.Split(parts[1], ",") {
				if c == "cpuacct" {
					p1 = parts[2]
				}
			}
		}
	}
	if v1 != "" && p1 != "" {
		return v1 + p1 + "/cpuacct.usage"
	}
	if v2 != "" && p2 != "" {
		return v2 + p2 + "/cpu.stat"
	}
	return ""
}

// parseCgroupCPU returns the nanoseconds of CPU in a cpuacct.usage or cpu.stat file's contents.
func parseCgroupCPU(file string, data []byte) (uint64, error) {
	if strings.HasSuffix(file, "/cpuacct.usage") {
		return strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n * 1000, err
		}
	}
	return 0, fmt.Errorf("%s: no usage_usec", file)
}

// cgroupCPU is the CPU time in ns counted by a cgroupCPUFile, 0 if it cannot be read (a cgroup not made yet).
func cgroupCPU(file string) uint64 {
	if file == "" {
		return 0
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, _ := parseCgroupCPU(file, data)
	return n
}

// runtimeCgroups are the CPU files of the daemon's cgroup (it, and the helpers it forks: conmon or shims, runc,
// CNI plugins) and of the pods' parent (runc init, hooks, the containers), whose sum is the runtime's own CPU
// per pod lifecycle, unaffected by other tenants of the machine.
func runtimeCgroups(daemon int, podParent string) []string {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	if daemon > 0 {
		if cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", daemon)); err == nil {
			if f := cgroupCPUFile(string(mi), string(cg), ""); f != "" {
				out = append(out, f)
			}
		}
	}
	if f := cgroupCPUFile(string(mi), "", podParent); f != "" {
		out = append(out, f)
	}
	return out
}
