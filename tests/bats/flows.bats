#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# `mseg flows` and `mseg graph` (issue 15), frame by frame (crafted frames
# through the program tc loaded on a veth): a new flow counts one connection
# in mseg_flows, on the new-flow path only, its packets and bytes are its
# sessions' (and those mseg gc deleted); a deny counts every attempt; a side
# in a segment is named by it; a pickup counts as its originator's flow;
# --since; the JSON and text forms and their errors; the Prometheus totals;
# the graph of what the map holds, would-deny included.
# shellcheck disable=SC2154 # bats sets $stderr, $output, $lines
# shellcheck disable=SC2030,SC2031 # BYTES lives in one test's shell

bats_require_minimum_version 1.5.0

load helpers/common
load helpers/flows

setup_file() {
	require_build
	crafted_setup
}

teardown_file() {
	crafted_teardown
}

setup() {
	crafted_test_setup 81 82
	# these flows use ports 22 and 53: judged by the rules, not the failsafes
	mseg failsafe off >/dev/null
	NEXT_PORT=$((BATS_TEST_NUMBER * 1000 + 30000))
	ID=$((BATS_TEST_NUMBER * 100))
	BYTES=0
}

teardown() {
	mseg config set timeout_udp 0 >/dev/null
	printf 'default allow\n' | mseg apply - >/dev/null
}

# send VERDICT ARGS...: one frame of mseg-pkt ARGS through the program,
# which must pass it (0) or drop it (2) as VERDICT says; adds its length
# to BYTES.
send() {
	local want=$1 f got
	shift
	f=$(pkt_file "$@") || return 1
	got=$(prog_run "$f") || return 1
	assert_eq "verdict of $*" "$want" "$got"
	BYTES=$((BYTES + $(stat -c %s "$f")))
}

# row SRC DST PROTO DPORT VERDICT RULE KIND_S KIND_D CONNS PACKETS BYTES: one
# expected row of flows_rows.
row() {
	jq -n -c -S --arg src "$1" --arg dst "$2" --arg proto "$3" --argjson dport "$4" \
		--arg verdict "$5" --argjson rule "$6" --arg sk "$7" --arg dk "$8" \
		--argjson c "$9" --argjson p "${10}" --argjson b "${11}" \
		'{src: $src, src_kind: $sk, dst: $dst, dst_kind: $dk, proto: $proto, dport: $dport,
		  verdict: $verdict, rule: $rule, connections: $c, packets: $p, bytes: $b}'
}

# rows ROW...: the rows, as flows_rows sorts them.
rows() { flows_sorted "$(printf '%s\n' "$@" | jq -s -c .)"; }

# mine: a flows_rows condition: the rows of this test's addresses.
mine() {
	local n=$BATS_TEST_NUMBER
	printf '((.src + .dst) | test("10\\\\.8[1-3]\\\\.%s\\\\.|fd00:8[1-3]:%s::|-t%s$"))\n' "$n" "$n" "$n"
}

@test "a new flow is one connection; its packets and bytes are its sessions'" {
	local s=$NEXT_PORT t0 t1
	# the data path stamps at jiffy resolution (bpf/mseg_clock.h): a jiffy of slack
	t0=$(($(boot_ns) - 10000000))
	send 0 --src "$S4" --dst "$D4" --proto tcp --sport "$s" --dport 80 --flags S --seq 1000
	send 0 --src "$D4" --dst "$S4" --proto tcp --sport 80 --dport "$s" --flags SA --seq 9000 --ack 1001
	send 0 --src "$S4" --dst "$D4" --proto tcp --sport "$s" --dport 80 --flags A --seq 1001 --ack 9001
	send 0 --src "$S4" --dst "$D4" --proto tcp --sport $((s + 1)) --dport 80 --flags S --seq 5000
	t1=$(boot_ns)
	assert_eq "flows" "$(rows "$(row "$S4" "$D4" tcp 80 allowed '"default"' host host 2 4 "$BYTES")")" \
		"$(flows_rows "$(mine)")"
	# the map counts the connections; the packets are in the sessions
	assert_eq "the map's entry" '[{"bytes":0,"connections":2,"packets":0}]' \
		"$(flows_map | jq -s -c -S --arg s "$S4" '[.[] | select(.src == $s) | {connections, packets, bytes}]')"
	mseg flows --json | jq -e --arg s "$S4" --argjson t0 "$t0" --argjson t1 "$t1" '
		[.[] | select(.src == $s)] | length == 1 and all(.[];
			.first_seen_ns >= $t0 and .first_seen_ns <= .last_seen_ns and .last_seen_ns <= $t1)' >/dev/null
}

