# shellcheck shell=bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Real TCP connections in the namespace lab (lab.bash) whose two ends act
# only when told to (helpers/lab-tcpctl.py): a step server in the server
# namespace, clients in the client namespace, and one command at a time to
# either end of a connection.
#
#   tcpctl_start PORT [LIFE]       the step server (TCPCTL: its directory)
#   tcpctl_open NAME ADDR PORT     a client connection NAME, established and
#                                  one line exchanged each way; sets
#                                  TCPCTL_SPORT (its client port) and
#                                  TCPCTL_PID
#   tcpctl_do NAME cli|srv CMD     one command (send, got N, shutdown, close,
#                                  abort, quit) to that end; fails unless it
#                                  answers "ok"
#
# Requires common.bash and lab.bash.

declare -gA TCPCTL_N=()

tcpctl_start() {
	local port=$1 life=${2:-290}
	TCPCTL=$LAB_DIR/ctl
	export TCPCTL
	mkdir -p "$TCPCTL"
	_lab_bg "$LAB_S" "$LAB_DIR/ctl.log" timeout $((life + 10)) "$MSEG_PYTHON" \
		"$MSEG_HELPERS/lab-tcpctl.py" server "$port" "$TCPCTL" --life "$life"
	wait_until 50 test -e "$TCPCTL/server.ready" || {
		cat "$LAB_DIR/ctl.log" >&2
		return 1
	}
}

# tcpctl_client NAME ADDR PORT: start the client of NAME (in the background)
# without waiting for anything; TCPCTL_PID is its pid.
# shellcheck disable=SC2034 # TCPCTL_PID and TCPCTL_SPORT are the suites'
tcpctl_client() {
	local name=$1
	TCPCTL_N[$name.cli]=0
	TCPCTL_N[$name.srv]=0
	_lab_bg "$LAB_C" "$TCPCTL/$name.log" timeout 70 "$MSEG_PYTHON" \
		"$MSEG_HELPERS/lab-tcpctl.py" client "$2" "$3" "$TCPCTL" "$name" --life 60
	TCPCTL_PID=${LAB_PIDS[-1]}
}

# shellcheck disable=SC2034
tcpctl_open() {
	local name=$1
	tcpctl_client "$@"
	wait_until 50 test -e "$TCPCTL/$name/sport" || {
		echo "connection $name did not open: $(cat "$TCPCTL/$name.log")" >&2
		return 1
	}
	TCPCTL_SPORT=$(<"$TCPCTL/$name/sport")
}

tcpctl_do() {
	local name=$1 who=$2 cmd=$3 n dir=$TCPCTL/$1
	n=$((TCPCTL_N[$name.$who] + 1))
	TCPCTL_N[$name.$who]=$n
	echo "$cmd" >"$dir/$who.cmd.$n.tmp"
	mv "$dir/$who.cmd.$n.tmp" "$dir/$who.cmd.$n"
	wait_until 60 test -e "$dir/$who.res.$n" || {
		echo "$name: $who did not answer '$cmd'" >&2
		return 1
	}
	[[ $(<"$dir/$who.res.$n") == ok ]] || {
		echo "$name: $who $cmd: $(<"$dir/$who.res.$n")" >&2
		return 1
	}
}
