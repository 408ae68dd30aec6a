#!/usr/bin/env bash
# Benchmark: kernel memory per tracked session and per rule, beside
# nf_conntrack's per-entry size on this kernel.
#
# mseg: no map is preallocated (BPF_F_NO_PREALLOC), so each grows with what
# it holds: bytes_memlock (bpftool map show, the kernel's own map_mem_usage)
# is read empty and full, and the difference divided by the count: the
# session table with N sessions (build/mseg-fill), the policy maps with N
# rules between N segments (`mseg apply`). map_mem_usage counts a hash
# element's own size, but the allocator behind it takes each from a kmalloc
# size class (a 208-byte element from kmalloc-256): the session's real cost
# is the growth of the kmalloc cache of that class (/proc/slabinfo, active
# objects x object size) over the same fill. nf_conntrack: the object size of its slab cache
# (/proc/slabinfo) plus one hash bucket per entry at the default
# buckets-to-max ratio; its extensions (accounting, timestamps, labels) are
# allocated beside it when enabled and are not counted. Both are compared
# with their hash buckets at a full table.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly RULES="${MSEG_BENCH_RULES:-10000}"
readonly SESSIONS="${MSEG_BENCH_SESSIONS:-100000}"

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"

# memlock MAP: the map's bytes_memlock.
memlock() {
  bpftool -j map show pinned "${TC_BPF_MNT}/tc/globals/$1" | jq -r .bytes_memlock
}

# kmalloc_caches: "NAME ACTIVE OBJSIZE" of every kmalloc cache (plain,
# memcg-accounted, randomised), from /proc/slabinfo.
kmalloc_caches() {
  awk '$1 ~ /^kmalloc-/ { print $1, $2, $4 }' /proc/slabinfo
}

# element_slab BEFORE AFTER N: the bytes per element of the kmalloc caches
# that grew by at least 90 % of N objects between the two snapshots (the
# elements' size class; what else the kernel allocated meanwhile, in other
# caches or by a few objects, is left out), and their names.
element_slab() {
  awk -v n="$3" 'NR == FNR { a[$1] = $2; next }
    $2 - a[$1] >= 0.9 * n { b += ($2 - a[$1]) * $3; names = names " " $1 }
    END { printf "%d%s\n", b / n, names }' "$1" "$2"
}

# policy_bytes: memory of every map that grows with the policy.
policy_bytes() {
  local m total=0
  for m in mseg_ident mseg_rules mseg_rules_hash mseg_source; do
    total=$((total + $(memlock "${m}")))
  done
  echo "${total}"
}

# ruleset N: N segments of one /24 each, and N rules between them.
ruleset() {
  python3 -c '
import sys
n = int(sys.argv[1])
w = sys.stdout.write
w("default deny\n")
for i in range(n):
    w("segment add s%d 10.%d.%d.0/24\n" % (i, 64 + (i >> 8), i & 255))
for i in range(n):
    w("rule add --src s%d --dst s%d --proto tcp --dport 443 --action allow\n" % (i, (i + 1) % n))
' "$1"
}

main() {
  trap bench_cleanup EXIT
  make -s -C "${ROOT}" >/dev/null
  WORK="$(mktemp -d /tmp/mseg-bench-mem.XXXXXX)"
  NS="msegbmem$$"
  mkdir "${WORK}/bpffs"
  mount -t bpf bpf "${WORK}/bpffs"
  export TC_BPF_MNT="${WORK}/bpffs" MSEG_LOCK_DIR="${WORK}"
  ip netns add "${NS}"
  ip -n "${NS}" link add b0 type veth peer name b1
  ip netns exec "${NS}" "${ROOT}/scripts/mseg" attach b0 --ingress >/dev/null

  local cap empty full per per_rule obj buckets ct_max ct_per key val slab caches slot
  cap="$(bpftool -j map show pinned "${TC_BPF_MNT}/tc/globals/mseg_sessions" | jq -r .max_entries)"
  empty="$(memlock mseg_sessions)"
  kmalloc_caches >"${WORK}/slab.before"
  "${ROOT}/build/mseg-fill" --count "${SESSIONS}" >/dev/null
  kmalloc_caches >"${WORK}/slab.after"
  read -r slab caches < <(element_slab "${WORK}/slab.before" "${WORK}/slab.after" "${SESSIONS}")
  full="$(memlock mseg_sessions)"
  per=$(((full - empty) / SESSIONS))
  slot=$((empty / cap))
  read -r key val < <("${ROOT}/build/mseg-abi" | awk '$1 == "map" && $2 == "mseg_sessions" { print $3, $4 }')
  echo "memory: mseg_sessions (capacity ${cap}): ${empty} bytes empty, ${full} with ${SESSIONS} sessions: ${per} bytes per session by the map's accounting (key ${key} + value ${val}, the rest the kernel's hash element), ${slab} bytes per session taken from the kmalloc caches (${caches:-none grew}: the element's size class); ${empty} bytes of buckets whatever it holds (${slot} per slot)"

  echo "default deny" | "${ROOT}/scripts/mseg" apply - >/dev/null
  empty="$(policy_bytes)"
  ruleset "${RULES}" >"${WORK}/rules"
  "${ROOT}/scripts/mseg" apply "${WORK}/rules" >/dev/null
  full="$(policy_bytes)"
  per_rule=$(((full - empty) / RULES))
  echo "memory: policy maps (mseg_ident, mseg_rules, mseg_rules_hash, mseg_source): ${empty} bytes empty, ${full} with ${RULES} rules over ${RULES} segments: ${per_rule} bytes per rule with its segment (both rule sets hold the policy)"

  obj="$(awk '$1 == "nf_conntrack" { print $4 }' /proc/slabinfo)"
  if [[ -z ${obj} ]]; then
    ip netns exec "${NS}" nft -f - <<<'table inet m { chain c { type filter hook input priority 0; ct state established accept; } }'
    obj="$(awk '$1 == "nf_conntrack" { print $4 }' /proc/slabinfo)"
  fi
  ct_max="$(cat /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null || echo 0)"
  buckets="$(cat /proc/sys/net/netfilter/nf_conntrack_buckets 2>/dev/null || echo 0)"
  if [[ -n ${obj} && ${ct_max} -gt 0 ]]; then
    ct_per=$((obj + buckets * 8 / ct_max))
    echo "memory: nf_conntrack: slab object ${obj} bytes + hash buckets (${buckets} x 8 bytes for nf_conntrack_max ${ct_max}): ${ct_per} bytes per entry, extensions not counted"
    echo "memory: mseg session / nf_conntrack entry, each with its bucket at a full table: $((slab + slot)) / ${ct_per} bytes: x$(ratio "$((slab + slot))" "${ct_per}")"
  else
    echo "memory: nf_conntrack: not loaded here (no slab cache): no comparison"
  fi
  echo "memory: command: bpftool -j map show pinned PIN (.bytes_memlock, .max_entries); /proc/slabinfo kmalloc-* active objects x objsize before and after the fill, nf_conntrack objsize; /proc/sys/net/netfilter/nf_conntrack_{max,buckets}"
}

main "$@"