@test "a denied flow counts every attempt, with its packets and bytes; IPv6 too" {
	mseg rule add --src "$S4" --dst "$D4" --proto tcp --dport 22 --action deny --id "$ID" >/dev/null
	mseg rule add --src "$S6" --dst "$D6" --proto udp --dport 53 --action deny --id $((ID + 1)) >/dev/null
	local s=$NEXT_PORT b4 b6
	send 2 --src "$S4" --dst "$D4" --proto tcp --sport "$s" --dport 22 --flags S --seq 1
	send 2 --src "$S4" --dst "$D4" --proto tcp --sport $((s + 1)) --dport 22 --flags S --seq 1
	# a retransmitted SYN: denied flows have no session, every packet is an attempt
	send 2 --src "$S4" --dst "$D4" --proto tcp --sport $((s + 1)) --dport 22 --flags S --seq 1
	b4=$BYTES
	BYTES=0
	send 2 --src "$S6" --dst "$D6" --proto udp --sport "$s" --dport 53 --payload 30
	send 2 --src "$S6" --dst "$D6" --proto udp --sport "$s" --dport 53 --payload 40
	b6=$BYTES
	# the same hosts on a port no rule denies: a flow of its own
	BYTES=0
	send 0 --src "$S4" --dst "$D4" --proto udp --sport "$s" --dport 22 --payload 10
	assert_eq "flows" "$(rows \
		"$(row "$S4" "$D4" tcp 22 denied "$ID" host host 3 3 "$b4")" \
		"$(row "$S6" "$D6" udp 53 denied $((ID + 1)) host host 2 2 "$b6")" \
		"$(row "$S4" "$D4" udp 22 allowed '"default"' host host 1 1 "$BYTES")")" \
		"$(flows_rows "$(mine)")"
}

@test "a side in a segment is named by it, any other by its address" {
	local n=$BATS_TEST_NUMBER web=web-t$BATS_TEST_NUMBER db=db-t$BATS_TEST_NUMBER s=$NEXT_PORT
	mseg segment add "$web" "10.81.$n.0/24" "fd00:81:$n::/64" >/dev/null
	mseg segment add "$db" "10.82.$n.0/24" >/dev/null
	# a host of its own inside the segment is still the segment's
	mseg rule add --src "10.81.$n.7" --dst "$db" --proto udp --dport 53 --action allow --id "$ID" >/dev/null
	local b1 b2 b3 b4
	send 0 --src "10.81.$n.1" --dst "$D4" --proto udp --sport "$s" --dport 53
	send 0 --src "10.81.$n.9" --dst "10.82.$n.5" --proto udp --sport "$s" --dport 53
	b1=$BYTES BYTES=0
	send 0 --src "10.81.$n.7" --dst "$D4" --proto udp --sport "$s" --dport 53
	b2=$BYTES BYTES=0
	send 0 --src "10.83.$n.1" --dst "$D4" --proto udp --sport "$s" --dport 53
	b3=$BYTES BYTES=0
	send 0 --src "fd00:81:$n::1" --dst "fd00:83:$n::2" --proto udp --sport "$s" --dport 53
	b4=$BYTES
	assert_eq "flows" "$(rows \
		"$(row "$web" "$db" udp 53 allowed '"default"' segment segment 2 2 "$b1")" \
		"$(row "$web" "$db" udp 53 allowed "$ID" segment segment 1 1 "$b2")" \
		"$(row "10.83.$n.1" "$db" udp 53 allowed '"default"' host segment 1 1 "$b3")" \
		"$(row "$web" "fd00:83:$n::2" udp 53 allowed '"default"' segment host 1 1 "$b4")")" \
		"$(flows_rows "$(mine)")"
	# the names follow the policy in force: without the segment, addresses
	mseg segment del "$web" >/dev/null
	assert_eq "sources without web" \
		"[\"10.81.$n.1\",\"10.81.$n.7\",\"10.81.$n.9\",\"10.83.$n.1\",\"fd00:81:$n::1\"]" \
		"$(flows_rows "$(mine)" | jq -c '[.[].src] | unique')"
}

