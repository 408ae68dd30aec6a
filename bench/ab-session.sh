#!/usr/bin/env bash
# Benchmark: the per-packet cost of a packet of an established session (the
# path most packets take) in this tree's build against another revision's
# build (default: main), side by side in one run: the two classifiers and
# a floor program of bench/pkt.sh take turns on the same frame, RUNS
# times, and each figure is a median. The floor is ref_floor_hit (its lookup
# finds the flow) for the session probe, ref_floor (its lookup misses) for
# a new flow. A change that adds work to the
# established path shows here as a ratio above 1.
#
# With --new-flow the probe is a new flow instead: one a rule denies (a deny
# opens no session, so every run is a new flow, as bench/pkt.sh's exact
# case): the path a change to the new-flow path (flow aggregation) costs.
#
# With --staged this tree also has the same policy staged beside it
# (docs/policy.md, staged policies: every new flow judged twice): what a
# staged set costs the new-flow path (issue 15). The data path keeps the
# staged verdict of a flow with it, so the probe (one flow again and again)
# pays the second lookup once; --staged-sport adds a staged rule naming a
# source port, which turns that off: every new flow judged twice, the worst
# case.
#
# Usage: bench/ab-session.sh [--new-flow] [--staged|--staged-sport] [REV]   (REV: a git revision of this repository)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly REPEAT="${MSEG_BENCH_REPEAT:-1000000}"
readonly RUNS="${MSEG_BENCH_RUNS:-9}"
CASE=session
STAGED=0
while [[ ${1:-} == --* ]]; do
  case $1 in
    --new-flow) CASE=new-flow ;;
    --staged) STAGED=1 ;;
    --staged-sport) STAGED=2 ;;
    *) echo "ab-session: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
FLOOR=ref_floor_hit
[[ ${CASE} == new-flow ]] && FLOOR=ref_floor
readonly CASE STAGED FLOOR
readonly REF="${1:-main}"

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"

NS2=""
cleanup() {
  [[ -n "${NS2}" ]] && ip netns del "${NS2}" 2>/dev/null
  [[ -n "${WORK}" ]] && umount "${WORK}/bpffs-ref" 2>/dev/null
  bench_cleanup
}

run_ns() {
  # shellcheck disable=SC2086 # WHAT is two words on purpose
  bpftool -j prog run ${1} data_in "${2}" repeat "${REPEAT}" | jq -e .duration
}

# attach TREE BPFFS NS: TREE's classifier on a veth in NS, its maps in
# BPFFS, an allow rule for the session probe and a deny rule for the
# new-flow probe; prints the program id.
attach() {
  local tree=$1 mnt=$2 ns=$3
  # the edit lock cannot live on a bpffs
  mkdir -m 0700 "${mnt}.lock"
  ip netns add "${ns}"
  ip -n "${ns}" link add b0 type veth peer name b1
  TC_BPF_MNT="${mnt}" MSEG_LOCK_DIR="${mnt}.lock" ip netns exec "${ns}" "${tree}/scripts/mseg" attach b0 --ingress >/dev/null
  local policy
  policy=$(printf '%s\n' "default deny" \
    "rule --src 192.0.2.1 --dst 198.51.100.1 --proto udp --dport 9 --action allow" \
    "rule --src fd00:1::1 --dst fd00:2::1 --proto udp --dport 9 --action allow" \
    "rule --src 192.0.2.1 --dst 198.51.100.2 --proto udp --dport 9 --action deny" \
    "rule --src fd00:1::1 --dst fd00:2::2 --proto udp --dport 9 --action deny")
  TC_BPF_MNT="${mnt}" MSEG_LOCK_DIR="${mnt}.lock" "${tree}/scripts/mseg" apply - <<<"${policy}" >/dev/null
  if ((STAGED)) && [[ ${tree} == "${ROOT}" ]]; then
    ((STAGED == 2)) &&
      policy+=$'\nrule --src 203.0.113.1 --dst 203.0.113.2 --proto tcp --sport 1 --dport 1 --action allow'
    TC_BPF_MNT="${mnt}" MSEG_LOCK_DIR="${mnt}.lock" "${tree}/scripts/mseg" apply --staged - <<<"${policy}" >/dev/null
  fi
  ip netns exec "${ns}" tc -j filter show dev b0 ingress | jq -r '[.[] | .options.prog.id // empty] | first'
}

