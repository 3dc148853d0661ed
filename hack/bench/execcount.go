package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Exec counting: the kernel's process events connector (netlink NETLINK_CONNECTOR, group CN_IDX_PROC) reports
// every fork, exec and exit on the machine. The counter follows the process tree of each endpoint's daemon
// (a fork whose parent is followed is followed too, so double-forked helpers such as conmon or a shim stay
// attributed to the daemon that started them even after they are reparented) and counts each exec by the name
// it ran under. The counts are deterministic, so they are valid on a loaded machine too.

const (
	cnIdxProc          = 1
	cnValProc          = 1
	procCnMcastListen  = 1
	procCnMcastIgnore  = 2
	procEventFork      = 0x00000001
	procEventExec      = 0x00000002
	procEventExit      = 0x80000000
	nlmsgHdrLen        = 16
	cnMsgLen           = 20
	procEventHeaderLen = 16 // what, cpu, timestamp_ns
)

// procEvent is one decoded process event: for a fork the parent's and child's thread group IDs, for an exec
// or exit the process's.
type procEvent struct {
	what        uint32
	parent, pid int // parent: forks only; pid is the thread group ID the event is about
	thread      bool
}

// parseProcEvents decodes the netlink messages of one read from the connector socket; messages of other
// connector users and event kinds it does not need are skipped.
func parseProcEvents(buf []byte) ([]procEvent, error) {
	var out []procEvent
	le := binary.NativeEndian
	for len(buf) >= nlmsgHdrLen {
		n := int(le.Uint32(buf[0:4]))
		typ := le.Uint16(buf[4:6])
		if n < nlmsgHdrLen || n > len(buf) {
			return out, fmt.Errorf("netlink message length %d of %d bytes", n, len(buf))
		}
		msg := buf[nlmsgHdrLen:n]
		buf = buf[(n+3)&^3:]
		if typ == unix.NLMSG_NOOP || typ == unix.NLMSG_ERROR || typ == unix.NLMSG_OVERRUN {
			if typ == unix.NLMSG_OVERRUN {
				return out, errors.New("netlink overrun")
			}
			continue
		}
		if len(msg) < cnMsgLen {
			continue
		}
		if le.Uint32(msg[0:4]) != cnIdxProc || le.Uint32(msg[4:8]) != cnValProc {
			continue
		}
		data := msg[cnMsgLen:]
		if dl := int(le.Uint16(msg[16:18])); dl < len(data) {
			data = data[:dl]
		}
		if len(data) < procEventHeaderLen {
			continue
		}
		what := le.Uint32(data[0:4])
		ev := data[procEventHeaderLen:]
		switch what {
		case procEventFork:
			if len(ev) < 16 {
				continue
			}
			childPid, childTgid := le.Uint32(ev[8:12]), le.Uint32(ev[12:16])
			out = append(out, procEvent{what: what, parent: int(le.Uint32(ev[4:8])), pid: int(childTgid), thread: childPid != childTgid})
		case procEventExec, procEventExit:
			if len(ev) < 8 {
				continue
			}
			pid, tgid := le.Uint32(ev[0:4]), le.Uint32(ev[4:8])
			out = append(out, procEvent{what: what, pid: int(tgid), thread: pid != tgid})
		}
	}
	return out, nil
}

// subcommands are the first arguments that name what a multi-call binary was run for; execName adds the first
// of them it finds to the binary's name ("runc create", "noded rootfs-hook").
var subcommands = map[string]map[string]bool{
	"runc": set("create", "start", "state", "kill", "delete", "exec", "init", "update", "pause", "resume", "events",
		"ps", "features", "list", "run", "checkpoint", "restore", "spec", "--version", "-v"),
	"crun":                    set("create", "start", "state", "kill", "delete", "exec", "update", "pause", "resume", "features", "list", "run", "--version"),
	"noded":                   set("rootfs-hook"),
	"containerd-shim-runc-v2": set("start", "delete"),
}

func set(xs ...string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// execName is the name an exec is counted under: the base name of argv[0] (what the parent ran it as, so
// iptables is "iptables" even where it is a link to xtables-nft-multi), with the subcommand for the binaries of
// subcommands; comm when argv is unknown (the process is already gone).
func execName(argv []string, comm string) string {
	if len(argv) == 0 || argv[0] == "" {
		if comm == "" {
			return "?"
		}
		return "[" + comm + "]"
	}
	name := filepath.Base(argv[0])
	if subs, ok := subcommands[name]; ok {
		for _, a := range argv[1:] {
			if subs[a] {
				return name + " " + a
			}
		}
	}
	return name
}

// parseCmdline splits /proc/PID/cmdline.
func parseCmdline(data []byte) []string {
	data = bytes.TrimRight(data, "\x00")
	if len(data) == 0 {
		return nil
	}
	return strings.Split(string(data), "\x00")
}

// execTracker follows the process trees of some root processes (one per endpoint) and counts the execs in
// each; it is fed decoded events in the kernel's order.
type execTracker struct {
	mu      sync.Mutex
	owner   map[int]int // followed thread group → index of its root
	roots   []int
	counts  []map[string]int
	lookup  func(pid int) string // the exec's name, read as soon as the event arrives
	lostErr error
	// log, if set, is called with each counted exec (root: the index of the followed daemon), e.g. to attribute
	// the samples of a machine-wide profile (perf record -a) to the exec they came from.
	log func(pid, root int, name string)
}

func newExecTracker(roots []int, lookup func(pid int) string) *execTracker {
	t := &execTracker{owner: map[int]int{}, roots: roots, lookup: lookup}
	for i, r := range roots {
		if r > 0 {
			t.owner[r] = i
		}
		t.counts = append(t.counts, map[string]int{})
	}
	return t
}

func (t *execTracker) handle(ev procEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch ev.what {
	case procEventFork:
		if ev.thread {
			return
		}
		if i, ok := t.owner[ev.parent]; ok {
			t.owner[ev.pid] = i
		}
	case procEventExec:
		if i, ok := t.owner[ev.pid]; ok {
			name := t.lookup(ev.pid)
			t.counts[i][name]++
			if t.log != nil {
				t.log(ev.pid, i, name)
			}
		}
	case procEventExit:
		if ev.thread {
			return
		}
		if i, ok := t.owner[ev.pid]; ok && t.roots[i] != ev.pid {
			delete(t.owner, ev.pid)
		}
	}
}

// snapshot copies the counts so far, per root.
func (t *execTracker) snapshot() []map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]map[string]int, len(t.counts))
	for i, c := range t.counts {
		out[i] = map[string]int{}
		for k, v := range c {
			out[i][k] = v
		}
	}
	return out
}

