#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The TCP state machine (bpf/mseg_tcp.h), frame by frame: crafted segments
# run through the program tc loaded on a veth (bpftool prog run), the
# session read back from the pinned map after every one of them. Every walk
# runs over IPv4 and over IPv6; the IPv4 client is the key's "lo" end and
# the IPv6 client its "hi" end, and the IPv6 sequence numbers wrap around
# 2^32 right after the handshake.
#
# The walks are helpers/tcpwalk.bash's (it lists the segment notation).
# Each step records which cell of mseg_tcp_next it exercised; the last test
# checks that every state-changing cell of the table was walked.

load helpers/common
load helpers/tcpwalk

setup_file() {
	require_build
	crafted_setup
	: >"$BATS_FILE_TMPDIR/cells"
}

teardown_file() {
	crafted_teardown
}

setup() {
	require_build
	need "the classifier loaded" test -n "${PROG_ID:-}"
	# shellcheck disable=SC2034 # read by helpers/tcpwalk.bash
	SESS_PIN=$(pin mseg_sessions) STATS_PIN=$(pin mseg_stats) \
		FRAME=$BATS_TEST_TMPDIR/frame CELLS=$BATS_FILE_TMPDIR/cells WALK_NO=0
}

teardown() {
	if [[ -e $BATS_TEST_TMPDIR/strict-on ]]; then
		mseg config set strict off
	fi
}

# --- the handshake -------------------------------------------------------------------

@test "three-way handshake: SYN_SENT, SYN_RECV, ESTABLISHED, counted once" {
	for fam in 4 6; do
		use $fam
		stats_mark
		walk "${HS[@]}" c:A ESTABLISHED c:PAd ESTABLISHED s:A ESTABLISHED \
			s:PAd ESTABLISHED c:A ESTABLISHED
		grown tcp_established 1
		grown new_session 1
		grown tcp_closed 0
		grown invalid 0
		assert_eq "IPv$fam packets" 8 "$S_PKTS"
		assert_eq "IPv$fam session flags (no PICKUP)" 0 $((S_FLAGS & 2))
	done
}

@test "simultaneous open: SYN both ways -> SYN_RECV ... -> ESTABLISHED" {
	for fam in 4 6; do
		use $fam
		stats_mark
		walk c:S SYN_SENT s:S SYN_RECV c:SAr SYN_RECV s:SAr SYN_RECV \
			c:A ESTABLISHED s:A ESTABLISHED
		grown invalid 0
		# without the peer's SYN, our own SYN+ACK answers nothing:
		# invalid, as in nf_conntrack
		walk c:S SYN_SENT c:SArv SYN_SENT
		grown invalid 1
		grown tcp_established 1
		grown new_session 2
	done
}

# --- closing ---------------------------------------------------------------------

@test "client closes first: FIN_WAIT1, FIN_WAIT2 only on an ACK covering FIN seq+1, TIME_WAIT" {
	for fam in 4 6; do
		use $fam
		stats_mark
		# ack = the FIN's own sequence number does not cover it
		walk "${HS[@]}" c:PAd ESTABLISHED s:A ESTABLISHED c:FA FIN_WAIT1 \
			s:An FIN_WAIT1 s:PAdn FIN_WAIT1 s:A FIN_WAIT2 s:PAd FIN_WAIT2 \
			c:A FIN_WAIT2 s:FA TIME_WAIT c:A TIME_WAIT
		# a FIN carrying data; a FIN without an ACK flag, which no TCP
		# sends (invalid), then the responder's real one
		walk "${HS[@]}" c:FPAd FIN_WAIT1 s:An FIN_WAIT1 s:A FIN_WAIT2 \
			s:Fv FIN_WAIT2 s:FA TIME_WAIT
		# the responder's FIN with an older ack (reordered) still ends it
		walk "${HS[@]}" c:FA FIN_WAIT1 s:A FIN_WAIT2 s:FAn TIME_WAIT
		grown tcp_closed 0
		grown tcp_established 3
		grown invalid 1
	done
}

