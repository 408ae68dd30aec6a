#!/usr/bin/env bash
# Benchmark: how many short TCP connections per second pass a router with
# each filter on it, from a real load generator (wrk) to a real server
# (nginx), IPv4 and IPv6. Namespaces: client C - router R - server S, veth
# pairs, forwarding on in R; every filter works in R:
#   none        no filter
#   mseg-small  mseg on R's client-facing veth, ingress and egress (as
#               `make demo` and the tests attach it), a policy of two
#               segments (clients, web) and one rule allowing clients ->
#               web tcp/80, default deny
#   mseg-100k   the same three statements among RULES-1 others: segments,
#               rules between them, exact rules and CIDR rules
#               (bench/policy.bash), default deny
#   nft-100k    nftables in R's forward hook with conntrack:
#               `ct state established,related accept` first, then the same
#               100k policy translated into sets and verdict maps
#               (policy_nft), policy drop
# wrk runs on CPU 0 (THREADS threads, CONNS connections, each request on a
# new connection: `Connection: close`), nginx (one process) on the last CPU,
# so neither pushes the other around. The filters take turns, ROUNDS times,
# each turn both families, the first filter of a round moving along; drift
# on this shared machine hits them alike. Each turn starts from empty
# tables: mseg's sessions are flushed after its turns, conntrack's entries
# after nft's. The nft maps stay loaded; its chain is added for its turn and
# deleted after it, and conntrack (which the chain's ct expressions switch
# on in R) goes with it: the script counts conntrack's entries after the
# other turns too (0). Per filter: the median conn/s, p99 latency and CPU
# time per connection of its rounds, their ratios to "none" of the same
# rounds, and mseg-100k / nft-100k.
# wrk's latency runs from the request's first byte to the response's last,
# on a connection it just opened: the handshake (the SYN is the packet that
# pays for the policy) is before it and counts in conn/s only. So each turn
# also runs build/mseg-connect for CONNECT_S seconds (CONNS connects in
# flight, each closed once its handshake is done): the p99 of the connect
# latency, connect() to writable, per filter and its ratio to "none".
#
# With MSEG_BENCH_CONNRATE_PROFILE=1, `perf record -a -g` also samples both
# CPUs during each filter's first IPv4 wrk run, and the report says where
# the filter's time went: the share of the sampled CPU time inside tc's
# classifier (mseg: cls_bpf and its programs) or netfilter's hooks
# (nftables and conntrack), and within it the session table's bucket walk
# (the BPF hash map's lookup_nulls_elem_raw) or conntrack's lookup
# (__nf_conntrack_find_get). Not part of `make bench`: perf's own work
# slows the run it samples.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly DURATION="${MSEG_BENCH_CONNRATE_SECONDS:-2}"
readonly ROUNDS="${MSEG_BENCH_CONNRATE_ROUNDS:-9}"
readonly CONNS="${MSEG_BENCH_CONNRATE_CONNS:-32}"
readonly THREADS="${MSEG_BENCH_CONNRATE_THREADS:-2}"
readonly CONNECT_S="${MSEG_BENCH_CONNRATE_CONNECT_SECONDS:-1}"
readonly RULES="${MSEG_BENCH_RULES:-100000}"
readonly PROFILE="${MSEG_BENCH_CONNRATE_PROFILE:-0}"
readonly C4=10.97.1.2 R4C=10.97.1.1 R4S=10.97.2.1 S4=10.97.2.2
readonly C6=fd97:1::2 R6C=fd97:1::1 R6S=fd97:2::1 S6=fd97:2::2
# the big policy's name: 100k for 100,000 rules
BIG=${RULES}
((RULES % 1000)) || BIG="$((RULES / 1000))k"
readonly BIG
readonly FILTERS=(none mseg-small "mseg-${BIG}" "nft-${BIG}")
SERVER_CPU=$(($(nproc) - 1))
readonly SERVER_CPU

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"
# shellcheck source=bench/policy.bash
source "${ROOT}/bench/policy.bash"

