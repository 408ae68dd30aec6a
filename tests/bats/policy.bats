#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Policy decisions, frame by frame (crafted frames through the program tc
# loaded on a veth, bpftool prog run): the exact-rule lookup and its wildcard
# fallbacks (own tuple, sport=0, sport=dport=0, proto=0), the more specific
# rule winning, the default action, re-judging live sessions when the rules
# change, and the log action. Every case runs over IPv4 and over IPv6.
#
# Rules go in through scripts/mseg-rule, the default through scripts/mseg.
# Each test has its own addresses (from its number) and deletes its rules.

load helpers/common

setup_file() {
	require_build
	crafted_setup
	# the rules' own precedence, tcp/22 among the ports: failsafes off (failsafe.bats tests them)
	mseg failsafe off >/dev/null
}

teardown_file() {
	crafted_teardown
}

setup() {
	crafted_test_setup 30 40
}

teardown() {
	rules_cleanup
	if [[ -e $BATS_TEST_TMPDIR/default-changed ]]; then
		mseg default allow >/dev/null
	fi
	if [[ -e $BATS_TEST_TMPDIR/accounting-changed ]]; then
		mseg config set accounting on
	fi
}

# use FAMILY: S and D become this test's source and destination.
use() {
	FAM=$1
	if [[ $1 == 4 ]]; then S=$S4 D=$D4; else S=$S6 D=$D6; fi
}

# rule ACTION [SELECTORS...]: add a rule from S to D (remembered for teardown).
rule() {
	local action=$1
	shift
	mseg_rule add --src "$S" --dst "$D" "$@" --action "$action" >/dev/null
	rule_track --src "$S" --dst "$D" "$@"
}

unrule() {
	mseg_rule del --src "$S" --dst "$D" "$@" >/dev/null
}

set_default() {
	touch "$BATS_TEST_TMPDIR/default-changed"
	mseg default "$1" >/dev/null
}

# v PROTO SPORT DPORT [mseg-pkt options]: verdict of a new S -> D frame.
v() {
	local proto=$1 sport=$2 dport=$3
	shift 3
	verdict --src "$S" --dst "$D" --proto "$proto" --sport "$sport" \
		--dport "$dport" --icmp-id "$sport" --payload 8 "$@"
}

# expect RETVAL WHAT PROTO SPORT DPORT [options]
expect() {
	local want=$1 what=$2
	shift 2
	assert_eq "IPv$FAM $what ($*)" "$want" "$(v "$@")"
}

DENY=2
PASS=0

# --- each wildcard shape decides a packet ------------------------------------------

full_tuple() {
	use "$1"
	rule deny --proto tcp --sport 40001 --dport 8080
	stats_save
	expect $DENY "the rule's own flow" tcp 40001 8080
	local delta
	delta=$(stats_delta_json)
	assert_eq "policy_hit ($delta)" 1 "$(jq '.policy_hit // 0' <<<"$delta")"
	assert_eq "denied ($delta)" 1 "$(jq '.denied // 0' <<<"$delta")"
	assert_eq "new_session ($delta)" 0 "$(jq '.new_session // 0' <<<"$delta")"
	expect $PASS "another source port" tcp 40002 8080
	expect $PASS "another destination port" tcp 40001 8081
	expect $PASS "another protocol" udp 40001 8080
	# addresses are exact: the reverse direction is another flow
	assert_eq "reverse direction" $PASS "$(verdict --src "$D" --dst "$S" --proto tcp --sport 8080 --dport 40001)"
	# the rule counted its hit
	assert_eq "rule hits" 1 "$(rules_raw | jq -s --arg s "$S" '[.[] | select(.src == $s and .sport == 40001)][0].hits')"
}

@test "IPv4: a full 5-tuple rule decides exactly its own flow" { full_tuple 4; }
@test "IPv6: a full 5-tuple rule decides exactly its own flow" { full_tuple 6; }

