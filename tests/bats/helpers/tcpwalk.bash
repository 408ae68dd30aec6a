# shellcheck shell=bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Walking one TCP connection segment by segment through the crafted bench
# (common.bash's crafted_setup): each step builds a segment with mseg-pkt,
# runs it through the classifier and reads the session back from the pinned
# map. Used by tcp_state.bats (the state machine) and attacks.bats (what a
# blind third party can and cannot do to a connection).
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
#          k  seq 1,000 beyond the sender's next (inside the window, but
#             not the next sequence number)
#          b  seq 2^30 beyond the sender's next (a blind guess)
#          z  ack 2^30 beyond what it would be (a blind guess); remembered
#             as POISON
#          p  seq = POISON (the ack an earlier z segment claimed)
#          v  void: the tracker ignores this segment (invalid or ignored
#             in the state it meets), so the walk's view of its sender
#             does not move either
#          w  window scale option, shift 7 (SYNs)
#          '!' the program must drop it (retval 2); default: pass (retval 0)
# Without modifiers a segment carries the sender's next sequence number and,
# with A, acknowledges everything the peer has sent (FIN included). Segments
# the tracker must not believe (o, f, k, b, z, p and RSTs) do not move what
# the walk takes as the sender's next sequence number (nor do v segments).
#
# Each step also records, when CELLS names a file, which cell of
# mseg_tcp_next it exercised (from the segment's direction, its
# sequence-refined class and the state before).
#
# Requires common.bash and a crafted bench; the caller sets SESS_PIN,
# STATS_PIN, FRAME and WALK_NO (see tcp_state.bats's setup).

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
# S_STATE (name, "-" if none), S_ORIG (c or s), S_FLAGS, S_PKTS, S_LAST
# (last_seen_ns: what its timeout counts from), and the originator's peer
# record S_OWSCALE, S_OMAXWIN.
sess_read() {
	local out
	out=$(bpftool map lookup pinned "$SESS_PIN" key hex "${KEY_HEX[@]}" 2>&1) || true
	_sess_parse "$out"
}

# _sess_parse OUTPUT: sess_read's variables from bpftool's lookup output.
# shellcheck disable=SC2034 # the S_* variables are the suites' to read
_sess_parse() {
	local out=$1 v
	S_STATE=- S_ORIG="" S_FLAGS="" S_PKTS="" S_OWSCALE="" S_OMAXWIN="" S_LAST=""
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
	[[ $v =~ \"last_seen_ns\":\ ([0-9]+) ]] && S_LAST=${BASH_REMATCH[1]}
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
	[[ $spec =~ ^([cs]):([SAFRP]+)([dinoxfkbzpvwr!]*)$ ]] || {
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
	[[ $mods == *k* ]] && seq=$(((seq + 1000) & M))
	[[ $mods == *b* ]] && seq=$(((seq + 0x40000000) & M))
	if [[ $mods == *z* ]]; then
		ack=$(((ack + 0x40000000) & M))
		POISON=$ack
	fi
	if [[ $mods == *p* ]]; then
		[[ -n ${POISON:-} ]] || { echo "'$spec': no z segment before" >&2; return 1; }
		seq=$POISON
	fi
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
	if [[ $flags != *R* && $mods != *[obfkzpv]* ]]; then
		end=$(((seq + len) & M))
		# shellcheck disable=SC2034 # a nameref: FIN_c or FIN_s
		[[ $flags == *F* ]] && fin=$end
		[[ $flags == *S* ]] && isn=$seq
		[[ $flags == *S* ]] && end=$(((end + 1) & M))
		[[ $flags == *F* ]] && end=$(((end + 1) & M))
		after "$end" "$nxt" && nxt=$end
		last=$seq
	fi
	# Who originated the session: the first SYN's sender; for an ACK picked
	# up under a policy that allows both ways, the side on the higher port
	# (c's is 20000+); a SYN on a finished session starts anew.
	if [[ $want != - ]]; then
		if [[ $PREV == - ]]; then
			if [[ $flags == *S* ]]; then ORIG=$side; else ORIG=c; fi
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
	# (segments the tracker must not believe walk no cell)
	if [[ -n ${CELLS:-} && $PREV != - && $want != - && $mods != *[obfkzpv]* ]]; then
		echo "$dir $cls $PREV $want" >>"$CELLS"
	fi
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
