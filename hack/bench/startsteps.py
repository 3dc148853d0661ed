#!/usr/bin/env python3
"""startsteps.py PS LOG OFF DAEMON_PID: per-step times of each sequential pod start (hack/bench "seq-" pods).

PS is `perf script -F comm,pid,tid,time,event,trace` of sched_process_{exec,exit,fork} and fdatasync/mount enter
and exit tracepoints recorded with -k mono; LOG is noded's log at log_level >= 4 (one "RPC" line per call, with its
latency); OFF holds CLOCK_REALTIME - CLOCK_MONOTONIC. Events of DAEMON_PID's process tree are cut at each
RunPodSandbox, CreateContainer and StartContainer; see hack/bench/steptrace.sh start.
"""
import re, sys, statistics
from steplog import rpc_calls
ps, log, off, dpid = sys.argv[1], sys.argv[2], float(open(sys.argv[3]).read()), int(sys.argv[4])
calls = rpc_calls(log, off)
tree = {dpid}; ev = []; enter = {}
for l in open(ps):
    m = re.match(r'\s*(.+?)\s+(\d+)/(\d+)\s+(\d+\.\d+):\s+(\S+):\s*(.*)', l)
    if not m: continue
    comm, pid, tid, ts, e, tr = m.groups(); pid, tid, ts = int(pid), int(tid), float(ts)
    if e == 'sched:sched_process_fork':
        mm = re.search(r'child_pid=(\d+)', tr)
        if mm and pid in tree: tree.add(int(mm.group(1)))
        continue
    if pid not in tree: continue
    if e == 'sched:sched_process_exec': ev.append((ts, 'exec', tr.split()[0].split('=')[1], pid))
    elif e == 'sched:sched_process_exit' and ('group_dead=1' in tr or 'group_dead=true' in tr): ev.append((ts, 'exit', comm, pid))
    elif e == 'syscalls:sys_enter_mount' and comm == 'noded': enter[tid] = ts
    elif e == 'syscalls:sys_exit_mount' and comm == 'noded' and tid in enter: ev.append((ts, 'mount', ts - enter.pop(tid), tid))
    elif e == 'syscalls:sys_enter_fdatasync': enter[tid] = ts
    elif e == 'syscalls:sys_exit_fdatasync' and tid in enter: ev.append((enter.pop(tid), 'sync', ts - enter.get(tid, ts), tid)); ev[-1] = (ev[-1][0], 'sync', ts - ev[-1][0], tid)
ev.sort()
steps = {}
def add(k, v): steps.setdefault(k, []).append(v * 1e3)
def one(i, c):
    run, cr, st = calls[i], calls[i+1], calls[i+2]
    def inwin(a, b): return [e for e in ev if a <= e[0] <= b]
    w = inwin(run[1], run[2])
    ex = [e for e in w if e[1] == 'exec']; xs = [e for e in w if e[1] == 'exit']
    first_cni = ex[0][0] if ex else None
    last_cni_exit = max(e[0] for e in xs) if xs else None
    add('Run: begin -> first CNI plugin exec', first_cni - run[1])
    add('Run: CNI (first exec -> last exit)', last_cni_exit - first_cni)
    add('Run: last plugin exit -> end', run[2] - last_cni_exit)
    add('Run: fdatasync total', sum(e[2] for e in w if e[1] == 'sync'))
    add('gap Run end -> Create begin', cr[1] - run[2])
    w = inwin(cr[1], cr[2])
    rc = [e for e in w if e[1] == 'exec' and e[2].endswith('/runc')][0]
    rcx = [e for e in w if e[1] == 'exit' and e[3] == rc[3]][0]
    add('Create: begin -> runc create exec', rc[0] - cr[1])
    mt = [e for e in w if e[1] == 'mount' and e[0] < rc[0]]
    if mt:
        add('Create: begin -> rootfs mounted', mt[0][0] - cr[1])
        add('Create: rootfs mounted -> runc create exec', rc[0] - mt[0][0])
    cm = [e for e in w if e[1] == 'exec' and e[2].endswith('conmon')]
    if cm: add('Create: conmon exec -> runc create exec', rc[0] - cm[0][0])
    add('Create: runc create (exec -> exit)', rcx[0] - rc[0])
    add('Create: runc exit -> end', cr[2] - rcx[0])
    add('Create: fdatasync total', sum(e[2] for e in w if e[1] == 'sync'))
    add('gap Create end -> Start begin', st[1] - cr[2])
    w = inwin(st[1], st[2] + 0.0005)
    rs = [e for e in w if e[1] == 'exec' and e[2].endswith('/runc')][0]
    rsx = [e for e in ev if e[1] == 'exit' and e[3] == rs[3]][0]
    add('Start: begin -> runc start exec', rs[0] - st[1])
    add('Start: runc start (exec -> exit)', rsx[0] - rs[0])
    add('Start: runc exit -> end', st[2] - rsx[0])
    add('total Run begin -> Start end', st[2] - run[1])
skipped = 0
for i, c in enumerate(calls):
    if c[0] != 'RunPodSandbox' or 'seq-' not in c[3]: continue
    try: one(i, c)
    except (IndexError, TypeError): skipped += 1
print('pods skipped (events missing):', skipped)
for k, v in steps.items():
    print("%-40s n=%2d p50 %7.2f  mean %7.2f ms" % (k, len(v), statistics.median(v), statistics.mean(v)))
