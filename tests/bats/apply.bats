#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# mseg save / mseg apply: the round trip, atomic failure (one bad line
# anywhere changes nothing), the validator agreeing with mseg-rule and
# mseg-cidr, no packet ever judged by a mix of two rulesets while they are
# swapped, and 100,000 rules + 100,000 prefixes in one apply.
#
# Crafted frames through the program tc loaded on a veth (common.bash).
# Every test ends with an empty ruleset and default allow.
# shellcheck disable=SC2030,SC2031,SC2154 # each @test is its own subshell; bats sets $status, $stderr

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
	need build/mseg-testrun test -x "$MSEG_BUILD/mseg-testrun"
}

teardown() {
	printf 'default allow\n' | "$MSEG_SCRIPTS/mseg" apply - >/dev/null
}

apply() { "$MSEG_SCRIPTS/mseg" apply "$@"; }
save() { "$MSEG_SCRIPTS/mseg" save; }
cfg() { config_get "$1"; }

# state: the policy maps' raw entries (every set), active_set and policy_gen.
state() {
	map_dump mseg_source | jq -c 'map([.key, .value]) | sort'
	map_dump mseg_ident | jq -c 'map([.key, .value]) | sort'
	map_dump mseg_rules | jq -c 'map([.key, .value]) | sort'
	echo "set $(cfg active_set) gen $(cfg policy_gen) default $(cfg default_action)"
}

fail_msg() {
	echo "$*" >&2
	return 1
}

# A ruleset with every shape, action and family, and a non-default default.
ruleset_all() {
	cat <<'R'
# every rule shape, IPv4 and IPv6
default deny

rule --src 10.0.0.1 --dst 10.0.0.2 --action allow
rule --src 10.0.0.1 --dst 10.0.0.2 --proto icmp --action log
rule --src 10.0.0.1 --dst 10.0.0.2 --proto tcp --dport 443 --action deny
rule --src 10.0.0.1 --dst 10.0.0.2 --proto udp --sport 5353 --dport 53 --action allow
rule --src 2001:db8::1 --dst 2001:db8::2 --action deny   # trailing comment
rule --src 2001:db8::1 --dst 2001:db8::2 --proto icmp --action allow
rule --src 2001:db8::1 --dst fd00::2 --proto tcp --dport 22 --action log
rule --src fe80::1:0:0:1 --dst 2001:db8:0:1:1::1 --proto udp --sport 1 --dport 65535 --action allow
cidr 0.0.0.0/0 --action allow
cidr 10.0.0.0/8 --action deny --priority 7
cidr 192.168.1.128/25 --action log
cidr 10.1.2.3/32 --action allow --priority 0
cidr ::/0 --action deny
cidr 2001:db8::/32 --action log --priority 4294967295
cidr 2001:db8:0:1:1::/80 --action allow
cidr fd00::1/128 --action deny
R
}

