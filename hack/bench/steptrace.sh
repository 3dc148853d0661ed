#!/usr/bin/env bash
# steptrace.sh start|teardown RUN_DIR OUT [SEQ] [hack/bench flags...]: where the time of a sequential pod start
# (RunPodSandbox, CreateContainer, StartContainer) or teardown (StopContainer, StopPodSandbox, RemovePodSandbox,
# and the interleaved floor's: kill, runc delete, CNI DEL, unpin) goes, step by step, on a bench noded
# (hack/bench/noded.sh, run dir RUN_DIR): kernel tracepoints (process exec/exit/fork, fdatasync, mount or umount;
# cheap, unlike strace) of the whole machine while hack/bench runs SEQ sequential lifecycles (default 15), cut at
# each CRI call's begin and end from noded's log (switched to log_level 5 by SIGHUP for that), then
# hack/bench/startsteps.py or teardownsteps.py prints the p50 and mean of each step. Not part of the test command.
# Example (issue 16):
#   hack/bench/steptrace.sh start /var/tmp/noded-bench/noded /tmp/st 15 --endpoint unix:///var/tmp/noded-bench/noded/noded.sock
set -euo pipefail
MODE=$1 RUN=$2 OUT=$3
SEQ=${4:-15}
shift 3
[ $# -gt 0 ] && shift
case $MODE in
	start) MNT=mount EXTRA=() ;;
	teardown) MNT=umount EXTRA=(--floor-interleave) ;;
	*) echo "usage: $0 start|teardown RUN_DIR OUT [SEQ] [bench flags]" >&2; exit 2 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
PID=$(cat "$RUN/daemon.pid")
grep -q '^log_level' "$RUN/config.toml" || { sed -i '1i log_level = 5' "$RUN/config.toml"; kill -HUP "$PID"; sleep 1; }
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--endpoint "unix://$RUN/noded.sock")
(cd "$HERE/../.." && go build -o "$OUT.bench-tool" ./hack/bench)
perf record -q -a -k mono -o "$OUT.perf" -e sched:sched_process_exec,sched:sched_process_exit,sched:sched_process_fork \
	-e syscalls:sys_enter_fdatasync,syscalls:sys_exit_fdatasync,syscalls:sys_enter_$MNT,syscalls:sys_exit_$MNT &
PP=$!
sleep 2
# perf's clock is CLOCK_MONOTONIC, noded's log is wall time.
python3 -c 'import time; print(time.clock_gettime(time.CLOCK_REALTIME) - time.clock_gettime(time.CLOCK_MONOTONIC))' >"$OUT.off"
L0=$(wc -l <"$RUN/daemon.log")
"$OUT.bench-tool" --phases start --seq "$SEQ" --conc-rounds 0 "${EXTRA[@]}" "${args[@]}" >"$OUT.bench" 2>&1 &
BP=$!
wait "$BP"
sleep 1
kill -INT "$PP"
wait "$PP" || true
tail -n +$((L0 + 1)) "$RUN/daemon.log" >"$OUT.log"
perf script -i "$OUT.perf" -F comm,pid,tid,time,event,trace >"$OUT.ps" 2>/dev/null
if [ "$MODE" = start ]; then
	python3 "$HERE/startsteps.py" "$OUT.ps" "$OUT.log" "$OUT.off" "$PID"
else
	python3 "$HERE/teardownsteps.py" "$OUT.ps" "$OUT.log" "$OUT.off" "$PID" "$BP"
fi
