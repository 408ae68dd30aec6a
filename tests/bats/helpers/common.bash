# shellcheck shell=bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Loaded by every mseg bats suite: paths, CLI wrappers, a private bpffs, a
# "crafted" bench (the classifier loaded by tc on a veth in a private netns,
# driven frame by frame with `bpftool prog run`), and readers for the pinned
# maps (stats summed over CPUs, sessions decoded, config fields).
#
# Nothing here touches the host's pins or interfaces: every pin lives in a
# bpffs mounted under /tmp (TC_BPF_MNT) and every device in a netns of ours.

MSEG_HELPERS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MSEG_ROOT=$(cd "$MSEG_HELPERS/../../.." && pwd)
MSEG_BUILD=$MSEG_ROOT/build
MSEG_OBJ=$MSEG_BUILD/mseg.bpf.o
MSEG_PKT=$MSEG_BUILD/mseg-pkt
MSEG_SCRIPTS=$MSEG_ROOT/scripts
export MSEG_HELPERS MSEG_ROOT MSEG_BUILD MSEG_OBJ MSEG_PKT MSEG_SCRIPTS

# The system python3 when there is one: a version manager's shim costs
# ~0.1 s per start, and the suites start python often.
if [[ -z ${MSEG_PYTHON:-} ]]; then
	if [[ -x /usr/bin/python3 ]]; then
		MSEG_PYTHON=/usr/bin/python3
	else
		MSEG_PYTHON=python3
	fi
fi
export MSEG_PYTHON

# Stable numbers from the ABI (bpf/mseg_abi.h).
TC_ACT_OK=0
TC_ACT_SHOT=2

# --- the operator commands ---------------------------------------------------

mseg() { "$MSEG_SCRIPTS/mseg" "$@"; }
mseg_rule() { "$MSEG_SCRIPTS/mseg-rule" "$@"; }

# need WHY COND...: fail the test (never skip it) when COND does not hold;
# CI installs and builds everything, so a missing piece is a real failure.
need() {
	local why=$1
	shift
	"$@" >/dev/null 2>&1 && return 0
	echo "missing prerequisite: $why" >&2
	return 1
}

require_build() {
	need "build/mseg.bpf.o (run make)" test -f "$MSEG_OBJ"
	need "build/mseg-pkt (run make)" test -x "$MSEG_PKT"
}

# --- a private bpffs -----------------------------------------------------------

# bpffs_setup: mount a fresh bpffs under /tmp and export TC_BPF_MNT to it.
bpffs_setup() {
	MSEG_BPFFS=$(mktemp -d /tmp/mseg-bpffs.XXXXXX)
	mount -t bpf bpf "$MSEG_BPFFS"
	MSEG_LOCK_DIR=$(mktemp -d /tmp/mseg-lock.XXXXXX)
	MSEG_EVENTS_DIR=$(mktemp -d /tmp/mseg-events.XXXXXX)
	export MSEG_BPFFS TC_BPF_MNT=$MSEG_BPFFS MSEG_LOCK_DIR MSEG_EVENTS_DIR
}

# bpffs_teardown: unmount and remove it; safe to call twice or after a
# failed setup. Every suite that moves counters ends here (crafted_teardown,
# lab_teardown): first the counters must obey "one packet, one decision"
# (stats_invariant); when they do not, everything is still removed and the
# teardown fails.
bpffs_teardown() {
	local rc=0
	[[ -n ${MSEG_BPFFS:-} && -d $MSEG_BPFFS ]] || return 0
	if [[ -e $MSEG_BPFFS/tc/globals/mseg_stats ]]; then
		TC_BPF_MNT=$MSEG_BPFFS stats_invariant || rc=1
	fi
	if mountpoint -q "$MSEG_BPFFS"; then
		umount "$MSEG_BPFFS" 2>/dev/null || umount -l "$MSEG_BPFFS"
	fi
	rmdir "$MSEG_BPFFS" 2>/dev/null || true
	[[ -n ${MSEG_LOCK_DIR:-} ]] && rm -rf "$MSEG_LOCK_DIR"
	[[ -n ${MSEG_EVENTS_DIR:-} ]] && rm -rf "$MSEG_EVENTS_DIR"
	unset MSEG_BPFFS MSEG_LOCK_DIR MSEG_EVENTS_DIR
	return "$rc"
}

# pin NAME: the path tc pins map NAME at.
pin() { echo "$TC_BPF_MNT/tc/globals/$1"; }

