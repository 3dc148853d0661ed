#!/usr/bin/env bash
# Builds Kubernetes binaries of one release from the Go module proxy, outside noded's module, and caches them:
#   hack/k8s/build.sh [--print] TARGET...     TARGET: kubelet | e2e_node | ginkgo | agnhost
# The binaries land in $NODED_K8S_CACHE/<version>/bin (default /var/cache/noded-k8s/v1.37.2/bin); a target that
# is already there is not rebuilt. --print prints only that bin dir (after building what is missing).
# The kubernetes go.mod replaces its staging modules (k8s.io/api, k8s.io/client-go, ...) with local paths, so
# `go install k8s.io/kubernetes/cmd/kubelet@v` fails; a scratch module requires k8s.io/kubernetes and pins each
# staging module to its published v0.<minor>.<patch>. Concurrent runs are serialised with a lock.
set -euo pipefail
export PATH="/usr/local/go/bin:${PATH}"

VERSION="${K8S_VERSION:-v1.37.2}"
CACHE="${NODED_K8S_CACHE:-/var/cache/noded-k8s}/${VERSION}"
print=0
if [ "${1:-}" = "--print" ]; then print=1; shift; fi
[ $# -gt 0 ] || { echo "usage: $0 [--print] kubelet|e2e_node|ginkgo|agnhost ..." >&2; exit 2; }

# Fast path: the targets are all there (a build moves a binary into place only when complete), so a warm run
# does not wait for the lock another run holds while it builds other targets (e2e_node takes ~25 min).
missing=0
for t in "$@"; do [ -x "$CACHE/bin/$t" ] || missing=1; done
if [ "$missing" = 0 ]; then
  [ "$print" = 1 ] && echo "$CACHE/bin"
  exit 0
fi

mkdir -p "$CACHE/bin" "$CACHE/src"
exec 9>"$CACHE/lock"
flock 9

log() { [ "$print" = 1 ] && echo "k8s-build: $*" >&2 || echo "k8s-build: $*"; }
src="$CACHE/src"
staging_minor="v0.${VERSION#v1.}"   # v1.37.2 -> v0.37.2
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

setup_module() {
  [ -f "$src/.ready" ] && return 0
  log "scratch module for k8s.io/kubernetes ${VERSION} in $src"
  local gomod
  gomod=$(cd "$src" && go mod download -json "k8s.io/kubernetes@${VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || { echo "k8s-build: cannot download k8s.io/kubernetes@${VERSION}" >&2; exit 1; }
  {
    echo "module noded.local/k8s-build"
    echo
    echo "go $(sed -n 's/^go //p' "$gomod")"
    echo
    echo "require k8s.io/kubernetes ${VERSION}"
    echo
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$gomod" | awk '/=> \.\/staging/ {print $1}' | while read -r m; do
      if (cd "$src" && go mod download "$m@$staging_minor" >/dev/null 2>&1); then
        echo "	$m => $m $staging_minor"
      fi
    done
    echo ")"
  } >"$src/go.mod.new"
  mv "$src/go.mod.new" "$src/go.mod"
  touch "$src/.ready"
}

# kubernetes_gomod: the path of the go.mod of k8s.io/kubernetes@VERSION in the module cache.
kubernetes_gomod() {
  (cd "$src" && go mod download -json "k8s.io/kubernetes@${VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
}

# pin_ginkgo: github.com/onsi/ginkgo/v2 at the version the kubernetes go.mod requires (up or down).
pin_ginkgo() {
  local gv
  gv=$(sed -n 's#^[[:space:]]*github.com/onsi/ginkgo/v2 \(v[^ ]*\).*#\1#p' "$(kubernetes_gomod)" | head -n 1)
  [ -n "$gv" ] || { echo "k8s-build: no github.com/onsi/ginkgo/v2 in the kubernetes go.mod" >&2; exit 1; }
  (cd "$src" && go get "github.com/onsi/ginkgo/v2@${gv}")
}

ldflags() {
  local major=${VERSION#v}; major=${major%%.*}
  local minor=${VERSION#v*.}; minor=${minor%%.*}
  local f=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=" -X $p.gitVersion=${VERSION} -X $p.gitMajor=${major} -X $p.gitMinor=${minor}"
    f+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "-s -w$f"
}

build() {
  local t=$1 out="$CACHE/bin/$1"
  [ -x "$out" ] && return 0
  setup_module
  local start=$SECONDS
  case "$t" in
    kubelet)
      log "building kubelet ${VERSION} (about 10 min cold on 2 cores)"
      (cd "$src" && go get "k8s.io/kubernetes/cmd/kubelet@${VERSION}" >/dev/null 2>&1 || go get "k8s.io/kubernetes/cmd/kubelet@${VERSION}")
      (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "$(ldflags)" -o "$out.tmp" k8s.io/kubernetes/cmd/kubelet) ;;
    e2e_node)
      log "building e2e_node.test ${VERSION} (about 25 min cold on 2 cores)"
      (cd "$src" && go get -t "k8s.io/kubernetes/test/e2e_node@${VERSION}")
      pin_ginkgo
      (cd "$src" && CGO_ENABLED=0 go test -c -vet=off -trimpath -ldflags "$(ldflags)" -o "$out.tmp" k8s.io/kubernetes/test/e2e_node) ;;
    ginkgo)
      # The CLI must be the ginkgo the suite is built with: the version kubernetes requires, not the newest
      # (a bare `go get .../ginkgo` would upgrade the suite's ginkgo library too).
      (cd "$src" && go get -t "k8s.io/kubernetes/test/e2e_node@${VERSION}")
      pin_ginkgo
      (cd "$src" && CGO_ENABLED=0 go build -o "$out.tmp" github.com/onsi/ginkgo/v2/ginkgo) ;;
    agnhost)
      (cd "$src" && go get "k8s.io/kubernetes/test/images/agnhost@${VERSION}")
      (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" k8s.io/kubernetes/test/images/agnhost) ;;
    *) echo "k8s-build: unknown target $t" >&2; exit 2 ;;
  esac
  mv "$out.tmp" "$out"
  log "$t built in $((SECONDS - start)) s"
}

for t in "$@"; do
  if [ "$print" = 1 ]; then build "$t" >&2; else build "$t"; fi
done
[ "$print" = 1 ] && echo "$CACHE/bin"
exit 0
