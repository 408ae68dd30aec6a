#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# IP fragments (docs/DESIGN.md, "Data path", fragments; issue 1/6 items 4
# and 7), with real fragments of real datagrams (mseg-pkt --fragment):
# tiny first fragments and later fragments over the TCP header are dropped
# (RFC 1858), a later fragment without its first is judged by its addresses
# and never opens a session, a later fragment with its first gets the first
# one's verdict and session (IPv6 too when a header follows the fragment
# header), and a flood of first fragments cannot push out a datagram
# already remembered. Each test has its own program and maps.

load helpers/common

setup() {
	require_build
	need build/mseg-testrun test -x "$MSEG_BUILD/mseg-testrun"
	crafted_setup
	# fragments of denied tcp/22 flows: failsafes off (failsafe.bats tests them)
	mseg failsafe off >/dev/null
	S4=10.70.1.1
	D4=10.71.1.2
	S6=fd00:70::1
	D6=fd00:71::2
}

teardown() {
	crafted_teardown
}

rule() {
	mseg_rule "$@" >/dev/null
}

TINY='{"total":1,"dropped":1,"frag_tiny":1}'
OVERLAP='{"total":1,"dropped":1,"frag_overlap":1}'
DENIED='{"total":1,"policy_hit":1,"denied":1}'

# --- tiny first fragments and overlaps (item 4) ------------------------------------

# split_points FAMILY: every split of a first fragment in 8-byte steps
# through a TCP header of 20 bytes, and of 24 (with a window scale option).
split_points() {
	local fam=$1 src dst hlen at what opt ext=()
	if [[ $fam == 4 ]]; then src=$S4 dst=$D4; else src=$S6 dst=$D6 ext=(--ext frag); fi
	rule add --src "$src" --dst "$dst" --proto tcp --dport 22 --action deny
	for hlen in 20 24; do
		opt=()
		((hlen == 24)) && opt=(--wscale 7)
		for at in 0 8 16 24 32; do
			what="IPv$fam first fragment with $at bytes of a $hlen-byte TCP header"
			if ((at < hlen)); then
				expect_frame "$what" "$TC_ACT_SHOT" "$TINY" --src "$src" --dst "$dst" --proto tcp \
					--sport 4000 --dport 22 "${opt[@]}" "${ext[@]}" --payload 40 --fragment "0:$at"
			else
				expect_frame "$what" "$TC_ACT_SHOT" "$DENIED" --src "$src" --dst "$dst" --proto tcp \
					--sport 4000 --dport 22 "${opt[@]}" "${ext[@]}" --payload 40 --fragment "0:$at"
			fi
		done
	done
}

@test "IPv4: a first fragment split anywhere inside the TCP header is dropped (frag_tiny); whole headers are judged" {
	split_points 4
}

@test "IPv6: a first fragment split anywhere inside the TCP header is dropped (frag_tiny); whole headers are judged" {
	split_points 6
}

@test "IPv6: a first fragment that does not hold the whole header chain is dropped (frag_tiny)" {
	expect_frame "chain cut by the fragment" "$TC_ACT_SHOT" "$TINY" \
		--src "$S6" --dst "$D6" --proto udp --ext frag,dst:2 --payload 40 --fragment 0:16
	expect_frame "chain whole, UDP cut" "$TC_ACT_SHOT" "$TINY" \
		--src "$S6" --dst "$D6" --proto udp --ext frag,dst:2 --payload 40 --fragment 0:24
	expect_frame "chain and UDP whole" "$TC_ACT_OK" '{"total":1,"default_hit":1,"allowed":1,"new_session":1}' \
		--src "$S6" --dst "$D6" --proto udp --ext frag,dst:2 --payload 40 --fragment 0:32
}

@test "UDP and ICMP first fragments need their 8-byte header, no more" {
	local fam src dst
	for fam in 4 6; do
		if [[ $fam == 4 ]]; then src=$S4 dst=$D4; else src=$S6 dst=$D6; fi
		local -a ext=()
		[[ $fam == 4 ]] || ext=(--ext frag)
		expect_frame "IPv$fam UDP with 0 bytes" "$TC_ACT_SHOT" "$TINY" \
			--src "$src" --dst "$dst" --proto udp "${ext[@]}" --payload 40 --fragment 0:0
		expect_frame "IPv$fam UDP with 8 bytes" "$TC_ACT_OK" '{"total":1,"default_hit":1,"allowed":1,"new_session":1}' \
			--src "$src" --dst "$dst" --proto udp "${ext[@]}" --payload 40 --fragment 0:8
		expect_frame "IPv$fam ICMP with 0 bytes" "$TC_ACT_SHOT" "$TINY" \
			--src "$src" --dst "$dst" --proto icmp "${ext[@]}" --payload 40 --fragment 0:0
	done
}

