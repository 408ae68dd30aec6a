#!/usr/bin/env bash
# Benchmark: the policy language (docs/policy.md) at scale.
#
# 1. Per-packet cost of a NEW flow decided by a segment-to-segment rule,
#    with 10 rules over 10 segments and with 100,000 rules over 10,000
#    segments, against the floor program of bench/pkt.sh (parse + one
#    5-tuple hash lookup) measured beside it, run for run. The probe is
#    denied by its rule (a deny creates no session), so every run is a new
#    flow. The default decision (no rule matches) is measured too.
# 2. `mseg apply` of the 100,000 rules and 10,000 segments into an empty
#    policy against `nft -f` of the same policy written with nft sets (one
#    per segment) and a verdict map over (saddr . daddr . dport), same run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly REPEAT="${MSEG_BENCH_REPEAT:-200000}"
readonly RUNS="${MSEG_BENCH_RUNS:-5}"
readonly BIG_RULES="${MSEG_BENCH_RULES:-100000}"
readonly BIG_SEGS="${MSEG_BENCH_SEGMENTS:-10000}"

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"

run_ns() {
  # shellcheck disable=SC2086 # WHAT is two words on purpose
  bpftool -j prog run ${1} data_in "${2}" repeat "${REPEAT}" | jq -e .duration
}

run_pair() {
  local i a="" f=""
  for ((i = 0; i < RUNS; i++)); do
    a+="$(run_ns "$1" "$2")"$'\n'
    f+="$(run_ns "pinned ${WORK}/bpffs/ref/ref_floor" "$2")"$'\n'
  done
  echo "$(median <<<"${a}") $(median <<<"${f}")"
}

# policy NSEG NRULES: segments s0.. (one /24 each, under 10.0.0.0/8), the
# probe's segments and rule, and fillers between segments on TCP ports.
policy() {
  local nseg=$1 nrules=$2
  echo "default deny"
  echo "segment add probe_src 192.0.2.0/24"
  echo "segment add probe_dst 198.51.100.0/24"
  awk -v n="${nseg}" 'BEGIN {
    for (i = 0; i < n; i++)
      printf "segment add s%d 10.%d.%d.0/24\n", i, int(i / 256), i % 256 }'
  echo "rule add --src probe_src --dst probe_dst --proto udp --dport 9 --action deny"
  awk -v n="${nrules}" -v s="${nseg}" 'BEGIN {
    for (i = 0; i < n - 1; i++)
      printf "rule add --src s%d --dst s%d --proto tcp --dport %d --action allow\n",
        i % s, (i * 7 + int(i / s) + 1) % s, 1000 + int(i / s) }'
}

# nft_policy NSEG NRULES: the same filler policy for nft -f.
nft_policy() {
  local nseg=$1 nrules=$2
  awk -v n="${nseg}" -v r="${nrules}" 'BEGIN {
    print "table inet msegbench {"
    for (i = 0; i < n; i++)
      printf "  set s%d { type ipv4_addr; flags interval; elements = { 10.%d.%d.0/24 } }\n",
        i, int(i / 256), i % 256
    print "  map pol { type ipv4_addr . ipv4_addr . inet_service : verdict; flags interval;"
    printf "    elements = { 192.0.2.0/24 . 198.51.100.0/24 . 9 : drop"
    for (i = 0; i < r - 1; i++) {
      a = i % n; b = (i * 7 + int(i / n) + 1) % n
      printf ",\n      10.%d.%d.0/24 . 10.%d.%d.0/24 . %d : accept",
        int(a / 256), a % 256, int(b / 256), b % 256, 1000 + int(i / n)
    }
    print " }\n  }"
    print "  chain input { type filter hook input priority 0; policy drop;"
    print "    ip saddr . ip daddr . th dport vmap @pol"
    print "  }"
    print "}" }'
}

frame() {
  "${ROOT}/build/mseg-pkt" --src "$1" --dst "$2" --proto udp --sport 40000 --dport 9 \
    --payload 18 -o "$3"
}

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

