#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Failsafes (issue 14, 4/6; docs/policy.md, "failsafes"): with default deny
# and against any deny rule, the flows a host needs to stay manageable (by
# default tcp/22, tcp/53, udp/53, udp/67, udp/68, udp/123) keep passing
# unless the operator turns failsafes off. Crafted frames through the
# program tc loaded (bpftool prog run), IPv4 and IPv6; the commands that
# set, list, save, explain and report them. Real connections are in
# failsafe_lab.bats, the degraded session table in pressure.bats.
# shellcheck disable=SC2154 # bats sets $output, $stderr, $lines

bats_require_minimum_version 1.5.0

load helpers/common

# docs/policy.md: failsafe ids count up from 262112 in the list's order
# (port, then tcp before udp); the default list's first is tcp/22.
FS_BASE=262112
PASS=0
DENY=2
DEFAULT_LIST='["tcp/22","tcp/53","udp/53","udp/67","udp/68","udp/123"]'

setup_file() {
	require_build
	crafted_setup
}

teardown_file() {
	crafted_teardown
}

setup() {
	crafted_test_setup 50 60
}

teardown() {
	printf 'default allow\n' | mseg apply - >/dev/null || true
}

# lockdown [LINE...]: the whole policy: default deny, a deny-all rule at
# priority 0 (id 1), a priority-0 deny of this test's exact tcp/22 flow
# from port 40022 in both families (ids 2 and 3), then LINEs.
lockdown() {
	{
		echo "default deny"
		echo "rule add --src any --dst any --action deny --priority 0 --comment deny-all --id 1"
		echo "rule add --src $S4 --dst $D4 --proto tcp --sport 40022 --dport 22 --action deny --priority 0 --id 2"
		echo "rule add --src $S6 --dst $D6 --proto tcp --sport 40022 --dport 22 --action deny --priority 0 --id 3"
		printf '%s\n' "$@"
	} >"$BATS_TEST_TMPDIR/policy.rules"
	mseg apply "$BATS_TEST_TMPDIR/policy.rules" >/dev/null
}

# v FAM PROTO SPORT DPORT [mseg-pkt options]: the verdict of a new flow from
# this test's source to its destination (a SYN for tcp).
v() {
	local fam=$1 proto=$2 sport=$3 dport=$4 s=$S4 d=$D4
	shift 4
	if [[ $fam == 6 ]]; then s=$S6 d=$D6; fi
	verdict --src "$s" --dst "$d" --proto "$proto" --sport "$sport" --dport "$dport" \
		--payload 8 "$@"
}

# expect FAM RETVAL PROTO SPORT DPORT [options]
expect() {
	local fam=$1 want=$2
	shift 2
	assert_eq "IPv$fam $*" "$want" "$(v "$fam" "$@")"
}

# fs_list: the failsafes in force as ["proto/port", ...].
fs_list() { mseg failsafe list --json | jq -c 'map("\(.proto)/\(.port)")'; }

# fs_ids: the failsafes in force as [[id, proto, port], ...].
fs_ids() { mseg failsafe list --json | jq -c 'map([.id, .proto, .port])'; }

@test "default deny, a deny-all rule and a priority-0 5-tuple deny: the default failsafes pass, nothing else does (IPv4, IPv6)" {
	lockdown
	local fam icmp
	for fam in 4 6; do
		icmp=8
		[[ $fam == 6 ]] && icmp=128
		expect "$fam" $PASS tcp 40022 22
		expect "$fam" $PASS tcp 40053 53
		expect "$fam" $PASS udp 40053 53
		expect "$fam" $PASS udp 40067 67
		expect "$fam" $PASS udp 40068 68
		expect "$fam" $PASS udp 40123 123
		expect "$fam" $DENY tcp 40023 23
		expect "$fam" $DENY udp 40054 54
		expect "$fam" $DENY tcp 40222 2222
		expect "$fam" $DENY udp 40022 22
		expect "$fam" $DENY tcp 40124 123
		expect "$fam" $DENY icmp 7 0 --icmp-type "$icmp" --icmp-id 7
		# a failsafe names the destination port: a flow from port 53 is not one
		expect "$fam" $DENY udp 53 40000
	done
	# the sessions name the failsafe that decided them
	[ "$(mseg sessions --json --dport 22 | jq -c "map(.rule) == [$FS_BASE, $FS_BASE]")" = true ]
	[ "$(mseg sessions --json --rule failsafe | jq length)" = 12 ]
	[ "$(mseg sessions --json --rule "$FS_BASE" | jq length)" = 2 ]
	run -0 mseg sessions --dport 22
	[[ ${lines[1]} == *" failsafe:$FS_BASE" ]]
	# and their counters
	[ "$(mseg failsafe list --json | jq -c "map(select(.id == $FS_BASE) | [.proto, .port, .hits])")" = '[["tcp",22,2]]' ]
	# the denies were the rules' (ids 1, 2, 3), never a failsafe's
	[ "$(mseg sessions --json --rule failsafe | jq -c 'map(.action) | unique')" = '["allow"]' ]
}

