#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Real sockets through the namespace lab (helpers/lab.bash): client ->
# router -> server, with mseg attached by `mseg attach DEV --both` on the
# router's client-facing veth. Every case runs over IPv4 and over IPv6.
#
# One lab serves the whole file; each test deletes the rules it added and
# puts the default back to allow. Connections expected to fail use a 1 s
# timeout, the others 2 s (the lab's latency is well under a millisecond).

load helpers/common
load helpers/lab

setup_file() {
	require_build
	lab_setup
	lab_start_servers 600
}

teardown_file() {
	lab_teardown
}

setup() {
	require_build
	need "the lab came up" test -n "${LAB_PROG_ID:-}"
	rules_track_init
}

teardown() {
	rules_cleanup
	if [[ -e $BATS_TEST_TMPDIR/default-changed ]]; then
		mseg default allow >/dev/null
	fi
	if [[ -e $BATS_TEST_TMPDIR/accounting-changed ]]; then
		mseg config set accounting on
	fi
	return 0
}

# use FAMILY: C (client) and S (server) addresses of that family.
use() {
	FAM=$1
	if [[ $1 == 4 ]]; then C=$LAB_C4 S=$LAB_S4; else C=$LAB_C6 S=$LAB_S6; fi
}

# rule ACTION SELECTORS...: a rule from the client to the server.
rule() {
	local action=$1
	shift
	mseg_rule add --src "$C" --dst "$S" "$@" --action "$action" >/dev/null
	rule_track --src "$C" --dst "$S" "$@"
}

unrule() {
	mseg_rule del --src "$C" --dst "$S" "$@" >/dev/null
}

set_default() {
	touch "$BATS_TEST_TMPDIR/default-changed"
	mseg default "$1" >/dev/null
}

tcp_ok() { lab_tcp_connect "$S" "$1" 2 || fail_msg "IPv$FAM TCP to port $1 should work"; }
udp_ok() { lab_udp_exchange "$S" "$1" 2 || fail_msg "IPv$FAM UDP to port $1 should work"; }
tcp_blocked() {
	! lab_tcp_connect "$S" "$1" 1 2>/dev/null || fail_msg "IPv$FAM TCP to port $1 should be blocked"
}
udp_blocked() {
	! lab_udp_exchange "$S" "$1" 1 2>/dev/null || fail_msg "IPv$FAM UDP to port $1 should be blocked"
}

fail_msg() {
	echo "$*" >&2
	return 1
}

# --- the lab itself ----------------------------------------------------------------

@test "lab: with no filter, ICMP, TCP and UDP cross the router (v4 and v6)" {
	# A second lab, unfiltered: proves the lab before blaming mseg.
	local saved_bpffs=$MSEG_BPFFS saved_mnt=$TC_BPF_MNT
	(
		trap lab_teardown EXIT
		lab_setup --no-filter
		lab_start_servers 30
		[[ -z $(ip netns exec "$LAB_R" tc filter show dev "$LAB_RC" ingress) ]]
		for a in "$LAB_S4" "$LAB_S6"; do
			lab_ping "$a"
			lab_tcp_connect "$a" 5001
			lab_udp_exchange "$a" 5002
		done
		lab_conn_open smoke "$LAB_S6" 5003
		[[ $(lab_conn_send smoke) == ok ]]
		# a port nobody listens on is refused: the client can report failure
		if lab_tcp_connect "$LAB_S4" 6000 1 2>/dev/null; then exit 1; fi
	)
	[[ $MSEG_BPFFS == "$saved_bpffs" && $TC_BPF_MNT == "$saved_mnt" ]]
}

@test "lab: mseg is attached on the router's client side, ingress and egress" {
	local in eg
	in=$(prog_id "$LAB_RC" "$LAB_R" ingress)
	eg=$(prog_id "$LAB_RC" "$LAB_R" egress)
	[[ -n $in && -n $eg ]]
	# one shared session table for both hooks
	local m1 m2 pinned
	pinned=$(bpftool -j map show pinned "$(pin mseg_sessions)" | jq .id)
	m1=$(bpftool -j prog show id "$in" | jq -c .map_ids)
	m2=$(bpftool -j prog show id "$eg" | jq -c .map_ids)
	jq -e --argjson id "$pinned" 'index($id) != null' <<<"$m1"
	jq -e --argjson id "$pinned" 'index($id) != null' <<<"$m2"
}

# --- default allow -------------------------------------------------------------

default_allow() {
	use "$1"
	stats_save
	tcp_ok 5001
	udp_ok 5001
	lab_ping "$S" || fail_msg "IPv$FAM ping should work"
	# and mseg saw it: sessions in both directions' hooks, counters moved
	(($(stat_delta total) >= 8)) || fail_msg "the classifier saw only $(stat_delta total) packets"
	(($(stat_delta new_session) >= 3)) || fail_msg "new_session: $(stat_delta new_session)"
	(($(stat_delta denied) == 0)) || fail_msg "denied: $(stat_delta denied)"
}

