#!/usr/bin/env bash
# Benchmark: a spoofed flood through a router, mseg against nftables
# conntrack on the same lab. Namespaces: client C, router R, server S and
# attacker A (behind R). The filter runs on R:
#   mseg    `mseg attach` on R's client- and attacker-facing veths, default
#           allow, and an exact rule allowing C -> S:5555 (the legitimate
#           connections: what mseg still admits when its table is degraded)
#   nft     a forward chain that accepts everything with conntrack on (loose
#           pickup, as the kernel's default; nf_conntrack_max as the host
#           has it)
#   nftsyn  the same with SYNPROXY in front of S:5555 (the nftables wiki's
#           recipe: the SYNs untracked, the handshake answered by R with a
#           cookie, conntrack's loose pickup off so a spoofed ACK is invalid)
# Both tables hold the same number of entries (mseg's default capacity is
# nf_conntrack_max's default, 262144; the script prints both). For each
# filter and each flood (spoofed ACKs, spoofed SYNs, random sources, toward
# S:5555; hping3 --flood, which ignores a count, bounded by FLOOD_S
# seconds), on a fresh lab: the rate of sequential connections C -> S:5555
# that complete (each given 1 s) for WINDOW_S seconds with no flood, then
# for WINDOW_S seconds once the flood has run FILL_S seconds (long enough
# here for conntrack's table to fill with SYN_SENT entries); the packets
# per second R received from A in that window (each one through the
# filter); and the throughput of an established flow C -> S:5201 for
# WINDOW_S seconds, once before the flood and once after the window in it:
# a flow opened before the flood, alive through it (a byte a second), then
# sending all it can. The ratios mseg / nft and mseg / nftsyn are taken
# within each case.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly WINDOW_S="${MSEG_BENCH_FLOOD_WINDOW:-4}"
readonly FILL_S="${MSEG_BENCH_FLOOD_FILL:-16}"
# the flood outlasts the fill, the connection window and the flow's
readonly FLOOD_S="${MSEG_BENCH_FLOOD_SECONDS:-$((FILL_S + 2 * WINDOW_S + 3))}"
readonly C4=10.91.1.2 S4=10.91.2.2 A4=10.91.3.2

# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"

TAG="f$$"
NSC="" NSR="" NSS="" NSA=""
PIDS=()

lab_down() {
  local p ns
  for p in "${PIDS[@]}"; do kill "${p}" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "${p}" 2>/dev/null || true; done
  PIDS=()
  for ns in "${NSC}" "${NSR}" "${NSS}" "${NSA}"; do
    [[ -n "${ns}" ]] && ip netns del "${ns}" 2>/dev/null
  done
  NSC="" NSR="" NSS="" NSA=""
  if [[ -n "${WORK}" ]] && mountpoint -q "${WORK}/bpffs"; then
    umount "${WORK}/bpffs"
  fi
  return 0
}

cleanup() {
  lab_down
  [[ -n "${WORK}" ]] && rm -rf "${WORK}"
  return 0
}

# link NS_A DEV_A ADDR_A NS_B DEV_B ADDR_B (addresses with /24)
link() {
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
  ip -n "$1" addr add "$3" dev "$2"
  ip -n "$4" addr add "$6" dev "$5"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}

lab_up() {
  local ns
  NSC="msegbc${TAG}" NSR="msegbr${TAG}" NSS="msegbs${TAG}" NSA="msegba${TAG}"
  for ns in "${NSC}" "${NSR}" "${NSS}" "${NSA}"; do
    ip netns add "${ns}"
    ip -n "${ns}" link set lo up
  done
  link "${NSC}" c0 "${C4}/24" "${NSR}" rc 10.91.1.1/24
  link "${NSS}" s0 "${S4}/24" "${NSR}" rs 10.91.2.1/24
  link "${NSA}" a0 "${A4}/24" "${NSR}" ra 10.91.3.1/24
  ip netns exec "${NSR}" sysctl -qw net.ipv4.ip_forward=1
  for ns in all default ra; do
    ip netns exec "${NSR}" sysctl -qw "net.ipv4.conf.${ns}.rp_filter=0"
  done
  ip -n "${NSC}" route add default via 10.91.1.1
  ip -n "${NSS}" route add default via 10.91.2.1
  ip -n "${NSA}" route add default via 10.91.3.1
  ip netns exec "${NSS}" timeout 300 python3 "${ROOT}/bench/connrate.py" serve "${S4}" 5555 290 &
  PIDS+=($!)
  ip netns exec "${NSS}" timeout 300 python3 "${ROOT}/bench/connrate.py" sink "${S4}" 5201 290 &
  PIDS+=($!)
}

