#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Boot persistence (issue 4/6): mseg.service's ExecStart, ExecReload and
# ExecStop lines, read from the unit file and run as written (the machine
# does not run systemd as init) in the lab's router, with MSEG_ETC standing
# for /etc/mseg. A reboot is simulated by tearing down the namespaces and
# the bpffs and building them again. While the boot path runs, a prober in
# the client knocks on a port the saved policy denies as fast as it can:
# the classifier must never have allowed one of its packets (the boot path
# loads the policy before it attaches; attach-then-apply lets the knocks
# through under the empty table's default allow).

# shellcheck disable=SC2154,SC2153 # bats sets $output/$status; lab.bash sets LAB_*
bats_require_minimum_version 1.5.0

load helpers/common
load helpers/lab

UNIT=$MSEG_ROOT/exporters/systemd/mseg.service

setup() {
	require_build
	ETC=$BATS_TEST_TMPDIR/etc
	mkdir -p "$ETC"
}

teardown() {
	prober_stop
	[[ -n ${LAB_C:-} ]] && lab_teardown
	return 0
}

# unit_line KEY: the command of the unit's KEY= line, the installed mseg
# replaced by this tree's.
unit_line() {
	local line
	line=$(sed -n "s/^$1=//p" "$UNIT")
	[[ -n $line ]] || { echo "no $1= in $UNIT" >&2; return 1; }
	echo "${line/\/usr\/local\/sbin\/mseg/$MSEG_SCRIPTS/mseg}"
}

# unit_run KEY: run the unit's KEY= line in the router, as systemd would
# (its Environment= aside: TC_BPF_MNT is the lab's private bpffs).
unit_run() {
	local cmd
	cmd=$(unit_line "$1") || return 1
	# shellcheck disable=SC2086 # the unit's words, as systemd splits them
	ip netns exec "$LAB_R" env MSEG_ETC="$ETC" timeout -k 5 120 $cmd
}

# saved_policy: default deny; the client may reach the server's TCP 5002
# (IPv4 and IPv6); 5001 is denied by default.
saved_policy() {
	printf '%s\n' 'default deny' \
		"rule --src $LAB_C4 --dst $LAB_S4 --proto tcp --dport 5002 --action allow" \
		"rule --src $LAB_C6 --dst $LAB_S6 --proto tcp --dport 5002 --action allow" \
		>"$ETC/mseg.rules"
	printf '# the client side\ndevice %s both\n' "$LAB_RC" >"$ETC/mseg.conf"
}

# prober_start: knock on the server's TCP 5001 from the client every 20 ms
# (at most 3,000 knocks, 120 s) until prober_stop; each success is a line
# in $PROBE_OK.
prober_start() {
	PROBE_DIR=$BATS_TEST_TMPDIR/probe
	mkdir -p "$PROBE_DIR"
	PROBE_OK=$PROBE_DIR/ok
	rm -f "$PROBE_DIR/stop" "$PROBE_DIR/count"
	: >"$PROBE_OK"
	# shellcheck disable=SC2016 # the prober's own variables
	ip netns exec "$LAB_C" timeout -k 5 120 bash -c '
		for ((i = 0; i < 3000; i++)); do
			[[ -e $1/stop ]] && break
			timeout -k 1 0.3 bash -c "exec 3<>/dev/tcp/$2/5001" 2>/dev/null && echo ok >>"$1/ok"
			echo "$i" >"$1/count.new" && mv "$1/count.new" "$1/count"
			sleep 0.02
		done' _ "$PROBE_DIR" "$LAB_S4" 3>&- &
	PROBE_PID=$!
	wait_until 50 test -s "$PROBE_DIR/count"
}

# knocks: how many the prober has made so far.
knocks() { cat "$PROBE_DIR/count"; }

# knocks_since N K: the prober has made K more knocks than N.
knocks_since() { (($(knocks) >= $1 + $2)); }

prober_stop() {
	[[ -n ${PROBE_PID:-} ]] || return 0
	touch "$PROBE_DIR/stop"
	wait "$PROBE_PID" 2>/dev/null || true
	PROBE_PID=
}

# boot_under_probe: the boot path with the prober knocking before, during
# and after it; the knocks before it reach the listener (nothing filters
# yet), every one the classifier judged was denied.
boot_under_probe() {
	local knocks_before
	prober_start
	wait_until 100 test -s "$PROBE_OK" || { echo "the prober never got through the unfiltered lab" >&2; return 1; }
	unit_run ExecStart
	knocks_before=$(knocks)
	wait_until 100 knocks_since "$knocks_before" 10
	prober_stop
	# An allowed knock would have opened a session (a denied one opens none).
	[ "$(stat_get new_session)" = 0 ] || {
		echo "the classifier opened $(stat_get new_session) sessions under the saved default deny:" >&2
		mseg sessions >&2
		stats_json >&2
		false
	}
	(($(stat_get denied) > 0)) || { echo "the classifier never judged a knock" >&2; false; }
}

