#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# What a third party can do to mseg's connection tracking, frame by frame
# (issue 2/6): one test per attack, crafted segments through the program tc
# loaded on a veth (helpers/tcpwalk.bash), the session and the counters read
# back from the pinned maps. The attacker knows the 4-tuple of a connection
# but not its sequence numbers ("blind"), or sends packets that fit no
# connection at all. After each attack the connection must still carry data
# both ways and still be ESTABLISHED. tests/bats/attacks_lab.bats replays
# the same attacks with real sockets.
#
# 1-4 run on the default build, IPv4 and IPv6; 5, 7 and 8 on a 1024-entry
# build (levels: warning above 819 entries, critical above 921, degradation
# above 972); 6 on the default build with 100,000 synthetic sessions.
# shellcheck disable=SC2154 # bats sets $status and $stderr

bats_require_minimum_version 1.5.0

load helpers/common
load helpers/tcpwalk
load helpers/series

setup_file() {
	require_build
	SMALL=$BATS_FILE_TMPDIR/build
	make -s -C "$MSEG_ROOT" BUILD="$SMALL" MSEG_MAX_SESSIONS=1024 >/dev/null
	export SMALL
}

setup() {
	require_build
	# shellcheck disable=SC2034 # read by helpers/tcpwalk.bash
	FRAME=$BATS_TEST_TMPDIR/frame WALK_NO=0
	GC_LOOP_PID=""
	rules_track_init
}

teardown() {
	if [[ -n $GC_LOOP_PID ]]; then
		kill "$GC_LOOP_PID" 2>/dev/null || true
		wait "$GC_LOOP_PID" 2>/dev/null || true
	fi
	crafted_teardown
}

# bench [small]: this test's own classifier and maps (the 1024-entry build
# with "small").
bench() {
	if [[ ${1:-} == small ]]; then
		export MSEG_OBJ=$SMALL/mseg.bpf.o MSEG_ABI_BIN=$SMALL/mseg-abi \
			MSEG_GC_BIN=$SMALL/mseg-gc
	fi
	crafted_setup >/dev/null
	need "the classifier loaded" test -n "${PROG_ID:-}"
	# shellcheck disable=SC2034 # read by helpers/tcpwalk.bash
	SESS_PIN=$(pin mseg_sessions) STATS_PIN=$(pin mseg_stats)
}

allow_rule() {
	mseg_rule add "$@" --action allow >/dev/null
	rule_track "$@"
}

monitor_field() { mseg monitor --once --json | jq -r ".$1"; }

# data_both_ways: the current connection still carries data in both
# directions and stays ESTABLISHED.
data_both_ways() {
	more c:PAd ESTABLISHED s:A ESTABLISHED s:PAd ESTABLISHED c:A ESTABLISHED
}

# --- 1: SYN+ACK first ----------------------------------------------------------

@test "attack 1: a SYN+ACK without a session opens none: judged in its own direction, then S's own SYN is denied" {
	bench
	for fam in 4 6; do
		use $fam
		# allow C -> S only; everything else is denied
		allow_rule --src "$C" --dst "$S" --proto tcp --dport 80
		mseg default deny >/dev/null
		stats_mark
		# S "answers" a SYN C never sent, then opens its own connection
		# to C: both are S -> C flows, denied
		walk s:SA! - s:Si! -
		grown invalid 1
		grown new_session 0
		grown denied 2
		# C's own connection to S works as before
		walk "${HS[@]}" c:PAd ESTABLISHED s:A ESTABLISHED s:PAd ESTABLISHED
		mseg default allow >/dev/null
		# loose mode, default allow: the SYN+ACK passes, untracked
		stats_mark
		walk s:SA -
		grown invalid 1
		grown new_session 0
		grown dropped 0
		rules_cleanup
	done
}

# --- 2: blind FIN ------------------------------------------------------------------

@test "attack 2: blind FINs from either side change neither the state nor the timeout" {
	bench
	for fam in 4 6; do
		use $fam
		walk "${HS[@]}" c:PAd ESTABLISHED s:A ESTABLISHED
		local last=$S_LAST
		sleep 0.05 # a few jiffies: a refreshed timeout would show
		stats_mark
		# a guessed sequence number, a guessed ack, both, a FIN without
		# ACK; and the forged ACK and FIN from the other side that used to
		# finish the job
		more c:FAb ESTABLISHED s:FAz ESTABLISHED c:FAbz ESTABLISHED s:FAb ESTABLISHED \
			c:Ab ESTABLISHED s:Az ESTABLISHED
		grown out_of_window 6
		grown tcp_closed 0
		assert_eq "IPv$fam last_seen after blind segments" "$last" "$S_LAST"
		data_both_ways
		[[ $S_LAST != "$last" ]]
		# and the real FINs still close it
		more c:FA FIN_WAIT1 s:FA TIME_WAIT c:A TIME_WAIT
	done
}

