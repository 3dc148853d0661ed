#!/bin/sh
# render-conflist.sh NAME BRIDGE SUBNET [IPAM_DIR]
#
# Prints noded's CNI network list (hack/cni/10-noded.conflist: bridge + host-local + portmap with snat +
# loopback) with the given network name, bridge and subnet, and host-local's state in IPAM_DIR when given
# (else host-local's default, /var/lib/cni/networks). Used by install-conf.sh, the benchmarks and critest runs,
# so every one of them runs pods on the same network setup.
set -eu
if [ $# -lt 3 ]; then
	echo "usage: $0 NAME BRIDGE SUBNET [IPAM_DIR]" >&2
	exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
data=
if [ -n "${4:-}" ]; then
	data="\"dataDir\": \"$4\", "
fi
sed -e "s#@NAME@#$1#" -e "s#@BRIDGE@#$2#" -e "s#@SUBNET@#$3#" \
	-e "s#\"type\": \"host-local\",#\"type\": \"host-local\", $data#" "$HERE/10-noded.conflist"
