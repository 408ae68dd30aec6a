#!/usr/bin/env bash
# Benchmark: what a new flow costs mseg and nftables as the policy grows,
# 10 to 100,000 rules (COUNTS), IPv4, for bench/run's chart.
#
# The policy: policy_mix (bench/policy.bash: segments, rules between them,
# exact rules, CIDR rules, all for other hosts) and one segment rule that
# denies the probe, UDP 192.0.2.1:40000 -> 198.51.100.1:9 (a deny creates
# no session and no conntrack entry, so every frame is a new flow), default
# deny. nftables gets the same policy through policy_nft, in a prerouting
# chain after conntrack: conntrack + the policy, as connrate.sh's nft-100k.
#
# Two measures:
#   test-run  mseg alone through BPF_PROG_TEST_RUN, as pkt.sh and
#             segments.sh measure it, beside the floor program (parse + one
#             5-tuple hash lookup)
#   stack     the probe sent TURNS x 2001 x 100 times into a veth by
#             build/mseg-blast, which prints the sending thread's CPU ns per
#             frame: the peer receives it in that thread, so this is the
#             whole receive path up to the drop. What the filter adds is the
#             difference to the same frame dropped at once at the same
#             place: mseg at tc ingress against a tc program that drops
#             everything (bench/bpf/mseg-ref.bpf.c ref_drop); nftables
#             (conntrack at priority -200, the policy at -150) against a
#             prerouting chain at -300 that drops everything. Both filters
#             measured the same way, in turns; nftables has no
#             BPF_PROG_TEST_RUN, and this is as close as it gets to one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly REPEAT="${MSEG_BENCH_REPEAT:-200000}"
readonly RUNS="${MSEG_BENCH_RUNS:-5}"
readonly TURNS="${MSEG_BENCH_STACK_TURNS:-3}"
read -r -a COUNTS <<<"${MSEG_BENCH_RULECOUNTS:-10 1000 10000 100000}"
readonly COUNTS
readonly PROBE_SRC=192.0.2.1 PROBE_DST=198.51.100.1

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"
# shellcheck source=bench/policy.bash
source "${ROOT}/bench/policy.bash"

TABLE="mseg_rc$$"

# in_ns CMD...: CMD in the benchmark's namespace.
in_ns() { ip netns exec "${NS}" "$@"; }

test_run() {
  # shellcheck disable=SC2086 # WHAT is two words on purpose
  bpftool -j prog run ${1} data_in "${WORK}/probe" repeat "${REPEAT}" | jq -e .duration
}

blast() { in_ns timeout -k 5 120 "${ROOT}/build/mseg-blast" --dev b0 --frame "${WORK}/probe"; }

# on WHAT / off WHAT: the four ways of receiving the probe on b1.
on() {
  case $1 in
    tc-drop | mseg)
      in_ns tc qdisc add dev b1 clsact
      in_ns tc filter add dev b1 ingress pref 1337 handle 1 bpf da \
        object-pinned "${WORK}/bpffs/$([[ $1 == mseg ]] && echo prog-mseg || echo ref/ref_drop)"
      ;;
    nft-drop) in_ns nft add table inet "${TABLE}_drop" '{ }' ;;
    nft) in_ns nft add table inet "${TABLE}" '{ }' ;;
  esac
}

off() {
  case $1 in
    tc-drop | mseg) in_ns tc qdisc del dev b1 clsact ;;
    nft-drop) in_ns nft add table inet "${TABLE}_drop" '{ flags dormant; }' ;;
    nft) in_ns nft add table inet "${TABLE}" '{ flags dormant; }' ;;
  esac
}

# counter NAME: a kernel counter of NS (absolute; nstat's history untouched).
counter() { in_ns nstat -asz "$1" | awk -v n="$1" '$1 == n { print $2 }'; }