@test "failsafe off: the same flows are denied; failsafe default brings them back; open sessions follow" {
	lockdown "failsafe off"
	local fam
	for fam in 4 6; do
		expect "$fam" $DENY tcp 41022 22
		expect "$fam" $DENY udp 41053 53
		expect "$fam" $DENY udp 41123 123
	done
	run -0 mseg failsafe default
	[ "$output" = "failsafe default" ]
	expect 4 $PASS tcp 42022 22
	expect 6 $PASS udp 42053 53
	# an open session a failsafe allowed is judged again when they go off
	run -0 mseg failsafe off
	[ "$output" = "failsafe off" ]
	expect 6 $DENY udp 42053 53
	expect 4 $DENY tcp 43022 22
	run -0 mseg failsafe off
	[[ $output == *unchanged* ]]
}

@test "failsafe set, add, del: the operator's list; ids follow its order" {
	lockdown
	run -0 mseg failsafe set tcp/2222 udp/5353
	[ "$(fs_ids)" = "[[$FS_BASE,\"tcp\",2222],[$((FS_BASE + 1)),\"udp\",5353]]" ]
	expect 4 $PASS tcp 44222 2222
	expect 6 $PASS udp 44353 5353
	expect 4 $DENY tcp 44022 22
	expect 6 $DENY udp 44053 53
	run -0 mseg failsafe add tcp/22 udp/5353
	[ "$(fs_list)" = '["tcp/22","tcp/2222","udp/5353"]' ]
	[ "$(fs_ids | jq -c 'map(.[0])')" = "[$FS_BASE,$((FS_BASE + 1)),$((FS_BASE + 2))]" ]
	expect 4 $PASS tcp 45022 22
	run -0 mseg failsafe add tcp/22
	[[ $output == *unchanged* ]]
	run -0 mseg failsafe del tcp/2222 udp/5353
	[ "$(fs_list)" = '["tcp/22"]' ]
	run --separate-stderr -1 mseg failsafe del tcp/2222
	[ "$stderr" = "mseg: no such failsafe: tcp/2222" ]
	mseg save | grep -qx 'failsafe set tcp/22'
	# the last one gone: failsafes are off
	run -0 mseg failsafe del tcp/22
	mseg save | grep -qx 'failsafe off'
	[ "$(fs_list)" = '[]' ]
	expect 4 $DENY tcp 46022 22
	run -0 mseg failsafe default
	mseg save | grep -qx 'failsafe default'
	[ "$(fs_list)" = "$DEFAULT_LIST" ]
	# add to the default list: it becomes the operator's
	run -0 mseg failsafe add tcp/2222
	mseg save | grep -qx 'failsafe set tcp/22 tcp/53 udp/53 udp/67 udp/68 udp/123 tcp/2222'
}

@test "bad failsafes are refused with one line and change nothing" {
	lockdown "failsafe set tcp/22"
	local before bad many="" i
	before=$(mseg save)
	for bad in "set" "set icmp/1" "set tcp/0" "set tcp/65536" "set tcp22" "set tcp/22-23" \
		"set sctp/9" "set tcp/x" "add" "del" "frob" "off tcp/22" "default now" "set tcp/+22"; do
		# shellcheck disable=SC2086 # words
		run --separate-stderr mseg failsafe $bad
		[[ $status == 2 && -z $output && $stderr == mseg:* && $(grep -c . <<<"$stderr") == 1 ]] ||
			{ echo "failsafe $bad: $status '$output' '$stderr'" >&2; return 1; }
	done
	for ((i = 1; i <= 33; i++)); do many+=" udp/$i"; done
	# shellcheck disable=SC2086 # words
	run --separate-stderr -2 mseg failsafe set $many
	[[ $stderr == *"at most 32"* ]]
	[ "$(mseg save)" = "$before" ]
	# in a ruleset file the line is named and nothing is applied
	printf 'default deny\nfailsafe set tcp/22\nfailsafe off\n' >"$BATS_TEST_TMPDIR/two.rules"
	run --separate-stderr -2 mseg apply "$BATS_TEST_TMPDIR/two.rules"
	[[ $stderr == "mseg: line 3: "*failsafe* ]]
	printf 'default deny\nfailsafe set udp/0\n' >"$BATS_TEST_TMPDIR/bad.rules"
	run --separate-stderr -2 mseg apply "$BATS_TEST_TMPDIR/bad.rules"
	[[ $stderr == "mseg: line 2: "* ]]
	# the failsafes' ids are not the operator's
	run --separate-stderr -2 mseg rule add --src any --dst any --action deny --id "$FS_BASE"
	[[ $stderr == *"--id"* ]]
	run --separate-stderr -2 mseg rule del "$FS_BASE"
	[[ $stderr == *"failsafe"* ]]
	[ "$(mseg save)" = "$before" ]
}

