#!/usr/bin/env bash
# Runs the Kubernetes node e2e suite (k8s.io/kubernetes/test/e2e_node, v1.37.2) against a private noded, or
# against containerd 2.4.2 + runc as the anchor, with a real kubelet and the suite's own API server, etcd and
# namespace controller.
#
#   hack/e2e-node/run.sh [--runtime noded|containerd] [--nodes N] [--focus RE] [--skip RE]
#                        [--no-serial] [--serial-only] [--timeout DUR] [--seed N] [--isolate] [--no-host-skips]
#                        [-- extra e2e_node.test flags]
# --seed (default 1) fixes ginkgo's spec order, so that two runtimes run the specs in the same order (and a pass
# cut short by --timeout covers the same specs on both).
#
# Default: --runtime noded --nodes 8 (as upstream's node e2e jobs), focus '\[NodeConformance\]', skip '\[Flaky\]|\[Slow\]|\[Serial\]' (as the
# upstream containerd node e2e job), then a second pass, on one ginkgo node, of the '\[Serial\]' specs that match
# the focus (not '\[Flaky\]|\[Slow\]'). --focus/--skip replace the first pass's regexps (the serial pass keeps
# the focus). Prints "P passed, F failed, S skipped" and every failure and skip with its one-line reason; the
# JUnit reports, kubelet.log and the runtime's log stay in the run dir.
#
# What it does (root only, Debian 12; hack/install-deps.sh must have run):
#   - hack/k8s/build.sh: kubelet, e2e_node.test, ginkgo and agnhost of v1.37.2 (cached in /var/cache/noded-k8s);
#     with --runtime containerd also containerd and its runc shim v2.4.2 (go install, cached in
#     /var/cache/noded-e2e-containerd);
#   - a local registry (hack/registry-start.sh) with the suite's images built here from Debian packages
#     (hack/imagebuilder --set e2enode: agnhost with bash, curl, nc, ip, dig, socat, ..., busybox, nginx, pause,
#     nonewprivs, nonroot), the mirror of registry.k8s.io, gcr.io, docker.io and quay.io for the runtime;
#   - the runtime on its own socket, root, state, CNI network (hack/cni/render-conflist.sh; bridge e2e{n,c}s<slot>,
#     10.(230+slot).{200,201}.0/24), runc /usr/local/sbin/runc, in cgroup /e2e<slot>-<runtime>-runtime;
#   - kubelet (started by the suite) with cgroupfs, failCgroupV1: false, cgroupRoot /e2e<slot>-<runtime>, node IP
#     and addresses 127.0.0.1, oomScoreAdj/maxOpenFiles as this process has them (no CAP_SYS_RESOURCE), run as a
#     unit of hack/e2e-node/systemd-shim.sh (the suite's systemd-run and systemctl here: PID 1 is not systemd), so
#     that the specs that restart kubelet or change its configuration can stop and restart it;
# Whatever happens, the exit trap stops the suite, kubelet and the runtime, kills what is left in the run's cgroups,
# unmounts the run dir and /var/lib/kubelet, deletes the bridge, the iptables rules the run added, the cgroups,
# SysV shm segments the run created, /var/lib/kubelet (when it did not exist before), restores the sysctls kubelet
# rewrites, and stops the registry.
#
# The suite binds fixed ports (kubelet 10250/10255/10248, API server 6443, etcd 2379): one run per machine at a
# time (a lock in /var/tmp guards it; a second run fails at once). Its kubelet also writes host state that every
# kubelet shares whatever its root dir: /var/lib/kubelet (device-plugins), /var/log/containers and sysctls. The
# integration tests' kubelet (integration/framework/kubelet.go, TestKubelet*) writes the same, under the host lock
# /run/noded-test-kubelet.lock; this script holds that lock too (flock(2) on the same file, as the framework's
# lockFile), waiting for a test kubelet to finish, from before it touches the host until it exits, so that the
# two never overlap. The processes it starts inherit the lock (whatever of the run survives it still holds it),
# except the registry, which touches no kubelet state.
#
# --isolate: the run re-executes itself in network, mount and IPC namespaces of its own (unshare), with loopback
# up, a default route through a veth pair of its own (the API server picks its address from it), its own registry
# inside, and private bind mounts over /var/lib/kubelet, /var/log/pods and /var/log/containers (from
# /var/tmp/noded-e2e<slot>-<runtime>-host). Its lock is per slot and it does not take the host kubelet lock, so
# two runs (say noded on slot 7 and containerd on slot 8) go at once on one machine and see the same load. What
# stays shared: the cgroup tree (names carry the slot), the kernel sysctls kubelet sets (the same values in both)
# and the CPUs.
#
# Environment:
#   NODED_TEST_SLOT    0-9 (default 0): names, subnets and the registry port (5010+slot)
#   E2E_NODE_DIR       run dir (default /var/tmp/noded-e2e<slot>-<runtime>), wiped at the start
#   E2E_REGISTRY_PORT  registry port; E2E_REGISTRY_DIR its storage (default /var/tmp/noded-e2e<slot>-registry)
#   E2E_KEEP_IMAGES=1  do not push the image set again
#   E2E_K8S_BIN        a directory with kubelet, e2e_node.test, ginkgo and agnhost built elsewhere (default: build)
set -euo pipefail
ORIG_ARGS=("$@")
SELF=$(readlink -f "$0")
cd "$(dirname "$0")/../.."
# shellcheck source=hack/lib/cleanup.sh
. hack/lib/cleanup.sh
# shellcheck source=hack/lib/kubelet.sh
. hack/lib/kubelet.sh
# shellcheck source=hack/lib/containerd.sh
. hack/lib/containerd.sh
REPO=$(pwd)
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin:${PATH}"
[ "$(id -u)" = 0 ] || { echo "run.sh: must run as root" >&2; exit 1; }

