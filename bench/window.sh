#!/usr/bin/env bash
# Benchmark: the cost of one packet of an established TCP connection with
# window tracking (this tree) and without it (the same program as built from
# the baseline commit, MSEG_BENCH_BASELINE, default the last one before
# window tracking), side by side through BPF_PROG_TEST_RUN: each run of one
# beside a run of the other, medians of RUNS, and their ratio. Both programs
# are attached by plain tc in namespaces and bpffs mounts of their own, and
# see the same frames: a handshake with window scaling, then data from the
# client and data from the server, each repeated (a retransmission: in the
# window every time).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly BASELINE="${MSEG_BENCH_BASELINE:-89b0386}"
readonly REPEAT="${MSEG_BENCH_REPEAT:-1000000}"
readonly RUNS="${MSEG_BENCH_RUNS:-7}"

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"

NSS=()
MOUNTS=()

cleanup() {
  local ns m
  for ns in "${NSS[@]}"; do ip netns del "${ns}" 2>/dev/null || true; done
  for m in "${MOUNTS[@]}"; do umount "${m}" 2>/dev/null || true; done
  [[ -n "${WORK}" ]] && rm -rf "${WORK}"
  return 0
}

# attach NAME OBJ: OBJ on the ingress of a veth in a namespace of its own,
# its maps pinned in a bpffs of its own; sets PROG to the program's id.
attach() {
  local name=$1 obj=$2
  local ns="msegbw${name}$$"
  mkdir -p "${WORK}/${name}.bpffs"
  mount -t bpf bpf "${WORK}/${name}.bpffs"
  MOUNTS+=("${WORK}/${name}.bpffs")
  ip netns add "${ns}"
  NSS+=("${ns}")
  ip -n "${ns}" link add b0 type veth peer name b1
  ip netns exec "${ns}" tc qdisc add dev b0 clsact
  TC_BPF_MNT="${WORK}/${name}.bpffs" ip netns exec "${ns}" \
    tc filter add dev b0 ingress bpf da obj "${obj}" sec tc
  PROG=$(ip netns exec "${ns}" tc -j filter show dev b0 ingress |
    jq -r '[.[] | .options.prog.id // empty] | first')
}

# frames FAMILY CLIENT SERVER: the handshake and the two measured frames.
frames() {
  local fam=$1 c=$2 s=$3 pkt="${ROOT}/build/mseg-pkt"
  "${pkt}" --src "${c}" --dst "${s}" --proto tcp --sport 40000 --dport 80 --flags S \
    --seq 1000 --wscale 7 -o "${WORK}/${fam}.syn"
  "${pkt}" --src "${s}" --dst "${c}" --proto tcp --sport 80 --dport 40000 --flags SA \
    --seq 5000 --ack 1001 --wscale 7 -o "${WORK}/${fam}.synack"
  "${pkt}" --src "${c}" --dst "${s}" --proto tcp --sport 40000 --dport 80 --flags A \
    --seq 1001 --ack 5001 -o "${WORK}/${fam}.ack"
  "${pkt}" --src "${c}" --dst "${s}" --proto tcp --sport 40000 --dport 80 --flags PA \
    --seq 1001 --ack 5001 --payload 100 -o "${WORK}/${fam}.client"
  "${pkt}" --src "${s}" --dst "${c}" --proto tcp --sport 80 --dport 40000 --flags PA \
    --seq 5001 --ack 1101 --payload 100 -o "${WORK}/${fam}.server"
}

run_ns() {
  bpftool -j prog run id "$1" data_in "$2" repeat "${REPEAT}" | jq -e .duration
}

# handshake ID FAMILY: open the connection in that program's table; the
# state it reaches must be ESTABLISHED (3) in both.
handshake() {
  local f
  for f in syn synack ack; do
    bpftool prog run id "$1" data_in "${WORK}/$2.${f}" repeat 1 >/dev/null
  done
}

main() {
  trap cleanup EXIT
  WORK="$(mktemp -d /tmp/mseg-bench-window.XXXXXX)"
  make -s -C "${ROOT}" >/dev/null
  git -C "${ROOT}" archive "${BASELINE}" | tar -x -C "${WORK}" --one-top-level=base
  make -s -C "${WORK}/base" build/mseg.bpf.o >/dev/null
  local new base fam f a b i
  attach new "${ROOT}/build/mseg.bpf.o"
  new=${PROG}
  attach base "${WORK}/base/build/mseg.bpf.o"
  base=${PROG}
  frames 4 192.0.2.1 198.51.100.1
  frames 6 fd00:1::1 fd00:2::1
  echo "window: an established TCP connection's packet through BPF_PROG_TEST_RUN (repeat ${REPEAT}, median of ${RUNS} runs, each beside a run of the other program)"
  echo "window: baseline $(git -C "${ROOT}" rev-parse --short "${BASELINE}") (no window tracking) vs this tree ($(git -C "${ROOT}" describe --always --dirty))"
  for fam in 4 6; do
    handshake "${new}" "${fam}"
    handshake "${base}" "${fam}"
    for f in client server; do
      a="" b=""
      for ((i = 0; i < RUNS; i++)); do
        a+="$(run_ns "${new}" "${WORK}/${fam}.${f}")"$'\n'
        b+="$(run_ns "${base}" "${WORK}/${fam}.${f}")"$'\n'
      done
      a=$(median <<<"${a}")
      b=$(median <<<"${b}")
      printf 'window: IPv%s %-6s data  baseline %4d ns   window tracking %4d ns   ratio %s\n' \
        "${fam}" "${f}" "${b}" "${a}" "$(ratio "${a}" "${b}")"
    done
  done
  echo "window: command: bpftool -j prog run id PROG data_in FRAME repeat ${REPEAT} (.duration); frames: build/mseg-pkt ... --flags PA --seq 1001 --ack 5001 --payload 100 after a handshake with --wscale 7; baseline: git archive ${BASELINE} && make build/mseg.bpf.o"
}

main "$@"
