#!/usr/bin/env bash
# mseg-cmd-monitor.sh: `mseg monitor`, the session table's load at a glance.
# Requires mseg-common.sh, mseg-layout.sh and mseg-bpftool.sh.

mseg_monitor_usage() {
  cat <<'EOF2'
usage: mseg monitor [--once] [--json] [--count N]

Show the session table's load, refreshed in place once a second until
Ctrl-C (when stdout is not a terminal, one plain line a second instead):
  Sessions: N | Evictions: N | Pressure: N% | SYN_SENT: N | Flood: no

Sessions are the entries the table holds (the kernel's own count),
Evictions the new sessions refused because the table was full, Pressure
Sessions over capacity, SYN_SENT the half-open sessions.
  --once     print one line and exit
  --json     one JSON object per sample, a line each (docs/json.md)
  --count N  stop after N samples
EOF2
}

#######################################
# One sample of mseg_pressure and mseg_gc as a JSON object.
#######################################
mseg_monitor_sample() {
  local capacity=$1 pressure gc n
  pressure=$(mseg_map_dump mseg_pressure) || exit
  gc=$(mseg_map_dump mseg_gc) || exit
  n=$("$MSEG_SESSIONS_BIN" --count --all) || exit
  jq -n -c --argjson cap "$capacity" --argjson p "$pressure" --argjson g "$gc" \
    --argjson n "$n" '
    ($p[0].formatted.value) as $p | ($g[0].formatted.value) as $g
    | ($p.half_open_opened - $p.half_open_closed - $g.half_open_reaped) as $h
    | {sessions: $n, capacity: $cap, evictions: $p.refused,
       pressure_pct: (($n * 100 / $cap) | floor),
       half_open: (if $h > 0 then $h else 0 end),
       syn_rate: $p.syn_rate,
       level: (if ($p.flags / 4 | floor) % 2 == 1 then "degraded"
               elif ($p.flags / 2 | floor) % 2 == 1 then "critical"
               elif $p.flags % 2 == 1 then "warning" else "ok" end),
       flood: (($p.flags / 8 | floor) % 2 == 1),
       warn_count: $p.warn_count, crit_count: $p.crit_count,
       degrade_count: $p.degrade_count, flood_count: $p.flood_count}'
}

mseg_monitor_line() {
  jq -r '"Sessions: \(.sessions) | Evictions: \(.evictions) | Pressure: \(.pressure_pct)% | SYN_SENT: \(.half_open) | Flood: \(if .flood then "YES" else "no" end) | Level: \(.level)"'
}

mseg_cmd_monitor() {
  local once=0 json=0 count=0 capacity sample n=0
  while (($#)); do
    case $1 in
      -h | --help) mseg_monitor_usage; return 0 ;;
      --once) once=1 ;;
      --json) json=1 ;;
      --count)
        mseg_optarg "$@"
        shift
        if ! mseg_is_uint "$MSEG_OPTARG" 1000000000 || ((MSEG_OPTARG == 0)); then
          mseg_usage_die "monitor: --count wants a whole number > 0, not '$MSEG_OPTARG'"
        fi
        count=$MSEG_OPTARG
        ;;
      *) mseg_usage_die "monitor: unknown argument: $1" ;;
    esac
    shift
  done
  ((once)) && count=1
  mseg_abi_load
  mseg_require_maps mseg_sessions mseg_pressure mseg_gc
  capacity=$(mseg_map_show mseg_sessions | jq -r .max_entries) || exit
  # Ctrl-C ends the live view cleanly, on a line of its own.
  if [[ -t 1 ]] && ((!json && count != 1)); then
    trap 'printf "\n"; exit 0' INT TERM
  else
    trap 'exit 0' INT TERM
  fi
  while :; do
    sample=$(mseg_monitor_sample "$capacity")
    n=$((n + 1))
    if ((json)); then
      printf '%s\n' "$sample"
    elif ((count == 1)) || [[ ! -t 1 ]]; then
      # A pipe or a file gets plain lines, never terminal escapes.
      mseg_monitor_line <<<"$sample"
    else
      printf '\r\033[K%s' "$(mseg_monitor_line <<<"$sample")"
    fi
    ((count > 0 && n >= count)) && break
    sleep 1
  done
  ((json || count == 1)) || [[ ! -t 1 ]] || printf '\n'
}