@test "a later fragment over the TCP header (offset 8 or 16) is dropped (frag_overlap); past it, judged" {
	local fam src dst at
	for fam in 4 6; do
		if [[ $fam == 4 ]]; then src=$S4 dst=$D4; else src=$S6 dst=$D6; fi
		local -a ext=()
		[[ $fam == 4 ]] || ext=(--ext frag)
		for at in 8 16; do
			expect_frame "IPv$fam TCP fragment at $at" "$TC_ACT_SHOT" "$OVERLAP" \
				--src "$src" --dst "$dst" --proto tcp "${ext[@]}" --payload 40 --fragment "$at:16"
		done
		# first never seen: judged by the addresses (default allow)
		expect_frame "IPv$fam TCP fragment at 24" "$TC_ACT_OK" '{"total":1,"default_hit":1,"allowed":1,"fragments":1}' \
			--src "$src" --dst "$dst" --proto tcp "${ext[@]}" --payload 40 --fragment 24:16
		# UDP's ports are in its first 8 bytes: a fragment at 8 overlaps nothing
		expect_frame "IPv$fam UDP fragment at 8" "$TC_ACT_OK" '{"total":1,"default_hit":1,"allowed":1,"fragments":1}' \
			--src "$src" --dst "$dst" --proto udp "${ext[@]}" --payload 40 --fragment 8:16
	done
}

# --- later fragments ----------------------------------------------------------------

@test "a later fragment whose first was never seen is judged by its addresses and opens no session" {
	local fam src dst
	for fam in 4 6; do
		if [[ $fam == 4 ]]; then src=$S4 dst=$D4; else src=$S6 dst=$D6; fi
		local -a ext=()
		[[ $fam == 4 ]] || ext=(--ext frag)
		expect_frame "IPv$fam orphan fragment" "$TC_ACT_OK" '{"total":1,"default_hit":1,"allowed":1,"fragments":1}' \
			--src "$src" --dst "$dst" --proto udp "${ext[@]}" --payload 100 --fragment 48
		assert_eq "IPv$fam sessions after it" 0 "$(sessions_between "$src" "$dst")"
		rule add --src "$src" --dst "$dst" --action deny
		expect_frame "IPv$fam orphan fragment, address rule" "$TC_ACT_SHOT" '{"total":1,"policy_hit":1,"denied":1,"fragments":1}' \
			--src "$src" --dst "$dst" --proto udp "${ext[@]}" --payload 100 --fragment 48
	done
}

@test "a later fragment gets its first fragment's ports: the same verdict, the same session" {
	local fam src dst
	for fam in 4 6; do
		if [[ $fam == 4 ]]; then src=$S4 dst=$D4; else src=$S6 dst=$D6; fi
		local -a ext=()
		[[ $fam == 4 ]] || ext=(--ext frag)
		# a port rule denies the datagram: its later fragment too, though
		# its addresses alone would pass
		rule add --src "$src" --dst "$dst" --proto udp --dport 5353 --action deny
		expect_frame "IPv$fam denied first" "$TC_ACT_SHOT" "$DENIED" --src "$src" --dst "$dst" --proto udp \
			--sport 777 --dport 5353 --ip-id 41 "${ext[@]}" --payload 100 --fragment 0:48
		expect_frame "IPv$fam its later fragment" "$TC_ACT_SHOT" '{"total":1,"policy_hit":1,"denied":1,"fragments":1}' \
			--src "$src" --dst "$dst" --proto udp --sport 777 --dport 5353 --ip-id 41 "${ext[@]}" \
			--payload 100 --fragment 48
		# an allowed datagram: the later fragment joins its session
		expect_frame "IPv$fam allowed first" "$TC_ACT_OK" '{"total":1,"default_hit":1,"allowed":1,"new_session":1}' \
			--src "$src" --dst "$dst" --proto udp --sport 778 --dport 5354 --ip-id 42 "${ext[@]}" \
			--payload 100 --fragment 0:48
		expect_frame "IPv$fam its later fragment" "$TC_ACT_OK" '{"total":1,"session_hit":1,"allowed":1,"fragments":1}' \
			--src "$src" --dst "$dst" --proto udp --sport 778 --dport 5354 --ip-id 42 "${ext[@]}" \
			--payload 100 --fragment 48
		assert_eq "IPv$fam packets of the session" 2 \
			"$(sessions_raw | jq -s --arg s "$src" '[.[] | select(.src == $s and .sport == 778)][0].packets')"
	done
}