@test "a pickup first seen from its responder counts as its originator's flow" {
	printf '%s\n' "default deny" \
		"rule add --src $S4 --dst $D4 --proto tcp --dport 80 --action allow --id $ID" | mseg apply -
	local s=$NEXT_PORT
	# the server's ACK first: its originator is the client, whom the policy lets open it
	send 0 --src "$D4" --dst "$S4" --proto tcp --sport 80 --dport "$s" --flags A --seq 7000 --ack 3000
	assert_eq "flows" "$(rows "$(row "$S4" "$D4" tcp 80 allowed "$ID" host host 1 1 "$BYTES")")" \
		"$(flows_rows "$(mine)")"
}

@test "a full set forgets the flow seen least recently on its CPU; flowset.py finds the set the data path uses" {
	mseg rule add --src "$S4" --dst "$D4" --proto udp --action deny --id "$ID" >/dev/null
	local set ports p i used
	# five flows of one set that no other test's flow uses on CPU 0 (the
	# hash written again from mseg_abi.h's layout)
	used=$(bpftool -j map dump pinned "$(pin mseg_flows)" | jq -r '
		[.[] | select(any(.formatted.values[]; .cpu == 0 and .value.count.last_ns != 0))
		 | .formatted.key / 4 | floor] | unique | join(",")')
	read -r set ports < <("$MSEG_PYTHON" "$MSEG_HELPERS/flowset.py" "$S4" "$D4" 17 "$ID" 1 5 "$used")
	read -ra p <<<"$ports"
	# one_on_cpu0 DPORT: a denied datagram, judged on CPU 0 (each CPU keeps its own slots)
	one_on_cpu0() {
		local f
		f=$(pkt_file --src "$S4" --dst "$D4" --proto udp --sport 999 --dport "$1") || return 1
		assert_eq "verdict to port $1" 2 \
			"$(taskset -c 0 bpftool -j prog run id "$PROG_ID" data_in "$f" repeat 1 | jq .retval)"
		# apart by more than a jiffy: the data path's clock (bpf/mseg_clock.h)
		sleep 0.05
	}
	for i in 0 1 2 3; do one_on_cpu0 "${p[i]}"; done
	one_on_cpu0 "${p[0]}" # seen again: the second port is now the least recent
	one_on_cpu0 "${p[4]}"
	assert_eq "the flows left" "[[${p[0]},2],[${p[2]},1],[${p[3]},1],[${p[4]},1]]" \
		"$(flows_rows "$(mine)" | jq -c 'map([.dport, .connections]) | sort')"
	# and they are the set's four slots on CPU 0
	local got
	got=$(bpftool -j map dump pinned "$(pin mseg_flows)" | jq -c --argjson lo $((set * 4)) '
		[.[] | select(.formatted.key >= $lo and .formatted.key < $lo + 4)
		 | .formatted.values[] | select(.cpu == 0) | .value.flow.dport] | sort')
	assert_eq "set $set on CPU 0" "$(jq -c -n --argjson a "[${p[0]},${p[2]},${p[3]},${p[4]}]" '$a | sort')" "$got"
}

@test "mseg gc keeps the packets and bytes of the sessions it deletes in their flow" {
	local s=$NEXT_PORT before
	mseg config set timeout_udp 1 >/dev/null
	send 0 --src "$S4" --dst "$D4" --proto udp --sport "$s" --dport 9 --payload 10
	send 0 --src "$S4" --dst "$D4" --proto udp --sport "$s" --dport 9 --payload 20
	send 0 --src "$S4" --dst "$D4" --proto udp --sport "$s" --dport 9 --payload 30
	before=$(rows "$(row "$S4" "$D4" udp 9 allowed '"default"' host host 1 3 "$BYTES")")
	assert_eq "flows while the session lives" "$before" "$(flows_rows "$(mine)")"
	# expired, then deleted by gc: its counts move into the flow
	_expired() { [[ $(mseg sessions --src "$S4" --count) == 0 ]]; }
	wait_until 100 _expired
	assert_eq "expired, not yet deleted" "$before" "$(flows_rows "$(mine)")"
	mseg gc >/dev/null
	assert_eq "sessions left" 0 "$(mseg sessions --src "$S4" --all --count)"
	assert_eq "flows after gc" "$before" "$(flows_rows "$(mine)")"
	assert_eq "mseg_flows_gc holds them now" "[{\"bytes\":$BYTES,\"packets\":3}]" \
		"$(flows_map flows_gc | jq -s -c -S --arg s "$S4" '[.[] | select(.src == $s) | {packets, bytes}]')"
	assert_eq "mseg_flows, the connection" '[{"bytes":0,"connections":1,"packets":0}]' \
		"$(flows_map | jq -s -c -S --arg s "$S4" '[.[] | select(.src == $s) | {connections, packets, bytes}]')"
}

@test "--since keeps the flows seen within the duration" {
	send 0 --src "$S4" --dst "$D4" --proto udp --sport "$NEXT_PORT" --dport 9
	assert_eq "--since 1h" 1 "$(mseg flows --since 1h --json | jq --arg s "$S4" '[.[] | select(.src == $s)] | length')"
	assert_eq "--since 10m" 1 "$(mseg flows --since 10m --json | jq --arg s "$S4" '[.[] | select(.src == $s)] | length')"
	# a second later it is older than 1s (and the JSON says so too)
	_gone() { [[ $(mseg flows --since 1s --json | jq --arg s "$S4" '[.[] | select(.src == $s)] | length') == 0 ]]; }
	wait_until 100 _gone
	mseg flows --json | jq -e --arg s "$S4" --argjson now "$(boot_ns)" \
		'[.[] | select(.src == $s)][0].last_seen_ns < $now - 1000000000' >/dev/null
	assert_eq "--since 90 (seconds)" 1 "$(mseg flows --since 90 --json | jq --arg s "$S4" '[.[] | select(.src == $s)] | length')"
	assert_eq "--since 1d" 1 "$(mseg flows --since 1d --json | jq --arg s "$S4" '[.[] | select(.src == $s)] | length')"
}

@test "JSON rows have every field, sorted by connections; the text table has its columns" {
	local s=$NEXT_PORT i
	for i in 1 2 3; do
		send 0 --src "$S4" --dst "$D4" --proto udp --sport $((s + i)) --dport 7
	done
	send 0 --src "$S4" --dst "$D4" --proto icmp --icmp-type 8 --icmp-id "$s"
	run --separate-stderr mseg flows --json
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 1 ]
	jq -e --argjson f "$FLOWS_FIELDS" 'type == "array" and length > 0 and all(.[]; keys_unsorted == $f)' <<<"$output" >/dev/null
	jq -e 'all(.[]; (.src_kind | IN("segment", "host")) and (.dst_kind | IN("segment", "host"))
		and (.verdict | IN("allowed", "denied", "would-deny"))
		and ((.rule | type) == "number" or .rule == "default")
		and (.connections | type) == "number" and (.packets | type) == "number"
		and (.bytes | type) == "number"
		and (.dport == null or (.dport | type) == "number"))' <<<"$output" >/dev/null
	# most connections first
	jq -e '[.[].connections] as $c | $c == ($c | sort | reverse)' <<<"$output" >/dev/null
	# ICMP has no port
	assert_eq "icmp's dport" null "$(jq -c --arg s "$S4" '[.[] | select(.src == $s and .proto == "icmp")][0].dport' <<<"$output")"
	# the text form: a header, one line per row, the same order
	run --separate-stderr mseg flows
	[ "$status" -eq 0 ]
	[[ ${lines[0]} =~ ^SRC\ +DST\ +PROTO\ +DPORT\ +VERDICT\ +RULE\ +CONNECTIONS\ +PACKETS\ +BYTES\ +FIRST_SEEN\ +LAST_SEEN$ ]]
	local text json
	text=$(printf '%s\n' "${lines[@]:1}" | awk '{ print $1, $2, $3, $4, $5, $6, $7 }')
	json=$(mseg flows --json | jq -r '.[] | "\(.src) \(.dst) \(.proto) \(.dport // "-") \(.verdict) \(.rule) \(.connections)"')
	assert_eq "text rows" "$json" "$text"
	grep -q "^$S4 \+$D4 \+udp \+7 \+allowed \+default \+3 " <<<"$output"
	grep -q "^$S4 \+$D4 \+icmp \+- \+allowed" <<<"$output"
}

