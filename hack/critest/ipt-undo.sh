#!/usr/bin/env bash
# ipt-undo.sh snapshot DIR           save iptables-save/ip6tables-save output to DIR
# ipt-undo.sh undo DIR MARKER_REGEX  remove what a run added since the snapshot in DIR
#
# "What a run added" is the rules and chains present now but not in the snapshot, limited to those the run
# can be held responsible for, so that rules other processes add at the same time are left alone:
#   - a new rule whose text matches MARKER_REGEX (e.g. the CNI network name, bridge or pod subnet);
#   - a new rule inside, or jumping to, a new chain that holds or is the target of such a rule
#     (the per-pod CNI-xxxx / CNI-DN-xxxx chains), repeated until nothing more is found;
#   - portmap's shared CNI-HOSTPORT-* chains and the rules jumping to them, when they are new and no
#     port mapping of anyone else is left in them.
# New rules and chains that are not attributable are listed on stderr and left in place.
# IPT_UNDO_SHARED=keep leaves the shared CNI-HOSTPORT-* chains (and the rules jumping to them) alone, for runs
# that share them with others (hack/bench/lib.sh); =only removes just those (new since DIR's snapshot, no port
# mapping left in them) and lists nothing else.
# Each deletion is its own iptables-restore --noflush transaction, so one failure does not stop the rest.
set -uo pipefail

usage() { echo "usage: $0 snapshot DIR | undo DIR MARKER_REGEX" >&2; exit 2; }

families() {
	for f in iptables ip6tables; do
		if command -v "$f-save" >/dev/null 2>&1 && command -v "$f-restore" >/dev/null 2>&1; then echo "$f"; fi
	done
}

# plan BEFORE AFTER MARKER: prints actions, one per line: "TABLE<TAB>-D CHAIN ...", "-F CHAIN", "-X CHAIN",
# and "leave<TAB>..." for additions that are not attributable.
plan() {
	awk -v marker="$3" -v shared="${IPT_UNDO_SHARED:-}" '
	function target(line,   n, w, i) {
		n = split(line, w, " ")
		for (i = 1; i < n; i++) if (w[i] == "-j" || w[i] == "-g") return w[i + 1]
		return ""
	}
	/^\*/ { t = substr($0, 2); next }
	/^:/ {
		c = substr($1, 2)
		if (FILENAME == ARGV[1]) bchain[t, c] = 1
		else { nc++; ct[nc] = t; cn[nc] = c; achain[t, c] = 1 }
		next
	}
	/^-A / {
		if (FILENAME == ARGV[1]) { bcnt[t, $0]++; next }
		if (bcnt[t, $0] > 0) { bcnt[t, $0]--; next }
		nr++; rt[nr] = t; rl[nr] = $0; rc[nr] = $2; rtg[nr] = target($0)
		next
	}
	END {
		# Built-in chains are never new (a snapshot of a table not loaded yet has none).
		for (k = 1; k <= nc; k++) if (!((ct[k], cn[k]) in bchain) && cn[k] !~ /^(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING)$/) newc[ct[k], cn[k]] = 1
		for (i = 1; i <= nr; i++) if (rl[i] ~ marker) mine[i] = 1
		# Per-pod chains: new, not shared, holding or targeted by a rule of ours.
		do {
			changed = 0
			for (i = 1; i <= nr; i++) {
				if (mine[i]) {
					split("", cand)
					cand[rc[i]] = 1
					if (rtg[i] != "") cand[rtg[i]] = 1
					for (c in cand) if (((rt[i], c) in newc) && c !~ /^CNI-HOSTPORT-/ && !((rt[i], c) in minec)) {
						minec[rt[i], c] = 1; changed = 1
					}
				} else if (((rt[i], rc[i]) in minec) || (rtg[i] != "" && ((rt[i], rtg[i]) in minec))) {
					mine[i] = 1; changed = 1
				}
			}
		} while (changed)
		# Shared portmap chains: removable when new and nobody else maps ports through them.
		othersmap = 0
		for (i = 1; i <= nr; i++) if (!mine[i] && rc[i] ~ /^CNI-HOSTPORT-/ && (rtg[i] ~ /^CNI-DN-/ || rl[i] ~ /name: /)) othersmap = 1
		for (k = 1; k <= nc; k++) if (cn[k] ~ /^CNI-DN-/ && !((ct[k], cn[k]) in minec)) othersmap = 1
		if (shared != "keep" && !othersmap) {
			for (k = 1; k <= nc; k++) if (cn[k] ~ /^CNI-HOSTPORT-/ && ((ct[k], cn[k]) in newc)) minec[ct[k], cn[k]] = 1
			for (i = 1; i <= nr; i++) if (((rt[i], rc[i]) in minec) || (rtg[i] != "" && ((rt[i], rtg[i]) in minec))) mine[i] = 1
		}
		for (i = 1; i <= nr; i++) {
			if (mine[i]) { r = rl[i]; sub(/^-A /, "-D ", r); print rt[i] "\t" r }
			else if (shared != "only") print "leave\t" rt[i] ": " rl[i]
		}
		for (k = 1; k <= nc; k++) if ((ct[k], cn[k]) in minec) print ct[k] "\t-F " cn[k]
		for (k = 1; k <= nc; k++) if ((ct[k], cn[k]) in minec) print ct[k] "\t-X " cn[k]
		if (shared != "only") for (k = 1; k <= nc; k++) if (((ct[k], cn[k]) in newc) && !((ct[k], cn[k]) in minec)) print "leave\t" ct[k] ": chain " cn[k]
	}' "$1" "$2"
}

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || usage
case $cmd in
snapshot)
	mkdir -p "$dir"
	for f in $(families); do "$f-save" >"$dir/$f.before" || exit 1; done
	;;
undo)
	marker=${3:-}
	[ -n "$marker" ] || usage
	rc=0
	for f in $(families); do
		[ -f "$dir/$f.before" ] || { echo "ipt-undo: no snapshot $dir/$f.before" >&2; rc=1; continue; }
		"$f-save" >"$dir/$f.after" || { rc=1; continue; }
		while IFS=$'\t' read -r table action; do
			if [ "$table" = leave ]; then
				echo "ipt-undo: $f: not attributable to this run, left in place: $action" >&2
				continue
			fi
			if ! printf '*%s\n%s\nCOMMIT\n' "$table" "$action" | "$f-restore" --noflush; then
				echo "ipt-undo: $f -t $table $action failed" >&2
				rc=1
			fi
		done < <(plan "$dir/$f.before" "$dir/$f.after" "$marker")
	done
	exit $rc
	;;
*) usage ;;
esac
