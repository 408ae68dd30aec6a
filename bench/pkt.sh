#!/usr/bin/env bash
# Benchmark: mseg's per-packet cost through BPF_PROG_TEST_RUN (`bpftool prog
# run ... repeat N`, the average ns per run, median of RUNS turns on one
# CPU; each ratio is the median of the turns' own ratios) against two
# reference classifiers built here from bench/bpf/mseg-ref.bpf.c: an empty
# program (return TC_ACT_OK) and two "floors" that parse Ethernet, IPv4/IPv6
# and the ports and do one hash lookup of the 5-tuple: ref_floor's lookup
# misses (the least a new flow costs), ref_floor_hit's finds the flow and
# counts on it (the least a packet of a known flow costs). The session case
# is judged against ref_floor_hit, the new-flow cases against ref_floor.
#
# mseg cases, IPv4 and IPv6, with 10 and with 100,000 exact rules and
# 100,000 prefixes loaded by `mseg apply`:
#   session  a flow with a live session (allowed by an exact rule)
#   session, accounting off
#            the same with `mseg config set accounting off`: no per-packet
#            counts, as nf_conntrack without nf_conntrack_acct (its default)
#   exact    a new flow denied by an exact rule (a deny creates no session,
#            so every run is a new flow)
#   cidr     a new flow denied by a CIDR rule
#   default  a new flow that no rule matches, denied by default deny
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly REPEAT="${MSEG_BENCH_REPEAT:-300000}"
readonly BIG="${MSEG_BENCH_RULES:-100000}"
readonly SMALL=10
readonly RUNS="${MSEG_BENCH_RUNS:-15}"
# the last CPU: every run on the same one, so per-CPU state and caches are
# the same for mseg and its floor
CPU=$(($(nproc) - 1))
readonly CPU

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"

# run_ns WHAT FRAME: bpftool's average ns per run, one run; WHAT is
# "id N" or "pinned PATH".
run_ns() {
  # shellcheck disable=SC2086 # WHAT is two words on purpose
  taskset -c "${CPU}" bpftool -j prog run ${1} data_in "${2}" repeat "${REPEAT}" | jq -e .duration
}

# run_pair WHAT FRAME [FLOOR]: RUNS turns of a run of WHAT beside a run of
# the floor (default ref_floor) on the same frame; prints "MEDIAN
# FLOOR_MEDIAN RATIO", RATIO the median of the turns' own ratios: the VM's
# speed drifts by up to 40 % between turns, and a turn's two runs, a
# fraction of a second apart, share one speed.
run_pair() {
  local i x y a="" f="" r="" floor="${3:-ref_floor}"
  for ((i = 0; i < RUNS; i++)); do
    x=$(run_ns "$1" "$2")
    y=$(run_ns "pinned ${WORK}/bpffs/ref/${floor}" "$2")
    a+="${x}"$'\n' f+="${y}"$'\n' r+="$(ratio "${x}" "${y}")"$'\n'
  done
  echo "$(median <<<"${a}") $(median <<<"${f}") $(median <<<"${r}")"
}

# ruleset FAMILY N: the probes' rules, then fillers up to N exact rules and
# N prefixes, none of them matching a probe.
ruleset() {
  local fam=$1 n=$2
  echo "default deny"
  if [[ ${fam} == 4 ]]; then
    echo "rule --src 192.0.2.1 --dst 198.51.100.1 --proto udp --dport 9 --action allow"
    echo "rule --src 192.0.2.1 --dst 198.51.100.2 --proto udp --dport 9 --action deny"
    echo "cidr 203.0.113.0/24 --action deny"
    awk -v n="${n}" 'BEGIN {
      for (i = 0; i < n - 2; i++)
        printf "rule --src 10.%d.%d.%d --dst 10.255.0.1 --proto tcp --dport 80 --action allow\n",
          int(i / 65536), int(i / 256) % 256, i % 256
      for (i = 0; i < n - 1; i++)
        printf "cidr %d.%d.%d.0/24 --action allow\n", 11 + int(i / 65536), int(i / 256) % 256, i % 256
    }'
  else
    echo "rule --src fd00:1::1 --dst fd00:2::1 --proto udp --dport 9 --action allow"
    echo "rule --src fd00:1::1 --dst fd00:2::2 --proto udp --dport 9 --action deny"
    echo "cidr fd00:3::/64 --action deny"
    awk -v n="${n}" 'BEGIN {
      for (i = 0; i < n - 2; i++)
        printf "rule --src 2001:db8:1::%x:%x --dst 2001:db8:2::1 --proto tcp --dport 80 --action allow\n", 1 + int(i / 65536), i % 65536
      for (i = 0; i < n - 1; i++)
        printf "cidr 2001:db8:%x:%x::/64 --action allow\n", 16 + int(i / 65536), i % 65536
    }'
  fi
}

frame() {
  "${ROOT}/build/mseg-pkt" --src "$1" --dst "$2" --proto udp --sport 40000 --dport 9 \
    --payload 18 -o "$3"
}

