#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Timeouts and the garbage collector: `mseg gc` (build/mseg-gc) deletes
# exactly the sessions whose timeout has passed and counts the rest; the
# data path treats an expired entry as absent before gc ever runs; `mseg
# sessions` hides what has expired (--all shows it), judged by the same
# effective timeouts as the C code; gc repeats with --interval until
# SIGTERM, sweeps 20000 sessions, fails clearly without pinned maps, and
# runs clean under AddressSanitizer and UBSan.
#
# Every test that needs maps gets its own crafted bench (private bpffs,
# netns, classifier on a veth), so the counts it checks are exact. Short
# timeouts (1 s) keep the waits short.
# shellcheck disable=SC2030,SC2031,SC2154 # each @test is its own subshell; bats sets $stderr

load helpers/common

bats_require_minimum_version 1.5.0

setup() {
	require_build
	FRAME=$BATS_TEST_TMPDIR/frame
	GC_PID=""
}

teardown() {
	if [[ -n $GC_PID ]] && kill -0 "$GC_PID" 2>/dev/null; then
		kill -KILL "$GC_PID" 2>/dev/null || true
		wait "$GC_PID" 2>/dev/null || true
	fi
	crafted_teardown
}

# bench: this test's own classifier and maps.
bench() {
	crafted_setup >/dev/null
	need "the classifier loaded" test -n "${PROG_ID:-}"
}

# _untraced CMD...: CMD without bats' per-command DEBUG trap (it costs
# ~0.3 ms a command; building sessions runs thousands).
_untraced() {
	local t rc=0
	t=$(trap -p DEBUG)
	trap - DEBUG
	"$@" || rc=$?
	eval "$t"
	return "$rc"
}

# send MSEG-PKT-ARGS...: one frame through the classifier; it must pass.
send() {
	local out
	"$MSEG_PKT" "$@" -o "$FRAME" || return 1
	out=$(bpftool -j prog run id "$PROG_ID" data_in "$FRAME" repeat 1) || return 1
	[[ $out == *'"retval":0,'* ]] || {
		echo "send $*: $out (expected retval 0)" >&2
		return 1
	}
}

# _tcp_to STATE CLIENT SERVER SPORT: a TCP connection CLIENT:SPORT ->
# SERVER:80 driven into STATE with crafted segments.
_tcp_to() {
	local st=$1 c=$2 s=$3 cp=$4 seg dir fl seq ack
	local -a hs=("c S 1000 0" "s SA 5000 1001" "c A 1001 5001") segs
	case $st in
	SYN_SENT) segs=("${hs[0]}") ;;
	SYN_RECV) segs=("${hs[@]:0:2}") ;;
	ESTABLISHED) segs=("${hs[@]}") ;;
	FIN_WAIT1) segs=("${hs[@]}" "c FA 1001 5001") ;;
	FIN_WAIT2) segs=("${hs[@]}" "c FA 1001 5001" "s A 5001 1002") ;;
	TIME_WAIT) segs=("${hs[@]}" "c FA 1001 5001" "s FA 5001 1002") ;;
	CLOSING) segs=("${hs[@]}" "c FA 1001 5001" "s FA 5001 1001") ;;
	CLOSE_WAIT) segs=("${hs[@]}" "s FA 5001 1001") ;;
	LAST_ACK) segs=("${hs[@]}" "s FA 5001 1001" "c FA 1001 5002") ;;
	CLOSE) segs=("${hs[@]}" "s FA 5001 1001" "c FA 1001 5002" "s A 5002 1002") ;;
	*) echo "_tcp_to: no way into $st" >&2; return 1 ;;
	esac
	for seg in "${segs[@]}"; do
		read -r dir fl seq ack <<<"$seg"
		if [[ $dir == c ]]; then
			send --src "$c" --dst "$s" --proto tcp --sport "$cp" --dport 80 \
				--flags "$fl" --seq "$seq" --ack "$ack" || return 1
		else
			send --src "$s" --dst "$c" --proto tcp --sport 80 --dport "$cp" \
				--flags "$fl" --seq "$seq" --ack "$ack" || return 1
		fi
	done
}