# repin_crafted: re-attach the crafted bench with new pins (an upgrade that
# removes the old ones): detach, delete every pin, attach again. Sets PROG_ID.
repin_crafted() {
	nsrun "$CRAFT_NS" "$MSEG_SCRIPTS/mseg" detach "$CRAFT_DEV" >/dev/null || return 1
	rm -f "$TC_BPF_MNT"/tc/globals/mseg_* || return 1
	attach_dev "$CRAFT_DEV" "$CRAFT_NS" --ingress >/dev/null || return 1
	PROG_ID=$(prog_id "$CRAFT_DEV" "$CRAFT_NS") || return 1
	export PROG_ID
}

# --- attaching -------------------------------------------------------------------

# nsrun NS CMD...: CMD inside netns NS, or here when NS is empty.
nsrun() {
	local ns=$1
	shift
	if [[ -n $ns ]]; then
		ip netns exec "$ns" "$@"
	else
		"$@"
	fi
}

# attach_dev DEV NS [--ingress|--egress|--both]: the classifier on DEV, with
# `mseg attach` (the contract).
attach_dev() {
	local dev=$1 ns=$2 dir=${3:---ingress}
	nsrun "$ns" "$MSEG_SCRIPTS/mseg" attach "$dev" "$dir"
}

# prog_id DEV [NS] [ingress|egress]: id of the bpf program tc runs there.
prog_id() {
	local dev=$1 ns=${2:-} hook=${3:-ingress} id
	id=$(nsrun "$ns" tc -j filter show dev "$dev" "$hook" |
		jq -r '[.[] | .options.prog.id // empty] | first // empty')
	[[ -n $id ]] || { echo "prog_id: no bpf program on $dev $hook" >&2; return 1; }
	echo "$id"
}

# --- the crafted bench: one program, fed frames by bpftool prog run ---------

# crafted_setup: private bpffs, a netns with a veth pair (no addresses, IPv6
# off: nothing but our own frames ever crosses it), the classifier on the
# ingress of CRAFT_DEV. Sets CRAFT_NS, CRAFT_DEV, CRAFT_PEER, PROG_ID.
crafted_setup() {
	bpffs_setup
	CRAFT_NS=mseg-t$$-${RANDOM}
	CRAFT_DEV=mt0
	CRAFT_PEER=mt1
	export CRAFT_NS CRAFT_DEV CRAFT_PEER
	ip netns add "$CRAFT_NS"
	ip netns exec "$CRAFT_NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	ip netns exec "$CRAFT_NS" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
	ip -n "$CRAFT_NS" link add "$CRAFT_DEV" type veth peer name "$CRAFT_PEER"
	attach_dev "$CRAFT_DEV" "$CRAFT_NS" --ingress
	ip -n "$CRAFT_NS" link set "$CRAFT_PEER" up
	ip -n "$CRAFT_NS" link set "$CRAFT_DEV" up
	PROG_ID=$(prog_id "$CRAFT_DEV" "$CRAFT_NS")
	export PROG_ID
}

crafted_teardown() {
	if [[ -n ${CRAFT_NS:-} ]]; then
		ip netns del "$CRAFT_NS" 2>/dev/null || true
		unset CRAFT_NS
	fi
	bpffs_teardown
}

