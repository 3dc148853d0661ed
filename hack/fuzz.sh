#!/usr/bin/env bash
# Runs every fuzz test of the repository (every func FuzzX(f *testing.F), found with `go test -list`) for a
# bounded time each, and prints the executions of each and in total. Exits non-zero if any fuzz test fails; the
# failing input is then saved under the package's testdata/fuzz/<FuzzX>/ (commit it as a regression seed).
#
#   hack/fuzz.sh [package pattern...]     default ./...
#
# Environment:
#   FUZZTIME   time per fuzz test, a Go duration or Nx (default 10s)
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline exceeded" when the -fuzztime
# deadline fires while a worker is mid-call (golang/go#75804, fixed in Go 1.27). That outcome, with no failing
# input written, found nothing: it is reported as "race" and does not fail the run. Any other failure, and any
# failure that writes an input under testdata/fuzz/<FuzzX>/, fails it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:${PATH}"
FUZZTIME=${FUZZTIME:-10s}

# deadline_race LOG BEFORE AFTER: true when a failed run is golang/go#75804 and nothing else: its only failure
# message is "context deadline exceeded" and the corpus dir holds no input it did not hold before.
deadline_race() {
	[ "$2" = "$3" ] || return 1
	grep -q 'Failing input written' "$1" && return 1
	[ "$(grep -vE '^(fuzz: |--- FAIL: |FAIL|exit status |warning: |ok )' "$1" | sed 's/^[[:space:]]*//' | grep -v '^$' | sort -u)" = "context deadline exceeded" ]
}

corpus_listing() { ls -1 "$1" 2>/dev/null || true; }

# --selftest: checks deadline_race against the race's output (as CI printed it) and against real findings.
if [ "${1:-}" = "--selftest" ]; then
	d=$(mktemp -d)
	trap 'rm -rf "$d"' EXIT
	printf '%s\n' 'fuzz: elapsed: 9s, execs: 186934 (23639/sec), new interesting: 52 (total: 166)' \
		'--- FAIL: FuzzProfile (10.13s)' '    context deadline exceeded' 'FAIL' 'exit status 1' \
		'FAIL	github.com/noded/noded/oci/seccomp	10.175s' >"$d/race"
	printf '%s\n' 'fuzz: elapsed: 2s, execs: 100 (50/sec)' '--- FAIL: FuzzProfile (2.01s)' \
		'    --- FAIL: FuzzProfile (0.00s)' '        profile_test.go:40: round trip differs' \
		'    Failing input written to testdata/fuzz/FuzzProfile/0123abcd' 'FAIL' >"$d/finding"
	printf '%s\n' '--- FAIL: FuzzProfile (10.13s)' '    context deadline exceeded' \
		'    fuzz_test.go:12: timed out waiting for a worker' 'FAIL' >"$d/other"
	ok=1
	deadline_race "$d/race" a a || { echo "selftest: the race's output was not recognised"; ok=0; }
	deadline_race "$d/race" a "a
b" && { echo "selftest: a run that wrote an input was taken for the race"; ok=0; }
	deadline_race "$d/finding" a a && { echo "selftest: a failing input was taken for the race"; ok=0; }
	deadline_race "$d/other" a a && { echo "selftest: a test's own message was taken for the race"; ok=0; }
	[ "$ok" = 1 ] && echo "fuzz.sh selftest: ok"
	[ "$ok" = 1 ]
	exit
fi

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
races=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	corpus="$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$name"
	before=$(corpus_listing "$corpus")
	if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1; then
		status=ok
	elif deadline_race "$log" "$before" "$(corpus_listing "$corpus")"; then
		status=race
		races=$((races + 1))
		echo "fuzz.sh: $name ended with \"context deadline exceeded\" and wrote no failing input: golang/go#75804, not a finding"
	else
		status=FAIL
		failed=$((failed + 1))
		cat "$log"
	fi
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
	total=$((total + execs))
	printf '%-4s %-50s %-28s %10d execs\n' "$status" "$pkg" "$name" "$execs"
done
echo "fuzz: ${#targets[@]} fuzz tests, ${FUZZTIME} each, ${total} executions, ${failed} failed, ${races} stopped by golang/go#75804"
[ "$failed" -eq 0 ]