@test "the responder's FIN+ACK covering our FIN goes straight to TIME_WAIT" {
	for fam in 4 6; do
		use $fam
		walk "${HS[@]}" c:FA FIN_WAIT1 s:FA TIME_WAIT c:A TIME_WAIT
		walk "${HS[@]}" c:FA FIN_WAIT1 s:FPAd TIME_WAIT
	done
}

@test "server closes first: CLOSE_WAIT, LAST_ACK, CLOSE on the final ACK, which passes" {
	for fam in 4 6; do
		use $fam
		stats_mark
		walk "${HS[@]}" s:FA CLOSE_WAIT c:A CLOSE_WAIT c:PAd CLOSE_WAIT \
			s:A CLOSE_WAIT c:FA LAST_ACK s:An LAST_ACK
		local pkts=$S_PKTS
		# step() checks the final ACK's verdict is 0 (passed)
		more s:A CLOSE
		assert_eq "IPv$fam: the closing packet is counted on the session" \
			$((pkts + 1)) "$S_PKTS"
		grown tcp_closed 1
		grown dropped 0
		# CLOSE stays in the table until its timeout
		more c:A CLOSE
		grown tcp_closed 1
	done
}

@test "simultaneous close: CLOSING, then TIME_WAIT, in both orders the FINs can cross" {
	for fam in 4 6; do
		use $fam
		stats_mark
		# the client's FIN seen first; the server's crosses it
		walk "${HS[@]}" c:FA FIN_WAIT1 s:FAn CLOSING c:A CLOSING s:A TIME_WAIT
		# ... and the server's retransmitted FIN acknowledges ours
		walk "${HS[@]}" c:FA FIN_WAIT1 s:FAn CLOSING s:FAr TIME_WAIT
		# the server's FIN seen first; the client's crosses it
		walk "${HS[@]}" s:FA CLOSE_WAIT c:FAn CLOSING c:A CLOSING s:A TIME_WAIT
		walk "${HS[@]}" s:FA CLOSE_WAIT c:FAn CLOSING s:A TIME_WAIT c:A TIME_WAIT
		grown tcp_closed 0
	done
}

# --- RST -------------------------------------------------------------------------

@test "a valid RST from either side closes the session in every state" {
	local st who
	for fam in 4 6; do
		use $fam
		stats_mark
		for st in SYN_SENT SYN_RECV ESTABLISHED FIN_WAIT1 FIN_WAIT2 TIME_WAIT \
			CLOSE CLOSE_WAIT LAST_ACK CLOSING; do
			local -n pre=REACH_$st
			for who in c s; do
				walk "${pre[@]}" "$who:RA" CLOSE
			done
			unset -n pre
		done
		# the client's plain RST while its SYN is out
		walk c:S SYN_SENT c:R CLOSE
		grown tcp_closed 21
		grown rst_ignored 0
		grown dropped 0
	done
}

@test "an RST outside the receiver's window is ignored and counted" {
	for fam in 4 6; do
		use $fam
		stats_mark
		walk "${HS[@]}" s:RAb ESTABLISHED c:RAb ESTABLISHED s:RAo ESTABLISHED \
			c:Ro ESTABLISHED s:Rf ESTABLISHED c:A ESTABLISHED
		grown rst_ignored 5
		grown tcp_closed 0
		# the control: an RST in the window closes the same connection
		more s:RA CLOSE
		grown tcp_closed 1
		walk "${REACH_TIME_WAIT[@]}" s:Rb TIME_WAIT c:Rb TIME_WAIT c:RA CLOSE
		grown rst_ignored 7
	done
}

@test "RST+ACK answering a SYN closes only with ack = ISN+1" {
	for fam in 4 6; do
		use $fam
		stats_mark
		walk c:S SYN_SENT s:RA CLOSE
		grown rst_ignored 0
		# a wrong ack, or no ACK at all, is ignored; then the right one
		walk c:S SYN_SENT s:RAx SYN_SENT s:R SYN_SENT s:RA CLOSE
		grown rst_ignored 2
		grown tcp_closed 2
	done
}

