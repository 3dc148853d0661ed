"""Shared by startsteps.py and teardownsteps.py: the CRI calls of noded's log as (method, begin, end, line), begin
and end on perf's CLOCK_MONOTONIC (off is CLOCK_REALTIME - CLOCK_MONOTONIC). klog lines carry no year: the
current one is assumed."""
import datetime, re

_RPC = re.compile(r'I(\d\d)(\d\d) (\d\d):(\d\d):(\d\d\.\d+)\s+\d+ interceptor.go:\d+\] "RPC" '
                  r'method="/runtime.v1.\w+/(\w+)" latency="([\d.]+)(µs|ms|s)"')


def rpc_calls(log, off):
    year = datetime.datetime.now(datetime.timezone.utc).year
    calls = []
    for l in open(log):
        m = _RPC.match(l)
        if not m:
            continue
        mo, d, H, M, S, meth, lat, u = m.groups()
        end = datetime.datetime(year, int(mo), int(d), int(H), int(M), 0, tzinfo=datetime.timezone.utc).timestamp() + float(S)
        lat = float(lat) * {'µs': 1e-6, 'ms': 1e-3, 's': 1}[u]
        calls.append((meth, end - lat - off, end - off, l))
    return calls
