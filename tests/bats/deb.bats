#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The Debian package (issue 7/7): `make deb` builds mseg_VERSION_ARCH.deb from
# `make install`, lintian has nothing to say that is not overridden with a
# reason, and the package installs with `apt-get install ./mseg_*.deb` into
# this machine's real root, works there (the installed mseg attaches, applies
# a policy, and real traffic through the lab is judged by it), survives its
# own removal (the data path keeps filtering) and purges cleanly: its filters
# and pins gone, and no file left that was not there before.
#
# The install touches the real root, so it holds the real-root lock
# exclusively (no lab fleet is up meanwhile: their hosts' roots are overlays
# of this one) and refuses to run where mseg is installed already.

# shellcheck disable=SC2154,SC2153 # bats sets $output/$status; lab.bash sets LAB_*
bats_require_minimum_version 1.5.0

load helpers/common
load helpers/lab
load helpers/deb

setup_file() {
	realroot_lock -x
}

teardown_file() {
	realroot_unlock
}

setup() {
	require_build
	need lintian command -v lintian
	need apt-get command -v apt-get
}

teardown() {
	if [[ -n ${DEB_INSTALLED:-} ]] && dpkg-query -W mseg >/dev/null 2>&1; then
		DEBIAN_FRONTEND=noninteractive timeout -k 5 120 apt-get purge -y -qq mseg >/dev/null 2>&1 || true
	fi
	[[ -n ${LAB_C:-} ]] && lab_teardown
	return 0
}