proto_dport() {
	use "$1"
	rule deny --proto udp --dport 5353
	expect $DENY "any source port (1)" udp 1111 5353
	expect $DENY "any source port (2)" udp 65535 5353
	expect $PASS "another destination port" udp 1111 5354
	expect $PASS "same port, other protocol" tcp 1111 5353
}

@test "IPv4: a proto+dport rule matches every source port" { proto_dport 4; }
@test "IPv6: a proto+dport rule matches every source port" { proto_dport 6; }

proto_only() {
	use "$1"
	rule deny --proto tcp
	expect $DENY "tcp, some ports" tcp 1234 80
	expect $DENY "tcp, other ports" tcp 40000 22
	expect $PASS "udp" udp 1234 80
	expect $PASS "icmp" icmp 77 77
	rule deny --proto icmp
	expect $DENY "icmp echo after a proto icmp rule" icmp 78 78
	expect $PASS "udp still" udp 1235 80
}

@test "IPv4: a proto-only rule matches every port of its protocol" { proto_only 4; }
@test "IPv6: a proto-only rule matches every port of its protocol (icmp = ICMPv6)" { proto_only 6; }

addresses_only() {
	use "$1"
	rule deny
	expect $DENY "tcp" tcp 1234 80
	expect $DENY "udp" udp 1234 53
	expect $DENY "icmp" icmp 9 9
	expect $DENY "a protocol without ports (GRE)" 47 0 0
	# addresses are exact: another destination, or the reverse direction, is
	# not covered
	local other
	if [[ $FAM == 4 ]]; then other=${D%.*}.99; else other=${D%::*}::99; fi
	assert_eq "other destination" $PASS "$(verdict --src "$S" --dst "$other" --proto tcp)"
	assert_eq "reverse direction" $PASS "$(verdict --src "$D" --dst "$S" --proto udp)"
}

@test "IPv4: an addresses-only rule matches every protocol between the two" { addresses_only 4; }
@test "IPv6: an addresses-only rule matches every protocol between the two" { addresses_only 6; }

# --- the more specific rule wins --------------------------------------------------

specific_wins() {
	use "$1"
	# full allow beats proto-only deny
	rule deny --proto tcp
	rule allow --proto tcp --sport 40001 --dport 8080
	expect $PASS "full allow over proto deny" tcp 40001 8080
	expect $DENY "proto deny elsewhere" tcp 40002 8080
	# proto+dport allow beats the addresses-only deny, which still takes the rest
	rule deny
	rule allow --proto udp --dport 443
	expect $PASS "dport allow over address deny" udp 1000 443
	expect $DENY "address deny, other port" udp 1000 444
	expect $DENY "address deny, icmp" icmp 5 5
	# full deny beats proto+dport allow
	rule deny --proto udp --sport 2000 --dport 443
	expect $DENY "full deny over dport allow" udp 2000 443
	expect $PASS "dport allow, other source port" udp 2001 443
	# proto-only allow between a dport deny and the addresses-only deny
	rule allow --proto icmp
	rule deny --proto tcp --dport 22
	expect $PASS "proto allow over address deny" icmp 6 6
	expect $DENY "dport deny" tcp 3000 22
}

@test "IPv4: the most specific rule wins" { specific_wins 4; }
@test "IPv6: the most specific rule wins" { specific_wins 6; }

# --- default action ------------------------------------------------------------

default_deny() {
	use "$1"
	set_default deny
	assert_eq "config default_action" 1 "$(config_get default_action)"
	stats_save
	expect $DENY "unmatched new flow" udp 1000 53
	local delta
	delta=$(stats_delta_json)
	assert_eq "default_hit ($delta)" 1 "$(jq '.default_hit // 0' <<<"$delta")"
	assert_eq "denied ($delta)" 1 "$(jq '.denied // 0' <<<"$delta")"
	assert_eq "sessions of the dropped flow" 0 "$(sessions_between "$S" "$D")"
	rule allow --proto tcp --dport 443
	expect $PASS "allowed by a rule" tcp 1000 443
	assert_session tcp "$S" 1000 "$D" 443 SYN_SENT
	expect $DENY "another port, still unmatched" tcp 1000 444
	set_default allow
	expect $PASS "unmatched after default allow" udp 1001 53
}