@test "IPv6: with a header after the fragment header, later fragments still find their first (item 7)" {
	mseg default deny >/dev/null
	rule add --src "$S6" --dst "$D6" --proto udp --dport 5001 --action allow
	rule add --src "$S6" --dst "$D6" --proto tcp --dport 5001 --action allow
	local proto
	for proto in udp tcp; do
		expect_frame "$proto first fragment (frag, dst, $proto)" "$TC_ACT_OK" \
			'{"total":1,"policy_hit":1,"allowed":1,"new_session":1}' \
			--src "$S6" --dst "$D6" --proto "$proto" --sport 3000 --dport 5001 --ip-id 9 \
			--ext frag,dst --payload 200 --fragment 0:64
		# its fragment header says "destination options next": the ports
		# are remembered under the upper-layer protocol all the same
		expect_frame "$proto later fragment" "$TC_ACT_OK" '{"total":1,"session_hit":1,"allowed":1,"fragments":1}' \
			--src "$S6" --dst "$D6" --proto "$proto" --sport 3000 --dport 5001 --ip-id 9 \
			--ext frag,dst --payload 200 --fragment 64
	done
	# another datagram's later fragment, its first unseen: judged by
	# addresses, denied by default
	expect_frame "an orphan" "$TC_ACT_SHOT" '{"total":1,"default_hit":1,"denied":1,"fragments":1}' \
		--src "$S6" --dst "$D6" --proto udp --sport 3000 --dport 5001 --ip-id 10 \
		--ext frag,dst --payload 200 --fragment 64
}

# --- a flood of first fragments ---------------------------------------------------

@test "a flood of first fragments cannot push out a remembered datagram; the table recovers by itself" {
	local cap
	cap=$(mseg_bound MSEG_MAX_FRAGS)
	mseg default deny >/dev/null
	rule add --src "$S4" --dst "$D4" --proto udp --dport 5001 --action allow
	# On one CPU, as one receive queue would see them: the legitimate
	# datagram's first fragment (allowed, its ports remembered), four times
	# as many other first fragments as the table holds (each its own
	# datagram, denied), then the legitimate datagram's later fragment.
	local frames=$BATS_TEST_TMPDIR/flood out n=$((4 * cap))
	{
		"$MSEG_PKT" --hex --src "$S4" --dst "$D4" --proto udp --sport 6000 --dport 5001 --ip-id 7 \
			--payload 100 --fragment 0:48
		"$MSEG_PKT" --hex --src 10.70.9.9 --dst "$D4" --proto udp --sport 6000 --dport 9 \
			--ip-id 1000 --count "$n" --step ip-id --payload 100 --fragment 0:48
		"$MSEG_PKT" --hex --src "$S4" --dst "$D4" --proto udp --sport 6000 --dport 5001 --ip-id 7 \
			--payload 100 --fragment 48
	} >"$frames"
	stats_save
	out=$(timeout -k 5 300 taskset -c 0 "$MSEG_BUILD/mseg-testrun" --prog-id "$PROG_ID" "$frames")
	# the later fragment still got its ports: its session, allowed (an LRU
	# pushed them out, and default deny dropped it)
	assert_eq "verdicts: legitimate first, flood, legitimate later" \
		"$TC_ACT_OK $n*$TC_ACT_SHOT $TC_ACT_OK" \
		"$(head -n 1 <<<"$out") $(sed -n "2,$((n + 1))p" <<<"$out" | sort -u | sed "s/^/$n*/") $(tail -n 1 <<<"$out")"
	assert_eq "sessions hit (the later fragment)" 1 "$(stat_delta session_hit)"
	# the table filled and refused the rest
	assert_eq "refused first fragments" "$((n - cap + 1))" "$(stat_delta frag_full)"
	assert_eq "entries" "$cap" "$(map_dump mseg_frags | jq length)"
	# 30 s on, the flood's entries count as absent, and the next first
	# fragment that finds the table full deletes them all: the table
	# recovers by itself, nothing else running.
	sleep 31
	stats_save
	expect_frame "a new datagram's first fragment" "$TC_ACT_OK" '{"total":1,"policy_hit":1,"allowed":1,"new_session":1}' \
		--src "$S4" --dst "$D4" --proto udp --sport 6001 --dport 5001 --ip-id 8 --payload 100 --fragment 0:48
	local left
	left=$(map_dump mseg_frags | jq length)
	((left <= 2)) || { echo "entries left after the reclaim: $left" >&2; return 1; }
	expect_frame "its later fragment" "$TC_ACT_OK" '{"total":1,"session_hit":1,"allowed":1,"fragments":1}' \
		--src "$S4" --dst "$D4" --proto udp --sport 6001 --dport 5001 --ip-id 8 --payload 100 --fragment 48
}
