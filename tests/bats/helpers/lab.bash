# shellcheck shell=bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The namespace lab: client <-> router <-> server, IPv4 and IPv6, with the
# mseg classifier on the router's client-facing veth (ingress and egress).
#
#   client  LAB_C4 10.77.1.2   LAB_C6 fd77:1::2     dev LAB_CDEV
#   router  10.77.1.1 / fd77:1::1 dev LAB_RC (filtered)
#           10.77.2.1 / fd77:2::1 dev LAB_RS
#   server  LAB_S4 10.77.2.2   LAB_S6 fd77:2::2     dev LAB_SDEV
#
# Names carry a per-run tag, so parallel runs never collide. Traffic only
# ever goes to addresses inside these namespaces. lab_teardown is safe after
# a partial setup and after a failed test.
#
# Requires common.bash.

LAB_C4=10.77.1.2
LAB_R4C=10.77.1.1
LAB_R4S=10.77.2.1
LAB_S4=10.77.2.2
LAB_C6=fd77:1::2
LAB_R6C=fd77:1::1
LAB_R6S=fd77:2::1
LAB_S6=fd77:2::2
LAB_TCP_PORTS=(5001 5002 5003)
LAB_UDP_PORTS=(5001 5002 5003)

# lab_setup [--no-filter]: build the lab (and a private bpffs); unless told
# otherwise, attach the classifier with `mseg attach DEV --both` in the
# router. Starts nothing; see lab_start_servers.
lab_setup() {
	local tag
	tag=$(printf '%x%03x' $((BASHPID % 65536)) $((RANDOM % 4096)))
	LAB_TAG=$tag
	LAB_C=mseg-$tag-c
	LAB_R=mseg-$tag-r
	LAB_S=mseg-$tag-s
	LAB_CDEV=mc$tag
	LAB_RC=mr${tag}c
	LAB_RS=mr${tag}s
	LAB_SDEV=ms$tag
	LAB_DIR=$(mktemp -d /tmp/mseg-lab.XXXXXX)
	LAB_PIDS=()
	export LAB_TAG LAB_C LAB_R LAB_S LAB_CDEV LAB_RC LAB_RS LAB_SDEV LAB_DIR

	bpffs_setup
	_lab_netns || return 1
	_lab_addrs || return 1
	if [[ ${1:-} != --no-filter ]]; then
		attach_dev "$LAB_RC" "$LAB_R" --both || return 1
		LAB_PROG_ID=$(prog_id "$LAB_RC" "$LAB_R" ingress) || return 1
		export LAB_PROG_ID
	fi
}

_lab_netns() {
	local ns
	for ns in "$LAB_C" "$LAB_R" "$LAB_S"; do
		ip netns add "$ns" || return 1
		ip -n "$ns" link set lo up
	done
	ip link add "$LAB_CDEV" netns "$LAB_C" type veth peer name "$LAB_RC" netns "$LAB_R" &&
		ip link add "$LAB_SDEV" netns "$LAB_S" type veth peer name "$LAB_RS" netns "$LAB_R" &&
		ip netns exec "$LAB_R" sysctl -qw net.ipv4.ip_forward=1 &&
		ip netns exec "$LAB_R" sysctl -qw net.ipv6.conf.all.forwarding=1
}

# _lab_if NS DEV ADDR4/LEN ADDR6/LEN
_lab_if() {
	ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.accept_dad=0" &&
		ip -n "$1" addr add "$3" dev "$2" &&
		ip -n "$1" -6 addr add "$4" dev "$2" nodad &&
		ip -n "$1" link set "$2" up
}

_lab_addrs() {
	_lab_if "$LAB_C" "$LAB_CDEV" "$LAB_C4/24" "$LAB_C6/64" &&
		_lab_if "$LAB_R" "$LAB_RC" "$LAB_R4C/24" "$LAB_R6C/64" &&
		_lab_if "$LAB_R" "$LAB_RS" "$LAB_R4S/24" "$LAB_R6S/64" &&
		_lab_if "$LAB_S" "$LAB_SDEV" "$LAB_S4/24" "$LAB_S6/64" &&
		ip -n "$LAB_C" route add default via "$LAB_R4C" &&
		ip -n "$LAB_C" -6 route add default via "$LAB_R6C" &&
		ip -n "$LAB_S" route add default via "$LAB_R4S" &&
		ip -n "$LAB_S" -6 route add default via "$LAB_R6S"
}

