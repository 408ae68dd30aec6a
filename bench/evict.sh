#!/usr/bin/env bash
# Benchmark: what early drop costs a new flow (bpf/mseg_evict.h). In a
# 65536-entry build, new TCP flows an exact rule allows are run through the
# classifier with BPF_PROG_TEST_RUN (build/mseg-testrun --duration, one run
# per frame, the kernel's own timing): first while the table has room (a
# plain insertion), then when spoofed ACKs have filled it to the last slot
# with unconfirmed sessions, so each new flow must find one in the
# early-drop rings, claim and delete it before inserting. Prints the medians
# and their ratio.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly CAPACITY="${MSEG_BENCH_EVICT_CAPACITY:-65536}"
readonly PROBES="${MSEG_BENCH_EVICT_PROBES:-20000}"

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"

# series FILE SRC PORT N MSEG-PKT-ARGS...: N frames from SRC, source ports
# PORT.., one hex line each.
series() {
  local out=$1 src=$2 port=$3 n=$4
  shift 4
  "${ROOT}/build/mseg-pkt" --proto tcp --src "${src}" --sport "${port}" --step sport \
    --count "${n}" --hex "$@" >>"${out}"
}

# run_median FILE: the median duration of running FILE's frames; fails
# unless every one passed.
run_median() {
  local out
  out=$("${ROOT}/build/mseg-testrun" --prog-id "${PROG}" --duration "$1")
  if [[ $(cut -d' ' -f1 <<<"${out}" | sort -u) != 0 ]]; then
    echo "evict: some frames of $1 were dropped" >&2
    return 1
  fi
  cut -d' ' -f2 <<<"${out}" | median
}

main() {
  bench_big_table evict "${CAPACITY}"
  export MSEG_OBJ="${WORK}/build/mseg.bpf.o" MSEG_ABI_BIN="${WORK}/build/mseg-abi"
  export MSEG_GC_BIN="${WORK}/build/mseg-gc" MSEG_LOCK_DIR="${WORK}"
  PROG="$(ip netns exec "${NS}" tc -j filter show dev b0 ingress |
    jq -r '[.[] | .options.prog.id // empty] | first')"
  local mseg="${ROOT}/scripts/mseg" room full fill entries drops
  # the spoofed ACKs may fill the table to its last slot (no degradation),
  # and nothing may expire while the bench runs
  "${mseg}" config set degrade_pct 100 >/dev/null
  "${mseg}" config set flood_syn_timeout 3600 >/dev/null
  "${mseg}" config set timeout_unconfirmed 3600 >/dev/null
  "${mseg}" rule add --src 10.9.0.1 --dst 10.9.0.2 --proto tcp --dport 8080 --action allow >/dev/null

  : >"${WORK}/room"
  series "${WORK}/room" 10.9.0.1 1024 "${PROBES}" --dst 10.9.0.2 --dport 8080 --flags S
  room=$(run_median "${WORK}/room")

  fill=$((CAPACITY - PROBES))
  : >"${WORK}/acks"
  series "${WORK}/acks" 10.8.0.1 1024 $((fill / 2)) --dst 10.8.0.2 --dport 9000 --flags A
  series "${WORK}/acks" 10.8.0.3 1024 $((fill - fill / 2)) --dst 10.8.0.2 --dport 9000 --flags A
  run_median "${WORK}/acks" >/dev/null
  entries="$("${mseg}" monitor --once --json | jq .sessions)"

  : >"${WORK}/full"
  series "${WORK}/full" 10.9.0.1 $((1024 + PROBES)) "${PROBES}" --dst 10.9.0.2 --dport 8080 --flags S
  full=$(run_median "${WORK}/full")
  drops="$("${mseg}" monitor --once --json | jq .evictions)"

  echo "evict: a new TCP flow an exact rule allows, capacity ${CAPACITY}, median of ${PROBES} flows each (BPF_PROG_TEST_RUN, one run per frame)"
  printf 'evict: room in the table %5d ns   table full of unconfirmed sessions (%s entries): %5d ns, early drops %s   ratio %s\n' \
    "${room}" "${entries}" "${full}" "${drops}" "$(ratio "${full}" "${room}")"
  echo "evict: command: build/mseg-testrun --prog-id PROG --duration FRAMES (frames: build/mseg-pkt --count N --step sport --hex; fill: spoofed ACKs, degrade_pct 100)"
}

main "$@"
