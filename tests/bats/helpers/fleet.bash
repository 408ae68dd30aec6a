# shellcheck shell=bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The lab fleet: N "hosts" (4 by default) that Ansible reaches over SSH from
# the root namespace, for the deployment tests and bench/fleet.sh.
#
#   controller ns  FLEET_CTL  10.79.0.1     Prometheus; the SSH hop
#   switch ns      a bridge every host and the controller hang on
#   host i         netns $(fleet_ns i), 10.79.0.(10+i) on its eth0, with
#                  - its own sshd (Debian's openssh-server) listening on that
#                    address only, its own host key, key-only root login with
#                    a throwaway key (FLEET_DIR/id_ed25519)
#                  - its own root: /usr, /etc and /var are overlays of the
#                    machine's whose changes stay in the host's mount
#                    namespace (helpers/fleet-host.sh), so the package is
#                    installed by apt-get into each host on its own, with its
#                    own dpkg database, /etc/mseg and textfile directory
#                  - its own bpffs on /sys/fs/bpf (FLEET_DIR/hI/bpffs, also
#                    visible from here as TC_BPF_MNT for fleet_pins)
#                  - node_exporter on :9100 (textfile collector only) and the
#                    lab's echo servers on TCP/UDP 5001-5003
#
# Ansible runs in the root namespace; its ssh reaches a host through a
# ProxyCommand that opens the TCP connection from the controller namespace
# (`ip netns exec CTL nc HOST 22`), so SSH really crosses the host's eth0
# and the mseg attached there, and the root namespace gets no interface.
#
# What the overlays do not separate: /tmp, /root, /home and the kernel are
# the machine's. So a host's processes can see other hosts' files under
# /tmp; nothing of mseg lives there. Overlays show the machine's /usr as it
# is when read, so a real-root install of mseg (deb.bats) must not run
# meanwhile: fleet_setup holds the real-root lock shared, deb.bats takes it
# exclusively (helpers/deb.bash).
#
# Names carry a per-run tag; everything runs under timeout and is removed
# by fleet_teardown, which is safe after a partial setup.
#
# Requires common.bash and deb.bash.

FLEET_NET=10.79.0
FLEET_CTL_ADDR=$FLEET_NET.1
FLEET_PORTS=(5001 5002 5003)

# fleet_addr I: host I's address.
fleet_addr() { echo "$FLEET_NET.$((10 + $1))"; }

# fleet_ns I: host I's network namespace (a function, not an array: bats
# tests see setup_file's exported variables only).
fleet_ns() { echo "mseg-$FLEET_TAG-h$1"; }

# fleet_setup [N] [LIFE]: N hosts (default 4) for at most LIFE seconds
# (default 900). Sets FLEET_DIR, FLEET_N, FLEET_CTL, FLEET_TAG,
# FLEET_INVENTORY, FLEET_SSH_CONFIG (exported).
fleet_setup() {
	local n=${1:-4} life=${2:-900} tag i
	need sshd test -x /usr/sbin/sshd || return 1
	need nc command -v nc || return 1
	need node_exporter command -v prometheus-node-exporter || return 1
	tag=$(printf '%x%03x' $((BASHPID % 65536)) $((RANDOM % 4096)))
	FLEET_TAG=$tag
	FLEET_N=$n
	FLEET_LIFE=$life
	FLEET_DIR=$(mktemp -d /tmp/mseg-fleet.XXXXXX)
	FLEET_CTL=mseg-$tag-ctl
	FLEET_SW=mseg-$tag-sw
	FLEET_PIDS=()
	export FLEET_TAG FLEET_N FLEET_LIFE FLEET_DIR FLEET_CTL FLEET_SW
	realroot_lock -s || return 1

	_fleet_switch || return 1
	ssh-keygen -q -t ed25519 -N '' -C mseg-fleet -f "$FLEET_DIR/id_ed25519" || return 1
	cp "$FLEET_DIR/id_ed25519.pub" "$FLEET_DIR/authorized_keys"
	: >"$FLEET_DIR/known_hosts"
	for ((i = 1; i <= n; i++)); do
		_fleet_host "$i" || return 1
	done
	_fleet_ssh_config
	_fleet_inventory
	for ((i = 1; i <= n; i++)); do
		_fleet_wait_host "$i" || return 1
	done
}

