#!/usr/bin/env python3
"""teardownsteps.py PS LOG OFF DAEMON_PID [BENCH_PID]: per-step times of each sequential pod teardown (hack/bench
"seq-" pods) and, with BENCH_PID, of the interleaved floor's teardowns (--floor-interleave).

PS is `perf script -F comm,pid,tid,time,event,trace` of sched_process_{exec,exit,fork} and fdatasync/umount
enter and exit tracepoints recorded with -k mono; LOG is noded's log at log_level >= 4 (one "RPC" line per call,
with its latency); OFF holds CLOCK_REALTIME - CLOCK_MONOTONIC. Events of DAEMON_PID's process tree are cut at
each StopContainer, StopPodSandbox and RemovePodSandbox; see hack/bench/steptrace.sh teardown.
"""
import re, sys, statistics
from steplog import rpc_calls
ps, log, off, dpid = sys.argv[1], sys.argv[2], float(open(sys.argv[3]).read()), int(sys.argv[4])
bpid = int(sys.argv[5]) if len(sys.argv) > 5 else None
calls = rpc_calls(log, off)
trees = {'noded': {dpid}}
if bpid: trees['floor'] = {bpid}
ev = {k: [] for k in trees}; enter = {}
def owner(pid):
    for k, t in trees.items():
        if pid in t: return k
for l in open(ps):
    m = re.match(r'\s*(.+?)\s+(\d+)/(\d+)\s+(\d+\.\d+):\s+(\S+):\s*(.*)', l)
    if not m: continue
    comm, pid, tid, ts, e, tr = m.groups(); pid, tid, ts = int(pid), int(tid), float(ts)
    k = owner(pid)
    if e == 'sched:sched_process_fork':
        mm = re.search(r'child_pid=(\d+)', tr)
        if mm and k: trees[k].add(int(mm.group(1)))
        continue
    if not k: continue
    E = ev[k]
    if e == 'sched:sched_process_exec': E.append((ts, 'exec', tr.split()[0].split('=')[1], pid))
    elif e == 'sched:sched_process_exit' and ('group_dead=1' in tr or 'group_dead=true' in tr): E.append((ts, 'exit', comm, pid))
    elif e.startswith('syscalls:sys_enter_'): enter[(tid, e[19:])] = ts
    elif e.startswith('syscalls:sys_exit_') and (tid, e[18:]) in enter:
        t0 = enter.pop((tid, e[18:])); E.append((t0, e[18:], ts - t0, tid, comm))
for E in ev.values(): E.sort()
steps = {}
def add(k, v): steps.setdefault(k, []).append(v * 1e3)
def nxt(i, meth):
    for j in range(i + 1, len(calls)):
        if calls[j][0] == meth: return calls[j]
def one(i):
    E = ev['noded']
    sc, sp, rp = nxt(i, 'StopContainer'), nxt(i, 'StopPodSandbox'), nxt(i, 'RemovePodSandbox')
    def inwin(a, b, kind=None): return [e for e in E if a <= e[0] <= b and (kind is None or e[1] == kind)]
    add('StopContainer', sc[2] - sc[1])
    add('gap StopContainer end -> StopPodSandbox begin', sp[1] - sc[2])
    x = [e for e in inwin(sc[1], sc[2] + 0.5, 'exit') if e[2] == 'conmon']
    if x: add('conmon exit, from StopContainer end', x[0][0] - sc[2])
    w = inwin(sp[1], sp[2])
    ex = [e for e in w if e[1] == 'exec' and not e[2].endswith('/runc')]
    xs = [e for e in w if e[1] == 'exit' and e[2] != 'runc' and e[3] in {y[3] for y in ex}]
    add('StopPodSandbox', sp[2] - sp[1])
    add('StopPod: begin -> first CNI plugin exec', ex[0][0] - sp[1])
    add('StopPod: CNI DEL (first exec -> last exit)', max(e[0] for e in xs) - ex[0][0])
    add('StopPod: last plugin exit -> end', sp[2] - max(e[0] for e in xs))
    add('StopPod: fdatasync total', sum(e[2] for e in w if e[1] == 'fdatasync'))
    add('gap StopPodSandbox end -> RemovePodSandbox begin', rp[1] - sp[2])
    rc = [e for e in inwin(sc[1], rp[2], 'exec') if e[2].endswith('/runc')]
    if rc:
        rx = [e for e in E if e[1] == 'exit' and e[3] == rc[0][3] and e[0] >= rc[0][0]][0]
        add('runc delete exec, from StopContainer end', rc[0][0] - sc[2])
        add('runc delete exec, from StopPodSandbox end', rc[0][0] - sp[2])
        add('runc delete (exec -> exit)', rx[0] - rc[0][0])
        add('Remove: begin -> runc delete exit', rx[0] - rp[1])
        add('Remove: runc delete exit -> end', rp[2] - rx[0])
    w = inwin(rp[1], rp[2])
    um = [e for e in w if e[1] == 'umount' and e[4] == 'noded']
    add('RemovePodSandbox', rp[2] - rp[1])
    add('Remove: umount2 total (n=%d/pod)' % len(um), sum(e[2] for e in um))
    if um: add('Remove: last umount exit -> end', rp[2] - max(e[0] + e[2] for e in um))
    add('Remove: fdatasync total', sum(e[2] for e in w if e[1] == 'fdatasync'))
    add('teardown total', rp[2] - sc[1])
skipped = 0
for i, c in enumerate(calls):
    if c[0] != 'RunPodSandbox' or 'seq-' not in c[3]: continue
    try: one(i)
    except (IndexError, TypeError, ValueError): skipped += 1
# The floor: per lifecycle 3 runc execs (create, start, delete --force), CNI plugins before (ADD) and after (DEL).
if bpid:
    E = ev['floor']
    rcs = [e for e in E if e[1] == 'exec' and e[2].endswith('/runc')]
    exits = {e[3]: e[0] for e in E if e[1] == 'exit'}
    for k in range(2, len(rcs), 3):
        st, de = rcs[k - 1], rcs[k]
        if st[3] not in exits or de[3] not in exits: continue
        nx = rcs[k + 1][0] if k + 1 < len(rcs) else 1e18
        t0, td = exits[st[3]], exits[de[3]]
        dl = [e for e in E if e[1] == 'exec' and td <= e[0] < nx and not e[2].endswith('/runc')]
        # The DEL's plugins end before the next lifecycle's ADD: split at the largest gap between plugin execs.
        if not dl: continue
        gaps = [(dl[j + 1][0] - dl[j][0], j) for j in range(len(dl) - 1)]
        cut = max(gaps)[1] + 1 if gaps and max(gaps)[0] > 0.05 else len(dl)
        dl = dl[:cut]
        le = max(exits.get(e[3], e[0]) for e in dl)
        add('floor: runc start exit -> delete exec', de[0] - t0)
        add('floor: runc delete --force (exec -> exit)', td - de[0])
        add('floor: delete exit -> first DEL plugin exec', dl[0][0] - td)
        add('floor: CNI DEL (first exec -> last exit)', le - dl[0][0])
        add('floor: start exit -> last DEL plugin exit', le - t0)
print('pods skipped (events missing):', skipped)
for k, v in steps.items():
    print("%-50s n=%2d p50 %7.2f  mean %7.2f ms" % (k, len(v), statistics.median(v), statistics.mean(v)))
