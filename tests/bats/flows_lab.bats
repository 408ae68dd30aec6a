#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# `mseg flows` and `mseg graph` on real traffic (issue 15): a small
# application in the lab (helpers/lab.bash: a web tier of two hosts, a db
# tier, a stray client, each in its own namespace behind a router that runs
# mseg), real TCP and UDP between them, each exchange logged as the client
# did it. The flows must be exactly those (by segment or address, protocol,
# port, verdict and rule, with as many connections as the clients opened,
# and the packets and bytes of their sessions), and the graph exactly their
# nodes and edges.

load helpers/common
load helpers/lab
load helpers/flows

# The payload of every UDP datagram: a denied one's bytes are known.
SIZE=100

setup_file() {
	require_build
	need "Graphviz (dot)" command -v dot
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
	DID=$BATS_TEST_TMPDIR/did
	: >"$DID"
}

# label HOST: how `mseg flows` names HOST under the policy of the test.
label() {
	case $1 in
	web1 | web2) echo web ;;
	db) echo db ;;
	*) echo "${LAB_APP_ADDR[$1]}" ;;
	esac
}

kind() { if [[ $(label "$1") == *.* ]]; then echo host; else echo segment; fi; }

# exchange HOST tcp|udp DST PORT allowed|denied RULE: one exchange from HOST
# with DST's echo server, which must get through (allowed) or not (denied);
# logged in $DID as what it adds to its flow (RULE: the deciding rule's
# comment, or default). A TCP connection that gets no answer is as many
# connection attempts as SYNs its kernel sent (TCPSynRetrans counts the
# retransmitted ones).
exchange() {
	local h=$1 proto=$2 dst=$3 port=$4 verdict=$5 rule=$6 syns=1 before=0
	if [[ $verdict == allowed ]]; then
		lab_app_client "$h" "$proto" "$dst" "$port" --timeout 5 --size "$SIZE" || {
			echo "$proto $h -> $dst:$port should get through" >&2
			return 1
		}
	else
		before=$(lab_app_syn_retrans "$h")
		if lab_app_client "$h" "$proto" "$dst" "$port" --timeout 0.5 --size "$SIZE" 2>/dev/null; then
			echo "$proto $h -> $dst:$port should be blocked" >&2
			return 1
		fi
		[[ $proto == tcp ]] && syns=$((1 + $(lab_app_syn_retrans "$h") - before))
	fi
	jq -n -c --arg src "$(label "$h")" --arg sk "$(kind "$h")" --arg dst "$(label "$dst")" \
		--arg dk "$(kind "$dst")" --arg proto "$proto" --argjson dport "$port" \
		--arg verdict "$verdict" --arg rule "$rule" --argjson n "$syns" \
		'{src: $src, src_kind: $sk, dst: $dst, dst_kind: $dk, proto: $proto, dport: $dport,
		  verdict: $verdict, rule: $rule, connections: $n}' >>"$DID"
}

# expected_rows: the rows the exchanges logged in $DID call for: one per
# flow, the connections summed, each rule's comment replaced by its id.
expected_rows() {
	local ids
	ids=$(mseg rule list --json | jq -c 'map({(.comment): .id}) | add') || return 1
	jq -s -c --argjson ids "$ids" '
		map(.rule |= (if . == "default" then . else $ids[.] end))
		| group_by(.src, .dst, .proto, .dport, .verdict, (.rule | tostring))
		| map(.[0] + {connections: (map(.connections) | add)})' "$DID"
}

# session_sums: packets and bytes of every session (`mseg sessions --all
# --json`), summed by the flow they belong to, the test's own way: an address
# in 10.78.1.0/24 or 10.78.2.0/24 is web, in 10.78.3.0/24 db.
session_sums() {
	mseg sessions --all --json | jq -c '
		def side: if test("^10\\.78\\.[12]\\.") then "web" elif test("^10\\.78\\.3\\.") then "db" else . end;
		map({src: (.src | side), dst: (.dst | side), proto, dport,
		     verdict: (if .action == "deny" then "denied" else "allowed" end),
		     rule, packets, bytes})
		| group_by(.src, .dst, .proto, .dport, .verdict, (.rule | tostring))
		| map(.[0] + {packets: (map(.packets) | add), bytes: (map(.bytes) | add)})'
}

