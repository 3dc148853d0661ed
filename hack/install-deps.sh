#!/usr/bin/env bash
# Installs every runtime and test dependency of noded from Debian packages and the Go module proxy.
# Idempotent: safe to run again; installs only what is missing.
set -euo pipefail

PKGS=(
  runc conmon crun containernetworking-plugins iptables iproute2 util-linux procps
  busybox libseccomp-dev pkg-config gcc make ca-certificates docker-registry
  nginx-light kmod psmisc apparmor
  bind9-libs
)
# bind9-libs: hack/imagebuilder's e2enode set copies dig and nslookup (bind9-dnsutils) into agnhost with the
# libraries ldd finds for them on this host (libisc, libdns, ... and libjemalloc2); without it the set does not build.
RUNC_VERSION="${RUNC_VERSION:-v1.5.2}"
PREFIX="${NODED_PREFIX:-/usr/local}"

if [ "$(id -u)" -ne 0 ]; then echo "install-deps: must run as root" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts docker-registry as a service where an init system runs; the tests start their own.
  if pidof docker-registry >/dev/null 2>&1 && [ -x /usr/sbin/service ]; then service docker-registry stop >/dev/null 2>&1 || true; fi
fi

# runc with user namespaces and seccomp: Debian's 1.1.5 lacks idmapped mounts, so build a newer one.
if ! "$PREFIX/sbin/runc" --version 2>/dev/null | grep -q "runc version ${RUNC_VERSION#v}"; then
  if command -v go >/dev/null 2>&1; then
    echo "install-deps: building runc ${RUNC_VERSION} (tag seccomp)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    if CGO_ENABLED=1 GOBIN="$tmp" GOFLAGS=-mod=mod go install -tags seccomp "github.com/opencontainers/runc@${RUNC_VERSION}" >"$tmp/build.log" 2>&1; then
      install -D -m 0755 "$tmp/runc" "$PREFIX/sbin/runc"
    else
      echo "install-deps: runc ${RUNC_VERSION} did not build; falling back to Debian's runc" >&2
      tail -5 "$tmp/build.log" >&2 || true
    fi
  fi
fi
echo "install-deps: ok"