@test "IPv4: default deny drops unmatched new flows, rules still allow" { default_deny 4; }
@test "IPv6: default deny drops unmatched new flows, rules still allow" { default_deny 6; }

# --- rule changes re-judge live sessions --------------------------------------------

rejudge() {
	use "$1"
	local c="--src $S --dst $D --proto tcp --sport 45000 --dport 8000"
	local r="--src $D --dst $S --proto tcp --sport 8000 --dport 45000"
	# shellcheck disable=SC2086
	{
		assert_eq "SYN" $PASS "$(verdict $c --flags S --seq 100)"
		assert_eq "SYN+ACK" $PASS "$(verdict $r --flags SA --seq 500 --ack 101)"
		assert_eq "ACK" $PASS "$(verdict $c --flags A --seq 101 --ack 501)"
	}
	assert_session tcp "$S" 45000 "$D" 8000 ESTABLISHED
	local gen
	gen=$(config_get policy_gen)

	rule deny --proto tcp --dport 8000
	(($(config_get policy_gen) != gen)) || {
		echo "policy_gen did not move on a rule change: $gen" >&2
		return 1
	}
	stats_save
	# shellcheck disable=SC2086
	assert_eq "next packet of the session" $DENY "$(verdict $c --flags PA --seq 101 --ack 501 --payload 10)"
	local delta
	delta=$(stats_delta_json)
	assert_eq "rejudged ($delta)" 1 "$(jq '.rejudged // 0' <<<"$delta")"
	assert_eq "denied ($delta)" 1 "$(jq '.denied // 0' <<<"$delta")"
	assert_eq "session_hit ($delta)" 1 "$(jq '.session_hit // 0' <<<"$delta")"
	# shellcheck disable=SC2086
	assert_eq "reply direction too" $DENY "$(verdict $r --flags A --seq 501 --ack 111)"
	assert_session tcp "$S" 45000 "$D" 8000
	[[ $(session_count "$(session_cond tcp "$S" 45000 "$D" 8000) and .action == \"deny\"") == 1 ]] || {
		echo "the session's cached action is not deny:" >&2
		sessions_json >&2
		return 1
	}

	# and back: deleting the rule lets the same session through again
	unrule --proto tcp --dport 8000
	stats_save
	# shellcheck disable=SC2086
	assert_eq "after the rule is deleted" $PASS "$(verdict $c --flags PA --seq 101 --ack 501 --payload 10)"
	assert_eq "rejudged again" 1 "$(stat_delta rejudged)"
}

@test "IPv4: a new deny rule cuts a live TCP session, deleting it restores" { rejudge 4; }
@test "IPv6: a new deny rule cuts a live TCP session, deleting it restores" { rejudge 6; }

rejudge_udp() {
	use "$1"
	expect $PASS "first datagram" udp 7000 7001
	assert_eq "reply" $PASS "$(verdict --src "$D" --dst "$S" --proto udp --sport 7001 --dport 7000)"
	rule deny
	stats_save
	expect $DENY "next datagram after an addresses-only deny" udp 7000 7001
	assert_eq "rejudged" 1 "$(stat_delta rejudged)"
}

@test "IPv4: an addresses-only deny cuts a live UDP flow" { rejudge_udp 4; }
@test "IPv6: an addresses-only deny cuts a live UDP flow" { rejudge_udp 6; }

# --- fragments follow their first fragment -----------------------------------------