# measure N: load the policy of N rules into both filters, then print one
# line: test-run medians, stack medians over TURNS turns of all four.
measure() {
  local n=$1 t0 tm i w a f v
  local -A st=()
  { policy_mix $((n - 1)) && cat "${WORK}/own"; } >"${WORK}/policy"
  t0=$(date +%s.%N)
  "${ROOT}/scripts/mseg" apply "${WORK}/policy" >/dev/null
  tm=$(awk -v a="${t0}" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  in_ns nft delete table inet "${TABLE}" 2>/dev/null || true
  policy_nft "${TABLE}" prerouting -150 <"${WORK}/policy" >"${WORK}/policy.nft"
  in_ns nft -f "${WORK}/policy.nft"
  off nft
  a="" f=""
  for ((i = 0; i < RUNS; i++)); do
    a+="$(test_run "id ${MSEG_PROG}")"$'\n'
    f+="$(test_run "pinned ${WORK}/bpffs/ref/ref_floor")"$'\n'
  done
  # Were the probes judged and dropped by each filter's policy? mseg: no
  # session; nftables: no conntrack entry, and none reached routing.
  local routed
  routed=$(($(counter IpInAddrErrors) + $(counter IpExtInNoRoutes)))
  for ((i = 0; i < TURNS; i++)); do
    for w in tc-drop mseg nft-drop nft; do
      on "${w}"
      st[${w}]+="$(blast)"$'\n'
      off "${w}"
    done
  done
  routed=$(($(counter IpInAddrErrors) + $(counter IpExtInNoRoutes) - routed))
  v=$("${ROOT}/scripts/mseg" sessions --count)
  if ((routed != 0 || v != 0)) || [[ $(in_ns conntrack -C) != 0 ]]; then
    echo "mseg: bench: probes not dropped by the policies: ${routed} routed, ${v} sessions" >&2
    return 1
  fi
  local m mf sd sm snd sn
  m=$(median <<<"${a}") mf=$(median <<<"${f}")
  sd=$(median <<<"${st[tc-drop]}") sm=$(median <<<"${st[mseg]}")
  snd=$(median <<<"${st[nft-drop]}") sn=$(median <<<"${st[nft]}")
  printf 'rulecount: %6d rules  test-run: mseg %4d ns (floor %3d ns)  stack: mseg +%d ns  nft +%d ns  nft/mseg x%s  (dropped at once: tc %d ns, nft %d ns per frame; mseg apply %s s)\n' \
    "${n}" "${m}" "${mf}" $((sm - sd)) $((sn - snd)) "$(ratio $((sn - snd)) $((sm - sd)))" \
    "${sd}" "${snd}" "${tm}"
}

main() {
  trap bench_cleanup EXIT
  make -s -C "${ROOT}" >/dev/null
  WORK="$(mktemp -d /tmp/mseg-bench-rulecount.XXXXXX)"
  NS="msegbrc$$"
  mkdir "${WORK}/bpffs"
  mount -t bpf bpf "${WORK}/bpffs"
  export TC_BPF_MNT="${WORK}/bpffs" MSEG_LOCK_DIR="${WORK}"
  clang -O2 -g -target bpf -mcpu=v3 -Wall -Werror -I "/usr/include/$(uname -m)-linux-gnu" \
    -c "${ROOT}/bench/bpf/mseg-ref.bpf.c" -o "${WORK}/ref.o"
  bpftool prog loadall "${WORK}/ref.o" "${WORK}/bpffs/ref" type tc
  ip netns add "${NS}"
  # b0 sends, b1 receives; b1 has the probe's destination MAC, so the
  # stack takes the frame as its own (not PACKET_OTHERHOST) and it reaches
  # the netfilter hooks.
  in_ns ip link add b0 type veth peer name b1
  in_ns ip link set b1 address 02:00:00:00:00:02
  in_ns ip link set b0 up
  in_ns ip link set b1 up
  in_ns ip link set lo up
  in_ns "${ROOT}/scripts/mseg" attach b1 --ingress >/dev/null
  MSEG_PROG="$(in_ns tc -j filter show dev b1 ingress |
    jq -r '[.[] | .options.prog.id // empty] | first')"
  bpftool prog pin id "${MSEG_PROG}" "${WORK}/bpffs/prog-mseg"
  in_ns "${ROOT}/scripts/mseg" detach b1 >/dev/null
  in_ns nft -f - <<EOF
table inet ${TABLE}_drop {
  chain early { type filter hook prerouting priority -300; policy drop; }
}
EOF
  off nft-drop
  "${ROOT}/build/mseg-pkt" --src "${PROBE_SRC}" --dst "${PROBE_DST}" --proto udp \
    --sport 40000 --dport 9 --payload 18 -o "${WORK}/probe"
  printf '%s\n' "segment add probe_src ${PROBE_SRC%.*}.0/24" "segment add probe_dst ${PROBE_DST%.*}.0/24" \
    "rule add --src probe_src --dst probe_dst --proto udp --dport 9 --action deny" "default deny" >"${WORK}/own"
  echo "rulecount: a new flow denied by a segment rule among N (bench/policy.bash's mix), IPv4; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rulecount: test-run: BPF_PROG_TEST_RUN, repeat ${REPEAT}, median of ${RUNS}; stack: CPU ns per frame above the same frame dropped at once, median of ${TURNS} turns (each the fastest of 2001 batches of 100 frames)"
  local n
  for n in "${COUNTS[@]}"; do
    measure "${n}"
  done
  echo "rulecount: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rulecount: commands: bpftool -j prog run {id MSEG_PROG | pinned REF_FLOOR} data_in FRAME repeat ${REPEAT};" \
    "ip netns exec NS build/mseg-blast --dev b0 --frame FRAME (b1: tc ingress ref_drop | mseg; nft prerouting -300 drop | conntrack + policy_nft at -150)"
}

main "$@"
