#!/usr/bin/env bash
# Benchmark: what the CIDR trie costs a new flow. Per-packet time through
# BPF_PROG_TEST_RUN (`bpftool prog run ... repeat N`, which reports the
# average in ns) of a packet decided by the trie, with 10 and with 100,000
# prefixes of its family loaded, and the ratio of the two; IPv4 and IPv6.
#
# Every run must be a NEW flow, or the session table would answer instead of
# the trie: the probe is denied by a CIDR rule, and a deny creates no
# session. The script checks that (no session appears, ip_range_hit grows by
# every run) and prints the figures, the ratio and the exact command.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly REPEAT="${MSEG_BENCH_REPEAT:-1000000}"
readonly BIG="${MSEG_BENCH_PREFIXES:-100000}"
readonly SMALL=10
readonly RUNS=5

WORK=""
NS=""

cleanup() {
  [[ -n "${NS}" ]] && ip netns del "${NS}" 2>/dev/null
  if [[ -n "${WORK}" ]]; then
    umount "${WORK}/bpffs" 2>/dev/null
    rm -rf "${WORK}"
  fi
  return 0
}

# stat NAME: one mseg_stats counter summed over CPUs.
stat() {
  bpftool -j map dump pinned "${TC_BPF_MNT}/tc/globals/mseg_stats" |
    jq --arg n "$1" '[.[0].formatted.values[].value[$n]] | add'
}

# sessions: entries in the session table.
sessions() {
  bpftool -j map dump pinned "${TC_BPF_MNT}/tc/globals/mseg_sessions" | jq length
}

# run_ns PROG FRAME: median over RUNS of bpftool's average ns per run.
run_ns() {
  local prog=$1 frame=$2 i
  local -a ns=()
  for ((i = 0; i < RUNS; i++)); do
    ns+=("$(bpftool -j prog run id "${prog}" data_in "${frame}" repeat "${REPEAT}" |
      jq -e .duration)")
  done
  printf '%s\n' "${ns[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p"
}

