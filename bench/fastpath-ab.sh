#!/usr/bin/env bash
# Benchmark: the established (session) path of this tree's classifier beside
# the same path of another revision's (default: main), and the floor program
# of bench/bpf/mseg-ref.bpf.c, taking turns run by run (the VM's speed drifts
# by 30 % within a minute, so each run's floor is measured right around it).
# Prints every run and the median of each object's ratio to its floor: a
# change that claims "the fast path is unchanged" is checked here.
#   bench/fastpath-ab.sh [REV]     (MSEG_BENCH_AB_RUNS, MSEG_BENCH_REPEAT)
# Each object loads through plain tc with its own pins, so their ABIs may
# differ.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly REPEAT="${MSEG_BENCH_REPEAT:-1000000}"
readonly RUNS="${MSEG_BENCH_AB_RUNS:-11}"

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"

# run_ns WHAT FRAME: bpftool's average ns per run ("id N" or "pinned PATH").
run_ns() {
  # shellcheck disable=SC2086 # WHAT is two words on purpose
  bpftool -j prog run ${1} data_in "${2}" repeat "${REPEAT}" | jq -e .duration
}

# attach NAME OBJ: OBJ on veth NAME0's ingress with pins of its own; prints
# the program id.
attach() {
  local name=$1 obj=$2
  mkdir "${WORK}/${name}"
  mount -t bpf bpf "${WORK}/${name}"
  ip -n "${NS}" link add "${name}0" type veth peer name "${name}1"
  ip netns exec "${NS}" tc qdisc add dev "${name}0" clsact
  TC_BPF_MNT="${WORK}/${name}" ip netns exec "${NS}" \
    tc filter add dev "${name}0" ingress bpf da obj "${obj}" sec tc
  ip netns exec "${NS}" tc -j filter show dev "${name}0" ingress |
    jq -r '[.[] | .options.prog.id // empty] | first'
}

cleanup() {
  local d
  for d in base this ref; do
    umount "${WORK}/${d}" 2>/dev/null || true
  done
  bench_cleanup
}

# compare FAMILY SRC DST: the session probe through both, beside the floor.
compare() {
  local fam=$1 frame="${WORK}/probe$1" i floor b t rb="" rt=""
  "${ROOT}/build/mseg-pkt" --src "$2" --dst "$3" --proto udp --sport 40000 --dport 9 \
    --payload 18 -o "${frame}"
  # the first run opens the session (default allow)
  bpftool prog run id "${BASE_ID}" data_in "${frame}" repeat 1 >/dev/null
  bpftool prog run id "${THIS_ID}" data_in "${frame}" repeat 1 >/dev/null
  for ((i = 0; i < RUNS; i++)); do
    floor=$(run_ns "pinned ${WORK}/ref/progs/ref_floor" "${frame}")
    b=$(run_ns "id ${BASE_ID}" "${frame}")
    t=$(run_ns "id ${THIS_ID}" "${frame}")
    floor=$(((floor + $(run_ns "pinned ${WORK}/ref/progs/ref_floor" "${frame}")) / 2))
    rb+="$(ratio "${b}" "${floor}")"$'\n'
    rt+="$(ratio "${t}" "${floor}")"$'\n'
    printf 'fastpath: IPv%s run %2d  floor %4d ns  %s %4d ns  this tree %4d ns\n' \
      "${fam}" "${i}" "${floor}" "${REV}" "${b}" "${t}"
  done
  printf 'fastpath: IPv%s session path over the floor, median of %d runs: %s x%s, this tree x%s\n' \
    "${fam}" "${RUNS}" "${REV}" "$(median <<<"${rb}")" "$(median <<<"${rt}")"
}

main() {
  REV=${1:-main}
  trap cleanup EXIT
  WORK="$(mktemp -d /tmp/mseg-bench-ab.XXXXXX)"
  NS="msegbab$$"
  git -C "${ROOT}" rev-parse --verify -q "${REV}^{commit}" >/dev/null ||
    { echo "fastpath: no revision ${REV} in ${ROOT}" >&2; return 1; }
  make -s -C "${ROOT}" >/dev/null
  mkdir "${WORK}/src"
  git -C "${ROOT}" archive "${REV}" | tar -x -C "${WORK}/src"
  make -s -C "${WORK}/src" build/mseg.bpf.o >/dev/null
  ip netns add "${NS}"
  BASE_ID=$(attach base "${WORK}/src/build/mseg.bpf.o")
  THIS_ID=$(attach this "${ROOT}/build/mseg.bpf.o")
  mkdir "${WORK}/ref"
  mount -t bpf bpf "${WORK}/ref"
  clang -O2 -g -target bpf -mcpu=v3 -Wall -Werror -I "/usr/include/$(uname -m)-linux-gnu" \
    -c "${ROOT}/bench/bpf/mseg-ref.bpf.c" -o "${WORK}/ref.o"
  # pinned below the bpffs (bpftool mounts one on the parent of a pin dir that is not on one)
  bpftool prog loadall "${WORK}/ref.o" "${WORK}/ref/progs" type tc
  echo "fastpath: ${REV} ($(git -C "${ROOT}" rev-parse --short "${REV}")) against this tree, an established UDP flow, repeat ${REPEAT}, ${RUNS} runs taking turns with the floor"
  compare 4 192.0.2.1 198.51.100.1
  compare 6 fd00:1::1 fd00:2::1
  echo "fastpath: command: bpftool -j prog run {id PROG | pinned ref_floor} data_in FRAME repeat ${REPEAT} (.duration); frames: build/mseg-pkt --src S --dst D --proto udp --sport 40000 --dport 9 --payload 18"
}

main "$@"
