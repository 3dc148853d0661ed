#!/usr/bin/env bash
# syncs.sh RUN_DIR [hack/bench flags...]: counts the sync calls (fsync, fdatasync, sync_file_range, syncfs, sync,
# msync) that a bench noded (hack/bench/noded.sh, run dir RUN_DIR) and its children (conmon, runc, CNI plugins)
# make while hack/bench runs the given phases (default: --phases start --seq 10 --conc-rounds 0, i.e. 12
# sequential pod lifecycles with the bench's 2 warm-ups), by program and file, per lifecycle, and per CRI call
# (noded is switched to log_level 4 by SIGHUP for that). strace slows everything: it counts, it does not time.
# Not part of the test command. Example (issue 16):
#   hack/bench/syncs.sh /var/tmp/noded-bench/noded --endpoint unix:///var/tmp/noded-bench/noded/noded.sock
set -euo pipefail
RUN=$1
shift
HERE=$(cd "$(dirname "$0")" && pwd)
PID=$(cat "$RUN/daemon.pid")
OUT=$(mktemp -d)
grep -q '^log_level' "$RUN/config.toml" || { sed -i '1i log_level = 4' "$RUN/config.toml"; kill -HUP "$PID"; sleep 1; }
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--endpoint "unix://$RUN/noded.sock")
L0=$(wc -l <"$RUN/daemon.log")
strace -f -qq -tt -y -e trace=execve,clone,clone3,fork,vfork,fsync,fdatasync,sync_file_range,syncfs,sync,msync \
	-o "$OUT/strace.txt" -p "$PID" &
SP=$!
sleep 2
(cd "$HERE/../.." && go run ./hack/bench --phases start --seq 10 --conc-rounds 0 "${args[@]}") >"$OUT/bench.txt" 2>&1
sleep 3
kill "$SP"
wait "$SP" 2>/dev/null || true
tail -n +$((L0 + 1)) "$RUN/daemon.log" >"$OUT/daemon.log"
python3 "$HERE/synccount.py" "$OUT/strace.txt" "$PID" 12
python3 "$HERE/syncrpc.py" "$OUT/strace.txt" "$OUT/daemon.log"
echo "(raw logs in $OUT)"