# lab_attacker_setup: a fourth namespace, LAB_A (10.77.3.2, dev LAB_ADEV),
# behind the router's LAB_RA (10.77.3.1), whose ingress mseg filters with
# the same maps. The router forwards whatever source address it sends
# (rp_filter off), so it can forge the client's or the server's packets.
lab_attacker_setup() {
	LAB_A=mseg-$LAB_TAG-a
	LAB_ADEV=ma$LAB_TAG
	LAB_RA=mr${LAB_TAG}a
	export LAB_A LAB_ADEV LAB_RA
	ip netns add "$LAB_A" &&
		ip -n "$LAB_A" link set lo up &&
		ip link add "$LAB_ADEV" netns "$LAB_A" type veth peer name "$LAB_RA" netns "$LAB_R" &&
		ip -n "$LAB_A" addr add 10.77.3.2/24 dev "$LAB_ADEV" &&
		ip -n "$LAB_R" addr add 10.77.3.1/24 dev "$LAB_RA" &&
		ip -n "$LAB_A" link set "$LAB_ADEV" up &&
		ip -n "$LAB_R" link set "$LAB_RA" up &&
		ip -n "$LAB_A" route add default via 10.77.3.1 || return 1
	local k
	for k in all default "$LAB_RA"; do
		ip netns exec "$LAB_R" sysctl -qw "net.ipv4.conf.$k.rp_filter=0" || return 1
	done
	attach_dev "$LAB_RA" "$LAB_R" --ingress >/dev/null
}

# lab_teardown: kill what the lab started, delete the namespaces, unmount.
lab_teardown() {
	local pid ns app_ns=()
	for pid in ${LAB_PIDS[@]+"${LAB_PIDS[@]}"}; do
		kill "$pid" 2>/dev/null || true
	done
	mapfile -t app_ns < <(_lab_app_all_ns)
	for ns in "${LAB_C:-}" "${LAB_R:-}" "${LAB_S:-}" "${LAB_A:-}" ${app_ns[@]+"${app_ns[@]}"}; do
		[[ -n $ns ]] || continue
		# Only processes inside our own namespaces: all started by the lab.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill "$pid" 2>/dev/null || true
		done
		ip netns del "$ns" 2>/dev/null || true
	done
	for pid in ${LAB_PIDS[@]+"${LAB_PIDS[@]}"}; do
		wait "$pid" 2>/dev/null || true
	done
	LAB_PIDS=()
	[[ -n ${LAB_DIR:-} ]] && rm -rf "$LAB_DIR"
	unset LAB_C LAB_R LAB_S LAB_A LAB_DIR LAB_APP
	bpffs_teardown
}

# _lab_bg NS LOG CMD...: run CMD in NS in the background (bounded by its own
# timeout), recording its pid for teardown. fd 3 is closed for bats.
_lab_bg() {
	local ns=$1 log=$2
	shift 2
	ip netns exec "$ns" "$@" >"$log" 2>&1 3>&- &
	LAB_PIDS+=($!)
}

# lab_start_servers [LIFE]: TCP and UDP echo servers on LAB_TCP_PORTS and
# LAB_UDP_PORTS in the server namespace (IPv4 and IPv6), for LIFE seconds
# (default 120); returns once they listen.
lab_start_servers() {
	local life=${1:-120} ready=$LAB_DIR/echo.ready
	_lab_bg "$LAB_S" "$LAB_DIR/echo.log" timeout -k 5 "$((life + 5))" \
		"$MSEG_PYTHON" "$MSEG_HELPERS/lab-echo.py" \
		--tcp "$(IFS=,; echo "${LAB_TCP_PORTS[*]}")" \
		--udp "$(IFS=,; echo "${LAB_UDP_PORTS[*]}")" \
		--ready "$ready" --life "$life"
	wait_until 50 test -e "$ready" || {
		echo "lab: echo server did not start:" >&2
		cat "$LAB_DIR/echo.log" >&2
		return 1
	}
}

# lab_exec CMD...: CMD in the client namespace.
lab_exec() { ip netns exec "$LAB_C" "$@"; }