@test "DHCP: the client's broadcast DISCOVER and the server's OFFER to port 68 pass; without udp/68 the OFFER does not" {
	lockdown
	local srv=10.50.$BATS_TEST_NUMBER.9 cli=10.60.$BATS_TEST_NUMBER.77
	# DISCOVER, from no address yet to everyone; OFFER, broadcast or unicast
	# (a new flow: the DISCOVER's session has the broadcast address)
	[ "$(verdict --src 0.0.0.0 --dst 255.255.255.255 --proto udp --sport 68 --dport 67 --payload 8)" = $PASS ]
	[ "$(verdict --src "$srv" --dst 255.255.255.255 --proto udp --sport 67 --dport 68 --payload 8)" = $PASS ]
	[ "$(verdict --src "$srv" --dst "$cli" --proto udp --sport 67 --dport 68 --payload 8)" = $PASS ]
	# DHCPv6 is not in the default list; the operator adds it
	[ "$(verdict --src fe80::1 --dst ff02::1:2 --proto udp --sport 546 --dport 547 --payload 8)" = $DENY ]
	mseg failsafe add udp/546 udp/547 >/dev/null
	[ "$(verdict --src fe80::1 --dst ff02::1:2 --proto udp --sport 546 --dport 547 --payload 8)" = $PASS ]
	mseg failsafe set udp/67 >/dev/null
	[ "$(verdict --src "$srv" --dst "$cli" --proto udp --sport 67 --dport 68 --payload 8)" = $DENY ]
	[ "$(verdict --src 0.0.0.0 --dst 255.255.255.255 --proto udp --sport 68 --dport 67 --payload 8)" = $PASS ]
}

@test "mseg save | mseg apply - keeps the failsafe setting: default, off, a list" {
	local setting before fs
	for setting in "failsafe default" "failsafe off" "failsafe set udp/123 tcp/2222 tcp/22"; do
		lockdown "$setting"
		before=$(mseg save)
		fs=$(mseg failsafe list --json)
		mseg save | mseg apply - >/dev/null
		[ "$(mseg save)" = "$before" ]
		[ "$(mseg failsafe list --json)" = "$fs" ]
	done
	# the list is saved in its canonical order
	grep -qx 'failsafe set tcp/22 udp/123 tcp/2222' <<<"$before"
	# a ruleset without a failsafe line has the default list
	printf 'default deny\n' | mseg apply - >/dev/null
	mseg save | grep -qx 'failsafe default'
	[ "$(fs_list)" = "$DEFAULT_LIST" ]
	# --diff and --check say what changes
	printf 'default deny\nfailsafe off\n' >"$BATS_TEST_TMPDIR/off.rules"
	run -0 mseg apply --diff "$BATS_TEST_TMPDIR/off.rules"
	[[ $output == *"~ failsafe off"*"(was: failsafe default)"* ]]
	mseg save | grep -qx 'failsafe default'
}

@test "mseg status lists the failsafes in force, or says they are off" {
	lockdown
	run -0 mseg status
	[[ $output == *$'\nfailsafes:       tcp/22 tcp/53 udp/53 udp/67 udp/68 udp/123 (the default list)\n'* ]]
	run -0 mseg status --json
	[ "$(jq -c '[.failsafe, (.failsafes | map("\(.proto)/\(.port)")), .rules]' <<<"$output")" = \
		"[\"default\",$DEFAULT_LIST,3]" ]
	[ "$(jq -c '.failsafes[0]' <<<"$output")" = "{\"id\":$FS_BASE,\"proto\":\"tcp\",\"port\":22}" ]
	mseg failsafe off >/dev/null
	run -0 mseg status
	[[ $output == *$'\nfailsafes:       off\n'* ]]
	[ "$(mseg status --json | jq -c '[.failsafe, .failsafes]')" = '["off",[]]' ]
	mseg failsafe set tcp/2222 >/dev/null
	run -0 mseg status
	[[ $output == *$'\nfailsafes:       tcp/2222\n'* ]]
	[ "$(mseg status --json | jq -c '.failsafe')" = '"set"' ]
}