@test "window scaling: a segment beyond the unscaled window but inside the scaled one is in the window" {
	local f
	f=$(pkt_file --src 10.0.0.1 --dst 10.0.0.2 --proto tcp --flags S --wscale 7)
	run "$MSEG_PYTHON" "$MSEG_HELPERS/pktcheck.py" "$f"
	[[ $status == 0 && $output == *"flags=0x02 seq=1000 wscale=7 l4csum=ok payload=0"* ]]
	for fam in 4 6; do
		use $fam
		stats_mark
		walk c:Sw SYN_SENT
		assert_eq "IPv$fam originator's wscale" 7 "$S_OWSCALE"
		more s:SAw SYN_RECV c:A ESTABLISHED
		assert_eq "IPv$fam originator's scaled window" $((65535 << 7)) "$S_OMAXWIN"
		# 1,000,000 bytes ahead of the server's next byte: inside the
		# 65535 << 7 the client advertised; an RST there is only inexact
		more s:PAdf ESTABLISHED s:RAf ESTABLISHED
		grown out_of_window 0
		grown rst_ignored 1
		# the other direction, once the server's window is scaled too
		walk c:Sw SYN_SENT s:SAw SYN_RECV c:A ESTABLISHED s:A ESTABLISHED c:PAdf ESTABLISHED
		grown out_of_window 0
		# beyond the scaled window
		walk c:Sw SYN_SENT s:SAw SYN_RECV c:A ESTABLISHED s:PAdb ESTABLISHED
		grown out_of_window 1
		# the same segments without window scaling, or with it announced
		# by one side only (RFC 7323: then neither side scales)
		walk "${HS[@]}" s:PAdf ESTABLISHED
		walk c:Sw SYN_SENT s:SA SYN_RECV c:A ESTABLISHED s:PAdf ESTABLISHED
		assert_eq "IPv$fam window scaled by one side's option" 65535 "$S_OMAXWIN"
		walk c:S SYN_SENT s:SAw SYN_RECV c:A ESTABLISHED s:A ESTABLISHED c:PAdf ESTABLISHED
		grown out_of_window 4
		grown tcp_closed 0
	done
}

# --- retransmissions and reuse -----------------------------------------------------

@test "retransmitted SYN, SYN+ACK and FIN change nothing" {
	for fam in 4 6; do
		use $fam
		stats_mark
		walk c:S SYN_SENT c:Sr SYN_SENT s:SA SYN_RECV s:SAr SYN_RECV \
			c:Sr SYN_RECV c:A ESTABLISHED s:SAr ESTABLISHED c:Sr ESTABLISHED \
			c:A ESTABLISHED c:FA FIN_WAIT1 c:FAr FIN_WAIT1 s:A FIN_WAIT2 \
			c:FAr FIN_WAIT2 s:FA TIME_WAIT s:FAr TIME_WAIT c:A TIME_WAIT
		walk "${HS[@]}" s:FA CLOSE_WAIT s:FAr CLOSE_WAIT c:FA LAST_ACK \
			c:FAr LAST_ACK s:FArn LAST_ACK
		grown tcp_established 2
		grown tcp_closed 0
		grown new_session 2
	done
}

@test "in LAST_ACK the responder's retransmitted FIN that acknowledges ours closes" {
	for fam in 4 6; do
		use $fam
		stats_mark
		walk "${REACH_LAST_ACK[@]}" s:FArn LAST_ACK s:FAr CLOSE
		grown tcp_closed 1
	done
}

@test "a new SYN reopens a TIME_WAIT or CLOSE session, its sender the new originator" {
	local pre
	for fam in 4 6; do
		use $fam
		stats_mark
		for pre in REACH_TIME_WAIT REACH_CLOSE; do
			local -n p=$pre
			# the old client opens again
			walk "${p[@]}" c:Si SYN_SENT
			assert_eq "IPv$fam $pre: packets restart" 1 "$S_PKTS"
			more s:SA SYN_RECV c:A ESTABLISHED
			# the old server opens, to the old client's port
			walk "${p[@]}" s:Si SYN_SENT
			assert_eq "IPv$fam $pre: packets restart" 1 "$S_PKTS"
			more c:SA SYN_RECV s:A ESTABLISHED s:FA FIN_WAIT1 c:FA TIME_WAIT
			unset -n p
		done
		# CLOSE after an RST
		walk "${HS[@]}" c:RA CLOSE s:Si SYN_SENT c:SA SYN_RECV s:A ESTABLISHED
		walk "${HS[@]}" s:RA CLOSE c:Si SYN_SENT
		# each walk's first SYN, and each reopening SYN
		grown new_session 12
		grown tcp_established 11
	done
}