main() {
  local n nseg v floor line t0 t1 tm tn
  trap bench_cleanup EXIT
  make -s -C "${ROOT}" >/dev/null
  WORK="$(mktemp -d /tmp/mseg-bench-seg.XXXXXX)"
  NS="msegbseg$$"
  mkdir "${WORK}/bpffs"
  mount -t bpf bpf "${WORK}/bpffs"
  export TC_BPF_MNT="${WORK}/bpffs" MSEG_LOCK_DIR="${WORK}"
  clang -O2 -g -target bpf -mcpu=v3 -Wall -Werror -I "/usr/include/$(uname -m)-linux-gnu" \
    -c "${ROOT}/bench/bpf/mseg-ref.bpf.c" -o "${WORK}/ref.o"
  bpftool prog loadall "${WORK}/ref.o" "${WORK}/bpffs/ref" type tc
  ip netns add "${NS}"
  ip -n "${NS}" link add b0 type veth peer name b1
  ip netns exec "${NS}" "${ROOT}/scripts/mseg" attach b0 --ingress >/dev/null
  PROG="$(ip netns exec "${NS}" tc -j filter show dev b0 ingress |
    jq -r '[.[] | .options.prog.id // empty] | first')"
  frame 192.0.2.1 198.51.100.1 "${WORK}/rule"
  frame 192.0.2.1 203.0.113.1 "${WORK}/default"
  echo "segments: per-packet cost of a new flow through BPF_PROG_TEST_RUN (repeat ${REPEAT}, median of ${RUNS} runs, each beside a run of the floor)"
  for n in 10 "${BIG_RULES}"; do
    nseg=$((n == 10 ? 10 : BIG_SEGS))
    policy "${nseg}" "${n}" >"${WORK}/policy"
    printf 'default deny\n' | "${ROOT}/scripts/mseg" apply - >/dev/null
    t0="$(date +%s.%N)"
    "${ROOT}/scripts/mseg" apply "${WORK}/policy" >"${WORK}/applied"
    t1="$(date +%s.%N)"
    tm=$(elapsed "${t0}" "${t1}")
    line=$(printf 'segments: %6d rules over %5d segments:' "${n}" "${nseg}")
    read -r v floor < <(run_pair "id ${PROG}" "${WORK}/rule")
    line+=$(printf '  segment rule %4d ns (x%s floor)' "${v}" "$(ratio "${v}" "${floor}")")
    eval "rule_${n}=${v} floor_${n}=${floor}"
    read -r v floor < <(run_pair "id ${PROG}" "${WORK}/default")
    line+=$(printf '  default %4d ns (x%s floor)' "${v}" "$(ratio "${v}" "${floor}")")
    echo "${line}"
    echo "segments: $(cat "${WORK}/applied") in ${tm} s; compiled: $("${ROOT}/build/mseg-ruleset" check --stats "${WORK}/policy" | tail -n 1)"
  done
  # shellcheck disable=SC2154 # set by eval above
  printf 'segments: segment rule, 100,000 vs 10 rules: x%s (ratios to their floors: x%s vs x%s)\n' \
    "$(ratio "${rule_100000:-0}" "${rule_10:-1}")" \
    "$(ratio "${rule_100000:-0}" "${floor_100000:-1}")" "$(ratio "${rule_10:-0}" "${floor_10:-1}")"
  # apply vs nft -f, same policy, same run, both into an empty state
  policy "${BIG_SEGS}" "${BIG_RULES}" >"${WORK}/policy"
  nft_policy "${BIG_SEGS}" "${BIG_RULES}" >"${WORK}/policy.nft"
  printf 'default deny\n' | "${ROOT}/scripts/mseg" apply - >/dev/null
  t0="$(date +%s.%N)"
  "${ROOT}/scripts/mseg" apply "${WORK}/policy" >/dev/null
  t1="$(date +%s.%N)"
  tm=$(elapsed "${t0}" "${t1}")
  t0="$(date +%s.%N)"
  ip netns exec "${NS}" nft -f "${WORK}/policy.nft"
  t1="$(date +%s.%N)"
  tn=$(elapsed "${t0}" "${t1}")
  printf 'segments: load %d rules + %d segments: mseg apply %s s, nft -f (sets + verdict map) %s s: nft/mseg x%s\n' \
    "${BIG_RULES}" "${BIG_SEGS}" "${tm}" "${tn}" "$(ratio "${tn}" "${tm}")"
  echo "segments: command: bpftool -j prog run {id MSEG_PROG | pinned REF} data_in FRAME repeat ${REPEAT}; mseg apply FILE; ip netns exec NS nft -f FILE"
}

main "$@"
