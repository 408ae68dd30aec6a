#!/usr/bin/env bats
# Session-table pressure, degradation and SYN floods (issue 4/6), on a
# build with a 1024-entry table: levels at their exact thresholds, what a
# degraded or full table still admits, pressure falling after expiry, the
# flood flag rising and clearing, and an established connection surviving a
# real SYN flood.
#
# Thresholds for 1024 entries, "above" compared exactly: warning at 820
# entries (> 80 %), critical at 922 (> 90 %), degradation at 973 (> 95 %).

# shellcheck disable=SC2154,SC2153 # bats sets $stderr; lab.bash sets LAB_R
bats_require_minimum_version 1.5.0

load helpers/common
load helpers/lab
load helpers/series

setup_file() {
  SMALL="$BATS_FILE_TMPDIR/build"
  make -s -C "$MSEG_ROOT" BUILD="$SMALL" MSEG_MAX_SESSIONS=1024 >/dev/null
  export SMALL
}

setup() {
  export MSEG_OBJ="$SMALL/mseg.bpf.o" MSEG_ABI_BIN="$SMALL/mseg-abi"
  export MSEG_GC_BIN="$SMALL/mseg-gc"
}

teardown() {
  if [[ -n ${LAB_C:-} ]]; then
    lab_teardown
  fi
  crafted_teardown
}

# fill N [FIRST [EXPIRED]]: N synthetic ESTABLISHED sessions.
fill() {
  "$SMALL/mseg-fill" --count "$1" --first "${2:-0}" --expired "${3:-0}" \
    --idle 130 >/dev/null
}

entries() { map_dump mseg_sessions | jq length; }

# syn SPORT [DPORT]: verdict on a new TCP SYN from 10.9.0.1:SPORT.
syn() {
  verdict --proto tcp --src 10.9.0.1 --dst 10.9.0.2 --sport "$1" \
    --dport "${2:-80}" --flags S
}

monitor_json() { mseg monitor --once --json; }

monitor_field() { monitor_json | jq -r ".$1"; }

# flows N PROTO FIRST_SPORT [mseg-pkt options]: N new flows from
# 10.8.0.1:FIRST_SPORT.. to 10.8.0.2 (port 9000 unless told), fed to the
# data path in one process; prints the verdict counts ("0:820", "2:10").
flows() {
  local n=$1 proto=$2 sport=$3
  shift 3
  local -a extra=(--dport 9000)
  [[ $proto == tcp ]] && extra+=(--flags S)
  feed_series "$n" "$proto" sport "$sport" --src 10.8.0.1 --dst 10.8.0.2 "${extra[@]}" "$@"
}

# expect_load N LEVEL "W C D": what the data path reports in mseg monitor:
# N sessions, pressure N/1024 rounded down, LEVEL, and how many times the
# warning, critical and degraded levels were entered so far.
expect_load() {
  local mon
  mon=$(monitor_json)
  assert_eq "monitor: sessions pressure_pct level entered ($mon)" \
    "$1 $(($1 * 100 / 1024)) $2 $3" \
    "$(jq -r '"\(.sessions) \(.pressure_pct) \(.level) \(.warn_count) \(.crit_count) \(.degrade_count)"' <<<"$mon")"
}

# status_sessions N: mseg status counts N sessions too.
status_sessions() {
  assert_eq "mseg status --json .sessions" "$1" "$(mseg status --json | jq .sessions)"
}

