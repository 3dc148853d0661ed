# shellcheck shell=bash
# containerd 2.x as the anchor runtime, shared by hack/bench/containerd.sh and hack/e2e-node/run.sh (sourced, bash):
# its build and its configuration. Each script keeps its own dirs, names and start/stop; what differs between them
# is a parameter here.

# containerd_build VERSION BIN: go install of containerd and containerd-shim-runc-v2 VERSION (v2.4.2) into BIN
# (static, no btrfs) unless both are there. A lock (BIN.lock) keeps two builds from racing.
containerd_build() {
	local version=$1 bin=$2
	[ -x "$bin/containerd" ] && [ -x "$bin/containerd-shim-runc-v2" ] && return 0
	echo "== building containerd $version into $bin (go install; a few minutes cold)" >&2
	mkdir -p "$bin"
	(
		exec 7>"$bin.lock"
		flock 7
		export GOTOOLCHAIN=local GOFLAGS=-mod=mod GOBIN=$bin
		[ -x "$bin/containerd" ] ||
			CGO_ENABLED=0 nice -n 10 go install -tags no_btrfs "github.com/containerd/containerd/v2/cmd/containerd@$version"
		[ -x "$bin/containerd-shim-runc-v2" ] ||
			CGO_ENABLED=0 nice -n 10 go install "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$version"
	)
}

# containerd_mirrors CERTS_D MIRROR HOST...: one hosts.toml per HOST below CERTS_D (containerd's registry
# config_path) that pulls and resolves through MIRROR (http://127.0.0.1:PORT) before HOST itself.
containerd_mirrors() {
	local dir=$1 mirror=$2 h
	shift 2
	for h in "$@"; do
		mkdir -p "$dir/$h"
		cat >"$dir/$h/hosts.toml" <<EOF
server = "https://$h"

[host."$mirror"]
  capabilities = ["pull", "resolve"]
EOF
	done
}

# containerd_config FILE: writes a containerd 2.x config (version 4: the CRI plugin split into its images and
# runtime plugins) to FILE: no NRI, overlayfs, one runc runtime through the runc shim v2 with the cgroupfs driver,
# oom_score_adj clamped to what containerd may set (restrict_oom_score_adj: no CAP_SYS_RESOURCE on these hosts),
# pod netns pins under its state dir, at most one CNI config. Parameters (variables):
#   CTD_ROOT CTD_STATE   root and state dirs; shim sockets go below CTD_STATE/s
#   CTD_SOCK             its gRPC socket (ttrpc on CTD_SOCK.ttrpc)
#   CTD_OPT              the opt plugin's dir
#   CTD_SHIM             the containerd-shim-runc-v2 binary
#   CTD_RUNC CTD_RUNC_ROOT  the runc binary and its --root
#   CTD_SANDBOX_IMAGE    the pinned sandbox (pause) image
#   CTD_HANDLERS         more RuntimeClass handlers, space separated, each runc like the default one
#   CTD_CERTS_D          registry config_path (see containerd_mirrors)
#   CTD_CNI_CONF_DIR     CNI config dir; CTD_CNI_BIN_DIRS plugin dirs, space separated (default /usr/lib/cni)
#   optional: CTD_DEBUG_ADDRESS and CTD_LOG_LEVEL (a [debug] section), CTD_STREAM_ADDRESS (the CRI streaming
#   server's address, port 0), CTD_NO_LSM=1 (disable_apparmor, no SELinux).
containerd_config() {
	local file=$1 d bins=
	for d in ${CTD_CNI_BIN_DIRS:-/usr/lib/cni}; do bins="$bins${bins:+, }\"$d\""; done
	{
		cat <<EOF
version = 4
root = "${CTD_ROOT:?}"
state = "${CTD_STATE:?}"
oom_score = 0
imports = []

[plugins."io.containerd.server.v1.grpc"]
  address = "${CTD_SOCK:?}"

[plugins."io.containerd.server.v1.ttrpc"]
  address = "$CTD_SOCK.ttrpc"
EOF
		if [ -n "${CTD_DEBUG_ADDRESS:-}" ]; then
			cat <<EOF

[debug]
  address = "$CTD_DEBUG_ADDRESS"
  level = "${CTD_LOG_LEVEL:-info}"
EOF
		fi
		cat <<EOF

[plugins."io.containerd.shim.v1.manager"]
  socket_dir = "$CTD_STATE/s"

[plugins."io.containerd.internal.v1.opt"]
  path = "${CTD_OPT:?}"

[plugins."io.containerd.nri.v1.nri"]
  disable = true
EOF
		if [ -n "${CTD_STREAM_ADDRESS:-}" ]; then
			cat <<EOF

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "$CTD_STREAM_ADDRESS"
  stream_server_port = "0"
EOF
		fi
		cat <<EOF

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "${CTD_SANDBOX_IMAGE:?}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "${CTD_CERTS_D:?}"

[plugins."io.containerd.cri.v1.runtime"]
  netns_mounts_under_state_dir = true
EOF
		if [ "${CTD_NO_LSM:-}" = 1 ]; then
			cat <<EOF
  disable_apparmor = true
  enable_selinux = false
EOF
		fi
		cat <<EOF
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
EOF
		for h in runc ${CTD_HANDLERS:-}; do
			cat <<EOF
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.$h]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = "${CTD_SHIM:?}"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.$h.options]
        BinaryName = "${CTD_RUNC:?}"
        Root = "${CTD_RUNC_ROOT:?}"
        SystemdCgroup = false
EOF
		done
		cat <<EOF
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [$bins]
    conf_dir = "${CTD_CNI_CONF_DIR:?}"
    max_conf_num = 1
EOF
	} >"$file"
}