# mseg_bound NAME: a parse bound as the build has it (#define NAME N in
# bpf/, e.g. MSEG_MAX_VLANS), so a test walks up to it and one past it.
mseg_bound() {
	local v
	v=$(sed -n "s/^#define $1 \([0-9][0-9]*\).*/\1/p" "$MSEG_ROOT"/bpf/*.h | head -n 1)
	[[ -n $v ]] || { echo "mseg_bound: no #define $1 in bpf/" >&2; return 1; }
	echo "$v"
}

# rebuild_object OUT [-DNAME=N ...]: compile bpf/mseg.bpf.c with the
# Makefile's own clang command line (same capacity as build/), another
# MSEG_VERSION and the given defines (a parse bound changed on purpose), into
# OUT. Its maps have the build's layouts, so it loads over the same pins.
rebuild_object() {
	local out=$1 max cmd
	shift
	max=$(sed -n 's/.*-DMSEG_MAX_SESSIONS=\([0-9]*\).*/\1/p' "$MSEG_BUILD/.config")
	cmd=$(make -C "$MSEG_ROOT" -s -n -B build/mseg.bpf.o \
		MSEG_VERSION="rebuilt-$$" ${max:+MSEG_MAX_SESSIONS=$max} |
		grep -- '-target bpf' | grep -- ' -o build/mseg.bpf.o')
	[[ -n $cmd ]] || { echo "rebuild_object: no clang line from make -n" >&2; return 1; }
	cmd=${cmd/ -o build\/mseg.bpf.o/ $* -o $out}
	(cd "$MSEG_ROOT" && eval "timeout -k 5 300 $cmd")
}

# --- frames ----------------------------------------------------------------

# pkt_file ARGS...: build a frame with mseg-pkt into a new file, print its path.
pkt_file() {
	local f
	f=$(mktemp "${BATS_TEST_TMPDIR:-/tmp}/frame.XXXXXX")
	"$MSEG_PKT" "$@" -o "$f" || { rm -f "$f"; return 1; }
	echo "$f"
}

# syn_burst SRC DST DPORT FIRST_SPORT N: N new-flow SYNs from one process
# (build/mseg-testrun), microseconds apart, so they land in one SYN window
# however loaded the machine is; prints the distinct verdicts.
syn_burst() {
	local src=$1 dst=$2 dport=$3 sport=$4 n=$5 frames
	frames=$(mktemp "${BATS_TEST_TMPDIR:-/tmp}/syns.XXXXXX")
	"$MSEG_PKT" --proto tcp --src "$src" --dst "$dst" --sport "$sport" \
		--dport "$dport" --flags S --count "$n" --hex >"$frames"
	"$MSEG_BUILD/mseg-testrun" --prog-id "$PROG_ID" "$frames" | sort -u
	rm -f "$frames"
}

# prog_run FILE [ID]: run the program once on FILE, print its return value.
prog_run() {
	local file=$1 id=${2:-$PROG_ID} out
	out=$(bpftool -j prog run id "$id" data_in "$file" repeat 1) || {
		echo "prog_run: bpftool failed on $file" >&2
		return 1
	}
	jq -r .retval <<<"$out"
}

# stat_above NAME N: true once stats field NAME exceeds N.
stat_above() { (($(stat_get "$1") > $2)); }

# clsact_drops DEV NS: packets the clsact qdisc on DEV dropped so far.
clsact_drops() {
	nsrun "$2" tc -s -j qdisc show dev "$1" | jq '[.[] | select(.kind == "clsact") | .drops] | add // 0'
}

# inject_verdict FILE: send FILE for real into the crafted veth (through
# CRAFT_PEER, arriving on CRAFT_DEV's ingress), wait until the program has
# counted it, print 2 if tc dropped it, else 0. For frames that the kernel's
# test run refuses (it wants a whole IPv4/IPv6 header behind those
# EtherTypes), which a real link still delivers to tc.
inject_verdict() {
	local file=$1 total drops
	total=$(stat_get total) || return 1
	drops=$(clsact_drops "$CRAFT_DEV" "$CRAFT_NS")
	ip netns exec "$CRAFT_NS" "$MSEG_PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
data = open(sys.argv[2], "rb").read()
sys.exit(0 if s.send(data) == len(data) else 1)' "$CRAFT_PEER" "$file" || return 1
	wait_until 50 stat_above total "$total" || {
		echo "inject_verdict: the program never saw $file" >&2
		return 1
	}
	if (($(clsact_drops "$CRAFT_DEV" "$CRAFT_NS") > drops)); then
		echo "$TC_ACT_SHOT"
	else
		echo "$TC_ACT_OK"
	fi
}

# frame_verdict FILE: prog_run, or inject_verdict for a frame the kernel's
# test run refuses with EINVAL (e.g. an IPv4 EtherType with < 20 bytes).
frame_verdict() {
	local out
	out=$(bpftool -j prog run id "$PROG_ID" data_in "$1" repeat 1 2>&1)
	if jq -e .retval >/dev/null 2>&1 <<<"$out"; then
		jq -r .retval <<<"$out"
	elif [[ $out == *"Invalid argument"* ]]; then
		inject_verdict "$1"
	else
		echo "frame_verdict: bpftool: $out" >&2
		return 1
	fi
}

# verdict ARGS...: build a frame from mseg-pkt ARGS, run it, print retval.
verdict() {
	local f
	f=$(pkt_file "$@") || return 1
	frame_verdict "$f"
}

# --- map readers --------------------------------------------------------------

# map_dump NAME: bpftool's JSON dump of pinned map NAME.
map_dump() { bpftool -j map dump pinned "$(pin "$1")"; }

# map_formatted NAME: the BTF-formatted entries of map NAME, one per line.
map_formatted() { map_dump "$1" | jq -c '.[] | .formatted'; }

# stats_json: every mseg_stats field summed over CPUs, as one object.
stats_json() {
	map_dump mseg_stats | jq -c '
		[.[0].formatted.values[].value] as $v
		| reduce ($v[0] | keys_unsorted[]) as $k ({};
			.[$k] = ([$v[][$k]] | add))'
}

# stat_get NAME: one mseg_stats field summed over CPUs.
stat_get() {
	map_dump mseg_stats | jq -e --arg n "$1" \
		'[.[0].formatted.values[].value[$n]] | if any(. == null) then null else add end' ||
		{ echo "stat_get: no field $1" >&2; return 1; }
}

# config_get FIELD: one field of the mseg_config entry.
config_get() {
	map_dump mseg_config | jq -e --arg n "$1" '.[0].formatted.value[$n]'
}

# sessions_raw: the session table decoded straight from the map, one JSON
# object per line in the shape of `mseg sessions --json`.
sessions_raw() {
	map_dump mseg_sessions | "$MSEG_PYTHON" "$MSEG_HELPERS/mapdecode.py" sessions
}

# sessions_json: one JSON object per line from `mseg sessions --json`
# (array or JSON lines), or from the map itself while the script is missing.
sessions_json() {
	mseg sessions --json | jq -c '.[]'
}

# session_count [JQ-CONDITION]: sessions for which the condition holds.
session_count() {
	local cond=${1:-true} all
	all=$(sessions_json) || return 1
	jq -s "[.[] | select($cond)] | length" <<<"$all"
}

# rules_raw: the rules in force, one object per line (mseg-rule list --json:
# the statements of mseg_source with their per-CPU hits summed).
rules_raw() {
	"$MSEG_SCRIPTS/mseg-rule" list --json | jq -c '.[]'
}

# policy_flush: delete every rule, CIDR rule and segment, keep the default.
policy_flush() {
	local def
	def=$("$MSEG_SCRIPTS/mseg" status --json | jq -r .default_action)
	printf 'default %s\n' "$def" | "$MSEG_SCRIPTS/mseg" apply - >/dev/null
}

# stats_save: remember the current stats for stat_delta.
stats_save() { MSEG_STATS_SAVED=$(stats_json); }

# stat_delta NAME: how much field NAME grew since stats_save.
stat_delta() {
	local now
	now=$(stats_json) || return 1
	jq -n -r --argjson a "$MSEG_STATS_SAVED" --argjson b "$now" --arg n "$1" \
		'$b[$n] - $a[$n]'
}

# stats_delta_json: every field's growth since stats_save (non-zero only).
stats_delta_json() {
	local now
	now=$(stats_json) || return 1
	jq -n -c --argjson a "$MSEG_STATS_SAVED" --argjson b "$now" \
		'$b | with_entries(.value -= $a[.key]) | with_entries(select(.value != 0))'
}

# --- one packet, one decision -----------------------------------------------------

# The counters of the drops that come before any decision (docs/DESIGN.md,
# "Counters"; `mseg stats --help`).
MSEG_REFUSED_COUNTERS=(strict_drop vlan_limit v4_mapped exthdr_limit frag_tiny frag_overlap)
MSEG_DECISION_COUNTERS=(session_hit policy_hit ip_range_hit default_hit related exempt)

# stats_invariant_gap: "OUTCOME_GAP DECISION_GAP" of the current counters:
#   total - (allowed + denied + dropped + non_ip + unjudged)
#   total - non_ip - unjudged - refused - decisions
# both 0 when every packet had one outcome and, unless refused, one decision.
stats_invariant_gap() {
	local refused decisions
	refused=$(printf ' - .%s' "${MSEG_REFUSED_COUNTERS[@]}")
	decisions=$(printf ' - .%s' "${MSEG_DECISION_COUNTERS[@]}")
	stats_json | jq -r "[.total - .allowed - .denied - .dropped - .non_ip - .unjudged,
		.total - .non_ip - .unjudged $refused $decisions] | map(tostring) | join(\" \")"
}

_stats_invariant_holds() { [[ $(stats_invariant_gap) == "0 0" ]]; }

# stats_invariant: the pinned counters obey the invariant. Counters are
# per-CPU and a packet in flight may be half counted: read again (bounded)
# until it holds, then fail with the counters if it never did.
stats_invariant() {
	wait_until 30 _stats_invariant_holds && return 0
	echo "stats_invariant: outcome and decision gaps: $(stats_invariant_gap) (both must be 0)" >&2
	stats_json >&2
	return 1
}

# assert_stats WHAT WANT: the counters that moved since stats_save are WANT
# (a JSON object, in any order), and no other.
assert_stats() {
	local got
	got=$(stats_delta_json) || return 1
	assert_eq "stats after $1" "$(jq -cS . <<<"$2")" "$(jq -cS . <<<"$got")"
}

# expect_frame WHAT RETVAL STATS ARGS...: the frame of mseg-pkt ARGS gets
# RETVAL from the program and moves exactly the counters STATS.
expect_frame() {
	local what=$1 want=$2 stats=$3 rv
	shift 3
	stats_save
	rv=$(verdict "$@")
	assert_eq "verdict of $what" "$want" "$rv"
	assert_stats "$what" "$stats"
}

# crafted_test_setup SRC DST: a test's own addresses in a suite that shares
# one crafted program (10.SRC.N.1 -> 10.DST.N.2 and fd00:SRC:N::1 ->
# fd00:DST:N::2 in S4 D4 S6 D6, N the test number), so tests never see each
# other's flows; its rules are tracked for rules_cleanup.
crafted_test_setup() {
	require_build
	need "the classifier loaded" test -n "${PROG_ID:-}"
	local n=$BATS_TEST_NUMBER
	# shellcheck disable=SC2034 # the suite's tests read them
	S4=10.$1.$n.1 D4=10.$2.$n.2 S6=fd00:$1:$n::1 D6=fd00:$2:$n::2
	rules_track_init
}

# --- sessions -----------------------------------------------------------------

# session_cond PROTO SRC SPORT DST DPORT: a jq condition matching the session
# whose originator is SRC:SPORT (ICMP: any of the names icmp/icmpv6).
session_cond() {
	local proto=$1 src=$2 sport=$3 dst=$4 dport=$5 pc
	case $proto in
	icmp | icmpv6) pc='(.proto == "icmp" or .proto == "icmpv6" or .proto == "ipv6-icmp")' ;;
	*) pc="(.proto == \"$proto\")" ;;
	esac
	echo "$pc and .src == \"$src\" and .sport == $sport and .dst == \"$dst\" and .dport == $dport"
}

