#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The TCP state machine against real sockets: in the namespace lab
# (helpers/lab.bash, mseg on the router's client-facing veth, both hooks),
# a client and a server driven step by step (helpers/lab-tcpctl.py) close
# their connection in every way; after each step the state `mseg sessions
# --json` reports for that connection must be the client socket's state as
# `ss -tan` prints it in the client namespace, and CLOSE once the client
# socket is gone. IPv4 and IPv6.
#
# To hold a connection in FIN_WAIT1, LAST_ACK or CLOSING, the router drops
# what the client sends to the server for a while (a blackhole route to the
# server, behind mseg: mseg sees the segments, the server does not), then
# lets the client's retransmissions through. The client's routes carry
# rto_min 20ms, so those retransmissions come within a few hundred ms.

# shellcheck disable=SC2153 # LAB_C, LAB_S, ...: set by lab_setup (lab.bash)

load helpers/common
load helpers/lab

PORT=5100

setup_file() {
	require_build
	lab_setup
	ip -n "$LAB_C" route replace default via "$LAB_R4C" rto_min 20ms
	ip -n "$LAB_C" -6 route replace default via "$LAB_R6C" rto_min 20ms
	CTL=$LAB_DIR/ctl
	export CTL
	mkdir -p "$CTL"
	_lab_bg "$LAB_S" "$LAB_DIR/ctl.log" timeout -k 5 300 "$MSEG_PYTHON" \
		"$MSEG_HELPERS/lab-tcpctl.py" server "$PORT" "$CTL" --life 290
	wait_until 50 test -e "$CTL/server.ready" || {
		cat "$LAB_DIR/ctl.log" >&2
		return 1
	}
}

teardown_file() {
	lab_teardown
}

setup() {
	require_build
	need "the lab came up" test -n "${LAB_PROG_ID:-}"
	need "the step server runs" test -e "$CTL/server.ready"
	CLIENT_PIDS=()
}

teardown() {
	local pid
	for pid in ${CLIENT_PIDS[@]+"${CLIENT_PIDS[@]}"}; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in ${CLIENT_PIDS[@]+"${CLIENT_PIDS[@]}"}; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n ${LAB_R:-} ]]; then
		ip -n "$LAB_R" route del blackhole "$LAB_S4/32" 2>/dev/null || true
		ip -n "$LAB_R" -6 route del blackhole "$LAB_S6/128" 2>/dev/null || true
	fi
}

# use FAMILY: the client C and server S addresses of that family.
use() {
	FAM=$1
	if [[ $1 == 4 ]]; then
		C=$LAB_C4 S=$LAB_S4 PEER=$LAB_S4:$PORT HOST=$LAB_S4/32
	else
		C=$LAB_C6 S=$LAB_S6 PEER=[$LAB_S6]:$PORT HOST=$LAB_S6/128
	fi
}

fail_msg() {
	echo "$*" >&2
	return 1
}

# open NAME [--syn-sent]: a new connection from the client, established and
# one message exchanged each way. Sets CONN and SPORT. With --syn-sent, the
# first SYN goes into the blackhole, and the client must be seen in SYN_SENT
# before the retransmitted SYN gets through.
open() {
	CONN=$1$FAM
	[[ ${2:-} == --syn-sent ]] && blackhole on
	_lab_bg "$LAB_C" "$CTL/$CONN.log" timeout -k 5 70 "$MSEG_PYTHON" \
		"$MSEG_HELPERS/lab-tcpctl.py" client "$S" "$PORT" "$CTL" "$CONN" --life 60
	CLIENT_PIDS+=("${LAB_PIDS[-1]}")
	if [[ ${2:-} == --syn-sent ]]; then
		wait_until 50 test -e "$CTL/$CONN/port" ||
			fail_msg "IPv$FAM $CONN: no client port: $(cat "$CTL/$CONN.log")"
		SPORT=$(<"$CTL/$CONN/port")
		expect SYN-SENT
		blackhole off
	fi
	wait_until 50 test -e "$CTL/$CONN/sport" ||
		fail_msg "IPv$FAM connection $CONN did not open: $(cat "$CTL/$CONN.log")"
	SPORT=$(<"$CTL/$CONN/sport")
	# shellcheck disable=SC2034 # do_() counts through a nameref
	N_cli=0 N_srv=0
}

# do_ cli|srv COMMAND: one command to the client or to the server's end.
do_() {
	local who=$1 cmd=$2 n dir=$CTL/$CONN
	local -n cnt=N_$who
	cnt=$((cnt + 1))
	n=$cnt
	echo "$cmd" >"$dir/$who.cmd.$n.tmp"
	mv "$dir/$who.cmd.$n.tmp" "$dir/$who.cmd.$n"
	wait_until 50 test -e "$dir/$who.res.$n" ||
		fail_msg "IPv$FAM $CONN: $who did not answer '$cmd'"
	[[ $(<"$dir/$who.res.$n") == ok ]] ||
		fail_msg "IPv$FAM $CONN: $who $cmd: $(<"$dir/$who.res.$n")"
}

