#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Attacks 1-4 and 6 of issue 2/6 against real sockets: the namespace lab
# (helpers/lab.bash, mseg on the router's client-facing veth, both hooks),
# an attacker namespace behind the router whose traffic mseg filters too
# (lab_attacker_setup), and connections whose ends act step by step
# (helpers/tcpctl.bash). The attacker forges segments (helpers/lab-forge.py,
# all of an attack's segments within microseconds): it knows the
# connection's addresses and ports, not its sequence numbers.
#
# Policy: default deny, and one exact rule allowing the client to reach the
# server. Timeouts of the closing states are 1 s: had an attack moved the
# session to FIN_WAIT, TIME_WAIT or CLOSE, it would be gone 1 s later and
# the server's next segment, judged as a new server -> client flow, denied.
# So after each attack the server speaks first, then the client, and
# `mseg sessions` must still say ESTABLISHED. attacks_flood_lab.bats has
# attacks 5, 7 and 8; attacks.bats the same attacks frame by frame.

# shellcheck disable=SC2153 # LAB_C, LAB_S, ...: set by lab_setup (lab.bash)

load helpers/common
load helpers/lab
load helpers/tcpctl

PORT=5200

setup_file() {
	require_build
	lab_setup
	lab_attacker_setup
	tcpctl_start "$PORT" 400
}

teardown_file() {
	lab_teardown
}

setup() {
	require_build
	need "the lab came up" test -n "${LAB_PROG_ID:-}"
	need "the step server runs" test -e "$TCPCTL/server.ready"
	rules_track_init
	mseg_rule add --src "$LAB_C4" --dst "$LAB_S4" --proto tcp --dport "$PORT" --action allow
	rule_track --src "$LAB_C4" --dst "$LAB_S4" --proto tcp --dport "$PORT"
	mseg default deny
	local k
	for k in timeout_fin_wait timeout_time_wait timeout_close timeout_close_wait \
		timeout_last_ack; do
		mseg config set "$k" 1
	done
}

teardown() {
	rules_cleanup
	if [[ -n ${LAB_R:-} ]]; then
		mseg default allow
		mseg config set strict off
		local k
		for k in timeout_fin_wait timeout_time_wait timeout_close timeout_close_wait \
			timeout_last_ack; do
			mseg config set "$k" 0
		done
	fi
}

# seen_more N: wait until the classifier has seen N packets since
# stats_save (it sees a forged segment once or twice, and other packets too).
seen_more() {
	wait_until 30 stat_above total $(($(jq -r .total <<<"$MSEG_STATS_SAVED") + $1 - 1))
}

# blind: a 32-bit number the attacker picks (it cannot know the real ones).
blind() { echo $((((RANDOM << 17) ^ (RANDOM << 5) ^ RANDOM) & 0xffffffff)); }

# forge SEGMENT...: lab-forge.py's segments (SRC:SPORT,DST:DPORT,FLAGS,SEQ,ACK
# [,badsum]), sent from the attacker namespace one right after the other.
forge() {
	printf 'forged: %s\n' "$@"
	ip netns exec "$LAB_A" timeout 10 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-forge.py" "$@"
}

# state_of SPORT: the state `mseg sessions` shows for the client's
# connection from SPORT to the step server.
state_of() {
	mseg sessions --json | jq -r --arg c "$LAB_C4" --arg s "$LAB_S4" \
		--argjson p "$1" --argjson d "$PORT" '
		[.[] | select(.proto == "tcp" and .src == $c and .sport == $p
			and .dst == $s and .dport == $d) | .state]
		| if length == 0 then "none" else join(",") end'
}

# still_talks NAME ROUND: after an attack, wait past the short timeouts;
# then the server speaks first, the client answers (10 bytes each, ROUND
# sends so far on each side), and the session is ESTABLISHED.
still_talks() {
	local name=$1 n=$2
	sleep 1.5
	tcpctl_do "$name" srv send
	tcpctl_do "$name" cli "got $((10 * n))"
	tcpctl_do "$name" cli send
	tcpctl_do "$name" srv "got $((10 * n))"
	assert_eq "mseg sessions: $name" ESTABLISHED "$(state_of "$TCPCTL_SPORT")"
}

# connected NAME: a new connection NAME that exchanged 10 bytes each way.
connected() {
	tcpctl_open "$1" "$LAB_S4" "$PORT"
	tcpctl_do "$1" cli send
	tcpctl_do "$1" srv "got 10"
	tcpctl_do "$1" srv send
	tcpctl_do "$1" cli "got 10"
	assert_eq "mseg sessions: $1" ESTABLISHED "$(state_of "$TCPCTL_SPORT")"
}

