#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Every --json output follows docs/json.md: compact lines of valid JSON; one
# object for one thing, one array of objects for a list, one object a line
# for things as they happen; snake_case field names; every object of a kind
# has the same fields. The command list comes from `mseg --help` and each
# command's own --help, so a new --json cannot escape the check.
# shellcheck disable=SC2154 # bats sets $output, $stderr

bats_require_minimum_version 1.5.0

load helpers/common

setup() {
	require_build
	crafted_setup >/dev/null
}

teardown() {
	crafted_teardown
}

# The shapes, by command line.
declare -gA SHAPE=(
	["status --json"]=object
	["config show --json"]=object
	["stats --json"]=object
	["sessions --json"]=list
	["sessions --json --all"]=list
	["sessions --count --json"]=object
	["sessions del --json --sport 10001"]=object
	["gc --json"]=object
	["monitor --once --json"]=object
	["monitor --json --count 2"]=lines
	["log --json"]=lines
	["log --json --count 1"]=lines
	["rule list --json"]=list
	["cidr list --json"]=list
	["ip-range list --json"]=list
	["sessions flush --json"]=object
	["segment list --json"]=list
	["segment show web --json"]=object
	["failsafe list --json"]=list
	["explain --json --src 10.3.0.1 --dst 10.3.0.2 --proto tcp --dport 2222"]=object
	["flows --json"]=list
	["flows --json --since 1h"]=list
	["staged --json"]=object
	["staged status --json"]=object
	["staged diff --json"]=list
)

# keys_ok JSON: every object's own keys are snake_case (tcp_states maps
# state names, rule 5's exception).
keys_ok() {
	printf '%s\n' "$1" | jq -e -s '[.. | objects | select(has("NONE") | not) | keys[]]
		| all(test("^[a-z][a-z0-9_]*$"))' >/dev/null
}

# same_fields JSON-LINES: every object of one kind has the same keys.
same_fields() {
	jq -s -e 'group_by(.event // "")
		| all(map(keys) | unique | length == 1)' <<<"$1" >/dev/null
}

check() {
	local cmd=$1 shape=$2 n
	# shellcheck disable=SC2086 # the command line is words
	run --separate-stderr "$MSEG_SCRIPTS/mseg" $cmd
	[[ $status == 0 && -z $stderr ]] || { echo "$cmd: exit $status: $stderr" >&2; return 1; }
	n=$(printf '%s\n' "$output" | grep -c .)
	case $shape in
	object)
		[[ $n == 1 ]] && jq -e 'type == "object"' <<<"$output" >/dev/null ;;
	list)
		[[ $n == 1 ]] && jq -e 'type == "array" and all(.[]; type == "object")' <<<"$output" >/dev/null &&
			jq -c '.[]' <<<"$output" | same_fields "$(cat)" ;;
	lines)
		((n >= 1)) && printf '%s\n' "$output" | jq -e -s 'all(.[]; type == "object")' >/dev/null &&
			same_fields "$output" ;;
	esac || { echo "$cmd: not a $shape: $output" >&2; return 1; }
	keys_ok "$output" || { echo "$cmd: a key is not snake_case: $output" >&2; return 1; }
}

@test "every --json output follows docs/json.md" {
	# something in every table
	mseg_rule add --src 10.3.0.1 --dst 10.3.0.2 --proto tcp --dport 2222 --action deny
	"$MSEG_SCRIPTS/mseg-cidr" add 10.4.0.0/16 --action log >/dev/null
	"$MSEG_SCRIPTS/mseg" segment add web 10.5.0.0/24 fd00:5::/64 >/dev/null
	"$MSEG_BUILD/mseg-fill" --count 20 --expired 5 --idle 150 >/dev/null
	printf '17 fd00::1 53 fd00::2 5353 0 0 1 0\n' | "$MSEG_BUILD/mseg-fill" --spec - >/dev/null
	[ "$(verdict --proto tcp --src 10.3.0.1 --dst 10.3.0.2 --sport 5 --dport 2222 --flags S)" = "$TC_ACT_SHOT" ]
	mseg config set warn_pct 1 # (of 262144: no level is reached, one more event kind)

	# every command whose help offers --json is in SHAPE
	local cmd line
	while read -r cmd; do
		line=$("$MSEG_SCRIPTS/mseg" "$cmd" --help 2>&1 || true)
		[[ $cmd != help && $line == *--json* ]] || continue
		local found=0 k
		for k in "${!SHAPE[@]}"; do
			[[ $k == "$cmd "* ]] && found=1
		done
		((found)) || { echo "mseg $cmd has --json but is not checked here" >&2; return 1; }
	done < <("$MSEG_SCRIPTS/mseg" --help | awk '/^commands:/ { c = 1; next } c && /^  [a-z]/ { print $1 }' | sort -u)

	local c
	for c in "status --json" "config show --json" "stats --json" "sessions --json" \
		"sessions --json --all" "sessions --count --json" "gc --json" "monitor --once --json" \
		"monitor --json --count 2" "log --json" "log --json --count 1" "rule list --json" \
		"cidr list --json" "ip-range list --json" "sessions del --json --sport 10001" \
		"sessions flush --json" "segment list --json" "segment show web --json" "failsafe list --json" \
		"explain --json --src 10.3.0.1 --dst 10.3.0.2 --proto tcp --dport 2222" \
		"flows --json" "flows --json --since 1h" "staged --json" "staged status --json" \
		"staged diff --json"; do
		check "$c" "${SHAPE[$c]}"
	done
	# wildcards are "any" (rule 6): the rule names no source port
	mseg rule list --json | jq -e '.[0] | .sport == "any" and .dport == 2222' >/dev/null
	# streams: follow prints lines too
	run --separate-stderr "$MSEG_SCRIPTS/mseg" log --json --follow --timeout 1
	[[ $status == 0 && -z $output ]]
	# sessions in JSON carry the stable fields, in every object
	mseg_fill_one() { printf '6 10.9.9.1 1 10.9.9.2 2 3 0 1 0\n' | "$MSEG_BUILD/mseg-fill" --spec - >/dev/null; }
	mseg_fill_one
	[ "$(mseg sessions --json | jq -c '.[0] | keys')" = \
		'["action","age_s","bytes","confirmed","dport","dst","expired","idle_s","packets","pickup","proto","rule","sport","src","state"]' ]
	# events name the rule field (an id or "default" for deny and log, null for the others)
	mseg log --json | jq -e -s 'all(.[]; .event == "lost" or has("rule"))' >/dev/null
	# an empty list is []
	mseg sessions flush >/dev/null
	[ "$(mseg sessions --json)" = "[]" ]
}

@test "errors with --json are one mseg: line on stderr and nothing on stdout" {
	local empty
	empty=$(mktemp -d "$BATS_TEST_TMPDIR/nopins.XXXXXX")
	local c
	for c in "status --json" "config show --json" "stats --json" "sessions --json" \
		"gc --json" "monitor --once --json" "log --json" "flows --json"; do
		# shellcheck disable=SC2086 # words
		run --separate-stderr env TC_BPF_MNT="$empty" "$MSEG_SCRIPTS/mseg" $c
		[[ $status != 0 && -z $output && $stderr == mseg:* && $(grep -c . <<<"$stderr") == 1 ]] ||
			{ echo "$c: $status '$output' '$stderr'" >&2; return 1; }
	done
}
