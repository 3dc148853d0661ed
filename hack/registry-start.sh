#!/bin/sh
# Start Debian's docker-registry (distribution v2) on 127.0.0.1:PORT, storing
# in DIR, in the background. Idempotent: does nothing if the registry recorded
# in DIR/registry.pid is still running and answering.
#
#   hack/registry-start.sh [PORT] [DIR]     (defaults: 5000, /var/lib/noded-test-registry-PORT)
#
# Stop it with hack/registry-stop.sh [PORT] [DIR].
set -eu

PORT=${1:-5000}
DIR=${2:-/var/lib/noded-test-registry-$PORT}
BIN=${DOCKER_REGISTRY:-/usr/bin/docker-registry}
PIDFILE=$DIR/registry.pid
LOG=$DIR/registry.log
URL=http://127.0.0.1:$PORT/v2/

case $PORT in
	''|*[!0-9]*) echo "registry-start: bad port '$PORT'" >&2; exit 2 ;;
esac
[ -x "$BIN" ] || { echo "registry-start: $BIN not found (apt-get install docker-registry)" >&2; exit 1; }

answers() {
	# /v2/ answers 200 (or 401 with auth) once the registry is up.
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL" 2>/dev/null || true)
	[ "$code" = 200 ] || [ "$code" = 401 ]
}

running() {
	[ -f "$PIDFILE" ] || return 1
	pid=$(cat "$PIDFILE")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	# Guard against a recycled PID: it must still be the registry binary.
	[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$BIN")" ]
}

if running; then
	if answers; then
		echo "registry already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), storage $DIR)"
		exit 0
	fi
	echo "registry-start: pid $(cat "$PIDFILE") is running but $URL does not answer" >&2
	exit 1
fi
if answers; then
	echo "registry-start: something else already answers on $URL" >&2
	exit 1
fi

mkdir -p "$DIR/storage"
cat > "$DIR/config.yml" <<CONF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DIR/storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$PORT
  headers:
    X-Content-Type-Options: [nosniff]
CONF

# setsid: detach from the caller's session so the registry outlives it.
setsid "$BIN" serve "$DIR/config.yml" >>"$LOG" 2>&1 </dev/null &
echo $! > "$PIDFILE"

i=0
while ! answers; do
	i=$((i + 1))
	if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
		echo "registry-start: registry exited; log $LOG:" >&2
		tail -n 20 "$LOG" >&2
		rm -f "$PIDFILE"
		exit 1
	fi
	if [ $i -ge 100 ]; then
		echo "registry-start: $URL did not answer within 10s; log $LOG" >&2
		exit 1
	fi
	sleep 0.1
done
echo "registry running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), storage $DIR)"
