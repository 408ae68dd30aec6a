#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# CIDR decisions, frame by frame (crafted frames through the program tc
# loaded on a veth, bpftool prog run): the longest prefix wins in both
# families, destination before source, exact rules before CIDR rules, the
# default when nothing matches, the family byte keeping IPv4 and IPv6 apart,
# hit counters, re-judging open sessions, and a randomized comparison with
# a reference longest-prefix match in Python's ipaddress.
#
# Rules go in through scripts/mseg-cidr (and mseg-rule). Every test empties
# the trie when it ends; each uses its own source ports, so no session of
# an earlier test answers for a later one.

load helpers/common

setup_file() {
	require_build
	crafted_setup
}

teardown_file() {
	crafted_teardown
}

setup() {
	require_build
	need "the classifier loaded" test -n "${PROG_ID:-}"
	need build/mseg-testrun test -x "$MSEG_BUILD/mseg-testrun"
	NEXT_PORT=$((BATS_TEST_NUMBER * 1000))
	rules_track_init
}

teardown() {
	rules_cleanup
	cidr_flush
	if [[ -e $BATS_TEST_TMPDIR/default-changed ]]; then
		mseg default allow >/dev/null
	fi
}

DENY=2
PASS=0

cidr() { "$MSEG_SCRIPTS/mseg-cidr" "$@"; }

# add CIDR ACTION
add() { cidr add "$1" --action "$2" >/dev/null; }

cidr_flush() { policy_flush; }

set_default() {
	touch "$BATS_TEST_TMPDIR/default-changed"
	mseg default "$1" >/dev/null
}

# expect WANT WHAT SRC DST [mseg-pkt options]: a new UDP flow SRC -> DST (a
# fresh source port each time) gets verdict WANT.
expect() {
	local want=$1 what=$2 src=$3 dst=$4 got
	shift 4
	NEXT_PORT=$((NEXT_PORT + 1))
	got=$(verdict --src "$src" --dst "$dst" --proto udp --sport "$NEXT_PORT" --dport 9 \
		--payload 8 "$@")
	assert_eq "$what ($src -> $dst)" "$want" "$got"
}

# hits CIDR: the hit counter `mseg-cidr list --json` shows for CIDR.
hits() { cidr list --json | jq --arg c "$1" '.[] | select(.cidr == $c) | .hits'; }

# assert_hits CIDR=N...: every listed prefix has exactly that many hits.
assert_hits() {
	local list pair
	list=$(cidr list --json)
	for pair in "$@"; do
		assert_eq "hits of ${pair%=*}" "${pair##*=}" \
			"$(jq --arg c "${pair%=*}" '.[] | select(.cidr == $c) | .hits' <<<"$list")"
	done
}

# --- the longest prefix wins ----------------------------------------------------

@test "IPv4: nested /0 /8 /16 /24 /32 with alternating actions: the longest prefix wins" {
	add 0.0.0.0/0 deny
	add 10.0.0.0/8 allow
	add 10.1.0.0/16 deny
	add 10.1.2.0/24 allow
	add 10.1.2.3/32 deny
	local s=192.0.2.1
	stats_save
	expect $DENY "/0 only" $s 11.0.0.1
	expect $DENY "/0, just below /8" $s 9.255.255.255
	expect $PASS "/8" $s 10.200.0.1
	expect $PASS "/8, its last address" $s 10.255.255.255
	expect $DENY "/16" $s 10.1.200.1
	expect $DENY "/16, first address after the /24" $s 10.1.3.0
	expect $PASS "/24" $s 10.1.2.200
	expect $PASS "/24, next to the /32" $s 10.1.2.2
	expect $PASS "/24, other side of the /32" $s 10.1.2.4
	expect $DENY "/32" $s 10.1.2.3
	local delta
	delta=$(stats_delta_json)
	assert_eq "ip_range_hit ($delta)" 10 "$(jq '.ip_range_hit // 0' <<<"$delta")"
	assert_eq "default_hit ($delta)" 0 "$(jq '.default_hit // 0' <<<"$delta")"
	assert_eq "denied ($delta)" 5 "$(jq '.denied // 0' <<<"$delta")"
	assert_hits 0.0.0.0/0=2 10.0.0.0/8=2 10.1.0.0/16=2 10.1.2.0/24=3 10.1.2.3/32=1
	# deleting the longest prefix hands its addresses to the next one
	cidr del 10.1.2.3/32 >/dev/null
	expect $PASS "/24 after the /32 is gone" $s 10.1.2.3
	cidr del 10.1.2.0/24 >/dev/null
	expect $DENY "/16 after the /24 is gone" $s 10.1.2.3
	cidr del 10.1.0.0/16 >/dev/null
	expect $PASS "/8 after the /16 is gone" $s 10.1.2.3
	cidr del 10.0.0.0/8 >/dev/null
	expect $DENY "/0 after the /8 is gone" $s 10.1.2.3
	assert_hits 0.0.0.0/0=3
}

