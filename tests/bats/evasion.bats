#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# End to end, with real listeners behind the router (helpers/lab.bash): each
# way around a rule that issue 1/6 found fails, the same attempt in plain
# form is blocked, and the legitimate form of the same traffic works. The
# crafted frames are sent from the client namespace over its veth
# (AF_PACKET), so the router's kernel receives them as from a real link;
# the server side says what reached it: its echo servers, a UDP sink and raw
# sockets (which see what the kernel delivers, reassembled).

load helpers/common
load helpers/lab

RAW=$MSEG_HELPERS/lab-raw.py

setup_file() {
	require_build
	lab_setup
	lab_start_servers 900
	SINK_OUT=$LAB_DIR/sink.out
	export SINK_OUT
	: >"$SINK_OUT"
	# UDP 5004-5006 and every TCP and ICMPv4 packet delivered to the server
	_lab_bg "$LAB_S" "$LAB_DIR/sink.log" timeout -k 5 905 "$MSEG_PYTHON" "$RAW" sink \
		--out "$SINK_OUT" --ready "$LAB_DIR/sink.ready" --udp 5004,5005,5006 \
		--raw4 6 --life 900
	_lab_bg "$LAB_S" "$LAB_DIR/sink1.log" timeout -k 5 905 "$MSEG_PYTHON" "$RAW" sink \
		--out "$SINK_OUT" --ready "$LAB_DIR/sink1.ready" --raw4 1 --life 900
	_lab_bg "$LAB_S" "$LAB_DIR/sink58.log" timeout -k 5 905 "$MSEG_PYTHON" "$RAW" sink \
		--out "$SINK_OUT" --ready "$LAB_DIR/sink58.ready" --raw4 58 --raw6 58 --life 900
	wait_until 50 test -e "$LAB_DIR/sink.ready" -a -e "$LAB_DIR/sink1.ready" -a -e "$LAB_DIR/sink58.ready"
	ROUTER_MAC=$(ip -n "$LAB_R" -j link show "$LAB_RC" | jq -r '.[0].address')
	export ROUTER_MAC
}

teardown_file() {
	lab_teardown
}

setup() {
	require_build
	need "the lab came up" test -n "${LAB_PROG_ID:-}"
	need "the sinks listen" test -e "$LAB_DIR/sink58.ready"
	# per test: its own client ports, never reused by another test
	PORT0=$((20000 + BATS_TEST_NUMBER * 100))
}

teardown() {
	printf 'default allow\n' | mseg apply - >/dev/null
}

# policy LINES...: apply this whole policy (one statement a line).
policy() {
	printf '%s\n' "$@" | mseg apply - >/dev/null
}

# frame NAME ARGS...: build a frame with mseg-pkt into LAB_DIR/NAME.
frame() {
	local name=$1
	shift
	"$MSEG_PKT" "$@" -o "$LAB_DIR/$name"
}

# send NAME...: the frames, in order, from the client's veth to the router.
send() {
	local f files=()
	for f in "$@"; do files+=("$LAB_DIR/$f"); done
	ip netns exec "$LAB_C" timeout -k 5 10 "$MSEG_PYTHON" "$RAW" send-eth "$LAB_CDEV" "$ROUTER_MAC" "${files[@]}"
}

# send_ip NS NAME...: the frames' IP packets, routed by namespace NS's kernel.
send_ip() {
	local ns=$1 f files=()
	shift
	for f in "$@"; do files+=("$LAB_DIR/$f"); done
	ip netns exec "$ns" timeout -k 5 10 "$MSEG_PYTHON" "$RAW" send-ip "${files[@]}"
}

# arrived PATTERN: lines of the server's sinks matching PATTERN (grep -E).
arrived() { grep -cE "$1" "$SINK_OUT" || true; }

_arrived_one() { (($(arrived "$1") > 0)); }

# marker: a datagram the policy allows (udp 5006) sent after the attempts;
# once it arrived, whatever was sent before it and is not in the sink
# never will be (one path, one queue).
marker() {
	local sport=$((PORT0 + 99))
	frame marker --src "$LAB_C4" --dst "$LAB_S4" --proto udp --sport "$sport" --dport 5006 --payload 6
	send marker
	wait_until 100 _arrived_one "^udp $LAB_C4 $sport 5006 " || {
		echo "the marker never arrived; sink:" >&2
		cat "$SINK_OUT" >&2
		return 1
	}
}

