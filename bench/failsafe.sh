#!/usr/bin/env bash
# Benchmark: what the failsafes cost a new flow. With failsafes on, the
# (any, any) key of the rule trie always exists, so every new flow makes
# one more mseg_rules lookup (docs/policy.md, compilation). The probe is a
# new UDP flow to port 9 that no rule and no failsafe matches, denied by
# default deny (a deny opens no session, so every run is a new flow),
# through BPF_PROG_TEST_RUN with `failsafe off` and with the default list
# in turn, on the same program, with 10 and with 100,000 rules loaded.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly REPEAT="${MSEG_BENCH_REPEAT:-1000000}"
readonly BIG="${MSEG_BENCH_RULES:-100000}"
readonly RUNS="${MSEG_BENCH_RUNS:-5}"

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"

run_ns() {
  bpftool -j prog run id "${PROG}" data_in "$1" repeat "${REPEAT}" | jq -e .duration
}

# ruleset FAMILY N: default deny and N rules (each port 80 between two
# hosts), none matching the probe; no failsafe line (the default list).
ruleset() {
  local fam=$1 n=$2
  echo "default deny"
  if [[ ${fam} == 4 ]]; then
    awk -v n="${n}" 'BEGIN { for (i = 0; i < n; i++)
      printf "rule add --src 10.%d.%d.%d --dst 10.255.0.1 --proto tcp --dport 80 --action allow\n",
        int(i / 65536), int(i / 256) % 256, i % 256 }'
  else
    awk -v n="${n}" 'BEGIN { for (i = 0; i < n; i++)
      printf "rule add --src 2001:db8:1::%x:%x --dst 2001:db8:2::1 --proto tcp --dport 80 --action allow\n",
        1 + int(i / 65536), i % 65536 }'
  fi
}

# bench_case FAMILY SRC DST N: RUNS pairs of runs, off then on, each pair
# after the two edits; prints the medians and their ratio.
bench_case() {
  local fam=$1 src=$2 dst=$3 n=$4 i off="" on=""
  ruleset "${fam}" "${n}" >"${WORK}/rules"
  "${ROOT}/scripts/mseg" apply "${WORK}/rules" >/dev/null
  "${ROOT}/build/mseg-pkt" --src "${src}" --dst "${dst}" --proto udp --sport 40000 --dport 9 \
    --payload 18 -o "${WORK}/probe"
  for ((i = 0; i < RUNS; i++)); do
    "${ROOT}/scripts/mseg" failsafe off >/dev/null
    off+="$(run_ns "${WORK}/probe")"$'\n'
    "${ROOT}/scripts/mseg" failsafe default >/dev/null
    on+="$(run_ns "${WORK}/probe")"$'\n'
  done
  off=$(median <<<"${off}")
  on=$(median <<<"${on}")
  printf 'failsafe: IPv%s %6d rules: new flow (default deny)  failsafe off %4d ns  default list %4d ns  ratio %s\n' \
    "${fam}" "${n}" "${off}" "${on}" "$(ratio "${on}" "${off}")"
}

main() {
  trap bench_cleanup EXIT
  make -s -C "${ROOT}" >/dev/null
  WORK="$(mktemp -d /tmp/mseg-bench-failsafe.XXXXXX)"
  NS="msegbfs$$"
  mkdir "${WORK}/bpffs"
  mount -t bpf bpf "${WORK}/bpffs"
  export TC_BPF_MNT="${WORK}/bpffs" MSEG_LOCK_DIR="${WORK}"
  ip netns add "${NS}"
  ip -n "${NS}" link add b0 type veth peer name b1
  ip netns exec "${NS}" "${ROOT}/scripts/mseg" attach b0 --ingress >/dev/null
  PROG="$(ip netns exec "${NS}" tc -j filter show dev b0 ingress |
    jq -r '[.[] | .options.prog.id // empty] | first')"
  echo "failsafe: a new flow's cost with the default failsafes against none (BPF_PROG_TEST_RUN, repeat ${REPEAT}, median of ${RUNS} runs each, taking turns)"
  bench_case 4 192.0.2.1 198.18.0.9 10
  bench_case 4 192.0.2.1 198.18.0.9 "${BIG}"
  bench_case 6 fd00:1::1 fd00:4::9 10
  bench_case 6 fd00:1::1 fd00:4::9 "${BIG}"
  echo "failsafe: command: mseg failsafe off|default, then bpftool -j prog run id PROG data_in FRAME repeat ${REPEAT} (.duration); frame: build/mseg-pkt --src S --dst D --proto udp --sport 40000 --dport 9 --payload 18"
}

main "$@"