@test "IPv4: default allow passes TCP, UDP and ICMP" { default_allow 4; }
@test "IPv6: default allow passes TCP, UDP and ICMPv6" { default_allow 6; }

# --- an exact deny, then its deletion ---------------------------------------------------

deny_tcp() {
	use "$1"
	tcp_ok 5001
	rule deny --proto tcp --dport 5001
	tcp_blocked 5001
	tcp_ok 5002
	udp_ok 5001
	unrule --proto tcp --dport 5001
	tcp_ok 5001
}

@test "IPv4: a tcp dport deny blocks new connections; deleting it restores them" { deny_tcp 4; }
@test "IPv6: a tcp dport deny blocks new connections; deleting it restores them" { deny_tcp 6; }

deny_udp() {
	use "$1"
	udp_ok 5001
	rule deny --proto udp --dport 5001
	udp_blocked 5001
	udp_ok 5002
	tcp_ok 5001
	unrule --proto udp --dport 5001
	udp_ok 5001
}

@test "IPv4: a udp dport deny blocks the exchange; deleting it restores it" { deny_udp 4; }
@test "IPv6: a udp dport deny blocks the exchange; deleting it restores it" { deny_udp 6; }

# --- a live connection is cut --------------------------------------------------------

cut_live() {
	use "$1"
	local name=live$1 res
	lab_conn_open "$name" "$S" 5003
	[[ $(lab_conn_send "$name") == ok ]] || fail_msg "second exchange before any rule"
	assert_session tcp "$C" "$LAB_CONN_SPORT" "$S" 5003 ESTABLISHED
	stats_save
	rule deny --proto tcp --dport 5003
	res=$(lab_conn_send "$name") && fail_msg "exchange after the deny rule: $res"
	[[ $res == fail:* ]] || fail_msg "unexpected result: $res"
	(($(stat_delta rejudged) >= 1)) || fail_msg "rejudged did not move"
	(($(stat_delta denied) >= 1)) || fail_msg "denied did not move"
	# new connections to that port are refused as well
	tcp_blocked 5003
}

@test "IPv4: a deny added while a TCP connection is open stops that connection" { cut_live 4; }
@test "IPv6: a deny added while a TCP connection is open stops that connection" { cut_live 6; }

# --- accounting off ---------------------------------------------------------------

# conn_packets SPORT: packets (both directions) of the session C:SPORT -> S:5003.
conn_packets() {
	sessions_json | jq -r "select($(session_cond tcp "$C" "$1" "$S" 5003)) | .packets"
}

acct_live() {
	use "$1"
	local name=acct$1 before after
	lab_conn_open "$name" "$S" 5003
	[[ $(lab_conn_send "$name") == ok ]] || fail_msg "exchange with accounting on"
	before=$(conn_packets "$LAB_CONN_SPORT")
	((before > 0)) || fail_msg "no packets counted with accounting on: '$before'"
	touch "$BATS_TEST_TMPDIR/accounting-changed"
	mseg config set accounting off
	stats_save
	[[ $(lab_conn_send "$name") == ok ]] || fail_msg "first exchange with accounting off"
	[[ $(lab_conn_send "$name") == ok ]] || fail_msg "second exchange with accounting off"
	assert_session tcp "$C" "$LAB_CONN_SPORT" "$S" 5003 ESTABLISHED
	assert_eq "packets counted with accounting off" "$before" "$(conn_packets "$LAB_CONN_SPORT")"
	(($(stat_delta session_hit) >= 4)) || fail_msg "session_hit: $(stat_delta session_hit)"
	mseg config set accounting on
	[[ $(lab_conn_send "$name") == ok ]] || fail_msg "exchange with accounting on again"
	after=$(conn_packets "$LAB_CONN_SPORT")
	((after > before)) || fail_msg "accounting on again: $after packets, $before before"
}

@test "IPv4: with accounting off a live TCP connection goes on, its packets uncounted" { acct_live 4; }
@test "IPv6: with accounting off a live TCP connection goes on, its packets uncounted" { acct_live 6; }

# --- default deny with one allowed flow ------------------------------------------------

allow_one() {
	use "$1"
	set_default deny
	rule allow --proto tcp --dport 5002
	tcp_ok 5002
	tcp_blocked 5001
	udp_blocked 5002
	# the allowed flow has its session, cached as allow
	local n
	n=$(session_count ".proto == \"tcp\" and .src == \"$C\" and .dst == \"$S\" and .dport == 5002 and .action == \"allow\"")
	((n >= 1)) || fail_msg "no session for the allowed flow"
}

@test "IPv4: under default deny an allow rule lets exactly its flow through" { allow_one 4; }
@test "IPv6: under default deny an allow rule lets exactly its flow through" { allow_one 6; }
