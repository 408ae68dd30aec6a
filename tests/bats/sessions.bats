#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# `mseg sessions` (build/mseg-sessions, issue 4/6): listing, filters, counts
# and order checked differentially against a Python model over random
# tables; the data path's expiry rule including the SYN-flood shortening;
# del and flush keeping the half-open count exact; status counting without
# walking the table; errors; the tool under AddressSanitizer.
# shellcheck disable=SC2154 # bats sets $stderr, $output, $lines

bats_require_minimum_version 1.5.0

load helpers/common

setup() {
	require_build
	crafted_setup >/dev/null
}

teardown() {
	crafted_teardown
}

# half_open: the data path's half-open count, unclamped (opened - closed - reaped).
half_open() {
	local p g
	p=$(map_dump mseg_pressure | jq -c '.[0].formatted.value')
	g=$(map_dump mseg_gc | jq -c '.[0].formatted.value')
	jq -n --argjson p "$p" --argjson g "$g" \
		'$p.half_open_opened - $p.half_open_closed - $g.half_open_reaped'
}

# spec LINE...: sessions laid out with mseg-fill --spec.
spec() { printf '%s\n' "$@" | "$MSEG_BUILD/mseg-fill" --spec - >/dev/null; }

@test "listing, filters, --count and del agree with a model over random tables (IPv4 and IPv6)" {
	local seed=${MSEG_FUZZ_SEED:-$RANDOM}
	echo "seed $seed" >&2
	"$MSEG_PYTHON" "$MSEG_HELPERS/sessions-fuzz.py" "$seed" 400 60
}

@test "sorted by address as numbers, IPv4 first; the text table and its header" {
	# proto src sport dst dport state action idle flags
	spec "17 2001:db8::10 5 2001:db8::1 53 0 0 1 0" \
		"17 2001:db8::9 5 2001:db8::1 53 0 0 1 0" \
		"6 10.0.0.10 1000 10.0.0.1 80 3 0 1 0" \
		"6 10.0.0.9 1000 10.0.0.1 80 3 1 1 0" \
		"6 10.0.0.9 999 10.0.0.1 80 1 2 1 0"
	run --separate-stderr mseg sessions
	[ "$status" -eq 0 ]
	[[ ${lines[0]} =~ ^PROTO\ +SRC\ +SPORT\ +DST\ +DPORT\ +STATE\ +PACKETS\ +BYTES\ +IDLE_S\ +CONFIRMED\ +ACTION\ +RULE$ ]]
	[ "${#lines[@]}" -eq 6 ]
	local got
	got=$(printf '%s\n' "${lines[@]:1}" | awk '{ print $2 ":" $3 }' | xargs)
	assert_eq "order" "10.0.0.9:999 10.0.0.9:1000 10.0.0.10:1000 2001:db8::9:5 2001:db8::10:5" "$got"
	# columns line up under the header
	local col
	col=$(awk 'NR == 1 { print index($0, "STATE") }' <<<"$output")
	[ "$(printf '%s\n' "${lines[@]}" | awk -v c="$col" 'NR > 1 { print substr($0, c, 1) }' | sort -u | xargs)" = "E N S" ]
	[ "$(mseg sessions --count)" = 5 ]
	[ "$(mseg sessions --count --json)" = '{"count":5}' ]
	[ "$(mseg sessions --json --src 10.0.0.0/28 --sport 999 | jq -c '.[] | [.state, .action]')" = '["SYN_SENT","log"]' ]
	[ "$(mseg sessions --json --src 10.0.0.0/8 --action deny | jq -r '.[].sport')" = 1000 ]
	[ "$(mseg sessions list --json --dst 2001:db8::/64 | jq length)" = 2 ]
	# an IPv6 prefix never matches IPv4 sessions, as in mseg_cidr
	[ "$(mseg sessions --count --src ::/0)" = 2 ]
	[ "$(mseg sessions --count --src 0.0.0.0/0)" = 3 ]
	run mseg sessions --json --proto icmp
	[ "$output" = "[]" ]
}