@test "attack 2, strict mode: a blind FIN is dropped" {
	bench
	mseg config set strict on
	for fam in 4 6; do
		use $fam
		walk "${HS[@]}"
		stats_mark
		more c:FAb! ESTABLISHED s:FAz! ESTABLISHED
		grown out_of_window 2
		grown dropped 2
		data_both_ways
	done
}

# --- 3: ACK poisoning, then RST ------------------------------------------------------

@test "attack 3: a forged ACK moves nothing, so the RST aimed at its ack is ignored" {
	bench
	for fam in 4 6; do
		use $fam
		walk "${HS[@]}" c:PAd ESTABLISHED s:A ESTABLISHED
		stats_mark
		# the server "acknowledges" 2^30 bytes the client never sent; an
		# RST from the client at that sequence number follows
		more s:Az ESTABLISHED c:Rp ESTABLISHED
		# and the other way round
		more c:Az ESTABLISHED s:RAp ESTABLISHED
		grown out_of_window 4
		grown rst_ignored 2
		grown tcp_closed 0
		data_both_ways
		# the true next sequence number still closes
		more s:RA CLOSE
	done
}

# --- 4: inexact RST ------------------------------------------------------------------

@test "attack 4: an RST inside the window but not at the next sequence number changes nothing" {
	bench
	for fam in 4 6; do
		use $fam
		walk "${HS[@]}" c:PAd ESTABLISHED s:A ESTABLISHED
		local last=$S_LAST
		sleep 0.05
		stats_mark
		more c:Rk ESTABLISHED s:RAk ESTABLISHED c:RAk ESTABLISHED
		grown rst_ignored 3
		grown out_of_window 0
		grown tcp_closed 0
		assert_eq "IPv$fam last_seen after inexact RSTs" "$last" "$S_LAST"
		data_both_ways
		# RFC 5961: the endpoint answers the inexact RST with a challenge
		# ACK, and the RST answering that ACK carries the exact number
		more c:Rk ESTABLISHED s:A ESTABLISHED c:R CLOSE
		grown tcp_closed 1
	done
}

# --- 5: ACK flood ----------------------------------------------------------------------

@test "attack 5: spoofed ACKs open unconfirmed sessions that count as half-open, give way to an exact rule's connection and expire fast" {
	bench small
	# nothing in this test may expire before it says so
	mseg config set flood_syn_timeout 3600
	mseg config set timeout_unconfirmed 3600
	use 4
	# a connection made before the flood, and one an exact rule allows
	walk "${HS[@]}" c:PAd ESTABLISHED s:A ESTABLISHED
	local before_cp=$CP
	allow_rule --src 10.9.0.1 --dst 10.9.0.2 --proto tcp --dport 8080
	# 1100 spoofed ACKs: picked up (loose mode), unconfirmed; the table
	# degrades at 973 entries and the rest are refused
	[ "$(feed_series 1100 tcp sport 20000 --src 10.8.0.1 --dst 10.8.0.2 --dport 9000 \
		--flags A --seq 5555 --ack 7777)" = 0:972,2:128 ]
	[ "$(monitor_field level)" = degraded ]
	[ "$(monitor_field half_open)" = 972 ]
	[ "$(monitor_field flood)" = true ]
	[ "$(mseg sessions --json | jq '[.[] | select(.dport == 9000 and .confirmed == false
		and .state == "ESTABLISHED")] | length')" = 972 ]
	# the exact rule's new connection opens during the flood
	stats_save
	[ "$(verdict --proto tcp --src 10.9.0.1 --dst 10.9.0.2 --sport 3000 --dport 8080 \
		--flags S --seq 100)" = 0 ]
	[ "$(verdict --proto tcp --src 10.9.0.2 --dst 10.9.0.1 --sport 8080 --dport 3000 \
		--flags SA --seq 900 --ack 101)" = 0 ]
	[ "$(verdict --proto tcp --src 10.9.0.1 --dst 10.9.0.2 --sport 3000 --dport 8080 \
		--flags A --seq 101 --ack 901)" = 0 ]
	assert_session tcp 10.9.0.1 3000 10.9.0.2 8080 ESTABLISHED
	[ "$(stat_delta new_session)" = 1 ]

	# An ACK flood the exact rule itself allows fills the table to the
	# last slot; then every new allowed flow takes the slot of the oldest
	# unconfirmed session (early drop), never of an established one.
	allow_rule --src 10.8.0.3 --dst 10.8.0.2
	[ "$(feed_series 200 tcp sport 20000 --src 10.8.0.3 --dst 10.8.0.2 --dport 9000 \
		--flags A --seq 5555 --ack 7777)" = 0:200 ]
	[ "$(map_dump mseg_sessions | jq length)" = 1024 ]
	[ "$(stat_get early_drop)" = 150 ]
	stats_save
	[ "$(verdict --proto tcp --src 10.9.0.1 --dst 10.9.0.2 --sport 3001 --dport 8080 \
		--flags S --seq 100)" = 0 ]
	assert_session tcp 10.9.0.1 3001 10.9.0.2 8080 SYN_SENT
	[ "$(stat_delta early_drop)" = 1 ]
	[ "$(stat_delta map_full)" = 0 ]
	# the established connections kept their sessions
	assert_session tcp 10.9.0.1 3000 10.9.0.2 8080 ESTABLISHED
	assert_session tcp "$C" "$before_cp" "$S" 80 ESTABLISHED
	data_both_ways

	# The flood stops. Unconfirmed sessions live timeout_unconfirmed
	# seconds: gc reclaims them and the pressure falls at once.
	mseg config set timeout_unconfirmed 1
	sleep 1.2
	run mseg gc --json
	[ "$status" = 0 ]
	[ "$(map_dump mseg_sessions | jq length)" = 3 ]
	[ "$(monitor_field level)" = ok ]
	[ "$(monitor_field half_open)" = 1 ]
	[ "$(monitor_field flood)" = false ]
	# any new connection gets its session again
	[ "$(verdict --proto tcp --src 10.9.0.7 --dst 10.9.0.8 --sport 4000 --dport 22 \
		--flags S --seq 100)" = 0 ]
	assert_session tcp 10.9.0.7 4000 10.9.0.8 22 SYN_SENT
}