filter_mseg() {
  mkdir -p "${WORK}/bpffs"
  mount -t bpf bpf "${WORK}/bpffs"
  export TC_BPF_MNT="${WORK}/bpffs" MSEG_LOCK_DIR="${WORK}"
  ip netns exec "${NSR}" "${ROOT}/scripts/mseg" attach rc --both >/dev/null
  ip netns exec "${NSR}" "${ROOT}/scripts/mseg" attach ra --ingress >/dev/null
  "${ROOT}/scripts/mseg" rule add --src "${C4}" --dst "${S4}" --proto tcp --dport 5555 \
    --action allow >/dev/null
  # the gc service, as an operator runs it
  ip netns exec "${NSR}" timeout 300 "${ROOT}/scripts/mseg" gc --interval 1 >/dev/null &
  PIDS+=($!)
}

filter_nft() {
  ip netns exec "${NSR}" nft -f - <<'EOF'
table inet mseg_flood_bench {
  chain forward_flood {
    type filter hook forward priority 0; policy accept;
    ct state new counter
  }
}
EOF
}

filter_nftsyn() {
  ip netns exec "${NSR}" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
  ip netns exec "${NSR}" nft -f - <<'EOF'
table inet mseg_flood_bench {
  chain prerouting_raw {
    type filter hook prerouting priority raw; policy accept;
    tcp dport 5555 tcp flags syn notrack
  }
  chain forward_flood {
    type filter hook forward priority 0; policy accept;
    tcp dport 5555 ct state invalid,untracked synproxy mss 1460 wscale 7 timestamp sack-perm
    ct state invalid drop
    ct state new counter
  }
}
EOF
}

# window: completed and failed connections C -> S:5555 in WINDOW_S seconds.
window() {
  ip netns exec "${NSC}" timeout $((WINDOW_S + 10)) python3 "${ROOT}/bench/connrate.py" \
    window "${S4}" 5555 "${WINDOW_S}"
}

# flood KIND: hping3 from A, spoofed sources, toward S:5555, bounded.
flood() {
  local flag=-A
  [[ $1 == syn ]] && flag=-S
  ip netns exec "${NSA}" timeout "${FLOOD_S}" hping3 -q "${flag}" --rand-source -p 5555 \
    --flood "${S4}" >/dev/null 2>&1 &
  PIDS+=($!)
}

# bulk IDLE: an established flow's Mbit/s (connrate.py bulk), 0 if it broke.
bulk() {
  ip netns exec "${NSC}" timeout $(($1 + WINDOW_S + 40)) python3 "${ROOT}/bench/connrate.py" \
    bulk "${S4}" 5201 "$1" "${WINDOW_S}" 2>/dev/null || echo 0
}

# rx_packets: packets R has received from A.
rx_packets() { ip -n "${NSR}" -s -j link show ra | jq '.[0].stats64.rx.packets'; }

# table_fill FILTER: entries in that filter's table.
table_fill() {
  if [[ $1 == mseg ]]; then
    "${ROOT}/scripts/mseg" monitor --once --json | jq -r '"\(.sessions) (\(.level), \(.evictions) early drops)"'
  else
    ip netns exec "${NSR}" sh -c 'cat /proc/sys/net/netfilter/nf_conntrack_count'
  fi
}