# lab_ping ADDR [TIMEOUT]: one ICMP (v4) or ICMPv6 echo from the client.
lab_ping() {
	ip netns exec "$LAB_C" timeout -k 5 10 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" \
		ping "$1" 0 --timeout "${2:-2}"
}

# lab_tcp_connect ADDR PORT [TIMEOUT]: connect from the client and exchange
# one message with the echo server; status 0 only if the echo came back.
lab_tcp_connect() {
	ip netns exec "$LAB_C" timeout -k 5 10 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" \
		tcp "$1" "$2" --timeout "${3:-2}"
}

# lab_udp_exchange ADDR PORT [TIMEOUT]: one datagram there and back.
lab_udp_exchange() {
	ip netns exec "$LAB_C" timeout -k 5 10 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" \
		udp "$1" "$2" --timeout "${3:-2}"
}

# lab_conn_open NAME ADDR PORT: open a persistent TCP connection from the
# client and exchange a first message on it; fails unless that worked.
# Afterwards LAB_CONN_SPORT holds its source port.
lab_conn_open() {
	local name=$1 dir=$LAB_DIR/conn.$1
	mkdir -p "$dir"
	_lab_bg "$LAB_C" "$dir/log" timeout -k 5 65 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" \
		persist "$2" "$3" "$dir" --timeout 2 --life 60 --phases 8
	wait_until 50 test -e "$dir/res.0" || {
		echo "lab: connection $name did not open:" >&2
		cat "$dir/log" >&2
		return 1
	}
	LAB_CONN_SPORT=$(cat "$dir/sport")
	export LAB_CONN_SPORT
	echo 1 >"$dir/phase"
	[[ $(cat "$dir/res.0") == ok ]] || {
		echo "lab: first exchange on $name: $(cat "$dir/res.0")" >&2
		return 1
	}
}

# lab_conn_send NAME: one more exchange on the SAME connection; prints "ok" or
# "fail: why" and returns 0 only on "ok".
lab_conn_send() {
	local dir=$LAB_DIR/conn.$1 i res
	i=$(cat "$dir/phase")
	echo $((i + 1)) >"$dir/phase"
	touch "$dir/go.$i"
	wait_until 60 test -e "$dir/res.$i" || {
		echo "fail: no answer from the client (phase $i)"
		return 1
	}
	res=$(cat "$dir/res.$i")
	echo "$res"
	[[ $res == ok ]]
}

# --- the application lab ------------------------------------------------------
#
# A small application behind one router (issue 15: flows, the map, learned
# and staged policies): each host in its own namespace and /24, on its own
# veth to the router, whose ingress mseg filters (so every packet between
# two hosts is judged once, on its sender's side). IPv4 only, IPv6 off:
# nothing but the tests' own traffic and ARP crosses the links.
#
#   web1  10.78.1.2   web2  10.78.2.2   the web tier
#   db    10.78.3.2                     the db tier
#   stray 10.78.9.2                     a client of neither
#
# The router is LAB_R; every name derives from LAB_TAG (exported), so the
# tests of a suite whose setup_file built the lab find it too.

LAB_APP_HOSTS=(web1 web2 db stray)
declare -gA LAB_APP_ADDR=([web1]=10.78.1.2 [web2]=10.78.2.2 [db]=10.78.3.2 [stray]=10.78.9.2)

# lab_app_ns HOST: HOST's namespace.
lab_app_ns() { echo "mseg-$LAB_TAG-$1"; }

# lab_app_dev HOST: the router's veth to HOST (mseg filters its ingress).
lab_app_dev() {
	local i
	for i in "${!LAB_APP_HOSTS[@]}"; do
		[[ ${LAB_APP_HOSTS[i]} == "$1" ]] && { echo "mr${LAB_TAG}h$i"; return 0; }
	done
	echo "lab_app_dev: no host $1" >&2
	return 1
}

# _lab_app_all_ns: the application lab's namespaces, when there is one.
_lab_app_all_ns() {
	local h
	[[ -n ${LAB_APP:-} && -n ${LAB_TAG:-} ]] || return 0
	for h in "${LAB_APP_HOSTS[@]}"; do lab_app_ns "$h"; done
}