# _udp CLIENT SERVER SPORT [replied]: a UDP flow to port 53, answered or not.
_udp() {
	send --src "$1" --dst "$2" --proto udp --sport "$3" --dport 53 --payload 8 || return 1
	[[ ${4:-} != replied ]] ||
		send --src "$2" --dst "$1" --proto udp --sport 53 --dport "$3" --payload 8
}

# mksessions SPEC...: sessions from 10.70.0.1 (IPv4) or fd00:70::1 (IPv6) to
# .2/::2, one per SPEC "FAMILY KIND SPORT" where KIND is a TCP state name,
# udp, udp-replied, icmp (echo id SPORT) or gre (IP protocol 47).
mksessions() { _untraced _mksessions "$@"; }

_mksessions() {
	local spec fam kind sp c s
	for spec in "$@"; do
		read -r fam kind sp <<<"$spec"
		if [[ $fam == 4 ]]; then c=10.70.0.1 s=10.70.0.2; else c=fd00:70::1 s=fd00:70::2; fi
		case $kind in
		udp) _udp "$c" "$s" "$sp" || return 1 ;;
		udp-replied) _udp "$c" "$s" "$sp" replied || return 1 ;;
		icmp) send --src "$c" --dst "$s" --proto icmp --icmp-id "$sp" || return 1 ;;
		gre) send --src "$c" --dst "$s" --proto 47 --payload 4 || return 1 ;;
		*) _tcp_to "$kind" "$c" "$s" "$sp" || return 1 ;;
		esac
	done
}

# count_of JSON JQ-PATH: a number from gc's JSON, to compare.
count_of() { jq -r "$2" <<<"$1"; }

# expect_gc JSON scanned expired deleted live half_open: gc's counts.
expect_gc() {
	local j=$1
	assert_eq "gc scanned ($j)" "$2" "$(count_of "$j" .scanned)"
	assert_eq "gc expired ($j)" "$3" "$(count_of "$j" .expired)"
	assert_eq "gc deleted ($j)" "$4" "$(count_of "$j" .deleted)"
	assert_eq "gc live ($j)" "$5" "$(count_of "$j" .live)"
	assert_eq "gc half_open ($j)" "$6" "$(count_of "$j" .half_open)"
}

# --- the collector's counts ------------------------------------------------------

@test "mseg gc deletes exactly the expired sessions and counts the rest exactly" {
	bench
	local k
	for k in timeout_time_wait timeout_close timeout_udp timeout_icmp timeout_syn_recv; do
		mseg config set "$k" 1
	done
	# expired after 1 s: TIME_WAIT x2, CLOSE, SYN_RECV, one-way UDP x2, ICMP
	# live (default timeouts): ESTABLISHED x2, SYN_SENT x2, answered UDP
	mksessions "4 TIME_WAIT 1001" "6 TIME_WAIT 1002" "4 CLOSE 1003" "4 SYN_RECV 1004" \
		"4 udp 1005" "6 udp 1006" "4 icmp 1007" \
		"4 ESTABLISHED 2001" "6 ESTABLISHED 2002" "4 SYN_SENT 2003" \
		"6 SYN_SENT 2004" "4 udp-replied 2005"
	assert_eq "sessions made" 12 "$(sessions_raw | wc -l)"
	sleep 1.2
	# nothing deletes them but gc
	assert_eq "sessions before gc" 12 "$(sessions_raw | wc -l)"

	local out
	out=$(mseg gc --json)
	jq -e . >/dev/null <<<"$out"
	expect_gc "$out" 12 7 7 5 2
	assert_eq "gc tcp_states" \
		'{"NONE":0,"SYN_SENT":2,"SYN_RECV":0,"ESTABLISHED":2,"FIN_WAIT1":0,"FIN_WAIT2":0,"TIME_WAIT":0,"CLOSE":0,"CLOSE_WAIT":0,"LAST_ACK":0,"CLOSING":0}' \
		"$(jq -c .tcp_states <<<"$out")"
	# what is left is exactly the live set, untouched
	assert_eq "sessions left" "2001 2002 2003 2004 2005" \
		"$(sessions_raw | jq -s -r 'map(.sport) | sort | map(tostring) | join(" ")')"
	assert_eq "established left as they were" 2 \
		"$(sessions_raw | jq -s '[.[] | select(.state == "ESTABLISHED" and .packets == 3)] | length')"
	# a second run finds nothing to do; the text form says the same
	expect_gc "$(mseg gc --json)" 5 0 0 5 2
	run mseg gc
	[[ $status == 0 ]]
	[[ $output == "mseg gc: scanned 5, expired 0, deleted 0, live 5, half-open 2, in "*" s" ]]
}

