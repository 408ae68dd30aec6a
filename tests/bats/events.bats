#!/usr/bin/env bats
# Events and `mseg log` (issue 5/6): denies, log verdicts and re-judged
# sessions reach the reader with the right fields; a burst of 100,000
# denies yields a bounded number of events plus a count of the suppressed
# ones; pressure and flood events; the reader's modes and errors; the reader
# under AddressSanitizer.

# shellcheck disable=SC2154 # bats sets $stderr
bats_require_minimum_version 1.5.0

load helpers/common

setup() {
  crafted_setup
  # the events of denied tcp/22 and udp/53 flows: failsafes off (failsafe.bats tests them)
  mseg failsafe off >/dev/null
}

teardown() {
  crafted_teardown
}

# log_json: the buffered events as JSON lines.
log_json() { mseg log --json; }

evlimit() { map_dump mseg_evlimit | jq -r ".[0].formatted.value.$1"; }

@test "a deny event carries time, action, reason, addresses, ports and protocol" {
  mseg_rule add --src 10.1.0.1 --dst 10.1.0.2 --proto tcp --dport 22 --action deny
  [ "$(verdict --proto tcp --src 10.1.0.1 --dst 10.1.0.2 --sport 40001 --dport 22 --flags S)" = "$TC_ACT_SHOT" ]
  run log_json
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 1 ]
  [ "$(jq -c '[.event, .action, .reason, .proto, .src, .sport, .dst, .dport, .rejudged, .suppressed]' <<<"$output")" = \
    '["deny","deny","exact-rule","tcp","10.1.0.1",40001,"10.1.0.2",22,false,0]' ]
  # The time is now, in UTC.
  local t now
  t=$(jq -r '.time | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601' <<<"$output")
  now=$(date +%s)
  ((now - t >= 0 && now - t < 30))
  # Reading takes nothing away: a second reader sees the same event.
  local first=$output
  run log_json
  [ "$output" = "$first" ]
}

@test "default-deny, log, CIDR-free IPv6 and re-judged sessions are reported" {
  mseg default deny
  [ "$(verdict --proto udp --src fd00::1 --dst fd00::2 --sport 5353 --dport 9999)" = "$TC_ACT_SHOT" ]
  mseg_rule add --src 10.1.0.1 --dst 10.1.0.2 --proto tcp --dport 443 --action log
  [ "$(verdict --proto tcp --src 10.1.0.1 --dst 10.1.0.2 --sport 40002 --dport 443 --flags S)" = 0 ]
  # The log session's next packet makes no second event.
  [ "$(verdict --proto tcp --src 10.1.0.2 --dst 10.1.0.1 --sport 443 --dport 40002 --flags SA --seq 9 --ack 1001)" = 0 ]
  # Turning the rule into a deny cuts the open session, once, as a re-judgement.
  mseg_rule add --src 10.1.0.1 --dst 10.1.0.2 --proto tcp --dport 443 --action deny
  [ "$(verdict --proto tcp --src 10.1.0.1 --dst 10.1.0.2 --sport 40002 --dport 443 --flags A --seq 1001 --ack 10)" = "$TC_ACT_SHOT" ]
  [ "$(verdict --proto tcp --src 10.1.0.1 --dst 10.1.0.2 --sport 40002 --dport 443 --flags A --seq 1001 --ack 10)" = "$TC_ACT_SHOT" ]
  run log_json
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 3 ]
  [ "$(jq -c '[.event, .reason, .proto, .src, .dst, .dport]' <<<"${lines[0]}")" = \
    '["deny","default-action","udp","fd00::1","fd00::2",9999]' ]
  [ "$(jq -c '[.event, .action, .reason, .rejudged]' <<<"${lines[1]}")" = '["log","log","exact-rule",false]' ]
  [ "$(jq -c '[.event, .action, .rejudged, .sport]' <<<"${lines[2]}")" = '["deny","deny",true,40002]' ]
}

