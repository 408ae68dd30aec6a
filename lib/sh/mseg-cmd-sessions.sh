#!/usr/bin/env bash
# mseg-cmd-sessions.sh: `mseg sessions`.
# Requires mseg-common.sh, mseg-layout.sh, mseg-bpftool.sh and mseg-jq.sh.
# shellcheck disable=SC2034 # globals and namerefs serve the sourcing scripts

mseg_sessions_usage() {
  cat <<'EOF'
usage: mseg sessions [--json] [--state NAME]

List the session table, one connection per line (or per JSON object):
proto, the originator's address and port (src, sport), the responder's
(dst, dport), the TCP state as the originator sees it (NONE for non-TCP),
packets and bytes in both directions, seconds since the last packet (idle_s)
and since the first (age_s), and the cached verdict.

  --state NAME   only sessions in this state (NONE, SYN_SENT, SYN_RECV,
                 ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE,
                 CLOSE_WAIT, LAST_ACK, CLOSING)
EOF
}

# shellcheck disable=SC2016 # jq code
readonly MSEG_SESSIONS_JQ='
  mseg_addr_names(.formatted.key | .addr_lo, .addr_hi) as $names
  | map(.formatted.key as $k | .formatted.value as $v
    | (if $v.orig_is_hi != 0
       then [$k.addr_hi, $k.port_hi, $k.addr_lo, $k.port_lo]
       else [$k.addr_lo, $k.port_lo, $k.addr_hi, $k.port_hi] end) as $e
    | {
        proto: ($k.proto | mseg_proto),
        src: $names[$e[0] | tostring],
        sport: $e[1],
        dst: $names[$e[2] | tostring],
        dport: $e[3],
        state: ($v.state | mseg_name($states)),
        packets: ($v.packets | add),
        bytes: ($v.bytes | add),
        idle_s: ([$now - $v.last_seen_ns / 1e9, 0] | max | mseg_round1),
        age_s: ([$now - $v.created_ns / 1e9, 0] | max | mseg_round1),
        action: ($v.action | mseg_name($actions))
      })
  | map(select($state == "" or .state == $state))
  | sort_by(.proto, .src, .sport, .dst, .dport)'

mseg_cmd_sessions() {
  local json=0 state=""
  while (($#)); do
    case $1 in
      -h | --help) mseg_sessions_usage; return 0 ;;
      --json) json=1 ;;
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
  mseg_require_maps mseg_sessions
  local now states actions out
  # /proc/uptime is CLOCK_BOOTTIME, the clock the data path stamps.
  read -r now _ </proc/uptime
  states=$(printf '%s\n' "${MSEG_STATE_NAMES[@]}" | jq -R . | jq -sc .)
  actions=$(printf '%s\n' "${MSEG_ACTION_NAMES[@]}" | jq -R . | jq -sc .)
  out=$(mseg_map_dump mseg_sessions |
    mseg_jq "$MSEG_SESSIONS_JQ" --argjson now "$now" --argjson states "$states" \
      --argjson actions "$actions" --arg state "$state") || exit
  if ((json)); then
    printf '%s\n' "$out"
    return 0
  fi
  mseg_jq 'map([.proto, .src, .sport, .dst, .dport, .state, .packets, .bytes,
      .idle_s, .action])
    | mseg_table(["PROTO", "SRC", "SPORT", "DST", "DPORT", "STATE", "PACKETS",
      "BYTES", "IDLE_S", "ACTION"])' -r <<<"$out"
}