# bench_family FAMILY SRC SESSION_DST EXACT_DST CIDR_DST DEFAULT_DST
bench_family() {
  local fam=$1 src=$2 n case t0 t1
  local -A dst=([session]=$3 [exact]=$4 [cidr]=$5 [default]=$6)
  for case in session exact cidr default; do
    frame "${src}" "${dst[${case}]}" "${WORK}/${fam}.${case}"
  done
  local empty floor hit r
  read -r empty floor r < <(run_pair "pinned ${WORK}/bpffs/ref/ref_empty" "${WORK}/${fam}.session")
  read -r hit floor r < <(run_pair "pinned ${WORK}/bpffs/ref/ref_floor_hit" "${WORK}/${fam}.session")
  printf 'pkt: IPv%s  reference   empty %4d ns   floor %4d ns (parse + one 5-tuple hash lookup that misses)   floor_hit %4d ns (that hits)\n' \
    "${fam}" "${empty}" "${floor}" "${hit}"
  for n in "${SMALL}" "${BIG}"; do
    ruleset "${fam}" "${n}" >"${WORK}/rules"
    t0="$(date +%s.%N)"
    "${ROOT}/scripts/mseg" apply "${WORK}/rules" >/dev/null
    t1="$(date +%s.%N)"
    # the session probe's first run creates its session
    bpftool prog run id "${PROG}" data_in "${WORK}/${fam}.session" repeat 1 >/dev/null
    local line v
    line=$(printf 'pkt: IPv%s  %6d rules + %6d prefixes:' "${fam}" "${n}" "${n}")
    read -r v floor r < <(run_pair "id ${PROG}" "${WORK}/${fam}.session" ref_floor_hit)
    line+=$(printf '  session %4d ns (x%s floor_hit)' "${v}" "${r}")
    "${ROOT}/scripts/mseg" config set accounting off
    read -r v floor r < <(run_pair "id ${PROG}" "${WORK}/${fam}.session" ref_floor_hit)
    "${ROOT}/scripts/mseg" config set accounting on
    line+=$(printf '  (accounting off %4d ns, x%s)' "${v}" "${r}")
    for case in exact cidr default; do
      read -r v floor r < <(run_pair "id ${PROG}" "${WORK}/${fam}.${case}")
      line+=$(printf '  %s %4d ns (x%s floor)' "${case}" "${v}" "${r}")
    done
    echo "${line}"
    printf 'pkt: IPv%s  (mseg apply of that ruleset: %.2f s)\n' "${fam}" \
      "$(awk -v a="${t0}" -v b="${t1}" 'BEGIN { print b - a }')"
  done
}

main() {
  trap bench_cleanup EXIT
  make -s -C "${ROOT}" >/dev/null
  WORK="$(mktemp -d /tmp/mseg-bench-pkt.XXXXXX)"
  NS="msegbpkt$$"
  mkdir "${WORK}/bpffs"
  mount -t bpf bpf "${WORK}/bpffs"
  export TC_BPF_MNT="${WORK}/bpffs" MSEG_LOCK_DIR="${WORK}"
  clang -O2 -g -target bpf -mcpu=v3 -Wall -Werror -I "/usr/include/$(uname -m)-linux-gnu" \
    -c "${ROOT}/bench/bpf/mseg-ref.bpf.c" -o "${WORK}/ref.o"
  bpftool prog loadall "${WORK}/ref.o" "${WORK}/bpffs/ref" type tc
  ip netns add "${NS}"
  ip -n "${NS}" link add b0 type veth peer name b1
  ip netns exec "${NS}" "${ROOT}/scripts/mseg" attach b0 --ingress >/dev/null
  PROG="$(ip netns exec "${NS}" tc -j filter show dev b0 ingress |
    jq -r '[.[] | .options.prog.id // empty] | first')"
  echo "pkt: per-packet cost through BPF_PROG_TEST_RUN (repeat ${REPEAT}, median of ${RUNS} turns on CPU ${CPU}, each a run beside a run of its floor; the ratio is the median of the turns' own ratios: the session case's to ref_floor_hit, the others' to ref_floor), UDP probes with 18 bytes of payload"
  bench_family 4 192.0.2.1 198.51.100.1 198.51.100.2 203.0.113.7 198.18.0.9
  bench_family 6 fd00:1::1 fd00:2::1 fd00:2::2 fd00:3::7 fd00:4::9
  local sessions
  sessions="$(bpftool -j map dump pinned "${TC_BPF_MNT}/tc/globals/mseg_sessions" | jq length)"
  echo "pkt: sessions left: ${sessions} (2 expected: only the session probes; exact, cidr and default probes are denied, so each run was a new flow)"
  echo "pkt: command: bpftool -j prog run {id MSEG_PROG | pinned REF} data_in FRAME repeat ${REPEAT} (.duration); frames: build/mseg-pkt --src S --dst D --proto udp --sport 40000 --dport 9 --payload 18"
}

main "$@"