RUNTIME=noded
NODES=8
FOCUS='\[NodeConformance\]'
SKIP='\[Flaky\]|\[Slow\]|\[Serial\]'
SERIAL_SKIP='\[Flaky\]|\[Slow\]'
# Host limits: specs that cannot pass on this host for either runtime, for the reason given (checked against the
# spec's source and its failure on both runtimes). Pairs of a regexp (Go RE2 and Python re alike) over the full spec
# name and the reason; both passes skip them, for every runtime alike, and the summary lists each as
# skipped-for-host with its reason. --no-host-skips runs them.
HOST_SKIPS=(
	'Device Plugin .*Can schedule a pod with a restartable init container'
	'the sample device plugin image (registry.k8s.io/e2e-test-images/sample-device-plugin:1.7) is not in the offline image set: the BeforeEach waits 5 min for its pod'
	'ImageGarbageCollect .*when ImageMaximumGCAge is set'
	'the AfterEach pre-pulls the suite whole image list (PrePullAllImages: gcr.io/cadvisor, perl, node-perf, etcd, node-problem-detector, sample-device-plugin), which the offline image set lacks, after a 6-min GC wait'
	'when recreating a static pod it should launch successfully even if it temporarily failed termination due to volume failing to unmount'
	'needs an NFS server pod (e2e-test-images/volume/nfs:1.6.0, not in the offline image set) and NFS in the kernel and mount.nfs on the host (none here); 5-min waits'
)
PASS1=1
PASS2=1
TIMEOUT=3h
ISOLATE=0
SEED=${E2E_SEED:-1}
while [ $# -gt 0 ]; do
	case $1 in
	--runtime) RUNTIME=$2; shift 2 ;;
	--nodes) NODES=$2; shift 2 ;;
	--focus) FOCUS=$2; shift 2 ;;
	--skip) SKIP=$2; shift 2 ;;
	--no-serial) PASS2=0; shift ;;
	--serial-only) PASS1=0; shift ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--seed) SEED=$2; shift 2 ;;
	--no-host-skips) HOST_SKIPS=(); shift ;;
	--isolate) ISOLATE=1; shift ;;
	--) shift; break ;;
	*) echo "run.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
	esac
done
EXTRA=("$@")
case $RUNTIME in noded | containerd) ;; *) echo "run.sh: --runtime noded|containerd" >&2; exit 2 ;; esac

