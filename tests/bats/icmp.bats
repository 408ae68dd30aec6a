#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# ICMP and ICMPv6 (docs/DESIGN.md, "Data path", ICMP; issue 1/6 items 5, 6
# and 8), with crafted frames through the program tc loaded on a veth:
#  - an error about a live, allowed session is RELATED and passes, from any
#    sender, when it is addressed to the quoted packet's sender; any other
#    error is judged by the policy and never opens a session;
#  - echo requests belong to the session of the side that sent the first
#    one, replies to the other side's; a reply never opens a session;
#  - only ND from the link (hop limit 255) and MLD from the link (hop limit
#    1, link-local source), over IPv6, pass without policy;
#  - one packet, one decision: a SYN that reopens a finished connection's
#    tuple is a new flow, not also a session hit.

load helpers/common

setup_file() {
	require_build
	crafted_setup
}

teardown_file() {
	crafted_teardown
}

setup() {
	require_build
	need "the classifier loaded" test -n "${PROG_ID:-}"
	local n=$BATS_TEST_NUMBER
	A4=10.80.$n.1
	B4=10.81.$n.2
	R4=10.82.$n.254
	C4=10.83.$n.3
	A6=fd00:80:$n::1
	B6=fd00:81:$n::2
	R6=fd00:82:$n::fe
	C6=fd00:83:$n::3
	rules_track_init
}

teardown() {
	rules_cleanup
	if [[ -n ${DEFAULT_SET:-} ]]; then
		mseg default allow >/dev/null
	fi
	if [[ -n ${STRICT_SET:-} ]]; then
		mseg config set strict off
	fi
}

rule() {
	mseg_rule add "$@" >/dev/null
	rule_track "${@:1:$(($# - 2))}"
}

default_deny() {
	DEFAULT_SET=1
	mseg default deny >/dev/null
}

RELATED='{"total":1,"related":1,"allowed":1}'
JUDGED_DENY='{"total":1,"default_hit":1,"denied":1}'

# err FAMILY SRC DST [ICMP options] --inner [inner options]: an error frame
# ("fragmentation needed" or "packet too big" unless told otherwise).
err() {
	local fam=$1 src=$2 dst=$3
	shift 3
	if [[ $fam == 4 ]]; then
		echo --src "$src" --dst "$dst" --proto icmp --icmp-type 3 --icmp-code 4 --mtu 1200 "$@"
	else
		echo --src "$src" --dst "$dst" --proto icmp --icmp-type 2 --mtu 1280 "$@"
	fi
}

# --- errors about a session (item 5) -------------------------------------------------

related_errors() {
	local fam=$1 a b r c
	if [[ $fam == 4 ]]; then a=$A4 b=$B4 r=$R4 c=$C4; else a=$A6 b=$B6 r=$R6 c=$C6; fi
	default_deny
	rule --src "$a" --dst "$b" --proto tcp --dport 5001 --action allow
	rule --src "$a" --dst "$b" --proto udp --dport 5002 --action allow
	rule --src "$a" --dst "$b" --proto icmp --action allow
	expect_frame "SYN" "$TC_ACT_OK" '{"total":1,"policy_hit":1,"allowed":1,"new_session":1}' \
		--src "$a" --dst "$b" --proto tcp --sport 40000 --dport 5001 --flags S
	expect_frame "UDP" "$TC_ACT_OK" '{"total":1,"policy_hit":1,"allowed":1,"new_session":1}' \
		--src "$a" --dst "$b" --proto udp --sport 40001 --dport 5002
	expect_frame "echo request" "$TC_ACT_OK" '{"total":1,"policy_hit":1,"allowed":1,"new_session":1}' \
		--src "$a" --dst "$b" --proto icmp --icmp-id 77
	local -a args
	# from a router on the path, from the peer, about either direction
	read -r -a args <<<"$(err "$fam" "$r" "$a" --inner --src "$a" --dst "$b" --proto tcp --sport 40000 --dport 5001)"
	expect_frame "router -> originator about its TCP" "$TC_ACT_OK" "$RELATED" "${args[@]}"
	read -r -a args <<<"$(err "$fam" "$b" "$a" --inner --src "$a" --dst "$b" --proto tcp --sport 40000 --dport 5001 --payload 100)"
	expect_frame "peer -> originator about its TCP" "$TC_ACT_OK" "$RELATED" "${args[@]}"
	read -r -a args <<<"$(err "$fam" "$r" "$b" --inner --src "$b" --dst "$a" --proto tcp --sport 5001 --dport 40000 --flags SA)"
	expect_frame "router -> responder about its reply" "$TC_ACT_OK" "$RELATED" "${args[@]}"
	read -r -a args <<<"$(err "$fam" "$b" "$a" --icmp-type "$([[ $fam == 4 ]] && echo 3 || echo 1)" \
		--icmp-code 3 --mtu 0 --inner --src "$a" --dst "$b" --proto udp --sport 40001 --dport 5002)"
	expect_frame "port unreachable about UDP" "$TC_ACT_OK" "$RELATED" "${args[@]}"
	read -r -a args <<<"$(err "$fam" "$r" "$a" --icmp-type "$([[ $fam == 4 ]] && echo 11 || echo 3)" \
		--icmp-code 0 --mtu 0 --inner --src "$a" --dst "$b" --proto icmp --icmp-id 77)"
	expect_frame "time exceeded about a ping" "$TC_ACT_OK" "$RELATED" "${args[@]}"

	# not about a live session: judged by the policy as any packet
	read -r -a args <<<"$(err "$fam" "$r" "$a" --inner --src "$a" --dst "$b" --proto tcp --sport 40009 --dport 5001)"
	expect_frame "about no session" "$TC_ACT_SHOT" "$JUDGED_DENY" "${args[@]}"
	read -r -a args <<<"$(err "$fam" "$r" "$c" --inner --src "$a" --dst "$b" --proto tcp --sport 40000 --dport 5001)"
	expect_frame "to someone else than the quoted sender" "$TC_ACT_SHOT" "$JUDGED_DENY" "${args[@]}"
	read -r -a args <<<"$(err "$fam" "$r" "$a" --quote "$([[ $fam == 4 ]] && echo 24 || echo 44)" \
		--inner --src "$a" --dst "$b" --proto tcp --sport 40000 --dport 5001)"
	expect_frame "quoting 4 bytes of TCP" "$TC_ACT_SHOT" "$JUDGED_DENY" "${args[@]}"
	local -a frag=(--mf --ip-id 5)
	[[ $fam == 4 ]] || frag=(--ext frag)
	read -r -a args <<<"$(err "$fam" "$r" "$a" --inner --src "$a" --dst "$b" --proto udp --sport 40001 --dport 5002 \
		"${frag[@]}" --payload 64 --fragment 16)"
	expect_frame "about a later fragment" "$TC_ACT_SHOT" "$JUDGED_DENY" "${args[@]}"
	read -r -a args <<<"$(err "$fam" "$r" "$a" --inner --src "$a" --dst "$b" --proto icmp \
		--icmp-type "$([[ $fam == 4 ]] && echo 3 || echo 1)" --icmp-code 1)"
	expect_frame "about an error" "$TC_ACT_SHOT" "$JUDGED_DENY" "${args[@]}"
	assert_eq "sessions with the router" 0 "$(sessions_between "$r" "$a")"
	assert_eq "sessions with the peer: the three flows" 3 "$(sessions_between "$a" "$b")"
}

