#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# `mseg learn` (issue 15, docs/learn.md): the ruleset that allows exactly
# the flows seen allowed. Crafted frames for exact cases (segments, ports,
# a segment of both families, ICMP, denied and would-deny flows and the
# exceptions they need); random flows against an independent model
# (helpers/learn-model.py) with and without --widen and --segments; the
# command line (errors, --help, -o written whole); and the application lab:
# real TCP and UDP, learned, applied, the same traffic passing and any other
# connection denied.
# shellcheck disable=SC2154 # bats sets $stderr, $output, $lines, $stderr_lines

bats_require_minimum_version 1.5.0

load helpers/common
load helpers/lab

setup() {
	require_build
	OUT=$BATS_TEST_TMPDIR/out
	mkdir -p "$OUT"
}

teardown() {
	# each test built its own crafted bench or lab: nothing is shared
	local rc=0
	lab_teardown || rc=1
	crafted_teardown || rc=1
	return "$rc"
}

# crafted: a bench of this test's own (its flows are all the map holds).
crafted() {
	crafted_setup
	printf 'default allow\nfailsafe off\n' | mseg apply - >/dev/null
}

# send VERDICT ARGS...: one frame of mseg-pkt ARGS through the program,
# which must pass it (0) or drop it (2).
send() {
	local want=$1 f
	shift
	f=$(pkt_file "$@") || return 1
	assert_eq "verdict of $*" "$want" "$(prog_run "$f")"
}

# rules FILE: the rule statements of a ruleset, in order.
rules() { grep '^rule add' "$1" || true; }

# files DIR: every name in DIR, hidden ones too.
files() { (cd "$1" && shopt -s nullglob dotglob && echo *); }

# left FILE: the flows a ruleset lists as not allowed, without their counts.
left() { sed -n 's/^#   \(.*, rule [^:]*\):.*\(; .*\)$/\1\2/p; s/^#   \(.*, rule [^:]*\):[^;]*$/\1/p' "$1"; }

