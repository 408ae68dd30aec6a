#!/usr/bin/env bash
# Benchmark: end to end through a veth pair between two namespaces (client
# C 10.88.0.1, server S 10.88.0.2), IPv4, with the filter in S:
#   none        no filter
#   mseg        `mseg attach DEV --both` on S's veth
#   nft-sets    nftables input chain: conntrack (established accepted first),
#               the exact rules as a concatenated set, the prefixes as an
#               interval set
#   nft-linear  nftables input chain, no conntrack: the same exact rules and
#               prefixes as rules, one after the other
# Two policies, each all for other hosts with default allow, so the measured
# flows are decided by the default (a linear chain walks every rule, a
# set-based one does a few lookups): "small", 100 exact rules and 10,000
# CIDR deny prefixes; "big", 100,000 of each.
# Figures: iperf3 TCP throughput (DURATION s, one stream) and sequential
# short TCP connections per second (COUNT, python client and server). The
# filters take turns, ROUNDS times (drift on a shared 2-core machine hits
# them alike), each figure is the median of its rounds, and the ratios are
# to "none" measured in the same rounds. Single iperf3 runs with no filter
# at all spread from 8 to 21 Gbit/s on this VM: read the ratios as +-15 %.
# The big linear chain is measured once, with fewer connections: it is too
# slow for more.
#
# Then the control plane: seconds to load 100,000 exact rules and 100,000
# prefixes with `mseg apply` vs `nft -f` of the same as set elements.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"
readonly DURATION="${MSEG_BENCH_DURATION:-2}"
readonly COUNT="${MSEG_BENCH_CONNS:-1000}"
readonly ROUNDS="${MSEG_BENCH_ROUNDS:-5}"
readonly BIG="${MSEG_BENCH_RULES:-100000}"
readonly C4=10.88.0.1 S4=10.88.0.2
SERVER_CPU=$(($(nproc) - 1))
readonly SERVER_CPU

WORK=""
NSC="" NSS=""
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "${p}" 2>/dev/null; done
  [[ -n "${NSC}" ]] && ip netns del "${NSC}" 2>/dev/null
  [[ -n "${NSS}" ]] && ip netns del "${NSS}" 2>/dev/null
  if [[ -n "${WORK}" ]]; then
    umount "${WORK}/bpffs" 2>/dev/null
    rm -rf "${WORK}"
  fi
  return 0
}

# mseg_rules N_EXACT N_PREFIX: the policy in `mseg apply` format.
mseg_rules() {
  echo "default allow"
  awk -v n="$1" -v m="$2" 'BEGIN {
    for (i = 0; i < n; i++)
      printf "rule --src 10.%d.%d.%d --dst 10.255.0.1 --proto tcp --dport 80 --action allow\n",
        int(i / 65536), int(i / 256) % 256, i % 256
    for (i = 0; i < m; i++)
      printf "cidr %d.%d.%d.0/24 --action deny\n", 11 + int(i / 65536), int(i / 256) % 256, i % 256
  }'
}

# nft_sets N_EXACT N_PREFIX [CT]: the same as an nft table with two sets.
nft_sets() {
  echo "table inet mseg_bench {"
  echo "  set exact { type ipv4_addr . ipv4_addr . inet_proto . inet_service; size $(($1 + 1024));"
  echo -n "    elements = { "
  awk -v n="$1" 'BEGIN {
    for (i = 0; i < n; i++)
      printf "%s10.%d.%d.%d . 10.255.0.1 . tcp . 80", (i ? ", " : ""), int(i / 65536), int(i / 256) % 256, i % 256
  }'
  echo " } }"
  echo "  set cidr { type ipv4_addr; flags interval; size $(($2 + 1024));"
  echo -n "    elements = { "
  awk -v m="$2" 'BEGIN {
    for (i = 0; i < m; i++)
      printf "%s%d.%d.%d.0/24", (i ? ", " : ""), 11 + int(i / 65536), int(i / 256) % 256, i % 256
  }'
  echo " } }"
  echo "  chain input { type filter hook input priority 0; policy accept;"
  echo "    ct state established,related accept"
  echo "    ip saddr . ip daddr . meta l4proto . th dport @exact accept"
  echo "    ip daddr @cidr drop"
  echo "    ip saddr @cidr drop"
  echo "  }"
  echo "}"
}

