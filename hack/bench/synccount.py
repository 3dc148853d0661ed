#!/usr/bin/env python3
"""synccount.py STRACE_OUT ROOT_PID [LIFECYCLES]: counts the sync calls (fsync, fdatasync, sync_file_range,
syncfs, sync, msync) in an `strace -f -y -e trace=execve,clone,clone3,fork,vfork,<syncs>` log of a daemon, by the
program that made them (the daemon itself, or the binary a child exec'ed; threads count for their process) and by
file (IDs and pod names folded). With LIFECYCLES, also per lifecycle. See hack/bench/synccount.sh."""
import collections
import os
import re
import sys

SYNCS = {"fsync", "fdatasync", "sync_file_range", "syncfs", "sync", "msync"}
line_re = re.compile(r"^(\d+)\s+(?:\d\d:\d\d:\d\d\.\d+\s+)?(.*)$")
call_re = re.compile(r"^(\w+)\((.*)$")
resumed_re = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
ret_re = re.compile(r"\)\s+=\s+(-?\d+)")


def fold(path):
    path = re.sub(r"[0-9a-f]{64}", "<id>", path)
    path = re.sub(r"bench-[0-9a-f]+-(warm|seq|conc)-\d+", "<pod>", path)
    return path


def main():
    log, root = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    prog = {root: "noded"}
    pending = {}  # pid -> (call, args) of an unfinished call
    counts = collections.Counter()
    for raw in open(log, errors="replace"):
        m = line_re.match(raw.rstrip("\n"))
        if not m:
            continue
        pid, rest = m.groups()
        if rest.startswith("---") or rest.startswith("+++"):
            continue
        r = resumed_re.match(rest)
        if r:
            call, tail = r.groups()
            _, args = pending.pop(pid, (call, ""))
            text = args + tail
        else:
            c = call_re.match(rest)
            if not c:
                continue
            call, text = c.groups()
            if rest.endswith("<unfinished ...>"):
                pending[pid] = (call, text)
                if call not in SYNCS:
                    continue
        who = prog.get(pid, "noded")  # threads that were there at attach: the daemon's
        if call in SYNCS:
            if r and call in SYNCS:
                continue  # counted at its start
            f = re.search(r"<([^>]*)>", text)
            counts[(who, call, fold(f.group(1)) if f else "?")] += 1
            continue
        ret = ret_re.search(text)
        if not ret:
            continue
        val = int(ret.group(1))
        if call in ("clone", "clone3", "fork", "vfork") and val > 0:
            prog[str(val)] = who
        elif call == "execve" and val == 0:
            p = re.match(r'"([^"]*)"', text)
            if p:
                prog[pid] = os.path.basename(p.group(1))
    total = sum(counts.values())
    print(f"{'program':<12} {'call':<10} {'count':>6} {'per lifecycle':>14}  file")
    for (who, call, f), n in sorted(counts.items(), key=lambda kv: -kv[1]):
        per = f"{n / runs:.1f}" if runs else ""
        print(f"{who:<12} {call:<10} {n:>6} {per:>14}  {f}")
    print(f"{'total':<12} {'':<10} {total:>6} {(f'{total / runs:.1f}' if runs else ''):>14}")


main()