fragments() {
	use "$1"
	local ext=()
	[[ $FAM == 6 ]] && ext=(--ext frag)
	rule deny --proto udp --dport 6000
	# the first fragment carries the ports and is judged by them...
	expect $DENY "first fragment" udp 1000 6000 "${ext[@]}" --mf --ip-id 4242 --payload 64
	# ...and a later one of the same datagram gets the same verdict
	expect $DENY "later fragment, same datagram" udp 0 0 "${ext[@]}" --ip-id 4242 --frag-offset 72
	# a later fragment of an unseen datagram: judged by its addresses alone
	expect $PASS "later fragment, first never seen" udp 0 0 "${ext[@]}" --ip-id 4343 --frag-offset 72
	# same for an allowed datagram, and under an addresses-only deny the orphan
	# is dropped
	expect $PASS "first fragment, other port" udp 1000 6001 "${ext[@]}" --mf --ip-id 4444 --payload 64
	expect $PASS "its later fragment" udp 0 0 "${ext[@]}" --ip-id 4444 --frag-offset 72
	rule deny
	expect $DENY "orphan fragment under an addresses-only deny" udp 0 0 "${ext[@]}" --ip-id 4545 --frag-offset 72
}

@test "IPv4: later fragments get their first fragment's verdict" { fragments 4; }
@test "IPv6: later fragments get their first fragment's verdict" { fragments 6; }

# --- log -----------------------------------------------------------------------------

log_action() {
	use "$1"
	rule log --proto tcp --dport 8443
	stats_save
	expect $PASS "logged flow" tcp 1234 8443
	local delta
	delta=$(stats_delta_json)
	assert_eq "logged ($delta)" 1 "$(jq '.logged // 0' <<<"$delta")"
	assert_eq "allowed ($delta)" 1 "$(jq '.allowed // 0' <<<"$delta")"
	assert_eq "denied ($delta)" 0 "$(jq '.denied // 0' <<<"$delta")"
	assert_eq "policy_hit ($delta)" 1 "$(jq '.policy_hit // 0' <<<"$delta")"
	[[ $(session_count "$(session_cond tcp "$S" 1234 "$D" 8443) and .action == \"log\"") == 1 ]] || {
		echo "no session with action log:" >&2
		sessions_json >&2
		return 1
	}
	# an unlogged flow is not counted
	stats_save
	expect $PASS "unlogged flow" tcp 1234 8444
	assert_eq "logged for another flow" 0 "$(stat_delta logged)"
}

@test "IPv4: the log action passes the flow and counts it" { log_action 4; }
@test "IPv6: the log action passes the flow and counts it" { log_action 6; }

# --- accounting -------------------------------------------------------------------

# counts SPORT: "PACKETS BYTES CONFIRMED RULE_PACKETS RULE_HITS": the UDP
# session S:SPORT -> D:5400 (packets and bytes of both directions, whether
# answered), and its rule's packets and flows.
counts() {
	local sess rule
	sess=$(sessions_json | jq -r "select($(session_cond udp "$S" "$1" "$D" 5400)) | \"\\(.packets) \\(.bytes) \\(.confirmed)\"")
	rule=$(rules_raw | jq -r --arg s "$S" 'select(.src == $s and .dport == 5400) | "\(.packets) \(.hits)"')
	echo "$sess $rule"
}