@test "CONFIRMED: yes once answered, pickup for an unanswered mid-stream pickup, which lives timeout_unconfirmed" {
	# flags: MSEG_SESS_REPLIED 1, MSEG_SESS_PICKUP 2 (bpf/mseg_abi.h)
	spec "6 10.7.0.1 1 10.7.0.2 80 3 0 1 1" \
		"6 10.7.0.1 2 10.7.0.2 80 3 0 1 2" \
		"6 10.7.0.1 3 10.7.0.2 80 1 0 1 0" \
		"6 10.7.0.1 4 10.7.0.2 80 3 0 40 2" \
		"6 10.7.0.1 5 10.7.0.2 80 3 0 40 3"
	run --separate-stderr mseg sessions --src 10.7.0.1
	[ "$status" -eq 0 ]
	[[ ${lines[0]} == *" CONFIRMED "* ]]
	assert_eq "confirmed column" "1:yes 2:pickup 3:no 5:yes" \
		"$(awk 'NR > 1 { print $3 ":" $10 }' <<<"$output" | xargs)"
	assert_eq "json" '[[1,true,false],[2,false,true],[3,false,false],[5,true,true]]' \
		"$(mseg sessions --json --src 10.7.0.1 | jq -c 'map([.sport, .confirmed, .pickup])')"
	# idle 40 s: past timeout_unconfirmed (30 s) unanswered, alive once answered
	[ "$(mseg sessions --json --all --sport 4 | jq -c 'map(.expired)')" = '[true]' ]
	mseg config set timeout_unconfirmed 60
	[ "$(mseg sessions --count --src 10.7.0.1)" = 5 ]
}

@test "during a SYN flood, half-open sessions past the flood timeout are not listed: the data path's rule" {
	mseg config set flood_syn_rate 3
	mseg config set flood_syn_timeout 5
	# a SYN_SENT session idle for 10 s: alive under SYN_SENT's 120 s
	spec "6 10.8.0.1 4000 10.8.0.2 80 1 0 10 0"
	[ "$(mseg sessions --count --sport 4000)" = 1 ]
	# five SYNs in one window raise the flood flag
	[ "$(syn_burst 10.8.0.3 10.8.0.2 80 41000 5)" = 0 ]
	[ "$(map_dump mseg_pressure | jq '.[0].formatted.value.flags / 8 | floor % 2')" = 1 ]
	# now it is past the 5 s flood timeout: hidden, shown expired with --all
	[ "$(mseg sessions --count --sport 4000)" = 0 ]
	[ "$(mseg sessions --json --all --sport 4000 | jq -c '.[] | [.state, .expired]')" = '["SYN_SENT",true]' ]
	# the fresh half-open sessions of the flood are listed
	[ "$(mseg sessions --count --src 10.8.0.3 --state SYN_SENT)" = 5 ]
	# and the data path agrees: the session's next SYN opens a new one
	stats_save
	[ "$(verdict --proto tcp --src 10.8.0.1 --dst 10.8.0.2 --sport 4000 --dport 80 --flags S)" = 0 ]
	[ "$(stat_delta new_session)" = 1 ]
	[ "$(stat_delta session_hit)" = 0 ]
}

@test "del and flush delete exactly what they say and keep the half-open count exact" {
	# 30 half-open TCP sessions and 5 UDP flows through the data path
	[ "$(syn_burst 10.9.0.1 10.9.0.2 80 2000 30)" = 0 ]
	local i
	for i in 1 2 3 4 5; do
		[ "$(verdict --proto udp --src 10.9.0.1 --dst 10.9.0.3 --sport "$i" --dport 53)" = 0 ]
	done
	[ "$(half_open)" = 30 ]
	run --separate-stderr mseg sessions del --sport 2000 --dport 80
	[ "$status" -eq 0 ]
	[ "$output" = "deleted 1 session (1 half-open)" ]
	[ "$(half_open)" = 29 ]
	[ "$(mseg sessions del --json --proto udp)" = '{"deleted":5,"half_open":0}' ]
	[ "$(half_open)" = 29 ]
	[ "$(mseg sessions del --json --proto udp)" = '{"deleted":0,"half_open":0}' ]
	[ "$(mseg sessions --count --all)" = 29 ]
	[ "$(mseg sessions flush --json)" = '{"deleted":29,"half_open":29}' ]
	[ "$(half_open)" = 0 ]
	[ "$(mseg sessions --count --all)" = 0 ]
	[ "$(mseg status --json | jq .sessions)" = 0 ]
	# gc finds nothing left and the count does not go below zero
	[ "$(mseg gc --json | jq -c '[.scanned, .deleted, .deleted_half_open]')" = '[0,0,0]' ]
	[ "$(half_open)" = 0 ]
	# a deleted connection's next packet is judged as a new flow
	stats_save
	[ "$(verdict --proto tcp --src 10.9.0.1 --dst 10.9.0.2 --sport 2005 --dport 80 --flags S)" = 0 ]
	[ "$(stat_delta new_session)" = 1 ]
	[ "$(half_open)" = 1 ]
	# the pressure recount follows the kernel's own count
	[ "$(map_dump mseg_pressure | jq '.[0].formatted.value.sessions')" = 1 ]
}

