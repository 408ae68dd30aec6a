#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Attacks 5, 7 and 8 of issue 2/6 against real sockets: floods of spoofed
# packets (hping3, bounded in count) from an attacker namespace behind the
# router (lab_attacker_setup), through a 2048-entry build of mseg (levels:
# warning above 1638 entries, critical above 1843, degradation above 1945),
# with `mseg gc --interval 1` running as its service would. During a flood
# an established connection keeps talking and new connections that an exact
# rule allows open; right after it, any new connection opens again and the
# pressure falls, without waiting for the 5-day timeout; and with no packet
# at all, the level and the flood flag fall within two gc sweeps of the
# table emptying.

# shellcheck disable=SC2153 # LAB_C, LAB_S, ...: set by lab_setup (lab.bash)

load helpers/common
load helpers/lab

setup_file() {
	require_build
	need "hping3 (scripts/mseg-deps)" command -v hping3
	SMALL=$BATS_FILE_TMPDIR/build
	make -s -C "$MSEG_ROOT" BUILD="$SMALL" MSEG_MAX_SESSIONS=2048 >/dev/null
	export SMALL
}

setup() {
	require_build
	export MSEG_OBJ=$SMALL/mseg.bpf.o MSEG_ABI_BIN=$SMALL/mseg-abi MSEG_GC_BIN=$SMALL/mseg-gc
	lab_setup
	lab_attacker_setup
	lab_start_servers 200
	rules_track_init
	# the new connections an exact rule allows: client -> server:5002
	mseg_rule add --src "$LAB_C4" --dst "$LAB_S4" --proto tcp --dport 5002 --action allow
	rule_track --src "$LAB_C4" --dst "$LAB_S4" --proto tcp --dport 5002
	GC_JSON=$LAB_DIR/gc.json
	_lab_bg "$LAB_R" "$GC_JSON" timeout 300 "$MSEG_SCRIPTS/mseg" gc --interval 1 --json
}

teardown() {
	lab_teardown
}

monitor_field() { mseg monitor --once --json | jq -r ".$1"; }

# flood HPING3-OPTIONS...: a bounded flood at the server from the attacker
# namespace, spoofed sources, in the background; FLOOD_PID is its pid.
flood() {
	_lab_bg "$LAB_A" "$LAB_DIR/flood.log" timeout 60 hping3 -q --rand-source "$@" "$LAB_S4"
	FLOOD_PID=${LAB_PIDS[-1]}
}

# pressure_falls: wait (30 s at most, gc sweeping every second) until the
# table has left degradation and the flood flag is down; prints how long it
# took (the sessions the flood opened live flood_syn_timeout, 5 s, under
# pressure).
pressure_falls() {
	local t0=$SECONDS
	# shellcheck disable=SC2016 # expanded by the inner bash
	wait_until 300 bash -c '"$0" monitor --once --json |
		jq -e ".level != \"degraded\" and .flood == false" >/dev/null' \
		"$MSEG_SCRIPTS/mseg" || {
		echo "still under pressure after 30 s: $(mseg monitor --once)" >&2
		return 1
	}
	echo "the table left degradation and the flood $((SECONDS - t0)) s after the flood"
}

# new_connections PORT N: N new connections to the server's echo on PORT,
# one after the other; prints how many worked.
new_connections() {
	local i ok=0
	for ((i = 0; i < $2; i++)); do
		lab_tcp_connect "$LAB_S4" "$1" 2 >/dev/null 2>&1 && ok=$((ok + 1))
	done
	echo "$ok"
}

# established_still: connection c1 (to port 5001) still works and its
# session is ESTABLISHED; a later connection may reuse its source port
# towards another port, so the session is told by both ports.
established_still() {
	[ "$(lab_conn_send c1)" = ok ]
	assert_eq "mseg sessions: the connection made before the flood" ESTABLISHED \
		"$(sessions_json | jq -r --argjson p "$LAB_CONN_SPORT" 'select(.sport == $p and .dport == 5001) | .state')"
}