TAG="cr$$"
NSC="" NSR="" NSS="" PERF_PID=""
PIDS=()
# "CONN_PER_S P99_US ERRORS REQUESTS CPU_US_PER_CONN" per round, one a line, by
# FILTER/FAMILY; sessions or conntrack entries counted at the end of the
# turns, by FILTER
# "CONN_PER_S P50_US P99_US ERRORS" of mseg-connect per round, by FILTER/FAMILY
declare -A RES=() TRACKED=() CONNECT=()

cleanup() {
  local p ns m
  for p in "${PIDS[@]}"; do kill "${p}" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "${p}" 2>/dev/null || true; done
  for ns in "${NSC}" "${NSR}" "${NSS}"; do
    [[ -n "${ns}" ]] && ip netns del "${ns}" 2>/dev/null
  done
  if [[ -n "${WORK}" ]]; then
    for m in "${WORK}"/bpffs-*; do
      mountpoint -q "${m}" && umount "${m}"
    done
    rm -rf "${WORK}"
  fi
  return 0
}

# link NS_A DEV_A NS_B DEV_B
link() {
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

# addr NS DEV ADDR4/LEN ADDR6/LEN
addr() {
  ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.accept_dad=0"
  ip -n "$1" addr add "$3" dev "$2"
  ip -n "$1" -6 addr add "$4" dev "$2" nodad
}

lab_up() {
  local ns
  NSC="msegc${TAG}" NSR="msegr${TAG}" NSS="msegs${TAG}"
  for ns in "${NSC}" "${NSR}" "${NSS}"; do
    ip netns add "${ns}"
    ip -n "${ns}" link set lo up
  done
  link "${NSC}" c0 "${NSR}" rc
  link "${NSS}" s0 "${NSR}" rs
  addr "${NSC}" c0 "${C4}/24" "${C6}/64"
  addr "${NSR}" rc "${R4C}/24" "${R6C}/64"
  addr "${NSR}" rs "${R4S}/24" "${R6S}/64"
  addr "${NSS}" s0 "${S4}/24" "${S6}/64"
  ip netns exec "${NSR}" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  ip -n "${NSC}" route add default via "${R4C}"
  ip -n "${NSC}" -6 route add default via "${R6C}"
  ip -n "${NSS}" route add default via "${R4S}"
  ip -n "${NSS}" -6 route add default via "${R6S}"
  # Every request is a new connection: reuse the client's ports in
  # TIME_WAIT, and let the server queue a burst of handshakes.
  ip netns exec "${NSC}" sysctl -qw net.ipv4.tcp_tw_reuse=1 \
    net.ipv4.ip_local_port_range="1024 65000"
  ip netns exec "${NSS}" sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096
}

# nginx_up: one nginx process in S, its files in WORK, listening on S's two
# addresses only, in the foreground of a bounded background job.
nginx_up() {
  local d="${WORK}/nginx" i
  mkdir -p "${d}/tmp"
  cat >"${d}/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid ${d}/nginx.pid;
lock_file ${d}/nginx.lock;
error_log ${d}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${d}/tmp/body;
  proxy_temp_path ${d}/tmp/proxy;
  fastcgi_temp_path ${d}/tmp/fastcgi;
  uwsgi_temp_path ${d}/tmp/uwsgi;
  scgi_temp_path ${d}/tmp/scgi;
  server {
    listen ${S4}:80 backlog=4096;
    listen [${S6}]:80 backlog=4096;
    location / { return 200 "ok\n"; }
  }
}
EOF
  ip netns exec "${NSS}" taskset -c "${SERVER_CPU}" timeout -k 5 900 \
    nginx -e "${d}/error.log" -p "${d}" -c "${d}/nginx.conf" &
  PIDS+=("$!")
  for ((i = 0; i < 50; i++)); do
    (($(ip netns exec "${NSS}" ss -Htln sport = :80 | wc -l) == 2)) && return 0
    sleep 0.1
  done
  echo "mseg: bench: nginx did not listen on ${S4}:80 and [${S6}]:80: $(cat "${d}/error.log")" >&2
  return 1
}

