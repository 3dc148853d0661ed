#!/bin/sh
# Stop a registry started by hack/registry-start.sh [PORT] [DIR]: signals
# only the PID in DIR/registry.pid, waits for it to exit, removes the pid
# file. Storage is kept.
set -eu

PORT=${1:-5000}
DIR=${2:-/var/lib/noded-test-registry-$PORT}
BIN=${DOCKER_REGISTRY:-/usr/bin/docker-registry}
PIDFILE=$DIR/registry.pid

if [ ! -f "$PIDFILE" ]; then
	echo "no registry pid file at $PIDFILE"
	exit 0
fi
pid=$(cat "$PIDFILE")
case $pid in
	''|*[!0-9]*) echo "registry-stop: bad pid file $PIDFILE" >&2; rm -f "$PIDFILE"; exit 1 ;;
esac
# alive: the process exists and is not a zombie waiting for its reaper.
alive() {
	[ -r "/proc/$pid/stat" ] || return 1
	state=$(sed 's/.*) \(.\).*/\1/' "/proc/$pid/stat" 2>/dev/null || echo Z)
	[ "$state" != Z ]
}

if alive && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$BIN")" ]; then
	kill -TERM "$pid"
	i=0
	while alive; do
		i=$((i + 1))
		if [ $i -ge 50 ]; then
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	echo "registry (pid $pid) stopped"
else
	echo "registry pid $pid is not running"
fi
rm -f "$PIDFILE"