@test "IPv4: an ICMP error about a live, allowed session is related and passes; any other is judged" {
	related_errors 4
}

@test "IPv6: an ICMPv6 error about a live, allowed session is related and passes; any other is judged" {
	related_errors 6
}

@test "an error about a session the rules now deny is not related: judged by the policy" {
	default_deny
	rule --src "$A4" --dst "$B4" --proto tcp --dport 5001 --action allow
	expect_frame "SYN" "$TC_ACT_OK" '{"total":1,"policy_hit":1,"allowed":1,"new_session":1}' \
		--src "$A4" --dst "$B4" --proto tcp --sport 40000 --dport 5001 --flags S
	mseg_rule del --src "$A4" --dst "$B4" --proto tcp --dport 5001 >/dev/null
	rule --src "$A4" --dst "$B4" --proto tcp --dport 5001 --action deny
	local -a args
	read -r -a args <<<"$(err 4 "$R4" "$A4" --inner --src "$A4" --dst "$B4" --proto tcp --sport 40000 --dport 5001)"
	expect_frame "error about the now denied session" "$TC_ACT_SHOT" '{"total":1,"rejudged":1,"default_hit":1,"denied":1}' "${args[@]}"
}

@test "an error never opens a session, related or not" {
	local -a args
	read -r -a args <<<"$(err 4 "$R4" "$A4" --inner --src "$A4" --dst "$B4" --proto udp --sport 1 --dport 2)"
	expect_frame "an unrelated error under default allow" "$TC_ACT_OK" '{"total":1,"default_hit":1,"allowed":1}' "${args[@]}"
	expect_frame "again" "$TC_ACT_OK" '{"total":1,"default_hit":1,"allowed":1}' "${args[@]}"
	assert_eq "sessions" 0 "$(sessions_between "$R4" "$A4")"
}

# --- echo: requests from the originator, replies from the other side (item 5) -----

