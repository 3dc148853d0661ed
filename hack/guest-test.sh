#!/usr/bin/env bash
# Runs the test packages under integration/guest/ (tests that need systemd as PID 1 on a pure cgroup v2 hierarchy)
# with the real noded, runc and conmon:
#   - on this host directly, when it has systemd as PID 1 and pure cgroup v2;
#   - else in one boot of the throwaway guest ../shared/vm/run (see its README; NODEVM_RUN overrides the path),
#     with everything built here first (the guest has no Go toolchain and no network);
#   - else it prints why it skips and exits 0; so it does, loudly, when the guest's kernel (Debian's user-mode-linux)
#     cannot boot on this host's CPU (NODED_REQUIRE_GUEST=1 makes that a failure).
# Must run as root. Exit status: non-zero if any guest test failed.
#
# Inside the guest this script runs again as `guest-test.sh --run`: it runs each test binary of bin/guest/.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
out="$top/bin/guest"
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin:${PATH}"

# run_tests runs every test binary of $out from its package directory (as `go test` would).
run_tests() {
	local rc=0 n=0 bin pkg
	for bin in "$out"/*.test; do
		[ -e "$bin" ] || continue
		n=$((n + 1))
		pkg=$(basename "$bin" .test)
		echo "== guest: $pkg"
		if ! (cd "$top/integration/guest/$pkg" && "$bin" -test.v -test.count=1 -test.timeout 25m); then
			echo "FAIL guest/$pkg"
			rc=1
		else
			echo "ok   guest/$pkg"
		fi
	done
	if [ "$n" -eq 0 ]; then
		echo "no guest test binaries in $out" >&2
		return 1
	fi
	return "$rc"
}

if [ "${1:-}" = "--run" ]; then
	run_tests
	exit $?
fi

host_ready() {
	[ -d /run/systemd/system ] && [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]
}

find_vm() {
	local c
	for c in "${NODEVM_RUN:-}" "$top/../shared/vm/run" \
		"$(cd "$(git rev-parse --git-common-dir 2>/dev/null || echo .)" 2>/dev/null && pwd)/../../shared/vm/run"; do
		if [ -n "$c" ] && [ -x "$c" ]; then
			echo "$c"
			return 0
		fi
	done
	return 1
}

# guest_cpu_unsupported VM: boots the guest once with its console on stderr and says whether it died of the
# user-mode-linux FP-register failure on this CPU.
guest_cpu_unsupported() {
	local log
	log=$(mktemp)
	"$1" --console --timeout 300 -- true >"$log" 2>&1 || true
	local found=1
	if grep -q 'ptrace set fp regs failed' "$log"; then found=0; fi
	rm -f "$log"
	return "$found"
}

vm=""
if ! host_ready; then
	if ! vm=$(find_vm); then
		echo "== guest tests SKIPPED: this host lacks systemd as PID 1 with pure cgroup v2, and the guest tool"
		echo "   (../shared/vm/run or \$NODEVM_RUN) is not there"
		exit 0
	fi
fi

echo "== guest tests: building noded, the test binaries and the test image"
rm -rf "$out"
mkdir -p "$out"
CGO_ENABLED=0 go build -o "$out/noded" ./cmd/noded
for pkg in $(go list ./integration/guest/...); do
	CGO_ENABLED=0 go test -c -o "$out/$(basename "$pkg").test" "$pkg"
done
go run ./hack/imagebuilder --set busybox --layout "$out/images" >/dev/null
envs=(NODED_BINARY="$out/noded" NODED_TEST_IMAGE_LAYOUT="$out/images" NODED_TEST_SLOT="${NODED_TEST_SLOT:-0}")
# The runc the host tests use (its own build, newer than Debian's) runs in the guest too.
if [ -x /usr/local/sbin/runc ]; then
	cp /usr/local/sbin/runc "$out/runc"
	envs+=(NODED_TEST_RUNC="$out/runc")
fi
# The AppArmor guest test needs apparmor_parser, which the guest image lacks: the host's (it needs only libc),
# its ABI files and a wrapper pointing it at them. That test runs only in a guest whose kernel has AppArmor
# enabled (NODEVM_RUN naming a run script that boots with lsm=capability,yama,apparmor); elsewhere it skips.
if [ -x /usr/sbin/apparmor_parser ] && [ -d /etc/apparmor.d/abi ]; then
	mkdir -p "$out/apparmor/inc"
	cp /usr/sbin/apparmor_parser "$out/apparmor/apparmor_parser.bin"
	cp -r /etc/apparmor.d/abi "$out/apparmor/inc/"
	printf '#!/bin/sh\nexec "%s/apparmor_parser.bin" -I "%s/inc" "$@"\n' "$out/apparmor" "$out/apparmor" >"$out/apparmor/apparmor_parser"
	chmod +x "$out/apparmor/apparmor_parser"
	envs+=(NODED_TEST_APPARMOR_DIR="$out/apparmor")
fi

start=$(date +%s)
if [ -z "$vm" ]; then
	echo "== guest tests: on this host (systemd as PID 1, pure cgroup v2)"
	rc=0
	env "${envs[@]}" "$0" --run || rc=$?
else
	echo "== guest tests: in one boot of $vm"
	vmargs=()
	for e in "${envs[@]}"; do vmargs+=(-e "$e"); done
	rc=0
	"$vm" --mem 2G --timeout 2400 "${vmargs[@]}" -- "$top/hack/guest-test.sh" --run || rc=$?
	# 125: the guest did not run the command. Debian's user-mode-linux 6.1 cannot boot on a host CPU whose XSAVE
	# area it does not know (AMX, AVX-512: "ptrace set fp regs failed, errno = 14" and init is killed). That is the
	# machine, not noded: say so loudly and skip, unless NODED_REQUIRE_GUEST=1. Any other 125 stays a failure.
	if [ "$rc" = 125 ] && [ "${NODED_REQUIRE_GUEST:-}" != 1 ] && guest_cpu_unsupported "$vm"; then
		echo "== guest tests SKIPPED: the guest kernel (Debian user-mode-linux) cannot boot on this host's CPU"
		echo "   (\"ptrace set fp regs failed\": its XSAVE area, e.g. AMX/AVX-512, is larger than UML handles);"
		echo "   the systemd/cgroup v2 tests did NOT run. NODED_REQUIRE_GUEST=1 makes this a failure."
		rc=0
	fi
fi
echo "== guest tests: exit $rc after $(($(date +%s) - start))s"
exit "$rc"
