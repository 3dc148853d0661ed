#!/usr/bin/env python3
"""syncrpc.py STRACE_OUT DAEMON_LOG: attributes the fdatasyncs of an `strace -f -tt -y` log of noded to the CRI
call under way (from noded's log at log_level 4: one "RPC" line per call, with its latency; the calls must not
overlap, as with hack/bench --seq and --conc-rounds 0), per bbolt file: a bbolt commit is two fdatasyncs (data
pages, then the meta page). See hack/bench/syncs.sh."""
import re,sys,collections
def t(s):
    h,m,x=s.split(':'); return int(h)*3600+int(m)*60+float(x)
rpcs=[]
for l in open(sys.argv[2]):
    m=re.search(r'^I\d+ (\S+).*method="/runtime.v1.\w+/(\w+)" latency="([\d.]+)(ms|s|µs)"',l)
    if m:
        end=t(m.group(1)); lat=float(m.group(3))*{'ms':1e-3,'s':1,'µs':1e-6}[m.group(4)]
        rpcs.append((end-lat,end,m.group(2)))
c=collections.Counter(); n=collections.Counter(r[2] for r in rpcs)
for l in open(sys.argv[1]):
    m=re.match(r'^\d+\s+(\d\d:\d\d:\d\d\.\d+)\s+fdatasync\(\d+<([^>]*)>',l)
    if not m: continue
    ts=t(m.group(1)); f=m.group(2).split('/')[-1]
    who=[r[2] for r in rpcs if r[0]<=ts<=r[1]]
    c[(who[-1] if who else 'no RPC (timer/background)', f)]+=1
for (w,f),k in sorted(c.items()):
    print(f"{w:<28} {f:<12} fdatasyncs {k:>4}  per call {k/max(n.get(w,12),1):.2f}  commits/call {k/2/max(n.get(w,12),1):.2f}")