@test "IPv6: nested ::/0 /32 /64 /128 with alternating actions: the longest prefix wins" {
	add ::/0 allow
	add 2001:db8::/32 deny
	add 2001:db8:1:2::/64 allow
	add 2001:db8:1:2::3/128 deny
	local s=fd00:99::1
	stats_save
	expect $PASS "::/0 only" $s 2001:db9::1
	expect $PASS "::/0, just below the /32" $s 2001:db7:ffff:ffff:ffff:ffff:ffff:ffff
	expect $DENY "/32" $s 2001:db8:ffff::1
	expect $DENY "/32, first address after the /64" $s 2001:db8:1:3::
	expect $PASS "/64" $s 2001:db8:1:2:ffff::1
	expect $PASS "/64, next to the /128" $s 2001:db8:1:2::2
	expect $PASS "/64, other side of the /128" $s 2001:db8:1:2::4
	expect $DENY "/128" $s 2001:db8:1:2::3
	local delta
	delta=$(stats_delta_json)
	assert_eq "ip_range_hit ($delta)" 8 "$(jq '.ip_range_hit // 0' <<<"$delta")"
	assert_eq "denied ($delta)" 3 "$(jq '.denied // 0' <<<"$delta")"
	assert_hits ::/0=2 2001:db8::/32=2 2001:db8:1:2::/64=3 2001:db8:1:2::3/128=1
	cidr del 2001:db8:1:2::3/128 >/dev/null
	expect $PASS "/64 after the /128 is gone" $s 2001:db8:1:2::3
	cidr del 2001:db8:1:2::/64 >/dev/null
	expect $DENY "/32 after the /64 is gone" $s 2001:db8:1:2::3
}

# --- destination before source ------------------------------------------------------

dst_before_src() {
	local a_net=$1 a_host=$2 a_longer=$3 b_net=$4 b_host=$5 other=$6
	add "$a_net" deny
	add "$a_longer" allow
	add "$b_net" allow
	stats_save
	expect $PASS "dst's prefix decides, not the source's" "$a_host" "$b_host"
	expect $DENY "the other way round" "$b_host" "$a_host"
	# the destination decides even when the source has a longer prefix
	expect $DENY "dst's short prefix over src's host prefix" "${a_longer%/*}" "$a_host"
	# no prefix contains the destination: the source's decides
	expect $DENY "src decides when dst matches nothing" "$a_host" "$other"
	expect $PASS "src's longest prefix" "${a_longer%/*}" "$other"
	# neither: the default
	expect $PASS "nothing matches: default allow" "$other" "$other"
	local delta
	delta=$(stats_delta_json)
	assert_eq "ip_range_hit ($delta)" 5 "$(jq '.ip_range_hit // 0' <<<"$delta")"
	assert_eq "default_hit ($delta)" 1 "$(jq '.default_hit // 0' <<<"$delta")"
	assert_hits "$a_net=3" "$a_longer=1" "$b_net=1"
}

@test "IPv4: the destination's prefix decides before the source's" {
	dst_before_src 10.0.0.0/8 10.1.1.1 10.9.9.9/32 192.168.0.0/16 192.168.1.1 172.16.0.1
}

@test "IPv6: the destination's prefix decides before the source's" {
	dst_before_src fd00:a::/32 fd00:a::1 fd00:a::99/128 fd00:b::/48 fd00:b::1 fd00:c::1
}

