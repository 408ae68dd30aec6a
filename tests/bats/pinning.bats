#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The tc-native contract (docs/DESIGN.md "Loading and pinning"): plain iproute2
# pins every map by name under $TC_BPF_MNT/tc/globals, every later load
# reuses them, so `tc filter replace` with a rebuilt object keeps sessions,
# rules and config; and bpftool shows every map with its BTF field names.
#
# Each test gets a fresh private bpffs and netns: pins are what is tested.

load helpers/common

REQUIRED_MAPS=(mseg_sessions mseg_ident mseg_rules mseg_rule_hits mseg_source mseg_config mseg_stats mseg_flows)
# Pinned with the object but never touched by the classifier: the policy's
# statements (docs/policy.md), read by user space alone, and the flows of
# the sessions mseg gc deleted, written by its sweep alone.
USER_ONLY_MAPS=(mseg_source mseg_flows_gc)

setup() {
	require_build
	bpffs_setup
	NS=mseg-p$$-$RANDOM
	ip netns add "$NS"
	ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	ip netns exec "$NS" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
	ip -n "$NS" link add mp0 type veth peer name mp1
	ip -n "$NS" link add mp2 type veth peer name mp3
}

teardown() {
	[[ -n ${NS:-} ]] && ip netns del "$NS" 2>/dev/null
	bpffs_teardown
}

# plain_attach DEV: exactly the contract's two commands, no wrapper.
plain_attach() {
	ip netns exec "$NS" tc qdisc add dev "$1" clsact
	ip netns exec "$NS" tc filter add dev "$1" ingress bpf da obj "$MSEG_OBJ" sec tc
}

# map_id NAME: id of the pinned map NAME.
map_id() { bpftool -j map show pinned "$(pin "$1")" | jq .id; }

# pinned_ids: ids of every map pinned under $TC_BPF_MNT/tc/globals that
# the data path uses (USER_ONLY_MAPS aside).
pinned_ids() {
	local p
	for p in "$TC_BPF_MNT"/tc/globals/*; do
		[[ " ${USER_ONLY_MAPS[*]} " == *" ${p##*/} "* ]] && continue
		bpftool -j map show pinned "$p" | jq .id
	done | jq -s -c sort
}

# prog_maps ID: the program's pinned map ids (its own .rodata/.bss aside),
# sorted, one line.
prog_maps() {
	bpftool -j prog show id "$1" |
		jq -c --argjson pinned "$(pinned_ids)" '[.map_ids[] | select(. as $i | $pinned | index($i))] | sort'
}

# handshake SPORT: SYN, SYN+ACK, ACK of 10.50.0.1:SPORT -> 10.50.0.2:80.
handshake() {
	local c="--src 10.50.0.1 --dst 10.50.0.2 --proto tcp --sport $1 --dport 80"
	local r="--src 10.50.0.2 --dst 10.50.0.1 --proto tcp --sport 80 --dport $1"
	# shellcheck disable=SC2086
	{
		assert_eq "SYN" 0 "$(verdict $c --flags S --seq 1000)"
		assert_eq "SYN+ACK" 0 "$(verdict $r --flags SA --seq 9000 --ack 1001)"
		assert_eq "ACK" 0 "$(verdict $c --flags A --seq 1001 --ack 9001)"
	}
}

