#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# See before you enforce, end to end (issue 15's "done when"): a small
# application in the lab (helpers/lab.bash: two web hosts, a db host, a
# stray client, each in its own namespace behind a router that runs mseg),
# real TCP and UDP. Under default allow mseg learns a ruleset from what ran
# (mseg learn), which is applied staged: the same traffic again makes no
# disagreement, a stray connection exactly one; promoted, the stray
# connection is denied while the application keeps working. Audit mode on
# the same lab: the would-deny passes, the same deny enforced does not.

bats_require_minimum_version 1.5.0

load helpers/common
load helpers/lab

setup_file() {
	require_build
	lab_app_setup
	lab_app_serve web1 600 --tcp 80
	lab_app_serve web2 600 --tcp 80
	lab_app_serve db 600 --tcp 5432 --udp 5353
}

teardown_file() {
	lab_teardown
}

setup() {
	require_build
	need "the lab came up" test -n "${LAB_PROG_ID:-}"
	mseg staged drop >/dev/null
	mseg config set mode enforce
}

# works HOST tcp|udp DST PORT: one exchange that must get through.
works() {
	lab_app_client "$1" "$2" "$3" "$4" --timeout 5 --size 64 || {
		echo "$2 $1 -> $3:$4 should get through" >&2
		return 1
	}
}

# blocked HOST tcp|udp DST PORT: one exchange that must not.
blocked() {
	if lab_app_client "$1" "$2" "$3" "$4" --timeout 0.5 --size 64 2>/dev/null; then
		echo "$2 $1 -> $3:$4 should be blocked" >&2
		return 1
	fi
}

# application: what the application does, every time the same: clients
# (the stray host stands for the outside) reach the web tier, the web tier
# reaches the database over TCP and its cache over UDP.
application() {
	works stray tcp web1 80
	works stray tcp web2 80
	works web1 tcp db 5432
	works web2 tcp db 5432
	works web1 udp db 5353
	works web2 udp db 5353
}

@test "learn from the application, stage, zero disagreements, one for a stray connection, promote: it is denied, the application works" {
	printf '%s\n' "default allow" | mseg apply -
	application
	printf '%s\n' "segment add web 10.78.1.0/24 10.78.2.0/24" "segment add db 10.78.3.0/24" \
		>"$BATS_TEST_TMPDIR/segments"
	mseg learn --segments "$BATS_TEST_TMPDIR/segments" -o "$BATS_TEST_TMPDIR/learned.rules"
	cat "$BATS_TEST_TMPDIR/learned.rules" >&3
	grep -qx 'default deny' "$BATS_TEST_TMPDIR/learned.rules"
	run -0 mseg apply --staged "$BATS_TEST_TMPDIR/learned.rules"
	[[ $output == "staged: "*"default deny" ]]

	# the same traffic: the staged policy agrees with every new flow
	local d0
	d0=$(stat_get staged_disagree)
	application
	[ "$(stat_get staged_disagree)" = "$d0" ]
	[ "$(mseg staged diff --json)" = "[]" ]

	# a stray connection: allowed today, denied by the learned policy (the
	# policy in force has no segments: its sides are addresses)
	works stray tcp db 5432
	[ "$(stat_get staged_disagree)" = $((d0 + 1)) ]
	run -0 mseg staged diff --json
	[ "$(jq -c 'map([.src, .dst, .proto, .dport, .verdict, .staged_verdict, .disagreements])' <<<"$output")" = \
		'[["10.78.9.2","10.78.3.2","tcp",5432,"allowed","denied",1]]' ] || { echo "$output" >&2; false; }
	run -0 mseg staged
	[[ $output == *"disagreements: 1 new flows in 1 flows"* ]]

	# promoted: the stray connection is denied, the application works
	run -0 mseg apply --promote
	[[ $output == "promoted: "*"default deny" ]]
	blocked stray tcp db 5432
	application
	blocked stray udp db 5353
	[ "$(mseg staged status --json | jq .loaded)" = false ]
}

@test "audit mode on real traffic: the would-deny passes and is logged; enforced, the same deny blocks" {
	printf '%s\n' "default allow" "segment add db 10.78.3.0/24" \
		"rule add --src any --dst db --proto tcp --dport 5432 --action deny --audit --id 9" | mseg apply -
	mseg log --json >/dev/null
	works stray tcp db 5432
	mseg rule list --json | jq -e '.[] | select(.id == 9) | .audit and .would_deny >= 1' >/dev/null
	mseg log --json | jq -s -e 'any(.[]; .event == "would-deny" and .rule == 9 and .dport == 5432
		and .src == "10.78.9.2")' >/dev/null
	mseg flows --json | jq -e 'any(.[]; .verdict == "would-deny" and .dst == "db" and .dport == 5432)' >/dev/null
	# the same rule enforced
	mseg rule add --src any --dst db --proto tcp --dport 5432 --action deny
	blocked stray tcp db 5432
	# the whole host in audit mode: the default's deny passes too
	printf '%s\n' "default deny" "config mode audit" | mseg apply -
	works stray tcp db 5432
	works web1 udp db 5353
	mseg config set mode enforce
	blocked stray tcp db 5432
}