@test "100,000 denied packets: a bounded number of events plus the count suppressed" {
  mseg config set event_rate 100
  mseg_rule add --src 10.2.0.1 --dst 10.2.0.2 --action deny
  local f out
  f=$(pkt_file --proto udp --src 10.2.0.1 --dst 10.2.0.2 --sport 1 --dport 2)
  out=$(bpftool -j prog run id "$PROG_ID" data_in "$f" repeat 100000)
  [ "$(jq -r .retval <<<"$out")" = "$TC_ACT_SHOT" ]
  [ "$(stat_get denied)" = 100000 ]
  local emitted suppressed pending events reported seconds
  emitted=$(evlimit emitted_total)
  suppressed=$(evlimit suppressed_total)
  [ $((emitted + suppressed)) -eq 100000 ]
  events=$(log_json | wc -l)
  [ "$events" -eq "$emitted" ]
  # At most 100 a second: the run took jq's "duration" ns per packet.
  seconds=$(jq -r '(.duration * 100000 / 1e9) | ceil' <<<"$out")
  ((events <= 100 * (seconds + 1)))
  ((events >= 100))
  # Every suppressed event is accounted for: in a later event, or pending.
  mseg_rule add --src 10.2.0.1 --dst 10.2.0.3 --action deny
  sleep 1.1  # a new window, so this deny is not suppressed itself
  [ "$(verdict --proto udp --src 10.2.0.1 --dst 10.2.0.3 --sport 1 --dport 2)" = "$TC_ACT_SHOT" ]
  reported=$(log_json | jq -s 'map(.suppressed) | add')
  pending=$(evlimit pending)
  [ "$pending" -eq 0 ]
  [ "$reported" -eq "$suppressed" ]
  [ "$(stat_get events_lost)" = 0 ]
}

@test "pressure levels and SYN floods are reported" {
  mseg config set warn_pct 1      # 1 % of 262144: above 2621 entries
  mseg config set flood_syn_rate 3
  "$MSEG_BUILD/mseg-fill" --count 2700 >/dev/null
  [ "$(syn_burst 10.3.0.1 10.3.0.2 80 41000 5)" = 0 ]
  run log_json
  [ "$status" -eq 0 ]
  [ "$(jq -sc 'map(select(.event == "pressure")) | map([.reason, .value])' <<<"$output")" = '[["pressure-warning",1]]' ]
  [ "$(jq -sc 'map(select(.event == "flood")) | map([.reason, .value])' <<<"$output")" = '[["syn-rate",4]]' ]
}

@test "critical and degraded pressure events carry their reasons, and a degraded drop is reported" {
  # Levels at 1, 2 and 3 % of 262144 entries: above 2621, 5242 and 7864.
  mseg config set warn_pct 1
  mseg config set crit_pct 2
  mseg config set degrade_pct 3
  "$MSEG_BUILD/mseg-fill" --count 2700 >/dev/null
  [ "$(verdict --proto udp --src 10.5.0.1 --dst 10.5.0.2 --sport 1 --dport 9)" = 0 ]
  "$MSEG_BUILD/mseg-fill" --count 2600 --first 2700 >/dev/null    # 5301 entries
  [ "$(verdict --proto udp --src 10.5.0.1 --dst 10.5.0.2 --sport 2 --dport 9)" = 0 ]
  "$MSEG_BUILD/mseg-fill" --count 2600 --first 5300 >/dev/null    # 7902 entries
  [ "$(verdict --proto tcp --src 10.5.0.1 --dst 10.5.0.2 --sport 3 --dport 80 --flags S)" = "$TC_ACT_SHOT" ]
  run log_json
  [ "$status" -eq 0 ]
  echo "$output"
  # One event per level entered, in order, each with the percentage it
  # was entered at; then the SYN the degraded table refused.
  [ "$(jq -sc 'map(select(.event == "pressure")) | map([.reason, .value])' <<<"$output")" = \
    '[["pressure-warning",1],["pressure-critical",2],["pressure-degraded",3]]' ]
  [ "$(jq -sc 'map(select(.event == "drop")) | map([.reason, .action, .proto, .src, .sport, .dst, .dport])' <<<"$output")" = \
    '[["table-degraded","deny","tcp","10.5.0.1",3,"10.5.0.2",80]]' ]
  [ "$(jq -s 'length' <<<"$output")" -eq 4 ]
}