@test "boot: the saved policy holds from the first packet a device sees, and again after a reboot" {
	lab_setup --no-filter
	lab_start_servers 300
	saved_policy
	boot_under_probe
	run -0 ip netns exec "$LAB_R" "$MSEG_SCRIPTS/mseg" status --json
	[ "$(jq -r '[.attached[].dev] | join(",")' <<<"$output")" = "$LAB_RC" ]
	# the placeholder the maps were created on is gone
	ip -n "$LAB_R" -o link show | { ! grep -q msegboot; }
	lab_tcp_connect "$LAB_S4" 5002
	lab_tcp_connect "$LAB_S6" 5002
	run ! lab_tcp_connect "$LAB_S4" 5001 1
	run ! lab_tcp_connect "$LAB_S6" 5003 1

	# Reboot: namespaces, devices, bpffs and pins gone; the same files boot it.
	lab_teardown
	lab_setup --no-filter
	lab_start_servers 300
	saved_policy
	[ ! -e "$(pin mseg_config)" ]
	boot_under_probe
	lab_tcp_connect "$LAB_S4" 5002
	run ! lab_tcp_connect "$LAB_S4" 5001 1
}

@test "boot: reload re-applies the edited policy and attaches added devices; stop detaches and keeps the maps" {
	lab_setup --no-filter
	lab_start_servers 300
	saved_policy
	unit_run ExecStart
	lab_tcp_connect "$LAB_S4" 5002
	run ! lab_tcp_connect "$LAB_S4" 5003 1
	# the operator allows 5003 too and adds the server-side device
	echo "rule --src $LAB_C4 --dst $LAB_S4 --proto tcp --dport 5003 --action allow" >>"$ETC/mseg.rules"
	echo "device $LAB_RS ingress" >>"$ETC/mseg.conf"
	unit_run ExecReload
	lab_tcp_connect "$LAB_S4" 5003
	lab_tcp_connect "$LAB_S4" 5002
	run -0 ip netns exec "$LAB_R" "$MSEG_SCRIPTS/mseg" status --json
	[ "$(jq -c '[.attached[] | [.dev, .ingress, .egress]] | sort' <<<"$output")" = \
		"$(jq -cn --arg c "$LAB_RC" --arg s "$LAB_RS" '[[$c, true, true], [$s, true, false]] | sort')" ]
	# ExecReload twice changes nothing
	local before
	before=$(mseg save)
	unit_run ExecReload
	[ "$(mseg save)" = "$before" ]

	unit_run ExecStop
	[ -z "$(prog_id "$LAB_RC" "$LAB_R" ingress)" ]
	[ -z "$(prog_id "$LAB_RS" "$LAB_R" ingress)" ]
	test -e "$(pin mseg_config)"
	[ "$(mseg save)" = "$before" ]
	# nothing filters now: 5001 passes
	lab_tcp_connect "$LAB_S4" 5001
	# stop again: nothing attached, nothing to do, no error
	unit_run ExecStop
	unit_run ExecStart
	run ! lab_tcp_connect "$LAB_S4" 5001 1
}

@test "boot: a missing or bad config or ruleset changes nothing" {
	lab_setup --no-filter
	saved_policy
	local good_rules good_conf
	good_rules=$(cat "$ETC/mseg.rules")
	good_conf=$(cat "$ETC/mseg.conf")

	# Nothing pinned yet: a failed first boot leaves nothing behind.
	rm "$ETC/mseg.rules"
	run -1 unit_run ExecStart
	[[ $output == *"no saved policy at $ETC/mseg.rules"* ]]
	echo 'rule --src 10.0.0.1 --dst nowhere --action allow' >"$ETC/mseg.rules"
	run -1 unit_run ExecStart
	[[ $output == *"not a valid ruleset: nothing changed"* ]]
	[ ! -e "$(pin mseg_config)" ]
	[ -z "$(prog_id "$LAB_RC" "$LAB_R" ingress)" ]

	local bad
	for bad in 'interface eth0' "device $LAB_RC sideways" 'device' "device $LAB_RC both extra" 'device a/b'; do
		printf '%s\n' "$good_rules" >"$ETC/mseg.rules"
		printf '# a comment\n%s\n' "$bad" >"$ETC/mseg.conf"
		run -1 unit_run ExecStart
		[[ $output == *"mseg.conf:2: "* ]] || { echo "for '$bad': $output" >&2; false; }
	done
	: >"$ETC/mseg.conf"
	run -1 unit_run ExecStart
	[[ $output == *"names no device"* ]]
	[ ! -e "$(pin mseg_config)" ]
	ip netns exec "$LAB_R" ip -o link show | { ! grep -q msegboot; }

	# Booted, then a broken edit: reload refuses it, the policy in force stays.
	printf '%s\n' "$good_conf" >"$ETC/mseg.conf"
	unit_run ExecStart
	local before
	before=$(mseg save)
	echo 'rule --src 10.0.0.1 --action maybe' >>"$ETC/mseg.rules"
	run -1 unit_run ExecReload
	[ "$(mseg save)" = "$before" ]

	# A device that never appears is named; the others are attached.
	printf '%s\n' "$good_rules" >"$ETC/mseg.rules"
	printf 'device %s\ndevice msegnone%s\n' "$LAB_RC" "$LAB_TAG" >"$ETC/mseg.conf"
	run -1 ip netns exec "$LAB_R" env MSEG_ETC="$ETC" "$MSEG_SCRIPTS/mseg" boot --wait 0
	[[ $output == *"no such device after 0 s: msegnone$LAB_TAG"* ]]
	[ -n "$(prog_id "$LAB_RC" "$LAB_R" ingress)" ]
}

@test "boot: --help, bad arguments" {
	run -0 mseg boot --help
	[[ $output == "usage: mseg boot "* ]]
	run -2 mseg boot --frobnicate
	run -2 mseg boot --wait soon
	run -2 mseg boot --config
}