# _fleet_switch: the switch (a bridge in its own netns) and the controller.
_fleet_switch() {
	ip netns add "$FLEET_SW" && ip netns add "$FLEET_CTL" || return 1
	ip -n "$FLEET_SW" link set lo up
	ip -n "$FLEET_CTL" link set lo up
	ip -n "$FLEET_SW" link add br0 type bridge &&
		ip -n "$FLEET_SW" link set br0 up &&
		ip link add eth0 netns "$FLEET_CTL" type veth peer name ctl netns "$FLEET_SW" &&
		ip -n "$FLEET_SW" link set ctl master br0 up &&
		ip netns exec "$FLEET_CTL" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 &&
		ip -n "$FLEET_CTL" addr add "$FLEET_CTL_ADDR/24" dev eth0 &&
		ip -n "$FLEET_CTL" link set eth0 up
}

# _fleet_host I: host I's namespace, link, files and processes.
_fleet_host() {
	local i=$1 ns dir=$FLEET_DIR/h$1 addr
	addr=$(fleet_addr "$i")
	ns=$(fleet_ns "$i")
	mkdir -p "$dir/bpffs"
	ip netns add "$ns" || return 1
	ip -n "$ns" link set lo up
	ip link add eth0 netns "$ns" type veth peer name "h$i" netns "$FLEET_SW" &&
		ip -n "$FLEET_SW" link set "h$i" master br0 up &&
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 &&
		ip -n "$ns" addr add "$addr/24" dev eth0 &&
		ip -n "$ns" link set eth0 up || return 1
	mount -t bpf bpf "$dir/bpffs" || return 1

	ssh-keygen -q -t ed25519 -N '' -C "mseg-fleet-h$i" -f "$dir/ssh_host_ed25519_key" || return 1
	echo "$addr $(cat "$dir/ssh_host_ed25519_key.pub")" >>"$FLEET_DIR/known_hosts"
	cat >"$dir/sshd_config" <<-EOF
		ListenAddress $addr:22
		HostKey $dir/ssh_host_ed25519_key
		PidFile none
		PermitRootLogin prohibit-password
		PubkeyAuthentication yes
		AuthorizedKeysFile $FLEET_DIR/authorized_keys
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		StrictModes no
		MaxStartups 40:30:80
		MaxSessions 40
		Subsystem sftp /usr/lib/openssh/sftp-server
		LogLevel ERROR
	EOF
	ip netns exec "$ns" unshare --mount --propagation private -- \
		timeout -k 5 "$FLEET_LIFE" bash "$MSEG_HELPERS/fleet-host.sh" "$dir" \
		>"$dir/host.log" 2>&1 3>&- &
	FLEET_PIDS+=($!)
}

# fleet_pid I: the pid of host I's sshd, its "init" (nsenter's target).
fleet_pid() { cat "$FLEET_DIR/h$1/init.pid"; }

# fleet_exec I CMD...: CMD on host I, in its network and mount namespaces
# (what a shell there would see), without going through SSH.
fleet_exec() {
	local i=$1
	shift
	nsenter -t "$(fleet_pid "$i")" -m -n -- "$@"
}

# _fleet_bg I LOG CMD...: CMD in the background on host I, recorded.
_fleet_bg() {
	local i=$1 log=$2
	shift 2
	fleet_exec "$i" "$@" >"$log" 2>&1 3>&- &
	FLEET_PIDS+=($!)
}

# _fleet_wait_host I: host I's sshd answers; then its node_exporter and
# echo servers are started and answer too.
_fleet_wait_host() {
	local i=$1 dir=$FLEET_DIR/h$1 addr
	addr=$(fleet_addr "$i")
	wait_until 100 test -s "$dir/init.pid" || {
		echo "fleet: host $i did not start:" >&2
		cat "$dir/host.log" >&2
		return 1
	}
	wait_until 100 fleet_ssh "$i" true || {
		echo "fleet: no SSH to host $i:" >&2
		cat "$dir/host.log" >&2
		return 1
	}
	_fleet_bg "$i" "$dir/node-exporter.log" timeout -k 5 "$FLEET_LIFE" \
		prometheus-node-exporter --web.listen-address="$addr:9100" \
		--collector.disable-defaults --collector.textfile \
		--collector.textfile.directory=/var/lib/prometheus/node-exporter
	_fleet_bg "$i" "$dir/echo.log" timeout -k 5 "$FLEET_LIFE" \
		"$MSEG_PYTHON" "$MSEG_HELPERS/lab-echo.py" \
		--tcp "$(IFS=,; echo "${FLEET_PORTS[*]}")" --udp "$(IFS=,; echo "${FLEET_PORTS[*]}")" \
		--ready "$dir/echo.ready" --life "$FLEET_LIFE"
	if ! wait_until 100 fleet_exec "$i" curl -sf -o /dev/null "http://$addr:9100/metrics" ||
		! wait_until 100 test -e "$dir/echo.ready"; then
		echo "fleet: host $i's node_exporter or echo servers did not start:" >&2
		cat "$dir/node-exporter.log" "$dir/echo.log" >&2
		return 1
	fi
}