# --- connections first seen mid-stream ---------------------------------------------

@test "loose mode picks up a mid-stream ACK as ESTABLISHED (PICKUP); FIN or RST make no session" {
	[[ $(config_get strict) == 0 ]]
	for fam in 4 6; do
		use $fam
		stats_mark
		walk c:PAd ESTABLISHED
		assert_eq "IPv$fam PICKUP flag" 2 $((S_FLAGS & 2))
		more s:A ESTABLISHED c:FA FIN_WAIT1 s:FA TIME_WAIT c:A TIME_WAIT
		walk c:A ESTABLISHED s:RA CLOSE
		walk s:A ESTABLISHED s:RA CLOSE
		grown invalid 0
		# a SYN+ACK first opens nothing (its receiver would be taken for
		# the originator): judged in its own direction; the ACK that
		# follows is picked up
		walk s:SA - c:A ESTABLISHED
		assert_eq "IPv$fam PICKUP flag" 2 $((S_FLAGS & 2))
		grown new_session 4
		grown invalid 1
		walk c:FA - s:FA - c:RA - c:R - s:F -
		grown invalid 6
		grown new_session 4
		grown dropped 0
	done
}

@test "strict mode drops what fits no connection (mid-stream ACK, SYN+ACK, FIN), not a handshake" {
	touch "$BATS_TEST_TMPDIR/strict-on"
	mseg config set strict on
	[[ $(config_get strict) == 1 ]]
	for fam in 4 6; do
		use $fam
		stats_mark
		walk c:PAd! -
		walk s:SA! -
		walk c:FA! -
		grown invalid 3
		grown dropped 3
		grown new_session 0
		walk "${HS[@]}" c:FA FIN_WAIT1 s:FA TIME_WAIT c:A TIME_WAIT
		grown new_session 1
		grown dropped 3
	done
	mseg config set strict off
	rm "$BATS_TEST_TMPDIR/strict-on"
	use 4
	walk c:PAd ESTABLISHED
}

# --- the cells no ordinary connection reaches ------------------------------------

@test "defensive cells: FINs and ACKs before the handshake completes" {
	for fam in 4 6; do
		use $fam
		stats_mark
		walk c:S SYN_SENT s:SA SYN_RECV c:FA FIN_WAIT1
		walk c:S SYN_SENT s:SA SYN_RECV s:FA CLOSE_WAIT
		grown invalid 0
		# before any answer to the SYN, a FIN or an ACK from the client
		# and a FIN from the server belong to no connection (invalid, as
		# in nf_conntrack): the handshake goes on as if never sent
		walk c:S SYN_SENT c:FAv SYN_SENT c:Av SYN_SENT s:FAv SYN_SENT \
			s:SA SYN_RECV c:A ESTABLISHED
		grown invalid 3
		# the server's ACK then (a challenge ACK from an old connection,
		# or a half-open one) is ignored, not invalid
		walk c:S SYN_SENT s:Av SYN_SENT s:SA SYN_RECV c:A ESTABLISHED
		grown invalid 3
	done
}

# --- cross-checks ----------------------------------------------------------------

@test "mseg sessions --json names the states the map holds" {
	local -A want=()
	local st all got
	for fam in 4 6; do
		use $fam
		for st in SYN_SENT SYN_RECV ESTABLISHED FIN_WAIT1 FIN_WAIT2 TIME_WAIT \
			CLOSE CLOSE_WAIT LAST_ACK CLOSING; do
			local -n pre=REACH_$st
			walk "${pre[@]}"
			unset -n pre
			want["$C $CP"]=$st
		done
	done
	all=$(mseg sessions --json)
	for k in "${!want[@]}"; do
		got=$(jq -r --arg c "${k% *}" --argjson p "${k#* }" \
			'.[] | select(.src == $c and .sport == $p and .proto == "tcp") | .state' <<<"$all")
		assert_eq "mseg sessions: $k" "${want[$k]}" "$got"
	done
}