SLOT=${NODED_TEST_SLOT:-0}
case $SLOT in [0-9]) ;; *) SLOT=0 ;; esac
RUN=${E2E_NODE_DIR:-/var/tmp/noded-e2e$SLOT-$RUNTIME}
REG_PORT=${E2E_REGISTRY_PORT:-$((5010 + SLOT))}
REG_DIR=${E2E_REGISTRY_DIR:-/var/tmp/noded-e2e$SLOT-registry}
case $RUN in /*) ;; *) echo "run.sh: E2E_NODE_DIR must be absolute" >&2; exit 1 ;; esac
[ "$RUN" != / ] || exit 1
ROOT=$RUN/root
STATE=$RUN/state
SOCK=$RUN/$RUNTIME.sock
REPORT=$RUN/report
WORK=$RUN/work
NETNAME=e2e$SLOT-$RUNTIME
if [ "$RUNTIME" = noded ]; then
	BRIDGE=e2ens$SLOT
	SUBNET=10.$((230 + SLOT)).200.0/24
else
	BRIDGE=e2ecs$SLOT
	SUBNET=10.$((230 + SLOT)).201.0/24
fi
CGROOT=e2e$SLOT-$RUNTIME                 # kubelet's cgroupRoot (pods below CGROOT/kubepods)
CGRUNTIME=e2e$SLOT-$RUNTIME-runtime      # the runtime daemon
CGKUBELET=e2e$SLOT-$RUNTIME-kubelet      # kubelet itself
NODE_NAME=e2e$SLOT-$RUNTIME-node
RUNC=/usr/local/sbin/runc
[ -x "$RUNC" ] || RUNC=$(command -v runc)
MARKER="$NETNAME|$BRIDGE|${SUBNET%.0/24}\\."
CTD_VERSION=v2.4.2
CTD_BIN=${E2E_CONTAINERD_CACHE:-/var/cache/noded-e2e-containerd}/$CTD_VERSION/bin
SYSCTLS="vm.overcommit_memory kernel.panic kernel.panic_on_oops"

# fetch_binaries: kubelet, e2e_node.test, ginkgo and agnhost (hack/k8s/build.sh), porter's certificate dir and,
# for containerd, its build: the Go module proxy on a cold machine (sets BIN and PORTER).
fetch_binaries() {
	if [ -n "${E2E_K8S_BIN:-}" ]; then
		BIN=$E2E_K8S_BIN
	else
		BIN=$("$REPO/hack/k8s/build.sh" --print kubelet e2e_node ginkgo agnhost)
	fi
	PORTER=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@${K8S_VERSION:-v1.37.2}" |
		sed -n 's/.*"Dir": "\(.*\)".*/\1/p')/test/images/agnhost/porter
	if [ "$RUNTIME" = containerd ]; then containerd_build "$CTD_VERSION" "$CTD_BIN"; fi
}

mkdir -p /var/tmp
if [ "$ISOLATE" = 1 ] && [ -z "${E2E_ISOLATED:-}" ]; then
	# The isolated namespace has no way out: what needs the network (the Go module proxy, Debian's mirror for the
	# image set's packages) runs here first. The image set is built once without pushing (--dry-run), which fills
	# the imagebuilder's cache, so that the build inside, which pushes to the run's own registry, finds every .deb.
	echo "== $(date -u +%H:%M:%S) fetching binaries and the image set's packages before isolating" >&2
	fetch_binaries
	if [ "${E2E_KEEP_IMAGES:-}" != 1 ]; then
		go run ./hack/imagebuilder --dry-run --set e2enode --agnhost "$BIN/agnhost" --porter "$PORTER" >/dev/null
	fi
	# --mount makes mount propagation private: nothing mounted in the run reaches the host.
	exec env E2E_ISOLATED=1 unshare --net --mount --ipc -- "$SELF" "${ORIG_ARGS[@]}"