main() {
  local a b fam src dst i ra rb rf rt va vb vf x y
  trap cleanup EXIT
  make -s -C "${ROOT}" >/dev/null
  WORK="$(mktemp -d /tmp/mseg-bench-ab.XXXXXX)"
  NS="msegbaba$$"
  NS2="msegbabb$$"
  mkdir "${WORK}/bpffs" "${WORK}/bpffs-ref" "${WORK}/ref"
  mount -t bpf bpf "${WORK}/bpffs"
  mount -t bpf bpf "${WORK}/bpffs-ref"
  git -C "${ROOT}" archive "${REF}" | tar -x -C "${WORK}/ref"
  make -s -C "${WORK}/ref" >/dev/null
  clang -O2 -g -target bpf -mcpu=v3 -Wall -Werror -I "/usr/include/$(uname -m)-linux-gnu" \
    -c "${ROOT}/bench/bpf/mseg-ref.bpf.c" -o "${WORK}/floor.o"
  bpftool prog loadall "${WORK}/floor.o" "${WORK}/bpffs/floor" type tc
  a=$(attach "${ROOT}" "${WORK}/bpffs" "${NS}")
  b=$(attach "${WORK}/ref" "${WORK}/bpffs-ref" "${NS2}")
  local what="a packet of an established UDP session"
  [[ ${CASE} == new-flow ]] && what="a new UDP flow a rule denies (every run a new flow)"
  ((STAGED)) && what+=", this tree with the same policy staged"
  ((STAGED == 2)) && what+=" and a rule naming a source port (no staged verdict kept)"
  echo "ab-session: ${what}, this tree against ${REF} ($(git -C "${ROOT}" rev-parse --short "${REF}")), BPF_PROG_TEST_RUN repeat ${REPEAT}, median of ${RUNS} turns (this, ${REF}, ${FLOOR})"
  for fam in 4 6; do
    if [[ ${fam} == 4 ]]; then src=192.0.2.1 dst=198.51.100.1; else src=fd00:1::1 dst=fd00:2::1; fi
    if [[ ${CASE} == new-flow ]]; then dst=${dst%1}2; fi
    "${ROOT}/build/mseg-pkt" --src "${src}" --dst "${dst}" --proto udp --sport 40000 --dport 9 \
      --payload 18 -o "${WORK}/frame${fam}"
    # the first run of each creates the session the others find
    bpftool prog run id "${a}" data_in "${WORK}/frame${fam}" repeat 1 >/dev/null
    bpftool prog run id "${b}" data_in "${WORK}/frame${fam}" repeat 1 >/dev/null
    ra="" rb="" rf="" rt=""
    for ((i = 0; i < RUNS; i++)); do
      x=$(run_ns "id ${a}" "${WORK}/frame${fam}")
      y=$(run_ns "id ${b}" "${WORK}/frame${fam}")
      ra+="${x}"$'\n' rb+="${y}"$'\n'
      # each turn's own ratio: the machine's speed drifts between turns
      rt+="$(ratio "${x}" "${y}")"$'\n'
      rf+="$(run_ns "pinned ${WORK}/bpffs/floor/${FLOOR}" "${WORK}/frame${fam}")"$'\n'
    done
    va=$(median <<<"${ra}") vb=$(median <<<"${rb}") vf=$(median <<<"${rf}")
    printf 'ab-session: IPv%s  this %4d ns (x%s %s)  %s %4d ns (x%s)  %s %4d ns  this/%s x%s (median of the turns: x%s)\n' \
      "${fam}" "${va}" "$(ratio "${va}" "${vf}")" "${FLOOR}" "${REF}" "${vb}" "$(ratio "${vb}" "${vf}")" "${FLOOR}" "${vf}" \
      "${REF}" "$(ratio "${va}" "${vb}")" "$(median <<<"${rt}")"
  done
  echo "ab-session: command: bpftool -j prog run id PROG data_in FRAME repeat ${REPEAT} (.duration); frame: build/mseg-pkt --src S --dst D --proto udp --sport 40000 --dport 9 --payload 18"
}

main "$@"