@test "lab attack 1: a SYN+ACK the client never asked for does not let the server connect to it" {
	connected a1
	# the issue's policy: allow C -> S (any port), default deny
	mseg_rule add --src "$LAB_C4" --dst "$LAB_S4" --action allow
	rule_track --src "$LAB_C4" --dst "$LAB_S4"
	# something listening on the client, which the policy protects
	local ready=$LAB_DIR/a1.listen.ready
	_lab_bg "$LAB_C" "$LAB_DIR/a1.listen.log" timeout 60 "$MSEG_PYTHON" \
		"$MSEG_HELPERS/lab-echo.py" --tcp 5301 --ready "$ready" --life 50
	wait_until 50 test -e "$ready"
	# the server: one SYN+ACK with a bad checksum (the client stays
	# silent), then its own SYN from the same port
	stats_save
	ip netns exec "$LAB_S" timeout 10 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-forge.py" \
		"$LAB_S4:5302,$LAB_C4:5301,SA,$(blind),$(blind),badsum"
	seen_more 1
	run ip netns exec "$LAB_S" timeout 10 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" \
		tcp "$LAB_C4" 5301 --sport 5302 --timeout 2
	echo "server -> client connection: status $status: $output"
	[ "$status" -ne 0 ]
	[ "$(sessions_between "$LAB_C4" "$LAB_S4")" = 1 ]
	still_talks a1 2
	(($(stat_delta invalid) >= 1))
	(($(stat_delta denied) >= 2))
}

@test "lab attack 2: blind FINs (and the ACKs that would finish the job) change nothing" {
	connected a2
	stats_save
	local c=$LAB_C4:$TCPCTL_SPORT s=$LAB_S4:$PORT
	forge "$c,$s,FA,$(blind),$(blind)" "$s,$c,FA,$(blind),$(blind)" \
		"$s,$c,A,$(blind),$(blind)" "$c,$s,A,$(blind),$(blind)"
	seen_more 4
	still_talks a2 2
	[ "$(stat_delta tcp_closed)" = 0 ]
	(($(stat_delta out_of_window) >= 4))
}

@test "lab attack 3: a forged ACK does not move the point a blind RST is checked against" {
	connected a3
	local x
	x=$(blind)
	stats_save
	# the server "acknowledges" up to x; then the client "resets" at x
	forge "$LAB_S4:$PORT,$LAB_C4:$TCPCTL_SPORT,A,$(blind),$x" \
		"$LAB_C4:$TCPCTL_SPORT,$LAB_S4:$PORT,R,$x,0"
	seen_more 2
	still_talks a3 2
	[ "$(stat_delta tcp_closed)" = 0 ]
	(($(stat_delta rst_ignored) >= 1))
	(($(stat_delta out_of_window) >= 2))
}

@test "lab attack 4: an RST inside the window but not at the next sequence number closes nothing" {
	connected a4
	# what this attacker has guessed: both ends' next sequence numbers
	# (the client's is the originator's record, tcp[0])
	local next srv_next
	read -r next srv_next < <(map_dump mseg_sessions | jq -r --argjson p "$TCPCTL_SPORT" '
		.[].formatted | select(.key.proto == 6 and (.key.port_lo == $p or .key.port_hi == $p))
		| "\(.value.tcp[0].seq_end) \(.value.tcp[1].seq_end)"')
	[[ $next =~ ^[0-9]+$ && $srv_next =~ ^[0-9]+$ ]]
	stats_save
	# in the window, not at the next sequence number
	forge "$LAB_C4:$TCPCTL_SPORT,$LAB_S4:$PORT,R,$((next + 1000)),0" \
		"$LAB_C4:$TCPCTL_SPORT,$LAB_S4:$PORT,RA,$((next + 20000)),$srv_next"
	seen_more 2
	still_talks a4 2
	[ "$(stat_delta tcp_closed)" = 0 ]
	(($(stat_delta rst_ignored) >= 2))
	[ "$(stat_delta out_of_window)" = 0 ]
}

@test "lab attack 6: mseg gc in a loop during 10,000 rapid port reuses deletes no live session" {
	# strict mode: a SYN+ACK whose session gc deleted is dropped (counted
	# invalid) and the connection waits for a second SYN, or fails
	mseg config set strict on
	mseg default allow
	local ready=$LAB_DIR/echo6.ready
	_lab_bg "$LAB_S" "$LAB_DIR/echo6.log" timeout 200 "$MSEG_PYTHON" \
		"$MSEG_HELPERS/lab-echo.py" --tcp 5210 --ready "$ready" --life 190
	wait_until 50 test -e "$ready"
	# gc sweeps back to back until told to stop (3 minutes at most)
	local stop=$BATS_TEST_TMPDIR/stop runs=$BATS_TEST_TMPDIR/gc.runs
	(
		n=0
		end=$((SECONDS + 180))
		while [[ ! -e $stop ]] && ((SECONDS < end)); do
			"$MSEG_SCRIPTS/mseg" gc >/dev/null 2>&1 || true
			n=$((n + 1))
		done
		echo "$n" >"$runs"
	) 3>&- &
	LAB_PIDS+=($!)
	local gc_loop=$!
	stats_save
	run ip netns exec "$LAB_C" timeout 170 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-reuse.py" \
		"$LAB_S4" 5210 --ports 41000-41249 --count 10000 --life 160
	touch "$stop"
	wait "$gc_loop" || true
	echo "reuse: $output"
	echo "gc runs meanwhile: $(cat "$runs" 2>/dev/null)"
	echo "counters: $(stats_delta_json)"
	[ "$status" = 0 ]
	(($(jq .connections <<<"$output") >= 10000))
	[ "$(jq .failed <<<"$output")" = 0 ]
	# a session deleted under a connection: its next segment (the SYN+ACK)
	# finds none, and strict mode drops it as invalid
	[ "$(stat_delta invalid)" = 0 ]
	[ "$(stat_delta dropped)" = 0 ]
	(($(cat "$runs") >= 30))
}
