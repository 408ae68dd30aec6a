#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# CIDR rules on real sockets through the namespace lab (helpers/lab.bash):
# client -> router -> server, mseg attached with `mseg attach DEV --both` on
# the router's client-facing veth. IPv4 and IPv6 throughout.
#
# One lab serves the whole file; each test deletes the prefixes it added
# (with mseg-cidr, so open sessions are judged again) and puts the default
# back to allow. Connections expected to fail use a 1 s timeout.

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
	CIDRS_ADDED=$BATS_TEST_TMPDIR/cidrs-added
	: >"$CIDRS_ADDED"
}

teardown() {
	local c
	while read -r c; do
		[[ -n $c ]] && "$MSEG_SCRIPTS/mseg-cidr" del "$c" >/dev/null 2>&1
	done <"$CIDRS_ADDED"
	if [[ -e $BATS_TEST_TMPDIR/default-changed ]]; then
		mseg default allow >/dev/null
	fi
	return 0
}

# The lab's networks (lab.bash): client side and server side.
C4_NET=10.77.1.0/24
S4_NET=10.77.2.0/24
C6_NET=fd77:1::/64
S6_NET=fd77:2::/64

# use FAMILY: the server address S, the networks CNET (client) and SNET
# (server), and HOST, the host prefix length, of that family.
use() {
	if [[ $1 == 4 ]]; then
		S=$LAB_S4 CNET=$C4_NET SNET=$S4_NET HOST=/32
	else
		S=$LAB_S6 CNET=$C6_NET SNET=$S6_NET HOST=/128
	fi
}

# cidr CIDR ACTION: add (or update) a prefix, remembered for teardown.
cidr() {
	"$MSEG_SCRIPTS/mseg-cidr" add "$1" --action "$2" >/dev/null
	echo "$1" >>"$CIDRS_ADDED"
}

uncidr() { "$MSEG_SCRIPTS/mseg-cidr" del "$1" >/dev/null; }

set_default() {
	touch "$BATS_TEST_TMPDIR/default-changed"
	mseg default "$1" >/dev/null
}

fail_msg() {
	echo "$*" >&2
	return 1
}

# ok|blocked tcp|udp [ADDR] PORT
ok() {
	local proto=$1 addr=$S port
	(($# == 3)) && addr=$2
	port=${*: -1}
	if [[ $proto == tcp ]]; then
		lab_tcp_connect "$addr" "$port" 2
	else
		lab_udp_exchange "$addr" "$port" 2
	fi || fail_msg "$proto to [$addr]:$port should work"
}

blocked() {
	local proto=$1 addr=$S port
	(($# == 3)) && addr=$2
	port=${*: -1}
	if [[ $proto == tcp ]]; then
		! lab_tcp_connect "$addr" "$port" 1 2>/dev/null
	else
		! lab_udp_exchange "$addr" "$port" 1 2>/dev/null
	fi || fail_msg "$proto to [$addr]:$port should be blocked"
}

# --- a deny on the server's network, a longer allow inside it -------------------------

server_prefix() {
	use "$1"
	ok tcp 5001
	stats_save
	cidr "$SNET" deny
	blocked tcp 5001
	blocked udp 5002
	(($(stat_delta ip_range_hit) >= 2)) || fail_msg "ip_range_hit: $(stat_delta ip_range_hit)"
	(($(stat_delta denied) >= 2)) || fail_msg "denied: $(stat_delta denied)"
	# the server's host prefix is longer: it wins
	cidr "$S$HOST" allow
	ok tcp 5001
	ok udp 5002
	uncidr "$S$HOST"
	blocked tcp 5003
	uncidr "$SNET"
	ok tcp 5003
	ok udp 5003
	assert_eq "prefixes left" 0 "$("$MSEG_SCRIPTS/mseg-cidr" list --json | jq length)"
}

@test "IPv4: a deny on the server's /24 blocks TCP and UDP, an allow on its /32 wins" { server_prefix 4; }
@test "IPv6: a deny on the server's /64 blocks TCP and UDP, an allow on its /128 wins" { server_prefix 6; }

# --- the source side ---------------------------------------------------------------

client_prefix() {
	use "$1"
	cidr "$CNET" deny
	blocked tcp 5001
	blocked udp 5001
	# a destination prefix is looked up first and allows
	cidr "$SNET" allow
	ok tcp 5001
	ok udp 5001
}

@test "IPv4: a deny on the client's network blocks it unless the server's network allows" { client_prefix 4; }
@test "IPv6: a deny on the client's network blocks it unless the server's network allows" { client_prefix 6; }

# --- default deny with a CIDR allow ------------------------------------------------------

@test "default deny plus a CIDR allow: exactly the allowed family and network get through" {
	set_default deny
	blocked tcp "$LAB_S4" 5001
	blocked tcp "$LAB_S6" 5001
	cidr "$S4_NET" allow
	ok tcp "$LAB_S4" 5001
	ok udp "$LAB_S4" 5002
	# the IPv4 allow says nothing about IPv6
	blocked tcp "$LAB_S6" 5001
	blocked udp "$LAB_S6" 5002
	cidr "$S6_NET" allow
	ok tcp "$LAB_S6" 5001
	ok udp "$LAB_S6" 5002
	# the allowed flows have sessions cached as allow
	local n
	n=$(session_count ".proto == \"tcp\" and .dst == \"$LAB_S6\" and .dport == 5001 and .action == \"allow\"")
	((n >= 1)) || fail_msg "no allowed IPv6 session"
}

# --- each family's /0 stays in its family ------------------------------------------------

@test "::/0 deny blocks IPv6 only, 0.0.0.0/0 deny blocks IPv4 only" {
	cidr ::/0 deny
	ok tcp "$LAB_S4" 5001
	ok udp "$LAB_S4" 5001
	blocked tcp "$LAB_S6" 5001
	blocked udp "$LAB_S6" 5001
	uncidr ::/0
	cidr 0.0.0.0/0 deny
	blocked tcp "$LAB_S4" 5002
	blocked udp "$LAB_S4" 5002
	ok tcp "$LAB_S6" 5002
	ok udp "$LAB_S6" 5002
}

# --- an open connection is judged again ------------------------------------------------

cut_live() {
	use "$1"
	local name=cidr$1 res
	lab_conn_open "$name" "$S" 5003
	[[ $(lab_conn_send "$name") == ok ]] || fail_msg "second exchange before any prefix"
	stats_save
	cidr "$SNET" deny
	res=$(lab_conn_send "$name") && fail_msg "exchange after the CIDR deny: $res"
	[[ $res == fail:* ]] || fail_msg "unexpected result: $res"
	(($(stat_delta rejudged) >= 1)) || fail_msg "rejudged did not move"
}

@test "IPv4: a CIDR deny stops an open TCP connection" { cut_live 4; }
@test "IPv6: a CIDR deny stops an open TCP connection" { cut_live 6; }