MARKER_RULE="rule --src $LAB_C4 --dst $LAB_S4 --proto udp --dport 5006 --action allow"

# tags N: N VLAN tags of VID 0, 802.1Q and 802.1ad mixed.
tags() {
	local i
	for ((i = 0; i < $1; i++)); do
		if ((i % 2)); then printf -- '--svlan 0 '; else printf -- '--vlan 0 '; fi
	done
}

# dsts N: an --ext list of N destination options headers.
dsts() {
	local i list=dst
	for ((i = 1; i < $1; i++)); do list+=,dst; done
	echo "$list"
}

# --- 1. stacked VLAN tags ------------------------------------------------------------

@test "VLAN: stacked VID-0 tags no longer carry a denied SYN or datagram to the listener; 1-2 tags still work" {
	local max n
	max=$(mseg_bound MSEG_MAX_VLANS)
	policy "default deny" "$MARKER_RULE" \
		"rule --src $LAB_C4 --dst $LAB_S4 --proto udp --dport 5005 --action allow"
	local -a t
	# the evasion: the issue's four tags, as many as mseg reads (judged:
	# denied) and one more (dropped)
	for n in $(printf '%s\n' 4 "$max" $((max + 1)) | sort -un); do
		read -r -a t <<<"$(tags "$n")"
		frame "syn$n" "${t[@]}" --src "$LAB_C4" --dst "$LAB_S4" --proto tcp --sport $((PORT0 + n)) --dport 5001 --flags S
		frame "udp$n" "${t[@]}" --src "$LAB_C4" --dst "$LAB_S4" --proto udp --sport $((PORT0 + n)) --dport 5004 --payload 9
		send "syn$n" "udp$n"
	done
	# the control: the same without tags
	frame syn0 --src "$LAB_C4" --dst "$LAB_S4" --proto tcp --sport "$PORT0" --dport 5001 --flags S
	frame udp0 --src "$LAB_C4" --dst "$LAB_S4" --proto udp --sport "$PORT0" --dport 5004 --payload 9
	send syn0 udp0
	# the legitimate: one and two tags on an allowed flow
	for n in 1 2; do
		read -r -a t <<<"$(tags "$n")"
		frame "ok$n" "${t[@]}" --src "$LAB_C4" --dst "$LAB_S4" --proto udp --sport $((PORT0 + 10 + n)) --dport 5005 --payload 9
		send "ok$n"
	done
	marker
	assert_eq "SYNs that reached the server" 0 "$(arrived "^raw4 $LAB_C4 6 $PORT0 |^raw4 $LAB_C4 6 $((PORT0 + 4)) |^raw4 $LAB_C4 6 $((PORT0 + max)) |^raw4 $LAB_C4 6 $((PORT0 + max + 1)) ")"
	assert_eq "denied datagrams that reached the sink" 0 "$(arrived "^udp $LAB_C4 [0-9]+ 5004 ")"
	assert_eq "tagged allowed datagrams" 2 "$(arrived "^udp $LAB_C4 ($((PORT0 + 11))|$((PORT0 + 12))) 5005 ")"
	[ "$(stat_get vlan_limit)" -ge 2 ]
}

# --- 2. IPv4-mapped IPv6 ----------------------------------------------------------------

@test "IPv4-mapped IPv6 no longer opens the session an IPv4 flow then uses past an IPv4 CIDR deny" {
	policy "default allow" "cidr 10.77.2.0/24 --action deny"
	local sport=$((PORT0 + 1))
	# the evasion: an IPv6 SYN that spells the IPv4 flow, then the IPv4 flow
	frame mapped --src "::ffff:$LAB_C4" --dst "::ffff:$LAB_S4" --proto tcp --sport "$sport" --dport 5001 --flags S
	send mapped
	run lab_exec timeout -k 5 15 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" tcp "$LAB_S4" 5001 --sport "$sport" --timeout 2
	[ "$status" -ne 0 ]
	[ "$(stat_get v4_mapped)" -ge 1 ]
	# the control: the IPv4 flow alone
	run lab_exec timeout -k 5 15 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" tcp "$LAB_S4" 5001 --sport $((sport + 1)) --timeout 2
	[ "$status" -ne 0 ]
	# the legitimate: IPv6 proper, untouched by the IPv4 rule
	lab_tcp_connect "$LAB_S6" 5001
}

