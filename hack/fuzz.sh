#!/usr/bin/env bash
# Runs every fuzz test of the repository (every func FuzzX(f *testing.F), found with `go test -list`) for a
# bounded time each, and prints the executions of each and in total. Exits non-zero if any fuzz test fails; the
# failing input is then saved under the package's testdata/fuzz/<FuzzX>/ (commit it as a regression seed).
#
#   hack/fuzz.sh [package pattern...]     default ./...
#
# Environment:
#   FUZZTIME   time per fuzz test, a Go duration or Nx (default 10s)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:${PATH}"
FUZZTIME=${FUZZTIME:-10s}
[ $# -gt 0 ] || set -- ./...

# `go test -list` prints the matching names of a package, then "ok  <import path> ...".
targets=()
names=()
while read -r first second _; do
	case $first in
	Fuzz*) names+=("$first") ;;
	ok)
		for n in "${names[@]}"; do targets+=("$second $n"); done
		names=()
		;;
	*) names=() ;;
	esac
done < <(go test -list '^Fuzz' "$@")
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no fuzz tests found" >&2; exit 1; }

total=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1; then
		status=ok
	else
		status=FAIL
		failed=$((failed + 1))
		cat "$log"
	fi
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
	total=$((total + execs))
	printf '%-4s %-50s %-28s %10d execs\n' "$status" "$pkg" "$name" "$execs"
done
echo "fuzz: ${#targets[@]} fuzz tests, ${FUZZTIME} each, ${total} executions, ${failed} failed"
[ "$failed" -eq 0 ]
