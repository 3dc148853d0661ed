# Shell helpers shared by the scripts that start a private runtime (hack/critest/run.sh, hack/e2e-node/run.sh):
# source it, then call the functions in their cleanup traps.

# unmount_under DIR [below]: unmounts every mount point at or below DIR (only below it with "below"), deepest and
# latest first; lazily on later passes.
unmount_under() {
	local top=$1 self=1 pass mps mp
	[ "${2:-}" != below ] || self=0
	for pass in 1 2 3; do
		mps=$(awk -v r="$top" -v self=$self '{ mp = $5; gsub(/\\040/, " ", mp); if ((self && mp == r) || index(mp, r "/") == 1) print mp }' \
			/proc/self/mountinfo | tac)
		[ -n "$mps" ] || return 0
		while IFS= read -r mp; do
			[ -n "$mp" ] || continue
			umount "$mp" 2>/dev/null || { [ $pass -ge 2 ] && umount -l "$mp" 2>/dev/null; } || true
		done <<<"$mps"
	done
	mps=$(awk -v r="$top" -v self=$self '{ mp = $5; if ((self && mp == r) || index(mp, r "/") == 1) print mp }' /proc/self/mountinfo)
	[ -z "$mps" ] || { echo "cleanup: still mounted:" >&2; echo "$mps" >&2; }
}

# remove_cgroup DIR: removes the cgroup directory DIR and those below it, depth first, retrying while the last
# processes leave; says which processes are left if it cannot.
remove_cgroup() {
	local top=$1 try left
	[ -d "$top" ] || return 0
	for try in 1 2 3 4 5; do
		find "$top" -depth -type d -exec rmdir {} \; 2>/dev/null || true
		[ -d "$top" ] || return 0
		sleep 0.5
	done
	left=$(find "$top" -name cgroup.procs -exec cat {} + 2>/dev/null | tr '\n' ' ')
	echo "cleanup: could not remove cgroup $top (processes: ${left:-none})" >&2
}
