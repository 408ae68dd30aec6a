#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The parser's bounds, each up to the bound and one past it (docs/DESIGN.md,
# "Data path", step 1; issue 1/6 items 1-3): VLAN tags in the frame and in
# skb metadata, IPv4-mapped IPv6 addresses, IPv6 extension header chains
# (as many and as long as the kernel accepts). Crafted frames through the
# program tc loaded on a veth in a private netns: BPF_PROG_TEST_RUN, or sent
# over the veth for real (inject_verdict) where the kernel's own handling
# matters (the metadata tag) or the frame is larger than a test run takes.
#
# Every frame here is a flow that a deny rule names, so "read and judged"
# shows as a denied packet with a policy hit, and "refused" as a drop under
# its own reason, with no decision at all.

load helpers/common

setup_file() {
	require_build
	crafted_setup
	# the parse bounds, shown by denied udp/53 and tcp/22 flows: failsafes off (failsafe.bats tests them)
	mseg failsafe off >/dev/null
}

teardown_file() {
	crafted_teardown
}

setup() {
	crafted_test_setup 60 61
}

teardown() {
	rules_cleanup
}

rule_deny() {
	mseg_rule add "$@" --action deny >/dev/null
	rule_track "$@"
}

DENIED='{"total":1,"policy_hit":1,"denied":1}'

# expect_counted WHAT WANT_STATS ARGS...: the frame of mseg-pkt ARGS is
# dropped, and moves exactly WANT_STATS.
expect_counted() {
	local what=$1
	shift
	expect_frame "$what" "$TC_ACT_SHOT" "$@"
}

# tags N: mseg-pkt options for N VLAN tags, VID 0 (the priority tags the
# kernel strips one after the other), 802.1ad and 802.1Q mixed.
tags() {
	local i
	for ((i = 0; i < $1; i++)); do
		if ((i % 2)); then printf -- '--svlan 0 '; else printf -- '--vlan 0 '; fi
	done
}

# --- VLAN tags (item 1) ----------------------------------------------------------

@test "VLAN: 0 up to MSEG_MAX_VLANS tags in the frame are read and judged; one more is dropped (vlan_limit)" {
	local max n
	max=$(mseg_bound MSEG_MAX_VLANS)
	((max >= 2)) # QinQ at least
	rule_deny --src "$S4" --dst "$D4" --proto udp --dport 53
	rule_deny --src "$S6" --dst "$D6" --proto tcp --dport 22
	for ((n = 0; n <= max + 1; n++)); do
		local -a t
		read -r -a t <<<"$(tags "$n")"
		if ((n <= max)); then
			expect_counted "v4 with $n tags" "$DENIED" "${t[@]}" --src "$S4" --dst "$D4" --proto udp --sport 5000 --dport 53
			expect_counted "v6 with $n tags" "$DENIED" "${t[@]}" --src "$S6" --dst "$D6" --proto tcp --sport 5000 --dport 22
		else
			expect_counted "v4 with $n tags" '{"total":1,"dropped":1,"vlan_limit":1}' \
				"${t[@]}" --src "$S4" --dst "$D4" --proto udp --sport 5000 --dport 53
			expect_counted "v6 with $n tags" '{"total":1,"dropped":1,"vlan_limit":1}' \
				"${t[@]}" --src "$S6" --dst "$D6" --proto tcp --sport 5000 --dport 22
		fi
	done
	# the tags change nothing about the flow: one allowed flow, one session
	local f
	for n in 0 1 2; do
		read -r -a t <<<"$(tags "$n")"
		f=$(pkt_file "${t[@]}" --src "$S4" --dst "$D4" --proto udp --sport 5001 --dport 54)
		assert_eq "allowed flow with $n tags" "$TC_ACT_OK" "$(frame_verdict "$f")"
	done
	assert_eq "sessions of the allowed flow" 1 "$(sessions_between "$S4" "$D4")"
}

