#!/usr/bin/env bash
# Installs noded's dependencies, builds noded and runs it in the foreground with the default configuration
# (or /etc/noded/config.toml when present). Extra arguments go to noded. Must run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin:${PATH}"

./hack/install-deps.sh
if [ -x hack/cni/install-conf.sh ]; then ./hack/cni/install-conf.sh /etc/cni/net.d; fi
mkdir -p bin
CGO_ENABLED=0 go build -ldflags "-X github.com/noded/noded/version.Version=$(git describe --always --dirty 2>/dev/null || echo dev)" -o bin/noded ./cmd/noded
exec ./bin/noded "$@"
