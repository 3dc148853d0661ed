#!/bin/sh
# Entrypoint of Dockerfile.test: prepares a privileged container's cgroup v2 hierarchy for noded, then runs the
# command. In a private cgroup namespace the container's processes sit in the root of its hierarchy, and cgroup
# v2 lets no cgroup both hold processes and delegate controllers to children: move them to a leaf, /init, and
# enable every controller for the subtree, so the tests can create pod and container cgroups beside it.
set -eu
cg=/sys/fs/cgroup
if [ "$(stat -fc %T "$cg" 2>/dev/null)" = cgroup2fs ] && [ -w "$cg/cgroup.subtree_control" ]; then
	mkdir -p "$cg/init"
	# Every process of the root, including this shell, moves; a process may exit meanwhile.
	while read -r pid; do echo "$pid" >"$cg/init/cgroup.procs" 2>/dev/null || true; done <"$cg/cgroup.procs"
	for c in $(cat "$cg/cgroup.controllers"); do echo "+$c" >"$cg/cgroup.subtree_control" 2>/dev/null || true; done
fi
exec "$@"