@test "bad arguments: one mseg: line, exit 2, nothing on stdout; --help" {
	local a
	for a in "--since" "--since bogus" "--since -1s" "--since 5x" "--since 1.5h" "--bogus" "extra"; do
		# shellcheck disable=SC2086 # words on purpose
		run --separate-stderr mseg flows $a
		[ "$status" -eq 2 ] || { echo "mseg flows $a: status $status" >&2; return 1; }
		[ -z "$output" ]
		[ "${#stderr_lines[@]}" -eq 1 ]
		[[ $stderr == mseg:* ]]
	done
	run mseg flows --help
	[ "$status" -eq 0 ]
	[[ $output == *"usage: mseg flows"* ]]
	for a in "" "-o" "--since bogus -o $BATS_TEST_TMPDIR/x.svg" "-o $BATS_TEST_TMPDIR/nodir/x.svg" "--bogus -o $BATS_TEST_TMPDIR/x.svg"; do
		# shellcheck disable=SC2086
		run --separate-stderr mseg graph $a
		[ "$status" -ne 0 ] || { echo "mseg graph $a: status 0" >&2; return 1; }
		[ -z "$output" ]
		[ "${#stderr_lines[@]}" -eq 1 ]
		[[ $stderr == mseg:* ]]
	done
	[ ! -e "$BATS_TEST_TMPDIR/x.svg" ]
	run mseg graph --help
	[ "$status" -eq 0 ]
	[[ $output == *"usage: mseg graph"* ]]
}

