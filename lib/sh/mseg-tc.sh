#!/usr/bin/env bash
# mseg-tc.sh: find, add and remove mseg's tc filters in the current netns.
# Requires mseg-common.sh and mseg-bpftool.sh.
# shellcheck disable=SC2034 # globals and namerefs serve the sourcing scripts

[[ -n ${MSEG_TC_LOADED:-} ]] && return 0
MSEG_TC_LOADED=1

#######################################
# Succeed if network device DEV exists in this netns.
#######################################
mseg_dev_exists() {
  # Netlink, not /sys/class/net: /sys may belong to another netns (nsenter).
  ip link show dev "$1" >/dev/null 2>&1
}

#######################################
# Print `tc -j filter show` for DEV and DIR (ingress|egress); [] if none.
#######################################
mseg_tc_filters() {
  local out
  out=$(tc -j filter show dev "$1" "$2" 2>/dev/null) || out='[]'
  printf '%s\n' "${out:-[]}"
}

#######################################
# Print the program id of mseg's filter on DEV DIR; nothing if absent.
#######################################
mseg_tc_prog_id() {
  mseg_tc_filters "$1" "$2" | jq -r --argjson pref "$MSEG_TC_PREF" '
    .[] | select(.pref == $pref and .kind == "bpf" and .options.prog.id != null)
    | .options.prog.id' | head -n 1
}

#######################################
# Succeed if DEV has a clsact qdisc.
#######################################
mseg_tc_has_clsact() {
  tc -j qdisc show dev "$1" 2>/dev/null |
    jq -e 'any(.[]; .kind == "clsact")' >/dev/null
}

#######################################
# Load $MSEG_OBJ on DEV DIR in mseg's slot (adds or upgrades in place).
#######################################
mseg_tc_attach() {
  local dev=$1 dir=$2 err
  if ! mseg_tc_has_clsact "$dev"; then
    err=$(tc qdisc add dev "$dev" clsact 2>&1) ||
      mseg_die "cannot add clsact to $dev: ${err//$'\n'/ }"
  fi
  if ! err=$(tc filter replace dev "$dev" "$dir" pref "$MSEG_TC_PREF" \
    handle "$MSEG_TC_HANDLE" bpf da obj "$MSEG_OBJ" sec tc 2>&1); then
    mseg_tc_drop_empty_clsact "$dev"
    # libbpf is verbose; its last lines say what went wrong.
    err=$(tail -n 3 <<<"$err" | tr -s '\n ' '  ')
    mseg_die "tc could not attach $MSEG_OBJ to $dev $dir: ${err% }$(_mseg_kernel_hint)"
  fi
}

#######################################
# Print why an old kernel cannot load mseg, or nothing on a recent one.
#######################################
_mseg_kernel_hint() {
  local rel major minor
  rel=$(uname -r)
  IFS=. read -r major minor _ <<<"$rel"
  [[ $major =~ ^[0-9]+$ && ${minor%%[^0-9]*} =~ ^[0-9]+$ ]] || return 0
  minor=${minor%%[^0-9]*}
  if ((major < 6 || (major == 6 && minor < 6))); then
    printf ' (mseg needs Linux 6.6 or later for the bpf_map_sum_elem_count kfunc; this is %s)' "$rel"
  fi
}

#######################################
# Remove mseg's filter from DEV DIR if there is one.
#######################################
mseg_tc_detach() {
  local dev=$1 dir=$2 err
  [[ -n $(mseg_tc_prog_id "$dev" "$dir") ]] || return 0
  err=$(tc filter del dev "$dev" "$dir" pref "$MSEG_TC_PREF" \
    handle "$MSEG_TC_HANDLE" bpf 2>&1) ||
    mseg_die "cannot remove mseg's filter from $dev $dir: ${err//$'\n'/ }"
}

#######################################
# Delete DEV's clsact qdisc when no filter at all is left on it.
#######################################
mseg_tc_drop_empty_clsact() {
  local dev=$1 n
  mseg_tc_has_clsact "$dev" || return 0
  n=$({ mseg_tc_filters "$dev" ingress; mseg_tc_filters "$dev" egress; } |
    jq -s 'map(length) | add')
  ((n == 0)) || return 0
  tc qdisc del dev "$dev" clsact 2>/dev/null || true
}

#######################################
# Print one JSON object per device of this netns running mseg against the
# maps pinned here: {"dev":..,"ingress":bool,"egress":bool}.
#######################################
mseg_tc_attached() {
  local cfg_id dev dir id in eg
  cfg_id=$(mseg_map_show mseg_config | jq -r '.id') || exit
  while read -r dev; do
    in=false
    eg=false
    for dir in ingress egress; do
      id=$(mseg_tc_prog_id "$dev" "$dir")
      [[ -n $id ]] || continue
      # A filter in mseg's slot counts only if it shares these pins, not
      # those of another bpffs.
      if bpftool -j prog show id "$id" 2>/dev/null |
        jq -e --argjson c "$cfg_id" '.map_ids // [] | index($c) != null' >/dev/null; then
        if [[ $dir == ingress ]]; then in=true; else eg=true; fi
      fi
    done
    if [[ $in == true || $eg == true ]]; then
      jq -cn --arg d "$dev" --argjson i "$in" --argjson e "$eg" \
        '{dev: $d, ingress: $i, egress: $e}'
    fi
  done < <(ip -j link show | jq -r '.[].ifname')
}