# assert_session PROTO SRC SPORT DST DPORT [STATE]: exactly one such session
# (in that direction), in STATE if given.
assert_session() {
	local cond all n
	cond=$(session_cond "$1" "$2" "$3" "$4" "$5")
	[[ -n ${6:-} ]] && cond="$cond and .state == \"$6\""
	all=$(sessions_json) || return 1
	n=$(jq -s "[.[] | select($cond)] | length" <<<"$all")
	if [[ $n != 1 ]]; then
		echo "assert_session: $n sessions match: $cond" >&2
		echo "sessions:" >&2
		echo "$all" >&2
		return 1
	fi
}

# sessions_between A B: how many sessions have endpoints A and B (any order),
# read from the map itself (quick, and blind to any filtering by the CLI).
sessions_between() {
	local all
	all=$(sessions_raw) || return 1
	jq -s --arg a "$1" --arg b "$2" \
		'[.[] | select((.src == $a and .dst == $b) or (.src == $b and .dst == $a))] | length' <<<"$all"
}

# --- rules a test added (deleted again in its teardown) ---------------------

# rules_track_init: start an empty record of this test's rules.
rules_track_init() {
	MSEG_RULES_ADDED=${BATS_TEST_TMPDIR:-/tmp}/mseg-rules-added
	: >"$MSEG_RULES_ADDED"
}

# rule_track SELECTORS...: remember the selectors of a rule just added.
rule_track() { echo "$*" >>"$MSEG_RULES_ADDED"; }

# rules_cleanup: delete every remembered rule, whatever state the test left.
rules_cleanup() {
	local line
	[[ -n ${MSEG_RULES_ADDED:-} && -f $MSEG_RULES_ADDED ]] || return 0
	while read -r line; do
		if [[ -n $line ]]; then
			# shellcheck disable=SC2086 # selectors are words
			mseg_rule del $line >/dev/null 2>&1 || true
		fi
	done <"$MSEG_RULES_ADDED"
	: >"$MSEG_RULES_ADDED"
}

# --- assertions ------------------------------------------------------------

# assert_eq WHAT EXPECTED ACTUAL
assert_eq() {
	if [[ $2 != "$3" ]]; then
		echo "$1: expected '$2', got '$3'" >&2
		return 1
	fi
}

# wait_until TRIES CMD...: retry CMD every 0.1 s, at most TRIES times.
wait_until() {
	local tries=$1 i
	shift
	for ((i = 0; i < tries; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