echo_direction() {
	local fam=$1 a b req rep
	if [[ $fam == 4 ]]; then a=$A4 b=$B4 req=8 rep=0; else a=$A6 b=$B6 req=128 rep=129; fi
	default_deny
	rule --src "$a" --dst "$b" --proto icmp --action allow
	expect_frame "a -> b request" "$TC_ACT_OK" '{"total":1,"policy_hit":1,"allowed":1,"new_session":1}' \
		--src "$a" --dst "$b" --proto icmp --icmp-type "$req" --icmp-id 91
	assert_session icmp "$a" 91 "$b" 0 NONE
	expect_frame "b -> a reply" "$TC_ACT_OK" '{"total":1,"session_hit":1,"allowed":1}' \
		--src "$b" --dst "$a" --proto icmp --icmp-type "$rep" --icmp-id 91
	# the responder's request is its own flow, b -> a: not allowed
	expect_frame "b -> a request, same identifier" "$TC_ACT_SHOT" "$JUDGED_DENY" \
		--src "$b" --dst "$a" --proto icmp --icmp-type "$req" --icmp-id 91
	# the originator's reply answers nothing: judged (a -> b is allowed),
	# never a session of its own
	expect_frame "a -> b reply" "$TC_ACT_OK" '{"total":1,"invalid":1,"policy_hit":1,"allowed":1}' \
		--src "$a" --dst "$b" --proto icmp --icmp-type "$rep" --icmp-id 91
	assert_eq "sessions" 1 "$(sessions_between "$a" "$b")"
	STRICT_SET=1
	mseg config set strict on
	expect_frame "a -> b reply, strict" "$TC_ACT_SHOT" '{"total":1,"invalid":1,"strict_drop":1,"dropped":1}' \
		--src "$a" --dst "$b" --proto icmp --icmp-type "$rep" --icmp-id 91
}

@test "IPv4 echo: requests only from the ping session's originator, replies only from the other side" {
	echo_direction 4
}

@test "IPv6 echo: requests only from the ping session's originator, replies only from the other side" {
	echo_direction 6
}

# --- neighbour discovery and MLD (item 6) ---------------------------------------------

EXEMPT='{"total":1,"exempt":1,"allowed":1}'

@test "ND (133-137) with hop limit 255 passes without policy, from unspecified, link-local or global sources" {
	default_deny
	local t src
	for t in 133 134 135 136 137; do
		for src in :: fe80::1 "$A6"; do
			expect_frame "ND $t from $src" "$TC_ACT_OK" "$EXEMPT" \
				--src "$src" --dst ff02::1:ff00:2 --proto icmpv6 --icmp-type "$t" --ttl 255
		done
	done
	# anything short of that is judged like any packet (here: denied)
	expect_frame "NS with hop limit 254" "$TC_ACT_SHOT" "$JUDGED_DENY" \
		--src fe80::1 --dst ff02::1:ff00:2 --proto icmpv6 --icmp-type 135 --ttl 254
	expect_frame "NS from a multicast source" "$TC_ACT_SHOT" "$JUDGED_DENY" \
		--src ff02::1 --dst "$B6" --proto icmpv6 --icmp-type 135 --ttl 255
	expect_frame "NS in a fragment" "$TC_ACT_SHOT" "$JUDGED_DENY" \
		--src fe80::1 --dst ff02::1:ff00:2 --proto icmpv6 --icmp-type 135 --ttl 255 \
		--ext frag --payload 32 --fragment 0:16
	# IPv4 with protocol 58 is not neighbour discovery
	expect_frame "IPv4 protocol 58, type 135" "$TC_ACT_SHOT" "$JUDGED_DENY" \
		--src "$A4" --dst "$B4" --proto icmpv6 --icmp-type 135 --ttl 255
}

@test "MLD (130-132, 143) passes without policy only with hop limit 1 from a link-local source" {
	default_deny
	local t
	for t in 130 131 132 143; do
		expect_frame "MLD $t" "$TC_ACT_OK" "$EXEMPT" \
			--src fe80::1 --dst ff02::16 --proto icmpv6 --icmp-type "$t" --ttl 1 --ext hop
	done
	expect_frame "MLD with hop limit 2" "$TC_ACT_SHOT" "$JUDGED_DENY" \
		--src fe80::1 --dst ff02::16 --proto icmpv6 --icmp-type 143 --ttl 2 --ext hop
	expect_frame "MLD from a global source" "$TC_ACT_SHOT" "$JUDGED_DENY" \
		--src "$A6" --dst ff02::16 --proto icmpv6 --icmp-type 143 --ttl 1 --ext hop
}

# --- one packet, one decision (item 8) ------------------------------------------------

@test "a SYN that reopens a TIME_WAIT session counts one decision: a new flow, not also a session hit" {
	local -a ab=(--src "$A4" --dst "$B4" --proto tcp --sport 43000 --dport 80)
	local -a ba=(--src "$B4" --dst "$A4" --proto tcp --sport 80 --dport 43000)
	verdict "${ab[@]}" --flags S --seq 1000 >/dev/null
	verdict "${ba[@]}" --flags SA --seq 5000 --ack 1001 >/dev/null
	verdict "${ab[@]}" --flags A --seq 1001 --ack 5001 >/dev/null
	verdict "${ab[@]}" --flags FA --seq 1001 --ack 5001 >/dev/null
	verdict "${ba[@]}" --flags A --seq 5001 --ack 1002 >/dev/null
	verdict "${ba[@]}" --flags FA --seq 5001 --ack 1002 >/dev/null
	verdict "${ab[@]}" --flags A --seq 1002 --ack 5002 >/dev/null
	assert_session tcp "$A4" 43000 "$B4" 80 TIME_WAIT
	expect_frame "the reopening SYN" "$TC_ACT_OK" '{"total":1,"default_hit":1,"allowed":1,"new_session":1}' \
		"${ab[@]}" --flags S --seq 9000
	assert_session tcp "$A4" 43000 "$B4" 80 SYN_SENT
	stats_invariant
}
