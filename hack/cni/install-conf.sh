#!/bin/sh
# install-conf.sh [CONFDIR [NODED_CONFIG_DIR]]
#
# Installs noded's default CNI network (bridge noded0 + host-local + portmap with snat + loopback) as
# CONFDIR/10-noded.conflist (default CONFDIR: /etc/cni/net.d), unless CONFDIR already holds a .conflist.
# The bridge does not masquerade ("ipMasq": false): when it writes the conflist, it also writes noded's drop-in
# NODED_CONFIG_DIR/config.d/10-cni-masquerade.toml (default NODED_CONFIG_DIR: /etc/noded) with
# cni.masquerade_subnets = [the subnet], so that noded makes the subnet's one masquerade rule at start.
# The pod subnet is the first candidate that overlaps none of the host's IPv4 routes (`ip -4 route`).
# Set NODED_CNI_SUBNET to force a subnet. Exit status: 0 when installed or left alone, 1 on error.
set -eu

CONFDIR=${1:-/etc/cni/net.d}
NODED_CONFIG_DIR=${2:-/etc/noded}
HERE=$(cd "$(dirname "$0")" && pwd)
CANDIDATES="10.88.0.0/16 10.244.0.0/16 10.200.0.0/16 10.123.0.0/16 10.77.0.0/16"

for f in "$CONFDIR"/*.conflist; do
	if [ -e "$f" ]; then
		echo "install-conf: $f exists, leaving $CONFDIR alone"
		exit 0
	fi
done

# overlaps A B: true if the IPv4 CIDRs A and B share an address.
overlaps() {
	awk -v a="$1" -v b="$2" '
	function ip2n(s,   p) { split(s, p, "."); return ((p[1] * 256 + p[2]) * 256 + p[3]) * 256 + p[4] }
	function net(cidr, bits,   x, n) {
		split(cidr, x, "/"); n = ip2n(x[1]); return int(n / 2 ^ (32 - bits))
	}
	function len(cidr,   x) { if (split(cidr, x, "/") < 2) return 32; return x[2] + 0 }
	BEGIN {
		m = len(a) < len(b) ? len(a) : len(b)
		exit (net(a, m) == net(b, m)) ? 0 : 1
	}'
}

subnet=${NODED_CNI_SUBNET:-}
if [ -z "$subnet" ]; then
	routes=$(ip -4 route show | awk '$1 != "default" && $1 ~ /^[0-9]/ { print $1 }')
	for cand in $CANDIDATES; do
		clash=
		for r in $routes; do
			if overlaps "$cand" "$r"; then clash=1; break; fi
		done
		if [ -z "$clash" ]; then subnet=$cand; break; fi
	done
fi
if [ -z "$subnet" ]; then
	echo "install-conf: every candidate subnet ($CANDIDATES) overlaps a host route; set NODED_CNI_SUBNET" >&2
	exit 1
fi

mkdir -p "$CONFDIR"
tmp=$(mktemp "$CONFDIR/.10-noded.conflist.XXXXXX")
trap 'rm -f "$tmp"' EXIT
"$HERE/render-conflist.sh" noded noded0 "$subnet" >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$CONFDIR/10-noded.conflist"
trap - EXIT
echo "install-conf: wrote $CONFDIR/10-noded.conflist (subnet $subnet)"

dropin=$NODED_CONFIG_DIR/config.d/10-cni-masquerade.toml
mkdir -p "$NODED_CONFIG_DIR/config.d"
tmp=$(mktemp "$NODED_CONFIG_DIR/config.d/.10-cni-masquerade.toml.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{
	echo "# Written by hack/cni/install-conf.sh with $CONFDIR/10-noded.conflist, whose bridge has \"ipMasq\": false:"
	echo "# noded masquerades the pod subnet with one rule of its own (nat chain NODED-MASQ), made at start."
	echo '[cni]'
	echo "masquerade_subnets = [\"$subnet\"]"
} >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$dropin"
trap - EXIT
echo "install-conf: wrote $dropin (masquerade_subnets = [\"$subnet\"])"