// execCounter is an execTracker fed from the connector socket by a goroutine of its own.
type execCounter struct {
	*execTracker
	fd   int
	stop atomic.Bool
	done chan struct{}
}

func lookupExec(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return execName(parseCmdline(data), strings.TrimSpace(string(comm)))
}

// startExecCounter subscribes to the process events and follows the given daemons (needs root and a kernel
// with CONFIG_PROC_EVENTS). Stop it with close. log, if not nil, gets each counted exec (see execTracker.log).
func startExecCounter(roots []int, log func(pid, root int, name string)) (*execCounter, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("netlink connector socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	// A receive timeout lets the reader see close: closing the descriptor does not wake a blocked recvfrom.
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink connector: SO_RCVTIMEO: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind netlink connector: %w", err)
	}
	if err := sendMcastOp(fd, procCnMcastListen); err != nil {
		unix.Close(fd)
		return nil, err
	}
	c := &execCounter{execTracker: newExecTracker(roots, lookupExec), fd: fd, done: make(chan struct{})}
	c.log = log
	go c.loop()
	return c, nil
}

func sendMcastOp(fd int, op uint32) error {
	le := binary.NativeEndian
	msg := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	le.PutUint32(msg[0:4], uint32(len(msg)))
	le.PutUint16(msg[4:6], unix.NLMSG_DONE)
	le.PutUint32(msg[12:16], uint32(os.Getpid()))
	cn := msg[nlmsgHdrLen:]
	le.PutUint32(cn[0:4], cnIdxProc)
	le.PutUint32(cn[4:8], cnValProc)
	le.PutUint16(cn[16:18], 4)
	le.PutUint32(cn[cnMsgLen:], op)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("subscribe to process events: %w", err)
	}
	return nil
}

func (c *execCounter) loop() {
	defer close(c.done)
	buf := make([]byte, 1<<16)
	for {
		if c.stop.Load() {
			return
		}
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err == unix.ENOBUFS {
			c.mu.Lock()
			c.lostErr = errors.New("events lost (socket buffer overrun)")
			c.mu.Unlock()
			continue
		}
		if err != nil || n == 0 {
			return
		}
		evs, err := parseProcEvents(buf[:n])
		for _, ev := range evs {
			c.handle(ev)
		}
		if err != nil {
			c.mu.Lock()
			c.lostErr = err
			c.mu.Unlock()
		}
	}
}

// lost is the first reason some events were missed, nil if none was.
func (c *execCounter) lost() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lostErr
}

func (c *execCounter) close() {
	_ = sendMcastOp(c.fd, procCnMcastIgnore)
	c.stop.Store(true)
	<-c.done
	unix.Close(c.fd)
}

// execLogger writes a line "PID LABEL NAME" per counted exec to w (LABEL: the root's label), for --exec-log.
type execLogger struct {
	mu sync.Mutex
	w  io.Writer
}

// forRoots is the log function of an execCounter whose roots are labelled labels; nil without a writer.
func (l *execLogger) forRoots(labels ...string) func(pid, root int, name string) {
	if l == nil || l.w == nil {
		return nil
	}
	return func(pid, root int, name string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		fmt.Fprintf(l.w, "%d %s %s\n", pid, labels[root], name)
	}
}

// execDelta is after - before for one root.
func execDelta(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// addExecRows adds to res[k] one row per exec name (the union over all endpoints, so each side shows 0 rather
// than nothing for a binary only the other runs) with counts[k]'s execs per item, and a total row.
func addExecRows(res []*Results, prefix string, counts []map[string]int, items int) {
	if items <= 0 {
		return
	}
	names := map[string]bool{}
	for _, c := range counts {
		for k := range c {
			names[k] = true
		}
	}
	var sorted []string
	for k := range names {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for k, r := range res {
		total := 0
		for _, name := range sorted {
			total += counts[k][name]
			r.add(prefix+" "+name, float64(counts[k][name])/float64(items), "per pod", true)
		}
		r.add(prefix+" total", float64(total)/float64(items), "per pod", true)
	}
}