# pins_snapshot: every pinned map (id, type, capacity), the config, the
# rules and the session keys: what a refused attach must leave alone.
pins_snapshot() {
  local p
  for p in "$TC_BPF_MNT"/tc/globals/*; do
    bpftool -j map show pinned "$p" | jq -c '[.name, .id, .type, .max_entries]'
  done
  map_dump mseg_config | jq -c .
  map_dump mseg_source | jq -c .
  map_dump mseg_sessions | jq -c '[.[].key] | sort'
}

@test "levels: warning above 80%, critical above 90%, degradation above 95%, each exact" {
  crafted_setup
  fill 819
  [ "$(syn 1000)" = 0 ]  # decided at 819 entries: 81900 <= 81920
  [ "$(monitor_field level)" = ok ]
  [ "$(syn 1001)" = 0 ]  # decided at 820
  [ "$(monitor_field level)" = warning ]
  [ "$(monitor_field warn_count)" = 1 ]

  fill 100 5000000     # 921 entries
  [ "$(syn 1002)" = 0 ]
  [ "$(monitor_field level)" = warning ]
  [ "$(syn 1003)" = 0 ]  # decided at 922
  [ "$(monitor_field level)" = critical ]

  fill 49 6000000      # 972 entries
  [ "$(syn 1004)" = 0 ]
  [ "$(monitor_field level)" = critical ]
  [ "$(syn 1005)" = "$TC_ACT_SHOT" ]  # decided at 973: degraded, dropped
  [ "$(monitor_field level)" = degraded ]
  [ "$(stat_get pressure_drop)" = 1 ]
  [ "$(stat_get map_full)" = 0 ]
  [ "$(entries)" = 973 ]
}

@test "degraded: only ICMP, DNS and explicitly allowed exact rules open sessions" {
  crafted_setup
  mseg_rule add --src 10.9.0.1 --dst 10.9.0.2 --proto tcp --dport 8080 --action allow
  mseg_rule add --src 10.9.0.1 --dst 10.9.0.2 --proto tcp --dport 8443 --action log
  fill 980
  [ "$(syn 2000)" = "$TC_ACT_SHOT" ]                       # default allow: dropped
  [ "$(stat_get pressure_drop)" = 1 ]
  [ "$(verdict --proto icmp --src 10.9.0.1 --dst 10.9.0.2 --icmp-type 8 --icmp-id 7)" = 0 ]
  [ "$(verdict --proto icmpv6 --src fd00::1 --dst fd00::2 --icmp-type 128 --icmp-id 7)" = 0 ]
  [ "$(verdict --proto udp --src 10.9.0.1 --dst 10.9.0.2 --sport 3333 --dport 53)" = 0 ]
  [ "$(syn 2001 53)" = 0 ]
  [ "$(syn 2002 8080)" = 0 ]
  [ "$(syn 2003 8443)" = 0 ]
  [ "$(stat_get pressure_drop)" = 1 ]
  # The exact rules' flows got sessions in the slots kept for them. Above
  # the degradation line DNS and ICMP only recycle an unanswered non-TCP
  # session; there is none here: they passed without one.
  [ "$(entries)" = 982 ]
  [ "$(monitor_field refused)" = 4 ]
  # An existing session's packets pass as before: the server answers 8080.
  [ "$(verdict --proto tcp --src 10.9.0.2 --dst 10.9.0.1 --sport 8080 --dport 2002 \
    --flags SA --seq 5000 --ack 1001)" = 0 ]
  # A deny rule still denies, degraded or not.
  mseg_rule add --src 10.9.0.1 --dst 10.9.0.2 --proto tcp --dport 9000 --action deny
  [ "$(syn 2004 9000)" = "$TC_ACT_SHOT" ]
  [ "$(stat_get denied)" -ge 1 ]
  [ "$(stat_get pressure_drop)" = 1 ]
}

@test "degraded: failsafe flows open sessions in the slots kept for the flows a rule allows (DNS only recycles); off, they are refused" {
  crafted_setup
  printf 'default deny\n' | mseg apply - >/dev/null
  fill 980
  # docs/policy.md: a failsafe is a rule; its flows are admitted as a rule's
  [ "$(syn 2100 22)" = 0 ]
  [ "$(verdict --proto udp --src 10.9.0.1 --dst 10.9.0.2 --sport 2101 --dport 123)" = 0 ]
  [ "$(entries)" = 982 ]
  [ "$(mseg sessions --json --rule failsafe | jq -c 'map(.dport) | sort')" = '[22,123]' ]
  # DNS a failsafe allows is DNS: above the line it only recycles an
  # unanswered non-TCP session; there is none: it passes without one
  [ "$(verdict --proto udp --src 10.9.0.1 --dst 10.9.0.2 --sport 2106 --dport 53)" = 0 ]
  [ "$(entries)" = 982 ]
  [ "$(syn 2102 80)" = "$TC_ACT_SHOT" ]    # default deny
  mseg failsafe off >/dev/null
  [ "$(syn 2103 22)" = "$TC_ACT_SHOT" ]
  mseg failsafe default >/dev/null
  # default allow: a flow nothing but the default allows is a pressure drop
  mseg default allow >/dev/null
  stats_save
  [ "$(syn 2104 8080)" = "$TC_ACT_SHOT" ]
  [ "$(stat_delta pressure_drop)" = 1 ]
  [ "$(syn 2105 22)" = 0 ]
  [ "$(stat_delta pressure_drop)" = 1 ]
  [ "$(entries)" = 983 ]
}

# echo_sessions: "port_lo:replied" of every ICMP session, sorted (an echo
# request's key holds its identifier on the requester's side, 0 on the other).
echo_sessions() {
  map_formatted mseg_sessions | jq -s -r \
    '[.[] | select(.key.proto == 1) | "\(.key.port_lo):\(.value.flags % 2)"] | sort | join(" ")'
}

@test "degraded: early drop takes an unanswered echo, never one whose reply found its session" {
  crafted_setup
  fill 960
  # A (id 7) is answered: the reply finds the request's session (the
  # replier's port is 0 on both) and confirms it; B (id 8) is not.
  [ "$(verdict --proto icmp --src 10.9.0.1 --dst 10.9.0.2 --icmp-type 8 --icmp-id 7)" = 0 ]
  [ "$(verdict --proto icmp --src 10.9.0.2 --dst 10.9.0.1 --icmp-type 0 --icmp-id 7)" = 0 ]
  [ "$(verdict --proto icmp --src 10.9.0.1 --dst 10.9.0.2 --icmp-type 8 --icmp-id 8)" = 0 ]
  [ "$(echo_sessions)" = "7:1 8:0" ]
  fill 20 960
  stats_save
  # Degraded: a DNS query only recycles an unanswered non-TCP session. The
  # ring holds A before B; A answered is skipped, B goes.
  [ "$(verdict --proto udp --src 10.9.0.1 --dst 10.9.0.2 --sport 3333 --dport 53)" = 0 ]
  [ "$(stat_delta early_drop)" = 1 ]
  [ "$(stat_delta new_session)" = 1 ]
  [ "$(echo_sessions)" = "7:1" ]
  # The next query recycles the first one's session, still not A.
  [ "$(verdict --proto udp --src 10.9.0.1 --dst 10.9.0.2 --sport 3334 --dport 53)" = 0 ]
  [ "$(stat_delta early_drop)" = 2 ]
  [ "$(echo_sessions)" = "7:1" ]
}

@test "full table: refused flows count as map_full, admitted ones pass without a session, no established session is evicted" {
  crafted_setup
  mseg_rule add --src 10.9.0.1 --dst 10.9.0.2 --proto tcp --dport 8080 --action allow
  fill 1024
  local before
  before=$(map_dump mseg_sessions | jq -c '[.[].key] | sort')
  [ "$(syn 3000)" = "$TC_ACT_SHOT" ]
  [ "$(stat_get map_full)" = 1 ]
  [ "$(stat_get pressure_drop)" = 0 ]
  # explicitly allowed: passes; every session is established and
  # confirmed, so none may be dropped early to make room for it
  [ "$(syn 3001 8080)" = 0 ]
  [ "$(syn 3002 53)" = 0 ]     # DNS: nothing to recycle, no session
  [ "$(stat_get map_full)" = 2 ]
  [ "$(stat_get new_session)" = 0 ]
  [ "$(monitor_field evictions)" = 0 ]
  [ "$(monitor_field refused)" = 3 ]

  # Without degradation the insertion itself fails: the same order applies.
  mseg config set degrade_pct 100
  [ "$(syn 3003)" = "$TC_ACT_SHOT" ]
  [ "$(syn 3004 8080)" = 0 ]
  [ "$(stat_get map_full)" = 4 ]
  [ "$(stat_get pressure_drop)" = 0 ]
  # Every established session is still there, untouched.
  [ "$(map_dump mseg_sessions | jq -c '[.[].key] | sort')" = "$before" ]
}

@test "filled through the data path: exact counts, each level at its threshold, drops, then back down after RST and gc" {
  crafted_setup
  # The frames are mseg-pkt's own, port for port.
  series_check 820 tcp sport 20000 --src 10.8.0.1 --dst 10.8.0.2 --dport 9000 --flags S
  series_check 51 udp sport 40000 --src 10.8.0.1 --dst 10.8.0.2 --dport 53
  series_check 820 tcp dport 20000 --src 10.8.0.2 --dst 10.8.0.1 --sport 9000 --flags RA --ack 1001
  # UDP sessions must outlive the test, however slow the machine, even
  # while the table is flooded (820 half-open) or degraded.
  mseg config set timeout_udp 3600
  mseg config set flood_syn_timeout 3600

  # 820 SYNs: the last one is decided at 819 entries, not above 80 %.
  [ "$(flows 820 tcp 20000)" = 0:820 ]
  expect_load 820 ok "0 0 0"
  status_sessions 820
  [ "$(monitor_field half_open)" = 820 ]
  [ "$(flows 1 udp 30000)" = 0:1 ]       # decided at 820: warning
  expect_load 821 warning "1 0 0"
  [ "$(flows 101 udp 30001)" = 0:101 ]   # the last decided at 921
  expect_load 922 warning "1 0 0"
  [ "$(flows 1 udp 30102)" = 0:1 ]       # decided at 922: critical
  expect_load 923 critical "1 1 0"
  [ "$(flows 50 udp 30103)" = 0:50 ]     # the last decided at 972
  expect_load 973 critical "1 1 0"
  [ "$(stat_get pressure_drop)" = 0 ]

  # Decided at 973: degraded; this SYN and every new non-DNS flow after it
  # is dropped as a pressure drop, and opens nothing.
  stats_save
  [ "$(flows 1 tcp 20820)" = 2:1 ]
  expect_load 973 degraded "1 1 1"
  [ "$(flows 10 tcp 20821)" = 2:10 ]
  [ "$(flows 10 udp 30153)" = 2:10 ]
  [ "$(stats_delta_json | jq -c '[.pressure_drop, .dropped, .map_full, .new_session]')" = \
    '[21,21,null,null]' ]
  expect_load 973 degraded "1 1 1"

  # Above the degradation line DNS only recycles: each query takes the slot
  # of the oldest unanswered non-TCP session (the UDP flows to port 9000
  # above), so the table does not grow.
  stats_save
  [ "$(flows 51 udp 40000 --dport 53)" = 0:51 ]
  expect_load 973 degraded "1 1 1"
  [ "$(stats_delta_json | jq -c '[.early_drop, .new_session, .map_full]')" = '[51,51,null]' ]
  [ "$(monitor_field evictions)" = 51 ]
  # The flows an exact rule allows take the slots kept for them, up to the
  # last one ...
  mseg_rule add --src 10.8.0.1 --dst 10.8.0.2 --proto udp --dport 7000 --action allow
  [ "$(flows 51 udp 50000 --dport 7000)" = 0:51 ]
  expect_load 1024 degraded "1 1 1"
  # ... then the table is full: other new flows are refused as map_full;
  # DNS and the exact rule's flows still take the slot of an unanswered
  # session, the exact rule's the oldest of all (a half-open SYN_SENT).
  stats_save
  [ "$(flows 5 tcp 20831)" = 2:5 ]
  [ "$(flows 5 udp 30163)" = 2:5 ]
  [ "$(flows 1 udp 40051 --dport 53)" = 0:1 ]
  [ "$(flows 1 udp 50051 --dport 7000)" = 0:1 ]
  [ "$(stats_delta_json | jq -c '[.map_full, .pressure_drop, .dropped, .new_session, .early_drop]')" = \
    '[10,null,10,2,2]' ]
  [ "$(monitor_field refused)" = 10 ]
  [ "$(monitor_field half_open)" = 819 ]
  expect_load 1024 degraded "1 1 1"
  status_sessions 1024

  # The responder resets the 819 half-open connections left: CLOSE,
  # through the state machine, and no longer half-open; the RST of the
  # dropped one finds no session (invalid, passed).
  stats_save
  [ "$(feed_series 820 tcp dport 20000 --src 10.8.0.2 --dst 10.8.0.1 --sport 9000 \
    --flags RA --ack 1001)" = 0:820 ]
  [ "$(stats_delta_json | jq -c '[.session_hit, .tcp_closed, .new_session, .invalid]')" = \
    '[819,819,null,1]' ]
  [ "$(monitor_field half_open)" = 0 ]
  [ "$(mseg sessions --json --state CLOSE | jq length)" = 819 ]

  # CLOSE lasts one second; gc reclaims exactly those, and the pressure is
  # the 205 UDP sessions left: 20 %.
  mseg config set timeout_close 1
  sleep 1.1
  run mseg gc --json
  [ "$status" -eq 0 ]
  [ "$(jq -c '[.deleted, .live, .deleted_half_open]' <<<"$output")" = '[819,205,0]' ]
  [ "$(monitor_field sessions)" = 205 ]
  [ "$(monitor_field pressure_pct)" = 20 ]
  [ "$(monitor_field level)" = ok ]
  # A new flow is admitted, decided at 205 entries: every level is down.
  [ "$(flows 1 tcp 20900)" = 0:1 ]
  expect_load 206 ok "1 1 1"
  status_sessions 206

  # "Above" is strict: at exactly 25 % (256 entries) the warning stays off.
  mseg config set warn_pct 25
  [ "$(flows 51 udp 30200)" = 0:51 ]     # the last decided at 256
  expect_load 257 ok "1 1 1"
  [ "$(flows 1 udp 30251)" = 0:1 ]       # decided at 257
  expect_load 258 warning "2 1 1"
}

@test "attach with the default build refuses a pinned session table of another capacity" {
  crafted_setup   # the maps are pinned by the 1024-entry build
  mseg_rule add --src 10.9.0.1 --dst 10.9.0.2 --proto tcp --dport 22 --action deny
  [ "$(syn 9000)" = 0 ]
  [ "$(map_dump mseg_sessions | jq length)" = 1 ]
  local before prog
  before=$(pins_snapshot)
  prog=$(prog_id "$CRAFT_DEV" "$CRAFT_NS")
  # The default build: its object, its mseg-abi (capacity 262144).
  run --separate-stderr env -u MSEG_OBJ -u MSEG_ABI_BIN -u MSEG_GC_BIN \
    ip netns exec "$CRAFT_NS" "$MSEG_SCRIPTS/mseg" attach "$CRAFT_PEER"
  echo "status $status, stdout '$output', stderr '$stderr'"
  [ "$status" -ne 0 ]
  [ -z "$output" ]
  [ "${#stderr_lines[@]}" -eq 1 ]
  [[ $stderr == "mseg: "*mseg_sessions*1024*262144* ]]
  # Nothing changed: same maps, same entries, no new filter, same program.
  [ "$(pins_snapshot)" = "$before" ]
  [ "$(ip netns exec "$CRAFT_NS" tc -j filter show dev "$CRAFT_PEER" ingress |
    jq '[.[] | select(.kind == "bpf")] | length')" = 0 ]
  [ "$(prog_id "$CRAFT_DEV" "$CRAFT_NS")" = "$prog" ]
  # The build that pinned them attaches as before.
  ip netns exec "$CRAFT_NS" "$MSEG_SCRIPTS/mseg" attach "$CRAFT_PEER" --ingress
}

@test "pressure falls to its true value when sessions expire and gc reclaims them" {
  crafted_setup
  fill 1000 0 900       # 900 of them TIME_WAIT, idle past their timeout
  [ "$(syn 4000)" = "$TC_ACT_SHOT" ]  # 1000 entries held: degraded
  [ "$(monitor_field level)" = degraded ]
  run mseg gc --json
  [ "$status" -eq 0 ]
  [ "$(jq -r .deleted <<<"$output")" = 900 ]
  [ "$(jq -r .live <<<"$output")" = 100 ]
  # The monitor shows the collector's figure at once ...
  [ "$(monitor_field sessions)" = 100 ]
  [ "$(monitor_field pressure_pct)" = 9 ]
  # ... and the next new flow recomputes the level and clears the flags.
  [ "$(syn 4001)" = 0 ]
  [ "$(monitor_field level)" = ok ]
  [ "$(monitor_field sessions)" = 101 ]
}

@test "SYN flood by rate: the flag rises at once, half-open sessions expire early, the flag clears" {
  crafted_setup
  mseg config set flood_syn_rate 5
  mseg config set flood_syn_timeout 1
  [ "$(syn_burst 10.9.0.1 10.9.0.2 80 5000 30)" = 0 ]
  [ "$(monitor_field flood)" = true ]
  [ "$(monitor_field flood_count)" = 1 ]
  [ "$(monitor_field half_open)" = 30 ]
  sleep 1.5
  # Half-open sessions got the 1 s flood timeout, not SYN_SENT's 120 s.
  run mseg gc --json
  [ "$(jq -r .deleted_half_open <<<"$output")" = 30 ]
  [ "$(monitor_field half_open)" = 0 ]
  # The window holding the burst's tail closes at the next packet; the one
  # after it holds a single SYN: the flag clears there.
  [ "$(syn 6000)" = 0 ]
  sleep 1.1
  [ "$(syn 6001)" = 0 ]
  [ "$(monitor_field flood)" = false ]
  [ "$(monitor_field flood_count)" = 1 ]
}

@test "SYN flood by half-open count" {
  crafted_setup
  mseg config set flood_half_open 10
  mseg config set flood_syn_timeout 600   # none expires before the end
  local i
  for ((i = 0; i < 10; i++)); do
    [ "$(syn $((7000 + i)))" = 0 ]
  done
  [ "$(monitor_field flood)" = false ]
  [ "$(syn 7010)" = 0 ]
  [ "$(syn 7011)" = 0 ]
  [ "$(monitor_field flood)" = true ]
  [ "$(monitor_field half_open)" = 12 ]
  # Completing handshakes takes sessions out of half-open.
  [ "$(verdict --proto tcp --src 10.9.0.2 --dst 10.9.0.1 --sport 80 --dport 7000 \
    --flags SA --seq 100 --ack 1001)" = 0 ]
  [ "$(verdict --proto tcp --src 10.9.0.1 --dst 10.9.0.2 --sport 7000 --dport 80 \
    --flags A --seq 1001 --ack 101)" = 0 ]
  [ "$(monitor_field half_open)" = 11 ]
}

@test "monitor: --once prints one line, --json one object, bad arguments are refused" {
  crafted_setup
  fill 10
  [ "$(syn 8000)" = 0 ]
  run mseg monitor --once
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 1 ]
  [[ $output =~ ^Sessions:\ 11\ \|\ Evictions:\ 0\ \|\ Pressure:\ 1%\ \|\ SYN_SENT:\ 1\ \|\ Flood:\ no ]]
  run mseg monitor --json --once
  [ "$status" -eq 0 ]
  [ "$(jq -r '[.sessions, .capacity, .evictions, .half_open, .flood] | @csv' <<<"$output")" = '11,1024,0,1,false' ]
  run mseg monitor --json --count 2
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 2 ]
  run --separate-stderr mseg monitor --count x
  [ "$status" -eq 2 ]
  [[ $stderr == "mseg: monitor: --count wants a whole number > 0, not 'x'" ]]
}

@test "real SYN flood from another namespace: the flag rises and clears, an established connection never breaks" {
  need hping3 command -v hping3
  lab_setup ""
  lab_attacker_setup
  lab_start_servers 60
  mseg config set flood_syn_rate 300
  lab_conn_open c1 "$LAB_S4" 5001
  [ "$(lab_conn_send c1)" = ok ]

  # 3000 SYNs at about 5000/s toward the lab's own server, then it stops.
  ip netns exec "$LAB_A" timeout -k 5 30 hping3 -q -S -p 5001 -c 3000 -i u200 "$LAB_S4" \
    >/dev/null 2>&1 &
  local flood_pid=$! i
  # lab_conn_open allows 8 exchanges on the connection: 1 + 3 + 3 used here.
  for ((i = 0; i < 3; i++)); do
    [ "$(lab_conn_send c1)" = ok ]
    sleep 0.1
  done
  wait "$flood_pid" || true
  [ "$(monitor_field flood_count)" -ge 1 ]
  run mseg monitor --once
  echo "$output"
  [[ $output =~ Sessions:\ [0-9]+\ \|\ Evictions:\ [0-9]+\ \|\ Pressure:\ [0-9]+%\ \|\ SYN_SENT:\ [0-9]+ ]]

  # The connection keeps talking; its packets close the quiet windows.
  for ((i = 0; i < 3; i++)); do
    sleep 1
    [ "$(lab_conn_send c1)" = ok ]
    [ "$(monitor_field flood)" = false ] && break
  done
  [ "$(monitor_field flood)" = false ]
  [ "$(sessions_json | jq -r --arg p "$LAB_CONN_SPORT" \
    'select(.sport == ($p | tonumber)) | .state')" = ESTABLISHED ]
}