# blackhole on|off: the router drops (or again forwards) traffic to S.
blackhole() {
	if [[ $1 == on ]]; then
		ip -n "$LAB_R" route add blackhole "$HOST"
	else
		ip -n "$LAB_R" route del blackhole "$HOST"
	fi
}

# ss_state: the client socket's state as ss prints it, or "gone".
ss_state() {
	local out st peer
	out=$(ip netns exec "$LAB_C" ss -Htan "sport = :$SPORT") || return 1
	while read -r st _ _ _ peer _; do
		if [[ $peer == "$PEER" ]]; then
			echo "$st"
			return 0
		fi
	done <<<"$out"
	echo gone
}

# mseg_state: the connection's state in `mseg sessions --json`, or "none".
mseg_state() {
	local out
	out=$(mseg sessions --json) || return 1
	jq -r --arg c "$C" --arg s "$S" --argjson p "$SPORT" --argjson d "$PORT" '
		[.[] | select(.proto == "tcp" and .src == $c and .sport == $p
			and .dst == $s and .dport == $d) | .state]
		| if length == 0 then "none" else join(",") end' <<<"$out"
}

declare -gA AS_MSEG=([ESTAB]=ESTABLISHED [SYN-SENT]=SYN_SENT [SYN-RECV]=SYN_RECV
	[FIN-WAIT-1]=FIN_WAIT1 [FIN-WAIT-2]=FIN_WAIT2 [TIME-WAIT]=TIME_WAIT
	[CLOSE-WAIT]=CLOSE_WAIT [LAST-ACK]=LAST_ACK [CLOSING]=CLOSING [gone]=CLOSE)

# expect SS-STATE: once the client socket has settled in SS-STATE (ss's
# name, "gone" for no socket), mseg must report the same state for the
# connection (CLOSE for "gone").
expect() {
	local want=$1 ss ms i
	for ((i = 0; i < 60; i++)); do
		ss=$(ss_state) || return 1
		[[ $ss == "$want" ]] && break
		sleep 0.05
	done
	[[ $ss == "$want" ]] ||
		fail_msg "IPv$FAM $CONN: the client socket is $ss, the test expected $want"
	for ((i = 0; i < 20; i++)); do
		ms=$(mseg_state) || return 1
		[[ $ms == "${AS_MSEG[$want]}" ]] && break
		sleep 0.05
	done
	ss=$(ss_state) || return 1
	assert_eq "IPv$FAM $CONN (port $SPORT): mseg sessions vs ss $ss" "${AS_MSEG[$ss]:-$ss}" "$ms"
}

@test "client closes first: SYN_SENT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT as the client sees them" {
	for fam in 4 6; do
		use $fam
		open a --syn-sent
		expect ESTAB
		do_ cli send
		expect ESTAB
		# the server never sees the FIN: the client waits in FIN_WAIT1
		blackhole on
		do_ cli close
		expect FIN-WAIT-1
		blackhole off
		# the retransmitted FIN is acknowledged
		expect FIN-WAIT-2
		do_ srv close
		expect TIME-WAIT
	done
}

@test "server closes first: CLOSE_WAIT, LAST_ACK, then CLOSE when the client socket is gone" {
	for fam in 4 6; do
		use $fam
		open b
		expect ESTAB
		do_ srv send
		do_ srv close
		expect CLOSE-WAIT
		blackhole on
		do_ cli close
		expect LAST-ACK
		blackhole off
		# the server acknowledges the retransmitted FIN: the socket is gone
		expect gone
	done
}

@test "the client aborts with an RST (SO_LINGER 0): CLOSE, from ESTABLISHED and from CLOSE_WAIT" {
	for fam in 4 6; do
		use $fam
		open c
		expect ESTAB
		do_ cli send
		do_ cli abort
		expect gone
		open cw
		do_ srv close
		expect CLOSE-WAIT
		do_ cli abort
		expect gone
	done
}

@test "both shut down at once: the FINs cross, CLOSING, then TIME_WAIT" {
	for fam in 4 6; do
		use $fam
		open d
		expect ESTAB
		# the client's FIN (and later its ACK) reach mseg but not the
		# server, so the server's FIN crosses it
		blackhole on
		do_ cli shutdown
		expect FIN-WAIT-1
		do_ srv shutdown
		expect CLOSING
		blackhole off
		expect TIME-WAIT
	done
}