# bench_family FAMILY SRC DST DENY_NET OTHER_NETS...: one fresh bpffs and
# netns, the probe SRC -> DST (UDP), DENY_NET deciding it; prints one line.
bench_family() {
  local fam=$1 src=$2 dst=$3 deny=$4
  shift 4
  WORK="$(mktemp -d /tmp/mseg-bench-cidr.XXXXXX)"
  NS="msegbcidr$$-${fam}"
  mkdir "${WORK}/bpffs"
  mount -t bpf bpf "${WORK}/bpffs"
  export TC_BPF_MNT="${WORK}/bpffs" MSEG_LOCK_DIR="${WORK}"
  ip netns add "${NS}"
  ip -n "${NS}" link add b0 type veth peer name b1
  ip netns exec "${NS}" "${ROOT}/scripts/mseg" attach b0 --ingress >/dev/null
  local prog
  prog="$(ip netns exec "${NS}" tc -j filter show dev b0 ingress |
    jq -r '[.[] | .options.prog.id // empty] | first')"
  local frame="${WORK}/probe.frame"
  "${ROOT}/build/mseg-pkt" --src "${src}" --dst "${dst}" --proto udp \
    --sport 40000 --dport 9 --payload 18 -o "${frame}"

  # 10 prefixes: the deny that decides the probe and nine others.
  local net
  "${ROOT}/scripts/mseg-cidr" add "${deny}" --action deny >/dev/null
  for net in "$@"; do
    "${ROOT}/scripts/mseg-cidr" add "${net}" --action allow >/dev/null
  done
  local count
  count="$("${ROOT}/scripts/mseg-cidr" list --json | jq length)"
  ((count == SMALL)) || { echo "mseg: bench: ${count} prefixes, not ${SMALL}" >&2; return 1; }

  local hits0 small big
  hits0="$(stat ip_range_hit)"
  small="$(run_ns "${prog}" "${frame}")"

  # The rest in one bpftool process; none of them contains the probe's
  # addresses, so the same /N deny still decides it, deeper in the trie.
  local -a skip=()
  for net in "$@"; do skip+=(--skip "${net}"); done
  "${PYTHON}" "${ROOT}/bench/cidr-prefixes.py" --family "${fam}" \
    --count $((BIG - SMALL)) --seed "${fam}" --avoid "${src}" --avoid "${dst}" \
    "${skip[@]}" >"${WORK}/load.batch"
  local t0 t1
  t0="$(date +%s.%N)"
  "${ROOT}/scripts/mseg-cidr" --batch "${WORK}/load.batch" >/dev/null
  t1="$(date +%s.%N)"
  count="$("${ROOT}/scripts/mseg" status --json | jq .cidrs)"
  ((count == BIG)) || { echo "mseg: bench: ${count} prefixes, not ${BIG}" >&2; return 1; }
  big="$(run_ns "${prog}" "${frame}")"

  # Every run was a new flow decided by the trie, and none left a session.
  local hits runs_total s
  hits=$(($(stat ip_range_hit) - hits0))
  runs_total=$((2 * RUNS * REPEAT))
  s="$(sessions)"
  if ((hits != runs_total || s != 0)); then
    echo "mseg: bench: expected ${runs_total} trie decisions and no session," \
      "got ${hits} and ${s}" >&2
    return 1
  fi
  printf 'cidr: IPv%s  %6d prefixes: %4d ns/packet   %6d prefixes: %4d ns/packet   ratio %.2f\n' \
    "${fam}" "${SMALL}" "${small}" "${BIG}" "${big}" \
    "$(awk -v a="${small}" -v b="${big}" 'BEGIN { print b / a }')"
  printf 'cidr: IPv%s  loaded %d prefixes with one mseg cidr --batch in %.2f s; %d new flows, %d trie decisions, %d sessions\n' \
    "${fam}" $((BIG - SMALL)) "$(awk -v a="${t0}" -v b="${t1}" 'BEGIN { print b - a }')" \
    "${runs_total}" "${hits}" "${s}"
  echo "cidr: IPv${fam}  probe: build/mseg-pkt --src ${src} --dst ${dst} --proto udp --sport 40000 --dport 9 --payload 18 -o FRAME (decided by ${deny} deny)"

  cleanup
  WORK="" NS=""
}

main() {
  trap cleanup EXIT
  PYTHON=python3
  [[ -x /usr/bin/python3 ]] && PYTHON=/usr/bin/python3
  make -s -C "${ROOT}" >/dev/null
  echo "cidr: per-packet cost of a NEW flow decided by the CIDR trie (BPF_PROG_TEST_RUN, repeat ${REPEAT}, median of ${RUNS} runs)"
  echo "cidr: new each time: the probe is denied by a CIDR rule and a deny creates no session, so the session table never answers"
  bench_family 4 192.0.2.1 10.200.3.77 10.200.3.0/24 \
    10.0.0.0/16 10.201.0.0/16 172.16.0.0/12 192.168.0.0/16 198.51.100.0/24 \
    203.0.113.0/24 100.64.0.0/10 10.200.4.0/24 10.200.2.128/25
  bench_family 6 2001:db8:ffff::1 2001:db8:200:3::77 2001:db8:200:3::/64 \
    2001:db8:1::/48 2001:db8:201::/48 fd00::/8 fe80::/10 2001:db8:200:4::/64 \
    2001:db8:200:2::/64 2001:db8:200:3:8000::/65 64:ff9b::/96 2002::/16
  echo "cidr: the prefixes past the first ${SMALL}: random, uniform lengths 8..32 (IPv4) or 16..128 (IPv6), none containing the probe"
  echo "cidr: command: bpftool -j prog run id PROG data_in FRAME repeat ${REPEAT} (the .duration field, ns per run)"
}

main "$@"