# --- exact rules first, the default last ---------------------------------------------

exact_first() {
	local s=$1 d=$2 net=$3
	add "$net" deny
	mseg_rule add --src "$s" --dst "$d" --proto udp --dport 9 --action allow >/dev/null
	rule_track --src "$s" --dst "$d" --proto udp --dport 9
	stats_save
	expect $PASS "an exact allow inside a CIDR deny" "$s" "$d"
	expect $DENY "another port: the CIDR deny" "$s" "$d" --dport 10
	local delta
	delta=$(stats_delta_json)
	assert_eq "policy_hit ($delta)" 1 "$(jq '.policy_hit // 0' <<<"$delta")"
	assert_eq "ip_range_hit ($delta)" 1 "$(jq '.ip_range_hit // 0' <<<"$delta")"
	assert_hits "$net=1"
	# and an exact deny inside a CIDR allow
	add "$net" allow
	mseg_rule add --src "$s" --dst "$d" --proto udp --dport 11 --action deny >/dev/null
	rule_track --src "$s" --dst "$d" --proto udp --dport 11
	expect $DENY "an exact deny inside a CIDR allow" "$s" "$d" --dport 11
	expect $PASS "the CIDR allow elsewhere" "$s" "$d" --dport 12
}

@test "IPv4: exact rules are looked up before CIDR rules" { exact_first 10.60.0.1 10.70.0.2 10.70.0.0/16; }
@test "IPv6: exact rules are looked up before CIDR rules" { exact_first fd00:60::1 fd00:70::2 fd00:70::/32; }

default_last() {
	local s=$1 inside=$2 outside=$3 net=$4
	add "$net" allow
	set_default deny
	stats_save
	expect $PASS "inside the allowed prefix" "$s" "$inside"
	expect $DENY "nothing matches: default deny" "$s" "$outside"
	local delta
	delta=$(stats_delta_json)
	assert_eq "default_hit ($delta)" 1 "$(jq '.default_hit // 0' <<<"$delta")"
	assert_eq "ip_range_hit ($delta)" 1 "$(jq '.ip_range_hit // 0' <<<"$delta")"
	set_default allow
	expect $PASS "nothing matches: default allow" "$s" "$outside"
	assert_hits "$net=1"
}

@test "IPv4: the default action decides when no prefix matches" { default_last 10.80.0.1 10.5.1.1 10.6.1.1 10.5.0.0/16; }
@test "IPv6: the default action decides when no prefix matches" { default_last fd00:80::1 fd00:5::1 fd00:6::1 fd00:5::/32; }

# --- the family byte ------------------------------------------------------------------

@test "an IPv6 ::/0 deny does not touch IPv4, an IPv4 0.0.0.0/0 deny does not touch IPv6" {
	add ::/0 deny
	stats_save
	expect $PASS "IPv4 under ::/0 deny" 10.90.0.1 10.91.0.1
	expect $DENY "IPv6 under ::/0 deny" fd00:90::1 fd00:91::1
	# IPv4-mapped addresses in an IPv6 header are neither: dropped before
	# any rule (v4_mapped), as Linux drops them (RFC 4291 2.5.5.2)
	expect $DENY "IPv6 with IPv4-mapped addresses" ::ffff:10.90.0.1 ::ffff:10.91.0.1
	local delta
	delta=$(stats_delta_json)
	assert_eq "default_hit ($delta)" 1 "$(jq '.default_hit // 0' <<<"$delta")"
	assert_eq "ip_range_hit ($delta)" 1 "$(jq '.ip_range_hit // 0' <<<"$delta")"
	assert_eq "v4_mapped ($delta)" 1 "$(jq '.v4_mapped // 0' <<<"$delta")"
	cidr del ::/0 >/dev/null
	add 0.0.0.0/0 deny
	stats_save
	expect $DENY "IPv4 under 0.0.0.0/0 deny" 10.90.0.1 10.91.0.1
	expect $PASS "IPv6 under 0.0.0.0/0 deny" fd00:90::1 fd00:91::1
	expect $DENY "IPv6 with IPv4-mapped addresses" ::ffff:10.90.0.1 ::ffff:10.91.0.1
	delta=$(stats_delta_json)
	assert_eq "default_hit ($delta)" 1 "$(jq '.default_hit // 0' <<<"$delta")"
	assert_eq "ip_range_hit ($delta)" 1 "$(jq '.ip_range_hit // 0' <<<"$delta")"
	# both at once: each family its own
	add ::/0 allow
	set_default deny
	expect $DENY "IPv4 with both /0" 10.90.0.1 10.91.0.1
	expect $PASS "IPv6 with both /0" fd00:90::1 fd00:91::1
	assert_hits 0.0.0.0/0=2 ::/0=1
}

