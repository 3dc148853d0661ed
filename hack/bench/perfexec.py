#!/usr/bin/env python3
# perf script --show-task-events -F comm,pid,tid,time,event | perfexec.py EXECLOG LABEL=PID ... [--runs LABEL=N ...]
# cpu-clock samples (1000 Hz: 1 sample = 1 ms) of each root's process tree by exec name (from bench --exec-log;
# processes that never exec'd by comm), in ms per run.
import sys, re, collections
args = sys.argv[1:]
log = args.pop(0)
roots, runs = {}, {}
for a in args:
    l, _, v = a.partition('=')
    if l.startswith('runs:'):
        runs[l[5:]] = int(v)
    else:
        roots[int(v)] = l
names = {}
for line in open(log):
    pid, label, name = line.rstrip('\n').split(' ', 2)
    names.setdefault(int(pid), name)  # first exec: runc init's later exec of the container is its comm
parent = {}
fork = re.compile(r'PERF_RECORD_FORK\((\d+):(\d+)\):\((\d+):(\d+)\)')
samp = re.compile(r'^\s*(.+?)\s+(\d+)/(\d+)\s+[\d.]+:\s+cpu-clock')
counts = collections.Counter()
lines = sys.stdin.readlines()
comm_ev = re.compile(r'^\s*(.+?)\s+(\d+)/(\d+)\s+([\d.]+): PERF_RECORD_COMM exec')
label_of = {}
for line in open(log):
    pid, label, name = line.rstrip('\n').split(' ', 2)
    label_of[int(pid)] = label
win = {}
for line in lines:
    m = comm_ev.match(line)
    if m and int(m.group(2)) in label_of:
        l, t = label_of[int(m.group(2))], float(m.group(4))
        a, b = win.get(l, (t, t))
        win[l] = (min(a, t), max(b, t))
print('windows (s):', {k: round(b - a, 2) for k, (a, b) in win.items()}, file=sys.stderr)
samp = re.compile(r'^\s*(.+?)\s+(\d+)/(\d+)\s+([\d.]+):\s+cpu-clock')
def root_of(pid):
    p = pid
    for _ in range(64):
        if p in roots: return p
        p = parent.get(p)
        if p is None: return None
for line in lines:
    m = fork.search(line)
    if m:
        cp, ct, pp, pt = map(int, m.groups())
        if cp == ct and cp != pp:
            parent[cp] = pp
        continue
    m = samp.match(line)
    if m:
        comm, pid = m.group(1), int(m.group(2))
        r = root_of(pid)
        if r is None: continue
        a, b = win.get(roots[r], (0, 1e18))
        if not (a - 0.05 <= float(m.group(4)) <= b + 0.5): continue
        if pid == r: name = 'daemon ' + comm
        elif comm == 'sleep': name = 'container (sleep)'
        else: name = names.get(pid, '[' + comm + ']')
        counts[(roots[r], name)] += 1
tot = collections.Counter()
for (r, c), n in sorted(counts.items(), key=lambda x: (x[0][0], -x[1])):
    k = runs.get(r, 1)
    print(f"{r:8}\t{c:24}\t{n/k:8.1f} ms/run")
    tot[r] += n
for r, n in tot.items(): print(f"{r:8}\t{'TOTAL':24}\t{n/runs.get(r,1):8.1f} ms/run")