# --- 6: the gc race ----------------------------------------------------------------------

@test "attack 6: mseg gc during mass port reuse deletes no session that was just opened again" {
	bench
	mseg config set strict on
	# 100,000 SYNs are a SYN flood: its short timeout for half-open
	# sessions must not expire the reopened ones, however slow the machine
	mseg config set flood_syn_timeout 3600
	# 100,000 sessions past their timeout (TIME_WAIT, idle 130 s): from
	# 10.0.0.0 and 10.0.0.1, ports 10000..59999, to 10.255.255.254:80
	"$MSEG_BUILD/mseg-fill" --count 100000 --expired 100000 --idle 130 >/dev/null
	local syns=$BATS_TEST_TMPDIR/syns synacks=$BATS_TEST_TMPDIR/synacks a
	: >"$syns"
	: >"$synacks"
	for a in 10.0.0.0 10.0.0.1; do
		port_series 50000 tcp sport 10000 --src "$a" --dst 10.255.255.254 --dport 80 \
			--flags S --seq 1000 >>"$syns"
		port_series 50000 tcp dport 10000 --src 10.255.255.254 --dst "$a" --sport 80 \
			--flags SA --seq 7000 --ack 1001 >>"$synacks"
	done
	# Every one of those tuples is opened again by a new SYN while gc
	# sweeps over and over (each sweep must find them expired, then delete
	# them, or not: never the session the SYN has just opened).
	local verdicts=$BATS_TEST_TMPDIR/syn.verdicts runs=0 feed
	"$MSEG_BUILD/mseg-testrun" --prog-id "$PROG_ID" "$syns" >"$verdicts" 2>&1 3>&- &
	GC_LOOP_PID=$!
	feed=$GC_LOOP_PID
	while kill -0 "$feed" 2>/dev/null && ((runs < 500)); do
		mseg gc --json >/dev/null
		runs=$((runs + 1))
	done
	wait "$feed"
	GC_LOOP_PID=""
	echo "gc runs while the SYNs went through: $runs"
	# the sweeps really overlapped the reopening
	((runs >= 2))
	[ "$(sort -u "$verdicts")" = 0 ]
	# Every reopened session must still be there: the server's SYN+ACK
	# finds it (strict mode drops a SYN+ACK without a session).
	stats_save
	run "$MSEG_BUILD/mseg-testrun" --prog-id "$PROG_ID" "$synacks"
	[ "$status" = 0 ]
	assert_eq "SYN+ACK verdicts (2: the reopened session was deleted)" 0:100000 \
		"$(sort -n <<<"$output" | uniq -c | awk '{ printf "%s%s:%s", (NR > 1 ? "," : ""), $2, $1 }')"
	assert_eq "sessions in SYN_RECV" 100000 \
		"$(map_dump mseg_sessions | jq '[.[] | select(.formatted.value.state == 2)] | length')"
}

# --- 7: spoofed DNS flood --------------------------------------------------------------