@test "text output, --follow with --timeout and --count, bad arguments, no pins" {
  mseg_rule add --src fd00::a --dst fd00::b --proto udp --dport 53 --action deny
  [ "$(verdict --proto udp --src fd00::a --dst fd00::b --sport 1234 --dport 53)" = "$TC_ACT_SHOT" ]
  run mseg log
  [ "$status" -eq 0 ]
  # (the deciding rule's id, docs/policy.md, before the reason)
  [[ $output =~ ^20[0-9-]+T[0-9:.]+Z\ deny\ +udp\ \[fd00::a\]:1234\ -\>\ \[fd00::b\]:53\ rule=1\ reason=exact-rule$ ]]

  # --follow sees an event that arrives while it waits, and --count ends it.
  local out="$BATS_TEST_TMPDIR/follow"
  timeout -k 5 20 "$MSEG_SCRIPTS/mseg" log --json --follow --count 1 --timeout 10 >"$out" 3>&- &
  local pid=$!
  sleep 0.5
  [ "$(verdict --proto udp --src fd00::a --dst fd00::b --sport 1235 --dport 53)" = "$TC_ACT_SHOT" ]
  wait "$pid"
  [ "$(jq -r .sport "$out")" = 1235 ]
  # --timeout ends a quiet follow.
  run timeout -k 5 10 "$MSEG_SCRIPTS/mseg" log --follow --timeout 1
  [ "$status" -eq 0 ]
  [ -z "$output" ]

  run --separate-stderr mseg log --count 0
  [ "$status" -eq 2 ]
  [ "$stderr" = "mseg: --count wants a whole number > 0, not '0'" ]
  run --separate-stderr mseg log --bogus
  [ "$status" -eq 2 ]
  [ "$stderr" = "mseg: log: unknown option '--bogus'" ]
  local empty
  empty=$(mktemp -d)
  run --separate-stderr env TC_BPF_MNT="$empty" "$MSEG_SCRIPTS/mseg" log
  rmdir "$empty"
  [ "$status" -eq 1 ]
  [[ $stderr == "mseg: cannot open $empty/tc/globals/mseg_events: No such file or directory (run 'mseg attach DEV' first)" ]]
}

@test "mseg-log runs clean under AddressSanitizer and LeakSanitizer" {
  need gcc command -v gcc
  local bin="$BATS_TEST_TMPDIR/mseg-log-asan"
  gcc -std=gnu11 -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined \
    -fno-omit-frame-pointer -I "$MSEG_ROOT/bpf" -I "$MSEG_ROOT/tools" \
    "$MSEG_ROOT/tools/mseg-log.c" -o "$bin" -lbpf
  mseg_rule add --src 10.4.0.1 --dst 10.4.0.2 --action deny
  [ "$(verdict --proto tcp --src 10.4.0.1 --dst 10.4.0.2 --sport 5 --dport 6 --flags S)" = "$TC_ACT_SHOT" ]
  run --separate-stderr timeout -k 5 60 env ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 "$bin" --json
  [ "$status" -eq 0 ]
  [ -z "$stderr" ]
  [ "$(jq -r .dst <<<"$output")" = 10.4.0.2 ]
  run --separate-stderr timeout -k 5 60 env ASAN_OPTIONS=detect_leaks=1 "$bin" --follow --timeout 1
  [ "$status" -eq 0 ]
  [ -z "$stderr" ]
}

# --- many readers, one drainer (mseg-eventd) ---------------------------------------

# bg CMD...: CMD in the background, bounded; its pid is appended to BG_PIDS.
bg() {
  timeout -k 5 60 "$@" 3>&- &
  BG_PIDS+=($!)
}

bg_wait_all() {
  local pid rc=0
  for pid in "${BG_PIDS[@]}"; do
    wait "$pid" || rc=1
  done
  BG_PIDS=()
  return "$rc"
}

