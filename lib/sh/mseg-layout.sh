#!/usr/bin/env bash
# mseg-layout.sh: the hex bytes of mseg_config and the array keys. Policy
# keys and values (addresses, prefixes, rules) come from build/mseg-ruleset,
# the one encoder (docs/policy.md).
#
# Sizes, offsets and defaults come from build/mseg-abi (compiled from
# bpf/mseg_abi.h), read once per command, so nothing here restates a layout.
# Decoding for output uses bpftool's BTF view instead (see mseg-jq.sh).
# Requires mseg-common.sh.
# shellcheck disable=SC2034 # globals and namerefs serve the sourcing scripts

[[ -n ${MSEG_LAYOUT_LOADED:-} ]] && return 0
MSEG_LAYOUT_LOADED=1

# Filled by mseg_abi_load.
MSEG_ABI_VERSION=
MSEG_VERSION=
MSEG_ABI_MAX_SESSIONS=
MSEG_ABI_MAPS=()
declare -gA MSEG_MAP_KEYSZ=() MSEG_MAP_VALSZ=() MSEG_MAP_MAX=()
declare -gA MSEG_FIELD_OFF=() MSEG_FIELD_SIZE=() MSEG_DEFAULT=() MSEG_CONST=()
# mseg_config.mode's bits (MSEG_MODE_* of bpf/mseg_abi.h)
MSEG_MODE_AUDIT=""
MSEG_MODE_STAGED=""
MSEG_MODE_STAGED_DENY=""
MSEG_MODE_NO_ACCT=""

# enum mseg_action and enum mseg_tcp_state of bpf/mseg_abi.h. mseg-abi does
# not print enums; tests/bats/cli.bats checks these against the header.
# would-deny is MSEG_ACT_AUDIT: a deny passed by audit mode.
readonly -a MSEG_ACTION_NAMES=(allow deny log would-deny)
readonly -a MSEG_STATE_NAMES=(NONE SYN_SENT SYN_RECV ESTABLISHED FIN_WAIT1
  FIN_WAIT2 TIME_WAIT CLOSE CLOSE_WAIT LAST_ACK CLOSING)

#######################################
# Read this build's ABI from $MSEG_ABI_BIN, once.
#######################################
mseg_abi_load() {
  [[ -n $MSEG_ABI_VERSION ]] && return 0
  [[ -x $MSEG_ABI_BIN ]] || mseg_die "ABI helper not found: $MSEG_ABI_BIN: run 'make'"
  local out kind a b c d
  out=$("$MSEG_ABI_BIN") || mseg_die "$MSEG_ABI_BIN failed"
  while read -r kind a b c d; do
    case $kind in
      version) MSEG_VERSION=$a ;;
      abi_version) MSEG_ABI_VERSION=$a ;;
      max_sessions) MSEG_ABI_MAX_SESSIONS=$a ;;
      map)
        MSEG_ABI_MAPS+=("$a")
        MSEG_MAP_KEYSZ[$a]=$b
        MSEG_MAP_VALSZ[$a]=$c
        MSEG_MAP_MAX[$a]=$d
        ;;
      field)
        MSEG_FIELD_OFF[$a]=$b
        MSEG_FIELD_SIZE[$a]=$c
        ;;
      default) MSEG_DEFAULT[${a#config.}]=$b ;;
      const) MSEG_CONST[$a]=$b ;;
    esac
  done <<<"$out"
  [[ -n $MSEG_ABI_VERSION ]] || mseg_die "$MSEG_ABI_BIN printed no abi_version"
  MSEG_MODE_AUDIT=${MSEG_CONST[mode_audit]}
  MSEG_MODE_STAGED=${MSEG_CONST[mode_staged]}
  MSEG_MODE_STAGED_DENY=${MSEG_CONST[mode_staged_deny]}
  MSEG_MODE_NO_ACCT=${MSEG_CONST[mode_no_acct]}
}