# nginx_cpu_ns: the CPU time nginx has run, in ns (its schedstat).
nginx_cpu_ns() { cut -d' ' -f1 "/proc/$(cat "${WORK}/nginx/nginx.pid")/schedstat"; }

# wrk_run FAMILY SECONDS: one wrk run from C; prints "CONN_PER_S P99_US
# ERRORS REQUESTS CPU_US_PER_CONN". The CPU time is wrk's and nginx's
# during the run, which holds the router's forwarding and filtering too:
# a veth delivers a packet in the sender's own softirq, so R's work on C's
# packets runs in wrk and on S's packets in nginx. Unlike conn/s, it does
# not fall when other work on the machine takes the CPUs.
wrk_run() {
  local url="http://${S4}/" n0 n1 TIMEFORMAT='%3U %3S'
  [[ $1 == 6 ]] && url="http://[${S6}]/"
  n0=$(nginx_cpu_ns)
  { time ip netns exec "${NSC}" taskset -c 0 timeout -k 5 $(($2 + 30)) \
    wrk -t "${THREADS}" -c "${CONNS}" -d "$2s" --latency -H 'Connection: close' "${url}" \
    >"${WORK}/wrk.out" 2>"${WORK}/wrk.err"; } 2>"${WORK}/wrk.time"
  n1=$(nginx_cpu_ns)
  awk -v nginx_ns=$((n1 - n0)) -v wrk_s="$(awk '{ print $1 + $2 }' "${WORK}/wrk.time")" '
    function us(v) {
      if (v ~ /us$/) return v + 0
      if (v ~ /ms$/) return v * 1000
      if (v ~ /m$/) return v * 60e6
      return v * 1e6
    }
    $1 == "99%" { p99 = us($2) }
    $1 == "Requests/sec:" { rate = $2 }
    $2 == "requests" && $3 == "in" { n = $1 }
    /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx/ { err += $NF }
    END {
      if (rate == "" || n == 0) exit 1
      printf "%.0f %.0f %d %d %.1f\n", rate, p99, err, n, (wrk_s * 1e6 + nginx_ns / 1e3) / n
    }' "${WORK}/wrk.out"
}

# connect_run FAMILY: one mseg-connect run from C, on CPU 0 as wrk.
connect_run() {
  local addr=${S4}
  [[ $1 == 6 ]] && addr=${S6}
  ip netns exec "${NSC}" taskset -c 0 timeout -k 5 $((CONNECT_S + 30)) \
    "${ROOT}/build/mseg-connect" --addr "${addr}" --port 80 --conns "${CONNS}" --seconds "${CONNECT_S}"
}

# mseg_in NAME CMD...: run an mseg command against the pins of NAME.
mseg_in() {
  local name=$1
  shift
  TC_BPF_MNT="${WORK}/bpffs-${name}" MSEG_LOCK_DIR="${WORK}/lock-${name}" \
    ip netns exec "${NSR}" "${ROOT}/scripts/mseg" "$@"
}

# Switching a filter must not cost a turn seconds of the verifier: each
# mseg configuration's two programs (ingress, egress) were loaded once by
# `mseg attach` and pinned; a turn puts them back in mseg's own tc slot.
filter_on() {
  local d="${WORK}/bpffs-${1#mseg-}" dir
  case $1 in
    none) ;;
    mseg-*)
      ip netns exec "${NSR}" tc qdisc add dev rc clsact
      for dir in ingress egress; do
        ip netns exec "${NSR}" tc filter add dev rc "${dir}" pref 1337 handle 1 \
          bpf da object-pinned "${d}/prog-${dir}"
      done
      ;;
    nft-*) ip netns exec "${NSR}" nft -f "${WORK}/${1#nft-}.chain" ;;
  esac
}

