#!/usr/bin/env bash
# noded.sh start|stop: noded configured like hack/bench/containerd.sh configures containerd, for side-by-side
# benchmarks (hack/bench). Not part of the test command.
#
# start: builds noded (static, as hack/run.sh) into the run dir /var/tmp/noded-bench/noded, starts the benchmark
#   registry (127.0.0.1:5009, test and bench images) and runs noded in the background with its own root, state,
#   socket (noded.sock), CNI config (network "noded-bench", bridge nodedbch0, 10.239.200.0/24, the same plugin
#   list as containerd's), mirrors for docker.io and registry.k8s.io pointing at the local registry, runc
#   /usr/local/sbin/runc, cgroupfs driver, and pprof on the unix socket $RUN/pprof.sock (BENCH_PPROF to change,
#   "" for none; e.g. curl --unix-socket "$RUN/pprof.sock" -o cpu.pprof http://localhost/debug/pprof/profile).
#   noded and its conmons run in the cgroup /noded-bench-daemons/noded.
# stop: removes every pod left on it, stops noded, kills leftover conmons and containers, unmounts everything
#   below the run dir, deletes the bridge, the iptables rules its pods added, its subnet's rule in noded's chain
#   NODED-MASQ (cni.masquerade_subnets, set to the bench subnet; BENCH_CNI_MASQ=pod for the bridge plugin's
#   per-pod masquerade instead, see lib.sh) and its cgroups.
#
# Environment: BENCH_NODED_DIR (run dir), BENCH_REGISTRY_PORT (5009), BENCH_RUNC (/usr/local/sbin/runc),
# BENCH_NODED_BIN (use this noded binary instead of building one); for a second bench noded beside another on
# the machine: BENCH_NETWORK, BENCH_BRIDGE, BENCH_SUBNET (a /24), BENCH_DAEMON_CGROUP (below
# /noded-bench-daemons) and BENCH_CGROUP_PARENT (the pods' cgroup parent, /noded-bench).
set -euo pipefail
RUN=${BENCH_NODED_DIR:-/var/tmp/noded-bench/noded}
NAME=${BENCH_NETWORK:-noded-bench}
BRIDGE=${BENCH_BRIDGE:-nodedbch0}
SUBNET=${BENCH_SUBNET:-10.239.200.0/24}
DAEMON_CG=/noded-bench-daemons/${BENCH_DAEMON_CGROUP:-noded}
MARKER="$NAME|$BRIDGE|$(echo "${SUBNET%.*/*}." | sed 's/\./\\./g')"
# shellcheck source=hack/bench/lib.sh
. "$(dirname "$0")/lib.sh"
SOCK=$RUN/noded.sock
PPROF=${BENCH_PPROF-$RUN/pprof.sock}

start() {
	stop_run "$SOCK"
	rm -rf --one-file-system "$RUN"
	mkdir -p "$RUN/root" "$RUN/state" "$RUN/cni/net.d"
	"$REPO/hack/critest/ipt-undo.sh" snapshot "$RUN/iptables"
	bench_registry
	write_conflist "$RUN/cni/net.d"
	if [ -n "${BENCH_NODED_BIN:-}" ]; then
		cp "$BENCH_NODED_BIN" "$RUN/noded"
	else
		log "building noded"
		(cd "$REPO" && CGO_ENABLED=0 go build -o "$RUN/noded" ./cmd/noded)
	fi
	{
		echo 'default_runtime = "runc"'
		echo 'cgroup_driver = "cgroupfs"'
		echo "cgroup_parent = \"$POD_CG\""
		echo
		echo '[runtimes.runc]'
		echo "path = \"$RUNC\""
		echo "root = \"$RUN/runc\""
		echo
		echo '[cni]'
		echo "conf_dir = \"$RUN/cni/net.d\""
		echo 'bin_dirs = ["/usr/lib/cni"]'
		if [ "$CNI_MASQ" = static ]; then echo "masquerade_subnets = [\"$SUBNET\"]"; fi
		if [ -n "$PPROF" ]; then
			echo
			echo '[debug]'
			echo "pprof_socket = \"$PPROF\""
		fi
		for h in docker.io registry.k8s.io; do
			echo
			echo "[registry.hosts.\"$h\"]"
			echo "mirrors = [{ url = \"$MIRROR\" }]"
			echo "mirrors_only = true"
		done
	} >"$RUN/config.toml"
	log "starting noded (log $RUN/daemon.log)"
	start_in_cgroup "$RUN/daemon.log" "$RUN/noded" --config "$RUN/config.toml" --root "$RUN/root" \
		--state "$RUN/state" --listen "$SOCK"
	wait_socket "$SOCK"
	echo "noded (pid $(cat "$RUN/daemon.pid")) listens on unix://$SOCK"
}

case ${1:-} in
start) start ;;
stop) stop_run "$SOCK"; echo "noded stopped" ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
