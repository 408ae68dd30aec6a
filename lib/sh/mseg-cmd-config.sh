#!/usr/bin/env bash
# mseg-cmd-config.sh: `mseg config show|set` and `mseg default allow|deny`.
# Requires mseg-common.sh, mseg-layout.sh, mseg-bpftool.sh and mseg-jq.sh.
# shellcheck disable=SC2034 # globals and namerefs serve the sourcing scripts

# CLI key : mseg_config field : kind. Kinds: bool (on/off/1/0), pct (a
# percentage), num (any value the field holds). 0 restores the default.
readonly -a MSEG_CONFIG_KEYS=(
  strict:strict:bool
  timeout_syn_sent:to_syn_sent:num
  timeout_syn_recv:to_syn_recv:num
  timeout_established:to_established:num
  timeout_fin_wait:to_fin_wait:num
  timeout_close_wait:to_close_wait:num
  timeout_last_ack:to_last_ack:num
  timeout_time_wait:to_time_wait:num
  timeout_close:to_close:num
  timeout_udp:to_udp:num
  timeout_udp_replied:to_udp_replied:num
  timeout_icmp:to_icmp:num
  timeout_other:to_other:num
  warn_pct:warn_pct:pct
  crit_pct:crit_pct:pct
  degrade_pct:degrade_pct:pct
  flood_half_open:flood_half_open:num
  flood_syn_rate:flood_syn_rate:num
  flood_syn_timeout:flood_syn_timeout:num
  event_rate:event_rate:num
)

mseg_config_usage() {
  local entry
  cat <<'EOF'
usage: mseg config show [--json]
       mseg config set KEY VALUE

show prints the effective value of every key (a key never set shows its
built-in default). set writes one key; VALUE 0 restores the default.
strict takes on|off|1|0; *_pct are percentages of the session table
(0..100) that must rise: warn_pct < crit_pct < degrade_pct (set them in the
order that keeps it so); timeout_* are seconds; flood_syn_rate and event_rate are per
second, flood_half_open a number of sessions.

keys:
EOF
  for entry in "${MSEG_CONFIG_KEYS[@]}"; do
    printf '  %s\n' "${entry%%:*}"
  done
}

mseg_default_usage() {
  cat <<'EOF'
usage: mseg default [allow|deny]

Set the action for new flows that match no rule, and make existing sessions
be judged again. Without an argument, print the current default action.
EOF
}

#######################################
# Print the JSON object of effective settings.
#######################################
_mseg_config_json() {
  local entry key field kind v def
  local -a cfg args=()
  mseg_config_read cfg
  v=$(mseg_buf_get_uint cfg config.default_action) || exit
  args+=(--arg default_action "${MSEG_ACTION_NAMES[v]:-$v}")
  for entry in "${MSEG_CONFIG_KEYS[@]}"; do
    IFS=: read -r key field kind <<<"$entry"
    v=$(mseg_buf_get_uint cfg "config.$field") || exit
    def=${MSEG_DEFAULT[$field]:-0}
    ((v != 0)) || v=$def
    if [[ $kind == bool ]]; then
      if ((v)); then v=true; else v=false; fi
    fi
    args+=(--argjson "$key" "$v")
  done
  # $ARGS.named keeps the keys in the order given.
  jq -c -n '$ARGS.named' "${args[@]}"
}

mseg_cmd_config_show() {
  local json=0
  while (($#)); do
    case $1 in
      --json) json=1 ;;
      *) mseg_usage_die "config show: unknown argument: $1" ;;
    esac
    shift
  done
  mseg_abi_load
  mseg_require_maps mseg_config
  local out
  out=$(_mseg_config_json) || exit
  if ((json)); then
    printf '%s\n' "$out"
  else
    jq -r 'to_entries
      | map([.key, (if .value == true then "on" elif .value == false then "off"
                    else .value end)])[] | join(" ")' <<<"$out" | _mseg_config_align
  fi
}

#######################################
# Align "key value" lines read from stdin into two columns.
#######################################
_mseg_config_align() {
  mseg_jq 'split("\n") | map(select(length > 0) | split(" "))
    | mseg_table(["KEY", "VALUE"])' -R -s -r
}

