#!/usr/bin/env bash
# containerd.sh start|stop: containerd with its CRI plugin, for side-by-side benchmarks with noded (hack/bench).
# Not part of the test command.
#
# CONTAINERD selects the build: "2.4.2" (default; any release works) is containerd v2.4.2 and its runc shim v2
#   (containerd-shim-runc-v2) built from the Go module proxy with go install, cached in
#   /var/cache/noded-e2e-containerd/v2.4.2/bin (BENCH_CONTAINERD_CACHE; the cache hack/e2e-node uses), run with
#   a version-4 config; "debian" is Debian's containerd 1.6 (apt-get if missing) with a version-2 config.
# start: starts the benchmark registry (hack/registry-start.sh on 127.0.0.1:5009 with the test and bench images)
#   and runs containerd in the background with everything of its own under /var/tmp/bench-containerd: root,
#   state, socket (containerd.sock), shim sockets, runc root, CNI config (network "containerd-bench", bridge
#   nodedbch1, 10.239.201.0/24, the same plugin list as noded's), registry mirrors for docker.io and
#   registry.k8s.io pointing at the local registry, runc /usr/local/sbin/runc with the cgroupfs driver, sandbox
#   image docker.io/noded/pause:latest (NRI off in 2.x). containerd and its shims run in the cgroup
#   /noded-bench-daemons/containerd.
# stop: removes every pod left on it, stops containerd and its shims, unmounts everything below the run dir, and
#   deletes the bridge, the iptables rules its pods added, the static masquerade rule of its subnet (made at start,
#   as noded makes its own with cni.masquerade_subnets; lib.sh) and its cgroups. The run dir stays (logs) until the next
#   start wipes it.
#
# Environment: CONTAINERD (2.4.2 | debian), BENCH_CONTAINERD_DIR (run dir), BENCH_CONTAINERD_CACHE,
# BENCH_REGISTRY_PORT (5009), BENCH_RUNC (/usr/local/sbin/runc).
set -euo pipefail
RUN=${BENCH_CONTAINERD_DIR:-/var/tmp/bench-containerd}
NAME=containerd-bench
BRIDGE=nodedbch1
SUBNET=10.239.201.0/24
DAEMON_CG=/noded-bench-daemons/containerd
MARKER='containerd-bench|nodedbch1|10\.239\.201\.'
# shellcheck source=hack/bench/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=hack/lib/containerd.sh
. "$REPO/hack/lib/containerd.sh"
SOCK=$RUN/containerd.sock
CONTAINERD=${CONTAINERD:-2.4.2}
CTD_BIN=
case $CONTAINERD in
debian) ;;
[0-9]*.[0-9]*.[0-9]*) CTD_BIN=${BENCH_CONTAINERD_CACHE:-/var/cache/noded-e2e-containerd}/v$CONTAINERD/bin ;;
*) echo "containerd.sh: CONTAINERD must be a release (2.4.2) or debian" >&2; exit 2 ;;
esac

# write_config_v4: containerd 2.x's config (version 4) and its registry mirrors (hack/lib/containerd.sh).
write_config_v4() {
	containerd_mirrors "$RUN/certs.d" "$MIRROR" docker.io registry.k8s.io
	CTD_ROOT=$RUN/root CTD_STATE=$RUN/state CTD_SOCK=$SOCK CTD_OPT=$RUN/opt \
		CTD_SHIM=$CTD_BIN/containerd-shim-runc-v2 CTD_RUNC=$RUNC CTD_RUNC_ROOT=$RUN/runc \
		CTD_SANDBOX_IMAGE=docker.io/noded/pause:latest CTD_CERTS_D=$RUN/certs.d \
		CTD_CNI_CONF_DIR=$RUN/cni/net.d CTD_CNI_BIN_DIRS=/usr/lib/cni \
		CTD_DEBUG_ADDRESS=$RUN/debug.sock CTD_LOG_LEVEL=warn CTD_NO_LSM=1 \
		containerd_config "$RUN/config.toml"
}

# write_config_v2: Debian's containerd 1.6 (version-2 config, mirrors inline).
write_config_v2() {
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
}

start() {
	local bin
	if [ "$CONTAINERD" = debian ]; then
		if ! command -v containerd >/dev/null; then
			log "installing containerd (apt-get)"
			apt-get install -y --no-install-recommends containerd >&2
		fi
		bin=$(command -v containerd)
	else
		containerd_build "v$CONTAINERD" "$CTD_BIN"
		bin=$CTD_BIN/containerd
	fi
	stop_run "$SOCK"
	rm -rf --one-file-system "$RUN"
	mkdir -p "$RUN/root" "$RUN/state" "$RUN/runc" "$RUN/cni/net.d"
	"$REPO/hack/critest/ipt-undo.sh" snapshot "$RUN/iptables"
	bench_registry
	write_conflist "$RUN/cni/net.d"
	static_masq_add
	if [ "$CONTAINERD" = debian ]; then write_config_v2; else write_config_v4; fi
	log "starting $("$bin" --version) (log $RUN/daemon.log)"
	start_in_cgroup "$RUN/daemon.log" "$bin" --config "$RUN/config.toml"
	wait_socket "$SOCK"
	echo "containerd $CONTAINERD (pid $(cat "$RUN/daemon.pid")) listens on unix://$SOCK"
}

case ${1:-} in
start) start ;;
stop) stop_run "$SOCK"; echo "containerd stopped" ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