@test "status and --count --all read the kernel's count: no walk of the table" {
	need strace command -v strace
	"$MSEG_BUILD/mseg-fill" --count 3000 --expired 1000 --idle 150 >/dev/null
	[ "$(mseg status --json | jq .sessions)" = 3000 ]
	[ "$(mseg sessions --count --all)" = 3000 ]
	[ "$(mseg sessions --count)" = 2000 ]
	local trace=$BATS_TEST_TMPDIR/trace
	strace -f -e trace=bpf -o "$trace" "$MSEG_BUILD/mseg-sessions" --count --all >/dev/null
	if grep -E 'BPF_MAP_(LOOKUP_BATCH|GET_NEXT_KEY|LOOKUP_ELEM)' "$trace"; then return 1; fi
	grep -q BPF_PROG_TEST_RUN "$trace"
}

@test "bad filters and subcommands are refused with one mseg: line, exit 2" {
	local -a cases=(
		"--src 10.1.2.3/8|mseg: --src: '10.1.2.3/8' has host bits set past /8"
		"--dst nowhere|mseg: --dst: not an address: 'nowhere'"
		"--src 10.0.0.0/33|mseg: --src: bad prefix length in '10.0.0.0/33' (0..32)"
		"--proto sctpx|mseg: --proto wants tcp, udp, icmp, icmpv6 or 0..255, not 'sctpx'"
		"--sport 65536|mseg: --sport wants a port 0..65535, not '65536'"
		"--state OPEN|mseg: unknown state: 'OPEN'"
		"--action drop|mseg: unknown action: 'drop'"
		"--bogus|mseg: sessions: unknown option '--bogus'"
		"--src|mseg: sessions: option '--src' wants a value"
		"del|mseg: sessions del needs a filter (to delete every session: 'mseg sessions flush')"
		"flush --proto tcp|mseg: sessions flush takes no filter (to delete some: 'mseg sessions del FILTER...')"
		"remove --proto tcp|mseg: sessions: unknown subcommand 'remove' (list, del or flush)"
		"del --proto tcp --count|mseg: --count and --all are for listing"
	)
	local c args want
	spec "6 10.7.0.1 1 10.7.0.2 2 3 0 1 0"
	for c in "${cases[@]}"; do
		args=${c%%|*}
		want=${c#*|}
		# shellcheck disable=SC2086 # args are words
		run --separate-stderr mseg sessions $args
		[[ $status == 2 && -z $output && $stderr == "$want" ]] ||
			{ echo "mseg sessions $args: $status '$stderr' (want '$want')" >&2; return 1; }
	done
	# nothing was deleted
	[ "$(mseg sessions --count --all)" = 1 ]
	local empty
	empty=$(mktemp -d "$BATS_TEST_TMPDIR/nopins.XXXXXX")
	run --separate-stderr env TC_BPF_MNT="$empty" "$MSEG_SCRIPTS/mseg" sessions
	[[ $status == 1 && $stderr == "mseg: no pinned maps under $empty/tc/globals: run 'mseg attach DEV' first" ]]
	run --separate-stderr env TC_BPF_MNT="$empty" "$MSEG_BUILD/mseg-sessions"
	[[ $status == 1 && $stderr == "mseg: cannot open $empty/tc/globals/mseg_sessions: No such file or directory (run 'mseg attach DEV' first)" ]]
}

@test "mseg-sessions built with -fsanitize=address,undefined lists, deletes and flushes clean" {
	need gcc command -v gcc
	local bin=$BATS_TEST_TMPDIR/mseg-sessions-asan
	(cd "$MSEG_ROOT" && gcc -std=gnu11 -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined \
		-fno-sanitize-recover=undefined -fno-omit-frame-pointer -I bpf -I tools \
		-DMSEG_VERSION='"asan"' tools/mseg-sessions.c -o "$bin" -lbpf)
	"$MSEG_BUILD/mseg-fill" --count 20000 --expired 100 --idle 150 >/dev/null
	spec "17 fd00::1 1 fd00::2 2 0 0 1 0"
	local sub
	for sub in "" "--json" "--all" "--count --src 10.0.0.0/16" "del --sport 10001" "flush"; do
		# shellcheck disable=SC2086 # words
		run --separate-stderr timeout -k 5 60 env ASAN_OPTIONS=detect_leaks=1 "$bin" $sub
		[[ $status == 0 && -z $stderr ]] || { echo "$sub: $status $stderr" >&2; return 1; }
	done
	[ "$(mseg sessions --count --all)" = 0 ]
}
