#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Changes that cannot fail open (issue 14, "safe apply"): `save | apply -`
# through a real pipe under concurrent edits, input that is not a ruleset
# (a directory, a device, endless input, an empty one), a batch larger than
# the maps, an edit killed at a random moment, a wrapper killed with its
# child, and the config settings in the round trip.
#
# Crafted setup (common.bash): the classifier loaded on a veth, maps pinned
# in a private bpffs. Every test ends with an empty ruleset and default allow.
# shellcheck disable=SC2030,SC2031,SC2154,SC2016 # each @test is its own subshell; bats sets $status, $stderr; bash -c scripts expand their own $1

bats_require_minimum_version 1.5.0

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
	need build/mseg-ruleset test -x "$MSEG_BUILD/mseg-ruleset"
}

teardown() {
	printf 'default allow\n' | "$MSEG_SCRIPTS/mseg" apply - >/dev/null
	"$MSEG_SCRIPTS/mseg" config set timeout_established 0 >/dev/null
	"$MSEG_SCRIPTS/mseg" config set strict off >/dev/null
}

m() { "$MSEG_SCRIPTS/mseg" "$@"; }
cfg() { config_get "$1"; }

fail_msg() {
	echo "$*" >&2
	return 1
}

# state: the policy maps' raw entries (every set), active_set and policy_gen.
state() {
	map_dump mseg_source | jq -c 'map([.key, .value]) | sort'
	map_dump mseg_ident | jq -c 'map([.key, .value]) | sort'
	map_dump mseg_rules | jq -c 'map([.key, .value]) | sort'
	echo "set $(cfg active_set) gen $(cfg policy_gen) default $(cfg default_action)"
}

policy_a() {
	cat <<'R'
default deny
segment add web 10.1.0.0/24
segment add web6 fd00:1::/64
rule add --src web --dst 10.2.0.5 --proto tcp --dport 5432 --action allow --comment "web to db"
rule add --src any --dst any --proto tcp --dport 8000-8100 --action deny
cidr add 10.9.0.0/16 --action log
R
}

@test "save | apply - through a real pipe, 20 times under concurrent edits: never empty, never default allow" {
	local d=$BATS_TEST_TMPDIR i out editor
	policy_a | m apply - >/dev/null
	# an editor adding and deleting one rule the whole time
	(
		for i in $(seq 1 40); do
			m rule add --src 10.5.0.1 --dst 10.5.0.2 --action deny >/dev/null 2>&1 || true
			m rule del --src 10.5.0.1 --dst 10.5.0.2 >/dev/null 2>&1 || true
		done
	) &
	editor=$!
	for i in $(seq 1 20); do
		out=$(timeout -k 5 60 bash -c '"$1" save | "$1" apply -' _ "$MSEG_SCRIPTS/mseg") ||
			fail_msg "round trip $i failed: $out"
		[[ $out == "applied: "[23]" rules, 1 cidr rules, 2 segments, default deny" ]] ||
			fail_msg "round trip $i: $out"
	done
	timeout -k 5 120 tail --pid="$editor" -f /dev/null
	wait "$editor"
	# quiet again: the round trip is exact
	m save >"$d/before"
	m save | m apply - >/dev/null
	diff "$d/before" <(m save)
	grep -qx 'default deny' "$d/before"
}

@test "a directory, a device, endless input: refused with nothing changed" {
	local before
	policy_a | m apply - >/dev/null
	before=$(state)
	run --separate-stderr m apply /tmp
	[[ $status != 0 && $stderr == "mseg: cannot read /tmp: Is a directory" ]] || fail_msg "$status $stderr"
	run --separate-stderr timeout -k 5 60 "$MSEG_SCRIPTS/mseg" apply /dev/zero
	[[ $status != 0 && $status != 124 && $stderr == "mseg: /dev/zero is not a ruleset file (a device)" ]] ||
		fail_msg "$status $stderr"
	# endless input on stdin stops at the size limit, before any lock
	run --separate-stderr timeout -k 5 60 bash -c 'yes "# a comment" | "$1" apply -' _ "$MSEG_SCRIPTS/mseg"
	[[ $status != 0 && $status != 124 && $stderr == "mseg: stdin is larger than "*" bytes: not a ruleset" ]] ||
		fail_msg "$status $stderr"
	run --separate-stderr timeout -k 5 60 bash -c '"$1" apply - </dev/zero' _ "$MSEG_SCRIPTS/mseg"
	[[ $status != 0 && $status != 124 ]] || fail_msg "$status $stderr"
	# a line longer than any statement
	run --separate-stderr bash -c 'printf "default deny\n# %09000d\n" 0 | "$1" apply -' _ "$MSEG_SCRIPTS/mseg"
	[[ $status == 2 && $stderr == "mseg: line 2: longer than 8191 bytes" ]] || fail_msg "$status $stderr"
	[[ $(state) == "$before" ]]
}

