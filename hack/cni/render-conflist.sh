#!/bin/sh
# render-conflist.sh [--pod-masq] NAME BRIDGE SUBNET [IPAM_DIR]
#
# Prints noded's CNI network list (hack/cni/10-noded.conflist: bridge + host-local + portmap with snat +
# loopback) with the given network name, bridge and subnet, and host-local's state in IPAM_DIR when given
# (else host-local's default, /var/lib/cni/networks). Used by install-conf.sh, the benchmarks and critest runs,
# so every one of them runs pods on the same network setup.
#
# The bridge has "ipMasq": false: the pod subnet's masquerade is one static rule that noded makes at start
# (cni.masquerade_subnets, cni/masquerade.go) or the setup makes itself. --pod-masq renders "ipMasq": true
# instead (the bridge plugin's chain per pod), for setups that rely on it (critest, e2e-node, the guest tests).
set -eu
masq=false
if [ "${1:-}" = --pod-masq ]; then
	masq=true
	shift
fi
if [ $# -lt 3 ]; then
	echo "usage: $0 [--pod-masq] NAME BRIDGE SUBNET [IPAM_DIR]" >&2
	exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
data=
if [ -n "${4:-}" ]; then
	data="\"dataDir\": \"$4\", "
fi
sed -e "s#@NAME@#$1#" -e "s#@BRIDGE@#$2#" -e "s#@SUBNET@#$3#" -e "s#\"ipMasq\": false#\"ipMasq\": $masq#" \
	-e "s#\"type\": \"host-local\",#\"type\": \"host-local\", $data#" "$HERE/10-noded.conflist"