# nft_linear N_EXACT N_PREFIX: the same rules, one after the other.
nft_linear() {
  echo "table inet mseg_bench {"
  echo "  chain input { type filter hook input priority 0; policy accept;"
  awk -v n="$1" -v m="$2" 'BEGIN {
    for (i = 0; i < n; i++)
      printf "    ip saddr 10.%d.%d.%d ip daddr 10.255.0.1 tcp dport 80 accept\n", int(i / 65536), int(i / 256) % 256, i % 256
    for (i = 0; i < m; i++)
      printf "    ip daddr %d.%d.%d.0/24 drop\n", 11 + int(i / 65536), int(i / 256) % 256, i % 256
  }'
  echo "  }"
  echo "}"
}

setup_net() {
  NSC="msegbec$$"
  NSS="msegbes$$"
  ip netns add "${NSC}"
  ip netns add "${NSS}"
  ip -n "${NSC}" link add e0 type veth peer name e1 netns "${NSS}"
  ip -n "${NSC}" addr add "${C4}/24" dev e0
  ip -n "${NSS}" addr add "${S4}/24" dev e1
  ip -n "${NSC}" link set e0 up
  ip -n "${NSS}" link set e1 up
  ip -n "${NSC}" link set lo up
  # Tens of thousands of short connections leave as many client ports in
  # TIME_WAIT: reuse them, or later filters pay for the port search.
  ip netns exec "${NSC}" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
  ip -n "${NSS}" link set lo up
  # Server on the last CPU, clients on the first: where the scheduler put
  # them otherwise moved single-stream figures by 50 % between runs.
  # In the foreground of a bounded background job, not daemonised (-D), so
  # the bound reaches it.
  ip netns exec "${NSS}" taskset -c "${SERVER_CPU}" timeout -k 5 600 iperf3 -s -p 5201 >/dev/null 2>&1 &
  PIDS+=("$!")
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -n "$(ip netns exec "${NSS}" ss -Htln sport = :5201)" ]] && break
    sleep 0.1
  done
  ip netns exec "${NSS}" taskset -c "${SERVER_CPU}" timeout -k 5 600 python3 "${ROOT}/bench/connrate.py" serve "${S4}" 5202 540 &
  PIDS+=("$!")
  sleep 0.5
}

# measure_once CONNS: one iperf3 run and one connection-rate run; prints
# "GBPS CPS".
measure_once() {
  local out gbps cps
  out="$(ip netns exec "${NSC}" taskset -c 0 timeout -k 5 60 iperf3 -c "${S4}" -p 5201 -t "${DURATION}" -J)"
  gbps="$(jq '.end.sum_received.bits_per_second / 1e9' <<<"${out}")"
  cps="$(ip netns exec "${NSC}" taskset -c 0 timeout -k 5 300 python3 "${ROOT}/bench/connrate.py" run "${S4}" 5202 "$1")"
  echo "${gbps} ${cps}"
}

# filter_on NAME / filter_off NAME: switch one filter in S. The nft tables
# stay loaded and are switched with the dormant flag; mseg's pinned maps
# keep the ruleset while its program is attached and detached.
filter_on() {
  case $1 in
    none) ;;
    mseg) ip netns exec "${NSS}" "${ROOT}/scripts/mseg" attach e1 --both >/dev/null ;;
    # re-adding the table with no flags wakes it
    nft-*) ip netns exec "${NSS}" nft add table inet "mseg_${1#nft-}" '{ }' ;;
  esac
}

filter_off() {
  case $1 in
    none) ;;
    mseg) ip netns exec "${NSS}" "${ROOT}/scripts/mseg" detach e1 >/dev/null ;;
    nft-*) ip netns exec "${NSS}" nft add table inet "mseg_${1#nft-}" '{ flags dormant; }' ;;
  esac
}

# load_policy N_EXACT N_PREFIX [linear]: the same policy for mseg and the
# nft tables, every filter left off.
load_policy() {
  local n=$1 m=$2 t
  ip netns exec "${NSS}" nft flush ruleset
  mseg_rules "${n}" "${m}" >"${WORK}/mseg.rules"
  "${ROOT}/scripts/mseg" apply "${WORK}/mseg.rules" >/dev/null
  for t in sets linear; do
    [[ ${t} == linear && -z ${3:-} ]] && continue
    "nft_${t}" "${n}" "${m}" | sed "s/table inet mseg_bench/table inet mseg_${t}/" >"${WORK}/nft.${t}"
    ip netns exec "${NSS}" nft -f "${WORK}/nft.${t}"
    filter_off "nft-${t}"
  done
}

