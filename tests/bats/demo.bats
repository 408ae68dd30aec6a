#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# `make demo` (tests/demo): it runs to the end, every probe gets the result
# the rules in force call for, and it removes what it created. Its `try`
# really fails a probe that disagrees, so a green demo means something.

# shellcheck disable=SC2154,SC2016 # bats sets $stderr; $1 expands in bash -c
bats_require_minimum_version 1.5.0

load helpers/common

DEMO=$MSEG_ROOT/tests/demo

@test "try flags a probe whose result is not the expected one, and the demo's verdict fails" {
	run --separate-stderr bash -c '
		source "$1"
		try "ok probe" passed true
		try "ok block" BLOCKED false
		demo_verdict' _ "$DEMO"
	[ "$status" -eq 0 ]
	[ "${lines[2]}" = "2 probes, each as the rules say" ]
	run --separate-stderr bash -c '
		source "$1"
		try "should pass" passed false
		try "should be blocked" BLOCKED true
		try "fine" passed true
		demo_verdict' _ "$DEMO"
	[ "$status" -eq 1 ]
	[[ ${lines[0]} =~ ^\ \ should\ pass\ +BLOCKED\ \<-\ WRONG:\ the\ rules\ say\ passed$ ]]
	[[ ${lines[1]} =~ ^\ \ should\ be\ blocked\ +passed\ +\<-\ WRONG:\ the\ rules\ say\ BLOCKED$ ]]
	[[ ${lines[2]} =~ ^\ \ fine\ +passed$ ]]
	[ "$stderr" = "mseg: demo: 2 of 3 probes disagree with the rules" ]
}

@test "the demo runs to the end, each probe as the rules say, and cleans up" {
	export MSEG_DEMO_SVG=$BATS_TEST_TMPDIR/demo-flows.svg
	run --separate-stderr "$DEMO"
	printf '%s\n' "$output"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ] || { echo "stderr: $stderr" >&2; return 1; }
	[[ $output != *WRONG* ]]
	# The probes, step by step: protocol, destination, result.
	local got want
	got=$(awk '/^== / { sub(/:.*/, ""); step = $0 }
		/^  (TCP|UDP) / { print step " | " $1, $4, $5 }' <<<"$output")
	want=$(cat <<-'END'
		== Default allow | TCP 10.77.2.2:5001 passed
		== Default allow | TCP 10.77.2.2:5002 passed
		== Default allow | UDP 10.77.2.2:5003 passed
		== Default allow | TCP [fd77:2::2]:5001 passed
		== Default allow | TCP [fd77:2::2]:5002 passed
		== Rules | TCP 10.77.2.2:5001 passed
		== Rules | TCP 10.77.2.2:5002 BLOCKED
		== Rules | UDP 10.77.2.2:5003 BLOCKED
		== Rules | TCP [fd77:2::2]:5001 passed
		== Rules | TCP [fd77:2::2]:5002 BLOCKED
		== Default deny | TCP 10.77.2.2:5001 passed
		== Default deny | TCP 10.77.2.2:5002 BLOCKED
		== Default deny | UDP 10.77.2.2:5003 BLOCKED
		== Default deny | TCP [fd77:2::2]:5001 BLOCKED
		== Default deny | TCP [fd77:2::2]:5002 BLOCKED
		== CIDR rules | TCP 10.77.2.2:5001 passed
		== CIDR rules | TCP 10.77.2.2:5002 BLOCKED
		== CIDR rules | UDP 10.77.2.2:5003 BLOCKED
		== CIDR rules | TCP [fd77:2::2]:5001 passed
		== CIDR rules | TCP [fd77:2::2]:5002 BLOCKED
	END
	)
	diff <(echo "$want") <(echo "$got")
	[[ $output == *$'\n'"20 probes, each as the rules say"$'\n'* ]]
	# What the operator is shown along the way.
	[[ $output == *"mseg attached to "* ]]
	[[ $output == *"Sessions: "*" | Evictions: "*" | Pressure: "* ]]
	[[ $output == *"mseg_packets_total{action=\"denied\"}"* ]]
	# the flows, and their picture where it says: the client and the server,
	# allowed and denied edges between them
	[[ $output == *$'\n'"the flow map of this demo's traffic: $MSEG_DEMO_SVG"$'\n'* ]]
	"$MSEG_PYTHON" "$MSEG_HELPERS/svggraph.py" "$MSEG_DEMO_SVG" | jq -e '
		([.nodes[].name] | sort) == ["10.77.1.2", "10.77.2.2", "fd77:1::2", "fd77:2::2"]
		and ([.edges[].stroke] | unique) == ["#2e7d32", "#c62828"]' >/dev/null
	# Its namespaces and bpffs are gone (their names are in the output).
	local tag pins
	tag=$(sed -n 's/^mseg attached to mr\([0-9a-f]*\)c .*/\1/p' <<<"$output")
	pins=$(sed -n 's/^mseg attached to .*, maps in \(.*\)\/tc\/globals$/\1/p' <<<"$output")
	[ -n "$tag" ] && [ -n "$pins" ]
	[ -z "$(ip netns list | grep "^mseg-$tag-" || true)" ]
	[ ! -e "$pins" ]
}
