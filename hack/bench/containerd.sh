#!/usr/bin/env bash
# containerd.sh start|stop: Debian's containerd with its CRI plugin, for side-by-side benchmarks with noded
# (hack/bench). Not part of the test command.
#
# start: installs containerd from Debian (apt-get) if missing, starts the benchmark registry (hack/registry-start.sh
#   on 127.0.0.1:5009 with the test and bench images) and runs containerd in the background with everything of
#   its own under /var/tmp/bench-containerd: root, state, socket (containerd.sock), runc root, CNI config
#   (network "containerd-bench", bridge nodedbch1, 10.239.201.0/24, the same plugin list as noded's), registry
#   mirrors for docker.io and registry.k8s.io pointing at the local registry, runc /usr/local/sbin/runc with the
#   cgroupfs driver, sandbox image docker.io/noded/pause:latest. containerd and its shims run in the cgroup
#   /noded-bench-daemons/containerd.
# stop: removes every pod left on it, stops containerd and its shims, unmounts everything below the run dir, and
#   deletes the bridge, the iptables rules its pods added and its cgroups. The run dir stays (logs) until the next
#   start wipes it.
#
# Environment: BENCH_CONTAINERD_DIR (run dir), BENCH_REGISTRY_PORT (5009), BENCH_RUNC (/usr/local/sbin/runc).
set -euo pipefail
RUN=${BENCH_CONTAINERD_DIR:-/var/tmp/bench-containerd}
NAME=containerd-bench
BRIDGE=nodedbch1
SUBNET=10.239.201.0/24
DAEMON_CG=/noded-bench-daemons/containerd
MARKER='containerd-bench|nodedbch1|10\.239\.201\.'
# shellcheck source=hack/bench/lib.sh
. "$(dirname "$0")/lib.sh"
SOCK=$RUN/containerd.sock

start() {
	if ! command -v containerd >/dev/null; then
		log "installing containerd (apt-get)"
		apt-get install -y --no-install-recommends containerd >&2
	fi
	stop_run "$SOCK"
	rm -rf --one-file-system "$RUN"
	mkdir -p "$RUN/root" "$RUN/state" "$RUN/runc" "$RUN/cni/net.d"
	"$REPO/hack/critest/ipt-undo.sh" snapshot "$RUN/iptables"
	bench_registry
	write_conflist "$RUN/cni/net.d"
	cat >"$RUN/config.toml" <<EOF
version = 2
root = "$RUN/root"
state = "$RUN/state"
oom_score = 0

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"

[debug]
  address = "$RUN/debug.sock"
  level = "warn"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$RUN/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/noded/pause:latest"
  disable_apparmor = true
  enable_selinux = false
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$RUNC"
        Root = "$RUN/runc"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["$MIRROR"]

  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]
    endpoint = ["$MIRROR"]
EOF
	log "starting containerd (log $RUN/daemon.log)"
	start_in_cgroup "$RUN/daemon.log" containerd --config "$RUN/config.toml"
	wait_socket "$SOCK"
	echo "containerd (pid $(cat "$RUN/daemon.pid")) listens on unix://$SOCK"
}

case ${1:-} in
start) start ;;
stop) stop_run "$SOCK"; echo "containerd stopped" ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
