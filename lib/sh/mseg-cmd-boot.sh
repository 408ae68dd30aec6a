#!/usr/bin/env bash
# mseg-cmd-boot.sh: `mseg boot`, the path mseg.service runs at boot and on
# reload: the saved policy first, then the filters.
# Requires mseg-common.sh and mseg-tc.sh; MSEG_SCRIPTS names scripts/.
# shellcheck disable=SC2034 # globals and namerefs serve the sourcing scripts

# MSEG_ETC moves both (the tests run the unit's lines as written).
MSEG_BOOT_CONF_DEFAULT=${MSEG_ETC:-/etc/mseg}/mseg.conf
MSEG_BOOT_RULES_DEFAULT=${MSEG_ETC:-/etc/mseg}/mseg.rules

mseg_boot_usage() {
  cat <<EOF
usage: mseg boot [--config FILE] [--rules FILE] [--wait SECONDS]
       mseg boot --stop [--config FILE]

Make the running state match the saved one: check the ruleset (default
$MSEG_BOOT_RULES_DEFAULT, in the format of 'mseg save'), load it into the
pinned maps, then attach mseg to every device the config names (default
$MSEG_BOOT_CONF_DEFAULT). When no maps are pinned yet (a boot), they are
created first by attaching to a placeholder device that carries no
traffic, so the first packet a real device sees is judged by the saved
policy, never by the empty one's default allow. Run again, it re-applies
the ruleset atomically and attaches devices added to the config: it is both
mseg.service's ExecStart and its ExecReload.

Nothing is changed when the config or the ruleset is missing or invalid.
A device that has not appeared after --wait seconds (default 10) is an
error, reported after attaching the others.

--stop detaches mseg from the config's devices (mseg.service's ExecStop);
the pinned maps, and so the policy and the sessions, are kept.

The config has one statement per line; '#' starts a comment:
  device DEV [ingress|egress|both]   attach to DEV (default both)
EOF
}

#######################################
# Read a boot config: one "device DEV [DIRECTION]" per line.
# Globals:
#   MSEG_BOOT_DEVS (array of "DEV DIRECTION")
#######################################
_mseg_boot_read_conf() {
  local conf=$1 line n=0 word dev dir
  local -a words
  [[ -f $conf && -r $conf ]] || mseg_die "boot: cannot read the config $conf"
  MSEG_BOOT_DEVS=()
  while IFS= read -r line || [[ -n $line ]]; do
    n=$((n + 1))
    line=${line%%#*}
    read -r -a words <<<"$line"
    ((${#words[@]})) || continue
    word=${words[0]}
    [[ $word == device ]] || mseg_die "boot: $conf:$n: unknown statement '$word' (expected 'device DEV [ingress|egress|both]')"
    ((${#words[@]} <= 3)) || mseg_die "boot: $conf:$n: too many words"
    dev=${words[1]:-}
    dir=${words[2]:-both}
    [[ -n $dev ]] || mseg_die "boot: $conf:$n: 'device' needs a device name"
    (mseg_check_devname "$dev") 2>/dev/null || mseg_die "boot: $conf:$n: invalid device name '$dev'"
    [[ $dir == ingress || $dir == egress || $dir == both ]] ||
      mseg_die "boot: $conf:$n: direction '$dir' is not ingress, egress or both"
    MSEG_BOOT_DEVS+=("$dev $dir")
  done <"$conf"
  ((${#MSEG_BOOT_DEVS[@]})) || mseg_die "boot: $conf names no device"
}

#######################################
# Create a device no packet crosses (ifb, else dummy, else a veth pair left
# down) and print its name.
#######################################
_mseg_boot_placeholder() {
  local name="msegboot$$" kind
  for kind in ifb dummy; do
    if ip link add "$name" type "$kind" 2>/dev/null; then
      echo "$name"
      return 0
    fi
  done
  ip link add "$name" type veth peer name "${name}p" 2>/dev/null ||
    mseg_die "boot: cannot create a placeholder device (ifb, dummy or veth) to create the maps on"
  echo "$name"
}

_mseg_boot_stop() {
  local entry dev dir rc=0
  for entry in "${MSEG_BOOT_DEVS[@]}"; do
    read -r dev dir <<<"$entry"
    mseg_dev_exists "$dev" || continue
    [[ -n $(mseg_tc_prog_id "$dev" ingress)$(mseg_tc_prog_id "$dev" egress) ]] || continue
    "$MSEG_SCRIPTS/mseg" detach "$dev" || rc=1
  done
  return "$rc"
}

mseg_cmd_boot() {
  if mseg_wants_help "$@"; then mseg_boot_usage; return 0; fi
  local conf=$MSEG_BOOT_CONF_DEFAULT rules=$MSEG_BOOT_RULES_DEFAULT wait=10 stop=0
  while (($#)); do
    case $1 in
      --config | --rules | --wait)
        (($# >= 2)) || mseg_usage_die "boot: $1 needs a value"
        case $1 in
          --config) conf=$2 ;;
          --rules) rules=$2 ;;
          --wait) wait=$2 ;;
        esac
        shift
        ;;
      --stop) stop=1 ;;
      *) mseg_usage_die "boot: unknown argument: $1 (see 'mseg boot --help')" ;;
    esac
    shift
  done
  mseg_is_uint "$wait" 3600 || mseg_usage_die "boot: --wait takes whole seconds (0..3600), not '$wait'"
  _mseg_boot_read_conf "$conf"
  if ((stop)); then
    _mseg_boot_stop
    return
  fi
  # Everything is checked before anything changes.
  [[ -f $rules ]] || mseg_die "boot: no saved policy at $rules (write one with 'mseg save > $rules')"
  "$MSEG_SCRIPTS/mseg" apply --check "$rules" >/dev/null || mseg_die "boot: $rules is not a valid ruleset: nothing changed"

  local placeholder=
  if [[ ! -e $MSEG_PIN_DIR/mseg_config ]]; then
    placeholder=$(_mseg_boot_placeholder)
    # shellcheck disable=SC2064 # the name is fixed now
    trap "ip link del '$placeholder' 2>/dev/null || true" EXIT
    "$MSEG_SCRIPTS/mseg" attach "$placeholder" --ingress >/dev/null
  fi
  "$MSEG_SCRIPTS/mseg" apply "$rules"

  local entry dev dir left missing=()
  for entry in "${MSEG_BOOT_DEVS[@]}"; do
    read -r dev dir <<<"$entry"
    left=$((wait * 10))
    until mseg_dev_exists "$dev" || ((left-- <= 0)); do
      sleep 0.1
    done
    if ! mseg_dev_exists "$dev"; then
      missing+=("$dev")
      continue
    fi
    "$MSEG_SCRIPTS/mseg" attach "$dev" "--$dir"
  done
  if [[ -n $placeholder ]]; then
    ip link del "$placeholder" 2>/dev/null || true
    trap - EXIT
  fi
  ((${#missing[@]} == 0)) || mseg_die "boot: no such device after ${wait} s: ${missing[*]}"
}
