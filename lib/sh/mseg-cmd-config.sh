#!/usr/bin/env bash
# mseg-cmd-config.sh: `mseg config show|set` and `mseg default allow|deny`.
# Requires mseg-common.sh, mseg-layout.sh, mseg-bpftool.sh and mseg-jq.sh.
# shellcheck disable=SC2034 # globals and namerefs serve the sourcing scripts

# CLI key : mseg_config field : kind. Kinds: bool (on/off/1/0), pct (a
# percentage), num (any value the field holds), count (a number of sessions
# the table can exceed: below its capacity), mode (enforce or audit: bit
# MSEG_MODE_AUDIT of mseg_config.mode, whose other bits say whether a
# staged policy is loaded), acct (on or off: bit MSEG_MODE_NO_ACCT of
# mseg_config.mode, set when off; its field is mode.acct, which
# mseg_config_edit knows). 0 restores the default.
readonly -a MSEG_CONFIG_KEYS=(
  mode:mode:mode
  accounting:mode.acct:acct
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
  timeout_unconfirmed:to_unconfirmed:num
  warn_pct:warn_pct:pct
  crit_pct:crit_pct:pct
  degrade_pct:degrade_pct:pct
  flood_half_open:flood_half_open:count
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
mode is enforce (the default) or audit: in audit mode a deny that would
apply passes, counted (mseg_audit_denied_total, and per rule in 'mseg rule
list') and logged as a would-deny naming the rule (docs/policy.md); open
sessions are judged again when it changes. accounting is on (the default)
or off: off keeps no per-packet counts (a session's packets and bytes, a
rule's packets; a rule's flows and the global counters stay), as
nf_conntrack without nf_conntrack_acct, for a faster established path.
strict takes on|off|1|0; *_pct are percentages of the session table
(0..100) that must rise: warn_pct < crit_pct < degrade_pct (set them in the
order that keeps it so); timeout_* are seconds (timeout_unconfirmed: a TCP
session picked up mid-stream that the other side has not answered yet);
flood_syn_rate and event_rate are per second, flood_half_open a number of
half-open sessions, below the table's capacity (by default a sixteenth of
it).

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
# The name of mseg_config.mode's audit bit: audit or enforce.
# Arguments:
#   the mode byte
#######################################
_mseg_mode_name() {
  if (($1 & MSEG_MODE_AUDIT)); then echo audit; else echo enforce; fi
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
    v=$(mseg_buf_get_uint cfg "config.${field%.*}") || exit
    if [[ $kind == mode ]]; then
      args+=(--arg "$key" "$(_mseg_mode_name "$v")")
      continue
    fi
    if [[ $kind == acct ]]; then
      args+=(--argjson "$key" "$( ((v & MSEG_MODE_NO_ACCT)) && echo false || echo true)")
      continue
    fi
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

#######################################
# Check one setting, without writing it: on success MSEG_CFG_FIELD and
# MSEG_CFG_VALUE hold the mseg_config field and its value; on failure
# MSEG_CFG_ERROR says why. Used by `config set` and by `apply` for the
# `config KEY VALUE` lines of a ruleset (one checker for both).
# Arguments:
#   KEY VALUE
# Returns:
#   0 valid, 1 not
#######################################
mseg_config_resolve() {
  local key=$1 value=$2 entry k field="" kind max size
  MSEG_CFG_FIELD="" MSEG_CFG_VALUE="" MSEG_CFG_ERROR=""
  for entry in "${MSEG_CONFIG_KEYS[@]}"; do
    IFS=: read -r k field kind <<<"$entry"
    [[ $k == "$key" ]] && break
    field=""
  done
  if [[ -z $field ]]; then
    MSEG_CFG_ERROR="unknown config key: '$key' (see 'mseg config --help')"
    return 1
  fi
  mseg_abi_load
  case $kind in
    mode)
      case $value in
        enforce | 0) value=0 ;;
        audit) value=$MSEG_MODE_AUDIT ;;
        *) MSEG_CFG_ERROR="invalid value for $key: '$value' (expected enforce or audit)" ;;
      esac
      ;;
    acct)
      case $value in
        on | 0) value=0 ;;
        off) value=$MSEG_MODE_NO_ACCT ;;
        *) MSEG_CFG_ERROR="invalid value for $key: '$value' (expected on or off)" ;;
      esac
      ;;
    bool)
      case $value in
        on | 1) value=1 ;;
        off | 0) value=0 ;;
        *) MSEG_CFG_ERROR="invalid value for $key: '$value' (expected on, off, 1 or 0)" ;;
      esac
      ;;
    pct)
      mseg_is_uint "$value" 100 ||
        MSEG_CFG_ERROR="invalid value for $key: '$value' (expected a percentage 0..100)"
      ;;
    num)
      size=${MSEG_FIELD_SIZE[config.$field]}
      max=$(((1 << (8 * size)) - 1))
      mseg_is_uint "$value" "$max" ||
        MSEG_CFG_ERROR="invalid value for $key: '$value' (expected an integer 0..$max)"
      ;;
    count)
      # "more than N" can only happen for N below the pinned table's size
      mseg_require_maps mseg_sessions
      max=$(mseg_map_show mseg_sessions | jq -r .max_entries) || exit
      mseg_is_uint "$value" $((max - 1)) ||
        MSEG_CFG_ERROR="invalid value for $key: '$value' (the session table holds $max: expected 0..$((max - 1)), a count it can exceed)"
      ;;
  esac
  [[ -z $MSEG_CFG_ERROR ]] || return 1
  MSEG_CFG_FIELD=$field MSEG_CFG_VALUE=$value
}