@test "plain tc pins every mseg map by name under \$TC_BPF_MNT/tc/globals" {
	plain_attach mp0
	local m name
	for m in "${REQUIRED_MAPS[@]}"; do
		[[ -e $(pin "$m") ]] || { echo "not pinned: $m" >&2; ls -R "$TC_BPF_MNT" >&2; return 1; }
		name=$(bpftool -j map show pinned "$(pin "$m")" | jq -r .name)
		assert_eq "kernel name of $m" "$m" "$name"
	done
	# everything pinned there is ours: mseg_ prefix, within 15 characters
	for m in "$TC_BPF_MNT"/tc/globals/*; do
		name=${m##*/}
		[[ $name == mseg_* && ${#name} -le 15 ]] || { echo "unexpected pin: $name" >&2; return 1; }
	done
	# and the program uses exactly the pinned maps (those user space alone
	# reads aside)
	PROG_ID=$(prog_id mp0 "$NS")
	for m in "${REQUIRED_MAPS[@]}"; do
		[[ " ${USER_ONLY_MAPS[*]} " == *" $m "* ]] && continue
		jq -e --argjson id "$(map_id "$m")" 'index($id) != null' <<<"$(prog_maps "$PROG_ID")" >/dev/null ||
			{ echo "program $PROG_ID does not use pinned $m" >&2; return 1; }
	done
}

@test "bpftool map dump pinned shows BTF field names for every mseg map" {
	plain_attach mp0
	PROG_ID=$(prog_id mp0 "$NS")
	# Put an entry in each map: a session, a first fragment, rules (one on a
	# port: the rule hash; one on a range: the trie), a CIDR.
	handshake 40100
	assert_eq "first fragment" 0 "$(verdict --src 10.50.0.1 --dst 10.50.0.2 --proto udp --mf --ip-id 77 --payload 64)"
	mseg_rule add --src 10.50.0.1 --dst 10.50.0.9 --proto tcp --dport 22 --action deny >/dev/null
	mseg_rule add --src 10.50.0.1 --dst 10.50.0.9 --proto udp --dport 8000-8100 --action deny >/dev/null
	"$MSEG_SCRIPTS/mseg-cidr" add 10.51.0.0/16 --action deny >/dev/null

	# a flow of ended sessions, as mseg gc writes them (zero: the names count)
	# shellcheck disable=SC2046 # hex bytes are words
	bpftool map update pinned "$(pin mseg_flows_gc)" key hex $(printf '00 %.0s' {1..48}) \
		value hex $(printf '00 %.0s' {1..40})

	# dump_of MAP [-j]: its dump; for the 262,144 per-CPU rule counters and
	# the per-CPU flow slots only the first entry, in the same form
	dump_of() {
		local -a j=()
		[[ -n ${2:-} ]] && j=(-j)
		if [[ $1 == mseg_rule_hits || $1 == mseg_flows ]]; then
			bpftool "${j[@]}" map lookup pinned "$(pin "$1")" key hex 00 00 00 00 |
				if ((${#j[@]})); then jq -c '[.]'; else cat; fi
		else
			bpftool "${j[@]}" map dump pinned "$(pin "$1")"
		fi
	}
	# Every field of every map (bpf/mseg_abi.h), keys and values.
	local -A fields=(
		[mseg_sessions]="addr_lo addr_hi port_lo port_hi proto family created_ns last_seen_ns
			packets bytes tcp seq_end max_end ack max_win fin_seq flags wscale policy_gen state
			action orig_is_hi rule_id"
		[mseg_ident]="prefixlen set family addr id flags"
		[mseg_rules]="prefixlen set src_id dst_id proto dport c rank rule_id sport action by"
		[mseg_rules_hash]="prefixlen set src_id dst_id proto dport c rank rule_id sport action by"
		[mseg_rule_hits]="packets flows audited"
		[mseg_source]="set index line"
		[mseg_frags]="src dst id proto family seen_ns sport dport"
		[mseg_config]="abi_version policy_gen default_action strict active_set mode to_syn_sent
			to_syn_recv to_established to_fin_wait to_close_wait to_last_ack to_time_wait
			to_close to_udp to_udp_replied to_icmp to_other warn_pct crit_pct degrade_pct
			flood_half_open flood_syn_rate flood_syn_timeout event_rate to_unconfirmed staged_gen"
		[mseg_stats]="total policy_hit session_hit new_session allowed denied logged dropped
			ip_range_hit map_full pressure_drop tcp_established tcp_closed default_hit rejudged
			non_ip malformed fragments invalid rst_ignored events_lost unjudged strict_drop
			exempt related vlan_limit v4_mapped exthdr_limit frag_tiny frag_overlap frag_full
			out_of_window early_drop audit_denied staged_disagree"
		[mseg_pressure]="sessions updated_ns half_open_opened half_open_closed refused
			window_start_ns syn_count syn_rate warn_count crit_count degrade_count flood_count
			level flags evict_head evict_tail"
		[mseg_gc]="last_run_ns runs sessions live half_open deleted half_open_reaped"
		[mseg_evlimit]="window_start_ns count pending emitted_total suppressed_total"
		[mseg_evict]="addr_lo addr_hi port_lo port_hi proto family"
		[mseg_flows]="flow src dst rule_id dport proto family verdict count connections packets
			bytes first_ns last_ns staged disagreements gen"
		[mseg_flows_gc]="src dst rule_id dport proto family verdict connections packets bytes
			first_ns last_ns"
	)
	# Every map pinned has its list: a new map must be added above.
	# mseg_events is a ring buffer: bpftool cannot dump it (no keys, no
	# values), `mseg log` reads it.
	local m f text want got
	for m in "$TC_BPF_MNT"/tc/globals/*; do
		m=${m##*/}
		[[ $m == mseg_events ]] && continue
		[[ -n ${fields[$m]:-} ]] || { echo "pinned map $m has no field list here" >&2; return 1; }
	done
	for m in "${!fields[@]}"; do
		[[ -e $(pin "$m") ]] || { echo "not pinned: $m" >&2; return 1; }
		text=$(dump_of "$m")
		[[ -n $text ]] || { echo "empty dump of $m" >&2; return 1; }
		for f in ${fields[$m]}; do
			grep -q "\"$f\":" <<<"$text" || {
				echo "bpftool map dump pinned $m lacks field '$f':" >&2
				head -c 2000 <<<"$text" >&2
				return 1
			}
		done
		# and the JSON form carries them under "formatted": those and no
		# others (padding aside), so a field added to the layout is seen
		want=$(tr -s ' \t\n' '\n' <<<"${fields[$m]}" | grep . | LC_ALL=C sort -u | paste -sd ' ')
		got=$(dump_of "$m" -j | jq -r '
			[.[0].formatted | .. | objects | keys[]] | unique
			| map(select(. != "key" and . != "value" and . != "values" and . != "cpu"
				and (startswith("pad") | not))) | join(" ")')
		assert_eq "BTF field names in the JSON dump of $m" "$want" "$got"
	done
	# the values are the real ones, not just names
	local state
	state=$(map_dump mseg_sessions | jq '[.[].formatted | select(.key.proto == 6) | .value.state] | first')
	assert_eq "state of the handshaken session" 3 "$state"
}

@test "tc filter replace with a rebuilt object keeps sessions, rules and config" {
	plain_attach mp0
	PROG_ID=$(prog_id mp0 "$NS")
	local old_id=$PROG_ID new_obj=$BATS_TEST_TMPDIR/mseg-rebuilt.bpf.o old_insns
	old_insns=$(bpftool prog dump xlated id "$old_id" | sha1sum)
	# a different VLAN bound: different instructions, so the replace below
	# installs another program, not the same bytes again
	rebuild_object "$new_obj" -DMSEG_MAX_VLANS=3
	[[ -s $new_obj ]]

	# state before: a live session, a rule, default deny, counters
	handshake 40200
	assert_session tcp 10.50.0.1 40200 10.50.0.2 80 ESTABLISHED
	mseg_rule add --src 10.50.0.1 --dst 10.50.0.2 --proto tcp --dport 2222 --action deny >/dev/null
	# the live session's own flow stays allowed under the default deny
	mseg_rule add --src 10.50.0.1 --dst 10.50.0.2 --proto tcp --dport 80 --action allow >/dev/null
	# a CIDR allow under the default deny
	"$MSEG_SCRIPTS/mseg-cidr" add 10.52.0.0/16 --action allow >/dev/null
	mseg default deny >/dev/null
	assert_eq "denied before" 2 "$(verdict --src 10.50.0.1 --dst 10.50.0.2 --proto tcp --sport 1 --dport 2222)"
	local maps_before gen total_before pkts_before
	maps_before=$(prog_maps "$old_id")
	gen=$(config_get policy_gen)
	total_before=$(stat_get total)
	pkts_before=$(sessions_raw | jq -s '[.[] | select(.sport == 40200)][0].packets')

	# replace the program in place
	local pref handle
	read -r pref handle < <(ip netns exec "$NS" tc -j filter show dev mp0 ingress |
		jq -r '.[] | select(.options.prog) | "\(.pref) \(.options.handle)"')
	ip netns exec "$NS" tc filter replace dev mp0 ingress pref "$pref" handle "$handle" \
		bpf da obj "$new_obj" sec tc
	PROG_ID=$(prog_id mp0 "$NS")
	[[ $PROG_ID != "$old_id" ]] || { echo "program id did not change: $PROG_ID" >&2; return 1; }
	[[ $(bpftool prog dump xlated id "$PROG_ID" | sha1sum) != "$old_insns" ]] ||
		{ echo "the rebuilt program has the same instructions" >&2; return 1; }
	assert_eq "bpf filters on ingress" 1 \
		"$(ip netns exec "$NS" tc -j filter show dev mp0 ingress | jq '[.[] | select(.options.prog)] | length')"
	assert_eq "maps of the new program" "$maps_before" "$(prog_maps "$PROG_ID")"
	[[ $maps_before == "$(pinned_ids)" ]] || { echo "the program does not use every pin" >&2; return 1; }

	# everything is still there and still applied by the new program
	assert_eq "policy_gen" "$gen" "$(config_get policy_gen)"
	assert_eq "default_action" 1 "$(config_get default_action)"
	(($(stat_get total) >= total_before)) || { echo "stats were reset" >&2; return 1; }
	assert_session tcp 10.50.0.1 40200 10.50.0.2 80 ESTABLISHED
	stats_save
	assert_eq "next packet of the live session" 0 \
		"$(verdict --src 10.50.0.1 --dst 10.50.0.2 --proto tcp --sport 40200 --dport 80 --flags PA --seq 1001 --ack 9001 --payload 20)"
	local delta
	delta=$(stats_delta_json)
	assert_eq "session_hit ($delta)" 1 "$(jq '.session_hit // 0' <<<"$delta")"
	assert_eq "new_session ($delta)" 0 "$(jq '.new_session // 0' <<<"$delta")"
	assert_eq "session packets" "$((pkts_before + 1))" \
		"$(sessions_raw | jq -s '[.[] | select(.sport == 40200)][0].packets')"
	assert_eq "the rule, after replace" 2 \
		"$(verdict --src 10.50.0.1 --dst 10.50.0.2 --proto tcp --sport 2 --dport 2222)"
	assert_eq "default deny, after replace" 2 \
		"$(verdict --src 10.50.0.1 --dst 10.50.0.2 --proto udp --sport 3 --dport 4)"
	assert_eq "the CIDR allow, after replace" 0 \
		"$(verdict --src 10.50.0.1 --dst 10.52.0.9 --proto udp --sport 5 --dport 6)"
}

@test "deleting and re-adding the filter reuses the pinned maps" {
	plain_attach mp0
	PROG_ID=$(prog_id mp0 "$NS")
	handshake 40300
	local sessions_id
	sessions_id=$(map_id mseg_sessions)
	ip netns exec "$NS" tc filter del dev mp0 ingress
	[[ -e $(pin mseg_sessions) ]]
	ip netns exec "$NS" tc filter add dev mp0 ingress bpf da obj "$MSEG_OBJ" sec tc
	PROG_ID=$(prog_id mp0 "$NS")
	assert_eq "sessions map id" "$sessions_id" "$(map_id mseg_sessions)"
	assert_eq "sessions" 1 "$(sessions_raw | jq -s '[.[] | select(.sport == 40300 and .state == "ESTABLISHED")] | length')"
	stats_save
	assert_eq "next packet" 0 \
		"$(verdict --src 10.50.0.2 --dst 10.50.0.1 --proto tcp --sport 80 --dport 40300 --flags A --seq 9001 --ack 1001)"
	assert_eq "session_hit" 1 "$(stat_delta session_hit)"
}

@test "two attachments share one session table" {
	plain_attach mp0
	plain_attach mp2
	local a b
	a=$(prog_id mp0 "$NS")
	b=$(prog_id mp2 "$NS")
	[[ $a != "$b" ]]
	assert_eq "maps of both programs" "$(prog_maps "$a")" "$(prog_maps "$b")"
	# the SYN through one, the SYN+ACK through the other: one session
	PROG_ID=$a
	assert_eq "SYN on mp0" 0 "$(verdict --src 10.50.0.1 --dst 10.50.0.2 --proto tcp --sport 40400 --dport 80 --flags S --seq 5)"
	PROG_ID=$b
	stats_save
	assert_eq "SYN+ACK on mp2" 0 "$(verdict --src 10.50.0.2 --dst 10.50.0.1 --proto tcp --sport 80 --dport 40400 --flags SA --seq 70 --ack 6)"
	assert_eq "session_hit on mp2" 1 "$(stat_delta session_hit)"
	assert_eq "sessions" 1 "$(sessions_raw | jq -s '[.[] | select(.sport == 40400 and .state == "SYN_RECV")] | length')"
}
