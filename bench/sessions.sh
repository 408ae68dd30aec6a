#!/usr/bin/env bash
# Benchmark: `mseg sessions` listing 20,000, 200,000 and 1,000,000 sessions
# to a file, beside `conntrack -L` listing the same number of nf_conntrack
# entries, created by real UDP flows in a namespace of ours, measured in the
# same run. nf_conntrack's table is capped host-wide (nf_conntrack_max, not
# a per-namespace setting; 262,144 here), which this script does not
# change: conntrack gets the sizes that fit. Prints medians, ratios and
# the commands.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly CAPACITY="${MSEG_BENCH_CAPACITY:-1048576}"
readonly RUNS="${MSEG_BENCH_RUNS:-5}"

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"

CT_NS=""

ct_cleanup() {
  [[ -n "${CT_NS}" ]] && ip netns del "${CT_NS}-c" 2>/dev/null
  [[ -n "${CT_NS}" ]] && ip netns del "${CT_NS}-s" 2>/dev/null
  bench_cleanup
}

# seconds CMD...: wall time of CMD, stdout to a file in WORK.
seconds() {
  local t0 t1
  t0="$(date +%s.%N)"
  "$@" >"${WORK}/out"
  t1="$(date +%s.%N)"
  awk -v a="${t0}" -v b="${t1}" 'BEGIN { printf "%.4f\n", b - a }'
}

# cpu_seconds CMD...: user + system CPU time of CMD (the machine is shared:
# wall time grows with other people's load, CPU time much less).
cpu_seconds() {
  local TIMEFORMAT='%U %S' t
  t="$({ time "$@" >"${WORK}/out"; } 2>&1)"
  awk '{ printf "%.4f\n", $1 + $2 }' <<<"${t}"
}

# median_of N CMD...: the median wall time of N runs.
median_of() {
  local n=$1 i
  shift
  for ((i = 0; i < n; i++)); do seconds "$@"; done | median
}

# ct_setup: client and server namespaces; nftables in the server makes
# nf_conntrack track every flow that reaches it.
ct_setup() {
  CT_NS="msegbct$$"
  ip netns add "${CT_NS}-c"
  ip netns add "${CT_NS}-s"
  ip link add bc0 netns "${CT_NS}-c" type veth peer name bs0 netns "${CT_NS}-s"
  ip -n "${CT_NS}-c" addr add 10.99.0.1/24 dev bc0
  ip -n "${CT_NS}-s" addr add 10.99.0.2/24 dev bs0
  ip -n "${CT_NS}-c" link set bc0 up
  ip -n "${CT_NS}-s" link set bs0 up
  ip netns exec "${CT_NS}-s" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=600
  ip netns exec "${CT_NS}-s" nft -f - <<'EOF'
table inet msegbench {
  chain input { type filter hook input priority 0; ct state new counter; }
}
EOF
}

# ct_fill N: N more UDP flows from the client (distinct source ports and
# addresses), each one nf_conntrack entry in the server's namespace.
ct_fill() {
  ip netns exec "${CT_NS}-c" "${MSEG_PYTHON:-python3}" - "$1" <<'EOF'
import socket, sys
n = int(sys.argv[1])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(64)]
for i in range(n):
    socks[i % 64].sendto(b"x", ("10.99.0.2", 1 + i // 64 % 65535))
EOF
}

ct_count() { ip netns exec "${CT_NS}-s" conntrack -C; }

ct_list() { ip netns exec "${CT_NS}-s" conntrack -L 2>/dev/null; }

main() {
  bench_big_table sessions "${CAPACITY}"
  trap ct_cleanup EXIT
  ct_setup
  local list="${WORK}/build/mseg-sessions"
  local size have ct ms max cpu i
  max="$(cat /proc/sys/net/netfilter/nf_conntrack_max)"
  have=0
  for size in 20000 200000 1000000; do
    "${WORK}/build/mseg-fill" --count $((size - have)) --first "${have}" >/dev/null
    [[ "$("${list}" --count --all)" == "${size}" ]]
    ms="$(median_of "${RUNS}" "${list}")"
    cpu="$(for ((i = 0; i < 3; i++)); do cpu_seconds "${list}"; done | median)"
    if ((size <= max * 9 / 10)); then
      ct_fill $((size - $(ct_count)))
      ct="$(ct_count)"
      if ((ct >= size)); then
        ct="$(median_of "${RUNS}" ct_list)"
        printf 'sessions: %7d: mseg sessions %.3f s (cpu %.3f s), conntrack -L %.3f s: ratio %s (mseg / conntrack)\n' \
          "${size}" "${ms}" "${cpu}" "${ct}" "$(ratio "${ms}" "${ct}")"
      else
        printf 'sessions: %7d: mseg sessions %.3f s (cpu %.3f s), conntrack: only %d entries were created\n' \
          "${size}" "${ms}" "${cpu}" "${ct}"
      fi
    else
      printf 'sessions: %7d: mseg sessions %.3f s (cpu %.3f s), conntrack: more than 90 %% of nf_conntrack_max (%d), not created\n' \
        "${size}" "${ms}" "${cpu}" "${max}"
    fi
    have=${size}
  done
  echo "sessions: wall: median of ${RUNS} runs; cpu: user + system, median of 3; output to a file; capacity ${CAPACITY}; load average $(cut -d' ' -f1 /proc/loadavg)"
  echo "sessions: command: TC_BPF_MNT=... build/mseg-sessions >FILE (make MSEG_MAX_SESSIONS=${CAPACITY}; build/mseg-fill --count N); ip netns exec NS conntrack -L >FILE (UDP flows from python, nft ct state rule)"
}

main "$@"