mseg_cmd_config_set() {
  (($# == 2)) || mseg_usage_die "config set needs KEY VALUE (see 'mseg config --help')"
  mseg_config_resolve "$1" "$2" || mseg_usage_die "$MSEG_CFG_ERROR"
  local field=$MSEG_CFG_FIELD value=$MSEG_CFG_VALUE
  mseg_require_maps mseg_config
  mseg_lock
  mseg_config_check_levels "$field" "$value"
  mseg_config_edit "$field" "$value"
}

#######################################
# Die unless the pressure levels stay in order once every FIELD is VALUE:
# warn_pct < crit_pct < degrade_pct, as effective values (0 = default).
# Call under mseg_lock, before the edit.
# Arguments:
#   FIELD VALUE pairs (any fields: only the three levels count)
#######################################
mseg_config_check_levels() {
  local f v said=""
  local -a cfg
  local -A eff=() new=()
  while (($# >= 2)); do
    new[$1]=$2
    [[ $1 == *_pct ]] && said+="${said:+, }$1 $2"
    shift 2
  done
  [[ -n $said ]] || return 0
  mseg_config_read cfg
  for f in warn_pct crit_pct degrade_pct; do
    if [[ -n ${new[$f]:-} ]]; then
      v=${new[$f]}
    else
      v=$(mseg_buf_get_uint cfg "config.$f") || exit
    fi
    ((v != 0)) || v=${MSEG_DEFAULT[$f]}
    eff[$f]=$v
  done
  if ((eff[warn_pct] >= eff[crit_pct] || eff[crit_pct] >= eff[degrade_pct])); then
    mseg_die "the pressure levels must rise: warn_pct < crit_pct < degrade_pct, not ${eff[warn_pct]}, ${eff[crit_pct]}, ${eff[degrade_pct]} ($said)"
  fi
}

#######################################
# The settings an operator made, as ruleset lines (`config KEY VALUE`; a
# key never set, or reset to 0, left out): what `mseg save` adds, so that
# `mseg save | mseg apply -` reproduces them.
#######################################
mseg_config_lines() {
  local entry key field kind v
  local -a cfg
  mseg_config_read cfg
  for entry in "${MSEG_CONFIG_KEYS[@]}"; do
    IFS=: read -r key field kind <<<"$entry"
    v=$(mseg_buf_get_uint cfg "config.${field%.*}") || exit
    [[ $kind == mode ]] && v=$((v & MSEG_MODE_AUDIT))
    [[ $kind == acct ]] && v=$((v & MSEG_MODE_NO_ACCT))
    ((v != 0)) || continue
    [[ $kind == bool ]] && v=on
    [[ $kind == mode ]] && v=audit
    [[ $kind == acct ]] && v=off
    printf 'config %s %s\n' "$key" "$v"
  done
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
