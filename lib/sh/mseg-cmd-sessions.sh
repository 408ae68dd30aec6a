#!/usr/bin/env bash
# mseg-cmd-sessions.sh: `mseg sessions`.
# Requires mseg-common.sh, mseg-layout.sh, mseg-bpftool.sh, mseg-jq.sh and
# mseg-cmd-config.sh (the effective timeouts).
# shellcheck disable=SC2034 # globals and namerefs serve the sourcing scripts

mseg_sessions_usage() {
  cat <<'EOF'
usage: mseg sessions [--json] [--state NAME] [--all]

List the session table, one connection per line (or per JSON object):
proto, the originator's address and port (src, sport), the responder's
(dst, dport), the TCP state as the originator sees it (NONE for non-TCP),
packets and bytes in both directions, seconds since the last packet (idle_s)
and since the first (age_s), and the cached verdict.

A session idle for longer than its timeout (per TCP state or protocol, as
'mseg config show' prints them) is not listed: the data path already treats
it as absent, and 'mseg gc' deletes it.

  --state NAME   only sessions in this state (NONE, SYN_SENT, SYN_RECV,
                 ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE,
                 CLOSE_WAIT, LAST_ACK, CLOSING)
  --all          list expired sessions too, with "expired": true|false
                 (an EXPIRED column in the table)
EOF
}

# struct mseg_session's flag MSEG_SESS_REPLIED (bpf/mseg_abi.h; a test
# checks the two agree): a UDP flow that was answered has its own timeout.
readonly MSEG_SESS_REPLIED=1

# shellcheck disable=SC2016 # jq code
readonly MSEG_SESSIONS_JQ='
  # The config key of a session timeout, chosen as bpf/mseg_timeout.h does.
  def mseg_timeout_key($proto; $state; $flags):
    if $proto == 6 then
      ({SYN_SENT: "timeout_syn_sent", SYN_RECV: "timeout_syn_recv",
        ESTABLISHED: "timeout_established", FIN_WAIT1: "timeout_fin_wait",
        FIN_WAIT2: "timeout_fin_wait", CLOSING: "timeout_fin_wait",
        CLOSE_WAIT: "timeout_close_wait", LAST_ACK: "timeout_last_ack",
        TIME_WAIT: "timeout_time_wait", CLOSE: "timeout_close"}[$state]
       // "timeout_syn_sent")
    elif $proto == 17 then
      (if (($flags / $replied) | floor) % 2 == 1
       then "timeout_udp_replied" else "timeout_udp" end)
    elif $proto == 1 or $proto == 58 then "timeout_icmp"
    else "timeout_other" end;

  mseg_addr_names(.formatted.key | .addr_lo, .addr_hi) as $names
  | map(.formatted.key as $k | .formatted.value as $v
    | (if $v.orig_is_hi != 0
       then [$k.addr_hi, $k.port_hi, $k.addr_lo, $k.port_lo]
       else [$k.addr_lo, $k.port_lo, $k.addr_hi, $k.port_hi] end) as $e
    | ($v.state | mseg_name($states)) as $st
    | ($now - $v.last_seen_ns / 1e9) as $idle
    | {
        proto: ($k.proto | mseg_proto),
        src: $names[$e[0] | tostring],
        sport: $e[1],
        dst: $names[$e[2] | tostring],
        dport: $e[3],
        state: $st,
        packets: ($v.packets | add),
        bytes: ($v.bytes | add),
        idle_s: ([$idle, 0] | max | mseg_round1),
        age_s: ([$now - $v.created_ns / 1e9, 0] | max | mseg_round1),
        action: ($v.action | mseg_name($actions)),
        rule: (if $v.rule_id == 0 then "default" else $v.rule_id end),
        # as the data path: idle for longer than the timeout
        expired: ($idle > $cfg[mseg_timeout_key($k.proto; $st; $v.flags)])
      })
  | map(select($state == "" or .state == $state)
    | if $all then . elif .expired then empty else del(.expired) end)
  | sort_by(.proto, .src, .sport, .dst, .dport)'

mseg_cmd_sessions() {
  local json=0 state="" all=false
  while (($#)); do
    case $1 in
      -h | --help) mseg_sessions_usage; return 0 ;;
      --json) json=1 ;;
      --all) all=true ;;
      --state)
        mseg_optarg "$@"
        state=$MSEG_OPTARG
        shift
        ;;
      --state=*) state=${1#*=} ;;
      *) mseg_usage_die "sessions: unknown argument: $1" ;;
    esac
    shift
  done
  if [[ -n $state && " ${MSEG_STATE_NAMES[*]} " != *" ${state^^} "* ]]; then
    mseg_usage_die "unknown state: '$state' (expected one of ${MSEG_STATE_NAMES[*]})"
  fi
  state=${state^^}
  mseg_abi_load
  mseg_require_maps mseg_sessions mseg_config
  local now states actions cfg out
  # /proc/uptime is CLOCK_BOOTTIME, the clock the data path stamps.
  read -r now _ </proc/uptime
  # The names are plain words: JSON arrays without starting jq twice each.
  printf -v states '"%s",' "${MSEG_STATE_NAMES[@]}"
  states="[${states%,}]"
  printf -v actions '"%s",' "${MSEG_ACTION_NAMES[@]}"
  actions="[${actions%,}]"
  cfg=$(mseg_config_effective_json) || exit
  out=$(mseg_map_dump mseg_sessions |
    mseg_jq "$MSEG_SESSIONS_JQ" --argjson now "$now" --argjson states "$states" \
      --argjson actions "$actions" --arg state "$state" --argjson cfg "$cfg" \
      --argjson replied "$MSEG_SESS_REPLIED" --argjson all "$all") || exit
  if ((json)); then
    printf '%s\n' "$out"
    return 0
  fi
  # shellcheck disable=SC2016 # jq code
  mseg_jq 'map([.proto, .src, .sport, .dst, .dport, .state, .packets, .bytes,
      .idle_s, .action, .rule] + if $all then [if .expired then "yes" else "no" end]
      else [] end)
    | mseg_table(["PROTO", "SRC", "SPORT", "DST", "DPORT", "STATE", "PACKETS",
      "BYTES", "IDLE_S", "ACTION", "RULE"] + if $all then ["EXPIRED"] else [] end)' \
    -r --argjson all "$all" <<<"$out"
}
