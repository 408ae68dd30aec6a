#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Observability (issue 5/6): build/mseg-textfile writes mseg.prom for
# node_exporter's textfile collector. Real traffic through the namespace lab
# is scraped from Debian's real prometheus-node-exporter (on a free loopback
# port, in our own textfile directory, killed in teardown) and compared with
# `mseg stats` and `mseg sessions`; promtool checks the file, the alert rules
# and their unit tests; the dashboard's queries must parse and use only
# metrics the collector writes (or is to write), and the policy row's are
# evaluated on made-up series; failures write nothing and leave no
# temporary file; an ASan/UBSan/LSan build runs clean; --interval rewrites
# the file and ends cleanly on SIGTERM; make install ships the units.

# shellcheck disable=SC2154,SC2153 # bats sets $stderr/$output; lab.bash sets LAB_*
bats_require_minimum_version 1.5.0

load helpers/common
load helpers/lab

TEXTFILE=$MSEG_BUILD/mseg-textfile

setup() {
  require_build
  need "build/mseg-textfile (run make)" test -x "$TEXTFILE"
  need promtool command -v promtool
  OUT=$BATS_TEST_TMPDIR/textfile
  mkdir -p "$OUT"
  NE_PID=""
}

teardown() {
  if [[ -n ${NE_PID:-} ]]; then
    kill "$NE_PID" 2>/dev/null || true
    wait "$NE_PID" 2>/dev/null || true
  fi
  if [[ -n ${TF_PID:-} ]]; then
    kill "$TF_PID" 2>/dev/null || true
    wait "$TF_PID" 2>/dev/null || true
  fi
  if [[ -n ${LAB_C:-} ]]; then
    lab_teardown
  fi
  crafted_teardown
}

# --- helpers ------------------------------------------------------------------

# prom_json FILE: the samples of FILE (exposition format) as a JSON array.
prom_json() { "$MSEG_PYTHON" "$MSEG_HELPERS/promparse.py" "$1"; }

# prom_get JSON NAME [LABELS]: the value of the one sample NAME{LABELS}
# (LABELS a JSON object, default {}); fails unless exactly one matches.
prom_get() {
  local labels=${3:-}
  [[ -n $labels ]] || labels='{}'
  jq -e -r --arg n "$2" --argjson l "$labels" '
    [.[] | select(.name == $n and .labels == $l) | .value]
    | if length == 1 then .[0] else error("\(length) samples") end' <<<"$1" ||
    { echo "prom_get: no single sample $2 ${3:-}" >&2; return 1; }
}

# prom_names FILE: the metric names of the samples in FILE, sorted, unique.
prom_names() { grep -v '^#' "$1" | sed 's/[{ ].*//' | sort -u; }

# no_temp DIR: no temporary file of the collector is left in DIR.
no_temp() {
  local left
  left=$(find "$1" -name '.mseg.prom.*')
  [[ -z $left ]] || { echo "temporary files left: $left" >&2; return 1; }
}

# ne_start DIR: Debian's node_exporter serving DIR's *.prom on a free
# loopback port (NE_PORT), nothing but the textfile collector, for at most
# two minutes. Tries a few random ports in case one is taken meanwhile.
ne_start() {
  local dir=$1 try log=$BATS_TEST_TMPDIR/node-exporter.log
  need prometheus-node-exporter command -v prometheus-node-exporter
  for ((try = 0; try < 5; try++)); do
    NE_PORT=$((20000 + RANDOM % 40000))
    if ss -Hltn "sport = :$NE_PORT" | grep -q .; then
      continue
    fi
    timeout -k 5 120 prometheus-node-exporter \
      --web.listen-address="127.0.0.1:$NE_PORT" \
      --collector.disable-defaults --collector.textfile \
      --collector.textfile.directory="$dir" >"$log" 2>&1 3>&- &
    NE_PID=$!
    if wait_until 50 curl -sf -o /dev/null "http://127.0.0.1:$NE_PORT/metrics"; then
      return 0
    fi
    kill "$NE_PID" 2>/dev/null || true
    wait "$NE_PID" 2>/dev/null || true
    NE_PID=""
  done
  echo "node_exporter did not start:" >&2
  cat "$log" >&2
  return 1
}

# scrape FILE: GET /metrics from our node_exporter into FILE.
scrape() { curl -sf --max-time 10 -o "$1" "http://127.0.0.1:$NE_PORT/metrics"; }

# sessions_by_state: `mseg sessions --json` counted as {"proto/state": n},
# protocols other than tcp/udp/icmp/icmpv6 as "other".
sessions_by_state() {
  mseg sessions --json | jq -c '
    map((if (.proto | IN("tcp", "udp", "icmp", "icmpv6")) then .proto else "other" end)
        + "/" + .state)
    | group_by(.) | map({key: .[0], value: length}) | from_entries'
}

