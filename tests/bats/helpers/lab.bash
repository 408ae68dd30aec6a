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

# lab_teardown: kill what the lab started, delete the namespaces, unmount.
lab_teardown() {
	local pid ns
	for pid in ${LAB_PIDS[@]+"${LAB_PIDS[@]}"}; do
		kill "$pid" 2>/dev/null || true
	done
	for ns in "${LAB_C:-}" "${LAB_R:-}" "${LAB_S:-}"; do
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
	unset LAB_C LAB_R LAB_S LAB_DIR
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