@test "would-deny is a verdict of its own (audit mode): a row, a dotted orange edge" {
	# A slot as audit mode writes it (audit_staged.bats has the data path),
	# in the last set's last way (the few flows of these tests leave it alone)
	local k v cpus
	k=$(printf '%02x ' 0 0 0 0 0 0 0 0 0 0 255 255 10 81 "$BATS_TEST_NUMBER" 1 \
		0 0 0 0 0 0 0 0 0 0 255 255 10 82 "$BATS_TEST_NUMBER" 2 \
		$((ID & 255)) $((ID >> 8)) 0 0 187 1 6 4 2 0 0 0 0 0 0 0)
	# 5 connections, first and last seen just after boot
	v=$(printf '%02x ' 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 \
		1 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 \
		0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0)
	# shellcheck disable=SC2086 # hex bytes are words; bpftool writes it on every CPU
	bpftool map update pinned "$(pin mseg_flows)" key hex ff 1f 00 00 value hex $k $v
	cpus=$(bpftool -j map lookup pinned "$(pin mseg_flows)" key hex ff 1f 00 00 | jq '.values | length')
	assert_eq "flows" "$(rows "$(row "$S4" "$D4" tcp 443 would-deny "$ID" host host $((5 * cpus)) 0 0)")" \
		"$(flows_rows "$(mine)")"
	mseg graph -o "$BATS_TEST_TMPDIR/g.svg"
	graph_of "$BATS_TEST_TMPDIR/g.svg" | jq -e --arg s "$S4" \
		--arg d "$D4" --arg c "$((5 * cpus)) connections" \
		'[.edges[] | select(.from == $s)] == [{"dash": "1,5", "from": $s, "labels": ["tcp/443", $c],
		  "stroke": "#ef6c00", "to": $d}]' >/dev/null
}