@test "exact flows: segments by name, hosts exact, one rule per sides and protocol with its ports; denied and would-deny left out, with an exception where a segment rule would pass them" {
	crafted
	printf '%s\n' "default allow" "failsafe off" \
		"segment add web 10.81.1.0/24" "segment add db 10.82.1.0/24" \
		"segment add both 10.83.1.0/24 fd00:83::/64" \
		"rule add --id 7 --src 10.81.1.7 --dst db --proto tcp --dport 5432 --action deny" |
		mseg apply - >/dev/null
	# web -> db on three ports, from two hosts; one host denied on one of them
	send 0 --src 10.81.1.5 --dst 10.82.1.2 --proto tcp --sport 1000 --dport 5432 --flags S --seq 1
	send 0 --src 10.81.1.6 --dst 10.82.1.3 --proto tcp --sport 1000 --dport 6379 --flags S --seq 1
	send 0 --src 10.81.1.6 --dst 10.82.1.3 --proto tcp --sport 1001 --dport 6380 --flags S --seq 1
	send 2 --src 10.81.1.7 --dst 10.82.1.2 --proto tcp --sport 1000 --dport 5432 --flags S --seq 1
	# hosts in no segment: exact; UDP and ICMP are rules of their own
	send 0 --src 10.90.1.5 --dst 10.82.1.2 --proto udp --sport 1000 --dport 53
	send 0 --src 10.90.1.5 --dst 10.91.1.9 --proto udp --sport 1000 --dport 123
	send 0 --src 10.90.1.5 --dst 10.91.1.9 --proto icmp --icmp-type 8 --icmp-id 5
	# a segment of both families is never paired with a host: its host then;
	# with another segment, its name
	send 0 --src fd00:83::5 --dst fd00:99::1 --proto tcp --sport 1000 --dport 443 --flags S --seq 1
	send 0 --src 10.83.1.5 --dst 10.82.1.2 --proto tcp --sport 1000 --dport 443 --flags S --seq 1
	# seen allowed, then denied: it stays allowed (it was needed), and listed
	send 0 --src 10.90.1.5 --dst 10.91.1.9 --proto tcp --sport 1000 --dport 22 --flags S --seq 1
	mseg rule add --src 10.90.1.5 --dst 10.91.1.9 --proto tcp --dport 22 --action deny --id 8 >/dev/null
	send 2 --src 10.90.1.5 --dst 10.91.1.9 --proto tcp --sport 1001 --dport 22 --flags S --seq 1
	# would-deny (audit mode): put in the map as the data path would, as
	# flows.bats does: 10.81.1.8 (web) -> 10.82.1.2:5432, rule 9, 5
	# connections, seen just after boot
	local k v
	k=$(printf '%02x ' 0 0 0 0 0 0 0 0 0 0 255 255 10 81 1 8 0 0 0 0 0 0 0 0 0 0 255 255 10 82 1 2 \
		9 0 0 0 $((5432 & 255)) $((5432 >> 8)) 6 4 2 0 0 0 0 0 0 0)
	# (the count, then the staged part: nothing staged)
	v=$(printf '%02x ' 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 \
		0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0)
	# shellcheck disable=SC2086 # hex bytes are words
	bpftool map update pinned "$(pin mseg_flows)" key hex ff 1f 00 00 value hex $k $v

	mseg learn -o "$OUT/l.rules"
	cat "$OUT/l.rules"
	assert_eq "the rules" "$(printf '%s\n' \
		"rule add --src both --dst db --proto tcp --dport 443 --action allow" \
		"rule add --src web --dst db --proto tcp --dport 5432,6379-6380 --action allow" \
		"rule add --src 10.90.1.5 --dst db --proto udp --dport 53 --action allow" \
		"rule add --src 10.90.1.5 --dst 10.91.1.9 --proto tcp --dport 22 --action allow" \
		"rule add --src 10.90.1.5 --dst 10.91.1.9 --proto udp --dport 123 --action allow" \
		"rule add --src 10.90.1.5 --dst 10.91.1.9 --proto icmp --action allow" \
		"rule add --src fd00:83::5 --dst fd00:99::1 --proto tcp --dport 443 --action allow" \
		"rule add --src 10.81.1.7 --dst 10.82.1.2 --proto tcp --dport 5432 --action deny" \
		"rule add --src 10.81.1.8 --dst 10.82.1.2 --proto tcp --dport 5432 --action deny")" \
		"$(rules "$OUT/l.rules")"
	assert_eq "what is left out" "$(printf '%s\n' \
		"denied tcp 10.81.1.7 (web) -> 10.82.1.2 (db) port 5432, rule 7; an exception keeps it denied" \
		"would-deny tcp 10.81.1.8 (web) -> 10.82.1.2 (db) port 5432, rule 9; an exception keeps it denied" \
		"denied tcp 10.90.1.5 -> 10.91.1.9 port 22, rule 8; also seen allowed: the rules allow it")" \
		"$(left "$OUT/l.rules")"
	# a ruleset of its own: default deny, the failsafes in force, every segment
	grep -qx 'default deny' "$OUT/l.rules"
	grep -qx 'failsafe off' "$OUT/l.rules"
	assert_eq "segments" "$(mseg save | grep '^segment add')" "$(grep '^segment add' "$OUT/l.rules")"
	# each rule says what was seen of it: web -> db, 3 connections
	grep -B1 -x 'rule add --src web --dst db --proto tcp --dport 5432,6379-6380 --action allow' "$OUT/l.rules" |
		grep -q '^# 3 connections, 3 packets, [0-9]* bytes, first seen 20[0-9-]*T[0-9:.]*Z, last seen 20[0-9-]*T[0-9:.]*Z$'

	# applied, it passes the flows seen allowed and nothing else
	mseg apply --check "$OUT/l.rules" >/dev/null
	mseg apply "$OUT/l.rules" >/dev/null
	mseg sessions flush >/dev/null
	send 0 --src 10.81.1.9 --dst 10.82.1.7 --proto tcp --sport 2000 --dport 6380 --flags S --seq 1
	send 0 --src 10.90.1.5 --dst 10.91.1.9 --proto icmp --icmp-type 8 --icmp-id 6
	send 0 --src fd00:83::5 --dst fd00:99::1 --proto tcp --sport 2000 --dport 443 --flags S --seq 1
	send 2 --src 10.81.1.7 --dst 10.82.1.2 --proto tcp --sport 2000 --dport 5432 --flags S --seq 1
	send 2 --src 10.81.1.8 --dst 10.82.1.2 --proto tcp --sport 2000 --dport 5432 --flags S --seq 1
	send 2 --src 10.81.1.5 --dst 10.82.1.2 --proto tcp --sport 2000 --dport 5433 --flags S --seq 1
	send 2 --src fd00:83::6 --dst fd00:99::1 --proto tcp --sport 2000 --dport 443 --flags S --seq 1
	send 2 --src 10.90.1.6 --dst 10.82.1.2 --proto udp --sport 2000 --dport 53
}

