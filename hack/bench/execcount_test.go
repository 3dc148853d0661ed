package main

import (
	"encoding/binary"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// procMsg builds one netlink message of the process events connector as the kernel sends it.
func procMsg(idx uint32, what uint32, fields ...uint32) []byte {
	le := binary.NativeEndian
	data := make([]byte, procEventHeaderLen+4*len(fields))
	le.PutUint32(data[0:4], what)
	for i, f := range fields {
		le.PutUint32(data[procEventHeaderLen+4*i:], f)
	}
	cn := make([]byte, cnMsgLen)
	le.PutUint32(cn[0:4], idx)
	le.PutUint32(cn[4:8], cnValProc)
	le.PutUint16(cn[16:18], uint16(len(data)))
	body := append(cn, data...)
	hdr := make([]byte, nlmsgHdrLen)
	le.PutUint32(hdr[0:4], uint32(nlmsgHdrLen+len(body)))
	le.PutUint16(hdr[4:6], unix.NLMSG_DONE)
	msg := append(hdr, body...)
	for len(msg)%4 != 0 {
		msg = append(msg, 0)
	}
	return msg
}

func TestParseProcEvents(t *testing.T) {
	var buf []byte
	buf = append(buf, procMsg(cnIdxProc, procEventFork, 100, 100, 101, 101)...)       // process fork
	buf = append(buf, procMsg(cnIdxProc, procEventFork, 100, 100, 102, 100)...)       // thread of 100
	buf = append(buf, procMsg(cnIdxProc, procEventExec, 101, 101)...)                 // exec
	buf = append(buf, procMsg(7, procEventExec, 555, 555)...)                         // another connector user
	buf = append(buf, procMsg(cnIdxProc, 0x00000040, 101, 101)...)                    // comm change: skipped
	buf = append(buf, procMsg(cnIdxProc, procEventExit, 101, 101, 0, 0, 100, 100)...) // exit
	buf = append(buf, procMsg(cnIdxProc, procEventExit, 102, 100, 0, 0, 100, 100)...) // thread exit
	got, err := parseProcEvents(buf)
	if err != nil {
		t.Fatal(err)
	}
	want := []procEvent{
		{what: procEventFork, parent: 100, pid: 101},
		{what: procEventFork, parent: 100, pid: 100, thread: true},
		{what: procEventExec, pid: 101},
		{what: procEventExit, pid: 101},
		{what: procEventExit, pid: 100, thread: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n got %+v\nwant %+v", got, want)
	}
	if _, err := parseProcEvents(buf[:len(buf)-3]); err == nil {
		t.Fatal("truncated message: no error")
	}
}

func TestExecName(t *testing.T) {
	for _, c := range []struct {
		argv []string
		comm string
		want string
	}{
		{[]string{"/usr/local/sbin/runc", "--root", "/run/x", "--log", "/x/log.json", "--log-format", "json", "create", "--bundle", "/b", "id"}, "", "runc create"},
		{[]string{"runc", "init"}, "", "runc init"},
		{[]string{"/usr/local/sbin/runc", "--root", "/r", "state", "id"}, "", "runc state"},
		{[]string{"/var/tmp/x/noded", "rootfs-hook", "/rootfs"}, "", "noded rootfs-hook"},
		{[]string{"/var/tmp/x/noded", "--config", "c"}, "", "noded"},
		{[]string{"/usr/lib/cni/bridge"}, "", "bridge"},
		{[]string{"iptables", "--wait", "-t", "nat", "-N", "CNI-x"}, "xtables-nft-mu", "iptables"},
		{[]string{"/usr/bin/conmon", "--api-version", "1", "-c", "id"}, "", "conmon"},
		{nil, "sleep", "[sleep]"},
		{nil, "", "?"},
	} {
		if got := execName(c.argv, c.comm); got != c.want {
			t.Errorf("execName(%q, %q) = %q, want %q", c.argv, c.comm, got, c.want)
		}
	}
	if got := parseCmdline([]byte("runc\x00init\x00")); !reflect.DeepEqual(got, []string{"runc", "init"}) {
		t.Errorf("parseCmdline = %q", got)
	}
	if got := parseCmdline(nil); got != nil {
		t.Errorf("parseCmdline(nil) = %q", got)
	}
}

func TestExecTrackerFollowsEachDaemonsTree(t *testing.T) {
	names := map[int]string{11: "runc create", 12: "runc init", 13: "conmon", 21: "containerd-shim-runc-v2", 99: "bash"}
	tr := newExecTracker([]int{10, 20}, func(pid int) string { return names[pid] })
	for _, ev := range []procEvent{
		{what: procEventFork, parent: 10, pid: 10, thread: true}, // a daemon thread: nothing new
		{what: procEventFork, parent: 10, pid: 11},
		{what: procEventExec, pid: 11},
		{what: procEventFork, parent: 11, pid: 12}, // grandchild
		{what: procEventExec, pid: 12},
		{what: procEventFork, parent: 12, pid: 13},
		{what: procEventExit, pid: 12}, // 13 is reparented; still followed
		{what: procEventExec, pid: 13},
		{what: procEventFork, parent: 20, pid: 21},
		{what: procEventExec, pid: 21},
		{what: procEventFork, parent: 1, pid: 99}, // not ours
		{what: procEventExec, pid: 99},
		{what: procEventExit, pid: 11},
		{what: procEventExec, pid: 11}, // a recycled PID after the exit: not ours any more
		{what: procEventExit, pid: 10}, // the root stays followed
		{what: procEventFork, parent: 10, pid: 14},
	} {
		tr.handle(ev)
	}
	got := tr.snapshot()
	want := []map[string]int{{"runc create": 1, "runc init": 1, "conmon": 1}, {"containerd-shim-runc-v2": 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
	if _, ok := tr.owner[14]; !ok {
		t.Fatal("a child of a root is not followed after the root's exit event")
	}
	if d := execDelta(map[string]int{"conmon": 1, "x": 2}, map[string]int{"conmon": 3, "x": 2, "y": 1}); !reflect.DeepEqual(d, map[string]int{"conmon": 2, "y": 1}) {
		t.Fatalf("execDelta = %v", d)
	}
}

func TestAddExecRowsUnionPerItem(t *testing.T) {
	res := []*Results{{Label: "a"}, {Label: "b"}}
	addExecRows(res, "seq execs:", []map[string]int{{"runc create": 10, "conmon": 10}, {"runc": 30}}, 10)
	want := []Row{
		{Name: "seq execs: conmon", Value: 1, Unit: "per pod", Lower: true},
		{Name: "seq execs: runc", Value: 0, Unit: "per pod", Lower: true},
		{Name: "seq execs: runc create", Value: 1, Unit: "per pod", Lower: true},
		{Name: "seq execs: total", Value: 2, Unit: "per pod", Lower: true},
	}
	if !reflect.DeepEqual(res[0].Rows, want) {
		t.Fatalf("a rows = %+v", res[0].Rows)
	}
	if v := res[1].rowValue("seq execs: runc"); v != 3 {
		t.Fatalf("b runc = %v", v)
	}
	if v := res[1].rowValue("seq execs: conmon"); v != 0 {
		t.Fatalf("b conmon = %v", v)
	}
}

func TestCgroupCPUFile(t *testing.T) {
	mi := `25 1 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
32 25 0:28 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory`
	cg := "4:memory:/m\n3:cpu,cpuacct:/noded-bench-daemons/noded\n0::/u\n"
	if got := cgroupCPUFile(mi, cg, ""); got != "/sys/fs/cgroup/cpu,cpuacct/noded-bench-daemons/noded/cpuacct.usage" {
		t.Fatalf("v1 = %q", got)
	}
	if got := cgroupCPUFile(mi, "", "/noded-bench"); got != "/sys/fs/cgroup/cpu,cpuacct/noded-bench/cpuacct.usage" {
		t.Fatalf("v1 path = %q", got)
	}
	v2 := "40 1 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw"
	if got := cgroupCPUFile(v2, "0::/system.slice/noded.service\n", ""); got != "/sys/fs/cgroup/system.slice/noded.service/cpu.stat" {
		t.Fatalf("v2 = %q", got)
	}
	if n, err := parseCgroupCPU("/x/cpuacct.usage", []byte("123456\n")); err != nil || n != 123456 {
		t.Fatalf("cpuacct.usage = %d, %v", n, err)
	}
	if n, err := parseCgroupCPU("/x/cpu.stat", []byte("usage_usec 250\nuser_usec 200\n")); err != nil || n != 250000 {
		t.Fatalf("cpu.stat = %d, %v", n, err)
	}
	if _, err := parseCgroupCPU("/x/cpu.stat", []byte("user_usec 200\n")); err == nil {
		t.Fatal("cpu.stat without usage_usec: no error")
	}
}
