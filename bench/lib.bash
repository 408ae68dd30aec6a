# shellcheck shell=bash
# Shared by the benchmarks: medians and ratios; the cleanup of a temp dir
# with a private bpffs and a namespace (WORK, NS); and for those that need
# a big session table, a build of the given capacity, the bpffs and the
# classifier attached by plain tc (bench_big_table sets WORK, NS and
# TC_BPF_MNT).

WORK=""
NS=""

# median: the median of the numbers on stdin, one a line (blank lines,
# as a here-string of "$(...)"$'\n' pieces ends with, do not count).
median() { sort -g | awk 'NF { v[++n] = $1 } END { print v[int((n + 1) / 2)] }'; }

# ratio A B: A / B, two decimals; a B of 0 (nothing measured, e.g. no
# connection completed) counts as 1, rather than stop the benchmark.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b ? a / b : a }'; }

bench_cleanup() {
  [[ -n "${NS}" ]] && ip netns del "${NS}" 2>/dev/null
  if [[ -n "${WORK}" ]]; then
    umount "${WORK}/bpffs" 2>/dev/null
    rm -rf "${WORK}"
  fi
  return 0
}

# bench_big_table NAME CAPACITY: build, mount, attach; cleanup on exit.
bench_big_table() {
  local name=$1 capacity=$2 root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  trap bench_cleanup EXIT
  WORK="$(mktemp -d "/tmp/mseg-bench-${name}.XXXXXX")"
  NS="msegb${name:0:4}$$"
  make -s -C "${root}" BUILD="${WORK}/build" MSEG_MAX_SESSIONS="${capacity}" >/dev/null
  mkdir "${WORK}/bpffs"
  mount -t bpf bpf "${WORK}/bpffs"
  export TC_BPF_MNT="${WORK}/bpffs"
  ip netns add "${NS}"
  ip -n "${NS}" link add b0 type veth peer name b1
  ip netns exec "${NS}" tc qdisc add dev b0 clsact
  ip netns exec "${NS}" tc filter add dev b0 ingress bpf da \
    obj "${WORK}/build/mseg.bpf.o" sec tc
}
