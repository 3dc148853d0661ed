#!/usr/bin/env bash
# Runs the CRI conformance suite (critest from cri-tools) against a freshly built noded.
#
#   hack/critest/run.sh [critest flags...]
#   e.g. hack/critest/run.sh --ginkgo.focus='PodSandbox' --ginkgo.skip='Networking'
#   hack/critest/run.sh --hold     set everything up, run no tests, keep noded up until interrupted
#                                  (use crictl --config /var/tmp/noded-critest/crictl.yaml ...)
#
# critest is not built here: install cri-tools' critest yourself and point CRITEST at it, or put it in PATH.
# Must run as root. Everything lives under a run dir that is wiped at the start (an empty image store:
# tags left from an earlier run make image specs fail):
#   - a local registry (hack/registry-start.sh) holding the critest image set (hack/imagebuilder --set critest),
#     which noded uses as the mirror of every registry critest pulls from;
#   - a CNI network "noded-critest" on bridge nodedct0, 10.253.0.0/24 (host-local state in the run dir);
#   - noded with cgroup_driver cgroupfs and cgroup parent /noded-critest.
# Whatever happens, the exit trap stops noded, kills leftover containers and conmons of the run, unmounts
# everything under the run dir, deletes the bridge, the iptables rules and chains the run added, new SysV
# shared-memory segments, the /noded-critest cgroups, and stops the registry if this script started it.
#
# Environment:
#   CRITEST               critest binary (default: critest in PATH)
#   NODED_CRITEST_DIR     run dir (default /var/tmp/noded-critest); noded.log and critest.log stay there
#   CRITEST_REGISTRY_PORT registry port (default 5000)
#   CRITEST_REGISTRY_DIR  registry storage, kept between runs (default /var/tmp/noded-critest-registry)
#   CRITEST_KEEP_IMAGES=1 skip pushing the image set (the registry already has it)
#   CGO_ENABLED           for the go build of noded (default 0, as hack/run.sh: the pod init runs the noded
#                         binary inside an empty rootfs, so it must be static); GOFLAGS is passed on as usual
# Exit status: critest's, or 1 when setting up failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=../lib/cleanup.sh
. hack/lib/cleanup.sh
REPO=$(pwd)
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin:${PATH}"

CRITEST=${CRITEST:-$(command -v critest || true)}
if [ -z "$CRITEST" ] || [ ! -x "$CRITEST" ]; then
	echo "run.sh: critest not found: set CRITEST=/path/to/critest or put it in PATH" >&2
	echo "        (build it from cri-tools outside this repo: 'make critest' in a cri-tools checkout)" >&2
	exit 1
fi
[ "$(id -u)" = 0 ] || { echo "run.sh: must run as root" >&2; exit 1; }

RUN=${NODED_CRITEST_DIR:-/var/tmp/noded-critest}
REG_PORT=${CRITEST_REGISTRY_PORT:-5000}
REG_DIR=${CRITEST_REGISTRY_DIR:-/var/tmp/noded-critest-registry}
ROOT=$RUN/root
STATE=$RUN/state
SOCK=$RUN/noded.sock
BRIDGE=nodedct0
SUBNET=10.253.0.0/24
NETNAME=noded-critest
CGPARENT=noded-critest
RUNC=$(command -v runc)
RUNC_ROOT=$STATE/runtimes/runc
MARKER='noded-critest|nodedct0|10\.253\.0\.'
case $RUN in /*) ;; *) echo "run.sh: NODED_CRITEST_DIR must be absolute" >&2; exit 1 ;; esac
[ "$RUN" != / ] || exit 1

# One run at a time: the bridge, subnet and cgroup names are fixed.
mkdir -p "$(dirname "$RUN")"
exec 9>"$RUN.lock"
flock -n 9 || { echo "run.sh: another run holds $RUN.lock" >&2; exit 1; }

log() { echo "== $*" >&2; }

NODED_PID=
CRITEST_PID=
REG_STARTED=
SNAP=
IPCS_BEFORE=
TEST_SLICE_BEFORE=$(ls -d /sys/fs/cgroup/*/test.slice 2>/dev/null | tr '\n' ' ' || true)