@test "the application's flows and graph are exactly what its clients did" {
	printf '%s\n' "default deny" \
		"segment add web 10.78.1.0/24 10.78.2.0/24" \
		"segment add db 10.78.3.0/24" \
		"rule add --src web --dst db --proto tcp --dport 5432 --action allow --comment app-db" \
		"rule add --src web --dst db --proto udp --dport 5353 --action allow --comment app-dns" \
		"rule add --src any --dst web --proto tcp --dport 80 --action allow --comment www" \
		"rule add --src any --dst db --proto udp --dport 5353 --action deny --comment no-dns" |
		mseg apply -
	local t0 t1 rows want sums
	# the data path stamps at jiffy resolution (bpf/mseg_clock.h): a jiffy of slack
	t0=$(($(boot_ns) - 10000000))
	# the application
	exchange web1 tcp db 5432 allowed app-db
	exchange web1 tcp db 5432 allowed app-db
	exchange web2 tcp db 5432 allowed app-db
	exchange web1 udp db 5353 allowed app-dns
	exchange web2 udp db 5353 allowed app-dns
	exchange stray tcp web1 80 allowed www
	exchange stray tcp web2 80 allowed www
	exchange db tcp web2 80 allowed www
	# what the policy refuses: a rule's deny, and the default's
	exchange stray udp db 5353 denied no-dns
	exchange stray udp db 5353 denied no-dns
	exchange stray tcp db 5432 denied default
	t1=$(boot_ns)

	want=$(flows_sorted "$(expected_rows)")
	rows=$(flows_rows)
	assert_eq "the flows (packets and bytes aside)" "$want" "$(jq -c -S 'map(del(.packets, .bytes))' <<<"$rows")"
	[[ $(jq length <<<"$want") == 6 ]] || { echo "expected 6 flows: $want" >&2; return 1; }

	# packets and bytes: an allowed flow's are its sessions'; a denied
	# flow's packets are its attempts, a denied datagram's bytes its frame's
	sums=$(session_sums)
	jq -e -n --argjson rows "$rows" --argjson sums "$sums" --argjson size "$SIZE" '
		def key: [.src, .dst, .proto, .dport, .verdict, (.rule | tostring)];
		($sums | map({(key | tojson): .}) | add) as $s
		| all($rows[];
			if .verdict == "allowed" then
				$s[key | tojson] as $m | $m != null and .packets == $m.packets and .bytes == $m.bytes
			elif .proto == "udp" then
				.packets == .connections and .bytes == .connections * (14 + 20 + 8 + $size)
			else .packets == .connections end)' >/dev/null || {
		echo "packets and bytes do not match the sessions or the attempts:" >&2
		echo "flows:    $rows" >&2
		echo "sessions: $sums" >&2
		return 1
	}

	# first and last seen: during the exchanges, in order, as RFC 3339 too
	mseg flows --json | jq -e --argjson t0 "$t0" --argjson t1 "$t1" '
		length == 6 and all(.[];
			.first_seen_ns >= $t0 and .first_seen_ns <= .last_seen_ns and .last_seen_ns <= $t1
			and (.first_seen | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{6}Z$"))
			and (.last_seen | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{6}Z$")))' >/dev/null || {
		echo "first/last seen outside [$t0, $t1]:" >&2
		mseg flows --json >&2
		return 1
	}

	# the map: exactly those nodes and edges
	mseg graph -o "$BATS_TEST_TMPDIR/app.svg"
	local got
	got=$(graph_of "$BATS_TEST_TMPDIR/app.svg")
	assert_eq "the graph's nodes and edges" "$(graph_expected "$(mseg flows --json)")" "$got"
	assert_eq "nodes" '["10.78.9.2","db","web"]' "$(jq -c '[.nodes[].name]' <<<"$got")"
	assert_eq "edges" 6 "$(jq '.edges | length' <<<"$got")"
}
