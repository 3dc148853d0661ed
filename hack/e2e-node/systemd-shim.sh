#!/usr/bin/env bash
# A stand-in for systemd-run and systemctl on the node e2e suite's PATH (hack/e2e-node/run.sh installs it under both
# names), for hosts whose PID 1 is not systemd. It is just enough for what the suite does with kubelet:
#   - services/kubelet.go starts kubelet as a transient unit: `systemd-run -p Delegate=true
#     -p StandardError=append:LOG --unit=kubelet-<ts>.service --slice=runtime.slice --remain-after-exit CMD...`
#     (CMD with % and $ doubled), and `systemd-run --version`;
#   - the kubelet-restart specs (util.go findKubeletServiceName, restartKubelet, mustStopKubelet, and every kubelet
#     configuration change through withStoppedKubelet) run `systemctl list-units '*kubelet*' [--state=running]`,
#     `reset-failed`, `kill`, `restart` and, at the end, `stop` of that unit.
# A unit is a directory $E2E_UNIT_DIR/<name>.service with its command (NUL separated), its log file and the PID of
# its process (and that process's start time, against PID reuse), which runs detached with its output appended to the log. Nothing here touches the host's init:
# kill sends SIGTERM to the unit's process and returns; stop and restart wait for it to exit (SIGKILL after 30 s).
# The run's cleanup kills what is left (the kubelet's command line names the run dir).
set -euo pipefail
UNITS=${E2E_UNIT_DIR:?E2E_UNIT_DIR is not set}
mkdir -p "$UNITS"

# unit_dir NAME: the unit's directory (NAME with or without .service).
unit_dir() { echo "$UNITS/${1%.service}.service"; }

# proc_start PID: the process's start time (clock ticks since boot; stat field 22), with its state (field 3).
proc_start() {
	local st
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	# shellcheck disable=SC2086 # the fields after the command name
	set -- $st
	[ $# -ge 20 ] || return 1
	echo "${20} $1"
}

# unit_pid NAME: the PID of the unit's process while it runs (not a zombie, not a reused PID), else status 1.
unit_pid() {
	local d p now
	d=$(unit_dir "$1")
	p=$(cat "$d/pid" 2>/dev/null) || return 1
	[ -n "$p" ] || return 1
	now=$(proc_start "$p") || return 1
	case ${now#* } in Z | X) return 1 ;; esac
	[ "${now% *}" = "$(cat "$d/start" 2>/dev/null)" ] || return 1
	echo "$p"
}

start_unit() {
	local d cmd=()
	d=$(unit_dir "$1")
	[ -f "$d/cmd" ] || { echo "Unit $1 not found." >&2; return 5; }
	unit_pid "$1" >/dev/null && return 0
	mapfile -d '' -t cmd <"$d/cmd"
	"${cmd[@]}" >>"$(cat "$d/log")" 2>&1 </dev/null &
	local p=$! now
	now=$(proc_start "$p") || now=gone
	echo "${now% *}" >"$d/start"
	echo "$p" >"$d/pid"
}

# stop_unit NAME: SIGTERM, then SIGKILL after 30 s; returns when the process is gone.
stop_unit() {
	local p i
	p=$(unit_pid "$1") || return 0
	kill -TERM "$p" 2>/dev/null || true
	for i in $(seq 1 300); do
		unit_pid "$1" >/dev/null || return 0
		[ "$i" -lt 300 ] || kill -KILL "$p" 2>/dev/null || true
		sleep 0.1
	done
	while unit_pid "$1" >/dev/null; do sleep 0.1; done
}

systemd_run() {
	local unit="" log=/dev/null v
	while [ $# -gt 0 ]; do
		case $1 in
		--version) echo "systemd 252 (noded e2e shim)"; return 0 ;;
		-p) v=$2; shift 2
			case $v in StandardError=append:* | StandardError=file:*) log=${v#StandardError=*:} ;; esac ;;
		--unit=*) unit=${1#--unit=}; shift ;;
		--slice=* | --remain-after-exit | --collect | --no-block) shift ;;
		--) shift; break ;;
		-*) echo "systemd-run (shim): unsupported option $1" >&2; return 1 ;;
		*) break ;;
		esac
	done
	[ $# -gt 0 ] || { echo "systemd-run (shim): no command" >&2; return 1; }
	[ -n "$unit" ] || unit=run-$$.service
	local d a
	d=$(unit_dir "$unit")
	if unit_pid "$unit" >/dev/null; then echo "Failed to start transient service unit: Unit $unit already exists." >&2; return 1; fi
	mkdir -p "$d"
	# systemd expands % specifiers and $ variables: the suite doubles them
	for a in "$@"; do a=${a//%%/%}; printf '%s\0' "${a//\$\$/\$}"; done >"$d/cmd"
	echo "$log" >"$d/log"
	start_unit "$unit"
	echo "Running as unit: ${unit%.service}.service" >&2
}

systemctl_cmd() {
	local verb="" state="" args=() u d
	for a in "$@"; do
		case $a in
		--state=*) state=${a#--state=} ;;
		--no-pager | --no-legend | --quiet | -q) ;;
		-*) echo "systemctl (shim): unsupported option $a" >&2; return 1 ;;
		*) if [ -z "$verb" ]; then verb=$a; else args+=("$a"); fi ;;
		esac
	done
	case $verb in
	list-units)
		echo "  UNIT LOAD ACTIVE SUB DESCRIPTION"
		for d in "$UNITS"/*.service; do
			[ -d "$d" ] || continue
			u=$(basename "$d")
			# shellcheck disable=SC2053 # the pattern is a glob, as systemctl's
			[ ${#args[@]} = 0 ] || [[ $u == ${args[0]} ]] || continue
			if unit_pid "$u" >/dev/null; then
				echo "  $u loaded active running e2e shim unit"
			elif [ "$state" != running ]; then
				echo "  $u loaded active exited e2e shim unit"
			fi
		done ;;
	reset-failed | daemon-reload) ;;
	kill)
		for u in "${args[@]}"; do
			[ -d "$(unit_dir "$u")" ] || { echo "Failed to kill unit $u: Unit not loaded." >&2; return 1; }
			if d=$(unit_pid "$u"); then kill -TERM "$d" 2>/dev/null || true; fi
		done ;;
	stop) for u in "${args[@]}"; do stop_unit "$u"; done ;;
	start) for u in "${args[@]}"; do start_unit "$u"; done ;;
	restart) for u in "${args[@]}"; do stop_unit "$u"; start_unit "$u"; done ;;
	is-active)
		for u in "${args[@]}"; do unit_pid "$u" >/dev/null || { echo inactive; return 3; }; echo active; done ;;
	*) echo "systemctl (shim): unsupported command '$verb'" >&2; return 1 ;;
	esac
}

case $(basename "$0") in
systemd-run) systemd_run "$@" ;;
systemctl) systemctl_cmd "$@" ;;
*) echo "systemd-shim: install as systemd-run or systemctl" >&2; exit 2 ;;
esac