@test "two followers and two readers at once all see every event; none takes them from another" {
  BG_PIDS=()
  mseg_rule add --src 10.6.0.1 --dst 10.6.0.2 --action deny
  local a=$BATS_TEST_TMPDIR/a b=$BATS_TEST_TMPDIR/b
  bg "$MSEG_SCRIPTS/mseg" log --json --follow --count 5 --timeout 40 >"$a"
  bg "$MSEG_SCRIPTS/mseg" log --json --follow --count 5 --timeout 40 >"$b"
  sleep 1
  local i
  for i in 1 2 3 4 5; do
    [ "$(verdict --proto udp --src 10.6.0.1 --dst 10.6.0.2 --sport "$i" --dport 9)" = "$TC_ACT_SHOT" ]
  done
  bg_wait_all
  [ "$(jq -r .sport "$a" | xargs)" = "1 2 3 4 5" ]
  [ "$(jq -r .sport "$b" | xargs)" = "1 2 3 4 5" ]
  [ "$(log_json | jq -r .sport | xargs)" = "1 2 3 4 5" ]
  [ "$(log_json | jq -r .sport | xargs)" = "1 2 3 4 5" ]
  [ "$(mseg log --json --count 2 | jq -r .sport | xargs)" = "4 5" ]
  # every deny event names the rule that decided it: the only rule, id 1
  log_json | jq -e -s 'length == 5 and all(.[]; .rule == 1)' >/dev/null
}

@test "mseg-eventd drains for every reader, alone (a second one exits 1), and rotates its log" {
  BG_PIDS=()
  mseg_rule add --src 10.6.0.1 --dst 10.6.0.2 --action deny
  local err=$BATS_TEST_TMPDIR/eventd.err
  bg "$MSEG_BUILD/mseg-eventd" --max-bytes 4096 --keep 2 2>"$err"
  local pid=${BG_PIDS[0]}
  wait_until 50 test -e "$MSEG_EVENTS_DIR/events.jsonl"
  run --separate-stderr "$MSEG_BUILD/mseg-eventd"
  [ "$status" -eq 1 ]
  [[ $stderr == "mseg: eventd: another process drains the events of $TC_BPF_MNT" ]]
  # ~60 events of ~260 bytes: past 4096 bytes several times
  local f
  f=$(pkt_file --proto udp --src 10.6.0.1 --dst 10.6.0.2 --sport 7 --dport 9)
  [ "$(bpftool -j prog run id "$PROG_ID" data_in "$f" repeat 60 | jq .retval)" = "$TC_ACT_SHOT" ]
  wait_until 50 test -e "$MSEG_EVENTS_DIR/events.jsonl.2"
  [ ! -e "$MSEG_EVENTS_DIR/events.jsonl.3" ]
  local size
  for f in "$MSEG_EVENTS_DIR"/events.jsonl*; do
    size=$(stat -c %s "$f")
    ((size <= 4096))
  done
  # the reader gets them oldest first, from all three files, in order
  local n
  n=$(log_json | jq -s 'length')
  [ "$n" = "$(cat "$MSEG_EVENTS_DIR"/events.jsonl* | wc -l)" ]
  log_json | jq -s -e '[.[].ts_ns] as $t | $t == ($t | sort)' >/dev/null
  kill -TERM "$pid"
  bg_wait_all
  [ ! -s "$err" ]
}

@test "events the full ring dropped are counted, recorded once as a lost record, and exported" {
  mseg config set event_rate 1000000
  mseg_rule add --src 10.6.0.1 --dst 10.6.0.3 --action deny
  # nobody drains: 10,000 events overflow the 256 KiB ring (~3,600 fit)
  local f lost
  f=$(pkt_file --proto udp --src 10.6.0.1 --dst 10.6.0.3 --sport 7 --dport 9)
  bpftool -j prog run id "$PROG_ID" data_in "$f" repeat 10000 >/dev/null
  lost=$(stat_get events_lost)
  ((lost > 0))
  run --separate-stderr mseg log --json
  [ "$status" -eq 0 ]
  [ "$(jq -s -c "map(select(.event == \"lost\")) | map([.lost, .where])" <<<"$output")" = "[[$lost,\"ring\"]]" ]
  [ "$(jq -s "map(select(.event == \"deny\")) | length" <<<"$output")" = $((10000 - lost)) ]
  # read again: the same single record, not a second one
  [ "$(log_json | jq -s 'map(select(.event == "lost")) | length')" = 1 ]
  run mseg log --count 1
  [[ $output == *" lost     $lost events lost (the ring was full)" ]]
  # and the metric says the same
  local dir=$BATS_TEST_TMPDIR/prom
  mkdir "$dir"
  "$MSEG_BUILD/mseg-textfile" --dir "$dir"
  grep -qx "mseg_events_lost_total $lost" "$dir/mseg.prom"
}
