#!/usr/bin/env bash
# mseg-layout.sh: the one place that turns values into the hex bytes of map
# keys and values, and text addresses into their 16-byte form.
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

# enum mseg_action and enum mseg_tcp_state of bpf/mseg_abi.h. mseg-abi does
# not print enums; tests/bats/cli.bats checks these against the header.
readonly -a MSEG_ACTION_NAMES=(allow deny log)
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
# Parse a dotted quad strictly into 4 decimal bytes.
# Globals:
#   _MSEG_V4 is set to the bytes.
# Returns:
#   1 on anything but four 0..255 numbers without leading zeros.
#######################################
_mseg_parse_v4() {
  local o='(0|[1-9][0-9]{0,2})' n
  [[ $1 =~ ^$o\.$o\.$o\.$o$ ]] || return 1
  _MSEG_V4=("${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}"
    "${BASH_REMATCH[4]}")
  for n in "${_MSEG_V4[@]}"; do ((n <= 255)) || return 1; done
}

#######################################
# Split one side of "::" into 16-bit groups (decimal), appending to $2.
# Arguments:
#   TEXT, array name, 1 if TEXT ends the address (may hold an IPv4 tail)
#######################################
_mseg_v6_groups() {
  local text=$1 last=$3 g i
  local -n _mseg_vg=$2
  local -a parts
  [[ -z $text ]] && return 0
  # read -a would silently drop an empty last field: reject those first.
  [[ $text == :* || $text == *: || $text == *::* ]] && return 1
  IFS=: read -ra parts <<<"$text"
  for ((i = 0; i < ${#parts[@]}; i++)); do
    g=${parts[i]}
    if [[ $g == *.* ]]; then
      ((last && i == ${#parts[@]} - 1)) || return 1
      _mseg_parse_v4 "$g" || return 1
      _mseg_vg+=($((_MSEG_V4[0] << 8 | _MSEG_V4[1])) $((_MSEG_V4[2] << 8 | _MSEG_V4[3])))
    else
      [[ $g =~ ^[0-9A-Fa-f]{1,4}$ ]] || return 1
      _mseg_vg+=($((16#$g)))
    fi
  done
}

#######################################
# Parse an IPv4 or IPv6 address (RFC 4291 text forms, no zone, no prefix).
# Globals:
#   MSEG_ADDR_HEX: the 16 stored bytes as hex ("00 ... ff ff 0a 00 00 01");
#   MSEG_ADDR_FAMILY: 4 for IPv4 and IPv4-mapped IPv6 (the data path cannot
#   tell them apart), else 6.
# Returns:
#   1 if the text is not an address.
#######################################
mseg_addr_parse() {
  local text=$1 head tail g hex=""
  local -a hg=() tg=() groups=()
  if [[ $text != *:* ]]; then
    _mseg_parse_v4 "$text" || return 1
    printf -v MSEG_ADDR_HEX '00 00 00 00 00 00 00 00 00 00 ff ff %02x %02x %02x %02x' \
      "${_MSEG_V4[@]}"
    MSEG_ADDR_FAMILY=4
    return 0
  fi
  [[ $text =~ ^[0-9A-Fa-f:.]+$ && $text != *:::* ]] || return 1
  if [[ $text == *::* ]]; then
    head=${text%%::*}
    tail=${text#*::}
    _mseg_v6_groups "$head" hg 0 || return 1
    _mseg_v6_groups "$tail" tg 1 || return 1
    # "::" stands for at least one zero group.
    ((${#hg[@]} + ${#tg[@]} <= 7)) || return 1
    groups=("${hg[@]}")
    while ((${#groups[@]} + ${#tg[@]} < 8)); do groups+=(0); done
    groups+=("${tg[@]}")
  else
    _mseg_v6_groups "$text" groups 1 || return 1
    ((${#groups[@]} == 8)) || return 1
  fi
  for g in "${groups[@]}"; do
    printf -v g '%02x %02x' $((g >> 8)) $((g & 0xff))
    hex+="${hex:+ }$g"
  done
  MSEG_ADDR_HEX=$hex
  if [[ $hex == "00 00 00 00 00 00 00 00 00 00 ff ff "* ]]; then
    MSEG_ADDR_FAMILY=4
  else
    MSEG_ADDR_FAMILY=6
  fi
}

#######################################
# Print 16 stored address bytes as text: a dotted quad for FAMILY 4 (the
# last four bytes), else RFC 5952 (lower case, no leading zeros, the
# longest run of two or more zero groups as "::", the first on a tie).
# Arguments:
#   HEX (16 bytes, space separated), FAMILY (4 or 6)
#######################################
mseg_addr_text() {
  local -a b g=()
  local i best=-1 best_n=0 cur=-1 cur_n=0 out=""
  read -ra b <<<"$1"
  if [[ $2 == 4 ]]; then
    printf '%d.%d.%d.%d\n' "0x${b[12]}" "0x${b[13]}" "0x${b[14]}" "0x${b[15]}"
    return 0
  fi
  for ((i = 0; i < 8; i++)); do
    g+=($((16#${b[2 * i]}${b[2 * i + 1]})))
    if ((g[i] == 0)); then
      ((cur_n == 0)) && cur=$i
      cur_n=$((cur_n + 1))
      if ((cur_n > best_n)); then
        best=$cur
        best_n=$cur_n
      fi
    else
      cur_n=0
    fi
  done
  # RFC 5952 4.2.2: "::" never stands for a single zero group.
  ((best_n >= 2)) || best=-1
  for ((i = 0; i < 8; i++)); do
    if ((i == best)); then
      out+="::"
      i=$((i + best_n - 1))
      continue
    fi
    [[ -n $out && $out != *:: ]] && out+=":"
    printf -v out '%s%x' "$out" "${g[i]}"
  done
  printf '%s\n' "$out"
}

#######################################
# Zero every bit of 16 address bytes past the first BITS.
# Arguments:
#   HEX (16 bytes, space separated), BITS (0..128)
# Outputs:
#   The masked bytes, same format.
#######################################
mseg_addr_mask() {
  local -a b
  local i bits=$2 keep
  read -ra b <<<"$1"
  for ((i = 0; i < 16; i++)); do
    keep=$((bits - 8 * i))
    if ((keep <= 0)); then
      b[i]=00
    elif ((keep < 8)); then
      printf -v "b[i]" '%02x' $((16#${b[i]} & (0xff << (8 - keep)) & 0xff))
    fi
  done
  printf '%s\n' "${b[*]}"
}

#######################################
# Parse and check a CIDR prefix as an operator writes it: ADDRESS/LENGTH,
# IPv4 (LENGTH 0..32) or IPv6 (0..128), nothing before or after, no host
# bits set past LENGTH. The family follows the text: a dotted quad is IPv4,
# anything with a colon IPv6, because that is the header the data path
# keys the trie with. An IPv6 prefix inside ::ffff:0:0/96 is refused: it
# reads like IPv4 but would only ever match IPv6 packets.
# Globals:
#   MSEG_CIDR_FAMILY (4|6), MSEG_CIDR_LEN (as written), MSEG_CIDR_BITS (the
#   stored mseg_cidr_key.prefixlen), MSEG_CIDR_HEX (the 16 address bytes),
#   MSEG_CIDR_TEXT (canonical text); on failure MSEG_CIDR_ERR, the message.
# Returns:
#   1 if TEXT is not a valid prefix.
#######################################
mseg_cidr_parse() {
  local text=$1 addr len max masked hint
  MSEG_CIDR_ERR=""
  if [[ -z $text ]]; then
    MSEG_CIDR_ERR="invalid CIDR: empty (expected ADDRESS/LENGTH, e.g. 10.0.0.0/8)"
    return 1
  fi
  if [[ $text != */* ]]; then
    MSEG_CIDR_ERR="invalid CIDR '$text': missing /LENGTH (e.g. 10.0.0.0/8 or 2001:db8::/32)"
    return 1
  fi
  addr=${text%%/*}
  len=${text#*/}
  if ! mseg_addr_parse "$addr"; then
    MSEG_CIDR_ERR="invalid CIDR '$text': '$addr' is not an IPv4 or IPv6 address"
    return 1
  fi
  if [[ $addr == *:* ]]; then
    MSEG_CIDR_FAMILY=6
    max=128
  else
    MSEG_CIDR_FAMILY=4
    max=32
  fi
  if [[ ! $len =~ ^[+-]?[0-9]+$ ]]; then
    MSEG_CIDR_ERR="invalid CIDR '$text': prefix length '$len' is not a number"
    return 1
  fi
  if [[ ! $len =~ ^(0|[1-9][0-9]*)$ ]]; then
    MSEG_CIDR_ERR="invalid CIDR '$text': write the prefix length '$len' without sign or leading zeros"
    return 1
  fi
  if ! mseg_is_uint "$len" "$max"; then
    MSEG_CIDR_ERR="invalid CIDR '$text': an IPv$MSEG_CIDR_FAMILY prefix length is 0..$max"
    return 1
  fi
  MSEG_CIDR_LEN=$len
  if ((MSEG_CIDR_FAMILY == 6 && MSEG_ADDR_FAMILY == 4 && len >= 96)); then
    masked=$(mseg_addr_mask "$MSEG_ADDR_HEX" "$len")
    hint="$(mseg_addr_text "$masked" 4)/$((len - 96))"
    MSEG_CIDR_ERR="$text is an IPv4-mapped prefix, which only IPv6 packets could match: write it as $hint"
    return 1
  fi
  if ((MSEG_CIDR_FAMILY == 4)); then
    masked=$(mseg_addr_mask "$MSEG_ADDR_HEX" $((96 + len)))
    MSEG_CIDR_BITS=$((MSEG_CONST[cidr_v4_base_bits] + len))
  else
    masked=$(mseg_addr_mask "$MSEG_ADDR_HEX" "$len")
    MSEG_CIDR_BITS=$((MSEG_CONST[cidr_hdr_bits] + len))
  fi
  MSEG_CIDR_HEX=$masked
  MSEG_CIDR_TEXT="$(mseg_addr_text "$masked" "$MSEG_CIDR_FAMILY")/$len"
  if [[ $masked != "$MSEG_ADDR_HEX" ]]; then
    MSEG_CIDR_ERR="$text has host bits set: did you mean $MSEG_CIDR_TEXT?"
    return 1
  fi
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
# Print an mseg_policy key as hex.
# Arguments:
#   SRC_HEX DST_HEX (16 bytes each, space separated), SPORT, DPORT, PROTO, SET
#######################################
mseg_rule_key_hex() {
  local -a key src_bytes dst_bytes
  read -ra src_bytes <<<"$1"
  read -ra dst_bytes <<<"$2"
  mseg_buf_zero key "${MSEG_MAP_KEYSZ[mseg_policy]}"
  mseg_buf_set_bytes key rule_key.src "${src_bytes[@]}"
  mseg_buf_set_bytes key rule_key.dst "${dst_bytes[@]}"
  mseg_buf_set_uint key rule_key.sport "$3"
  mseg_buf_set_uint key rule_key.dport "$4"
  mseg_buf_set_uint key rule_key.proto "$5"
  mseg_buf_set_uint key rule_key.set "$6"
  printf '%s\n' "${key[*]}"
}

#######################################
# Print an mseg_policy value as hex.
# Arguments:
#   ACTION number, HITS (optional, default 0)
#######################################
mseg_rule_val_hex() {
  local -a val
  mseg_buf_zero val "${MSEG_MAP_VALSZ[mseg_policy]}"
  mseg_buf_set_uint val rule_val.hits "${2:-0}"
  mseg_buf_set_uint val rule_val.action "$1"
  printf '%s\n' "${val[*]}"
}

#######################################
# Print an mseg_cidr key as hex.
# Arguments:
#   PREFIXLEN (as stored, see mseg_cidr_parse), SET, FAMILY (4|6),
#   ADDR_HEX (16 bytes, space separated)
#######################################
mseg_cidr_key_hex() {
  local -a key addr
  read -ra addr <<<"$4"
  mseg_buf_zero key "${MSEG_MAP_KEYSZ[mseg_cidr]}"
  mseg_buf_set_uint key cidr_key.prefixlen "$1"
  mseg_buf_set_uint key cidr_key.set "$2"
  mseg_buf_set_uint key cidr_key.family "$3"
  mseg_buf_set_bytes key cidr_key.addr "${addr[@]}"
  printf '%s\n' "${key[*]}"
}

#######################################
# Print an mseg_cidr value as hex.
# Arguments:
#   ACTION number, PRIORITY, HITS (optional, default 0)
#######################################
mseg_cidr_val_hex() {
  local -a val
  mseg_buf_zero val "${MSEG_MAP_VALSZ[mseg_cidr]}"
  mseg_buf_set_uint val cidr_val.hits "${3:-0}"
  mseg_buf_set_uint val cidr_val.priority "$2"
  mseg_buf_set_uint val cidr_val.action "$1"
  printf '%s\n' "${val[*]}"
}

#######################################
# Print the hex key of the single-entry arrays (mseg_config, mseg_stats).
#######################################
mseg_index_key_hex() {
  mseg_le_hex "$1" "${MSEG_MAP_KEYSZ[mseg_config]}"
}