# shm_ids: ids of the SysV shared-memory segments that exist now.
shm_ids() { ipcs -m 2>/dev/null | awk '$2 ~ /^[0-9]+$/ { print $2 }' | sort; }

# stop_pid PID: SIGTERM, wait up to $2 seconds, then SIGKILL.
stop_pid() {
	local pid=$1 wait=${2:-15} i=0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -ge $((wait * 10)) ]; then
			echo "run.sh: pid $pid ignored SIGTERM for ${wait}s, killing" >&2
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	wait "$pid" 2>/dev/null || true
}

# run_procs: PIDs of processes started for this run that are not in its cgroups: noded, conmons and
# runc/CNI invocations (their command lines name the run's state or root dir).
run_procs() {
	local d p cmd exe
	for d in /proc/[0-9]*; do
		p=${d#/proc/}
		[ "$p" != $$ ] || continue
		exe=$(readlink "$d/exe" 2>/dev/null || true)
		cmd=$( { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null || true)
		if [ "$exe" = "$RUN/noded" ]; then echo "$p"; continue; fi
		case "$cmd" in *"$STATE/"* | *"$ROOT/"* | *"$SOCK"*) echo "$p" ;; esac
	done
	return 0
}

# cgroup_procs: PIDs in the run's cgroups (every hierarchy): container processes, including those of
# host-PID containers that runc kill on the init process does not reach.
cgroup_procs() {
	find /sys/fs/cgroup/*/"$CGPARENT" /sys/fs/cgroup/"$CGPARENT" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u || true
}

# kill_leftovers: containers in runc's state dir of this run, then any process referring to the run dir.
kill_leftovers() {
	local id p pids try f
	# A frozen (paused) cgroup would hold SIGKILL back.
	for f in $(find /sys/fs/cgroup/freezer/"$CGPARENT" -name freezer.state 2>/dev/null); do
		echo THAWED >"$f" 2>/dev/null || true
	done
	if [ -d "$RUNC_ROOT" ]; then
		for id in $("$RUNC" --root "$RUNC_ROOT" list -q 2>/dev/null); do
			"$RUNC" --root "$RUNC_ROOT" kill "$id" KILL 2>/dev/null || true
			"$RUNC" --root "$RUNC_ROOT" delete --force "$id" 2>/dev/null || true
		done
	fi
	for try in 1 2 3; do
		pids=$(cgroup_procs; run_procs) || true
		[ -n "$pids" ] || break
		for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
		sleep 0.3
	done
}

# teardown_host: removes what a run leaves on the host outside iptables (safe to repeat).
teardown_host() {
	kill_leftovers
	unmount_under "$RUN"
	local veth
	for veth in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
		ip link del "$veth" 2>/dev/null || true
	done
	ip link del "$BRIDGE" 2>/dev/null || true
	local cg
	for cg in /sys/fs/cgroup/*/"$CGPARENT" /sys/fs/cgroup/"$CGPARENT"; do remove_cgroup "$cg"; done
	# critest puts pods under /test.slice when RuntimeConfig fails; remove those this run created.
	for cg in /sys/fs/cgroup/*/test.slice; do
		[ -d "$cg" ] || continue
		case " $TEST_SLICE_BEFORE " in *" $cg "*) ;; *) remove_cgroup "$cg" ;; esac
	done
}

cleanup() {
	local rc=$? new id
	trap - EXIT INT TERM
	set +e
	log "cleaning up"
	[ -z "$CRITEST_PID" ] || stop_pid "$CRITEST_PID" 5
	[ -z "$NODED_PID" ] || stop_pid "$NODED_PID" 20
	teardown_host
	if [ -n "$SNAP" ]; then "$REPO/hack/critest/ipt-undo.sh" undo "$SNAP" "$MARKER"; fi
	if [ -n "$IPCS_BEFORE" ]; then
		new=$(shm_ids | comm -13 "$IPCS_BEFORE" -)
		for id in $new; do
			# Only segments nobody is attached to.
			if [ "$(ipcs -m | awk -v id="$id" '$2 == id { print $6 }')" = 0 ]; then
				ipcrm -m "$id" && echo "run.sh: removed shm segment $id" >&2
			fi
		done
	fi
	if [ -n "$REG_STARTED" ]; then "$REPO/hack/registry-stop.sh" "$REG_PORT" "$REG_DIR" >&2; fi
	rm -f "$SOCK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- start from a clean run dir (after tearing down whatever an interrupted earlier run left)
log "preparing $RUN"
teardown_host
if [ -d "$RUN" ]; then rm -rf --one-file-system "$RUN"; fi
mkdir -p "$RUN" "$ROOT" "$STATE" "$RUN/cni/net.d" "$RUN/cni/ipam"
SNAP=$RUN/iptables
"$REPO/hack/critest/ipt-undo.sh" snapshot "$SNAP"
IPCS_BEFORE=$RUN/ipcs.before
shm_ids >"$IPCS_BEFORE"

# --- registry with the critest images
# registry-start.sh reuses a registry of ours still running from an interrupted run, and refuses when
# something else answers on the port.
"$REPO/hack/registry-start.sh" "$REG_PORT" "$REG_DIR" >&2 ||
	{ echo "run.sh: no registry on port $REG_PORT (set CRITEST_REGISTRY_PORT to use another)" >&2; exit 1; }
REG_STARTED=1
if [ "${CRITEST_KEEP_IMAGES:-}" != 1 ]; then
	log "pushing the critest image set to 127.0.0.1:$REG_PORT"
	go run ./hack/imagebuilder --registry "127.0.0.1:$REG_PORT" --set critest >&2
fi

# --- noded configuration
"$REPO/hack/cni/render-conflist.sh" --pod-masq "$NETNAME" "$BRIDGE" "$SUBNET" "$RUN/cni/ipam" >"$RUN/cni/net.d/10-$NETNAME.conflist"
{
	echo 'default_runtime = "runc"'
	echo 'cgroup_driver = "cgroupfs"'
	echo "cgroup_parent = \"/$CGPARENT\""
	echo
	echo '[runtimes.runc]'
	echo "path = \"$RUNC\""
	echo
	echo '[cni]'
	echo "conf_dir = \"$RUN/cni/net.d\""
	echo 'bin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]'
	for h in registry.k8s.io k8s.gcr.io gcr.io docker.io quay.io public.ecr.aws; do
		echo
		echo "[registry.hosts.\"$h\"]"
		echo "mirrors = [{ url = \"http://127.0.0.1:$REG_PORT\" }]"
	done
} >"$RUN/config.toml"

# --- build and start noded
log "building noded"
CGO_ENABLED=${CGO_ENABLED:-0} go build -o "$RUN/noded" ./cmd/noded
log "starting noded (log $RUN/noded.log)"
"$RUN/noded" --config "$RUN/config.toml" --root "$ROOT" --state "$STATE" --listen "$SOCK" \
	>"$RUN/noded.log" 2>&1 </dev/null &
NODED_PID=$!
for i in $(seq 1 300); do
	[ -S "$SOCK" ] && break
	if ! kill -0 "$NODED_PID" 2>/dev/null; then
		echo "run.sh: noded exited during start-up; last lines of $RUN/noded.log:" >&2
		tail -n 30 "$RUN/noded.log" >&2
		exit 1
	fi
	sleep 0.1
done
[ -S "$SOCK" ] || { echo "run.sh: noded did not create $SOCK within 30s" >&2; exit 1; }

cat >"$RUN/crictl.yaml" <<EOF
runtime-endpoint: unix://$SOCK
image-endpoint: unix://$SOCK
EOF
if [ "${1:-}" = --hold ]; then
	log "noded (pid $NODED_PID) is up; crictl --config $RUN/crictl.yaml ...; interrupt (or kill $$) to clean up"
	while kill -0 "$NODED_PID" 2>/dev/null; do sleep 1; done
	echo "run.sh: noded exited" >&2
	exit 1
fi

# --- critest
log "running $CRITEST $*"
set +e
"$CRITEST" --config "$RUN/crictl.yaml" --runtime-endpoint "unix://$SOCK" --image-endpoint "unix://$SOCK" \
	--ginkgo.no-color "$@" > >(tee "$RUN/critest.log") 2>&1 &
CRITEST_PID=$!
wait "$CRITEST_PID"
rc=$?
CRITEST_PID=
set -e
log "critest exited with status $rc (output $RUN/critest.log, noded log $RUN/noded.log)"
exit "$rc"