@test "make deb: a well-formed package of what make install installs; lintian finds nothing unexplained" {
	local deb list
	deb=$(deb_build)
	[[ ${deb##*/} =~ ^mseg_[0-9][A-Za-z0-9.+~-]*_$(dpkg --print-architecture)\.deb$ ]]
	dpkg-deb --info "$deb" >/dev/null
	# Exactly the files make install installs (PREFIX=/usr), plus the
	# documentation Debian asks for.
	list=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
	local want=(/usr/sbin/mseg /usr/lib/mseg/build/mseg.bpf.o /usr/lib/mseg/build/mseg-textfile
		/usr/lib/mseg/build/mseg-ruleset /usr/lib/mseg/scripts/mseg-apply /usr/lib/mseg/lib/sh/mseg-common.sh
		/lib/systemd/system/mseg-textfile.service /lib/systemd/system/mseg-gc.service
		/usr/lib/mseg/exporters/grafana/mseg.json /usr/lib/mseg/exporters/prometheus/mseg-rules.yml
		/usr/share/doc/mseg/copyright /usr/share/doc/mseg/changelog.gz)
	local f
	for f in "${want[@]}"; do
		grep -qx -- "$f" <<<"$list" || { echo "not in the package: $f" >&2; false; }
	done
	# Every file of a fresh install tree is in the package.
	local tree=$BATS_TEST_TMPDIR/tree
	make -s -C "$MSEG_ROOT" install DESTDIR="$tree" PREFIX=/usr UNIT_DIR=/lib/systemd/system >/dev/null
	# (the package compresses man pages, as Debian policy asks)
	while IFS= read -r f; do
		[[ $f == /usr/share/man/* ]] && f=$f.gz
		grep -qx -- "$f" <<<"$list" || { echo "installed but not packaged: $f" >&2; false; }
	done < <(cd "$tree" && find . ! -type d | sed 's|^\.||')
	# The units name the installed programs; the BPF object kept its BTF.
	dpkg-deb -x "$deb" "$BATS_TEST_TMPDIR/x"
	grep -qx 'ExecStart=/usr/lib/mseg/build/mseg-textfile --interval 15' \
		"$BATS_TEST_TMPDIR/x/lib/systemd/system/mseg-textfile.service"
	grep -qx 'ExecStart=/usr/sbin/mseg gc --interval 1' \
		"$BATS_TEST_TMPDIR/x/lib/systemd/system/mseg-gc.service"
	bpftool btf dump file "$BATS_TEST_TMPDIR/x/usr/lib/mseg/build/mseg.bpf.o" | grep -q 'STRUCT .mseg_config.'
	# Depends on Debian's tools and the libraries the helpers link.
	run dpkg-deb -f "$deb" Depends
	for f in iproute2 bpftool jq libbpf1 libc6; do
		[[ $output =~ (^|, )$f( |,|$) ]] || { echo "Depends lacks $f: $output" >&2; false; }
	done
	# lintian: every tag left is overridden in deploy/debian/lintian-overrides.
	run timeout -k 5 300 lintian --pedantic --fail-on error,warning,info,pedantic "$deb"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	run ! grep -qE '^[EWIP]: ' <<<"$output"
}

# tree_list: every path under the directories a package may write to, less
# the package manager's own bookkeeping, which any install changes.
tree_list() {
	find /etc /usr /var/lib /var/cache /opt /srv -xdev \
		\( -path /var/lib/dpkg/status -o -path /var/lib/dpkg/status-old \
		-o -path /var/lib/dpkg/lock -o -path /var/lib/dpkg/lock-frontend -o -path /var/lib/dpkg/triggers \
		-o -path /var/lib/dpkg/available -o -path /var/lib/dpkg/available-old -o -path /var/lib/dpkg/diversions-old \
		-o -path /var/lib/dpkg/statoverride-old -o -path /var/lib/apt/extended_states \
		-o -path /var/cache/apt -o -path /var/cache/debconf -o -path /var/cache/man -o -path /var/lib/apt/lists \) -prune \
		-o -print 2>/dev/null | LC_ALL=C sort
}

# not_others PATHS...: the paths no other installed package owns (another
# engineer may install a Debian package on this machine meanwhile).
not_others() {
	local p
	for p in "$@"; do
		dpkg -S "$p" >/dev/null 2>&1 || printf '%s\n' "$p"
	done
}

@test "apt-get install ./mseg_*.deb into the real root: works on real traffic, survives remove, purges without a trace" {
	local deb before after added left gone
	deb=$(deb_build)
	if dpkg-query -W -f='${Status}' mseg 2>/dev/null | grep -q installed; then
		echo "mseg is installed on this machine already: this test will not touch it" >&2
		false
	fi
	before=$(tree_list)
	DEB_INSTALLED=1
	DEBIAN_FRONTEND=noninteractive timeout -k 5 300 apt-get install -y -qq --no-install-recommends "$deb" >/dev/null
	[ "$(dpkg-query -W -f='${Status}' mseg)" = "install ok installed" ]
	test -L /usr/sbin/mseg
	test -f /lib/systemd/system/mseg-textfile.service
	test -d /etc/mseg
	# Installed, not enabled: no unit of ours is wanted by any target.
	[ -z "$(find /etc/systemd/system -name 'mseg-*')" ]
	installed_mseg "" --help | grep -q '^usage: mseg COMMAND'

	# The installed commands, on a lab router, judge real traffic.
	lab_setup --no-filter
	lab_start_servers 120
	installed_mseg "$LAB_R" attach "$LAB_RC" --both
	run installed_mseg "$LAB_R" status --json
	[ "$status" -eq 0 ]
	jq -e '.attached | length == 1' <<<"$output"
	printf '%s\n' 'default deny' \
		"rule --src $LAB_C4 --dst $LAB_S4 --proto tcp --dport ${LAB_TCP_PORTS[0]} --action allow" \
		>"$BATS_TEST_TMPDIR/policy"
	installed_mseg "$LAB_R" apply "$BATS_TEST_TMPDIR/policy"
	lab_tcp_connect "$LAB_S4" "${LAB_TCP_PORTS[0]}"
	run ! lab_tcp_connect "$LAB_S4" "${LAB_TCP_PORTS[1]}" 1
	run ! lab_udp_exchange "$LAB_S4" "${LAB_UDP_PORTS[0]}" 1
	installed_mseg "$LAB_R" save | grep -qx 'default deny'
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TC_BPF_MNT="$TC_BPF_MNT" \
		/usr/lib/mseg/build/mseg-textfile --dir "$BATS_TEST_TMPDIR"
	grep -q '^mseg_packets_total{action="denied"} [1-9]' "$BATS_TEST_TMPDIR/mseg.prom"

	# remove: the tools go, the filter and the pinned maps stay and still judge.
	ip netns exec "$LAB_R" env DEBIAN_FRONTEND=noninteractive TC_BPF_MNT="$TC_BPF_MNT" \
		timeout -k 5 120 apt-get remove -y -qq mseg >/dev/null
	test ! -e /usr/sbin/mseg
	test ! -e /usr/lib/mseg/build/mseg.bpf.o
	[[ $(dpkg-query -W -f='${Status}' mseg) == "deinstall ok config-files" ]]
	test -e "$(pin mseg_config)"
	prog_id "$LAB_RC" "$LAB_R" ingress >/dev/null
	lab_tcp_connect "$LAB_S4" "${LAB_TCP_PORTS[0]}"
	run ! lab_tcp_connect "$LAB_S4" "${LAB_TCP_PORTS[1]}" 1

	# purge (in the router's namespace, where the filter is): filters, pins
	# and the package's directories go; traffic flows unfiltered again.
	ip netns exec "$LAB_R" env DEBIAN_FRONTEND=noninteractive TC_BPF_MNT="$TC_BPF_MNT" \
		timeout -k 5 120 apt-get purge -y -qq mseg >/dev/null
	# shellcheck disable=SC2016 # a dpkg-query format
	run ! dpkg-query -W -f='${Status}' mseg
	[[ $output != *installed* ]]
	[ -z "$(ip netns exec "$LAB_R" tc -j filter show dev "$LAB_RC" ingress | jq '.[]')" ]
	[ -z "$(ip netns exec "$LAB_R" tc -j filter show dev "$LAB_RC" egress | jq '.[]')" ]
	[ -z "$(find "$TC_BPF_MNT" -name 'mseg_*')" ]
	lab_tcp_connect "$LAB_S4" "${LAB_TCP_PORTS[1]}"
	test ! -e /etc/mseg
	DEB_INSTALLED=

	# Nothing left behind, nothing of the machine's taken away.
	after=$(tree_list)
	mapfile -t added < <(comm -13 <(echo "$before") <(echo "$after"))
	left=$(not_others ${added[@]+"${added[@]}"})
	[ -z "$left" ] || { echo "left behind: $left" >&2; false; }
	gone=$(comm -23 <(echo "$before") <(echo "$after"))
	[ -z "$gone" ] || { echo "removed: $gone" >&2; false; }
	run grep -i mseg <<<"$after"
	[ -z "$output" ] || { echo "left behind: $output" >&2; false; }
}