# --- 3. long IPv6 extension header chains -------------------------------------------

@test "IPv6: long extension header chains no longer carry denied traffic to the listener; allowed ones still arrive" {
	policy "default deny" "$MARKER_RULE" \
		"rule --src $LAB_C6 --dst $LAB_S6 --proto udp --dport 5005 --action allow"
	local max chain8 chain_max over
	max=$(mseg_bound MSEG_MAX_EXT_HDRS)
	chain8=$(dsts 8)
	chain_max=$(dsts "$max")
	over=$(dsts $((max + 1)))
	# the evasion: 8 headers (past the old parser's 7), one of 1 KiB,
	# as many as the kernel takes, one more
	frame e1 --src "$LAB_C6" --dst "$LAB_S6" --proto udp --sport "$PORT0" --dport 5004 --ext "$chain8" --payload 9
	frame e2 --src "$LAB_C6" --dst "$LAB_S6" --proto udp --sport "$PORT0" --dport 5004 --ext dst:127 --payload 9
	frame e3 --src "$LAB_C6" --dst "$LAB_S6" --proto udp --sport "$PORT0" --dport 5004 --ext "$chain_max" --payload 9
	frame e4 --src "$LAB_C6" --dst "$LAB_S6" --proto udp --sport "$PORT0" --dport 5004 --ext "$over" --payload 9
	# the control
	frame c1 --src "$LAB_C6" --dst "$LAB_S6" --proto udp --sport "$PORT0" --dport 5004 --payload 9
	# the legitimate: the same chains on an allowed flow
	frame l1 --src "$LAB_C6" --dst "$LAB_S6" --proto udp --sport $((PORT0 + 1)) --dport 5005 --ext "$chain8" --payload 9
	frame l2 --src "$LAB_C6" --dst "$LAB_S6" --proto udp --sport $((PORT0 + 2)) --dport 5005 --ext dst:127 --payload 9
	frame l3 --src "$LAB_C6" --dst "$LAB_S6" --proto udp --sport $((PORT0 + 3)) --dport 5005 --ext "$chain_max" --payload 9
	send e1 e2 e3 e4 c1 l1 l2 l3
	marker
	assert_eq "denied datagrams that reached the sink" 0 "$(arrived "^udp $LAB_C6 [0-9]+ 5004 ")"
	assert_eq "allowed datagrams behind long chains" 3 "$(arrived "^udp $LAB_C6 ($((PORT0 + 1))|$((PORT0 + 2))|$((PORT0 + 3))) 5005 ")"
	[ "$(stat_get exthdr_limit)" -ge 1 ]
}

# --- 4. tiny first fragments ------------------------------------------------------------

@test "a SYN split inside its TCP header no longer reaches the listener past a port deny; fragmented UDP still works" {
	policy "default allow" "rule --src $LAB_C4 --dst $LAB_S4 --proto tcp --dport 5001 --action deny"
	local sport=$((PORT0 + 1))
	# the evasion (RFC 1858): 8 bytes of TCP header, then the rest
	frame f1 --src "$LAB_C4" --dst "$LAB_S4" --proto tcp --sport "$sport" --dport 5001 --flags S --ip-id 4242 --fragment 0:8
	frame f2 --src "$LAB_C4" --dst "$LAB_S4" --proto tcp --sport "$sport" --dport 5001 --flags S --ip-id 4242 --fragment 8
	# the control: the SYN whole
	frame plain --src "$LAB_C4" --dst "$LAB_S4" --proto tcp --sport $((sport + 1)) --dport 5001 --flags S
	send f1 f2 plain
	marker
	assert_eq "SYNs that reached the server" 0 "$(arrived "^raw4 $LAB_C4 6 ($sport|$((sport + 1))) 5001 ")"
	[ "$(stat_get frag_tiny)" -ge 1 ]
	# the legitimate: a real socket's 3000-byte datagrams, fragmented by
	# the kernel both ways, under default deny with the port allowed
	policy "default deny" "rule --src $LAB_C4 --dst $LAB_S4 --proto udp --dport 5001 --action allow" \
		"rule --src $LAB_C6 --dst $LAB_S6 --proto udp --dport 5001 --action allow"
	local before
	before=$(stat_get fragments)
	lab_exec timeout -k 5 15 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" udp "$LAB_S4" 5001 --size 3000 --timeout 3
	lab_exec timeout -k 5 15 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" udp "$LAB_S6" 5001 --size 3000 --timeout 3
	(($(stat_get fragments) >= before + 4))
}