@test "random flows of both families, with and without --widen and --segments: the rules are the independent model's, and applied they pass exactly the flows seen allowed" {
	crafted
	local dir=$BATS_TEST_TMPDIR/model seed=${MSEG_FUZZ_SEED:-$((RANDOM * 32768 + RANDOM))} w widen
	mkdir -p "$dir"
	echo "seed $seed (replay: MSEG_FUZZ_SEED=$seed)"
	"$MSEG_PYTHON" "$MSEG_HELPERS/learn-model.py" gen --dir "$dir" --seed "$seed" --flows 300
	mseg apply "$dir/policy.rules" >/dev/null
	"$MSEG_BUILD/mseg-testrun" --prog-id "$PROG_ID" "$dir/frames.hex" >"$dir/verdicts"
	# --widen drawn from the seed: IPv4 only, both, wider than /24
	local -a widths=(24 24/64 16/48 28/120 8/16 30)
	widen=${widths[seed % ${#widths[@]}]}
	for w in "" "--widen $widen" "--segments $dir/segments.rules" "--segments $dir/segments.rules --widen 24/64"; do
		echo "mseg learn $w"
		# shellcheck disable=SC2086 # the options are words
		mseg learn $w -o "$dir/learned.rules"
		mseg apply --check "$dir/learned.rules" >/dev/null
		# the model takes the same options
		# shellcheck disable=SC2086
		"$MSEG_PYTHON" "$MSEG_HELPERS/learn-model.py" check --dir "$dir" --verdicts "$dir/verdicts" \
			--learned "$dir/learned.rules" $w
	done
	# widened, applied: the same frames pass or drop as they did
	mseg learn --widen "$widen" -o "$dir/learned.rules"
	grep -c '^rule add' "$dir/learned.rules"
	mseg apply "$dir/learned.rules" >/dev/null
	mseg sessions flush >/dev/null
	"$MSEG_BUILD/mseg-testrun" --prog-id "$PROG_ID" "$dir/frames.hex" >"$dir/again"
	if ! cmp -s "$dir/verdicts" "$dir/again"; then
		echo "under the learned ruleset, frames pass or drop otherwise (line: before after):" >&2
		paste -d ' ' "$dir/verdicts" "$dir/again" | awk '$1 != $2 { print NR ": " $0 }' | head >&2
		return 1
	fi
}

@test "bad arguments: one mseg: line, exit 2, nothing written; --help" {
	crafted
	local a out=$OUT/x.rules
	for a in "--since" "--since bogus" "--since 0" "--widen" "--widen 7" "--widen 33" "--widen 24/15" \
		"--widen 24/129" "--widen x" "--widen 24/" "--widen /64" "--widen 024" "--segments" \
		"--bogus" "-x" "extra" "-o"; do
		# shellcheck disable=SC2086 # words on purpose
		run --separate-stderr mseg learn $a -o "$out"
		[ "$status" -eq 2 ] || { echo "mseg learn $a: status $status" >&2; return 1; }
		[ -z "$output" ]
		[ "${#stderr_lines[@]}" -eq 1 ]
		[[ $stderr == mseg:* ]]
		[ ! -e "$out" ]
	done
	run --separate-stderr mseg learn --widen 4
	[[ $stderr == *"8..32"* ]]
	run --separate-stderr mseg learn --widen 24/8
	[[ $stderr == *"16..128"* ]]
	run --separate-stderr mseg learn -o
	[ "$status" -eq 2 ]
	[[ $stderr == "mseg: learn: option '-o' wants a value" ]]
	run mseg learn --help
	[ "$status" -eq 0 ]
	[[ $output == *"usage: mseg learn"* ]]
	[[ $(mseg --help) == *"learn [--since D]"* ]]
	# where FILE cannot be: one line, exit 1
	for a in "$OUT/nodir/x.rules" "$OUT"; do
		run --separate-stderr mseg learn -o "$a"
		[ "$status" -eq 1 ]
		[ -z "$output" ]
		[ "${#stderr_lines[@]}" -eq 1 ]
		[[ $stderr == mseg:* ]]
	done
}

@test "-o writes the file whole or not at all; --segments: a bad statement is the parser's error and nothing is written" {
	crafted
	send 0 --src 10.90.1.5 --dst 10.91.1.9 --proto udp --sport 1000 --dport 123
	local out=$OUT/l.rules ino
	echo old >"$out"
	ino=$(stat -c %i "$out")
	mseg learn -o "$out"
	# a new file renamed over the old one: a reader sees the old or the new
	[ "$(stat -c %i "$out")" != "$ino" ]
	assert_eq "mode" 644 "$(stat -c %a "$out")"
	assert_eq "the rule" "rule add --src 10.90.1.5 --dst 10.91.1.9 --proto udp --dport 123 --action allow" \
		"$(rules "$out")"
	head -n 1 "$out" | grep -qx "# mseg learn -o $out"
	assert_eq "stdout is the same ruleset" "$(grep -v '^# ' "$out")" "$(mseg learn | grep -v '^# ')"
	assert_eq "files left beside it" "l.rules" "$(files "$OUT")"
	# --since: once the flow is older than a second, a ruleset with no rule
	_older() { ! mseg learn --since 1s | grep -q '^rule add'; }
	wait_until 50 _older
	mseg learn --since 1s | grep -qx '# 0 allowed flows, allowed by 0 rules under default deny.'
	assert_eq "--since 1h" "$(rules "$out")" "$(mseg learn --since 1h | grep '^rule add')"
	# a segments file: the sides named by it, its segments in the ruleset
	printf '%s\n' "# mine" "segment add ntp 10.91.1.0/24" "" "segment add clients 10.90.0.0/16 fd00:90::/64" >"$OUT/segs"
	mseg learn --segments "$OUT/segs" -o "$out"
	assert_eq "the rule by the file's segments" \
		"rule add --src clients --dst ntp --proto udp --dport 123 --action allow" "$(rules "$out")"
	assert_eq "its segments" "$(printf '%s\n' "segment add ntp 10.91.1.0/24" "segment add clients 10.90.0.0/16 fd00:90::/64")" \
		"$(grep '^segment add' "$out")"
	mseg apply --check "$out" >/dev/null
	cp "$out" "$OUT/before"
	ino=$(stat -c %i "$out")
	# bad statements: the parser's own line (as mseg apply --check says it), exit 2, FILE untouched
	local bad want
	for bad in "segment add x 10.1.2.3/8" "segment add 9x 10.1.0.0/16" "segment add a 10.1.0.0/16 10.1.0.0/16q" \
		'segment add "a 10.1.0.0/16'; do
		printf '%s\n' "segment add ok 10.2.0.0/16" "$bad" >"$OUT/bad"
		want=$(mseg apply --check "$OUT/bad" 2>&1 >/dev/null) || true
		run --separate-stderr mseg learn --segments "$OUT/bad" -o "$out"
		[ "$status" -eq 2 ] || { echo "$bad: status $status" >&2; return 1; }
		assert_eq "the error for '$bad'" "$want" "$stderr"
		[[ $stderr == "mseg: line 2: "* ]]
	done
	printf '%s\n' "segment add a 10.1.0.0/16" "segment add b 10.1.0.0/16" >"$OUT/bad"
	run --separate-stderr mseg learn --segments "$OUT/bad" -o "$out"
	[ "$status" -eq 2 ]
	assert_eq "a prefix in two segments" "mseg: line 2: 10.1.0.0/16 is already in segment a" "$stderr"
	# only segment add statements
	for bad in "rule add --src a --dst any --action allow" "default deny" "segment del a" "failsafe off"; do
		printf '%s\n' "segment add a 10.1.0.0/16" "" "$bad" "segment add b 10.3.0.0/16" >"$OUT/bad"
		run --separate-stderr mseg learn --segments "$OUT/bad" -o "$out"
		[ "$status" -eq 2 ] || { echo "$bad: status $status" >&2; return 1; }
		[ "${#stderr_lines[@]}" -eq 1 ]
		[[ $stderr == "mseg: line 3: '"*"': a segments file holds 'segment add NAME PREFIX...' statements only" ]]
	done
	run --separate-stderr mseg learn --segments "$OUT/missing" -o "$out"
	[ "$status" -eq 1 ]
	[[ $stderr == "mseg: cannot read $OUT/missing: "* ]]
	cmp "$OUT/before" "$out"
	[ "$(stat -c %i "$out")" == "$ino" ]
	assert_eq "files left" "bad before l.rules segs" "$(files "$OUT")"
}

# lab_exchange HOST tcp|udp DST PORT pass|block: one exchange, which must
# get through or not.
lab_exchange() {
	if [[ $5 == pass ]]; then
		lab_app_client "$1" "$2" "$3" "$4" --timeout 5 ||
			{ echo "$2 $1 -> $3:$4 should get through" >&2; return 1; }
	elif lab_app_client "$1" "$2" "$3" "$4" --timeout 0.5 2>/dev/null; then
		echo "$2 $1 -> $3:$4 should be blocked" >&2
		return 1
	fi
}

# app VERDICT_OF_STRAY_TO_DB: the application's traffic (clients to the web
# tier, the web tier to the db, TCP and UDP), and the stray's try at the db.
app() {
	lab_exchange stray tcp web1 80 pass
	lab_exchange stray tcp web2 80 pass
	lab_exchange web1 tcp db 5432 pass
	lab_exchange web2 tcp db 5432 pass
	lab_exchange web1 udp db 5353 pass
	lab_exchange web2 udp db 5353 pass
	lab_exchange stray tcp db 5432 block
}

@test "the application lab: learned from real TCP and UDP, applied, the application works and every connection it did not make is denied" {
	lab_app_setup
	lab_app_serve web1 300 --tcp 80
	lab_app_serve web2 300 --tcp 80
	lab_app_serve db 300 --tcp 5432 --udp 5353
	printf '%s\n' "default allow" \
		"segment add web 10.78.1.0/24 10.78.2.0/24" "segment add db 10.78.3.0/24" \
		"rule add --src 10.78.9.2 --dst db --proto tcp --dport 5432 --action deny" | mseg apply - >/dev/null
	app
	mseg flows
	mseg learn -o "$OUT/app.rules"
	cat "$OUT/app.rules"
	assert_eq "the learned rules" "$(printf '%s\n' \
		"rule add --src web --dst db --proto tcp --dport 5432 --action allow" \
		"rule add --src web --dst db --proto udp --dport 5353 --action allow" \
		"rule add --src 10.78.9.2 --dst web --proto tcp --dport 80 --action allow")" \
		"$(rules "$OUT/app.rules")"
	assert_eq "left out" "denied tcp 10.78.9.2 -> 10.78.3.2 (db) port 5432, rule 1" "$(left "$OUT/app.rules")"
	grep -qx 'default deny' "$OUT/app.rules"

	# other names, and the web hosts' sources widened to their /16 (asked
	# for): the stray is in it too, so its denied connection gets an exception
	printf 'segment add back 10.78.3.0/24\n' >"$OUT/segs"
	mseg learn --segments "$OUT/segs" --widen 16 -o "$OUT/wide.rules"
	cat "$OUT/wide.rules"
	assert_eq "the learned rules, widened" "$(printf '%s\n' \
		"rule add --src 10.78.0.0/16 --dst back --proto tcp --dport 5432 --action allow" \
		"rule add --src 10.78.0.0/16 --dst back --proto udp --dport 5353 --action allow" \
		"rule add --src 10.78.9.2 --dst 10.78.1.2 --proto tcp --dport 80 --action allow" \
		"rule add --src 10.78.9.2 --dst 10.78.2.2 --proto tcp --dport 80 --action allow" \
		"rule add --src 10.78.9.2 --dst 10.78.3.2 --proto tcp --dport 5432 --action deny")" \
		"$(rules "$OUT/wide.rules")"
	grep -qx '# widened to 10.78.0.0/16: 2 sources: 10.78.1.2, 10.78.2.2' "$OUT/wide.rules"

	echo "applied: app.rules"
	mseg apply "$OUT/app.rules" >/dev/null
	app
	# connections the application never made
	lab_exchange db tcp web1 80 block
	lab_exchange stray udp db 5353 block
	lab_exchange web1 tcp web2 80 block
	echo "applied: wide.rules"
	mseg apply "$OUT/wide.rules" >/dev/null
	app
	lab_exchange db tcp web1 80 block
	lab_exchange web1 tcp web2 80 block
	# what widening trades: the stray is in 10.78.0.0/16 too
	lab_exchange stray udp db 5353 pass
}