# filter_off NAME: the filter gone and its table emptied; adds the entries
# the table held to TRACKED[NAME].
filter_off() {
  local n=0
  case $1 in
    none) n=$(ip netns exec "${NSR}" conntrack -C) ;;
    mseg-*)
      ip netns exec "${NSR}" tc qdisc del dev rc clsact
      n=$(mseg_in "${1#mseg-}" sessions flush --json | jq .deleted)
      ;;
    nft-*)
      ip netns exec "${NSR}" nft delete chain inet "mseg_${TAG}" filter
      n=$(ip netns exec "${NSR}" conntrack -C)
      ip netns exec "${NSR}" conntrack -F 2>/dev/null
      ;;
  esac
  TRACKED[$1]=$((${TRACKED[$1]:-0} + n))
}

# mseg_pins NAME POLICY_FILE: a bpffs of its own with POLICY applied, and
# the programs `mseg attach rc --both` loaded pinned beside the maps; mseg
# attached nowhere.
mseg_pins() {
  local d="${WORK}/bpffs-$1" dir id
  mkdir -p "${d}" "${WORK}/lock-$1"
  chmod 0700 "${WORK}/lock-$1"
  mount -t bpf bpf "${d}"
  mseg_in "$1" attach rc --both >/dev/null
  for dir in ingress egress; do
    id=$(ip netns exec "${NSR}" tc -j filter show dev rc "${dir}" |
      jq -r '[.[] | .options.prog.id // empty] | first')
    bpftool prog pin id "${id}" "${d}/prog-${dir}"
  done
  mseg_in "$1" detach rc >/dev/null
  TC_BPF_MNT="${WORK}/bpffs-$1" MSEG_LOCK_DIR="${WORK}/lock-$1" \
    "${ROOT}/scripts/mseg" apply "$2"
}

policies() {
  local own t0 t1
  own=$(printf '%s\n' "segment add clients ${C4%.*}.0/24 ${C6%::*}::/64" \
    "segment add web ${S4%.*}.0/24 ${S6%::*}::/64" \
    "rule add --src clients --dst web --proto tcp --dport 80 --action allow" "default deny")
  echo "${own}" >"${WORK}/small.policy"
  { policy_mix $((RULES - 1)) && echo "${own}"; } >"${WORK}/${BIG}.policy"
  policy_nft "mseg_${TAG}" forward 0 <"${WORK}/${BIG}.policy" >"${WORK}/${BIG}.nft"
  policy_nft "mseg_${TAG}" forward 0 chain <"${WORK}/${BIG}.policy" >"${WORK}/${BIG}.chain"
  echo "connrate: mseg-small: $(mseg_pins small "${WORK}/small.policy")"
  t0=$(date +%s.%N)
  echo "connrate: mseg-${BIG}: $(mseg_pins "${BIG}" "${WORK}/${BIG}.policy"), mseg apply in $(awk -v a="${t0}" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s (with attach)"
  t0=$(date +%s.%N)
  ip netns exec "${NSR}" nft -f "${WORK}/${BIG}.nft"
  t1=$(date +%s.%N)
  filter_off "nft-${BIG}"
  printf 'connrate: nft-%s: the same policy as %d set and map elements, nft -f in %.1f s\n' \
    "${BIG}" "$(grep -c ' : ' "${WORK}/${BIG}.nft")" "$(awk -v a="${t0}" -v b="${t1}" 'BEGIN { print b - a }')"
}

# column N KEY [TABLE]: field N of every round of RES[KEY] (or CONNECT[KEY]
# with TABLE=connect), one a line.
column() {
  local rows=${RES[$2]:-}
  [[ ${3:-} == connect ]] && rows=${CONNECT[$2]:-}
  awk -v n="$1" 'NF { print $n }' <<<"${rows}"
}

# total: the sum of the numbers on stdin, one a line.
total() { awk '{ s += $1 } END { print s + 0 }'; }

# per_round N A B [TABLE]: the median over the rounds of A's field N / B's
# field N.
per_round() {
  paste <(column "$1" "$2" "${4:-}") <(column "$1" "$3" "${4:-}") | awk '{ print ($2 > 0 ? $1 / $2 : 0) }' | median
}