# --- counters and the log action ----------------------------------------------------

cidr_log() {
	local s=$1 d=$2 net=$3
	add "$net" log
	stats_save
	expect $PASS "a CIDR log passes" "$s" "$d"
	local delta
	delta=$(stats_delta_json)
	assert_eq "logged ($delta)" 1 "$(jq '.logged // 0' <<<"$delta")"
	assert_eq "allowed ($delta)" 1 "$(jq '.allowed // 0' <<<"$delta")"
	assert_eq "ip_range_hit ($delta)" 1 "$(jq '.ip_range_hit // 0' <<<"$delta")"
	assert_eq "new_session ($delta)" 1 "$(jq '.new_session // 0' <<<"$delta")"
	[[ $(session_count ".src == \"$s\" and .dst == \"$d\" and .action == \"log\"") == 1 ]] || {
		echo "no session cached as log:" >&2
		sessions_json >&2
		return 1
	}
	# the session answers the next packets: no further lookups, no hits
	stats_save
	assert_eq "same flow again" $PASS "$(verdict --src "$s" --dst "$d" --proto udp --sport "$NEXT_PORT" --dport 9)"
	assert_eq "ip_range_hit of a session hit" 0 "$(stat_delta ip_range_hit)"
	assert_hits "$net=1"
}

@test "IPv4: a CIDR log rule passes and logs; hits count new flows only" { cidr_log 10.100.0.1 10.101.0.1 10.101.0.0/16; }
@test "IPv6: a CIDR log rule passes and logs; hits count new flows only" { cidr_log fd00:100::1 fd00:101::1 fd00:101::/32; }

# --- rule changes re-judge open sessions ---------------------------------------------

rejudge() {
	local s=$1 d=$2 net=$3 client_net=$4
	local c="--src $s --dst $d --proto tcp --sport 45000 --dport 8000"
	local r="--src $d --dst $s --proto tcp --sport 8000 --dport 45000"
	# shellcheck disable=SC2086
	{
		assert_eq "SYN" $PASS "$(verdict $c --flags S --seq 100)"
		assert_eq "SYN+ACK" $PASS "$(verdict $r --flags SA --seq 500 --ack 101)"
		assert_eq "ACK" $PASS "$(verdict $c --flags A --seq 101 --ack 501)"
	}
	assert_session tcp "$s" 45000 "$d" 8000 ESTABLISHED
	local gen seq=101 delta
	gen=$(config_get policy_gen)
	add "$net" deny
	(($(config_get policy_gen) != gen)) || {
		echo "policy_gen did not move on a CIDR change" >&2
		return 1
	}
	stats_save
	# shellcheck disable=SC2086
	assert_eq "next packet after a CIDR deny" $DENY "$(verdict $c --flags PA --seq $seq --ack 501 --payload 10)"
	delta=$(stats_delta_json)
	assert_eq "rejudged ($delta)" 1 "$(jq '.rejudged // 0' <<<"$delta")"
	assert_eq "denied ($delta)" 1 "$(jq '.denied // 0' <<<"$delta")"
	# shellcheck disable=SC2086
	assert_eq "reply direction too" $DENY "$(verdict $r --flags A --seq 501 --ack 111)"
	# changing the action (same prefix) lets it through again
	add "$net" allow
	stats_save
	# shellcheck disable=SC2086
	assert_eq "after the CIDR turns allow" $PASS "$(verdict $c --flags PA --seq $seq --ack 501 --payload 10)"
	assert_eq "rejudged after the update" 1 "$(stat_delta rejudged)"
	# a deny on the client's prefix: judged as originator -> responder, the
	# responder's side matches nothing, so the originator's prefix decides
	cidr del "$net" >/dev/null
	add "$client_net" deny
	# shellcheck disable=SC2086
	assert_eq "after a deny on the client's prefix" $DENY "$(verdict $r --flags A --seq 501 --ack 121)"
	cidr del "$client_net" >/dev/null
	stats_save
	# shellcheck disable=SC2086
	assert_eq "after the CIDR is deleted" $PASS "$(verdict $c --flags PA --seq $((seq + 10)) --ack 501 --payload 10)"
	assert_eq "rejudged after the delete" 1 "$(stat_delta rejudged)"
	assert_session tcp "$s" 45000 "$d" 8000 ESTABLISHED
}