#######################################
# Print VALUE as SIZE little-endian hex bytes ("01 00 00 00").
# Arguments:
#   VALUE (decimal, fits in 63 bits), SIZE in bytes (1..8)
#######################################
mseg_le_hex() {
  local v=$1 n=$2 i byte out=""
  for ((i = 0; i < n; i++)); do
    printf -v byte '%02x' $(((v >> (8 * i)) & 0xff))
    out+="${out:+ }$byte"
  done
  printf '%s\n' "$out"
}

#######################################
# Make the array named $1 SIZE zero bytes long.
#######################################
mseg_buf_zero() {
  local -n _mseg_bz=$1
  local i
  _mseg_bz=()
  for ((i = 0; i < $2; i++)); do _mseg_bz+=(00); done
}

#######################################
# Load hex bytes (as bpftool prints them, "0x1f" or "1f") into array $1.
#######################################
mseg_buf_from() {
  local -n _mseg_bf=$1
  shift
  _mseg_bf=("${@#0x}")
}

#######################################
# Die unless FIELD is known and array $1 is long enough to hold it.
#######################################
_mseg_field_check() {
  local -n _mseg_fc=$1
  local field=$2
  [[ -n ${MSEG_FIELD_OFF[$field]:-} ]] ||
    mseg_die "internal: $field is not in $MSEG_ABI_BIN's output"
  ((MSEG_FIELD_OFF[$field] + MSEG_FIELD_SIZE[$field] <= ${#_mseg_fc[@]})) ||
    mseg_die "internal: $field lies outside a ${#_mseg_fc[@]}-byte buffer"
}

#######################################
# Store an unsigned integer into FIELD (e.g. rule_key.dport) of array $1.
#######################################
mseg_buf_set_uint() {
  local -n _mseg_bu=$1
  local field=$2 value=$3 off size i
  _mseg_field_check "$1" "$field"
  off=${MSEG_FIELD_OFF[$field]}
  size=${MSEG_FIELD_SIZE[$field]}
  ((size <= 8)) || mseg_die "internal: $field is not an integer field"
  for ((i = 0; i < size; i++)); do
    printf -v "_mseg_bu[off + i]" '%02x' $(((value >> (8 * i)) & 0xff))
  done
}

#######################################
# Store hex bytes (exactly the field's size) into FIELD of array $1.
#######################################
mseg_buf_set_bytes() {
  local -n _mseg_bb=$1
  local field=$2 off size i
  _mseg_field_check "$1" "$field"
  shift 2
  off=${MSEG_FIELD_OFF[$field]}
  size=${MSEG_FIELD_SIZE[$field]}
  (($# == size)) || mseg_die "internal: $field needs $size bytes, got $#"
  for ((i = 0; i < size; i++)); do
    _mseg_bb[off + i]=$1
    shift
  done
}

#######################################
# Print the unsigned integer stored in FIELD of array $1.
#######################################
mseg_buf_get_uint() {
  local -n _mseg_bg=$1
  local field=$2 off size i v=0
  _mseg_field_check "$1" "$field"
  off=${MSEG_FIELD_OFF[$field]}
  size=${MSEG_FIELD_SIZE[$field]}
  for ((i = size - 1; i >= 0; i--)); do
    v=$(((v << 8) | 16#${_mseg_bg[off + i]}))
  done
  printf '%s\n' "$v"
}

#######################################
# Print the number of an action name (allow|deny|log); 1 if unknown.
#######################################
mseg_action_num() {
  local i
  for i in "${!MSEG_ACTION_NAMES[@]}"; do
    [[ ${MSEG_ACTION_NAMES[i]} == "$1" ]] && { printf '%s\n' "$i"; return 0; }
  done
  return 1
}

#######################################
# Print the hex key of the single-entry arrays (mseg_config, mseg_stats).
#######################################
mseg_index_key_hex() {
  mseg_le_hex "$1" "${MSEG_MAP_KEYSZ[mseg_config]}"
}
