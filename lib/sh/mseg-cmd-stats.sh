#!/usr/bin/env bash
# mseg-cmd-stats.sh: `mseg stats`.
# Requires mseg-common.sh, mseg-layout.sh, mseg-bpftool.sh and mseg-jq.sh.
# shellcheck disable=SC2034 # globals and namerefs serve the sourcing scripts

mseg_stats_usage() {
  cat <<'EOF'
usage: mseg stats [--json]

Print every counter of mseg_stats, summed over all CPUs (--json: one object
of name -> number).

One packet, one decision (docs/DESIGN.md, "Counters"). Every packet counts
in total and in exactly one outcome:

  total = allowed + denied + dropped + non_ip + unjudged

and every packet not dropped before its decision counts exactly one
decision:

  session_hit + policy_hit + ip_range_hit + default_hit + related + exempt
    = total - non_ip - unjudged - strict_drop - vlan_limit - v4_mapped
            - exthdr_limit - frag_tiny - frag_overlap

  allowed        passed by a verdict (logged ones included)
  denied         dropped by a deny verdict (a rule, the default, a session's)
  dropped        dropped otherwise: refused before a decision (strict_drop,
                 vlan_limit, v4_mapped, exthdr_limit, frag_tiny,
                 frag_overlap), or a new flow the full or degraded session
                 table could not take (map_full, pressure_drop), or in
                 strict mode a live session's TCP segment the tracker refuses
                 (out_of_window, invalid; a session_hit first)
  non_ip         not IP (ARP, LLDP, ...): passed untouched
  unjudged       no whole IP header to judge: passed in loose mode (the
                 kernel discards it), dropped as strict_drop in strict mode
  session_hit    decided by a live session
  policy_hit, ip_range_hit, default_hit
                 a new flow decided by an exact rule, a CIDR rule, the default
  related        an ICMP error about a live, allowed session
  exempt         IPv6 neighbour discovery or MLD from the link
  strict_drop    strict mode: malformed, or TCP/echo reply fitting no session
  vlan_limit     more than 4 VLAN tags
  v4_mapped      an IPv6 source or destination in ::ffff:0:0/96
  exthdr_limit   more than 12 IPv6 extension headers (the kernel's bound)
  frag_tiny      a first fragment too short for its transport header
  frag_overlap   a later fragment over the TCP header (RFC 1858)
The others describe some of those packets: malformed (read only as far as
the addresses, then judged by them), invalid, fragments, frag_full,
new_session, rejudged, logged, map_full, pressure_drop, tcp_established,
tcp_closed, rst_ignored, out_of_window, events_lost. early_drop counts
sessions, not packets: those dropped early to make room for a new one.
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
