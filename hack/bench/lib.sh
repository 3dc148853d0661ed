# Shared by hack/bench/noded.sh and hack/bench/containerd.sh (sourced, bash). The caller sets:
#   RUN      the runtime's run dir (absolute; everything of the runtime lives below it)
#   NAME     CNI network name; BRIDGE, SUBNET its bridge and /24
#   DAEMON_CG  the cgroup (absolute, below /noded-bench-daemons) the daemon and the helpers it forks run in
#   MARKER   regex of iptables rules this runtime's pods add (network name, bridge, subnet)
# and uses: bench_registry, write_conflist, start_in_cgroup, stop_run.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin:${PATH}"
RUNC=${BENCH_RUNC:-/usr/local/sbin/runc}
REG_PORT=${BENCH_REGISTRY_PORT:-5009}
REG_DIR=${BENCH_REGISTRY_DIR:-/var/tmp/noded-bench-registry}
MIRROR=http://127.0.0.1:$REG_PORT
POD_CG=${BENCH_CGROUP_PARENT:-/noded-bench}

[ "$(id -u)" = 0 ] || { echo "bench: must run as root" >&2; exit 1; }
case $RUN in /?*) ;; *) echo "bench: run dir must be absolute" >&2; exit 1 ;; esac

log() { echo "== $*" >&2; }

# bench_registry: starts the registry (hack/registry-start.sh, idempotent) and pushes the test and bench image
# sets unless it already serves noded/large (BENCH_PUSH=1 forces a push).
bench_registry() {
	"$REPO/hack/registry-start.sh" "$REG_PORT" "$REG_DIR" >&2
	if [ "${BENCH_PUSH:-}" = 1 ] || ! curl -fs -o /dev/null "http://127.0.0.1:$REG_PORT/v2/noded/large/tags/list"; then
		log "pushing the test and bench images to 127.0.0.1:$REG_PORT"
		(cd "$REPO" && go run ./hack/imagebuilder --registry "127.0.0.1:$REG_PORT" --set test,bench >&2)
	fi
}

# write_conflist DIR: hack/cni's network list (as noded's default) with this runtime's name, bridge, subnet and
# IPAM state under RUN.
write_conflist() {
	mkdir -p "$1" "$RUN/cni/ipam"
	"$REPO/hack/cni/render-conflist.sh" "$NAME" "$BRIDGE" "$SUBNET" "$RUN/cni/ipam" >"$1/10-$NAME.conflist"
}

# cgroup_dirs CG: the directory of cgroup CG in every mounted hierarchy (v1 controllers and unified).
cgroup_dirs() {
	awk -v cg="$1" '{ split($0, a, " - "); split(a[2], t, " "); if (t[1] == "cgroup" || t[1] == "cgroup2") { split(a[1], f, " "); print f[5] cg } }' /proc/self/mountinfo | sort -u
}

# start_in_cgroup LOG CMD...: starts CMD in the background, detached, inside DAEMON_CG (every hierarchy), so the
# daemon and whatever it forks (conmon, shims) can be found and stopped by cgroup; writes RUN/daemon.pid.
start_in_cgroup() {
	local logf=$1 d
	shift
	for d in $(cgroup_dirs "$DAEMON_CG"); do mkdir -p "$d"; done
	DAEMON_CG_DIRS=$(cgroup_dirs "$DAEMON_CG" | tr '\n' ' ')
	export DAEMON_CG_DIRS
	setsid sh -c 'for d in $DAEMON_CG_DIRS; do echo $$ >"$d/cgroup.procs" 2>/dev/null; done; exec "$@"' sh "$@" \
		>"$logf" 2>&1 </dev/null &
	echo $! >"$RUN/daemon.pid"
}

# wait_socket SOCK: waits up to 60s for the daemon to create its socket.
wait_socket() {
	local i pid
	pid=$(cat "$RUN/daemon.pid")
	for i in $(seq 1 600); do
		[ -S "$1" ] && return 0
		kill -0 "$pid" 2>/dev/null || { echo "bench: daemon exited; log:" >&2; tail -n 30 "$RUN/daemon.log" >&2; return 1; }
		sleep 0.1
	done
	echo "bench: $1 did not appear within 60s" >&2
	return 1
}

# stop_pid PID WAIT: SIGTERM, then SIGKILL after WAIT seconds.
stop_pid() {
	local pid=$1 wait=${2:-15} i=0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	while [ -r "/proc/$pid/stat" ] && [ "$(sed 's/.*) \(.\).*/\1/' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
		i=$((i + 1))
		if [ $i -ge $((wait * 10)) ]; then kill -KILL "$pid" 2>/dev/null || true; break; fi
		sleep 0.1
	done
}

# cg_procs CG: PIDs in cgroup CG and below, in every hierarchy.
cg_procs() {
	local d
	for d in $(cgroup_dirs "$1"); do
		[ -d "$d" ] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
	done | sort -u
}

# remove_cg CG: removes cgroup CG and those below it, deepest first, in every hierarchy.
remove_cg() {
	local d
	for d in $(cgroup_dirs "$1"); do
		[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
	return 0
}

# stop_run SOCK: removes every pod left on the endpoint, stops the daemon (SIGTERM) and removes what is left:
# processes in DAEMON_CG and the pod cgroups, containers in RUN/runc, mounts below RUN, the bridge, the iptables
# rules the run added (hack/critest/ipt-undo.sh with MARKER) and the cgroups.
stop_run() {
	local sock=$1 pid p id mp try
	set +e
	if [ -S "$sock" ]; then
		(cd "$REPO" && go run ./hack/bench --endpoint "unix://$sock" --remove-all) >&2
	fi
	if [ -f "$RUN/daemon.pid" ]; then
		pid=$(cat "$RUN/daemon.pid")
		stop_pid "$pid" 20
	fi
	for f in $(find /sys/fs/cgroup/freezer"$POD_CG" -name freezer.state 2>/dev/null); do echo THAWED >"$f"; done
	if [ -d "$RUN/runc" ]; then
		for id in $("$RUNC" --root "$RUN/runc" list -q 2>/dev/null); do
			"$RUNC" --root "$RUN/runc" delete --force "$id" >/dev/null 2>&1
		done
	fi
	for try in 1 2 3; do
		p=$(cg_procs "$DAEMON_CG")
		[ -n "$p" ] || break
		kill -KILL $p 2>/dev/null
		sleep 0.3
	done
	for try in 1 2 3; do
		awk -v r="$RUN" '{ if ($5 == r || index($5, r "/") == 1) print $5 }' /proc/self/mountinfo | tac |
			while read -r mp; do umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null; done
	done
	for p in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
		ip link del "$p" 2>/dev/null
	done
	ip link del "$BRIDGE" 2>/dev/null
	[ -d "$RUN/iptables" ] && "$REPO/hack/critest/ipt-undo.sh" undo "$RUN/iptables" "$MARKER"
	remove_cg "$DAEMON_CG"
	rmdir $(cgroup_dirs /noded-bench-daemons) 2>/dev/null
	rm -f "$RUN/daemon.pid"
	set -e
}