@test "IPv4: a CIDR change re-judges an open TCP session" { rejudge 10.110.0.1 10.111.0.2 10.111.0.0/16 10.110.0.0/16; }
@test "IPv6: a CIDR change re-judges an open TCP session" { rejudge fd00:110::1 fd00:111::2 fd00:111::/32 fd00:110::/32; }

# --- randomized, against a reference -------------------------------------------------------

@test "randomized: 1,000 prefixes and 10,000 packets of both families, each verdict and hit equals Python's ipaddress LPM" {
	local dir=$BATS_TEST_TMPDIR/fuzz seed=${MSEG_FUZZ_SEED:-$((RANDOM * 32768 + RANDOM))}
	mkdir -p "$dir"
	# printed with the failure, so a failing draw can be replayed
	echo "seed $seed (replay: MSEG_FUZZ_SEED=$seed)"
	set_default deny
	run "$MSEG_PYTHON" "$MSEG_HELPERS/cidr-fuzz.py" gen --dir "$dir" --seed "$seed" \
		--prefixes 1000 --packets 10000
	echo "$output"
	[[ $status == 0 ]]
	# one mseg apply loads every prefix, as `cidr add` statements
	"$MSEG_SCRIPTS/mseg" apply "$dir/load.rules" >/dev/null
	[[ $(cidr list --json | jq length) == 1000 ]]
	stats_save
	# one process runs every frame (BPF_PROG_TEST_RUN, one syscall each)
	"$MSEG_BUILD/mseg-testrun" --prog-id "$PROG_ID" "$dir/frames.hex" >"$dir/verdicts"
	cidr list --json >"$dir/list.json"
	run "$MSEG_PYTHON" "$MSEG_HELPERS/cidr-fuzz.py" check --dir "$dir" \
		--verdicts "$dir/verdicts" --list "$dir/list.json"
	echo "$output"
	[[ $status == 0 ]]
	# the counters agree: one lookup result per new flow
	local decided mapped delta
	decided=$(jq '[.[] | select(.by != null)] | length' "$dir/expect.json")
	mapped=$(jq '[.[] | select(.action == "v4_mapped")] | length' "$dir/expect.json")
	delta=$(stats_delta_json)
	assert_eq "ip_range_hit ($delta)" "$decided" "$(jq '.ip_range_hit // 0' <<<"$delta")"
	assert_eq "default_hit ($delta)" $((10000 - decided - mapped)) "$(jq '.default_hit // 0' <<<"$delta")"
	assert_eq "v4_mapped ($delta)" "$mapped" "$(jq '.v4_mapped // 0' <<<"$delta")"
	assert_eq "total ($delta)" 10000 "$(jq '.total // 0' <<<"$delta")"
	# the draw covered both families, every action, the source lookup,
	# the default and IPv4-mapped IPv6 (dropped before any rule)
	jq -e '[.[] | select(.by != null and (.dst | contains(":")))] | length > 1000' "$dir/expect.json" >/dev/null
	jq -e '[.[] | select(.by != null and (.dst | contains(":") | not))] | length > 1000' "$dir/expect.json" >/dev/null
	jq -e '[.[] | .action] | unique == ["allow", "deny", "log", "v4_mapped"]' "$dir/expect.json" >/dev/null
	jq -e '[.[] | select(.by == null and .action != "v4_mapped")] | length > 100' "$dir/expect.json" >/dev/null
	jq -e '[.[] | select(.side == "src")] | length > 100' "$dir/expect.json" >/dev/null
}
