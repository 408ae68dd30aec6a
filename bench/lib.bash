# shellcheck shell=bash
# Shared by the benchmarks that need a big session table: a build of the
# given capacity in a temp dir, a private bpffs and the classifier attached
# by plain tc in a namespace of their own. Sets WORK, NS and TC_BPF_MNT.

WORK=""
NS=""

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