# lab_app_setup: build the application lab (and a private bpffs), mseg on
# the ingress of every router veth. Starts nothing (lab_app_serve).
lab_app_setup() {
	local tag h ns dev a
	tag=$(printf '%x%03x' $((BASHPID % 65536)) $((RANDOM % 4096)))
	LAB_TAG=$tag
	LAB_APP=1
	LAB_R=mseg-$tag-r
	LAB_DIR=$(mktemp -d /tmp/mseg-lab.XXXXXX)
	LAB_PIDS=()
	export LAB_TAG LAB_APP LAB_R LAB_DIR

	bpffs_setup
	ip netns add "$LAB_R" && _lab_app_quiet "$LAB_R" &&
		ip netns exec "$LAB_R" sysctl -qw net.ipv4.ip_forward=1 || return 1
	for h in "${LAB_APP_HOSTS[@]}"; do
		a=${LAB_APP_ADDR[$h]}
		ns=$(lab_app_ns "$h")
		dev=$(lab_app_dev "$h") || return 1
		ip netns add "$ns" && _lab_app_quiet "$ns" &&
			ip link add "${dev/#mr/mh}" netns "$ns" type veth peer name "$dev" netns "$LAB_R" &&
			ip -n "$ns" addr add "$a/24" dev "${dev/#mr/mh}" &&
			ip -n "$LAB_R" addr add "${a%.*}.1/24" dev "$dev" &&
			ip -n "$ns" link set "${dev/#mr/mh}" up &&
			ip -n "$LAB_R" link set "$dev" up &&
			ip -n "$ns" route add default via "${a%.*}.1" || return 1
	done
	for h in "${LAB_APP_HOSTS[@]}"; do
		attach_dev "$(lab_app_dev "$h")" "$LAB_R" --ingress >/dev/null || return 1
	done
	LAB_PROG_ID=$(prog_id "$(lab_app_dev web1)" "$LAB_R" ingress) || return 1
	export LAB_PROG_ID
}

# _lab_app_quiet NS: lo up, IPv6 off (no router solicitations, no MLD).
_lab_app_quiet() {
	ip -n "$1" link set lo up &&
		ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 &&
		ip netns exec "$1" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
}

# lab_app_serve HOST LIFE [--tcp P,...] [--udp P,...]: echo servers on HOST
# for LIFE seconds; returns once they listen.
lab_app_serve() {
	local h=$1 life=$2 ready=$LAB_DIR/echo.$1.ready
	shift 2
	_lab_bg "$(lab_app_ns "$h")" "$LAB_DIR/echo.$h.log" timeout -k 5 "$((life + 5))" \
		"$MSEG_PYTHON" "$MSEG_HELPERS/lab-echo.py" "$@" --ready "$ready" --life "$life"
	wait_until 50 test -e "$ready" || {
		echo "lab: echo server on $h did not start:" >&2
		cat "$LAB_DIR/echo.$h.log" >&2
		return 1
	}
}

# lab_app_exec HOST CMD...: CMD in HOST's namespace.
lab_app_exec() {
	local ns
	ns=$(lab_app_ns "$1")
	shift
	ip netns exec "$ns" "$@"
}

# lab_app_client HOST tcp|udp DST_HOST PORT [lab-client.py OPTION...]: one
# exchange from HOST with DST_HOST's echo server; status 0 only when the
# echo came back (options: --timeout S, --size N, ...).
lab_app_client() {
	local h=$1 mode=$2 dst=$3 port=$4
	shift 4
	lab_app_exec "$h" timeout -k 5 10 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" \
		"$mode" "${LAB_APP_ADDR[$dst]}" "$port" "$@"
}

# lab_app_syn_retrans HOST: the SYNs HOST's kernel has sent again so far
# (TcpExt TCPSynRetrans of its namespace), so a test knows how many SYNs
# a connection that got no answer really sent.
lab_app_syn_retrans() {
	# shellcheck disable=SC2016 # awk's fields
	lab_app_exec "$1" awk '
		$1 == "TcpExt:" && !n { for (i = 2; i <= NF; i++) name[i] = $i; n = 1; next }
		$1 == "TcpExt:" { for (i = 2; i <= NF; i++) if (name[i] == "TCPSynRetrans") print $i }
	' /proc/net/netstat
}