@test "mseg explain shows a failsafe deciding and the rules it beat; rule list --all shows the failsafes" {
	lockdown
	run -0 mseg explain --src "$S4" --dst "$D4" --proto tcp --sport 40022 --dport 22
	[ "${lines[0]}" = "verdict: allow" ]
	[ "${lines[1]}" = "decided by: failsafe $FS_BASE: tcp/22 (ssh)" ]
	[[ ${lines[2]} == "beat: rule 2: rule add --src $S4 --dst $D4 --proto tcp --sport 40022 --dport 22 --action deny --priority 0 --id 2" ]]
	[[ ${lines[3]} == *"rule 1: rule add --src any --dst any --action deny --priority 0 --id 1"* ]]
	[ "${lines[4]}" = "beat: default deny" ]
	run -0 mseg explain --json --src "$S6" --dst "$D6" --proto udp --dport 53
	jq -e ".verdict == \"allow\" and .rule == $((FS_BASE + 2)) and .failsafe == true and
		.statement == \"failsafe udp/53\" and (.beaten | map(.rule)) == [1]" <<<"$output" >/dev/null
	run -0 mseg explain --json --src "$S6" --dst "$D6" --proto udp --dport 54
	jq -e '.verdict == "deny" and .rule == 1 and .failsafe == false' <<<"$output" >/dev/null
	# explain and the classifier agree, flow by flow
	local flows=$BATS_TEST_TMPDIR/flows fam p port want got
	: >"$flows"
	for fam in 4 6; do
		for p in tcp udp; do
			for port in 21 22 23 53 67 68 123 124; do
				if [[ $fam == 4 ]]; then
					echo "--src $S4 --dst $D4 --proto $p --sport 47$port --dport $port" >>"$flows"
				else
					echo "--src $S6 --dst $D6 --proto $p --sport 47$port --dport $port" >>"$flows"
				fi
			done
		done
	done
	mseg explain --batch "$flows" >"$BATS_TEST_TMPDIR/explained"
	local line verdict_word
	while IFS='|' read -r line verdict_word; do
		# shellcheck disable=SC2086 # the flow's words
		got=$(verdict $line --payload 8)
		want=$DENY
		[[ $verdict_word == allow\ * ]] && want=$PASS
		assert_eq "$line" "$want" "$got"
	done < <(paste -d '|' "$flows" "$BATS_TEST_TMPDIR/explained")
	[ "$(grep -c "^allow $FS_BASE$" "$BATS_TEST_TMPDIR/explained")" = 2 ]
	[ "$(grep -c '^allow ' "$BATS_TEST_TMPDIR/explained")" = 12 ]
	# rule list --all: the failsafes after the rules, recognisable in text
	# and JSON; without --all, the operator's rules as before
	run -0 mseg rule list --all
	[[ ${lines[4]} =~ ^$FS_BASE\ +any\ +any\ +tcp\ +any\ +22\ +allow\ +failsafe\ +failsafe:\ ssh\ + ]]
	[ "${#lines[@]}" = 10 ]
	[ "$(mseg rule list --all --json | jq -c 'map(select(.failsafe)) | length')" = 6 ]
	[ "$(mseg rule list --json --all | jq -c "map(select(.id == $FS_BASE))[0] | [.src, .dst, .proto, .dport, .action, .priority, .failsafe]")" = \
		'["any","any","tcp",22,"allow",null,true]' ]
	[ "$(mseg rule list --all --json | jq -c 'map(select(.failsafe | not) | .id)')" = '[1,2,3]' ]
	[ "$(mseg rule list --json | jq -c 'map(.id)')" = '[1,2,3]' ]
	run -0 mseg rule list
	[ "${#lines[@]}" = 4 ]
}

@test "mseg failsafe: --help, list text and JSON, unknown subcommands" {
	lockdown
	run -0 mseg failsafe --help
	[[ $output == usage:\ mseg\ failsafe* && $output == *tcp/22* ]]
	run -0 mseg failsafe list
	[[ ${lines[0]} =~ ^ID\ +PROTO\ +PORT\ +SERVICE\ +PACKETS\ +HITS$ ]]
	[[ ${lines[1]} =~ ^$FS_BASE\ +tcp\ +22\ +ssh\ +[0-9]+\ +[0-9]+$ ]]
	[ "${#lines[@]}" = 7 ]
	local listed=$output
	run -0 mseg failsafe
	[ "$output" = "$listed" ]
	[ "$(mseg failsafe list --json | jq -c '.[0] | keys')" = '["hits","id","packets","port","proto","service"]' ]
	mseg failsafe off >/dev/null
	run -0 mseg failsafe list
	[ "$output" = "failsafes: off" ]
	[ "$(mseg failsafe list --json)" = "[]" ]
	run --separate-stderr -2 mseg failsafe list --frob
	[[ $stderr == mseg:* ]]
}
