#!/usr/bin/env bash
# Benchmark: one run of mseg-textfile (read every map, walk 1,000,000
# sessions with batch lookups, render and atomically write mseg.prom) in a
# MSEG_MAX_SESSIONS=1048576 build. Prints the figure and the command.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly SESSIONS="${MSEG_BENCH_SESSIONS:-1000000}"
readonly CAPACITY="${MSEG_BENCH_CAPACITY:-1048576}"
readonly RUNS="${MSEG_BENCH_RUNS:-5}"

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"

# wall CMD...: run CMD, print its wall time in seconds.
wall() {
  local t0 t1
  t0="$(date +%s.%N)"
  "$@" >/dev/null
  t1="$(date +%s.%N)"
  awk -v a="${t0}" -v b="${t1}" 'BEGIN { printf "%.3f\n", b - a }'
}

main() {
  bench_big_table textfile "${CAPACITY}"
  mkdir "${WORK}/out"

  # A tenth of them expired (TIME_WAIT idle 130 s): counted as entries,
  # not as sessions, as before a gc sweep.
  "${WORK}/build/mseg-fill" --count "${SESSIONS}" \
    --expired $((SESSIONS / 10)) --idle 130 >/dev/null

  local i t times=() best median
  for ((i = 0; i < RUNS; i++)); do
    t="$(wall "${WORK}/build/mseg-textfile" --dir "${WORK}/out")"
    times+=("${t}")
  done
  best="$(printf '%s\n' "${times[@]}" | sort -n | head -n 1)"
  median="$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p")"
  local prom="${WORK}/out/mseg.prom"
  echo "textfile: $(grep -E '^mseg_map_entries\{map="mseg_sessions"\}' "${prom}" | awk '{print $2}') entries," \
    "$(grep -E '^mseg_sessions\{proto="tcp",state="ESTABLISHED"\}' "${prom}" | awk '{print $2}') live ESTABLISHED," \
    "$(wc -c <"${prom}") bytes written"
  printf 'textfile: %s sessions, capacity %s: median %.3f s wall, best %.3f s over %s runs (collector_duration %s s in the last)\n' \
    "${SESSIONS}" "${CAPACITY}" "${median}" "${best}" "${RUNS}" \
    "$(grep -E '^mseg_collector_duration_seconds ' "${prom}" | awk '{print $2}')"
  echo "textfile: command: TC_BPF_MNT=... build/mseg-textfile --dir DIR (make MSEG_MAX_SESSIONS=${CAPACITY}; build/mseg-fill --count ${SESSIONS} --expired $((SESSIONS / 10)) --idle 130)"
}

main "$@"