@test "mseg graph draws every flow: hosts and segments as nodes, one edge per flow" {
	local n=$BATS_TEST_NUMBER s=$NEXT_PORT
	mseg segment add "web-t$n" "10.81.$n.0/24" >/dev/null
	mseg rule add --src "web-t$n" --dst "$D4" --proto tcp --dport 22 --action deny --id "$ID" >/dev/null
	send 0 --src "$S4" --dst "$D4" --proto tcp --sport "$s" --dport 80 --flags S --seq 1
	send 2 --src "$S4" --dst "$D4" --proto tcp --sport "$s" --dport 22 --flags S --seq 1
	send 0 --src "$S6" --dst "$D6" --proto udp --sport "$s" --dport 53
	mseg graph --since 1h -o "$BATS_TEST_TMPDIR/g.svg"
	local got
	got=$(graph_of "$BATS_TEST_TMPDIR/g.svg")
	assert_eq "the graph of every flow" "$(graph_expected "$(mseg flows --since 1h --json)")" "$got"
	jq -e --arg w "web-t$n" --arg d "$D4" '
		(.nodes | index({"name": $w, "shape": "polygon"}) != null)
		and (.nodes | index({"name": $d, "shape": "ellipse"}) != null)
		and ([.edges[] | select(.from == $w and .to == $d) | [.labels[0], .stroke, .dash]]
			| sort == [["tcp/22", "#c62828", "5,2"], ["tcp/80", "#2e7d32", null]])' <<<"$got" >/dev/null
	# an SVG the graph has nothing for: no flows seen in the last second, once they are older
	_none() { [[ $(mseg flows --since 1s --json) == "[]" ]]; }
	wait_until 50 _none
	mseg graph --since 1s -o "$BATS_TEST_TMPDIR/empty.svg"
	assert_eq "an empty graph" '{"edges":[],"nodes":[]}' "$(graph_of "$BATS_TEST_TMPDIR/empty.svg")"
}

@test "Prometheus: flows and their connections by verdict, no per-flow series" {
	mseg rule add --src "$S4" --dst "$D4" --proto tcp --dport 22 --action deny --id "$ID" >/dev/null
	send 2 --src "$S4" --dst "$D4" --proto tcp --sport "$NEXT_PORT" --dport 22 --flags S --seq 1
	send 0 --src "$S4" --dst "$D4" --proto udp --sport "$NEXT_PORT" --dport 9
	local dir=$BATS_TEST_TMPDIR/prom map
	mkdir -p "$dir"
	"$MSEG_BUILD/mseg-textfile" --dir "$dir"
	map=$(flows_map | jq -s -c .)
	local v want got
	for v in allowed denied would-deny; do
		want=$(jq --arg v "$v" '[.[] | select(.verdict == $v)] | length' <<<"$map")
		got=$(awk -v v="$v" -F'[ ]' '$1 == "mseg_flows{verdict=\"" v "\"}" { print $2 }' "$dir/mseg.prom")
		assert_eq "mseg_flows{verdict=\"$v\"}" "$want" "$got"
		want=$(jq --arg v "$v" '[.[] | select(.verdict == $v) | .connections] | add // 0' <<<"$map")
		got=$(awk -v v="$v" -F'[ ]' '$1 == "mseg_flow_connections{verdict=\"" v "\"}" { print $2 }' "$dir/mseg.prom")
		assert_eq "mseg_flow_connections{verdict=\"$v\"}" "$want" "$got"
	done
	# low cardinality: no series names an address or a port
	if grep -E '^mseg_flow.*(src|dst|port|10\.81\.)' "$dir/mseg.prom"; then
		echo "a per-flow series" >&2
		return 1
	fi
	grep -q '^# TYPE mseg_flows gauge$' "$dir/mseg.prom"
	grep -q '^mseg_map_max_entries{map="mseg_flows"} ' "$dir/mseg.prom"
}