@test "save | apply round-trips IPv4 and IPv6 rules of every shape and action, and the default" {
	local f=$BATS_TEST_TMPDIR
	ruleset_all >"$f/all"
	local set0 gen0
	set0=$(cfg active_set)
	gen0=$(cfg policy_gen)
	run apply "$f/all"
	[[ $status == 0 ]] || fail_msg "apply: $output"
	[[ $output == "applied: 8 rules, 8 cidr rules, default deny" ]] || fail_msg "$output"
	[[ $(cfg active_set) == $((1 - set0)) ]] || fail_msg "active_set did not switch"
	[[ $(cfg default_action) == 1 ]] || fail_msg "default not deny"
	(($(cfg policy_gen) > gen0)) || fail_msg "policy_gen not bumped"
	# the old set was brought up to date: both sets hold the new policy,
	# entry for entry (an edit then writes only what it changes)
	local m
	for m in mseg_source mseg_ident mseg_rules mseg_rules_hash; do
		map_dump $m | jq -e 'map(.formatted | .key.set as $s | [$s, (.key | del(.set)), .value])
			| (map(select(.[0] == 0) | .[1:]) | sort) == (map(select(.[0] == 1) | .[1:]) | sort)
			and length > 0' >/dev/null || fail_msg "$m: the two sets differ"
	done
	[[ $("$MSEG_SCRIPTS/mseg-rule" list --json | jq length) == 8 ]]
	[[ $("$MSEG_SCRIPTS/mseg-cidr" list --json | jq length) == 8 ]]
	save >"$f/s1"
	# the same statements as written, canonical text (which now says
	# "rule add" and "cidr add" and names every id), sorted; and the
	# failsafes the file says nothing of: the default list
	grep -qx 'failsafe default' "$f/s1"
	diff <(grep -v '^#' "$f/all" | sed -e 's/ *#.*//' -e '/^$/d' | sort) \
		<(sed -e 's/^\(rule\|cidr\) add /\1 /' -e 's/ --id [0-9]*//' -e '/^failsafe default$/d' "$f/s1" | sort) ||
		fail_msg "save differs from what was applied"
	[[ $(head -1 "$f/s1") == "default deny" ]]
	# and back: from stdin this time, onto the other set
	apply - <"$f/s1" >/dev/null
	save >"$f/s2"
	diff "$f/s1" "$f/s2" || fail_msg "second round trip differs"
	# the lists agree with what mseg-rule / mseg-cidr show
	"$MSEG_SCRIPTS/mseg-rule" list --json | jq -e 'map(select(.src == "fe80::1:0:0:1" and .dst == "2001:db8:0:1:1::1" and .sport == 1 and .dport == 65535 and .proto == "udp" and .action == "allow")) | length == 1' >/dev/null
	"$MSEG_SCRIPTS/mseg-cidr" list --json | jq -e 'map(select(.cidr == "2001:db8::/32" and .priority == 4294967295 and .action == "log")) | length == 1' >/dev/null
	# default allow comes back as default allow
	printf 'default allow\ncidr 10.0.0.0/8 --action deny\n' | apply - >/dev/null
	# the prefix keeps the id it had in the policy in force
	# (and the failsafes, no line for them in the file: the default list)
	local saved_re=$'^default allow\nfailsafe default\ncidr add 10\\.0\\.0\\.0/8 --action deny --id [0-9]+$'
	[[ $(save) =~ $saved_re ]]
	[[ $(cfg default_action) == 0 ]]
}

@test "rules added with mseg-rule and mseg-cidr are saved, and apply rebuilds them byte for byte" {
	"$MSEG_SCRIPTS/mseg-rule" add --src 10.9.0.1 --dst 10.9.0.2 --proto tcp --dport 80 --action deny >/dev/null
	"$MSEG_SCRIPTS/mseg-rule" add --src ::ffff:10.9.0.1 --dst 10.9.0.3 --action log >/dev/null
	"$MSEG_SCRIPTS/mseg-cidr" add 2001:DB8:0:0:1::/80 --action allow --priority 3 >/dev/null
	"$MSEG_SCRIPTS/mseg" default deny >/dev/null
	local before after
	before=$(map_dump mseg_ident | jq -c 'map([.formatted.key | del(.set), .formatted.value]) | sort'
		map_dump mseg_rules | jq -c 'map([.formatted.key | del(.set), .formatted.value]) | sort')
	save >"$BATS_TEST_TMPDIR/p"
	grep -qx 'rule add --src 10.9.0.1 --dst 10.9.0.3 --action log --id 2' "$BATS_TEST_TMPDIR/p"
	apply "$BATS_TEST_TMPDIR/p" >/dev/null
	after=$(map_dump mseg_ident | jq -c 'map([.formatted.key | del(.set), .formatted.value]) | sort'
		map_dump mseg_rules | jq -c 'map([.formatted.key | del(.set), .formatted.value]) | sort')
	[[ $before == "$after" ]] || fail_msg "before: $before after: $after"
	[[ $(cfg default_action) == 1 ]]
}