@test "VLAN: the tag the kernel moves into skb metadata counts too (frames sent over the veth)" {
	local max n rv
	max=$(mseg_bound MSEG_MAX_VLANS)
	rule_deny --src "$S4" --dst "$D4" --proto udp --dport 53
	# On the wire N tags: the receiving kernel moves the outer one into
	# the skb (vlan_present) before tc, so the program sees 1 + (N - 1).
	for ((n = 1; n <= max + 1; n++)); do
		local -a t
		read -r -a t <<<"$(tags "$n")"
		f=$(pkt_file "${t[@]}" --src "$S4" --dst "$D4" --proto udp --sport 5000 --dport 53)
		stats_save
		rv=$(inject_verdict "$f")
		assert_eq "verdict of $n tags on the wire" "$TC_ACT_SHOT" "$rv"
		if ((n <= max)); then
			assert_stats "$n tags on the wire" "$DENIED"
		else
			assert_stats "$n tags on the wire" '{"total":1,"dropped":1,"vlan_limit":1}'
		fi
	done
}

# --- address families (item 2) ----------------------------------------------------

@test "IPv6 with an IPv4-mapped source or destination is dropped (v4_mapped), opens nothing" {
	local src dst
	for pair in "::ffff:$S4 $D6" "$S6 ::ffff:$D4" "::ffff:$S4 ::ffff:$D4"; do
		read -r src dst <<<"$pair"
		expect_counted "$src -> $dst" '{"total":1,"dropped":1,"v4_mapped":1}' \
			--src "$src" --dst "$dst" --proto tcp --sport 41000 --dport 80 --flags S
	done
	# (sessions_between reads ::ffff:a.b.c.d as a.b.c.d: both spellings)
	assert_eq "sessions of the IPv4 addresses" 0 "$(sessions_between "$S4" "$D4")"
}

@test "IPv6 addresses that are not IPv4-mapped are untouched: ::1, ::a.b.c.d, 64:ff9b::/96" {
	rule_deny --src "$S6" --dst ::1 --proto udp
	local a
	expect_counted "$S6 -> ::1" "$DENIED" --src "$S6" --dst ::1 --proto udp --sport 1 --dport 2
	for a in "::$D4" "64:ff9b::$D4" "::ffff:0:$D4"; do
		rule_deny --src "$S6" --dst "$a" --proto udp
		expect_counted "$S6 -> $a" "$DENIED" --src "$S6" --dst "$a" --proto udp --sport 1 --dport 2
	done
}

@test "the session key records the family: IPv4 sessions are family 4, IPv6 sessions family 6" {
	assert_eq "v4 flow" "$TC_ACT_OK" "$(verdict --src "$S4" --dst "$D4" --proto udp --sport 7 --dport 8)"
	assert_eq "v6 flow" "$TC_ACT_OK" "$(verdict --src "$S6" --dst "$D6" --proto udp --sport 7 --dport 8)"
	local fams
	fams=$(map_formatted mseg_sessions |
		jq -r 'select(.key.port_lo == 7 and .key.port_hi == 8) | .key.family' | sort | paste -sd ' ')
	assert_eq "families of the two sessions" "4 6" "$fams"
	# an IPv6 deny of the mapped spelling of the IPv4 pair never reaches
	# the IPv4 flow: the IPv6 frame is dropped first, the IPv4 flow is its own
	expect_counted "mapped spelling" '{"total":1,"dropped":1,"v4_mapped":1}' \
		--src "::ffff:$S4" --dst "::ffff:$D4" --proto udp --sport 7 --dport 9
	assert_eq "v4 flow after it" "$TC_ACT_OK" "$(verdict --src "$S4" --dst "$D4" --proto udp --sport 7 --dport 9)"
}

# --- IPv6 extension headers (item 3) ----------------------------------------------

# chain N: an --ext list of N headers the kernel accepts in a chain:
# hop-by-hop first, then destination options, routing (type 0, no segment
# left), an atomic fragment header, authentication, longer ones too.
chain() {
	local n=$1 i kinds=(dst rt dst:1 frag dst ah rt:2 dst)
	((n > 0)) || return 0
	printf 'hop'
	for ((i = 1; i < n; i++)); do
		printf ',%s' "${kinds[(i - 1) % ${#kinds[@]}]}"
	done
}

