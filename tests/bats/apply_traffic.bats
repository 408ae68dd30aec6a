#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# mseg apply on real sockets through the namespace lab (helpers/lab.bash):
# an open TCP connection that the new ruleset denies is cut by the apply
# (the switch bumps policy_gen, so its session is judged again), and one
# the new ruleset still allows keeps working. IPv4 and IPv6.

load helpers/common
load helpers/lab

setup_file() {
	require_build
	lab_setup
	lab_start_servers 600
}

teardown_file() {
	lab_teardown
}

setup() {
	require_build
	need "the lab came up" test -n "${LAB_PROG_ID:-}"
}

teardown() {
	printf 'default allow\n' | "$MSEG_SCRIPTS/mseg" apply - >/dev/null
}

fail_msg() {
	echo "$*" >&2
	return 1
}

# cut_by_apply FAMILY: A allows the client to the server's ports 5002 and
# 5003; B still allows 5002 but denies 5003 (an exact deny). After
# `mseg apply B` the open connection to 5003 is cut, the one to 5002 is
# not. (Default allow in both, so neighbour discovery passes.)
cut_by_apply() {
	local c s name=apply$1 keep=keep$1 res
	if [[ $1 == 4 ]]; then c=$LAB_C4 s=$LAB_S4; else c=$LAB_C6 s=$LAB_S6; fi
	printf '%s\n' "default allow" \
		"rule --src $c --dst $s --proto tcp --dport 5003 --action allow" \
		"rule --src $c --dst $s --proto tcp --dport 5002 --action allow" \
		>"$BATS_TEST_TMPDIR/A"
	printf '%s\n' "default allow" \
		"rule --src $c --dst $s --proto tcp --dport 5003 --action deny" \
		"rule --src $c --dst $s --proto tcp --dport 5002 --action allow" \
		>"$BATS_TEST_TMPDIR/B"
	"$MSEG_SCRIPTS/mseg" apply "$BATS_TEST_TMPDIR/A" >/dev/null
	lab_conn_open "$name" "$s" 5003
	lab_conn_open "$keep" "$s" 5002
	[[ $(lab_conn_send "$name") == ok ]] || fail_msg "second exchange under A"
	stats_save
	"$MSEG_SCRIPTS/mseg" apply "$BATS_TEST_TMPDIR/B" >/dev/null
	res=$(lab_conn_send "$name") && fail_msg "exchange on 5003 after B denied it: $res"
	[[ $res == fail:* ]] || fail_msg "unexpected result: $res"
	res=$(lab_conn_send "$keep") || fail_msg "exchange on 5002, which B allows: $res"
	(($(stat_delta rejudged) >= 1)) || fail_msg "rejudged did not move"
}

@test "IPv4: an open TCP connection that the applied ruleset denies is cut, an allowed one is not" {
	cut_by_apply 4
}

@test "IPv6: an open TCP connection that the applied ruleset denies is cut, an allowed one is not" {
	cut_by_apply 6
}
