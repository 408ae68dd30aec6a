#!/usr/bin/env bash
# Benchmark: `mseg gc` over 1,000,000 sessions, half of them expired, in a
# MSEG_MAX_SESSIONS=1048576 build. Prints the figure and the command.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly SESSIONS="${MSEG_BENCH_SESSIONS:-1000000}"
readonly CAPACITY="${MSEG_BENCH_CAPACITY:-1048576}"

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"

main() {
  bench_big_table gc "${CAPACITY}"

  # Expired: TIME_WAIT last seen 130 s ago (timeout 120 s); live: ESTABLISHED.
  "${WORK}/build/mseg-fill" --count "${SESSIONS}" \
    --expired $((SESSIONS / 2)) --idle 130 >/dev/null

  local t0 t1 out
  t0="$(date +%s.%N)"
  out="$("${WORK}/build/mseg-gc" --json)"
  t1="$(date +%s.%N)"
  local wall
  wall="$(awk -v a="${t0}" -v b="${t1}" 'BEGIN { print b - a }')"
  echo "gc: $(jq -r '"scanned \(.scanned), deleted \(.deleted), live \(.live)"' <<<"${out}")"
  printf 'gc: %s sessions (half expired), capacity %s: %.3f s wall (%.3f s in the sweep)\n' \
    "${SESSIONS}" "${CAPACITY}" "${wall}" "$(jq -r .seconds <<<"${out}")"
  echo "gc: command: TC_BPF_MNT=... build/mseg-gc --json (make MSEG_MAX_SESSIONS=${CAPACITY}; build/mseg-fill --count ${SESSIONS} --expired $((SESSIONS / 2)) --idle 130)"
}

main "$@"
