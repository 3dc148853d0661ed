#!/usr/bin/env bash
# cni-cost.sh [BENCH FLAGS...]: what the CNI plugins alone cost per pod (ADD + DEL), Debian's against a release of
# containernetworking/plugins built from the Go module proxy, at 0, 100 and 250 pods attached
# (go run ./hack/bench --cni-cost; see hack/bench/cnicost.go). Not part of the test command. Root.
#
# CNI_PLUGINS_VERSION (v1.10.0) selects the release; its bridge, host-local, portmap and loopback are built with
# go install into /var/cache/noded-cni/<version>/bin (NODED_CNI_CACHE), once: a binary is moved into place only
# when complete, and concurrent runs are serialised with a lock. nftables (the nft binary, which the release's
# nftables backends exec) is installed with apt-get when missing. Everything the measurement makes lives in
# network namespaces held by the tool's descriptors and goes away with it; its files are below --work-dir
# (default here /var/tmp/noded-cni-cost).
set -euo pipefail
export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH}"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=${CNI_PLUGINS_VERSION:-v1.10.0}
BIN=${NODED_CNI_CACHE:-/var/cache/noded-cni}/$VERSION/bin
[ "$(id -u)" = 0 ] || { echo "cni-cost: must run as root" >&2; exit 1; }

build() {
	local missing=0 p tmp
	for p in bridge host-local portmap loopback; do [ -x "$BIN/$p" ] || missing=1; done
	[ "$missing" = 0 ] && return 0
	mkdir -p "$BIN"
	exec 9>"$BIN/../lock"
	flock 9
	tmp=$(mktemp -d "$BIN/../build.XXXXXX")
	trap 'rm -rf "$tmp"' RETURN
	echo "cni-cost: building containernetworking/plugins $VERSION into $BIN" >&2
	(cd "$tmp" && GOFLAGS=-mod=mod GOTOOLCHAIN=local GOBIN="$tmp" nice -n 10 go install \
		"github.com/containernetworking/plugins/plugins/main/bridge@$VERSION" \
		"github.com/containernetworking/plugins/plugins/ipam/host-local@$VERSION" \
		"github.com/containernetworking/plugins/plugins/meta/portmap@$VERSION" \
		"github.com/containernetworking/plugins/plugins/main/loopback@$VERSION")
	for p in bridge host-local portmap loopback; do mv "$tmp/$p" "$BIN/$p"; done
}

build
if ! command -v nft >/dev/null; then
	echo "cni-cost: installing nftables (apt-get)" >&2
	apt-get install -y --no-install-recommends nftables >&2
fi
cd "$REPO"
exec go run ./hack/bench --cni-cost --cni-cost-new-bin "$BIN" --work-dir /var/tmp/noded-cni-cost --count-execs "$@"