# --- 5. ICMP: errors of a session, echo direction -----------------------------------

@test "ICMP: the responder can no longer ping the originator through the originator's ping session" {
	policy "default deny" "rule --src $LAB_C4 --dst $LAB_S4 --proto icmp --action allow"
	local id=$((PORT0 + 7))
	# the legitimate: the client's ping, which opens the session
	lab_exec timeout -k 5 15 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" ping "$LAB_S4" 0 --id "$id"
	# the evasion: the server's echo request with the session's identifier
	frame rq --src "$LAB_S4" --dst "$LAB_C4" --proto icmp --icmp-type 8 --icmp-id "$id" --payload 8
	# the control: another identifier
	frame rq2 --src "$LAB_S4" --dst "$LAB_C4" --proto icmp --icmp-type 8 --icmp-id $((id + 1)) --payload 8
	send_ip "$LAB_S" rq rq2
	# the client would answer with an echo reply (type 0) to the server
	lab_exec timeout -k 5 15 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" ping "$LAB_S4" 0 --id $((id + 2))
	sleep 0.5
	assert_eq "echo replies from the client" 0 "$(arrived "^raw4 $LAB_C4 1 0 ")"
	assert_eq "the client's own pings that got through" 2 "$(arrived "^raw4 $LAB_C4 1 8 ($id|$((id + 2)))$")"
}

# pmtu FAMILY: an allowed connection, a "fragmentation needed" / "packet too
# big" for it from the far side, then the client's route to the server.
pmtu() {
	local fam=$1 c s mtu kind get=(ip -n "$LAB_C" route get)
	if [[ $fam == 4 ]]; then
		c=$LAB_C4 s=$LAB_S4 mtu=1200 kind=(--icmp-type 3 --icmp-code 4)
	else
		c=$LAB_C6 s=$LAB_S6 mtu=1280 kind=(--icmp-type 2) get=(ip -n "$LAB_C" -6 route get)
	fi
	policy "default deny" "rule --src $c --dst $s --proto tcp --dport 5001 --action allow"
	if "${get[@]}" "$s" | grep -q "mtu $mtu"; then
		echo "the route already has mtu $mtu" >&2
		return 1
	fi
	lab_conn_open "pmtu$fam" "$s" 5001
	local sport=$LAB_CONN_SPORT nxt sniff=$LAB_DIR/nxt$fam
	# the client's next sequence number, seen on the server's side
	_lab_bg "$LAB_S" "$sniff" timeout -k 5 20 "$MSEG_PYTHON" "$RAW" snd-nxt "$LAB_SDEV" "$c" "$sport" "$s" 5001 \
		--ready "$sniff.ready" --timeout 15
	wait_until 100 test -e "$sniff.ready" || { echo "the sniffer did not start" >&2; return 1; }
	lab_conn_send "pmtu$fam" >/dev/null
	wait_until 100 test -s "$sniff" || { echo "no sequence number seen" >&2; return 1; }
	nxt=$(head -n 1 "$sniff")
	[[ $nxt =~ ^[0-9]+$ ]] || { echo "sniffer: $nxt" >&2; return 1; }
	# the control: the same error about a connection that does not exist
	frame "ctl$fam" --src "$s" --dst "$c" --proto icmp "${kind[@]}" --mtu "$mtu" \
		--inner --src "$c" --dst "$s" --proto tcp --sport $((sport + 1)) --dport 5001 --seq "$nxt" --flags A
	# the legitimate error, from the server itself (the far side)
	frame "err$fam" --src "$s" --dst "$c" --proto icmp "${kind[@]}" --mtu "$mtu" \
		--inner --src "$c" --dst "$s" --proto tcp --sport "$sport" --dport 5001 --seq "$nxt" --flags A
	stats_save
	send_ip "$LAB_S" "ctl$fam" "err$fam"
	_route_mtu() { "${get[@]}" "$s" | grep -q "mtu $mtu"; }
	wait_until 100 _route_mtu || { echo "route: $("${get[@]}" "$s")" >&2; return 1; }
	# the legitimate error passed as related, the control was judged: denied
	(($(stat_delta related) == 1))
	(($(stat_delta denied) >= 1))
	# and the connection still works
	lab_conn_send "pmtu$fam"
}