@test "IPv6: chains of 0 up to MSEG_MAX_EXT_HDRS extension headers are walked and judged; one more is dropped (exthdr_limit)" {
	local max n c
	max=$(mseg_bound MSEG_MAX_EXT_HDRS)
	assert_eq "the kernel's bound (IP6_MAX_EXT_HDRS_CNT)" 12 "$max"
	rule_deny --src "$S6" --dst "$D6" --proto tcp --dport 8080
	rule_deny --src "$S6" --dst "$D6" --proto udp --dport 53
	for ((n = 0; n <= max + 1; n++)); do
		c=$(chain "$n")
		local -a ext=()
		[[ -z $c ]] || ext=(--ext "$c")
		if ((n <= max)); then
			expect_counted "tcp after $n headers ($c)" "$DENIED" \
				--src "$S6" --dst "$D6" --proto tcp --sport 999 --dport 8080 "${ext[@]}" --payload 8
			expect_counted "udp after $n headers ($c)" "$DENIED" \
				--src "$S6" --dst "$D6" --proto udp --sport 999 --dport 53 "${ext[@]}"
		else
			expect_counted "tcp after $n headers ($c)" '{"total":1,"dropped":1,"exthdr_limit":1}' \
				--src "$S6" --dst "$D6" --proto tcp --sport 999 --dport 8080 "${ext[@]}" --payload 8
		fi
	done
}

@test "IPv6: one large extension header, and long chains past the linear part, are walked and judged" {
	local max
	max=$(mseg_bound MSEG_MAX_EXT_HDRS)
	rule_deny --src "$S6" --dst "$D6" --proto udp --dport 53
	# one 2 KiB header: the ports lie 2 KiB in, past what is read in place
	expect_counted "dst:255" "$DENIED" --src "$S6" --dst "$D6" --proto udp --sport 1 --dport 53 --ext dst:255
	expect_counted "hop:200,dst:100" "$DENIED" --src "$S6" --dst "$D6" --proto udp --sport 1 --dport 53 --ext hop:200,dst:100
	# As long as the kernel takes: 12 headers of 2 KiB. Too large for a test
	# run, so over the veth, where most of the frame is not even in the
	# linear part of the skb (AF_PACKET puts only the Ethernet header there).
	ip -n "$CRAFT_NS" link set "$CRAFT_PEER" mtu 65535
	ip -n "$CRAFT_NS" link set "$CRAFT_DEV" mtu 65535
	local c f rv
	c=hop:255$(printf ',dst:255%.0s' $(seq 2 "$max"))
	f=$(pkt_file --src "$S6" --dst "$D6" --proto udp --sport 1 --dport 53 --ext "$c")
	stats_save
	rv=$(inject_verdict "$f")
	assert_eq "verdict of $max headers of 2 KiB" "$TC_ACT_SHOT" "$rv"
	assert_stats "$max headers of 2 KiB" "$DENIED"
	f=$(pkt_file --src "$S6" --dst "$D6" --proto udp --sport 1 --dport 53 --ext "$c,dst:255")
	stats_save
	rv=$(inject_verdict "$f")
	assert_eq "verdict of $((max + 1)) headers of 2 KiB" "$TC_ACT_SHOT" "$rv"
	assert_stats "$((max + 1)) headers of 2 KiB" '{"total":1,"dropped":1,"exthdr_limit":1}'
	# and a plain frame of the same flow, sent the same way, non-linear too
	f=$(pkt_file --src "$S6" --dst "$D6" --proto udp --sport 1 --dport 53 --payload 9000)
	stats_save
	assert_eq "verdict of a 9 KB datagram" "$TC_ACT_SHOT" "$(inject_verdict "$f")"
	assert_stats "a 9 KB datagram" "$DENIED"
}

@test "IPv6: an extension chain that runs past the packet is malformed, judged by its addresses" {
	rule_deny --src "$S6" --dst "$D6"
	local f
	f=$(pkt_file --src "$S6" --dst "$D6" --proto udp --ext hop,dst:10 --tot-len 24 --truncate 78)
	stats_save
	assert_eq "verdict" "$TC_ACT_SHOT" "$(frame_verdict "$f")"
	assert_stats "the cut chain" '{"total":1,"policy_hit":1,"denied":1,"malformed":1}'
}