@test "an input with no default line and no rules is refused unless --allow-empty" {
	local before
	policy_a | m apply - >/dev/null
	before=$(state)
	run --separate-stderr bash -c 'printf "" | "$1" apply -' _ "$MSEG_SCRIPTS/mseg"
	[[ $status == 2 && $stderr == "mseg: the input has no 'default' line and no rule: refusing to apply an empty policy (--allow-empty applies it)" ]] ||
		fail_msg "$status $stderr"
	run --separate-stderr bash -c 'printf "# only a comment\n\nsegment add x 10.0.0.0/8\n" | "$1" apply -' _ "$MSEG_SCRIPTS/mseg"
	[[ $status == 2 ]] || fail_msg "$status $stderr"
	run --separate-stderr bash -c 'printf "" | "$1" apply --check -' _ "$MSEG_SCRIPTS/mseg"
	[[ $status == 2 ]] || fail_msg "$status $stderr"
	[[ $(state) == "$before" ]]
	# a default line alone is a policy; so is --allow-empty
	run m apply --allow-empty - </dev/null
	[[ $status == 0 && $output == "applied: 0 rules, 0 cidr rules, default allow" ]] || fail_msg "$output"
	policy_a | m apply - >/dev/null
	run bash -c 'echo "default allow" | "$1" apply -' _ "$MSEG_SCRIPTS/mseg"
	[[ $status == 0 && $output == "applied: 0 rules, 0 cidr rules, default allow" ]] || fail_msg "$output"
}

@test "a batch or a ruleset larger than the maps is refused before anything is written" {
	local d=$BATS_TEST_TMPDIR before
	policy_a | m apply - >/dev/null
	before=$(state)
	# one rule more than the ids (262,111 per policy: the failsafes have the
	# last 32 of the 262,143)
	python3 -c '
import sys
for i in range(262112):
    sys.stdout.write("10.%d.%d.%d/32 --action deny\n" % (64 + (i >> 16), (i >> 8) & 255, i & 255))
' >"$d/big"
	run --separate-stderr timeout -k 5 300 "$MSEG_SCRIPTS/mseg-cidr" --batch "$d/big"
	[[ $status == 2 && $stderr == "mseg: more than 262111 rules" ]] || fail_msg "$status $stderr"
	[[ $(state) == "$before" ]]
	# one prefix more than a rule set holds (262,144 identities per set),
	# in segments: a handful of rules
	python3 -c '
import sys
sys.stdout.write("default deny\n")
for i in range(262145):
    sys.stdout.write("segment add s%d 10.%d.%d.%d/32\n" % (i % 4, 64 + (i >> 16), (i >> 8) & 255, i & 255))
for s in range(4):
    sys.stdout.write("rule add --src s%d --dst any --action allow\n" % s)
' >"$d/big"
	run --separate-stderr timeout -k 5 300 "$MSEG_SCRIPTS/mseg" apply "$d/big"
	[[ $status == 2 && $stderr == "mseg: the policy names 262145 prefixes; at most 262144 fit beside the ruleset in force" ]] ||
		fail_msg "$status $stderr"
	[[ $(state) == "$before" ]]
}

