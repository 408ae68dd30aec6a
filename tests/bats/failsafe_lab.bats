#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Failsafes with real sockets (issue 14, 4/6): the namespace lab under
# default deny and a deny-all rule. A connection to port 22 passes whichever
# side opens it through the filtered device (mseg judges flows, not "this
# host"), DNS over UDP and TCP and NTP pass, other ports do not; turning
# the failsafes off cuts what only they allowed; the boot path's saved
# default deny lets SSH in from the first SYN.

# shellcheck disable=SC2154,SC2153 # bats sets $output; lab.bash sets LAB_*
# shellcheck disable=SC2034 # LAB_TCP_PORTS, LAB_UDP_PORTS: lab_start_servers reads them
bats_require_minimum_version 1.5.0

load helpers/common
load helpers/lab

FS_SSH=262112 # docs/policy.md: the default list's first failsafe, tcp/22

setup() {
	require_build
}

teardown() {
	[[ -n ${LAB_C:-} ]] && lab_teardown
	return 0
}

# lockdown: default deny and a deny-all rule at priority 0.
lockdown() {
	printf '%s\n' 'default deny' \
		'rule add --src any --dst any --action deny --priority 0 --comment deny-all' |
		mseg apply - >/dev/null
}

# from NS MODE ADDR PORT: lab-client.py from namespace NS (tcp: one echo
# over a new connection; udp: one datagram there and back).
from() {
	local ns=$1
	shift
	ip netns exec "$ns" timeout -k 5 10 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" "$@" --timeout 2
}

# client_echo PORT: a TCP echo server on the client's PORT (for connections
# the server side opens).
client_echo() {
	local ready=$LAB_DIR/cecho.ready
	_lab_bg "$LAB_C" "$LAB_DIR/cecho.log" timeout -k 5 125 \
		"$MSEG_PYTHON" "$MSEG_HELPERS/lab-echo.py" --tcp "$1" --ready "$ready" --life 120
	wait_until 50 test -e "$ready"
}

@test "default deny and deny-all: SSH to port 22 passes whichever side opens it; DNS (UDP, TCP) and NTP pass; 5001 does not" {
	LAB_TCP_PORTS=(22 53 5001)
	LAB_UDP_PORTS=(53 123 5001)
	lab_setup
	lab_start_servers 120
	client_echo 22
	lockdown
	lab_tcp_connect "$LAB_S4" 22
	lab_tcp_connect "$LAB_S6" 22
	lab_udp_exchange "$LAB_S4" 53
	lab_tcp_connect "$LAB_S6" 53
	lab_udp_exchange "$LAB_S6" 123
	run ! lab_tcp_connect "$LAB_S4" 5001 1
	run ! lab_udp_exchange "$LAB_S6" 5001 1
	# the server side opens SSH to the client, through the same device
	from "$LAB_S" tcp "$LAB_C4" 22
	from "$LAB_S" tcp "$LAB_C6" 22
	run ! from "$LAB_S" tcp "$LAB_C4" 5001
	# four SSH sessions, each decided by the tcp/22 failsafe
	run -0 mseg sessions --json --all --proto tcp --dport 22
	[ "$(jq -c "[length, (map(.rule) | unique)]" <<<"$output")" = "[4,[$FS_SSH]]" ]
	run -0 mseg sessions --all --proto tcp --dport 22
	[[ $output == *"failsafe:$FS_SSH"* ]]
}

@test "an SSH session under default deny: failsafe off cuts it and refuses new ones, unless a rule allows it; failsafe default lets them in again" {
	LAB_TCP_PORTS=(22)
	LAB_UDP_PORTS=(53)
	lab_setup
	lab_start_servers 120
	lockdown
	lab_conn_open ssh "$LAB_S4" 22
	lab_conn_send ssh
	mseg failsafe off >/dev/null
	run ! lab_conn_send ssh
	run ! lab_tcp_connect "$LAB_S4" 22 1
	mseg failsafe default >/dev/null
	lab_tcp_connect "$LAB_S4" 22
	# the operator's own rule for SSH (beating deny-all by specificity at
	# priority 0) keeps it when the failsafes go
	mseg rule add --src "$LAB_C4" --dst "$LAB_S4" --proto tcp --dport 22 --action allow --priority 0 >/dev/null
	lab_conn_open ssh2 "$LAB_S4" 22
	mseg failsafe off >/dev/null
	lab_conn_send ssh2
	lab_tcp_connect "$LAB_S4" 22
	run ! lab_tcp_connect "$LAB_S6" 22 1
}

@test "boot: the saved default deny lets failsafe SSH in, and nothing else the policy denies" {
	LAB_TCP_PORTS=(22 5001)
	LAB_UDP_PORTS=(53)
	lab_setup --no-filter
	lab_start_servers 120
	local etc=$BATS_TEST_TMPDIR/etc
	mkdir -p "$etc"
	printf '%s\n' 'default deny' 'rule add --src any --dst any --action deny --priority 0' >"$etc/mseg.rules"
	printf 'device %s both\n' "$LAB_RC" >"$etc/mseg.conf"
	ip netns exec "$LAB_R" env MSEG_ETC="$etc" timeout -k 5 120 "$MSEG_SCRIPTS/mseg" boot
	lab_tcp_connect "$LAB_S4" 22
	lab_tcp_connect "$LAB_S6" 22
	run ! lab_tcp_connect "$LAB_S4" 5001 1
	[ "$(mseg sessions --json --proto tcp --dport 22 | jq -c 'map(.rule) | unique')" = "[$FS_SSH]" ]
}