@test "the data path treats an expired entry as absent at once, before any gc" {
	bench
	local cond
	mksessions "4 udp 3001" "4 udp 3001" "4 udp 3001" "4 ESTABLISHED 3002"
	cond=$(session_cond udp 10.70.0.1 3001 10.70.0.2 53)
	assert_eq "packets of the UDP flow" 3 "$(sessions_raw | jq -s "map(select($cond))[0].packets")"
	stats_save
	mksessions "4 udp 3001"
	assert_eq "a 4th packet in time joins the session" 4 \
		"$(sessions_raw | jq -s "map(select($cond))[0].packets")"
	assert_eq "session_hit" 1 "$(stat_delta session_hit)"
	# and the TCP session's next ACK passes in strict mode while it lives
	mseg config set strict on
	send --src 10.70.0.1 --dst 10.70.0.2 --proto tcp --sport 3002 --dport 80 --flags A --seq 1001 --ack 5001
	# now both time out after 1 s of silence
	mseg config set timeout_udp 1
	mseg config set timeout_established 1
	sleep 1.2
	stats_save
	mksessions "4 udp 3001"
	assert_eq "packets after the timeout: a fresh session" 1 \
		"$(sessions_raw | jq -s "map(select($cond))[0].packets")"
	assert_eq "new_session" 1 "$(stat_delta new_session)"
	assert_eq "session_hit" 0 "$(stat_delta session_hit)"
	# the expired TCP session is no session at all: strict drops the ACK
	local rv
	rv=$(prog_run "$(pkt_file --src 10.70.0.1 --dst 10.70.0.2 --proto tcp --sport 3002 \
		--dport 80 --flags A --seq 1001 --ack 5001)")
	assert_eq "expired ESTABLISHED + strict: dropped" 2 "$rv"
	assert_eq "invalid" 1 "$(stat_delta invalid)"
	# gc never ran: the expired TCP entry is still in the table
	assert_eq "the expired entry is still stored" 1 \
		"$(sessions_raw | jq -s '[.[] | select(.sport == 3002)] | length')"
}

# --- mseg sessions hides what has expired -----------------------------------------

# The sessions of one round, with the config key each one's timeout is:
# bpf/mseg_timeout.h's choice, written out here on purpose.
KINDS=(
	"SYN_SENT timeout_syn_sent" "SYN_RECV timeout_syn_recv"
	"ESTABLISHED timeout_established" "FIN_WAIT1 timeout_fin_wait"
	"FIN_WAIT2 timeout_fin_wait" "CLOSING timeout_fin_wait"
	"CLOSE_WAIT timeout_close_wait" "LAST_ACK timeout_last_ack"
	"TIME_WAIT timeout_time_wait" "CLOSE timeout_close" "udp timeout_udp"
	"udp-replied timeout_udp_replied" "icmp timeout_icmp" "gre timeout_other"
)
TIMEOUT_KEYS=(timeout_syn_sent timeout_syn_recv timeout_established
	timeout_fin_wait timeout_close_wait timeout_last_ack timeout_time_wait
	timeout_close timeout_udp timeout_udp_replied timeout_icmp timeout_other)

