#!/usr/bin/env bash
# Benchmark: end to end through a veth pair between two namespaces (client
# C 10.88.0.1, server S 10.88.0.2), IPv4, with the filter in S:
#   none        no filter
#   mseg        `mseg attach DEV --both` on S's veth
#   nft-sets    nftables input chain: conntrack (established accepted first),
#               the 100 exact rules as a concatenated set, the 10,000
#               prefixes as an interval set
#   nft-linear  nftables input chain, no conntrack: the same 100 exact rules
#               and 10,000 prefixes as 10,100 rules, one after the other
# The policy: 100 exact rules and 10,000 CIDR deny prefixes, all for other
# hosts, default allow: the measured flows are decided by the default, so a
# linear chain walks every rule, a set-based one does a few lookups.
# Figures: iperf3 TCP throughput (DURATION s) and sequential short TCP
# connections per second (COUNT, python client and server), with ratios to
# "none" measured in the same run.
#
# Then the control plane: seconds to load 100,000 exact rules and 100,000
# prefixes with `mseg apply` vs `nft -f` of the same as set elements.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly DURATION="${MSEG_BENCH_DURATION:-3}"
readonly COUNT="${MSEG_BENCH_CONNS:-2000}"
readonly IPERF_RUNS=3
readonly BIG="${MSEG_BENCH_RULES:-100000}"
readonly C4=10.88.0.1 S4=10.88.0.2

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
  ip -n "${NSS}" link set lo up
  ip netns exec "${NSS}" iperf3 -s -D -p 5201 --pidfile "${WORK}/iperf.pid" >/dev/null
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s "${WORK}/iperf.pid" ]] && break
    sleep 0.1
  done
  PIDS+=("$(cat "${WORK}/iperf.pid")")
  ip netns exec "${NSS}" python3 "${ROOT}/bench/connrate.py" serve "${S4}" 5202 540 &
  PIDS+=("$!")
  sleep 0.5
}

# measure: the median of IPERF_RUNS iperf3 runs and one connection-rate
# run; sets GBPS, CPS.
measure() {
  local out i
  local -a g=()
  for ((i = 0; i < IPERF_RUNS; i++)); do
    out="$(ip netns exec "${NSC}" timeout 30 iperf3 -c "${S4}" -p 5201 -t "${DURATION}" -J)"
    g+=("$(jq '.end.sum_received.bits_per_second / 1e9' <<<"${out}")")
  done
  GBPS="$(printf '%s\n' "${g[@]}" | sort -g | sed -n "$(((IPERF_RUNS + 1) / 2))p")"
  CPS="$(ip netns exec "${NSC}" timeout 120 python3 "${ROOT}/bench/connrate.py" run "${S4}" 5202 "${COUNT}")"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

main() {
  trap cleanup EXIT
  make -s -C "${ROOT}" >/dev/null
  WORK="$(mktemp -d /tmp/mseg-bench-e2e.XXXXXX)"
  mkdir "${WORK}/bpffs"
  mount -t bpf bpf "${WORK}/bpffs"
  export TC_BPF_MNT="${WORK}/bpffs" MSEG_LOCK_DIR="${WORK}"
  setup_net
  mseg_rules 100 10000 >"${WORK}/mseg.small"
  nft_sets 100 10000 >"${WORK}/nft-sets.small"
  nft_linear 100 10000 >"${WORK}/nft-linear.small"

  echo "e2e: veth between two namespaces, IPv4; iperf3 -t ${DURATION} (TCP, one stream, median of ${IPERF_RUNS}) and ${COUNT} sequential short TCP connections"
  echo "e2e: policy: 100 exact rules + 10,000 CIDR deny prefixes for other hosts, default allow"
  local base_g base_c
  measure
  base_g=${GBPS} base_c=${CPS}
  printf 'e2e: %-11s %7.2f Gbit/s          %6d conn/s\n' none "${GBPS}" "${CPS}"

  ip netns exec "${NSS}" "${ROOT}/scripts/mseg" attach e1 --both >/dev/null
  "${ROOT}/scripts/mseg" apply "${WORK}/mseg.small" >/dev/null
  measure
  printf 'e2e: %-11s %7.2f Gbit/s (x%s)  %6d conn/s (x%s)\n' mseg "${GBPS}" \
    "$(ratio "${GBPS}" "${base_g}")" "${CPS}" "$(ratio "${CPS}" "${base_c}")"
  ip netns exec "${NSS}" "${ROOT}/scripts/mseg" detach e1 >/dev/null

  local v
  for v in sets linear; do
    ip netns exec "${NSS}" nft -f "${WORK}/nft-${v}.small"
    measure
    printf 'e2e: %-11s %7.2f Gbit/s (x%s)  %6d conn/s (x%s)\n' "nft-${v}" "${GBPS}" \
      "$(ratio "${GBPS}" "${base_g}")" "${CPS}" "$(ratio "${CPS}" "${base_c}")"
    ip netns exec "${NSS}" nft delete table inet mseg_bench
  done

  # Control plane: the whole big policy, loaded from a file.
  mseg_rules "${BIG}" "${BIG}" >"${WORK}/mseg.big"
  nft_sets "${BIG}" "${BIG}" >"${WORK}/nft-sets.big"
  local t0 t1 tm tn
  t0="$(date +%s.%N)"
  "${ROOT}/scripts/mseg" apply "${WORK}/mseg.big" >/dev/null
  t1="$(date +%s.%N)"
  tm="$(awk -v a="${t0}" -v b="${t1}" 'BEGIN { print b - a }')"
  t0="$(date +%s.%N)"
  ip netns exec "${NSS}" nft -f "${WORK}/nft-sets.big"
  t1="$(date +%s.%N)"
  tn="$(awk -v a="${t0}" -v b="${t1}" 'BEGIN { print b - a }')"
  printf 'e2e: load %d exact rules + %d prefixes: mseg apply %.2f s, nft -f (set elements) %.2f s, ratio %s\n' \
    "${BIG}" "${BIG}" "${tm}" "${tn}" "$(ratio "${tm}" "${tn}")"
  echo "e2e: commands: ip netns exec C iperf3 -c ${S4} -t ${DURATION} -J; bench/connrate.py run ${S4} 5202 ${COUNT};" \
    "mseg attach e1 --both + mseg apply FILE; nft -f FILE (tables generated by this script)"
}

main "$@"
