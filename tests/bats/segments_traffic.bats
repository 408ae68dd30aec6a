#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The policy language on real traffic through the lab (client, router
# with mseg, server; helpers/lab.bash), IPv4 and IPv6: segment-to-segment
# rules on a port, a range and a list, an override and an exception, and
# the deciding rule's id in the client's sessions.

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

# ok|blocked tcp|udp ADDR PORT
ok() {
	if [[ $1 == tcp ]]; then lab_tcp_connect "$2" "$3" 2; else lab_udp_exchange "$2" "$3" 2; fi ||
		fail_msg "$1 to [$2]:$3 should work"
}

blocked() {
	if [[ $1 == tcp ]]; then
		! lab_tcp_connect "$2" "$3" 1 2>/dev/null
	else
		! lab_udp_exchange "$2" "$3" 1 2>/dev/null
	fi || fail_msg "$1 to [$2]:$3 should be blocked"
}

policy() { printf '%s\n' "$@" | "$MSEG_SCRIPTS/mseg" apply - >/dev/null; }

segments_on_ports() {
	local c=$1 s=$2 len=$3
	policy "default deny" "segment add clients $c/$len" "segment add servers $s/$len" \
		"rule add --src clients --dst servers --proto tcp --dport 5001 --action allow" \
		"rule add --src clients --dst servers --proto tcp --dport 5002-5003 --action allow" \
		"rule add --src clients --dst servers --proto udp --dport 5001,5003 --action allow"
	ok tcp "$s" 5001
	ok tcp "$s" 5003
	blocked tcp "$s" 5004
	ok udp "$s" 5003
	blocked udp "$s" 5002
	# the deciding rule is in the sessions (rule 1 decided tcp/5001)
	"$MSEG_SCRIPTS/mseg" sessions --json |
		jq -e --argjson p 5001 'map(select(.dport == $p and .proto == "tcp")) | length > 0 and all(.rule == 1)' >/dev/null
	# override: quarantine the client, whatever allows it
	"$MSEG_SCRIPTS/mseg" rule add --src "$c" --dst any --action deny --priority 10 >/dev/null
	blocked tcp "$s" 5001
	# exception: the client to one port, more specific than the quarantine
	"$MSEG_SCRIPTS/mseg" rule add --src "$c" --dst "$s" --proto tcp --dport 5002 --action allow --priority 10 >/dev/null
	ok tcp "$s" 5002
	blocked tcp "$s" 5003
}

@test "IPv4: segments on a port, a range and a list; override and exception, real sockets" {
	segments_on_ports "$LAB_C4" "$LAB_S4" 32
}

@test "IPv6: segments on a port, a range and a list; override and exception, real sockets" {
	segments_on_ports "$LAB_C6" "$LAB_S6" 128
}