# quartiles N A B: the first and third quartiles of the same ratios, "Q1-Q3".
quartiles() {
  paste <(column "$1" "$2") <(column "$1" "$3") | awk '{ print $1 / $2 }' | sort -g |
    awk '{ v[++n] = $1 } END { printf "%.2f-%.2f", v[int((n + 3) / 4)], v[int((3 * n + 3) / 4)] }'
}

report() {
  local fam f rate p99 err cpu
  for fam in 4 6; do
    for f in "${FILTERS[@]}"; do
      rate=$(column 1 "${f}/${fam}" | median)
      p99=$(column 2 "${f}/${fam}" | median)
      # wrk's errors and mseg-connect's failed connects
      err=$(($(column 3 "${f}/${fam}" | total) + $(column 4 "${f}/${fam}" connect | total)))
      cpu=$(column 5 "${f}/${fam}" | median)
      printf 'connrate: IPv%s %-10s %6d conn/s (x%.2f, %s)  p99 %6.2f ms (x%.2f)  connect p99 %6.2f ms (x%.2f)  cpu %5.1f us/conn (x%.2f)  errors %d  rounds: %s\n' \
        "${fam}" "${f}" "${rate}" "$(per_round 1 "${f}/${fam}" "none/${fam}")" "$(quartiles 1 "${f}/${fam}" "none/${fam}")" \
        "$(awk -v v="${p99}" 'BEGIN { print v / 1000 }')" "$(per_round 2 "${f}/${fam}" "none/${fam}")" \
        "$(column 3 "${f}/${fam}" connect | median | awk '{ print $1 / 1000 }')" \
        "$(per_round 3 "${f}/${fam}" "none/${fam}" connect)" \
        "${cpu}" "$(per_round 5 "${f}/${fam}" "none/${fam}")" \
        "${err}" "$(column 1 "${f}/${fam}" | paste -sd' ')"
    done
    printf 'connrate: IPv%s mseg-%s / nft-%s: conn/s x%.2f (%s), p99 x%.2f, connect p99 x%.2f, cpu/conn x%.2f\n' "${fam}" "${BIG}" "${BIG}" \
      "$(per_round 1 "mseg-${BIG}/${fam}" "nft-${BIG}/${fam}")" "$(quartiles 1 "mseg-${BIG}/${fam}" "nft-${BIG}/${fam}")" "$(per_round 2 "mseg-${BIG}/${fam}" "nft-${BIG}/${fam}")" \
      "$(per_round 3 "mseg-${BIG}/${fam}" "nft-${BIG}/${fam}" connect)" "$(per_round 5 "mseg-${BIG}/${fam}" "nft-${BIG}/${fam}")"
  done
  for f in "${FILTERS[@]}"; do
    printf 'connrate: %s: %d connections (wrk, both families, every round), %d entries left in its table after its turns\n' \
      "${f}" "$(cat <(column 4 "${f}/4") <(column 4 "${f}/6") | awk '{ s += $1 } END { print s }')" "${TRACKED[${f}]}"
    [[ ${f} == none ]] && echo "connrate: (none's table: conntrack's in R, which must stay off outside nft's turns)"
  done
  echo "connrate: ratios: the median over the rounds of each round's figure / the same round's \"none\" (or nft-${BIG}); beside the conn/s ratio, the quartiles of the rounds' ratios"
  echo "connrate: connect p99: build/mseg-connect's, ${CONNECT_S} s per turn and family, ${CONNS} connects in flight, each closed once writable (errors: wrk's and its failed connects)"
  echo "connrate: cpu: wrk's and nginx's CPU time per connection, the router's softirq work included (see wrk_run); what conn/s would be on idle CPUs goes as its inverse"
}

# profiled ROUND FAMILY: whether this run is one perf samples.
profiled() { ((PROFILE)) && (($1 == 0)) && [[ $2 == 4 ]]; }

