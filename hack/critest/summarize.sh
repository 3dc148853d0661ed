#!/bin/sh
# summarize.sh [LOG]   (default /var/tmp/noded-critest/critest.log)
#
# Prints the pass/fail/skip line of a critest run, then its failed specs grouped by error: each group is
# headed by the error message with container/pod IDs, PIDs, addresses and times replaced by placeholders,
# followed by the failing spec names and one original message.
set -eu
LOG=${1:-/var/tmp/noded-critest/critest.log}
[ -f "$LOG" ] || { echo "summarize: no log $LOG" >&2; exit 1; }

grep -E '^(Ran [0-9]+ of|FAIL!|SUCCESS!)' "$LOG" || echo "(no final result line: the run did not finish)"
echo

sed 's/\x1b\[[0-9;]*m//g' "$LOG" | awk '
	# hexids: replaces runs of 12 or more hex digits (container, pod and image IDs) with <id>
	# (mawk has no {n,} intervals).
	function hexids(s,   out) {
		out = ""
		while (match(s, /[0-9a-f]+/)) {
			out = out substr(s, 1, RSTART - 1) (RLENGTH >= 12 ? "<id>" : substr(s, RSTART, RLENGTH))
			s = substr(s, RSTART + RLENGTH)
		}
		return out s
	}
	function record(m,   key) {
		key = norm(m)
		if (!(key in count)) { order[++n] = key; example[key] = m }
		count[key]++
		specs[key] = specs[key] "    " name "\n"
		want = 0
	}
	function norm(s) {
		s = hexids(s)
		gsub(/\/proc\/[0-9]+/, "/proc/<pid>", s)
		gsub(/[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(:[0-9]+)?/, "<addr>", s)
		gsub(/[0-9][0-9]:[0-9][0-9]:[0-9][0-9](\.[0-9]+)?/, "<time>", s)
		gsub(/podsandbox-[^ "]+|container-[^ "]+/, "<name>", s)
		if (length(s) > 400) s = substr(s, 1, 400) "..."
		return s
	}
	/^• \[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED)\]/ { want = 1; name = ""; next }
	want == 1 { name = $0; want = 2; next }
	want == 2 && /^  \[(FAILED|PANICKED|TIMEDOUT)\] / && !/\] in \[/ {
		msg = $0; sub(/^  \[[A-Z]+\] /, "", msg)
		# Generic headers ("Unexpected error:", "Expected") are followed by the detail: add its first lines.
		if (msg ~ /:$/ || msg ~ /^Expected$/ || msg ~ /^failed to [a-zA-Z ]+ "[0-9a-f]+"$/) { want = 3; extra = 0; next }
		record(msg)
		next
	}
	want == 3 {
		line = $0; sub(/^ +/, "", line)
		if (line ~ /^\{/ || line ~ /^In \[/ || line ~ /^-----/ || extra >= 3) { record(msg); next }
		if (line == "" || line ~ /^<[^>]*>:? *$/ || line ~ /^<\*[^>]*>: *$/ || line ~ /^Unexpected error:$/) next
		msg = msg " " line; extra++
		next
	}
	END {
		for (i = 1; i <= n; i++) {
			k = order[i]
			printf "== %d spec(s): %s\n%s", count[k], k, specs[k]
			if (example[k] != k) printf "    e.g. %s\n", substr(example[k], 1, 400)
			print ""
		}
	}'