# _fleet_ssh_config: how ssh (and so Ansible) reaches the hosts.
_fleet_ssh_config() {
	FLEET_SSH_CONFIG=$FLEET_DIR/ssh_config
	export FLEET_SSH_CONFIG
	cat >"$FLEET_SSH_CONFIG" <<-EOF
		Host $FLEET_NET.*
		  User root
		  IdentityFile $FLEET_DIR/id_ed25519
		  IdentitiesOnly yes
		  UserKnownHostsFile $FLEET_DIR/known_hosts
		  GlobalKnownHostsFile /dev/null
		  StrictHostKeyChecking yes
		  BatchMode yes
		  ConnectTimeout 10
		  ServerAliveInterval 5
		  ServerAliveCountMax 3
		  ProxyCommand ip netns exec $FLEET_CTL nc -w 10 %h %p
	EOF
}

# fleet_ssh I CMD...: CMD on host I over SSH (a new connection each time).
fleet_ssh() {
	local i=$1
	shift
	timeout -k 5 30 ssh -F "$FLEET_SSH_CONFIG" "$(fleet_addr "$i")" "$@" </dev/null
}

# _fleet_inventory: an Ansible inventory of the hosts, h1..hN in group
# mseg, odd ones also in web, even ones in db (the tests' policy uses
# both), with the ssh settings above.
_fleet_inventory() {
	local i g
	FLEET_INVENTORY=$FLEET_DIR/inventory/hosts.yml
	export FLEET_INVENTORY
	mkdir -p "$FLEET_DIR/inventory/group_vars"
	{
		echo "all:"
		echo "  vars:"
		echo "    ansible_ssh_common_args: -F $FLEET_SSH_CONFIG"
		echo "    ansible_python_interpreter: /usr/bin/python3"
		echo "  children:"
		echo "    mseg:"
		echo "      hosts:"
		for ((i = 1; i <= FLEET_N; i++)); do
			echo "        h$i: {ansible_host: $(fleet_addr "$i"), mseg_address: $(fleet_addr "$i")}"
		done
		for g in web db; do
			echo "    $g:"
			echo "      hosts:"
			for ((i = 1; i <= FLEET_N; i++)); do
				if [[ $g == web && $((i % 2)) == 1 || $g == db && $((i % 2)) == 0 ]]; then
					echo "        h$i:"
				fi
			done
		done
	} >"$FLEET_INVENTORY"
}

# fleet_tcp I ADDR PORT [TIMEOUT]: from host I, connect to ADDR:PORT and
# exchange one message with the echo server there; 0 only if it came back.
fleet_tcp() {
	ip netns exec "$(fleet_ns "$1")" timeout -k 5 10 "$MSEG_PYTHON" "$MSEG_HELPERS/lab-client.py" \
		tcp "$2" "$3" --timeout "${4:-2}"
}

# fleet_pins I: host I's bpffs, as TC_BPF_MNT for the source tree's tools.
fleet_pins() { echo "$FLEET_DIR/h$1/bpffs"; }

# fleet_teardown: stop every process, delete the namespaces, unmount.
fleet_teardown() {
	local pid ns i nss=()
	[[ -n ${FLEET_DIR:-} ]] || return 0
	for ((i = 1; i <= ${FLEET_N:-0}; i++)); do
		nss+=("$(fleet_ns "$i")")
	done
	nss+=("${FLEET_CTL:-}" "${FLEET_SW:-}")
	for pid in ${FLEET_PIDS[@]+"${FLEET_PIDS[@]}"}; do
		kill "$pid" 2>/dev/null || true
	done
	for ns in "${nss[@]}"; do
		[[ -n $ns ]] || continue
		# Only processes inside our own namespaces: all started by the fleet.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill "$pid" 2>/dev/null || true
		done
	done
	for pid in ${FLEET_PIDS[@]+"${FLEET_PIDS[@]}"}; do
		wait "$pid" 2>/dev/null || true
	done
	for ns in "${nss[@]}"; do
		[[ -n $ns ]] && ip netns del "$ns" 2>/dev/null
	done
	for ((i = 1; i <= ${FLEET_N:-0}; i++)); do
		if mountpoint -q "$FLEET_DIR/h$i/bpffs"; then
			umount "$FLEET_DIR/h$i/bpffs" 2>/dev/null || umount -l "$FLEET_DIR/h$i/bpffs"
		fi
	done
	rm -rf "$FLEET_DIR"
	FLEET_PIDS=()
	unset FLEET_DIR FLEET_CTL FLEET_SW
	realroot_unlock
}