# bad_at POS LINE: a good ruleset with LINE put first, in the middle or last.
bad_at() {
	local pos=$1 bad=$2
	[[ $pos == first ]] && echo "$bad"
	echo "rule --src 10.5.0.1 --dst 10.5.0.2 --action deny"
	echo "# a comment"
	echo "cidr 10.6.0.0/16 --action deny"
	[[ $pos == middle ]] && echo "$bad"
	echo ""
	echo "default deny"
	echo "cidr 2001:db8:6::/48 --action log"
	[[ $pos == last ]] && echo "$bad"
	return 0
}

@test "a bad line first, in the middle or last: exit 2, its number named, the old ruleset fully in force" {
	ruleset_all | apply - >/dev/null
	local before pos line want bad
	before=$(state)
	local -a bads=(
		"rule --src 10.0.0.1 --dst 10.0.0.256 --action allow"
		"rule --src 10.0.0.1 --dst 10.0.0.2"
		"cidr 10.1.2.3/8 --action deny"
		"cidr 10.0.0.0/8 --action drop"
		"frob"
		"default maybe"
	)
	for bad in "${bads[@]}"; do
		for pos in first middle last; do
			case $pos in first) line=1 ;; middle) line=4 ;; last) line=7 ;; esac
			run --separate-stderr apply <(bad_at "$pos" "$bad")
			[[ $status == 2 ]] || fail_msg "'$bad' $pos: exit $status: $stderr"
			want="mseg: line $line: "
			[[ $stderr == "$want"* && ${#stderr_lines[@]} == 1 ]] ||
				fail_msg "'$bad' $pos: stderr '$stderr', expected '$want...'"
			[[ -z $output ]] || fail_msg "stdout: $output"
			[[ $(state) == "$before" ]] || fail_msg "'$bad' $pos: the maps or config changed"
		done
	done
	# a second default line is refused too, and --check writes nothing
	run --separate-stderr apply <(printf 'default deny\ndefault allow\n')
	[[ $status == 2 && $stderr == "mseg: line 2: a second 'default' line" ]]
	run apply --check <(ruleset_all)
	[[ $status == 0 && $output == "default deny rules 8 cidrs 8" ]]
	[[ $(state) == "$before" ]]
}

# frames N BASEPORT SRC DST: N UDP frames SRC -> DST:9, source ports
# BASEPORT.., one hex line each (so every frame is a new flow).
frames() {
	"$MSEG_PKT" --src "$3" --dst "$4" --proto udp --sport "$2" --dport 9 --payload 8 \
		--count "$1" --hex
}

@test "while A and B are applied in turn 20 times, no packet is judged by a mix of the two" {
	local d=$BATS_TEST_TMPDIR
	# Q (10.20.0.1 -> 10.30.0.1): A allows it by an exact rule over a CIDR
	# deny, B allows it by a CIDR allow and has no exact rule: B's exact
	# rules (none) with A's CIDR rules would deny it.
	# R (10.20.0.1 -> 10.40.0.1): A allows it by default allow, B by a CIDR
	# allow under default deny: A's rules with B's default deny it.
	# (The other mixes allow both, as A and B do: a verdict cannot show them.)
	cat >"$d/A" <<'R'
default allow
rule --src 10.20.0.1 --dst 10.30.0.1 --action allow
cidr 10.30.0.0/16 --action deny
R
	cat >"$d/B" <<'R'
default deny
cidr 10.30.0.0/16 --action allow
cidr 10.40.0.0/16 --action allow
cidr 10.50.0.0/16 --action allow
R
	# sanity: each alone allows Q and R, and a real mix would not
	apply "$d/A" >/dev/null
	frames 2 100 10.20.0.1 10.30.0.1 >"$d/f"
	frames 2 100 10.20.0.1 10.40.0.1 >>"$d/f"
	[[ $("$MSEG_BUILD/mseg-testrun" --prog-id "$PROG_ID" "$d/f" | sort -u) == 0 ]]
	apply "$d/B" >/dev/null
	frames 2 200 10.20.0.1 10.30.0.1 >"$d/f"
	frames 2 200 10.20.0.1 10.40.0.1 >>"$d/f"
	[[ $("$MSEG_BUILD/mseg-testrun" --prog-id "$PROG_ID" "$d/f" | sort -u) == 0 ]]
	# the applier: 20 applies, A and B in turn, then it leaves a flag
	(
		for ((i = 0; i < 20; i++)); do
			if ((i % 2)); then apply "$d/B"; else apply "$d/A"; fi >/dev/null || exit 1
		done
		touch "$d/done"
	) 2>"$d/applier.err" &
	local applier=$! round=0 base=1000 verdicts bad=0 total=0
	# the checker: rounds of 200 fresh flows (100 Q, 100 R) until the
	# applier is done; at most 280 rounds (ports 1000..57000).
	while [[ ! -e $d/done ]] && ((round < 280)); do
		{
			frames 100 "$base" 10.20.0.1 10.30.0.1
			frames 100 "$base" 10.20.0.1 10.40.0.1
		} >"$d/round"
		verdicts=$("$MSEG_BUILD/mseg-testrun" --prog-id "$PROG_ID" "$d/round")
		total=$((total + 200))
		bad=$((bad + $(grep -cv '^0$' <<<"$verdicts" || true)))
		base=$((base + 200))
		round=$((round + 1))
		kill -0 "$applier" 2>/dev/null || break
	done
	wait "$applier" || fail_msg "the applier failed: $(cat "$d/applier.err")"
	[[ -e $d/done ]] || fail_msg "the applier did not finish"
	echo "# $round rounds, $total packets, $bad judged by a mix" >&3
	((round > 0)) || fail_msg "the checker never ran"
	((bad == 0)) || fail_msg "$bad of $total packets were denied: judged by a mix of A and B"
}

@test "apply 100,000 exact rules and 100,000 prefixes (IPv4 and IPv6) in one go, counts right" {
	local d=$BATS_TEST_TMPDIR
	awk 'BEGIN {
		print "default allow"
		for (i = 0; i < 100000; i++)
			printf "rule --src 10.%d.%d.%d --dst 10.255.0.1 --proto tcp --dport %d --action %s\n",
				int(i / 65536), int(i / 256) % 256, i % 256, 1 + i % 1000, (i % 3 == 0 ? "deny" : "allow")
		for (i = 0; i < 50000; i++)
			printf "cidr 11.%d.%d.0/24 --action deny\n", int(i / 256), i % 256
		for (i = 0; i < 50000; i++)
			printf "cidr 2001:db8:%x:%x::/64 --action log\n", int(i / 256), i % 256
	}' >"$d/big"
	run apply "$d/big"
	[[ $status == 0 ]] || fail_msg "$output"
	[[ $output == "applied: 100000 rules, 100000 cidr rules, default allow" ]] || fail_msg "$output"
	local set
	set=$(cfg active_set)
	"$MSEG_BUILD/mseg-ruleset" save "$set" >"$d/saved"
	[[ $(grep -c '^rule ' "$d/saved") == 100000 ]]
	[[ $(grep -c '^cidr ' "$d/saved") == 100000 ]]
	[[ $(grep -c '^cidr add 2001:db8:' "$d/saved") == 50000 ]]
	# the other set holds the same policy
	diff "$d/saved" <("$MSEG_BUILD/mseg-ruleset" save $((1 - set))) >/dev/null ||
		fail_msg "the inactive set differs from the active one"
	# and the data path uses them: an exact deny, a /24 deny, a /64 log
	[[ $(verdict --src 10.0.0.3 --dst 10.255.0.1 --proto tcp --sport 4000 --dport 4) == 2 ]]
	[[ $(verdict --src 10.0.0.4 --dst 10.255.0.1 --proto tcp --sport 4000 --dport 5) == 0 ]]
	[[ $(verdict --src 192.0.2.1 --dst 11.195.79.9 --proto udp --sport 4000 --dport 9) == 2 ]]
	# save | apply of all of it round-trips too
	apply "$d/saved" >/dev/null
	diff "$d/saved" <(save) >/dev/null || fail_msg "100,000-rule round trip differs"
}

@test "mseg-rule --batch and mseg-cidr --batch: all lines or none, one edit (two policy_gen bumps)" {
	local d=$BATS_TEST_TMPDIR gen before
	printf '%s\n' "# exact rules" "--src 10.7.0.1 --dst 10.7.0.2 --proto tcp --dport 22 --action deny" "" \
		"--src 2001:db8::7 --dst 2001:db8::8 --action log" >"$d/rules"
	printf '%s\n' "10.7.0.0/16 --action deny --priority 5" "--cidr 2001:db8:7::/48 --action allow" >"$d/cidrs"
	gen=$(cfg policy_gen)
	run "$MSEG_SCRIPTS/mseg-rule" --batch "$d/rules"
	[[ $status == 0 && $output == "rules added or updated: 2" ]] || fail_msg "$output"
	[[ $(cfg policy_gen) == $((gen + 2)) ]]
	run "$MSEG_SCRIPTS/mseg" cidr --batch - <"$d/cidrs"
	[[ $status == 0 && $output == "cidr rules added or updated: 2" ]] || fail_msg "$output"
	[[ $(cfg policy_gen) == $((gen + 4)) ]]
	"$MSEG_SCRIPTS/mseg-rule" list --json | jq -e 'map(select(.dport == 22 and .action == "deny")) | length == 1' >/dev/null
	"$MSEG_SCRIPTS/mseg-cidr" list --json | jq -e 'map([.cidr, .action, .priority]) == [["10.7.0.0/16","deny",5],["2001:db8:7::/48","allow",100]]' >/dev/null
	# adding a prefix again keeps its priority unless given, like mseg-cidr add
	echo "10.7.0.0/16 --action log" | "$MSEG_SCRIPTS/mseg-cidr" --batch - >/dev/null
	"$MSEG_SCRIPTS/mseg-cidr" list --json | jq -e '.[0] | [.action, .priority] == ["log", 5]' >/dev/null
	# one bad line anywhere: nothing written, its number named
	before=$(state)
	printf '%s\n' "--src 10.7.0.3 --dst 10.7.0.4 --action allow" "--src 10.7.0.3 --dst 10.7.0.4 --proto tcp --sport 1 --action allow" >"$d/bad"
	run --separate-stderr "$MSEG_SCRIPTS/mseg-rule" --batch "$d/bad"
	[[ $status == 2 && $stderr == "mseg: line 2: --sport needs --dport as well:"* ]] || fail_msg "$stderr"
	printf '%s\n' "10.8.0.0/16 --action deny" "10.9.0.1/16 --action deny" >"$d/bad"
	run --separate-stderr "$MSEG_SCRIPTS/mseg-cidr" --batch "$d/bad"
	[[ $status == 2 && $stderr == "mseg: line 2: 10.9.0.1/16 has host bits set: did you mean 10.9.0.0/16?" ]] || fail_msg "$stderr"
	[[ $(state) == "$before" ]]
}

@test "a later line for the same rule or prefix replaces an earlier one; the counts are of distinct entries" {
	printf '%s\n' "rule --src 10.3.0.1 --dst 10.3.0.2 --action deny" \
		"cidr 10.4.0.0/16 --action deny --priority 9" \
		"rule --src 10.3.0.1 --dst 10.3.0.2 --proto any --action log" \
		"cidr 10.4.0.0/16 --action allow" >"$BATS_TEST_TMPDIR/dup"
	run apply "$BATS_TEST_TMPDIR/dup"
	[[ $output == "applied: 1 rules, 1 cidr rules, default allow" ]] || fail_msg "$output"
	[[ $(save) == $'default allow\nfailsafe default\nrule add --src 10.3.0.1 --dst 10.3.0.2 --action log --id 1\ncidr add 10.4.0.0/16 --action allow --id 2' ]] ||
		fail_msg "$(save)"
}
