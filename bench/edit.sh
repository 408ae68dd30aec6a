#!/usr/bin/env bash
# Benchmark: one policy edit (`mseg rule add`, `mseg rule del`, `mseg segment
# add`) on a small policy and on a big one (100,000 rules over 10,000
# segments, bench/segments.sh's policy), wall time of the whole command,
# median of RUNS. The baseline is the same edit on the 10-rule policy in
# the same run: a single edit should cost about the same at any size.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly RUNS="${MSEG_BENCH_RUNS:-5}"
readonly BIG_RULES="${MSEG_BENCH_RULES:-100000}"
readonly BIG_SEGS="${MSEG_BENCH_SEGMENTS:-10000}"

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"

# policy NSEG NRULES: as bench/segments.sh's.
policy() {
  local nseg=$1 nrules=$2
  echo "default deny"
  awk -v n="${nseg}" 'BEGIN {
    for (i = 0; i < n; i++)
      printf "segment add s%d 10.%d.%d.0/24\n", i, int(i / 256), i % 256 }'
  awk -v n="${nrules}" -v s="${nseg}" 'BEGIN {
    for (i = 0; i < n; i++)
      printf "rule add --src s%d --dst s%d --proto tcp --dport %d --action allow\n",
        i % s, (i * 7 + int(i / s) + 1) % s, 1000 + int(i / s) }'
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# time_edits: RUNS rounds of add rule, delete it, add a segment prefix,
# delete it; prints the three medians "ADD DEL SEG".
time_edits() {
  local i t0 t1 add="" del="" seg=""
  for ((i = 0; i < RUNS; i++)); do
    t0=$(now)
    "${ROOT}/scripts/mseg" rule add --src s1 --dst 192.0.2.0/24 --proto tcp \
      --dport 8000-8100 --action deny >/dev/null
    t1=$(now)
    add+="$(elapsed "${t0}" "${t1}")"$'\n'
    t0=$(now)
    "${ROOT}/scripts/mseg" rule del --src s1 --dst 192.0.2.0/24 --proto tcp \
      --dport 8000-8100 >/dev/null
    t1=$(now)
    del+="$(elapsed "${t0}" "${t1}")"$'\n'
    t0=$(now)
    "${ROOT}/scripts/mseg" segment add s2 172.16.0.0/24 >/dev/null
    t1=$(now)
    seg+="$(elapsed "${t0}" "${t1}")"$'\n'
    "${ROOT}/scripts/mseg" segment del s2 172.16.0.0/24 >/dev/null
  done
  echo "$(median <<<"${add}") $(median <<<"${del}") $(median <<<"${seg}")"
}

main() {
  local n nseg add del seg a0 d0 s0 t0 t1
  trap bench_cleanup EXIT
  make -s -C "${ROOT}" >/dev/null
  WORK="$(mktemp -d /tmp/mseg-bench-edit.XXXXXX)"
  NS="msegbedit$$"
  mkdir "${WORK}/bpffs"
  mount -t bpf bpf "${WORK}/bpffs"
  export TC_BPF_MNT="${WORK}/bpffs" MSEG_LOCK_DIR="${WORK}"
  ip netns add "${NS}"
  ip -n "${NS}" link add b0 type veth peer name b1
  ip netns exec "${NS}" "${ROOT}/scripts/mseg" attach b0 --ingress >/dev/null
  echo "edit: wall time of one edit command on a policy in force (median of ${RUNS}; each round adds a rule, deletes it, adds a segment prefix)"
  for n in 10 "${BIG_RULES}"; do
    nseg=$((n == 10 ? 10 : BIG_SEGS))
    policy "${nseg}" "${n}" >"${WORK}/policy"
    t0=$(now)
    "${ROOT}/scripts/mseg" apply "${WORK}/policy" >/dev/null
    t1=$(now)
    read -r add del seg < <(time_edits)
    if ((n == 10)); then
      a0=${add} d0=${del} s0=${seg}
      printf 'edit: %6d rules over %5d segments: rule add %s s, rule del %s s, segment add %s s (apply %s s)\n' \
        "${n}" "${nseg}" "${add}" "${del}" "${seg}" "$(elapsed "${t0}" "${t1}")"
    else
      printf 'edit: %6d rules over %5d segments: rule add %s s (x%s), rule del %s s (x%s), segment add %s s (x%s) (apply %s s)\n' \
        "${n}" "${nseg}" "${add}" "$(ratio "${add}" "${a0}")" "${del}" "$(ratio "${del}" "${d0}")" \
        "${seg}" "$(ratio "${seg}" "${s0}")" "$(elapsed "${t0}" "${t1}")"
    fi
  done
  echo "edit: command: mseg rule add --src s1 --dst 192.0.2.0/24 --proto tcp --dport 8000-8100 --action deny; mseg rule del (same selectors); mseg segment add s2 172.16.0.0/24"
}

main "$@"