fi
LOCK=/var/tmp/noded-e2e-node.lock
if [ -n "${E2E_ISOLATED:-}" ]; then
	LOCK=/var/tmp/noded-e2e-node-slot$SLOT.lock
	ip link set lo up
	# The suite's API server wants a default route to pick its address from: a veth pair inside the namespace
	# (no dummy module on this kernel) with 198.18.<slot>.2 and a default route through it.
	ip link add "e2ed$SLOT" type veth peer name "e2ep$SLOT"
	ip addr add "198.18.$SLOT.2/24" dev "e2ed$SLOT"
	ip link set "e2ed$SLOT" up
	ip link set "e2ep$SLOT" up
	ip route add default via "198.18.$SLOT.1" dev "e2ed$SLOT"
	HOSTDIRS=/var/tmp/noded-e2e$SLOT-$RUNTIME-host
	rm -rf --one-file-system "$HOSTDIRS"
	# the mount points this run makes on the host (empty; removed again at the end)
	MADE_POINTS=
	for d in /var/lib/kubelet /var/log/pods /var/log/containers; do [ -e "$d" ] || MADE_POINTS="$MADE_POINTS $d"; done
	mkdir -p "$HOSTDIRS/kubelet" "$HOSTDIRS/pod-logs" "$HOSTDIRS/container-logs" /var/lib/kubelet /var/log/pods \
		/var/log/containers
	mount --bind "$HOSTDIRS/kubelet" /var/lib/kubelet
	mount --bind "$HOSTDIRS/pod-logs" /var/log/pods
	mount --bind "$HOSTDIRS/container-logs" /var/log/containers
fi
exec 8>"$LOCK"
flock -n 8 || { echo "run.sh: another node e2e run holds $LOCK (fixed kubelet ports)" >&2; exit 1; }
if [ -z "${E2E_ISOLATED:-}" ]; then
	KUBELET_HOST_LOCK=/run/noded-test-kubelet.lock # integration/framework/kubelet.go's kubeletHostLock
	exec 9>>"$KUBELET_HOST_LOCK"
	if ! flock -n 9; then
		echo "run.sh: waiting for $KUBELET_HOST_LOCK (a test kubelet runs)" >&2
		flock 9
	fi
fi

log() { echo "== $(date -u +%H:%M:%S) $*" >&2; }

RT_PID=
GINKGO_PID=
REG_STARTED=
SNAP=
IPCS_BEFORE=
SYSCTL_SAVED=
KUBELET_DIR_EXISTED=1
[ -e /var/lib/kubelet ] || KUBELET_DIR_EXISTED=0

shm_ids() { ipcs -m 2>/dev/null | awk '$2 ~ /^[0-9]+$/ { print $2 }' | sort; }

# shellcheck disable=SC2317 # called from cleanup, the EXIT trap
stop_pid() {
	local pid=$1 wait=${2:-15} i=0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		if [ "$i" -ge $((wait * 10)) ]; then
			echo "run.sh: pid $pid ignored SIGTERM for ${wait}s, killing" >&2
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	wait "$pid" 2>/dev/null || true
}

# cg_dirs NAME: NAME's directory in every cgroup hierarchy (v1 controllers and the unified one).
cg_dirs() {
	findmnt -n -l -t cgroup,cgroup2 -o TARGET 2>/dev/null | while read -r m; do echo "$m/$1"; done
}
cg_list() { cg_dirs "$1" | sort -u; }

# cg_make NAME: creates cgroup NAME in every hierarchy (cpuset: with its parent's cpus and mems).
cg_make() {
	local d
	for d in $(cg_list "$1"); do
		mkdir -p "$d" 2>/dev/null || continue
		if [ -f "$d/cpuset.cpus" ] && [ -z "$(cat "$d/cpuset.cpus")" ]; then
			cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus" 2>/dev/null || true
			cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems" 2>/dev/null || true
		fi
	done
}

# cg_join NAME PID: moves PID into cgroup NAME of every hierarchy.
cg_join() {
	local d
	for d in $(cg_list "$1"); do
		if [ -f "$d/cgroup.procs" ]; then echo "$2" >"$d/cgroup.procs" 2>/dev/null || true; fi
	done
}

cgroup_procs() {
	local n d
	for n in "$CGROOT" "$CGRUNTIME" "$CGKUBELET"; do
		for d in $(cg_list "$n"); do
			[ -d "$d" ] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
		done
	done | sort -u || true
}