# profile_start FILTER: perf samples both CPUs, call graphs included, for
# as long as a wrk run, in the background; its pid in PERF_PID.
profile_start() {
  timeout -k 5 $((DURATION + 30)) perf record -q -a -g -F 499 -o "${WORK}/perf-$1.data" \
    -- sleep "${DURATION}" >/dev/null 2>&1 &
  PERF_PID=$!
  PIDS+=("${PERF_PID}")
}

# share DATA SYMBOL: the share in % of DATA's samples with SYMBOL on their
# call chain (perf report's "children"); 0 when no sample has it.
share() {
  perf report -i "$1" --children --sort sym -g none --stdio 2>/dev/null |
    awk -v sym="$2" '$NF == sym { v = $1 + 0 } END { printf "%.1f", v }'
}

profile_report() {
  local f d
  for f in "${FILTERS[@]}"; do
    d="${WORK}/perf-${f}.data"
    [[ -s ${d} ]] || continue
    printf 'connrate: profile IPv4 %-10s  tc classifier %4s %% (of it the BPF hash bucket walk %4s %%)   netfilter hooks %4s %% (of it conntrack lookup %4s %%)\n' \
      "${f}" "$(share "${d}" tcf_classify)" "$(share "${d}" lookup_nulls_elem_raw)" \
      "$(share "${d}" nf_hook_slow)" "$(share "${d}" __nf_conntrack_find_get)"
  done
  echo "connrate: profile: % of the CPU time perf sampled on both CPUs (idle CPUs take few samples) during each filter's first IPv4 wrk run; command: perf record -a -g -F 499 -- sleep ${DURATION}, perf report --children --sort sym"
}

main() {
  trap cleanup EXIT
  local f r i fam n
  if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
    echo "connrate: skipped: wrk/nginx missing (apt-get install wrk nginx-light, or scripts/mseg-deps)"
    return 0
  fi
  if ((PROFILE)) && ! command -v perf >/dev/null; then
    echo "connrate: MSEG_BENCH_CONNRATE_PROFILE=1 needs perf (apt-get install linux-perf)" >&2
    return 1
  fi
  make -s -C "${ROOT}" >/dev/null
  WORK="$(mktemp -d /tmp/mseg-bench-connrate.XXXXXX)"
  echo "connrate: load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
  lab_up
  nginx_up
  policies
  # the first connections of each family resolve neighbours: not measured
  wrk_run 4 1 >/dev/null
  wrk_run 6 1 >/dev/null
  echo "connrate: wrk -t ${THREADS} -c ${CONNS} -d ${DURATION}s --latency -H 'Connection: close' on CPU 0, nginx on CPU ${SERVER_CPU}; ${ROUNDS} rounds, the filters in turn"
  n=${#FILTERS[@]}
  for ((r = 0; r < ROUNDS; r++)); do
    for ((i = 0; i < n; i++)); do
      f=${FILTERS[$(((r + i) % n))]}
      filter_on "${f}"
      for fam in 4 6; do
        profiled "${r}" "${fam}" && profile_start "${f}"
        RES[${f}/${fam}]+="$(wrk_run "${fam}" "${DURATION}")"$'\n'
        if profiled "${r}" "${fam}"; then wait "${PERF_PID}" || true; fi
        CONNECT[${f}/${fam}]+="$(connect_run "${fam}")"$'\n'
      done
      filter_off "${f}"
    done
  done
  report
  ((PROFILE)) && profile_report
  echo "connrate: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "connrate: commands: ip netns exec C taskset -c 0 wrk -t ${THREADS} -c ${CONNS} -d ${DURATION}s --latency -H 'Connection: close' http://${S4}/ (and http://[${S6}]/);" \
    "ip netns exec S taskset -c ${SERVER_CPU} nginx (return 200, master_process off); mseg attach rc --both + mseg apply FILE, its programs pinned and put back in its tc slot (pref 1337) each turn; nft -f FILE (forward hook, generated by bench/policy.bash)"
}

main "$@"