@test "attack 7: a spoofed DNS flood cannot take the slots a connection an exact rule allows needs" {
	bench small
	mseg config set flood_syn_timeout 3600
	allow_rule --src 10.9.0.1 --dst 10.9.0.2 --proto tcp --dport 8080
	# 3000 spoofed queries: DNS is still admitted when the table degrades,
	# but above the degradation line it only recycles unanswered DNS
	stats_save
	[ "$(feed_series 3000 udp sport 20000 --src 10.8.0.1 --dst 10.8.0.2 --dport 53)" = 0:3000 ]
	local n
	n=$(map_dump mseg_sessions | jq length)
	echo "entries after the flood: $n"
	((n >= 973 && n <= 974))
	[ "$(stat_delta map_full)" = 0 ]
	(($(stat_delta early_drop) >= 2000))
	[ "$(monitor_field level)" = degraded ]
	# the exact rule's connection opens in the slots the flood left
	local i
	for i in 0 1 2; do
		[ "$(verdict --proto tcp --src 10.9.0.1 --dst 10.9.0.2 --sport $((3000 + i)) \
			--dport 8080 --flags S --seq 100)" = 0 ]
		[ "$(verdict --proto tcp --src 10.9.0.2 --dst 10.9.0.1 --sport 8080 \
			--dport $((3000 + i)) --flags SA --seq 900 --ack 101)" = 0 ]
		[ "$(verdict --proto tcp --src 10.9.0.1 --dst 10.9.0.2 --sport $((3000 + i)) \
			--dport 8080 --flags A --seq 101 --ack 901)" = 0 ]
		assert_session tcp 10.9.0.1 $((3000 + i)) 10.9.0.2 8080 ESTABLISHED
	done
	# and it still does when the flood goes on
	[ "$(feed_series 500 udp sport 30000 --src 10.8.0.1 --dst 10.8.0.2 --dport 53)" = 0:500 ]
	[ "$(verdict --proto tcp --src 10.9.0.1 --dst 10.9.0.2 --sport 3003 --dport 8080 \
		--flags S --seq 100)" = 0 ]
	assert_session tcp 10.9.0.1 3003 10.9.0.2 8080 SYN_SENT
	[ "$(verdict --proto tcp --src 10.9.0.2 --dst 10.9.0.1 --sport 8080 --dport 3003 \
		--flags SA --seq 900 --ack 101)" = 0 ]
	[ "$(verdict --proto tcp --src 10.9.0.1 --dst 10.9.0.2 --sport 3003 --dport 8080 \
		--flags A --seq 101 --ack 901)" = 0 ]
	assert_session tcp 10.9.0.1 3003 10.9.0.2 8080 ESTABLISHED
	[ "$(stat_delta map_full)" = 0 ]
	# After the flood: under pressure, unanswered queries get the short
	# timeout; gc reclaims them and a plain new flow is admitted again.
	mseg config set flood_syn_timeout 1
	sleep 1.2
	run mseg gc --json
	[ "$status" = 0 ]
	[ "$(map_dump mseg_sessions | jq length)" = 4 ]
	[ "$(monitor_field level)" = ok ]
	[ "$(verdict --proto tcp --src 10.9.0.7 --dst 10.9.0.8 --sport 4000 --dport 22 \
		--flags S --seq 100)" = 0 ]
	assert_session tcp 10.9.0.7 4000 10.9.0.8 22 SYN_SENT
}

# --- 8: flags that never come down -------------------------------------------------------

@test "attack 8: flood_half_open defaults to a fraction of the capacity; config set refuses what can never be reached" {
	bench small
	[ "$(mseg config show --json | jq .flood_half_open)" = 64 ]
	run --separate-stderr mseg config set flood_half_open 1024
	[ "$status" = 2 ]
	[[ $stderr == "mseg: "*"flood_half_open"*"1024"* ]]
	[ "$(mseg config show --json | jq .flood_half_open)" = 64 ]
	mseg config set flood_half_open 1023
	[ "$(mseg config show --json | jq .flood_half_open)" = 1023 ]
	mseg config set flood_half_open 0
	[ "$(mseg config show --json | jq .flood_half_open)" = 64 ]
}

@test "attack 8: after a SYN flood, gc brings level and flood flag down with no packet arriving" {
	bench small
	mseg config set flood_syn_timeout 1
	mseg config set flood_syn_rate 100
	# 1000 SYNs at once: half-open and rate both over their thresholds,
	# the table degraded
	syn_burst 10.9.0.1 10.9.0.2 80 5000 1000 >/dev/null
	[ "$(monitor_field flood)" = true ]
	[ "$(monitor_field level)" = degraded ]
	sleep 1.2
	# from here on no packet reaches the classifier
	local total
	total=$(stat_get total)
	run mseg gc --json
	[ "$status" = 0 ]
	[ "$(map_dump mseg_sessions | jq length)" = 0 ]
	sleep 1.1
	run mseg gc --json
	[ "$status" = 0 ]
	[ "$(stat_get total)" = "$total" ]
	[ "$(monitor_field level)" = ok ]
	[ "$(monitor_field flood)" = false ]
	[ "$(monitor_field half_open)" = 0 ]
}