mseg_cmd_config_set() {
  (($# == 2)) || mseg_usage_die "config set needs KEY VALUE (see 'mseg config --help')"
  local key=$1 value=$2 entry k field="" kind max size
  for entry in "${MSEG_CONFIG_KEYS[@]}"; do
    IFS=: read -r k field kind <<<"$entry"
    [[ $k == "$key" ]] && break
    field=""
  done
  [[ -n $field ]] || mseg_usage_die "unknown config key: '$key' (see 'mseg config --help')"
  mseg_abi_load
  case $kind in
    bool)
      case $value in
        on | 1) value=1 ;;
        off | 0) value=0 ;;
        *) mseg_usage_die "invalid value for $key: '$value' (expected on, off, 1 or 0)" ;;
      esac
      ;;
    pct)
      mseg_is_uint "$value" 100 ||
        mseg_usage_die "invalid value for $key: '$value' (expected a percentage 0..100)"
      ;;
    num)
      size=${MSEG_FIELD_SIZE[config.$field]}
      max=$(((1 << (8 * size)) - 1))
      mseg_is_uint "$value" "$max" ||
        mseg_usage_die "invalid value for $key: '$value' (expected an integer 0..$max)"
      ;;
  esac
  mseg_require_maps mseg_config
  mseg_lock
  [[ $kind == pct ]] && _mseg_config_check_levels "$field" "$value"
  mseg_config_edit "$field" "$value"
}

#######################################
# Die unless the pressure levels stay in order once FIELD is VALUE:
# warn_pct < crit_pct < degrade_pct, as effective values (0 = default).
# Call under mseg_lock, before the edit.
#######################################
_mseg_config_check_levels() {
  local field=$1 value=$2 f v
  local -a cfg
  local -A eff=()
  mseg_config_read cfg
  for f in warn_pct crit_pct degrade_pct; do
    if [[ $f == "$field" ]]; then
      v=$value
    else
      v=$(mseg_buf_get_uint cfg "config.$f") || exit
    fi
    ((v != 0)) || v=${MSEG_DEFAULT[$f]}
    eff[$f]=$v
  done
  if ((eff[warn_pct] >= eff[crit_pct] || eff[crit_pct] >= eff[degrade_pct])); then
    mseg_die "the pressure levels must rise: warn_pct < crit_pct < degrade_pct, not ${eff[warn_pct]}, ${eff[crit_pct]}, ${eff[degrade_pct]} (${field%_pct}_pct $value)"
  fi
}

mseg_cmd_config() {
  local sub=${1:-}
  case $sub in
    -h | --help | help) mseg_config_usage ;;
    show | set)
      shift
      if mseg_wants_help "$@"; then
        mseg_config_usage
      else
        "mseg_cmd_config_$sub" "$@"
      fi
      ;;
    "") mseg_usage_die "config: missing subcommand: show or set (see 'mseg config --help')" ;;
    *) mseg_usage_die "config: unknown subcommand: $sub (expected show or set)" ;;
  esac
}

mseg_cmd_default() {
  if mseg_wants_help "$@"; then
    mseg_default_usage
    return 0
  fi
  (($# <= 1)) || mseg_usage_die "default takes one argument: allow or deny"
  local num cur
  case ${1:-} in
    allow | deny) ;;
    "")
      mseg_abi_load
      mseg_require_maps mseg_config
      num=$(mseg_config_get default_action) || exit
      printf '%s\n' "${MSEG_ACTION_NAMES[num]:-$num}"
      return 0
      ;;
    *) mseg_usage_die "invalid default action: '$1' (expected allow or deny)" ;;
  esac
  mseg_abi_load
  num=$(mseg_action_num "$1")
  mseg_require_maps mseg_config
  mseg_lock
  cur=$(mseg_config_get default_action) || exit
  # Unchanged policy: no need to make every session be judged again.
  ((cur == num)) && return 0
  mseg_config_edit --bump-gen default_action "$num"
}
