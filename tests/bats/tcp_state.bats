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
# A walk is a list of SEGMENT STATE pairs on one new connection: the
# segment is sent, then the session must be in STATE ("-": no session) and
# its originator must be the side the design says. A segment is
# SIDE:FLAGS[MODS]:
#   SIDE   c (client) or s (server)
#   FLAGS  mseg-pkt's letters: S A F R P
#   MODS   d  10 bytes of payload
#          r  retransmission: the sender's previous sequence number again
#          i  a new connection's ISN (the sender's next seq + 100000)
#          n  ack = the peer's FIN sequence number: does NOT cover the FIN
#          x  ack one below what it would be (a wrong ack)
#          o  seq one below the sender's next (left of the window)
#          f  seq 1,000,000 beyond the sender's next (beyond 65535, inside
#             65535 << 7)
#          b  seq 2^30 beyond the sender's next (a blind RST)
#          w  window scale option, shift 7 (SYNs)
#          !  the program must drop it (retval 2); default: pass (retval 0)
# Without modifiers a segment carries the sender's next sequence number and,
# with A, acknowledges everything the peer has sent (FIN included).
#
# Each step also records which cell of mseg_tcp_next it exercised (from the
# segment's direction, its sequence-refined class and the state before); the
# last test checks that every state-changing cell of the table was walked.

load helpers/common

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
	SESS_PIN=$(pin mseg_sessions)
	STATS_PIN=$(pin mseg_stats)
	FRAME=$BATS_TEST_TMPDIR/frame
	CELLS=$BATS_FILE_TMPDIR/cells
	WALK_NO=0
}

teardown() {
	if [[ -e $BATS_TEST_TMPDIR/strict-on ]]; then
		mseg config set strict off
	fi
}

STATES=(NONE SYN_SENT SYN_RECV ESTABLISHED FIN_WAIT1 FIN_WAIT2 TIME_WAIT CLOSE
	CLOSE_WAIT LAST_ACK CLOSING)
M=0xffffffff

# --- addresses and the session key -------------------------------------------