accounting() {
	use "$1"
	rule allow --proto udp --dport 5400
	local i delta sp sb sc rp rh bytes
	for i in 1 2 3; do expect $PASS "accounted packet $i" udp 41000 5400; done
	read -r sp sb sc rp rh <<<"$(counts 41000)"
	assert_eq "accounting on: session packets, answered, rule packets, flows" \
		"3 false 3 1" "$sp $sc $rp $rh"
	bytes=$sb
	((bytes > 0))

	touch "$BATS_TEST_TMPDIR/accounting-changed"
	mseg config set accounting off
	stats_save
	for i in 1 2 3 4; do expect $PASS "unaccounted packet $i" udp 41000 5400; done
	# the answer (the slow path) still confirms the session, uncounted
	assert_eq "answer" $PASS "$(verdict --src "$D" --dst "$S" --proto udp --sport 5400 --dport 41000 --payload 8)"
	expect $PASS "a new flow" udp 41001 5400
	delta=$(stats_delta_json)
	assert_eq "allowed ($delta)" 6 "$(jq '.allowed // 0' <<<"$delta")"
	assert_eq "session_hit ($delta)" 5 "$(jq '.session_hit // 0' <<<"$delta")"
	read -r sp sb sc rp rh <<<"$(counts 41000)"
	# the decision of the new flow counts, no packet does
	assert_eq "accounting off" "3 $bytes true 3 2" "$sp $sb $sc $rp $rh"
	read -r sp sb sc rp rh <<<"$(counts 41001)"
	assert_eq "accounting off: a new session" "0 0 false" "$sp $sb $sc"

	mseg config set accounting on
	expect $PASS "accounted again" udp 41000 5400
	read -r sp sb sc rp rh <<<"$(counts 41000)"
	assert_eq "accounting on again" "4 4" "$sp $rp"
}

@test "IPv4: accounting off keeps no packet counts, and changes no verdict" { accounting 4; }
@test "IPv6: accounting off keeps no packet counts, and changes no verdict" { accounting 6; }

# --- ICMPv6 neighbour discovery ---------------------------------------------------------

@test "IPv6: neighbour discovery passes under default deny and a deny rule" {
	use 6
	set_default deny
	rule deny
	local t
	for t in 133 134 135 136 137; do
		expect $PASS "ND type $t" icmpv6 0 0 --icmp-type "$t" --ttl 255
	done
	assert_eq "NS to the solicited-node address" $PASS \
		"$(verdict --src fe80::1 --dst ff02::1:ff00:2 --proto icmpv6 --icmp-type 135 --ttl 255)"
	expect $DENY "echo request" icmpv6 9 9 --icmp-type 128
}

# --- the CLI's view agrees with the maps -------------------------------------------------

@test "mseg stats --json agrees with the per-CPU sums of mseg_stats" {
	use 4
	expect $PASS "one packet" udp 1 2
	local cli raw
	cli=$(mseg stats --json)
	raw=$(stats_json)
	jq -e . >/dev/null <<<"$cli"
	# every counter of the map, same value (nothing moves in between)
	run jq -n -r --argjson c "$cli" --argjson r "$raw" \
		'$r | to_entries[] | select($c[.key] != .value) | "\(.key): cli \($c[.key]) map \(.value)"'
	[ "$status" -eq 0 ]
	[ -z "$output" ] || { echo "$output" >&2; return 1; }
	[ "$(jq .total <<<"$cli")" -gt 0 ]
}

@test "mseg-rule list --json shows the rules as stored in mseg_policy" {
	use 6
	rule deny --proto tcp --dport 22
	rule log --proto udp --sport 1000 --dport 53
	local list
	list=$(mseg_rule list --json | jq -c 'if type == "array" then .[] else . end')
	for want in "tcp 0 22 deny" "udp 1000 53 log"; do
		read -r p sp dp a <<<"$want"
		n=$(jq -s --arg s "$S" --arg d "$D" --arg p "$p" --arg a "$a" \
			--argjson sp "$sp" --argjson dp "$dp" \
			'[.[] | select(.src == $s and .dst == $d and .proto == $p and
			  (if .sport == "any" then 0 else .sport end) == $sp and
			  (if .dport == "any" then 0 else .dport end) == $dp and .action == $a)] | length' <<<"$list")
		assert_eq "rule '$want' in list --json" 1 "$n"
		n=$(rules_raw | jq -s --arg s "$S" --arg d "$D" --arg p "$p" --arg a "$a" \
			--argjson sp "$sp" --argjson dp "$dp" \
			'[.[] | select(.src == $s and .dst == $d and .proto == $p and
			  (if .sport == "any" then 0 else .sport end) == $sp and
			  (if .dport == "any" then 0 else .dport end) == $dp and .action == $a)] | length')
		assert_eq "rule '$want' in the map" 1 "$n"
	done
}