@test "an edit killed at a random moment leaves nothing, or a rule open sessions see; never a lock held" {
	local i gen pid seed=${MSEG_KILL_SEED:-$RANDOM} in_force delay
	echo "# seed $seed (MSEG_KILL_SEED=$seed replays)" >&3
	RANDOM=$seed
	policy_a | m apply - >/dev/null
	for i in $(seq 1 30); do
		gen=$(cfg policy_gen)
		delay=$(printf '0.%03d' $((RANDOM % 400)))
		setsid "$MSEG_SCRIPTS/mseg" rule add --src 10.6.0.1 --dst "10.6.0.$i" --action deny \
			>/dev/null 2>&1 &
		pid=$!
		sleep "$delay"
		kill -KILL -- "-$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		# the next edit gets the lock: no orphan of the killed one holds it
		MSEG_LOCK_TIMEOUT=20 m default deny >/dev/null ||
			fail_msg "kill $i (after ${delay}s): the lock is still held"
		in_force=$(m rule list --json | jq --arg d "10.6.0.$i" 'map(select(.dst == $d)) | length')
		if ((in_force)); then
			# published: the generation moved, so open sessions judge it
			(($(cfg policy_gen) != gen)) ||
				fail_msg "kill $i (after ${delay}s): rule in force, policy_gen still $gen"
		fi
		# retrying says the rule is there, or adds it
		run m rule add --src 10.6.0.1 --dst "10.6.0.$i" --action deny
		[[ $status == 0 ]] || fail_msg "retry $i: $output"
		m rule list --json | jq -e --arg d "10.6.0.$i" 'map(select(.dst == $d)) | length == 1' >/dev/null
	done
}

@test "a killed wrapper takes its C child with it" {
	local d=$BATS_TEST_TMPDIR pid left
	python3 -c '
import sys
sys.stdout.write("default deny\n")
for i in range(60000):
    sys.stdout.write("rule add --src 10.%d.%d.1 --dst 10.200.0.1 --proto tcp --dport %d --action allow\n"
                     % (i >> 8, i & 255, 1 + i % 60000))
' >"$d/big"
	setsid "$MSEG_SCRIPTS/mseg" apply "$d/big" >/dev/null 2>&1 &
	pid=$!
	# kill the wrapper (only it) while its child works
	timeout 30 bash -c 'until pgrep -s "$1" -f "mseg-ruleset apply" >/dev/null; do sleep 0.05; done' _ "$pid"
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
	# (the child alone would work on for seconds: 60,000 rules)
	timeout 3 bash -c 'while pgrep -s "$1" >/dev/null; do sleep 0.1; done' _ "$pid" || {
		left=$(pgrep -a -s "$pid")
		pkill -KILL -s "$pid" || true
		fail_msg "left running: $left"
	}
	MSEG_LOCK_TIMEOUT=10 m default allow >/dev/null
}

@test "save writes the config settings; apply sets them; save | apply - is exact" {
	local d=$BATS_TEST_TMPDIR
	policy_a | m apply - >/dev/null
	m config set timeout_established 1234 >/dev/null
	m config set strict on >/dev/null
	m save >"$d/saved"
	grep -qx 'config timeout_established 1234' "$d/saved" || fail_msg "$(cat "$d/saved")"
	grep -qx 'config strict on' "$d/saved"
	# a key never set is not written
	run ! grep -q "^config timeout_udp " "$d/saved"
	m config set timeout_established 0 >/dev/null
	m config set strict off >/dev/null
	m apply "$d/saved" >/dev/null
	[[ $(cfg to_established) == 1234 && $(cfg strict) == 1 ]]
	diff "$d/saved" <(m save)
	# a bad config line changes nothing
	m config set timeout_established 0 >/dev/null
	printf 'default deny\nconfig timeout_established 99999999999\n' >"$d/bad"
	run --separate-stderr m apply "$d/bad"
	[[ $status == 2 && $stderr == "mseg: line 2: invalid value for timeout_established: '99999999999'"* ]] ||
		fail_msg "$status $stderr"
	printf 'default deny\nconfig no_such_key 1\n' >"$d/bad"
	run --separate-stderr m apply "$d/bad"
	[[ $status == 2 && $stderr == "mseg: line 2: unknown config key: 'no_such_key'"* ]] || fail_msg "$status $stderr"
	[[ $(cfg to_established) == 0 ]]
	diff <(grep -v '^config timeout_established' "$d/saved") <(m save)
}