@test "IPv4: a 'fragmentation needed' for an allowed connection reaches the client, whose route then has the lower MTU" {
	pmtu 4
}

@test "IPv6: a 'packet too big' for an allowed connection reaches the client, whose route then has the lower MTU" {
	pmtu 6
}

# --- 6. neighbour discovery -----------------------------------------------------------

@test "ND: only real ND passes without policy; IPv4 protocol 58 and off-link 'ND' are judged" {
	policy "default deny" "$MARKER_RULE" "rule --src $LAB_C6 --dst $LAB_S6 --proto udp --dport 5001 --action allow"
	# the evasion: an IPv4 packet of protocol 58 that reads as a neighbour
	# solicitation, and an ICMPv6 one with a routed hop limit
	frame nd4 --src "$LAB_C4" --dst "$LAB_S4" --proto icmpv6 --icmp-type 135 --ttl 255 --payload 16
	frame nd6 --src "$LAB_C6" --dst "$LAB_S6" --proto icmpv6 --icmp-type 135 --ttl 64 --payload 16
	# the control: other ICMPv6 the policy denies
	frame x6 --src "$LAB_C6" --dst "$LAB_S6" --proto icmpv6 --icmp-type 200 --ttl 64 --payload 16
	send nd4 nd6 x6
	marker
	sleep 0.3
	assert_eq "protocol 58 packets from the client at the server" 0 "$(arrived "^raw[46] ($LAB_C4|$LAB_C6) 58 ")"
	# the legitimate: neighbour resolution from scratch, under default deny
	ip -n "$LAB_C" -6 neigh flush all
	ip -n "$LAB_R" -6 neigh flush all
	lab_udp_exchange "$LAB_S6" 5001
	(($(stat_get exempt) > 0))
}

# --- 7. IPv6 fragments with a header after the fragment header -------------------------

@test "IPv6: an allowed datagram whose fragments carry a header after the fragment header arrives whole" {
	policy "default deny" "$MARKER_RULE" \
		"rule --src $LAB_C6 --dst $LAB_S6 --proto udp --dport 5005 --action allow"
	local p
	for p in 5005 5004; do
		frame "a$p" --src "$LAB_C6" --dst "$LAB_S6" --proto udp --sport "$PORT0" --dport "$p" --ip-id "$p" \
			--ext frag,dst --payload 2000 --fragment 0:1232
		frame "b$p" --src "$LAB_C6" --dst "$LAB_S6" --proto udp --sport "$PORT0" --dport "$p" --ip-id "$p" \
			--ext frag,dst --payload 2000 --fragment 1232
		send "a$p" "b$p"
	done
	marker
	# the legitimate arrives whole, the control (a denied port) not at all
	assert_eq "the allowed datagram" 1 "$(arrived "^udp $LAB_C6 $PORT0 5005 2000$")"
	assert_eq "the denied datagram" 0 "$(arrived "^udp $LAB_C6 $PORT0 5004 ")"
}

# --- 8. one packet, one decision -----------------------------------------------------------

@test "a connection reusing a closed connection's ports works, and every packet counted one decision" {
	ip netns exec "$LAB_C" sysctl -qw net.ipv4.tcp_tw_reuse=1
	local sport=$((PORT0 + 1)) before
	before=$(stat_get new_session)
	lab_exec timeout -k 5 15 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" tcp "$LAB_S4" 5001 --sport "$sport"
	sleep 1.1 # a TIME_WAIT port is reused after a second (timestamps)
	lab_exec timeout -k 5 15 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" tcp "$LAB_S4" 5001 --sport "$sport"
	(($(stat_get new_session) >= before + 2))
	stats_invariant
}
