#!/usr/bin/env bash
# Runs noded's whole test suite: installs what the tests need (hack/install-deps.sh), checks formatting and vet,
# then runs every unit and integration test. Exits non-zero if anything fails. Must run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin:${PATH}"

./hack/install-deps.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*'))
if [ -n "$unformatted" ]; then echo "gofmt needed:"; echo "$unformatted"; exit 1; fi
echo "== go vet"
go vet ./...

echo "== kubelet for the kubelet integration test (hack/k8s/build.sh: built once, then cached)"
# TestKubeletStandalone runs this kubelet on a private noded; the build takes about 10 min cold, seconds warm.
# A failed build does not stop the other tests: TestKubeletStandalone then fails, naming the missing binary.
kubelet_start=$SECONDS
if kubelet_dir=$(./hack/k8s/build.sh --print kubelet); then
  NODED_KUBELET="${kubelet_dir}/kubelet"
else
  echo "kubelet build failed: TestKubeletStandalone will fail"
  NODED_KUBELET=/nonexistent/kubelet-build-failed
fi
export NODED_KUBELET
echo "kubelet: ${NODED_KUBELET} ($((SECONDS - kubelet_start)) s)"

echo "== go test (unit and integration)"
# -p 1 keeps integration packages (which start real daemons, mounts and networks) from running side by side.
# errexit off around the pipeline: a failing package must not stop the fuzzers, the summary and the guest tests.
set +e
go test -count=1 -p 1 -timeout 60m ./... 2>&1 | tee /tmp/noded-test.log
rc=${PIPESTATUS[0]}
set -e
echo "== fuzz (every Fuzz test, FUZZTIME=${FUZZTIME:-10s} each)"
./hack/fuzz.sh --selftest || rc=1
./hack/fuzz.sh || rc=1
passed=$(grep -c '^ok ' /tmp/noded-test.log || true)
failed=$(grep -c '^FAIL' /tmp/noded-test.log || true)
echo "packages: ${passed} passed, ${failed} failed"

# Tests that need systemd as PID 1 on pure cgroup v2: here if the host has that, else in a guest, else skipped.
./hack/guest-test.sh || rc=1
exit "$rc"