@test "lab attack 5: a spoofed ACK flood: the exact rule's connections open during it, any connection right after, the pressure falls" {
	lab_conn_open c1 "$LAB_S4" 5001
	# 2500 spoofed ACKs at once, then more, slowly, while we work
	ip netns exec "$LAB_A" timeout 60 hping3 -q --rand-source -A -p 5001 -c 2500 -i u50 \
		"$LAB_S4" >/dev/null 2>&1 || true
	# unconfirmed sessions, counted as half-open, shown in mseg sessions
	# (they live 5 s under pressure: the count falls as the test goes on)
	(($(monitor_field half_open) > 1800))
	[ "$(mseg sessions --json | jq '[.[] | select(.pickup and .confirmed == false)] | length')" -gt 100 ]
	flood -A -p 5001 -c 4000 -i u1000
	echo "during: $(mseg monitor --once)"
	(($(monitor_field degrade_count) >= 1))
	established_still
	[ "$(new_connections 5002 5)" = 5 ]
	wait "$FLOOD_PID" || true
	stats_save
	pressure_falls
	[ "$(new_connections 5003 3)" = 3 ]
	(($(monitor_field pressure_pct) < 50))
	[ "$(monitor_field flood)" = false ]
	established_still
}

@test "lab attack 7: a spoofed DNS flood: the exact rule's connections all open during it, any connection right after" {
	# unanswered queries live 10 s once the pressure is off (30 by default)
	mseg config set timeout_udp 10
	lab_conn_open c1 "$LAB_S4" 5001
	stats_save
	flood --udp -p 53 -c 15000 -i u100
	wait_until 100 stat_above total 3000
	local ok
	ok=$(new_connections 5002 12)
	echo "during: $(mseg monitor --once); exact-rule connections: $ok of 12"
	[ "$ok" = 12 ]
	established_still
	wait "$FLOOD_PID" || true
	echo "counters: $(stats_delta_json)"
	(($(stat_delta early_drop) > 1000))
	[ "$(stat_delta map_full)" = 0 ]
	pressure_falls
	[ "$(new_connections 5003 3)" = 3 ]
	# the queries left live timeout_udp once the pressure is off: gc
	# reclaims them as they expire
	# shellcheck disable=SC2016 # expanded by the inner bash
	wait_until 300 bash -c '(($("$0" monitor --once --json | jq .pressure_pct) < 50))' \
		"$MSEG_SCRIPTS/mseg"
	established_still
}

@test "lab attack 8: after a SYN flood, with no packet arriving, level and flood flag fall within two gc sweeps of the table emptying" {
	mseg config set flood_syn_rate 200
	# long enough for the flood to be over before its sessions expire
	mseg config set flood_syn_timeout 8
	lab_conn_open c1 "$LAB_S4" 5001
	ip netns exec "$LAB_A" timeout 60 hping3 -q --rand-source -S -p 5001 -c 3000 -i u100 \
		"$LAB_S4" >/dev/null 2>&1 || true
	echo "after the flood: $(mseg monitor --once)"
	# no packet can reach the classifier from here on (the router's ends of
	# the filtered links are down; the client keeps its routes)
	ip -n "$LAB_R" link set "$LAB_RA" down
	ip -n "$LAB_R" link set "$LAB_RC" down
	sleep 0.2
	local total lines
	total=$(stat_get total)
	# the sweeps that follow: first still under pressure, then the table
	# empties (but for c1's session), and within two more sweeps the level
	# and the flag are down
	# shellcheck disable=SC2016 # jq code
	local cond='(map(.level == "degraded" and .flood) | index(true)) as $p
		| (map(.sessions <= 1) | index(true)) as $i
		| $p != null and $i != null and $i >= $p and length > $i + 2
		and (.[$i + 2].level == "ok" and .[$i + 2].flood == false)'
	local from
	from=$(wc -l <"$GC_JSON")
	# shellcheck disable=SC2016 # expanded by the inner bash
	wait_until 150 bash -c 'tail -n +"$2" "$0" | jq -e -s "$1" >/dev/null' \
		"$GC_JSON" "$cond" $((from + 1)) || {
		echo "gc sweeps since the flood:" >&2
		tail -n +$((from + 1)) "$GC_JSON" | tail -n 10 >&2
		return 1
	}
	lines=$(tail -n +$((from + 1)) "$GC_JSON")
	echo "$lines" | jq -c '{sessions, deleted, level, flood}'
	assert_eq "packets the classifier saw meanwhile" "$total" "$(stat_get total)"
	[ "$(monitor_field level)" = ok ]
	[ "$(monitor_field flood)" = false ]
	ip -n "$LAB_R" link set "$LAB_RC" up
	established_still
}