@test "every state-changing cell of mseg_tcp_next was walked by the tests above" {
	local table
	# dir class state next, for all 2 x 8 x 11 cells of the table
	table=$(awk '
		/\[MSEG_DIR_ORIG\] = \{/ { dir = "ORIG" }
		/\[MSEG_DIR_REPLY\] = \{/ { dir = "REPLY" }
		/\[MSEG_TC_[A-Z_]+\] =/ {
			match($0, /MSEG_TC_[A-Z_]+/)
			cls = substr($0, RSTART + 8, RLENGTH - 8)
			row = 1
		}
		row && /\{ *s/ {
			gsub(/[{},]/, " ")
			n = split($0, v, " ")
			for (i = 1; i <= n; i++) print dir, cls, i - 1, v[i]
			row = 0
		}' "$MSEG_ROOT/bpf/mseg_tcp.h")
	assert_eq "cells parsed from mseg_tcp.h" 176 "$(wc -l <<<"$table")"
	local -A name=([sNO]=NONE [sSS]=SYN_SENT [sSR]=SYN_RECV [sES]=ESTABLISHED
		[sF1]=FIN_WAIT1 [sF2]=FIN_WAIT2 [sTW]=TIME_WAIT [sCL]=CLOSE
		[sCW]=CLOSE_WAIT [sLA]=LAST_ACK [sCG]=CLOSING [sRO]=SYN_SENT)
	# A FIN is recorded only by the segment that moves the state out of
	# SYN_RECV or ESTABLISHED, so no ACK or FIN can cover it in those
	# states: these refined cells are unreachable, and each must equal its
	# unrefined sibling (the same segment, the FIN not covered).
	local -A unreachable=(["ORIG ACK_FIN SYN_RECV"]=ACK
		["REPLY FIN_ACKFIN SYN_RECV"]=FIN ["REPLY FIN_ACKFIN ESTABLISHED"]=FIN)
	local dir cls i next st missing="" n=0 seen sib
	seen=$(sort -u "$CELLS")
	while read -r dir cls i next; do
		st=${STATES[i]}
		if [[ -n ${unreachable["$dir $cls $st"]:-} ]]; then
			sib=$(awk -v d="$dir" -v c="${unreachable["$dir $cls $st"]}" -v s="$i" \
				'$1 == d && $2 == c && $3 == s { print $4 }' <<<"$table")
			assert_eq "unreachable $dir $cls $st equals its sibling" "$sib" "$next"
			continue
		fi
		# TCP sessions never sit in NONE: a segment that cannot open a
		# connection opens no session (first_state), so that column is
		# unreachable. Ignored and invalid segments change no state.
		[[ $next == sKP || $next == sIG || $next == sIV || $st == NONE ]] && continue
		[[ -n ${name[$next]:-} ]] || { echo "unknown table value $next" >&2; return 1; }
		n=$((n + 1))
		grep -qxF "$dir $cls $st ${name[$next]}" <<<"$seen" ||
			missing+=$'\n'"  $dir $cls $st -> ${name[$next]}"
	done <<<"$table"
	((n > 40))
	if [[ -n $missing ]]; then
		echo "cells never walked:$missing" >&2
		return 1
	fi
	# and every step walked agrees with the table
	local bad=""
	while read -r dir cls st next; do
		[[ $cls == RST && $next != CLOSE ]] && continue # ignored RST
		i=0
		while [[ ${STATES[i]} != "$st" ]]; do i=$((i + 1)); done
		local cell
		cell=$(awk -v d="$dir" -v c="$cls" -v s="$i" '$1 == d && $2 == c && $3 == s { print $4 }' <<<"$table")
		if [[ $cell == sKP || $cell == sIG || $cell == sIV ]]; then
			[[ $next == "$st" ]] || bad+=$'\n'"  $dir $cls $st -> $next (table: keep)"
		elif [[ ${name[$cell]} != "$next" ]]; then
			bad+=$'\n'"  $dir $cls $st -> $next (table: ${name[$cell]})"
		fi
	done <<<"$seen"
	if [[ -n $bad ]]; then
		echo "steps that disagree with the table:$bad" >&2
		return 1
	fi
}