# addr_hex ADDR: the 16 bytes mseg stores (IPv4 mapped) as 32 hex digits.
addr_hex() {
	local a=$1 out="" g i n
	local -a h=() t=() o=()
	if [[ $a != *:* ]]; then
		IFS=. read -ra o <<<"$a"
		printf -v out '00000000000000000000ffff%02x%02x%02x%02x' "${o[@]}"
	else
		if [[ $a == *::* ]]; then
			IFS=: read -ra h <<<"${a%%::*}"
			IFS=: read -ra t <<<"${a#*::}"
		else
			IFS=: read -ra h <<<"$a"
		fi
		n=$((8 - ${#h[@]} - ${#t[@]}))
		for g in "${h[@]}"; do
			printf -v g '%04x' "0x$g"
			out+=$g
		done
		for ((i = 0; i < n; i++)); do out+=0000; done
		for g in "${t[@]}"; do
			printf -v g '%04x' "0x$g"
			out+=$g
		done
	fi
	echo "$out"
}

# use FAMILY: this test's client C and server S, and their ISNs.
use() { _untraced _use "$@"; }

_use() {
	FAM=$1
	local n=$BATS_TEST_NUMBER
	if [[ $1 == 4 ]]; then
		C=10.62.$n.1 S=10.63.$n.2
		C_ISN=1000 S_ISN=500000
	else
		C=fd00:63:$n::2 S=fd00:62:$n::1
		# both streams cross 2^32 within the first segments
		C_ISN=4294967290 S_ISN=4294967295
	fi
	C_HEX=$(addr_hex "$C")
	S_HEX=$(addr_hex "$S")
}

# key_build: the direction-normalised key of C:CP <-> S:SP as hex words.
key_build() {
	local lo lop hi hip hex i
	if [[ $C_HEX < $S_HEX || ($C_HEX == "$S_HEX" && $CP -lt $SP) ]]; then
		C_IS_HI=0 lo=$C_HEX lop=$CP hi=$S_HEX hip=$SP
	else
		C_IS_HI=1 lo=$S_HEX lop=$SP hi=$C_HEX hip=$CP
	fi
	# then proto 6, the family, two bytes of padding
	printf -v hex '%s%s%02x%02x%02x%02x06%02x0000' "$lo" "$hi" \
		$((lop & 255)) $((lop >> 8)) $((hip & 255)) $((hip >> 8)) "$FAM"
	KEY_HEX=()
	for ((i = 0; i < ${#hex}; i += 2)); do KEY_HEX+=("${hex:i:2}"); done
}

# sess_read: the session of the current connection, straight from the map:
# S_STATE (name, "-" if none), S_ORIG (c or s), S_FLAGS, S_PKTS, and the
# originator's peer record S_OWSCALE, S_OMAXWIN.
sess_read() {
	local out
	out=$(bpftool map lookup pinned "$SESS_PIN" key hex "${KEY_HEX[@]}" 2>&1) || true
	_sess_parse "$out"
}

# _sess_parse OUTPUT: sess_read's variables from bpftool's lookup output.
_sess_parse() {
	local out=$1 v
	S_STATE=- S_ORIG="" S_FLAGS="" S_PKTS="" S_OWSCALE="" S_OMAXWIN=""
	[[ $out == *"Not found"* ]] && return 0
	v=${out#*\"value\": }
	[[ $v =~ \"state\":\ ([0-9]+),[^}]*\"orig_is_hi\":\ ([0-9]+),[^}]*\"flags\":\ ([0-9]+) ]] || {
		echo "sess_read: cannot parse: $out" >&2
		return 1
	}
	S_STATE=${STATES[BASH_REMATCH[1]]:-${BASH_REMATCH[1]}}
	S_FLAGS=${BASH_REMATCH[3]}
	if ((BASH_REMATCH[2] == C_IS_HI)); then S_ORIG=c; else S_ORIG=s; fi
	[[ $v =~ \"packets\":\ \[([0-9]+),([0-9]+) ]] && S_PKTS=$((BASH_REMATCH[1] + BASH_REMATCH[2]))
	[[ $v =~ \"max_win\":\ ([0-9]+) ]] && S_OMAXWIN=${BASH_REMATCH[1]}
	[[ $v =~ \"wscale\":\ ([0-9]+) ]] && S_OWSCALE=${BASH_REMATCH[1]}
	return 0
}

# --- counters (summed over CPUs, without jq: this suite reads them often) ------

stats_mark() { STATS_MARK=$(bpftool map lookup pinned "$STATS_PIN" key hex 00 00 00 00); }

# _stat_sum DUMP NAME
_stat_sum() {
	local s=$1 re="\"$2\": ([0-9]+)" sum=0
	while [[ $s =~ $re ]]; do
		sum=$((sum + BASH_REMATCH[1]))
		s=${s#*"${BASH_REMATCH[0]}"}
	done
	echo "$sum"
}

# grown NAME WANT: counter NAME grew by exactly WANT since stats_mark.
grown() { _untraced _grown "$@"; }

_grown() {
	local now a b
	now=$(bpftool map lookup pinned "$STATS_PIN" key hex 00 00 00 00)
	[[ $now == *"\"$1\": "* ]] || { echo "no counter $1" >&2; return 1; }
	a=$(_stat_sum "$STATS_MARK" "$1")
	b=$(_stat_sum "$now" "$1")
	assert_eq "IPv$FAM counter $1 grew by" "$2" $((b - a))
}

# --- walking -------------------------------------------------------------------

# new_conn: a fresh client port, both streams at their ISN, no session yet.
new_conn() {
	WALK_NO=$((WALK_NO + 1))
	CP=$((20000 + WALK_NO)) SP=80
	# shellcheck disable=SC2034 # step() reads them through namerefs
	NXT_c=$C_ISN NXT_s=$S_ISN LAST_c=$C_ISN LAST_s=$S_ISN ISN_c=$C_ISN ISN_s=$S_ISN
	FIN_c="" FIN_s="" ORIG="" PREV=-
	TRACE=""
	key_build
}

# after A B: sequence number A is after B (mod 2^32).
after() { local d=$((($1 - $2) & M)); ((d != 0 && d < 0x80000000)); }

# step SEGMENT STATE: send one segment of the current connection, check the
# verdict, the state and the originator; record the table cell.
step() {
	local spec=$1 want=$2
	[[ $spec =~ ^([cs]):([SAFRP]+)([dinoxfbwr!]*)$ ]] || {
		echo "bad segment '$spec'" >&2
		return 1
	}
	local side=${BASH_REMATCH[1]} flags=${BASH_REMATCH[2]} mods=${BASH_REMATCH[3]}
	local peer=c
	[[ $side == c ]] && peer=s
	local -n nxt=NXT_$side pnxt=NXT_$peer last=LAST_$side fin=FIN_$side pfin=FIN_$peer \
		isn=ISN_$side
	local seq=$nxt ack=0 len=0 rv_want=0 src dst sport dport cls dir out rv end
	local -a extra=()

	if [[ $mods == *r* ]]; then
		# a SYN again carries the ISN; anything else repeats the last one
		if [[ $flags == *S* ]]; then seq=$isn; else seq=$last; fi
	fi
	[[ $mods == *i* ]] && seq=$(((nxt + 100000) & M))
	[[ $mods == *d* ]] && len=10
	[[ $flags == *A* ]] && ack=$pnxt
	if [[ $mods == *n* ]]; then
		[[ -n $pfin ]] || { echo "'$spec': the peer sent no FIN" >&2; return 1; }
		ack=$pfin
	fi
	[[ $mods == *x* ]] && ack=$(((ack - 1) & M))
	[[ $mods == *o* ]] && seq=$(((seq - 1) & M))
	[[ $mods == *f* ]] && seq=$(((seq + 1000000) & M))
	[[ $mods == *b* ]] && seq=$(((seq + 0x40000000) & M))
	[[ $mods == *w* ]] && extra+=(--wscale 7)
	[[ $mods == *'!'* ]] && rv_want=2

	# The class the table is indexed by, as bpf/mseg_tcp.h defines it.
	local acks_fin=0
	if [[ $flags == *A* && -n $pfin ]] && ! after $(((pfin + 1) & M)) "$ack"; then
		acks_fin=1
	fi
	if [[ $flags == *R* ]]; then
		cls=RST
	elif [[ $flags == *S* ]]; then
		if [[ $flags == *A* ]]; then cls=SYNACK; else cls=SYN; fi
	elif [[ $flags == *F* ]]; then
		if ((acks_fin)); then cls=FIN_ACKFIN; else cls=FIN; fi
	elif [[ $flags == *A* ]]; then
		if ((acks_fin)); then cls=ACK_FIN; else cls=ACK; fi
	else
		cls=NONE
	fi
	if [[ $side == "$ORIG" ]]; then dir=ORIG; else dir=REPLY; fi

	if [[ $side == c ]]; then
		src=$C dst=$S sport=$CP dport=$SP
	else
		src=$S dst=$C sport=$SP dport=$CP
	fi
	"$MSEG_PKT" --src "$src" --dst "$dst" --proto tcp --sport "$sport" \
		--dport "$dport" --flags "$flags" --seq "$seq" --ack "$ack" \
		--payload "$len" "${extra[@]}" -o "$FRAME" || return 1
	# One bpftool for the run and the lookup right after it.
	out=$(printf 'prog run id %s data_in %s repeat 1\nmap lookup pinned %s key hex %s\n' \
		"$PROG_ID" "$FRAME" "$SESS_PIN" "${KEY_HEX[*]}" | bpftool batch file - 2>&1) || true
	[[ $out =~ Return\ value:\ ([0-9]+) ]] || { echo "prog run: $out" >&2; return 1; }
	rv=${BASH_REMATCH[1]}
	TRACE+=" $spec(seq=$seq,ack=$ack)"

	# What the segment shows of its sender's stream (RSTs and segments
	# outside the window do not move it).
	if [[ $flags != *R* && $mods != *[obf]* ]]; then
		end=$(((seq + len) & M))
		# shellcheck disable=SC2034 # a nameref: FIN_c or FIN_s
		[[ $flags == *F* ]] && fin=$end
		[[ $flags == *S* ]] && isn=$seq
		[[ $flags == *S* ]] && end=$(((end + 1) & M))
		[[ $flags == *F* ]] && end=$(((end + 1) & M))
		after "$end" "$nxt" && nxt=$end
		last=$seq
	fi
	# Who originated the session: the first SYN (or ACK) picked up, the
	# receiver of a first SYN+ACK; a SYN on a finished session starts anew.
	if [[ $want != - ]]; then
		if [[ $PREV == - ]]; then
			if [[ $flags == S*A* || $flags == A*S* ]]; then
				ORIG=$peer
			elif [[ $flags != *S* ]]; then
				# picked up mid-stream under a policy allowing both ways:
				# the side on the higher port (c's is 20000+)
				ORIG=c
			else
				ORIG=$side
			fi
		elif [[ $flags == S && ($PREV == TIME_WAIT || $PREV == CLOSE) ]]; then
			# shellcheck disable=SC2034 # read through namerefs
			ORIG=$side FIN_c="" FIN_s=""
		fi
	fi

	_sess_parse "$out" || return 1
	local where="IPv$FAM walk $WALK_NO:$TRACE"
	if [[ $rv != "$rv_want" ]]; then
		echo "$where: verdict $rv, expected $rv_want" >&2
		return 1
	fi
	if [[ $S_STATE != "$want" ]]; then
		echo "$where: state $S_STATE, expected $want" >&2
		return 1
	fi
	if [[ $want != - && $S_ORIG != "$ORIG" ]]; then
		echo "$where: originator $S_ORIG, expected $ORIG" >&2
		return 1
	fi
	[[ $PREV != - && $want != - ]] && echo "$dir $cls $PREV $want" >>"$CELLS"
	PREV=$want
	return 0
}

# walk SEGMENT STATE...: a new connection through these steps.
walk() { _untraced _walk "$@"; }

_walk() {
	new_conn
	_steps "$@"
}

# more SEGMENT STATE...: further steps on the current connection.
more() { _untraced _steps "$@"; }

_steps() {
	while (($# >= 2)); do
		step "$1" "$2" || return 1
		shift 2
	done
	(($# == 0)) || { echo "walk: odd number of arguments" >&2; return 1; }
}

# _untraced CMD...: run CMD without bats' DEBUG trap, then put it back. The
# trap records a stack trace for every command (~0.3 ms each) and a walk
# runs thousands of them; step() names the failing step itself.
_untraced() {
	local t rc=0
	t=$(trap -p DEBUG)
	trap - DEBUG
	"$@" || rc=$?
	eval "$t"
	return "$rc"
}

# The handshake, and a way into every state (REACH_<state>, used through
# namerefs).
HS=(c:S SYN_SENT s:SA SYN_RECV c:A ESTABLISHED)
# shellcheck disable=SC2034
{
	REACH_SYN_SENT=(c:S SYN_SENT)
	REACH_SYN_RECV=(c:S SYN_SENT s:SA SYN_RECV)
	REACH_ESTABLISHED=("${HS[@]}")
	REACH_FIN_WAIT1=("${HS[@]}" c:FA FIN_WAIT1)
	REACH_FIN_WAIT2=("${HS[@]}" c:FA FIN_WAIT1 s:A FIN_WAIT2)
	REACH_TIME_WAIT=("${HS[@]}" c:FA FIN_WAIT1 s:FA TIME_WAIT)
	REACH_CLOSE=("${HS[@]}" s:FA CLOSE_WAIT c:FA LAST_ACK s:A CLOSE)
	REACH_CLOSE_WAIT=("${HS[@]}" s:FA CLOSE_WAIT)
	REACH_LAST_ACK=("${HS[@]}" s:FA CLOSE_WAIT c:FA LAST_ACK)
	REACH_CLOSING=("${HS[@]}" c:FA FIN_WAIT1 s:FAn CLOSING)
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
		# the peer's SYN unseen: our SYN+ACK alone answers it
		walk c:S SYN_SENT c:SAr SYN_RECV c:A ESTABLISHED
		grown tcp_established 2
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
		# a FIN carrying data; the responder's FIN without an ACK flag
		walk "${HS[@]}" c:FPAd FIN_WAIT1 s:An FIN_WAIT1 s:A FIN_WAIT2 \
			s:F TIME_WAIT
		grown tcp_closed 0
		grown tcp_established 2
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

@test "window scaling: an RST beyond the unscaled window but inside the scaled one is accepted" {
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
		more s:RAf CLOSE
		# the other direction, once the server's window is scaled too
		walk c:Sw SYN_SENT s:SAw SYN_RECV c:A ESTABLISHED s:A ESTABLISHED c:RAf CLOSE
		grown rst_ignored 0
		# beyond the scaled window: ignored
		walk c:Sw SYN_SENT s:SAw SYN_RECV c:A ESTABLISHED s:RAb ESTABLISHED
		# the same RSTs without window scaling, or with it announced by
		# one side only (RFC 7323: then neither side scales)
		walk "${HS[@]}" s:RAf ESTABLISHED
		walk c:Sw SYN_SENT s:SA SYN_RECV c:A ESTABLISHED s:RAf ESTABLISHED
		assert_eq "IPv$fam window scaled by one side's option" 65535 "$S_OMAXWIN"
		walk c:S SYN_SENT s:SAw SYN_RECV c:A ESTABLISHED s:A ESTABLISHED c:RAf ESTABLISHED
		grown rst_ignored 4
		grown tcp_closed 2
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
		# a SYN+ACK first: its receiver sent the SYN
		walk s:SA SYN_RECV
		assert_eq "IPv$fam PICKUP flag" 2 $((S_FLAGS & 2))
		more c:A ESTABLISHED
		grown new_session 4
		grown invalid 0
		walk c:FA - s:FA - c:RA - c:R - s:F -
		grown invalid 5
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

@test "defensive cells: FINs before the handshake completes" {
	for fam in 4 6; do
		use $fam
		walk c:S SYN_SENT s:SA SYN_RECV c:FA FIN_WAIT1
		walk c:S SYN_SENT s:SA SYN_RECV s:FA CLOSE_WAIT
		# a FIN seen while SYN_SENT is remembered: the next ACK that
		# covers it is an ACK_FIN / FIN_ACKFIN of the later states
		walk c:S SYN_SENT s:F SYN_SENT s:SAr SYN_RECV c:A ESTABLISHED
		walk c:S SYN_SENT c:F SYN_SENT s:SA SYN_RECV s:FA CLOSE_WAIT
		walk c:S SYN_SENT c:F SYN_SENT s:SA SYN_RECV c:A ESTABLISHED s:FA CLOSE_WAIT
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
	local dir cls i next st missing="" n=0 seen
	seen=$(sort -u "$CELLS")
	while read -r dir cls i next; do
		st=${STATES[i]}
		# TCP sessions never sit in NONE: a segment that cannot open a
		# connection opens no session (first_state), so that column is
		# unreachable.
		[[ $next == sKP || $st == NONE ]] && continue
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
		if [[ $cell == sKP ]]; then
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
