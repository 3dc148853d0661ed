# Shared by hack/bench/noded.sh and hack/bench/containerd.sh (sourced, bash). The caller sets:
#   RUN      the runtime's run dir (absolute; everything of the runtime lives below it)
#   NAME     CNI network name; BRIDGE, SUBNET its bridge and /24
#   DAEMON_CG  the cgroup (absolute, below /noded-bench-daemons) the daemon and the helpers it forks run in
#   MARKER   regex of iptables rules this runtime's pods add (network name, bridge, subnet)
# and uses: bench_registry, write_conflist, start_in_cgroup, shared_join, stop_run, static_masq_add, noded_masq_del.
#
# Masquerade: the network list has "ipMasq": false (hack/cni/10-noded.conflist) and each runtime's pod subnet gets
# one static masquerade rule (noded: cni.masquerade_subnets; containerd: static_masq_add, as an installer would).
# BENCH_CNI_MASQ=pod renders "ipMasq": true instead (the bridge plugin's chain per pod, as before) and makes no
# static rule, to compare the two.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin:${PATH}"
RUNC=${BENCH_RUNC:-/usr/local/sbin/runc}
REG_PORT=${BENCH_REGISTRY_PORT:-5009}
REG_DIR=${BENCH_REGISTRY_DIR:-/var/tmp/noded-bench-registry}
MIRROR=http://127.0.0.1:$REG_PORT
POD_CG=${BENCH_CGROUP_PARENT:-/noded-bench}
CNI_MASQ=${BENCH_CNI_MASQ:-static}
case $CNI_MASQ in static | pod) ;; *) echo "bench: BENCH_CNI_MASQ must be static or pod" >&2; exit 1 ;; esac
# Shared by every bench runtime on the machine: portmap's CNI-HOSTPORT-* chains are shared by all networks, so
# the last runtime to stop removes those that did not exist when the first one started (shared_join/_leave).
SHARED=${BENCH_SHARED_DIR:-/run/noded-bench-shared}

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
	local podmasq=
	[ "$CNI_MASQ" = pod ] && podmasq=--pod-masq
	"$REPO/hack/cni/render-conflist.sh" $podmasq "$NAME" "$BRIDGE" "$SUBNET" "$RUN/cni/ipam" >"$1/10-$NAME.conflist"
}

# static_masq_add: the rule noded makes for cni.masquerade_subnets (cni/masquerade.go), for a runtime that does
# not make it: chain NBMASQ-BRIDGE (no masquerade to multicast; -s SUBNET ! -d SUBNET -j MASQUERADE), jumped to once
# from POSTROUTING, in one transaction. Nothing with BENCH_CNI_MASQ=pod.
static_masq_add() {
	local c=NBMASQ-$BRIDGE
	[ "$CNI_MASQ" = static ] || return 0
	static_masq_del
	printf '*nat\n:%s - [0:0]\n-A %s -d 224.0.0.0/4 -j RETURN\n-A %s -s %s ! -d %s -m comment --comment "bench: masquerade %s" -j MASQUERADE\n-A POSTROUTING -m comment --comment "bench: masquerade %s" -j %s\nCOMMIT\n' \
		"$c" "$c" "$c" "$SUBNET" "$SUBNET" "$SUBNET" "$SUBNET" "$c" | iptables-restore -w --noflush
}

# static_masq_del: removes static_masq_add's chain and its jumps, if there.
static_masq_del() {
	local c=NBMASQ-$BRIDGE save
	save=$(iptables-save -t nat)
	grep -q "^:$c " <<<"$save" || return 0
	{
		echo '*nat'
		grep -- "^-A POSTROUTING .*-j $c\$" <<<"$save" | sed 's/^-A/-D/'
		echo "-F $c"
		echo "-X $c"
		echo COMMIT
	} | iptables-restore -w --noflush
}

# noded_masq_del SUBNET: removes noded's masquerade rule of SUBNET from its chain NODED-MASQ, and the chain and its
# jump when no other subnet's rule (another noded's) is left in it. noded keeps the rule across restarts on purpose;
# the bench stop does not.
noded_masq_del() {
	local c=NODED-MASQ mine="--comment \"noded: masquerade $1\"" save left
	save=$(iptables-save -t nat)
	grep -q "^:$c " <<<"$save" || return 0
	left=$(grep "^-A $c " <<<"$save" | grep -vF -- "$mine" | grep -vF -- '--comment "noded: no masquerade to multicast"' || true)
	{
		echo '*nat'
		if [ -n "$left" ]; then
			grep "^-A $c " <<<"$save" | grep -F -- "$mine" | sed 's/^-A/-D/'
		else
			grep -- "^-A POSTROUTING .*-j $c\$" <<<"$save" | sed 's/^-A/-D/'
			echo "-F $c"
			echo "-X $c"
		fi
		echo COMMIT
	} | iptables-restore -w --noflush
}

# shared_join: registers this runtime (RUN, with its daemon.pid) as a user of the shared iptables chains; the
# first user snapshots them (SHARED/baseline). Under flock SHARED/lock.
shared_join() {
	mkdir -p "$SHARED/users"
	(
		flock 9
		shared_prune
		if [ -z "$(ls -A "$SHARED/users")" ]; then
			rm -rf "$SHARED/baseline"
			"$REPO/hack/critest/ipt-undo.sh" snapshot "$SHARED/baseline"
		fi
		echo "$RUN" >"$SHARED/users/$(echo "$RUN" | md5sum | cut -c1-16)"
	) 9>"$SHARED/lock"
}

# shared_leave: unregisters RUN; the last user removes the shared chains (portmap's CNI-HOSTPORT-*) new since the
# baseline that nobody maps ports through (hack/critest/ipt-undo.sh, IPT_UNDO_SHARED=only).
shared_leave() {
	[ -d "$SHARED/users" ] || return 0
	(
		flock 9
		rm -f "$SHARED/users/$(echo "$RUN" | md5sum | cut -c1-16)"
		shared_prune
		if [ -z "$(ls -A "$SHARED/users")" ] && [ -d "$SHARED/baseline" ]; then
			IPT_UNDO_SHARED=only "$REPO/hack/critest/ipt-undo.sh" undo "$SHARED/baseline" '^$'
			rm -rf "$SHARED/baseline"
		fi
	) 9>"$SHARED/lock"
}

# shared_prune: drops users whose daemon is gone (a run killed before its stop).
shared_prune() {
	local f r pid
	for f in "$SHARED"/users/*; do
		[ -f "$f" ] || continue
		r=$(cat "$f")
		pid=$(cat "$r/daemon.pid" 2>/dev/null || true)
		if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then rm -f "$f"; fi
	done
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
	shared_join
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
# rules the run added (hack/critest/ipt-undo.sh with MARKER, leaving the shared portmap chains to shared_leave),
# the static masquerade rule of SUBNET (both kinds: the run may be noded or containerd) and the cgroups.
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
	noded_masq_del "$SUBNET"
	static_masq_del
	[ -d "$RUN/iptables" ] && IPT_UNDO_SHARED=keep "$REPO/hack/critest/ipt-undo.sh" undo "$RUN/iptables" "$MARKER"
	shared_leave
	remove_cg "$DAEMON_CG"
	rmdir $(cgroup_dirs /noded-bench-daemons) 2>/dev/null
	rm -f "$RUN/daemon.pid"
	set -e
}