# metric_sessions JSON: the mseg_sessions samples as {"proto/state": n}.
metric_sessions() {
  jq -c '[.[] | select(.name == "mseg_sessions")
          | {key: "\(.labels.proto)/\(.labels.state)", value}] | from_entries' <<<"$1"
}

# fill N [EXPIRED]: N synthetic ESTABLISHED sessions (EXPIRED of them
# TIME_WAIT and idle past their timeout).
fill() {
  "$MSEG_BUILD/mseg-fill" --count "$1" --expired "${2:-0}" --idle 130 >/dev/null
}

# syn SPORT: a new TCP SYN through the crafted bench; prints the verdict.
syn() {
  verdict --proto tcp --src 10.9.0.1 --dst 10.9.0.2 --sport "$1" --dport 80 --flags S
}

# cidr_pin SET: a CIDR rule 192.0.2.0/24 allow in rule set SET: through the
# command for the active set 0, else written straight into mseg_source as
# the statement a staged set holds (mseg_source_key: set, pad, index).
cidr_pin() {
  if [[ $1 == 0 ]]; then
    "$MSEG_SCRIPTS/mseg-cidr" add 192.0.2.0/24 --action allow >/dev/null
    return
  fi
  local -a v
  mapfile -t v < <(printf 'cidr add 192.0.2.0/24 --action allow --id 9' | od -An -v -tx1 | tr ' ' '\n' | grep .)
  while ((${#v[@]} < 512)); do v+=(00); done
  bpftool map update pinned "$(pin mseg_source)" key hex "0$1" 00 00 00 09 00 00 00 value hex "${v[@]}"
}

# --- the command line -----------------------------------------------------------

@test "textfile: --help, --version and bad arguments" {
  run "$TEXTFILE" --help
  [ "$status" -eq 0 ]
  [[ $output == *"usage: mseg-textfile [--dir DIR] [--interval S]"* ]]
  [[ $output == *"/var/lib/prometheus/node-exporter"* ]]
  run "$TEXTFILE" --version
  [ "$status" -eq 0 ]
  [[ $output =~ ^mseg-textfile\ .+\ \(abi\ [0-9]+\)$ ]]
  run --separate-stderr "$TEXTFILE" --interval 0
  [ "$status" -eq 2 ]
  [ "$stderr" = "mseg: --interval wants whole seconds from 1 to 86400, not '0'" ]
  run --separate-stderr "$TEXTFILE" --bogus
  [ "$status" -eq 2 ]
  [ "$stderr" = "mseg: textfile: unknown option '--bogus'" ]
  run --separate-stderr "$TEXTFILE" --dir
  [ "$status" -eq 2 ]
  [ "$stderr" = "mseg: textfile: option '--dir' wants a value" ]
  run --separate-stderr "$TEXTFILE" stray
  [ "$status" -eq 2 ]
  [ "$stderr" = "mseg: textfile: unexpected argument 'stray'" ]
}

@test "textfile: missing or foreign maps write nothing, exit non-zero with one line, leave no temp file" {
  bpffs_setup
  # Nothing pinned at all: an empty textfile directory stays empty.
  run --separate-stderr "$TEXTFILE" --dir "$OUT"
  [ "$status" -eq 1 ]
  [ "${#stderr_lines[@]}" -eq 1 ]
  [[ $stderr == "mseg: cannot open $TC_BPF_MNT/tc/globals/mseg_sessions: No such file or directory (run 'mseg attach DEV' first)" ]]
  [ -z "$(ls -A "$OUT")" ]
  # --interval too: the first write must succeed.
  run --separate-stderr timeout -k 5 10 "$TEXTFILE" --dir "$OUT" --interval 1
  [ "$status" -eq 1 ]
  [ "${#stderr_lines[@]}" -eq 1 ]
  [ -z "$(ls -A "$OUT")" ]

  # A map of another layout under mseg's name: refused, and a previous
  # mseg.prom stays byte for byte.
  mkdir -p "$TC_BPF_MNT/tc/globals"
  bpftool map create "$(pin mseg_sessions)" type hash key 4 value 4 entries 16 name mseg_sessions
  echo "# previous" >"$OUT/mseg.prom"
  run --separate-stderr "$TEXTFILE" --dir "$OUT"
  [ "$status" -eq 1 ]
  [ "${#stderr_lines[@]}" -eq 1 ]
  local sizes
  sizes=$("$MSEG_BUILD/mseg-abi" | awk '$1 == "map" && $2 == "mseg_sessions" { print $3 "/" $4 }')
  [[ $stderr == "mseg: $(pin mseg_sessions) has key/value sizes 4/4, this build expects $sizes: the pinned maps are from another mseg version" ]]
  [ "$(cat "$OUT/mseg.prom")" = "# previous" ]
  [ "$(ls -A "$OUT")" = mseg.prom ]
}

@test "textfile: a directory it cannot write to is a clear error, and nothing is left behind" {
  crafted_setup
  run --separate-stderr "$TEXTFILE" --dir "$OUT/missing"
  [ "$status" -eq 1 ]
  [ "$stderr" = "mseg: cannot create a temporary file in $OUT/missing: No such file or directory" ]
  [ -z "$(ls -A "$OUT")" ]
  # The default directory is Debian's node_exporter's.
  run "$TEXTFILE" --help
  [[ $output == *"(default /var/lib/prometheus/node-exporter)"* ]]
}

# --- the metrics ------------------------------------------------------------------

@test "textfile: real traffic through the lab, scraped from node_exporter, equals mseg stats and mseg sessions" {
  lab_setup
  lab_start_servers 60
  # Nothing may expire while the test compares.
  mseg config set timeout_close 600 >/dev/null
  mseg config set timeout_icmp 600 >/dev/null
  mseg config set timeout_udp 600 >/dev/null
  mseg_rule add --src "$LAB_C4" --dst "$LAB_S4" --proto tcp --dport 5001 --action allow
  mseg_rule add --src "$LAB_C4" --dst "$LAB_S4" --proto tcp --dport 5002 --action deny
  mseg_rule add --src "$LAB_C4" --dst "$LAB_S4" --proto udp --dport 5002 --action deny
  mseg_rule add --src "$LAB_C4" --dst "$LAB_S4" --proto tcp --dport 5003 --action log

  lab_tcp_connect "$LAB_S4" 5001
  lab_tcp_connect "$LAB_S6" 5001
  lab_tcp_connect "$LAB_S4" 5003
  lab_udp_exchange "$LAB_S4" 5001
  lab_udp_exchange "$LAB_S6" 5003
  run ! lab_tcp_connect "$LAB_S4" 5002 1
  run ! lab_udp_exchange "$LAB_S4" 5002 1
  lab_conn_open c1 "$LAB_S4" 5001 # stays ESTABLISHED

  # Sample while nothing moves: the counters and the table read the same
  # before and after the collector ran (neighbour discovery may still
  # trickle in; then sample again).
  local i stats_a stats_b sess_a sess_b stable=0
  for ((i = 0; i < 20; i++)); do
    stats_a=$(mseg stats --json | jq -cS .)
    sess_a=$(sessions_by_state)
    "$TEXTFILE" --dir "$OUT"
    stats_b=$(mseg stats --json | jq -cS .)
    sess_b=$(sessions_by_state)
    if [[ $stats_a == "$stats_b" && $sess_a == "$sess_b" ]]; then
      stable=1
      break
    fi
    sleep 0.5
  done
  [ "$stable" = 1 ]

  ne_start "$OUT"
  scrape "$BATS_TEST_TMPDIR/scrape.txt"
  local m
  m=$(prom_json "$BATS_TEST_TMPDIR/scrape.txt")
  [ "$(prom_get "$m" node_textfile_scrape_error)" = 0 ]
  prom_get "$m" node_textfile_mtime_seconds "{\"file\":\"$OUT/mseg.prom\"}"

  # Verdicts and decisions: exactly `mseg stats`.
  local action field
  for action in allowed denied logged dropped; do
    assert_eq "packets $action" "$(jq ".$action" <<<"$stats_a")" \
      "$(prom_get "$m" mseg_packets_total "{\"action\":\"$action\"}")"
  done
  assert_eq seen "$(jq .total <<<"$stats_a")" "$(prom_get "$m" mseg_packets_seen_total)"
  for field in session_hit policy_hit ip_range_hit default_hit related exempt; do
    assert_eq "$field" "$(jq ".$field" <<<"$stats_a")" \
      "$(prom_get "$m" mseg_lookups_total "{\"result\":\"$field\"}")"
  done
  local reason
  for reason in strict vlan_limit v4_mapped exthdr_limit frag_tiny frag_overlap; do
    field=$reason
    [[ $reason == strict ]] && field=strict_drop
    assert_eq "refused $reason" "$(jq ".$field" <<<"$stats_a")" \
      "$(prom_get "$m" mseg_refused_packets_total "{\"reason\":\"$reason\"}")"
  done
  assert_eq unjudged "$(jq .unjudged <<<"$stats_a")" "$(prom_get "$m" mseg_unjudged_packets_total)"
  assert_eq created "$(jq .new_session <<<"$stats_a")" "$(prom_get "$m" mseg_sessions_created_total)"
  assert_eq established "$(jq .tcp_established <<<"$stats_a")" \
    "$(prom_get "$m" mseg_tcp_transitions_total '{"to":"established"}')"
  [ "$(prom_get "$m" mseg_packets_total '{"action":"allowed"}')" -gt 0 ]
  [ "$(prom_get "$m" mseg_packets_total '{"action":"denied"}')" -ge 2 ]
  [ "$(prom_get "$m" mseg_packets_total '{"action":"logged"}')" -gt 0 ]
  [ "$(prom_get "$m" mseg_lookups_total '{"result":"policy_hit"}')" -ge 4 ]

  # Sessions by protocol and state: exactly `mseg sessions`, every series
  # present (15: 11 TCP states, then udp, icmp, icmpv6, other as NONE).
  local ms
  ms=$(metric_sessions "$m")
  [ "$(jq length <<<"$ms")" -eq 15 ]
  jq -e -n --argjson m "$ms" --argjson c "$sess_a" \
    '($c | keys - ($m | keys)) == [] and ($m | to_entries | all(.value == ($c[.key] // 0)))' ||
    { echo "metrics $ms, mseg sessions $sess_a" >&2; false; }
  [ "$(jq '."tcp/ESTABLISHED"' <<<"$ms")" -ge 1 ]
  [ "$(jq '."udp/NONE"' <<<"$ms")" -ge 2 ]
  [ "$(prom_get "$m" mseg_map_entries '{"map":"mseg_sessions"}')" = "$(mseg sessions --json | jq length)" ]
  [ "$(prom_get "$m" mseg_rules '{"kind":"exact"}')" = 4 ]
  [ "$(prom_get "$m" mseg_rules '{"kind":"cidr"}')" = 0 ]
  # One build_info sample: this build's version and ABI.
  jq -e --arg v "$("$TEXTFILE" --version | sed -E 's/^mseg-textfile (.*) \(abi [0-9]+\)$/\1/')" \
    --arg a "$("$MSEG_BUILD/mseg-abi" | awk '$1 == "abi_version" { print $2 }')" '
    [.[] | select(.name == "mseg_build_info")]
    | length == 1 and .[0].value == 1 and .[0].labels == {version: $v, abi_version: $a}' <<<"$m"

  # The file as written passes promtool's linter with nothing to say.
  run promtool check metrics <"$OUT/mseg.prom"
  [ "$status" -eq 0 ]
  [ -z "$output" ]
  no_temp "$OUT"
}

@test "textfile: pressure, flood, expiry, rule sets and gc follow the maps" {
  crafted_setup
  # 6000 entries in a 262144 table: above 1 % and 2 %, below 50 %.
  mseg config set warn_pct 1 >/dev/null
  mseg config set crit_pct 2 >/dev/null
  mseg config set degrade_pct 50 >/dev/null
  # The third SYN finds two half-open sessions: above 1, a flood. Its
  # short timeout for half-open sessions is lengthened so none expires here.
  mseg config set flood_half_open 1 >/dev/null
  mseg config set flood_syn_timeout 600 >/dev/null
  fill 6000 1000
  [ "$(syn 1000)" = 0 ]
  [ "$(syn 1001)" = 0 ]
  [ "$(syn 1002)" = 0 ]
  mseg_rule add --src 10.9.0.1 --dst 10.9.0.2 --proto tcp --dport 22 --action deny >/dev/null
  cidr_pin 0
  cidr_pin 1 # a staged rule set: not counted
  "$TEXTFILE" --dir "$OUT"
  local m cap
  m=$(prom_json "$OUT/mseg.prom")
  cap=$(prom_get "$m" mseg_map_max_entries '{"map":"mseg_sessions"}')
  [ "$cap" = "$(bpftool -j map show pinned "$(pin mseg_sessions)" | jq .max_entries)" ]
  [ "$(prom_get "$m" mseg_map_entries '{"map":"mseg_sessions"}')" = 6003 ]
  jq -e -n --argjson r "$(prom_get "$m" mseg_map_pressure_ratio '{"map":"mseg_sessions"}')" \
    --argjson c "$cap" '($r - 6003 / $c | fabs) < 1e-6'
  # The 1000 expired ones hold slots but are not sessions any more.
  [ "$(prom_get "$m" mseg_sessions '{"proto":"tcp","state":"ESTABLISHED"}')" = 5000 ]
  [ "$(prom_get "$m" mseg_sessions '{"proto":"tcp","state":"TIME_WAIT"}')" = 0 ]
  [ "$(prom_get "$m" mseg_sessions '{"proto":"tcp","state":"SYN_SENT"}')" = 3 ]
  [ "$(prom_get "$m" mseg_pressure_level '{"level":"warning"}')" = 1 ]
  [ "$(prom_get "$m" mseg_pressure_level '{"level":"critical"}')" = 1 ]
  [ "$(prom_get "$m" mseg_pressure_level '{"level":"degraded"}')" = 0 ]
  [ "$(prom_get "$m" mseg_pressure_level_entered_total '{"level":"warning"}')" = 1 ]
  [ "$(prom_get "$m" mseg_syn_flood)" = 1 ]
  [ "$(prom_get "$m" mseg_syn_floods_total)" = 1 ]
  [ "$(prom_get "$m" mseg_half_open_sessions)" = 3 ]
  [ "$(prom_get "$m" mseg_syn_rate_per_second)" -ge 0 ]
  [ "$(prom_get "$m" mseg_rules '{"kind":"exact"}')" = 1 ]
  [ "$(prom_get "$m" mseg_rules '{"kind":"cidr"}')" = 1 ]
  # Both sets hold the policy in force (docs/policy.md): the rule, the
  # cidr statement, the failsafe line and the set's seal, 4 entries each;
  # set 1 the staged one too.
  [ "$(prom_get "$m" mseg_map_entries '{"map":"mseg_source"}')" = 9 ]
  [ "$(prom_get "$m" mseg_gc_last_run_timestamp_seconds)" = 0 ]
  [ "$(prom_get "$m" mseg_gc_runs_total)" = 0 ]

  # mseg gc reclaims the expired slots; its run is stamped in Unix time.
  mseg gc >/dev/null
  "$TEXTFILE" --dir "$OUT"
  m=$(prom_json "$OUT/mseg.prom")
  [ "$(prom_get "$m" mseg_map_entries '{"map":"mseg_sessions"}')" = 5003 ]
  [ "$(prom_get "$m" mseg_gc_runs_total)" = 1 ]
  [ "$(prom_get "$m" mseg_gc_deleted_sessions_total)" = 1000 ]
  jq -e -n --argjson t "$(prom_get "$m" mseg_gc_last_run_timestamp_seconds)" \
    --argjson now "$(date +%s)" '$t > $now - 30 and $t <= $now + 1'
  jq -e -n --argjson d "$(prom_get "$m" mseg_collector_duration_seconds)" '$d > 0 and $d < 10'

  run promtool check metrics <"$OUT/mseg.prom"
  [ "$status" -eq 0 ]
  [ -z "$output" ]
}

@test "textfile: mseg_policy_info's hash follows the loaded policy, not the rule set it sits in or the hit counts" {
  crafted_setup
  local f=$BATS_TEST_TMPDIR/p1 h0 h1 h2 hand
  h0=$("$TEXTFILE" --policy-hash)
  [[ $h0 =~ ^[0-9a-f]{16}$ ]]
  printf '%s\n' 'default deny' \
    'rule --src 10.9.0.1 --dst 10.9.0.2 --proto tcp --dport 80 --action allow' \
    'cidr 10.1.0.0/16 --action deny --priority 3' >"$f"
  mseg apply "$f" >/dev/null
  h1=$("$TEXTFILE" --policy-hash)
  [ "$h1" != "$h0" ]
  # The file and --policy-hash agree.
  "$TEXTFILE" --dir "$OUT"
  [ "$(grep -c '^mseg_policy_info{' "$OUT/mseg.prom")" = 1 ]
  grep -qx "mseg_policy_info{hash=\"$h1\"} 1" "$OUT/mseg.prom"
  # The same policy applied again lands in the other rule set: same hash.
  mseg apply "$f" >/dev/null
  [ "$("$TEXTFILE" --policy-hash)" = "$h1" ]
  # A hit on the rule changes its counter, not the hash.
  [ "$(syn 40000)" = "$TC_ACT_OK" ]
  [ "$(mseg rule list --json | jq '.[0].hits')" -ge 1 ]
  [ "$("$TEXTFILE" --policy-hash)" = "$h1" ]
  # A hand edit (one more rule) changes it; undoing the edit restores it.
  mseg rule add --src 10.9.0.3 --dst 10.9.0.2 --action deny >/dev/null
  hand=$("$TEXTFILE" --policy-hash)
  [ "$hand" != "$h1" ]
  mseg rule del --src 10.9.0.3 --dst 10.9.0.2 >/dev/null
  [ "$("$TEXTFILE" --policy-hash)" = "$h1" ]
  # So do a changed action, priority and default.
  mseg cidr add 10.1.0.0/16 --action deny --priority 4 >/dev/null
  h2=$("$TEXTFILE" --policy-hash)
  [ "$h2" != "$h1" ]
  mseg cidr add 10.1.0.0/16 --action deny --priority 3 >/dev/null
  [ "$("$TEXTFILE" --policy-hash)" = "$h1" ]
  mseg default allow >/dev/null
  [ "$("$TEXTFILE" --policy-hash)" != "$h1" ]
  # Saving and applying the saved policy changes nothing, nor the hash.
  mseg default deny >/dev/null
  mseg save >"$f.saved"
  mseg apply "$f.saved" >/dev/null
  [ "$("$TEXTFILE" --policy-hash)" = "$h1" ]
}

@test "textfile: --interval 1 replaces the file every second and ends cleanly on SIGTERM" {
  crafted_setup
  local err=$BATS_TEST_TMPDIR/interval.err ino first i changes=0
  timeout --foreground -k 5 60 "$TEXTFILE" --dir "$OUT" --interval 1 2>"$err" 3>&- &
  TF_PID=$!
  wait_until 50 test -s "$OUT/mseg.prom"
  first=$(stat -c %i "$OUT/mseg.prom")
  ino=$first
  # A rename gives each new file its own inode: count the replacements.
  for ((i = 0; i < 40 && changes < 2; i++)); do
    sleep 0.1
    if [[ $(stat -c %i "$OUT/mseg.prom") != "$ino" ]]; then
      ino=$(stat -c %i "$OUT/mseg.prom")
      changes=$((changes + 1))
    fi
  done
  [ "$changes" -eq 2 ]
  # Traffic between two writes shows up in the next one.
  [ "$(syn 2000)" = 0 ]
  wait_until 30 grep -qx 'mseg_sessions_created_total 1' "$OUT/mseg.prom"
  kill -TERM "$TF_PID"
  local rc=0
  wait "$TF_PID" || rc=$?
  TF_PID=""
  [ "$rc" -eq 0 ]
  [ ! -s "$err" ]
  [ "$(ls -A "$OUT")" = mseg.prom ]
  run promtool check metrics <"$OUT/mseg.prom"
  [ -z "$output" ]
}

@test "textfile: with --interval a failing tick is reported, the last good file stays" {
  crafted_setup
  local err=$BATS_TEST_TMPDIR/interval.err ino
  timeout --foreground -k 5 60 "$TEXTFILE" --dir "$OUT" --interval 1 2>"$err" 3>&- &
  TF_PID=$!
  wait_until 50 test -s "$OUT/mseg.prom"
  ino=$(stat -c %i "$OUT/mseg.prom")
  cp "$OUT/mseg.prom" "$BATS_TEST_TMPDIR/good.prom"
  # The maps go away (as after an unclean detach).
  rm "$(pin mseg_sessions)"
  wait_until 30 grep -q "mseg: cannot open $(pin mseg_sessions)" "$err"
  sleep 1.2
  [ "$(stat -c %i "$OUT/mseg.prom")" = "$ino" ]
  cmp "$OUT/mseg.prom" "$BATS_TEST_TMPDIR/good.prom"
  no_temp "$OUT"
  kill -TERM "$TF_PID"
  local rc=0
  wait "$TF_PID" || rc=$?
  TF_PID=""
  [ "$rc" -eq 0 ]
  # Every line it printed is one "mseg: ..." message.
  [ "$(grep -cv '^mseg: ' "$err")" -eq 0 ]
}

@test "textfile: clean under AddressSanitizer, UBSan and LeakSanitizer" {
  local asan=$BATS_TEST_TMPDIR/asan err=$BATS_TEST_TMPDIR/asan.err
  # The Makefile's own flags and rule, plus the sanitizers.
  make -s -C "$MSEG_ROOT" BUILD="$asan" \
    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
    "$asan/mseg-textfile"
  export ASAN_OPTIONS=detect_leaks=1:exitcode=99 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  crafted_setup
  fill 3000 1000
  mseg_rule add --src 10.9.0.1 --dst 10.9.0.2 --proto tcp --dport 22 --action deny >/dev/null
  cidr_pin 0
  [ "$(syn 3000)" = 0 ]

  run --separate-stderr timeout -k 5 60 "$asan/mseg-textfile" --dir "$OUT"
  [ "$status" -eq 0 ]
  [ -z "$stderr" ]
  grep -qx 'mseg_map_entries{map="mseg_sessions"} 3001' "$OUT/mseg.prom"

  timeout --foreground -k 5 30 "$asan/mseg-textfile" --dir "$OUT" --interval 1 2>"$err" 3>&- &
  TF_PID=$!
  sleep 2.5
  kill -TERM "$TF_PID"
  local rc=0
  wait "$TF_PID" || rc=$?
  TF_PID=""
  [ "$rc" -eq 0 ]
  [ ! -s "$err" ] || { cat "$err" >&2; false; }

  # Error paths free what they took too.
  run --separate-stderr timeout -k 5 60 "$asan/mseg-textfile" --dir "$OUT/missing"
  [ "$status" -eq 1 ]
  [ "${#stderr_lines[@]}" -eq 1 ]
  rm "$(pin mseg_gc)"
  run --separate-stderr timeout -k 5 60 "$asan/mseg-textfile" --dir "$OUT"
  [ "$status" -eq 1 ]
  [ "${#stderr_lines[@]}" -eq 1 ]
  [[ $stderr == "mseg: cannot open $(pin mseg_gc): "* ]]
  no_temp "$OUT"
}

# --- dashboard and alert rules ---------------------------------------------------

# mseg_names_in TEXT...: the mseg_* names used by PromQL expressions, with
# quoted strings (label values such as map="mseg_sessions") taken out.
mseg_names_in() {
  sed -E 's/"([^"\\]|\\.)*"//g' | grep -oE '\bmseg_[a-zA-Z0-9_]+' | sort -u
}

# The metrics of audit mode, staged policies and rule hits (issue 15;
# docs/DESIGN.md "Flows", Prometheus): each has its panel.
AWAITED_METRICS='mseg_audit_denied_total|mseg_staged_loaded|mseg_staged_disagreements_total|mseg_rule_hits_total'
# mseg_policy_group, a label of the targets (docs/DESIGN.md "Fleet"), is
# the one name the dashboard and the rules use that mseg.prom does not hold.
AWAITED="mseg_policy_group"

# not_written NAMES FILE: the NAMES (one a line) neither in FILE nor awaited.
not_written() {
  comm -23 <(echo "$1") <(prom_names "$2") | grep -vxE "$AWAITED" || true
}

# rule_exprs FILE: every alert expression of FILE, whole (a folded one too).
rule_exprs() {
  "$MSEG_PYTHON" -c '
import sys, yaml
for g in yaml.safe_load(open(sys.argv[1]))["groups"]:
    for r in g["rules"]:
        print(r["expr"])' "$1"
}

@test "alert rules: promtool check rules and the rules' unit tests pass; every mseg metric they use exists" {
  local rules=$MSEG_ROOT/exporters/prometheus/mseg-rules.yml used
  run promtool check rules "$rules"
  [ "$status" -eq 0 ]
  [[ $output == *"SUCCESS: 11 rules found"* ]]
  run promtool test rules "$MSEG_ROOT/exporters/prometheus/mseg-rules.test.yml"
  [ "$status" -eq 0 ]
  [[ $output == *SUCCESS* ]]

  crafted_setup
  "$TEXTFILE" --dir "$OUT"
  used=$(rule_exprs "$rules" | mseg_names_in)
  [ "$(wc -l <<<"$used")" -ge 10 ]
  grep -qx mseg_staged_disagreements_total <<<"$used"
  grep -qx mseg_staged_loaded <<<"$used"
  grep -qx mseg_audit_denied_total <<<"$used"
  local missing
  missing=$(not_written "$used" "$OUT/mseg.prom")
  [ -z "$missing" ] || { echo "not written by the collector: $missing" >&2; false; }
  grep -q 'node_textfile_mtime_seconds{file=~".\*mseg.prom"}' "$rules"
}

@test "dashboard: Grafana JSON with a Prometheus datasource variable; every query parses and uses only metrics the collector writes" {
  local dash=$MSEG_ROOT/exporters/grafana/mseg.json exprs used
  jq -e . "$dash" >/dev/null
  jq -e '.title == "mseg" and (.uid | length) > 0 and (.panels | length) >= 10' "$dash"
  jq -e '.templating.list | any(.type == "datasource" and .query == "prometheus" and .name == "datasource")' "$dash"
  # Every panel and every query reads from that variable.
  jq -e '[.panels[] | select(.type != "row") | .datasource.uid, .targets[].datasource.uid]
         | all(. == "${datasource}")' "$dash"
  exprs=$(jq -r '.. | objects | .expr? // empty' "$dash")
  [ "$(wc -l <<<"$exprs")" -ge 20 ]

  # Each query is valid PromQL: promtool checks them as recording rules,
  # with Grafana's variables given values.
  # shellcheck disable=SC2016 # sed and jq code, not shell
  jq -n --rawfile e <(sed -e 's/\$__rate_interval/5m/g' -e 's/\$__range/1h/g' -e 's/\$instance/.*/g' <<<"$exprs") '
    {groups: [{name: "dashboard", rules: ($e | split("\n") | map(select(length > 0))
      | to_entries | map({record: "dashboard:query:\(.key)", expr: .value}))}]}' \
    >"$BATS_TEST_TMPDIR/dashboard-rules.yml"
  run promtool check rules "$BATS_TEST_TMPDIR/dashboard-rules.yml"
  [ "$status" -eq 0 ] || { echo "$output" >&2; false; }

  crafted_setup
  "$TEXTFILE" --dir "$OUT"
  # The queries and the template variables' (label_values(mseg_build_info, ...)).
  used=$(jq -r '.. | objects | (.expr?, .definition?) // empty' "$dash" | mseg_names_in)
  [ "$(wc -l <<<"$used")" -ge 20 ]
  local missing name
  missing=$(not_written "$used" "$OUT/mseg.prom")
  [ -z "$missing" ] || { echo "not written by the collector: $missing" >&2; false; }
  # Every metric of issue 15 has its panel.
  for name in ${AWAITED_METRICS//|/ }; do
    grep -qx "$name" <<<"$used" || { echo "no panel reads $name" >&2; false; }
  done
}

@test "dashboard: the rule-hit, audit, staged and drop panels' own queries give the expected series on made-up data" {
  local dash=$MSEG_ROOT/exporters/grafana/mseg.json
  "$MSEG_PYTHON" "$MSEG_HELPERS/dashqueries.py" "$dash" "$MSEG_HELPERS/dashboard-queries.test.yml" \
    >"$BATS_TEST_TMPDIR/dashboard-queries.test.yml"
  run promtool test rules "$BATS_TEST_TMPDIR/dashboard-queries.test.yml"
  [ "$status" -eq 0 ] || { echo "$output" >&2; false; }
  [[ $output == *SUCCESS* ]]
  # Every query on an awaited metric, and the drops panel's, is evaluated there.
  local key keys
  keys=$(jq -r --arg a "$AWAITED_METRICS" '.panels[] | .title as $t | .targets[]?
    | select((.expr | test("\\b(" + $a + ")\\b")) or $t == "Drops by reason") | "\($t)/\(.refId)"' "$dash")
  [ "$(wc -l <<<"$keys")" -ge 8 ]
  while IFS= read -r key; do
    grep -qxF "      - panel: $key" "$MSEG_HELPERS/dashboard-queries.test.yml" ||
      { echo "no case for $key" >&2; false; }
  done <<<"$keys"
}

# --- installation -------------------------------------------------------------------

@test "make install ships the collector, the systemd units, the dashboard and the rules, with consistent paths" {
  need systemd-analyze command -v systemd-analyze
  local d=$BATS_TEST_TMPDIR/root unit exe line
  make -s -C "$MSEG_ROOT" install DESTDIR="$d" >/dev/null
  test -x "$d/usr/local/lib/mseg/build/mseg-textfile"
  test -x "$d/usr/local/lib/mseg/build/mseg-gc"
  test -L "$d/usr/local/sbin/mseg"
  jq -e . "$d/usr/local/lib/mseg/exporters/grafana/mseg.json" >/dev/null
  promtool check rules "$d/usr/local/lib/mseg/exporters/prometheus/mseg-rules.yml" >/dev/null
  grep -qx 'ExecStart=/usr/local/lib/mseg/build/mseg-textfile --interval 15' \
    "$d/usr/local/lib/systemd/system/mseg-textfile.service"
  grep -qx 'ExecStart=/usr/local/sbin/mseg gc --interval 1' \
    "$d/usr/local/lib/systemd/system/mseg-gc.service"
  # systemd-analyze's only complaint may be that the programs are not
  # installed on this machine; they are in the install tree.
  grep -qx 'ExecStart=/usr/local/sbin/mseg boot' "$d/usr/local/lib/systemd/system/mseg.service"
  for unit in mseg mseg-textfile mseg-gc mseg-eventd; do
    run systemd-analyze verify --man=no "$d/usr/local/lib/systemd/system/$unit.service"
    while IFS= read -r line; do
      [[ -z $line ]] && continue
      [[ $line =~ ^$unit\.service:\ Command\ (/[^ ]+)\ is\ not\ executable ]] ||
        { echo "systemd-analyze: $line" >&2; false; }
      exe=${BASH_REMATCH[1]}
      test -x "$d$exe"
    done <<<"$output"
  done
  # Another prefix moves every path the units name.
  make -s -C "$MSEG_ROOT" install DESTDIR="$d" PREFIX=/opt/mseg >/dev/null
  grep -qx 'ExecStart=/opt/mseg/lib/mseg/build/mseg-textfile --interval 15' \
    "$d/opt/mseg/lib/systemd/system/mseg-textfile.service"
  grep -qx 'ExecStart=/opt/mseg/sbin/mseg gc --interval 1' \
    "$d/opt/mseg/lib/systemd/system/mseg-gc.service"
}