# run_procs: processes of this run outside its cgroups: the runtime, its helpers, kubelet, ginkgo, the suite.
run_procs() {
	local d p cmd
	for d in /proc/[0-9]*; do
		p=${d#/proc/}
		[ "$p" != $$ ] || continue
		cmd=$( { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null || true)
		case "$cmd" in *"$RUN/"* | *"$SOCK"*) echo "$p" ;; esac
	done
	return 0
}

kill_leftovers() {
	local f id p pids rroot
	for f in $(cg_list "$CGROOT" | grep /freezer/ | while read -r d; do find "$d" -name freezer.state 2>/dev/null; done); do
		echo THAWED >"$f" 2>/dev/null || true
	done
	for rroot in "$STATE/runtimes/runc" "$STATE/runc"; do
		[ -d "$rroot" ] || continue
		for id in $("$RUNC" --root "$rroot" list -q 2>/dev/null); do
			"$RUNC" --root "$rroot" kill "$id" KILL 2>/dev/null || true
			"$RUNC" --root "$rroot" delete --force "$id" 2>/dev/null || true
		done
	done
	for _ in 1 2 3 4; do
		pids=$(cgroup_procs; run_procs) || true
		[ -n "$pids" ] || break
		for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
		sleep 0.3
	done
}

teardown_host() {
	kill_leftovers
	if [ -n "${E2E_ISOLATED:-}" ]; then
		unmount_under /var/lib/kubelet below # keep the run's private /var/lib/kubelet
	else
		unmount_under /var/lib/kubelet
	fi
	unmount_under "$RUN"
	local veth cg n
	for veth in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
		ip link del "$veth" 2>/dev/null || true
	done
	ip link del "$BRIDGE" 2>/dev/null || true
	for n in "$CGROOT" "$CGRUNTIME" "$CGKUBELET"; do
		for cg in $(cg_list "$n"); do remove_cgroup "$cg"; done
	done
}

# shellcheck disable=SC2317 # the EXIT trap
cleanup() {
	local rc=$? new id s v
	trap - EXIT INT TERM
	set +e
	log "cleaning up"
	[ -z "$GINKGO_PID" ] || stop_pid "$GINKGO_PID" 30
	[ -z "$RT_PID" ] || stop_pid "$RT_PID" 20
	teardown_host
	if [ "$KUBELET_DIR_EXISTED" = 0 ] && [ -d /var/lib/kubelet ]; then
		rm -rf --one-file-system /var/lib/kubelet
	fi
	if [ -n "$SYSCTL_SAVED" ]; then
		while read -r s v; do sysctl -q -w "$s=$v" >/dev/null 2>&1 || true; done <"$SYSCTL_SAVED"
	fi
	if [ -n "$SNAP" ]; then "$REPO/hack/critest/ipt-undo.sh" undo "$SNAP" "$MARKER"; fi
	if [ -n "$IPCS_BEFORE" ]; then
		new=$(shm_ids | comm -13 "$IPCS_BEFORE" -)
		for id in $new; do
			if [ "$(ipcs -m | awk -v id="$id" '$2 == id { print $6 }')" = 0 ]; then
				ipcrm -m "$id" && echo "run.sh: removed shm segment $id" >&2
			fi
		done
	fi
	if [ -n "$REG_STARTED" ]; then "$REPO/hack/registry-stop.sh" "$REG_PORT" "$REG_DIR" >&2; fi
	rm -f "$SOCK"
	if [ -n "${E2E_ISOLATED:-}" ]; then
		umount /var/lib/kubelet /var/log/pods /var/log/containers 2>/dev/null || true
		rm -rf --one-file-system "$HOSTDIRS"
		# shellcheck disable=SC2086 # a list of paths without spaces
		[ -z "${MADE_POINTS:-}" ] || rmdir $MADE_POINTS 2>/dev/null || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- binaries (fetched before an isolated run leaves the host's network: see fetch_binaries)
log "Kubernetes binaries (hack/k8s/build.sh)"
fetch_binaries

# --- a clean run dir
log "preparing $RUN"
teardown_host
if [ -d "$RUN" ]; then rm -rf --one-file-system "$RUN"; fi
mkdir -p "$RUN" "$ROOT" "$STATE" "$RUN/cni/net.d" "$RUN/cni/ipam" "$REPORT" "$WORK" "$RUN/path"
SNAP=$RUN/iptables
"$REPO/hack/critest/ipt-undo.sh" snapshot "$SNAP"
IPCS_BEFORE=$RUN/ipcs.before
shm_ids >"$IPCS_BEFORE"
SYSCTL_SAVED=$RUN/sysctl.before
for s in $SYSCTLS; do echo "$s $(sysctl -n "$s")"; done >"$SYSCTL_SAVED"

# --- registry with the suite's images
"$REPO/hack/registry-start.sh" "$REG_PORT" "$REG_DIR" >&2 9>&- ||
	{ echo "run.sh: no registry on port $REG_PORT (set E2E_REGISTRY_PORT to use another)" >&2; exit 1; }
REG_STARTED=1
if [ "${E2E_KEEP_IMAGES:-}" != 1 ]; then
	log "pushing the e2enode image set to 127.0.0.1:$REG_PORT"
	go run ./hack/imagebuilder --registry "127.0.0.1:$REG_PORT" --set e2enode --agnhost "$BIN/agnhost" --porter "$PORTER" >"$RUN/images.txt"
fi
MIRRORED="registry.k8s.io k8s.gcr.io gcr.io docker.io quay.io"

# --- the runtime
"$REPO/hack/cni/render-conflist.sh" --pod-masq "$NETNAME" "$BRIDGE" "$SUBNET" "$RUN/cni/ipam" >"$RUN/cni/net.d/10-$NETNAME.conflist"
cg_make "$CGRUNTIME"
cg_make "$CGROOT"
cg_make "$CGKUBELET"
if [ "$RUNTIME" = noded ]; then
	{
		echo 'default_runtime = "runc"'
		echo 'cgroup_driver = "cgroupfs"'
		echo "cgroup_parent = \"/$CGROOT\""
		echo
		echo '[runtimes.runc]'
		echo "path = \"$RUNC\""
		echo
		echo '[runtimes.test-handler]' # the suite's preconfigured RuntimeClass handler (PodOverhead, RuntimeClass specs)
		echo "path = \"$RUNC\""
		echo
		echo '[cni]'
		echo "conf_dir = \"$RUN/cni/net.d\""
		echo 'bin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]'
		for h in $MIRRORED; do
			echo
			echo "[registry.hosts.\"$h\"]"
			echo "mirrors = [{ url = \"http://127.0.0.1:$REG_PORT\" }]"
		done
	} >"$RUN/config.toml"
	log "building noded"
	CGO_ENABLED=${CGO_ENABLED:-0} go build -o "$RUN/noded" ./cmd/noded
	log "starting noded (log $RUN/noded.log)"
	"$RUN/noded" --config "$RUN/config.toml" --root "$ROOT" --state "$STATE" --listen "$SOCK" \
		>"$RUN/noded.log" 2>&1 </dev/null &
	RT_PID=$!
	RT_LOG=$RUN/noded.log
else
	# shellcheck disable=SC2086 # MIRRORED is a list of hosts
	containerd_mirrors "$RUN/certs.d" "http://127.0.0.1:$REG_PORT" $MIRRORED
	CTD_ROOT=$ROOT CTD_STATE=$STATE CTD_SOCK=$SOCK CTD_OPT=$RUN/opt \
		CTD_SHIM=$CTD_BIN/containerd-shim-runc-v2 CTD_RUNC=$RUNC CTD_RUNC_ROOT=$STATE/runc \
		CTD_SANDBOX_IMAGE=registry.k8s.io/pause:3.10.2 CTD_CERTS_D=$RUN/certs.d CTD_HANDLERS=test-handler \
		CTD_CNI_CONF_DIR=$RUN/cni/net.d CTD_CNI_BIN_DIRS="/usr/lib/cni /opt/cni/bin" CTD_STREAM_ADDRESS=127.0.0.1 \
		containerd_config "$RUN/containerd.toml"
	log "starting containerd $CTD_VERSION (log $RUN/containerd.log)"
	"$CTD_BIN/containerd" --config "$RUN/containerd.toml" >"$RUN/containerd.log" 2>&1 </dev/null &
	RT_PID=$!
	RT_LOG=$RUN/containerd.log
fi
cg_join "$CGRUNTIME" "$RT_PID"
for i in $(seq 1 300); do
	[ -S "$SOCK" ] && break
	if ! kill -0 "$RT_PID" 2>/dev/null; then
		echo "run.sh: $RUNTIME exited during start-up; last lines of $RT_LOG:" >&2
		tail -n 30 "$RT_LOG" >&2
		exit 1
	fi
	sleep 0.1
done
[ -S "$SOCK" ] || { echo "run.sh: $RUNTIME did not create $SOCK within 30s" >&2; exit 1; }

# --- kubelet's base configuration (the suite adds its own settings over it)
cat >"$RUN/kubelet-base.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: true
cgroupRoot: /$CGROOT
enforceNodeAllocatable: []
oomScoreAdj: $(cat /proc/self/oom_score_adj)
maxOpenFiles: $(ulimit -Hn)
healthzBindAddress: 127.0.0.1
EOF
kubelet_test_thresholds >>"$RUN/kubelet-base.yaml"
KUBELET_FLAGS="--system-cgroups= --kubelet-cgroups=/$CGKUBELET --runtime-cgroups=/$CGRUNTIME"
# Isolated: name the node IP, or kubelet resolves the host name first, and DNS has no answer in the namespace
# (20 s of timeouts, past the CSINode start-up deadline: the node never gets Ready).
[ -z "${E2E_ISOLATED:-}" ] || KUBELET_FLAGS="$KUBELET_FLAGS --node-ip=198.18.$SLOT.2"

# The suite's host commands: a PATH of the host's /usr/bin and /bin, with, in front, a shim dir with
# - systemd-run and systemctl: hack/e2e-node/systemd-shim.sh. The suite runs kubelet through systemd-run whenever it
#   finds it, and its kubelet-restart specs (and every kubelet configuration change) stop and restart that unit with
#   systemctl; PID 1 here is not systemd. The shim keeps the unit (command, log, PID) in $RUN/units and runs
#   kubelet detached, so that it can be killed and restarted as the suite expects.
# - sudo: the suite runs ps, kill, cat and systemctl through sudo; the run is root and the host has no sudo.
for d in /usr/bin /bin; do
	[ -L "$d" ] && continue
	ln -s "$d"/* "$RUN/path/" 2>/dev/null || true
done
mkdir -p "$RUN/shim" "$RUN/units"
cp "$REPO/hack/e2e-node/systemd-shim.sh" "$RUN/shim/systemd-run"
cp "$REPO/hack/e2e-node/systemd-shim.sh" "$RUN/shim/systemctl"
printf '#!/bin/sh\nexec "$@"\n' >"$RUN/shim/sudo"
chmod 755 "$RUN/shim/systemd-run" "$RUN/shim/systemctl" "$RUN/shim/sudo"
# ginkgo runs only binaries named *.test; the suite looks for kubelet beside the path it was started as.
mkdir -p "$RUN/bin"
ln -s "$BIN/e2e_node" "$RUN/bin/e2e_node.test"
ln -s "$BIN/kubelet" "$RUN/bin/kubelet"
SUITE_PATH="$RUN/shim:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:$RUN/path"

# run_pass NAME FOCUS SKIP NODES: one ginkgo run of the suite; its JUnit report is $REPORT/junit_NAME.xml.
run_pass() {
	local name=$1 focus=$2 skip=$3 nodes=$4 start=$SECONDS rc
	log "pass $name: ginkgo --nodes=$nodes --focus='$focus' --skip='$skip' (log $RUN/$name.log)"
	mkdir -p "$REPORT/$name"
	set +e
	(
		cd "$WORK"
		exec env PATH="$SUITE_PATH" E2E_UNIT_DIR="$RUN/units" nice -n 10 "$BIN/ginkgo" --nodes="$nodes" --no-color --timeout="$TIMEOUT" --seed="$SEED" \
			--focus="$focus" --skip="$skip" --output-dir="$REPORT" --junit-report="junit_$name.xml" \
			"$RUN/bin/e2e_node.test" -- \
			--container-runtime-endpoint="unix://$SOCK" --image-service-endpoint="unix://$SOCK" \
			--kubelet-config-file="$RUN/kubelet-base.yaml" --kubelet-flags="$KUBELET_FLAGS" \
			--prepull-images=false --report-dir="$REPORT/$name" --node-name="$NODE_NAME" \
			"${EXTRA[@]}"
	) >"$RUN/$name.log" 2>&1 &
	GINKGO_PID=$!
	wait "$GINKGO_PID"
	rc=$?
	GINKGO_PID=
	set -e
	# ginkgo may prefix the report with the suite's directory name
	local f
	for f in "$REPORT"/*junit_"$name".xml; do
		[ -f "$f" ] && [ "$f" != "$REPORT/junit_$name.xml" ] && mv "$f" "$REPORT/junit_$name.xml"
	done
	echo "$name $((SECONDS - start))" >>"$RUN/walltime"
	log "pass $name: ginkgo exited with status $rc after $((SECONDS - start)) s"
	tail -n 5 "$RUN/$name.log" | sed 's/^/   /' >&2
	# kubelet leaves its pods running when it stops: remove them before the next pass.
	kill_leftovers_pods
	return 0
}

# kill_leftovers_pods: what kubelet left in its cgroup root (the runtime keeps running).
kill_leftovers_pods() {
	local p kpids
	kpids=$(for d in $(cg_list "$CGROOT"); do [ -d "$d" ] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -u)
	[ -z "$kpids" ] || log "pods left by kubelet: $(echo "$kpids" | wc -w) processes (kept for the runtime to stop)"
	for p in $(pgrep -f -- "--container-runtime-endpoint unix://$SOCK" || true); do kill -TERM "$p" 2>/dev/null || true; done
}

HOST_SKIP_RE=
: >"$RUN/host-skips.tsv"
for ((i = 0; i < ${#HOST_SKIPS[@]}; i += 2)); do
	HOST_SKIP_RE="$HOST_SKIP_RE${HOST_SKIP_RE:+|}${HOST_SKIPS[i]}"
	printf '%s\t%s\n' "${HOST_SKIPS[i]}" "${HOST_SKIPS[i + 1]}" >>"$RUN/host-skips.tsv"
done
with_host_skips() { echo "$1${HOST_SKIP_RE:+${1:+|}$HOST_SKIP_RE}"; }

REPORTS=()
ALL_START=$SECONDS
if [ "$PASS1" = 1 ]; then
	run_pass parallel "$FOCUS" "$(with_host_skips "$SKIP")" "$NODES"
	REPORTS+=("$REPORT/junit_parallel.xml")
fi
if [ "$PASS2" = 1 ]; then
	run_pass serial "(${FOCUS}).*\\[Serial\\]|\\[Serial\\].*(${FOCUS})" "$(with_host_skips "$SERIAL_SKIP")" 1
	REPORTS+=("$REPORT/junit_serial.xml")
fi

echo
echo "== node e2e on $RUNTIME ($NODE_NAME): $((SECONDS - ALL_START)) s wall ($(tr '\n' ' ' <"$RUN/walltime"))"
summary_rc=0
if [ "$PASS1" = 1 ]; then
	echo "-- pass 1 (focus '$FOCUS', skip '$SKIP'):"
	python3 "$REPO/hack/e2e-node/summarize.py" --host-skips "$RUN/host-skips.tsv" "$FOCUS" "$SKIP" "$REPORT/junit_parallel.xml" | tee "$RUN/summary_parallel.txt"
fi
if [ "$PASS2" = 1 ]; then
	echo "-- pass 2 (the [Serial] specs of the focus, skip '$SERIAL_SKIP'):"
	python3 "$REPO/hack/e2e-node/summarize.py" --host-skips "$RUN/host-skips.tsv" "(${FOCUS}).*\\[Serial\\]|\\[Serial\\].*(${FOCUS})" "$SERIAL_SKIP" \
		"$REPORT/junit_serial.xml" | tee "$RUN/summary_serial.txt"
fi
grep -q ' 0 failed' "$RUN"/summary_*.txt 2>/dev/null || summary_rc=1
for f in "$RUN"/summary_*.txt; do grep -q ' 0 failed' "$f" || summary_rc=1; done
for f in "${REPORTS[@]}"; do [ -f "$f" ] || summary_rc=1; done
echo "(reports $REPORT, logs $RUN/*.log, kubelet logs $REPORT/*/kubelet.log)"
exit "$summary_rc"
