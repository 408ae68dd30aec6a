#!/usr/bin/env bash
# mseg-cmd-status.sh: `mseg status`.
# Requires mseg-common.sh, mseg-layout.sh, mseg-bpftool.sh, mseg-tc.sh,
# mseg-jq.sh and mseg-confirm.sh.
# shellcheck disable=SC2034 # globals and namerefs serve the sourcing scripts

mseg_status_usage() {
  cat <<'EOF'
usage: mseg status [--json]

Show the pin directory, the ABI version stamped in the pinned maps and this
build's, the session table's capacity and use, the number of rules, the
default action, the failsafes in force (or off: see 'mseg failsafe'), the
policy generation, strict mode, the devices of the current network
namespace that run mseg with these maps, and the confirmation of 'mseg
apply --confirm': pending (its deadline, its rollback process), else how
the last one ended (confirmed, rolled_back, superseded, rollback_failed),
else none.
EOF
}

#######################################
# Print the status JSON object.
#######################################
_mseg_status_json() {
  local capacity sessions policy attached confirm
  local -a cfg
  capacity=$(mseg_map_show mseg_sessions | jq '.max_entries') || exit
  # The kernel's own count of entries: no walk of the table.
  sessions=$("$MSEG_SESSIONS_BIN" --count --all) || exit
  mseg_config_read cfg
  local abi gen def strict set mode
  abi=$(mseg_buf_get_uint cfg config.abi_version) || exit
  mode=$(mseg_buf_get_uint cfg config.mode) || exit
  gen=$(mseg_buf_get_uint cfg config.policy_gen) || exit
  def=$(mseg_buf_get_uint cfg config.default_action) || exit
  strict=$(mseg_buf_get_uint cfg config.strict) || exit
  set=$(mseg_buf_get_uint cfg config.active_set) || exit
  # Only the active rule set is in force; the other one is its copy.
  policy=$("$MSEG_RULESET_BIN" status "$set") || exit
  attached=$(mseg_tc_attached | jq -s '.') || exit
  confirm=$(mseg_confirm_status_json) || exit
  jq -c -n --arg pin_dir "$MSEG_PIN_DIR" --argjson abi "$abi" \
    --argjson build_abi "$MSEG_ABI_VERSION" --argjson capacity "$capacity" \
    --argjson sessions "$sessions" --argjson policy "$policy" \
    --arg dflt "${MSEG_ACTION_NAMES[def]:-$def}" \
    --argjson gen "$gen" --argjson strict "$strict" --argjson set "$set" \
    --argjson attached "$attached" --argjson confirm "$confirm" \
    --arg mode "$( ((mode & MSEG_MODE_AUDIT)) && echo audit || echo enforce)" \
    --argjson staged "$( ((mode & MSEG_MODE_STAGED)) && echo true || echo false)" \
    --argjson acct "$( ((mode & MSEG_MODE_NO_ACCT)) && echo false || echo true)" '{
      pin_dir: $pin_dir,
      abi_version: $abi,
      build_abi_version: $build_abi,
      capacity: $capacity,
      sessions: $sessions,
      rules: $policy.rules,
      cidrs: $policy.cidrs,
      default_action: $dflt,
      failsafe: $policy.failsafe,
      failsafes: $policy.failsafes,
      policy_gen: $gen,
      strict: ($strict != 0),
      mode: $mode,
      staged: $staged,
      accounting: $acct,
      active_set: $set,
      attached: $attached,
      confirm: $confirm
    }'
}

mseg_cmd_status() {
  local json=0
  while (($#)); do
    case $1 in
      -h | --help) mseg_status_usage; return 0 ;;
      --json) json=1 ;;
      *) mseg_usage_die "status: unknown argument: $1" ;;
    esac
    shift
  done
  mseg_abi_load
  mseg_require_maps "${MSEG_ABI_MAPS[@]}"
  local out
  out=$(_mseg_status_json) || exit
  if ((json)); then
    printf '%s\n' "$out"
    return 0
  fi
  jq -r --arg confirm "$(mseg_confirm_status_text "$(jq -c .confirm <<<"$out")")" '
    def dirs: [if .ingress then "ingress" else empty end,
               if .egress then "egress" else empty end] | join(",");
    "pin dir:         \(.pin_dir)",
    "abi version:     \(.abi_version) (this build: \(.build_abi_version))",
    "sessions:        \(.sessions) / \(.capacity)",
    "rules:           \(.rules)",
    "cidr rules:      \(.cidrs)",
    "default action:  \(.default_action)",
    "failsafes:       \(if .failsafe == "off" then "off"
                        else (.failsafes | map("\(.proto)/\(.port)") | join(" "))
                          + (if .failsafe == "default" then " (the default list)" else "" end)
                        end)",
    "policy gen:      \(.policy_gen)",
    "strict:          \(if .strict then "on" else "off" end)",
    "mode:            \(.mode)\(if .mode == "audit" then " (denies pass as would-deny)" else "" end)",
    "staged policy:   \(if .staged then "loaded (mseg staged)" else "none" end)",
    "accounting:      \(if .accounting then "on" else "off (no packet and byte counts)" end)",
    "attached:        \(if .attached == [] then "none in this netns"
                        else .attached | map("\(.dev) (\(dirs))") | join(", ") end)",
    "confirm:         \($confirm)"
  ' <<<"$out"
}