# sessions_round BASE PARITY: sessions of every kind (ports BASE+i), idle
# for 1.2 s; then the timeout keys of PARITY (even/odd index) set to 1 s,
# the others at their default (0): the sessions of those keys, and only
# those, disappear from `mseg sessions`, `--all` marks them expired, and
# `mseg gc` (the C side, bpf/mseg_timeout.h) deletes exactly what --all
# marked. Sets SET_TO_1 to the keys it set.
sessions_round() {
	local base=$1 parity=$2 i kind key sp id
	local -a specs=()
	local want=""
	SET_TO_1=()
	for ((i = 0; i < ${#TIMEOUT_KEYS[@]}; i++)); do
		((i % 2 == parity)) && SET_TO_1+=("${TIMEOUT_KEYS[i]}")
	done
	for ((i = 0; i < ${#KINDS[@]}; i++)); do
		read -r kind key <<<"${KINDS[i]}"
		sp=$((base + i)) id=$sp
		# GRE has no ports: one session per address pair, told by its proto
		if [[ $kind == gre ]]; then
			specs+=("6 $kind $sp")
			id=gre
		else
			specs+=("4 $kind $sp")
		fi
		if [[ " ${SET_TO_1[*]} " == *" $key "* ]]; then
			want+="$id expired ($kind)"$'\n'
		else
			want+="$id listed ($kind)"$'\n'
		fi
	done
	mksessions "${specs[@]}"
	sleep 1.2
	# shellcheck disable=SC2016 # jq code
	local defs='def ours: select(.proto == "47" or (.sport >= $b and .sport < $b + 100));
		def id: if .proto == "47" then "gre" else .sport | tostring end;'
	local vis all got
	# every timeout at its default: all listed
	vis=$(mseg sessions --json)
	assert_eq "listed under default timeouts" "$(cut -d' ' -f1 <<<"$want" | sort | xargs)" \
		"$(jq -r --argjson b "$base" "$defs .[] | ours | id" <<<"$vis" | sort | xargs)"
	for key in "${SET_TO_1[@]}"; do mseg config set "$key" 1; done
	vis=$(mseg sessions --json)
	all=$(mseg sessions --json --all)
	jq -e 'all(.[]; .expired == false)' <<<"$vis" >/dev/null
	jq -e 'all(.[]; .expired | type == "boolean")' <<<"$all" >/dev/null
	# shellcheck disable=SC2016 # jq code
	got=$(jq -r --argjson b "$base" --argjson vis "$vis" "$defs"'
		[$vis[] | ours | id] as $listed
		| .[] | ours | id as $id
		| ($listed | index([$id]) != null) as $l
		| if .expired and ($l | not) then "\($id) expired (\(.state))"
		  elif (.expired | not) and $l then "\($id) listed (\(.state))"
		  else "\($id) expired \(.expired) but listed \($l)" end' <<<"$all")
	# (the states in parentheses are mseg's names; the kinds are ours)
	assert_eq "listed or expired, with keys ${SET_TO_1[*]} at 1 s" \
		"$(sed -e '/^$/d' -e 's/(udp[^)]*)\|(icmp)\|(gre)/(NONE)/' <<<"$want" | sort)" "$(sort <<<"$got")"
	if [[ ${3:-} == --state-too && " ${SET_TO_1[*]} " == *" timeout_time_wait "* ]]; then
		# --state filters the same listing, with and without --all
		assert_eq "--state TIME_WAIT" "[]" \
			"$(mseg sessions --json --state time_wait | jq -c "[.[] | select(.sport == $((base + 8)))]")"
		run mseg sessions --all --state TIME_WAIT
		[[ $status == 0 && ${lines[0]} == PROTO*EXPIRED && ${#lines[@]} == 2 ]]
		[[ ${lines[1]} == *" $((base + 8)) "*TIME_WAIT*" yes" ]]
	fi
	# the collector agrees with the listing
	local out n_exp left
	n_exp=$(jq '[.[] | select(.expired)] | length' <<<"$all")
	out=$(mseg gc --json)
	assert_eq "gc deleted = sessions --all marked expired" "$n_exp" "$(jq .deleted <<<"$out")"
	left=$(sessions_raw | jq -s -c 'map([.proto, .src, .sport]) | sort')
	assert_eq "gc left = sessions listed" "$(jq -c 'map([.proto, .src, .sport]) | sort' <<<"$vis")" "$left"
}

@test "mseg sessions hides expired sessions by the effective per-state timeouts; --all shows them" {
	bench
	local key
	sessions_round 4000 0 --state-too
	for key in "${SET_TO_1[@]}"; do mseg config set "$key" 0; done
	sessions_round 5000 1
}

# --- the collector over time and at scale ------------------------------------------

# gc_run_seen FILE COND: some JSON line of `mseg gc --json` output meets COND.
gc_run_seen() {
	jq -e -s --exit-status "any(.[]; $2)" "$1" >/dev/null 2>&1
}

@test "mseg gc --interval 1 sweeps repeatedly and stops on SIGTERM" {
	bench
	mseg config set timeout_time_wait 1
	local out=$BATS_TEST_TMPDIR/gc.out err=$BATS_TEST_TMPDIR/gc.err
	timeout --foreground -k 5 60 "$MSEG_SCRIPTS/mseg" gc --interval 1 --json >"$out" 2>"$err" 3>&- &
	GC_PID=$!
	wait_until 30 test -s "$out"
	# sessions arrive between two runs: later runs delete the expired ones
	"$MSEG_BUILD/mseg-fill" --count 40 --expired 25 --idle 3 >/dev/null
	wait_until 40 gc_run_seen "$out" \
		'.scanned == 15 and .expired == 0 and .deleted == 0 and .live == 15'
	assert_eq "deleted over all runs" 25 "$(jq -s 'map(.deleted) | add' "$out")"
	kill -TERM "$GC_PID"
	local i
	for ((i = 0; i < 30; i++)); do
		kill -0 "$GC_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$GC_PID" 2>/dev/null; then
		echo "mseg gc still runs 3 s after SIGTERM" >&2
		return 1
	fi
	local rc=0
	wait "$GC_PID" || rc=$?
	GC_PID=""
	assert_eq "exit status after SIGTERM" 0 "$rc"
	[[ ! -s $err ]] || { cat "$err" >&2; return 1; }
	# one valid JSON object per run, at least three runs
	(($(wc -l <"$out") >= 3))
	jq -e -s 'all(.[]; has("scanned") and has("tcp_states"))' "$out" >/dev/null
}

@test "mseg gc sweeps 20000 sessions, 10000 of them expired, in well under a second" {
	bench
	mseg config set timeout_time_wait 1
	"$MSEG_BUILD/mseg-fill" --count 20000 --expired 10000 --idle 5
	local out
	out=$(mseg gc --json)
	expect_gc "$out" 20000 10000 10000 10000 0
	assert_eq "ESTABLISHED" 10000 "$(jq .tcp_states.ESTABLISHED <<<"$out")"
	assert_eq "TIME_WAIT (all expired)" 0 "$(jq .tcp_states.TIME_WAIT <<<"$out")"
	jq -e '.seconds < 1' <<<"$out" >/dev/null || { echo "slow: $out" >&2; return 1; }
	expect_gc "$(mseg gc --json)" 10000 0 0 10000 0
}

@test "mseg gc without pinned maps fails with one clear mseg: line" {
	local empty
	empty=$(mktemp -d "$BATS_TEST_TMPDIR/nopins.XXXXXX")
	run --separate-stderr env TC_BPF_MNT="$empty" "$MSEG_SCRIPTS/mseg" gc
	[[ $status == 1 && -z $output ]]
	[[ $stderr == "mseg: cannot open $empty/tc/globals/mseg_sessions: No such file or directory (run 'mseg attach DEV' first)" ]]
	run --separate-stderr env TC_BPF_MNT="$empty" "$MSEG_SCRIPTS/mseg" gc --json --interval 1
	[[ $status == 1 && -z $output && $stderr == "mseg: cannot open "*"(run 'mseg attach DEV' first)" ]]
	# and bad arguments are refused before any map is touched
	run --separate-stderr env TC_BPF_MNT="$empty" "$MSEG_SCRIPTS/mseg" gc --interval 0
	[[ $status == 2 && $stderr == "mseg: --interval wants whole seconds from 1 to 86400, not '0'" ]]
	run --separate-stderr env TC_BPF_MNT="$empty" "$MSEG_SCRIPTS/mseg" gc --bogus
	[[ $status == 2 && $stderr == "mseg: gc: unknown option '--bogus'" ]]
}

# --- sanitizers ---------------------------------------------------------------------

# sanitized OUT CMD...: run CMD with ASan (leak check on) and UBSan; OUT.err
# gets its stderr, OUT its stdout; fails on a sanitizer report.
sanitized() {
	local out=$1 rc=0
	shift
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$@" >"$out" 2>"$out.err" 3>&- || rc=$?
	if grep -qE 'Sanitizer|runtime error:' "$out.err"; then
		echo "sanitizer report from $*:" >&2
		cat "$out.err" >&2
		return 99
	fi
	return "$rc"
}

# After `run sanitized ...` of a tool with no pinned maps: exit 1, one line.
expect_no_maps() {
	local err
	err="$(cat "$1")"
	if [[ $status != 1 || $err != "mseg: cannot open "* ]]; then
		echo "expected exit 1 and 'mseg: cannot open ...', got $status: $err" >&2
		return 1
	fi
}

@test "mseg-gc and mseg-fill built with -fsanitize=address,undefined run clean" {
	local d=$BATS_TEST_TMPDIR/asan tool
	mkdir -p "$d"
	for tool in tools/mseg-gc.c bench/mseg-fill.c; do
		(cd "$MSEG_ROOT" && cc -std=gnu11 -Wall -Wextra -Werror -I bpf -I tools -g -O1 \
			-fno-omit-frame-pointer -fsanitize=address,undefined \
			-fno-sanitize-recover=undefined "$tool" -o "$d/$(basename "$tool" .c)" -lbpf)
	done
	# the sanitizers do report: a planted leak is caught
	printf '#include <stdlib.h>\nvoid *p;\nint main(void) { p = malloc(64); p = 0; return 0; }\n' >"$d/leak.c"
	cc -g -fsanitize=address,undefined "$d/leak.c" -o "$d/leak"
	run sanitized "$d/o" "$d/leak"
	[[ $status == 99 ]]

	bench
	mseg config set timeout_time_wait 1
	# more expired keys than gc buffers at once (4 x 8192): flushes midway
	sanitized "$d/o" "$d/mseg-fill" --count 40000 --expired 30000 --idle 5
	sanitized "$d/o" "$d/mseg-gc" --json
	expect_gc "$(cat "$d/o")" 40000 30000 30000 10000 0
	[[ ! -s $d/o.err ]]
	# the --interval loop, ended by SIGTERM
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 \
		timeout --foreground -k 5 60 "$d/mseg-gc" --interval 1 --json >"$d/i" 2>"$d/i.err" 3>&- &
	GC_PID=$!
	wait_until 50 test -s "$d/i"
	kill -TERM "$GC_PID"
	local rc=0
	wait_until 50 bash -c "! kill -0 $GC_PID 2>/dev/null"
	wait "$GC_PID" || rc=$?
	GC_PID=""
	assert_eq "sanitized gc --interval exit" 0 "$rc"
	if grep -qE 'Sanitizer|runtime error:' "$d/i.err"; then
		cat "$d/i.err" >&2
		return 1
	fi
	expect_gc "$(head -1 "$d/i")" 10000 0 0 10000 0
	# error paths: no maps, bad arguments, help
	run sanitized "$d/o" env TC_BPF_MNT="$BATS_TEST_TMPDIR" "$d/mseg-gc"
	expect_no_maps "$d/o.err"
	run sanitized "$d/o" env TC_BPF_MNT="$BATS_TEST_TMPDIR" "$d/mseg-fill" --count 5
	expect_no_maps "$d/o.err"
	run sanitized "$d/o" "$d/mseg-gc" --interval abc
	[[ $status == 2 ]]
	run sanitized "$d/o" "$d/mseg-fill" --count 5 --expired 6
	[[ $status == 2 ]]
	run sanitized "$d/o" "$d/mseg-gc" --help
	[[ $status == 0 && $(cat "$d/o") == usage:* ]]
	run sanitized "$d/o" "$d/mseg-fill" --help
	[[ $status == 0 && $(cat "$d/o") == usage:* ]]
}
