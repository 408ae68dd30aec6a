#!/usr/bin/env bash
# mseg-cmd-stats.sh: `mseg stats`.
# Requires mseg-common.sh, mseg-layout.sh, mseg-bpftool.sh and mseg-jq.sh.
# shellcheck disable=SC2034 # globals and namerefs serve the sourcing scripts

mseg_stats_usage() {
  cat <<'EOF'
usage: mseg stats [--json]

Print every counter of mseg_stats, summed over all CPUs (--json: one object
of name -> number).
EOF
}

mseg_cmd_stats() {
  local json=0 out
  while (($#)); do
    case $1 in
      -h | --help) mseg_stats_usage; return 0 ;;
      --json) json=1 ;;
      *) mseg_usage_die "stats: unknown argument: $1" ;;
    esac
    shift
  done
  mseg_abi_load
  mseg_require_maps mseg_stats
  # The map is per-CPU: each CPU holds its own copy of every counter.
  out=$(mseg_map_dump mseg_stats | jq -c '
    [.[].formatted.values[].value] as $cpus
    | reduce ($cpus[0] // {} | keys_unsorted[]) as $f ({};
        .[$f] = ($cpus | map(.[$f]) | add))') || exit
  if ((json)); then
    printf '%s\n' "$out"
    return 0
  fi
  mseg_jq 'to_entries | map([.key, .value]) | mseg_table(["COUNTER", "VALUE"])' -r <<<"$out"
}