# report POLICY FILTERS...: ROUNDS rounds of every filter in turn, then one
# line per filter with the medians and the ratios to "none".
report() {
  local policy=$1 r f base_g base_c g c
  shift
  local -A res=()
  for ((r = 0; r < ROUNDS; r++)); do
    for f in "$@"; do
      filter_on "${f}"
      res[${f}]+="$(measure_once "${COUNT}")"$'\n'
      filter_off "${f}"
    done
  done
  base_g="$(awk 'NF { print $1 }' <<<"${res[none]}" | median)"
  base_c="$(awk 'NF { print $2 }' <<<"${res[none]}" | median)"
  for f in "$@"; do
    g="$(awk 'NF { print $1 }' <<<"${res[${f}]}" | median)"
    c="$(awk 'NF { print $2 }' <<<"${res[${f}]}" | median)"
    printf 'e2e: %-5s %-11s %7.2f Gbit/s (x%s)  %6d conn/s (x%s)\n' "${policy}" "${f}" \
      "${g}" "$(ratio "${g}" "${base_g}")" "${c}" "$(ratio "${c}" "${base_c}")"
  done
  BASE_G=${base_g} BASE_C=${base_c}
}

main() {
  trap cleanup EXIT
  make -s -C "${ROOT}" >/dev/null
  WORK="$(mktemp -d /tmp/mseg-bench-e2e.XXXXXX)"
  mkdir "${WORK}/bpffs"
  mount -t bpf bpf "${WORK}/bpffs"
  export TC_BPF_MNT="${WORK}/bpffs" MSEG_LOCK_DIR="${WORK}"
  setup_net
  # pins the maps, so the policy can be applied before the rounds
  ip netns exec "${NSS}" "${ROOT}/scripts/mseg" attach e1 --both >/dev/null
  ip netns exec "${NSS}" "${ROOT}/scripts/mseg" detach e1 >/dev/null

  echo "e2e: veth between two namespaces, IPv4; per round one iperf3 -t ${DURATION} (TCP, one stream) and ${COUNT} sequential short TCP connections per filter; median of ${ROUNDS} rounds"
  echo "e2e: small: 100 exact rules + 10,000 CIDR deny prefixes for other hosts, default allow"
  load_policy 100 10000 linear
  report small none mseg nft-sets nft-linear

  echo "e2e: big: ${BIG} exact rules + ${BIG} CIDR deny prefixes for other hosts, default allow"
  load_policy "${BIG}" "${BIG}"
  report big none mseg nft-sets
  # The linear chain with the big policy: once, 100 connections.
  ip netns exec "${NSS}" nft flush ruleset
  nft_linear "${BIG}" "${BIG}" | sed "s/table inet mseg_bench/table inet mseg_linear/" >"${WORK}/nft.linear"
  ip netns exec "${NSS}" nft -f "${WORK}/nft.linear"
  local g c
  read -r g c < <(measure_once 100)
  printf 'e2e: %-5s %-11s %7.2f Gbit/s (x%s)  %6d conn/s (x%s)  (one round, 100 connections)\n' big nft-linear \
    "${g}" "$(ratio "${g}" "${BASE_G}")" "${c}" "$(ratio "${c}" "${BASE_C}")"
  ip netns exec "${NSS}" nft flush ruleset

  # Control plane: the whole big policy, loaded from a file, both into an
  # empty policy (nft's tables were just flushed).
  mseg_rules "${BIG}" "${BIG}" >"${WORK}/mseg.big"
  nft_sets "${BIG}" "${BIG}" >"${WORK}/nft-sets.big"
  echo "default allow" | "${ROOT}/scripts/mseg" apply - >/dev/null
  local t0 t1 tm tn
  t0="$(date +%s.%N)"
  "${ROOT}/scripts/mseg" apply "${WORK}/mseg.big" >/dev/null
  t1="$(date +%s.%N)"
  tm="$(awk -v a="${t0}" -v b="${t1}" 'BEGIN { print b - a }')"
  t0="$(date +%s.%N)"
  ip netns exec "${NSS}" nft -f "${WORK}/nft-sets.big"
  t1="$(date +%s.%N)"
  tn="$(awk -v a="${t0}" -v b="${t1}" 'BEGIN { print b - a }')"
  printf 'e2e: load %d exact rules + %d prefixes into an empty policy: mseg apply %.2f s, nft -f (set elements) %.2f s, ratio %s\n' \
    "${BIG}" "${BIG}" "${tm}" "${tn}" "$(ratio "${tm}" "${tn}")"
  echo "e2e: commands: ip netns exec C taskset -c 0 iperf3 -c ${S4} -t ${DURATION} -J; taskset -c 0 bench/connrate.py run ${S4} 5202 ${COUNT} (servers on CPU ${SERVER_CPU});" \
    "mseg attach e1 --both + mseg apply FILE; nft -f FILE (tables generated by this script, switched with 'flags dormant')"
}

main "$@"
