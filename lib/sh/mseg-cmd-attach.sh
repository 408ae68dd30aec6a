#!/usr/bin/env bash
# mseg-cmd-attach.sh: `mseg attach` and `mseg detach`.
# Requires mseg-common.sh, mseg-layout.sh, mseg-bpftool.sh and mseg-tc.sh.
# shellcheck disable=SC2034 # globals and namerefs serve the sourcing scripts

mseg_attach_usage() {
  cat <<EOF
usage: mseg attach DEV [--ingress|--egress|--both]

Load $MSEG_OBJ on DEV's clsact hook (default: both
directions) in tc's slot pref $MSEG_TC_PREF handle $MSEG_TC_HANDLE. Maps are pinned under
$MSEG_PIN_DIR and shared by every attachment; running
attach again replaces the program in place (the upgrade path) and keeps
sessions and rules. Pinned maps from an incompatible build are refused.
EOF
}

mseg_detach_usage() {
  cat <<EOF
usage: mseg detach DEV [--ingress|--egress|--both]

Remove mseg's filters from DEV (default: both directions), and the clsact
qdisc when no other filter uses it. Pinned maps are kept. Fails (exit 1,
nothing changed) when mseg is attached to none of those directions.
EOF
}

#######################################
# Parse "DEV [--ingress|--egress|--both]" for attach/detach.
# Globals:
#   MSEG_DEV, MSEG_DIRS (array)
#######################################
_mseg_parse_dev_dirs() {
  local cmd=$1
  shift
  MSEG_DEV=
  MSEG_DIRS=(ingress egress)
  while (($#)); do
    case $1 in
      --ingress) MSEG_DIRS=(ingress) ;;
      --egress) MSEG_DIRS=(egress) ;;
      --both) MSEG_DIRS=(ingress egress) ;;
      -*) mseg_usage_die "$cmd: unknown option: $1" ;;
      *)
        [[ -z $MSEG_DEV ]] || mseg_usage_die "$cmd: one device at a time (got '$MSEG_DEV' and '$1')"
        MSEG_DEV=$1
        ;;
    esac
    shift
  done
  [[ -n $MSEG_DEV ]] || mseg_usage_die "$cmd: missing DEV (see 'mseg $cmd --help')"
  mseg_check_devname "$MSEG_DEV"
}

#######################################
# Die unless every pinned map matches this build's ABI.
#######################################
_mseg_check_pinned_abi() {
  local name show got want stamped
  local fix="detach mseg from every device, remove the pins under $MSEG_PIN_DIR, then attach again"
  for name in "${MSEG_ABI_MAPS[@]}"; do
    [[ -e $MSEG_PIN_DIR/$name ]] || continue
    show=$(mseg_map_show "$name") || exit
    got=$(jq -r '"\(.bytes_key) \(.bytes_value) \(.max_entries)"' <<<"$show")
    want="${MSEG_MAP_KEYSZ[$name]} ${MSEG_MAP_VALSZ[$name]} ${MSEG_MAP_MAX[$name]}"
    if [[ $got != "$want" ]]; then
      mseg_die "pinned map $name (key/value/max $got) does not match this build ($want): $fix"
    fi
  done
  [[ -e $MSEG_PIN_DIR/mseg_config ]] || return 0
  stamped=$(mseg_config_get abi_version) || exit
  if ((stamped != 0 && stamped != MSEG_ABI_VERSION)); then
    mseg_die "pinned maps are ABI version $stamped, this build is $MSEG_ABI_VERSION: $fix"
  fi
}

mseg_cmd_attach() {
  if mseg_wants_help "$@"; then mseg_attach_usage; return 0; fi
  _mseg_parse_dev_dirs attach "$@"
  mseg_dev_exists "$MSEG_DEV" || mseg_die "no such device: $MSEG_DEV"
  [[ -r $MSEG_OBJ ]] || mseg_die "BPF object not found: $MSEG_OBJ: run 'make'"
  mseg_abi_load
  mseg_lock
  _mseg_check_pinned_abi
  local dir stamped
  for dir in "${MSEG_DIRS[@]}"; do
    mseg_tc_attach "$MSEG_DEV" "$dir"
  done
  mseg_require_maps "${MSEG_ABI_MAPS[@]}"
  stamped=$(mseg_config_get abi_version) || exit
  if ((stamped == 0)); then
    mseg_config_edit abi_version "$MSEG_ABI_VERSION"
  fi
  printf 'mseg attached to %s (%s), maps in %s\n' "$MSEG_DEV" "${MSEG_DIRS[*]}" "$MSEG_PIN_DIR"
}

mseg_cmd_detach() {
  if mseg_wants_help "$@"; then mseg_detach_usage; return 0; fi
  _mseg_parse_dev_dirs detach "$@"
  mseg_dev_exists "$MSEG_DEV" || mseg_die "no such device: $MSEG_DEV"
  mseg_lock
  local dir
  local -a found=()
  for dir in "${MSEG_DIRS[@]}"; do
    [[ -n $(mseg_tc_prog_id "$MSEG_DEV" "$dir") ]] && found+=("$dir")
  done
  ((${#found[@]})) || mseg_die "mseg is not attached to $MSEG_DEV (${MSEG_DIRS[*]}): nothing to detach"
  for dir in "${found[@]}"; do
    mseg_tc_detach "$MSEG_DEV" "$dir"
  done
  mseg_tc_drop_empty_clsact "$MSEG_DEV"
  printf 'mseg detached from %s (%s)\n' "$MSEG_DEV" "${found[*]}"
}