# measure FILTER KIND: on a fresh lab, sets BASE (connections completed with
# no flood), OK and FAILED (during the flood), PPS (what R received from A
# then), FILL (the table then), and TPUT0 and TPUT (the established flow's
# Mbit/s without and during the flood).
measure() {
  local filter=$1 kind=$2 out rx0 t0 flow
  lab_up
  "filter_${filter}"
  sleep 1
  out=$(window)
  BASE=${out%% *}
  TPUT0=$(bulk 0)
  # the flow opens now, before the flood, and sends its bulk after the window
  bulk $((FILL_S + WINDOW_S + 1)) >"${WORK}/flow" &
  flow=$!
  sleep 0.5
  flood "${kind}"
  sleep "${FILL_S}"
  rx0=$(rx_packets)
  t0=$(date +%s.%N)
  out=$(window)
  PPS=$(awk -v a="${rx0}" -v b="$(rx_packets)" -v t0="${t0}" -v t1="$(date +%s.%N)" \
    'BEGIN { printf "%.0f", (b - a) / (t1 - t0) }')
  OK=${out%% *} FAILED=${out#* }
  FILL=$(table_fill "${filter}")
  wait "${flow}" || true
  TPUT=$(cat "${WORK}/flow")
  lab_down
}

main() {
  trap cleanup EXIT
  local cap kind f
  local -A ok=() base=() failed=() fill=() pps=() tput0=() tput=()
  WORK="$(mktemp -d /tmp/mseg-bench-flood.XXXXXX)"
  make -s -C "${ROOT}" >/dev/null
  cap=$("${ROOT}/build/mseg-abi" | awk '$1 == "max_sessions" { print $2 }')
  echo "flood: new connections C -> S completed while spoofed packets flood S through the router; ${WINDOW_S} s windows, each connection given 1 s; the packets per second R received from the attacker in that window; an established flow's throughput (${WINDOW_S} s) without and during the flood"
  echo "flood: mseg capacity ${cap}, nf_conntrack_max $(cat /proc/sys/net/netfilter/nf_conntrack_max); flood: hping3 --rand-source --flood for at most ${FLOOD_S} s, measured after ${FILL_S} s"
  for kind in ack syn; do
    for f in mseg nft nftsyn; do
      measure "${f}" "${kind}"
      base["${f}"]=${BASE} ok["${f}"]=${OK} failed["${f}"]=${FAILED} fill["${f}"]=${FILL}
      pps["${f}"]=${PPS} tput0["${f}"]=${TPUT0} tput["${f}"]=${TPUT}
      printf 'flood: %-4s %-6s flood  no flood %5.0f conn/s   during %5.0f conn/s (%d failed)   %7d pps from A   flow %5d -> %5d Mbit/s (x%s)   table: %s\n' \
        "${kind}" "${f}" "$(awk -v n="${base[${f}]}" -v t="${WINDOW_S}" 'BEGIN { print n / t }')" \
        "$(awk -v n="${ok[${f}]}" -v t="${WINDOW_S}" 'BEGIN { print n / t }')" \
        "${failed[${f}]}" "${pps[${f}]}" "${tput0[${f}]}" "${tput[${f}]}" \
        "$(ratio "${tput[${f}]}" "${tput0[${f}]}")" "${fill[${f}]}"
    done
    for f in nft nftsyn; do
      printf 'flood: %-4s flood  mseg / %-6s during the flood: conn/s %s (without: %s)   pps %s   flow %s\n' "${kind}" "${f}" \
        "$(ratio "${ok[mseg]}" "${ok[${f}]}")" \
        "$(ratio "${base[mseg]}" "${base[${f}]}")" \
        "$(ratio "${pps[mseg]}" "${pps[${f}]}")" \
        "$(ratio "${tput[mseg]}" "${tput[${f}]}")"
    done
  done
  echo "flood: commands: ip netns exec A hping3 -q {-A|-S} --rand-source -p 5555 --flood S (under timeout ${FLOOD_S}); ip netns exec C bench/connrate.py window S 5555 ${WINDOW_S}; ip netns exec C bench/connrate.py bulk S 5201 IDLE ${WINDOW_S} (sink: connrate.py sink); packets from A: ip -s -j link show ra (rx.packets); mseg: attach + rule C->S:5555 allow + gc --interval 1; nft: forward chain 'ct state new counter', policy accept; nftsyn: the same after 'tcp dport 5555 ct state invalid,untracked synproxy mss 1460 wscale 7 timestamp sack-perm; ct state invalid drop', SYNs to 5555 notrack in prerouting (raw), nf_conntrack_tcp_loose=0"
}

main "$@"
