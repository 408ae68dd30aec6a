#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# One policy across a fleet (issue 7/7), on the lab fleet (helpers/fleet.bash:
# four hosts, each a network namespace with its own sshd, root, bpffs and
# node_exporter, reached by Ansible over SSH from the root namespace).
#
#   1. deploy/ansible/site.yml installs the package on every host (apt, into
#      each host's own root), attaches mseg to each host's eth0 and rolls the
#      lab's policy out in stages; real TCP between the hosts is then let
#      through and refused as the policy says.
#   2. The real Prometheus, configured by deploy/prometheus/prometheus.yml,
#      scrapes all four node_exporters from the target list the role wrote;
#      one host changed by hand (h4) makes the MsegPolicyDrift expression
#      true for that host alone, and the rule goes pending in Prometheus.
#   3. A policy that breaks the canary's health probe stops at the canary:
#      the canary is back on the previous policy (the role's `mseg confirm
#      --rollback`), the other hosts never applied anything (their policy
#      generation did not move).
#   4. A policy that cuts the canary's SSH: the role loses the host in the
#      middle of `mseg apply --confirm` and stops; nobody confirms, so the
#      host puts its previous policy back by itself and SSH answers again.
#   5. The fleet's policy rolled out again repairs h4's drift and changes
#      nothing anywhere else; the drift expression is empty again.
#
# The tests share one fleet, in this order. On this 2-core machine with other
# engineers' suites running the file takes 5 min at load average 8 (first
# rollout 155 s: 3 stages one after the other; canary stop 34 s; repair
# 41 s) and up to 10 min at load 15-18; each test prints its rollout times
# as TAP comments.

# shellcheck disable=SC2154 # bats sets $output/$status
# shellcheck disable=SC2119,SC2120 # rollout's arguments come through `run`
bats_require_minimum_version 1.5.0

load helpers/common
load helpers/deb
load helpers/fleet

ANSIBLE_DIR=$MSEG_ROOT/deploy/ansible

# This file's tests wait on Ansible, and a first rollout (apt-get install on
# four hosts) took 175 s alone, 400-540 s beside the other suites on a CI
# machine: tests/run's 600 s per test is too tight for them. bats reads the
# bound after sourcing the file, so this one is the file's own.
# shellcheck disable=SC2034 # read by bats-exec-test
BATS_TEST_TIMEOUT=1500

setup_file() {
	require_build
	need ansible-playbook command -v ansible-playbook
	need prometheus command -v prometheus
	local t0=$SECONDS
	DEB=$(deb_build)
	export DEB
	echo "# deb: $((SECONDS - t0)) s" >&3
	# the hosts' lifetime bound covers the whole file: beside the other
	# suites its rollouts took 539+151+111+284 s and the hosts' sshd, killed
	# at 900 s, once closed the last test's connections (teardown stops them
	# all)
	fleet_setup 4 3600
	echo "# fleet: $((SECONDS - t0)) s" >&3
	lab_policy
}

teardown_file() {
	fleet_teardown
}

setup() {
	need "the fleet came up" test -n "${FLEET_DIR:-}"
}

# lab_policy: the lab's inventory variables: hosts h1, h3 are web, h2, h4
# db; web may reach db on 5001, db may reach web on 5003, the controller
# may reach SSH and node_exporter, nothing else; each host's health probe
# is its way to the other group.
lab_policy() {
	local gv=$FLEET_DIR/inventory/group_vars
	mkdir -p "$FLEET_DIR/prometheus"
	cat >"$gv/all.yml" <<-EOF
		mseg_deb: $DEB
		mseg_manage_units: false
		mseg_prometheus_file_sd: $FLEET_DIR/prometheus/targets.json
		mseg_policy:
		  default: deny
		  segments:
		    mgmt: {prefixes: [$FLEET_CTL_ADDR/32]}
		    fleet: {groups: [mseg]}
		    web: {groups: [web]}
		    db: {groups: [db]}
		  rules:
		    - {from: mgmt, to: fleet, proto: tcp, port: 22, action: allow}
		    - {from: mgmt, to: fleet, proto: tcp, port: 9100, action: allow}
		    - {from: web, to: db, proto: tcp, port: 5001, action: allow}
		    - {from: db, to: web, proto: tcp, port: 5003, action: allow}
	EOF
	echo 'mseg_health_probes: [{to: h2, port: 5001}]' >"$gv/web.yml"
	echo 'mseg_health_probes: [{to: h1, port: 5003}]' >"$gv/db.yml"
	# The policy that cuts SSH: the management rule for port 22 is gone,
	# and so are the failsafes that would keep port 22 open without it.
	cat >"$FLEET_DIR/no-ssh.yml" <<-EOF
		mseg_confirm_seconds: 40
		mseg_policy:
		  default: deny
		  failsafe: "off"
		  segments:
		    mgmt: {prefixes: [$FLEET_CTL_ADDR/32]}
		    fleet: {groups: [mseg]}
		    web: {groups: [web]}
		    db: {groups: [db]}
		  rules:
		    - {from: mgmt, to: fleet, proto: tcp, port: 9100, action: allow}
		    - {from: web, to: db, proto: tcp, port: 5001, action: allow}
		    - {from: db, to: web, proto: tcp, port: 5003, action: allow}
	EOF
	# The broken policy: someone "tightens" it and drops web -> db.
	cat >"$FLEET_DIR/broken.yml" <<-EOF
		mseg_policy:
		  default: deny
		  segments:
		    mgmt: {prefixes: [$FLEET_CTL_ADDR/32]}
		    fleet: {groups: [mseg]}
		    web: {groups: [web]}
		    db: {groups: [db]}
		  rules:
		    - {from: mgmt, to: fleet, proto: tcp, port: 22, action: allow}
		    - {from: mgmt, to: fleet, proto: tcp, port: 9100, action: allow}
		    - {from: db, to: web, proto: tcp, port: 5003, action: allow}
	EOF
}

# rollout [ARGS...]: run site.yml on the fleet; its output goes to
# $BATS_TEST_TMPDIR/ansible.log (and to stderr on failure).
rollout() {
	local rc=0 t0=$SECONDS
	# A hang guard, not a time limit: a first rollout takes ~175 s alone
	# and up to 540 s beside the other suites, so the bound sits under the
	# test's own (BATS_TEST_TIMEOUT above), leaving time for its checks.
	# Every lab fleet has the same addresses: ssh's shared connections
	# (ControlMaster, one socket per user@host:port in ~/.ansible/cp) would
	# carry this run's commands to another run's fleet. One directory a run.
	mkdir -p "$FLEET_DIR/cp"
	ANSIBLE_CONFIG=$ANSIBLE_DIR/ansible.cfg ANSIBLE_NOCOLOR=1 \
		ANSIBLE_SSH_CONTROL_PATH_DIR=$FLEET_DIR/cp \
		timeout -k 10 1200 ansible-playbook -i "$FLEET_INVENTORY" "$ANSIBLE_DIR/site.yml" "$@" \
		>"$BATS_TEST_TMPDIR/ansible.log" 2>&1 </dev/null || rc=$?
	echo "# rollout: $((SECONDS - t0)) s" >&3
	return "$rc"
}

# recap HOST: HOST's line of the play recap.
recap() { grep -E "^$1 +:" "$BATS_TEST_TMPDIR/ansible.log" | tail -n 1; }

# host_hash I: host I's loaded policy's fingerprint (its installed tool).
host_hash() { fleet_ssh "$1" /usr/lib/mseg/build/mseg-textfile --policy-hash; }

# policy_gen I: host I's policy generation, read from its pinned maps.
policy_gen() {
	bpftool -j map dump pinned "$(fleet_pins "$1")/tc/globals/mseg_config" |
		jq -e '.[0].formatted.value.policy_gen'
}

# prom_query EXPR: the result vector of an instant query, as JSON.
prom_query() {
	ip netns exec "$FLEET_CTL" curl -sf --max-time 5 \
		--data-urlencode "query=$1" "http://$FLEET_CTL_ADDR:9090/api/v1/query" |
		jq -ce '.data.result'
}

# prom_is EXPR WANT: the query's one value is WANT.
prom_is() { [ "$(prom_query "$1" | jq -r '.[0].value[1]')" = "$2" ]; }

# instances_are EXPR WANT: the instances the query returns, joined by
# commas, are WANT ("" for none).
instances_are() { [ "$(prom_query "$1" | jq -r 'map(.metric.instance) | sort | join(",")')" = "$2" ]; }

# pending_drift_is WANT: the instances MsegPolicyDrift is pending or firing
# for in Prometheus, joined by commas, are WANT.
pending_drift_is() {
	[ "$(ip netns exec "$FLEET_CTL" curl -sf --max-time 5 "http://$FLEET_CTL_ADDR:9090/api/v1/alerts" |
		jq -r '[.data.alerts[] | select(.labels.alertname == "MsegPolicyDrift") | .labels.instance] | sort | join(",")')" = "$1" ]
}

@test "fleet: the role installs the package on every host and rolls the policy out; real traffic obeys it" {
	local i a1 a2 a3 a4 h
	a1=$(fleet_addr 1) a2=$(fleet_addr 2) a3=$(fleet_addr 3) a4=$(fleet_addr 4)
	# Before: no filter anywhere, everything flows.
	fleet_tcp 1 "$a3" 5001
	fleet_tcp 2 "$a1" 5001

	rollout || { cat "$BATS_TEST_TMPDIR/ansible.log" >&2; false; }
	# In stages: the canary alone, then a quarter, then the rest.
	grep -q 'PLAY \[Roll the mseg policy out\]' "$BATS_TEST_TMPDIR/ansible.log"
	for i in 1 2 3 4; do
		recap "h$i" | grep -q 'failed=0' || { recap "h$i" >&2; false; }
		# Installed by apt into the host's own root, not the machine's.
		[ "$(fleet_ssh "$i" "dpkg-query -W -f='\${Status}' mseg")" = 'install ok installed' ]
		fleet_ssh "$i" test -f /etc/mseg/mseg.rules
		# what mseg.service boots from: the devices the role attached
		fleet_ssh "$i" cat /etc/mseg/mseg.conf | grep -qx "device $(fleet_ssh "$i" mseg status --json |
			jq -r '.attached[0].dev') both"
	done
	test ! -e /usr/sbin/mseg
	# Every host runs the same policy: one fingerprint.
	h=$(host_hash 1)
	for i in 2 3 4; do
		[ "$(host_hash "$i")" = "$h" ]
	done
	# mseg.service's ExecReload on a host: from the role's files, the same policy
	fleet_ssh 1 mseg boot >/dev/null
	[ "$(host_hash 1)" = "$h" ]
	fleet_ssh 1 mseg save | grep -qx 'default deny'
	# (save prints canonical statements, each rule with its id: docs/policy.md)
	fleet_ssh 1 mseg save | grep -qxE "rule add --src $a1 --dst $a2 --proto tcp --dport 5001 --action allow --id [0-9]+"

	# web -> db on 5001, db -> web on 5003; nothing else.
	fleet_tcp 1 "$a2" 5001
	fleet_tcp 3 "$a4" 5001
	fleet_tcp 2 "$a3" 5003
	run ! fleet_tcp 1 "$a2" 5002 1
	run ! fleet_tcp 2 "$a1" 5001 1
	run ! fleet_tcp 1 "$a3" 5001 1
	run ! fleet_tcp 2 "$a4" 5003 1
	# The refusals were mseg's, on the hosts' own interfaces.
	[ "$(TC_BPF_MNT=$(fleet_pins 1) stat_get denied)" -gt 0 ]
}

@test "fleet: Prometheus scrapes every host from the role's target list; a hand edit on one host makes MsegPolicyDrift true for it alone" {
	local conf=$FLEET_DIR/prometheus/prometheus.yml expr
	# The shipped configuration, pointed at the lab's files, scraping every second.
	sed -e "s|/etc/prometheus/file_sd/mseg-nodes.json|$FLEET_DIR/prometheus/targets.json|" \
		-e "s|/usr/lib/mseg/exporters/prometheus/mseg-rules.yml|$MSEG_ROOT/exporters/prometheus/mseg-rules.yml|" \
		-e 's/_interval: 15s/_interval: 1s/' -e 's/refresh_interval: 1m/refresh_interval: 5s/' \
		"$MSEG_ROOT/deploy/prometheus/prometheus.yml" >"$conf"
	promtool check config "$conf" >/dev/null
	jq -e 'length == 4 and (map(.labels.instance) | sort == ["h1","h2","h3","h4"])' \
		"$FLEET_DIR/prometheus/targets.json"
	# In the controller's namespace: fleet_teardown stops it with the rest.
	ip netns exec "$FLEET_CTL" timeout -k 5 2400 prometheus --config.file="$conf" \
		--storage.tsdb.path="$FLEET_DIR/prometheus/data" \
		--web.listen-address="$FLEET_CTL_ADDR:9090" >"$FLEET_DIR/prometheus/log" 2>&1 3>&- &
	wait_until 300 prom_is 'count(up{job="mseg-node"} == 1)' 4 || {
		cat "$FLEET_DIR/prometheus/log" >&2
		prom_query 'up' >&2
		false
	}
	wait_until 100 prom_is 'count(mseg_policy_info)' 4
	prom_is 'count(count by (hash) (mseg_policy_info))' 1
	expr=$(yq_expr MsegPolicyDrift)
	instances_are "$expr" ""

	# By hand on h4: one more rule; its collector writes (the unit would
	# within 15 s).
	fleet_ssh 4 mseg rule add --src "$(fleet_addr 4)" --dst "$(fleet_addr 1)" --proto tcp --dport 5002 --action allow
	fleet_ssh 4 /usr/lib/mseg/build/mseg-textfile
	wait_until 100 instances_are "$expr" h4 || {
		prom_query "$expr" >&2
		false
	}
	# Prometheus evaluates the rule itself: pending (for: 10m) on h4 only.
	wait_until 100 pending_drift_is h4
	# h4 stays changed: test 4's rollout puts it right.
}

# yq_expr ALERT: the expression of ALERT in mseg-rules.yml.
yq_expr() {
	"$MSEG_PYTHON" -c '
import sys, yaml
for g in yaml.safe_load(open(sys.argv[1]))["groups"]:
    for r in g["rules"]:
        if r.get("alert") == sys.argv[2]:
            print(r["expr"])' "$MSEG_ROOT/exporters/prometheus/mseg-rules.yml" "$1"
}

@test "fleet: a policy that fails the canary's health probe stops at the canary, which rolls back; no other host sees it" {
	local i good gens=() rules=() hashes=()
	good=$(host_hash 1)
	for i in 1 2 3 4; do
		gens[i]=$(policy_gen "$i")
		rules[i]=$(fleet_ssh "$i" md5sum /etc/mseg/mseg.rules)
		hashes[i]=$(host_hash "$i")
	done

	run rollout -e "@$FLEET_DIR/broken.yml"
	[ "$status" -ne 0 ]
	grep -q 'the new policy failed the health check on h1' "$BATS_TEST_TMPDIR/ansible.log" ||
		{ cat "$BATS_TEST_TMPDIR/ansible.log" >&2; false; }
	# The canary applied it (mseg apply --confirm), failed its probe
	# (h1 -> h2:5001) and the role rolled it back at once; its boot policy,
	# /etc/mseg/mseg.rules, was never touched.
	(($(policy_gen 1) > gens[1]))
	[ "$(host_hash 1)" = "$good" ]
	fleet_ssh 1 mseg status --json | jq -e '.confirm | .state == "rolled_back" and .reason == "mseg confirm --rollback"'
	[ "$(fleet_ssh 1 md5sum /etc/mseg/mseg.rules)" = "${rules[1]}" ]
	fleet_ssh 1 grep -q -- "--dport 5001" /etc/mseg/mseg.rules
	# The others never did anything.
	for i in 2 3 4; do
		[ -z "$(recap "h$i")" ] || { recap "h$i" >&2; false; }
		[ "$(policy_gen "$i")" = "${gens[i]}" ]
		[ "$(fleet_ssh "$i" md5sum /etc/mseg/mseg.rules)" = "${rules[i]}" ]
		[ "$(host_hash "$i")" = "${hashes[i]}" ]
	done
	# And the traffic the probe stands for still flows.
	fleet_tcp 1 "$(fleet_addr 2)" 5001
	fleet_tcp 3 "$(fleet_addr 4)" 5001
}

# loaded_hash I: host I's loaded policy's fingerprint, read from its pins
# here (no SSH: the policy may have cut it).
loaded_hash() { TC_BPF_MNT=$(fleet_pins "$1") "$MSEG_BUILD/mseg-textfile" --policy-hash; }

loaded_hash_is() { [ "$(loaded_hash "$1")" = "$2" ]; }

@test "fleet: a policy that cuts the canary's SSH stops the rollout; unconfirmed, the canary goes back by itself" {
	local i good gens=() rules=() st
	good=$(loaded_hash 1)
	for i in 1 2 3 4; do
		gens[i]=$(policy_gen "$i")
		rules[i]=$(fleet_exec "$i" md5sum /etc/mseg/mseg.rules)
	done

	run rollout -e "@$FLEET_DIR/no-ssh.yml"
	[ "$status" -ne 0 ]
	recap h1 | grep -qE 'unreachable=[1-9]|failed=[1-9]' || { cat "$BATS_TEST_TMPDIR/ansible.log" >&2; false; }
	# The canary applied it: its policy moved on, SSH went with it.
	(($(policy_gen 1) > gens[1]))
	# Nobody confirms: within mseg_confirm_seconds (40) of the apply the
	# host itself puts the previous policy back (bounded: 1200 looks).
	wait_until 1200 loaded_hash_is 1 "$good" || { fleet_exec 1 mseg status --json >&2; false; }
	st=$(fleet_exec 1 mseg status --json | jq -c .confirm)
	jq -e '.state == "rolled_back" and (.reason | startswith("no '"'mseg confirm'"' within 40 s"))' <<<"$st" ||
		{ echo "$st" >&2; false; }
	[ "$(fleet_exec 1 md5sum /etc/mseg/mseg.rules)" = "${rules[1]}" ]
	wait_until 100 fleet_ssh 1 true
	# Its metrics still show the policy it went back from: its collector
	# writes them again (mseg-textfile.service would within 15 s).
	fleet_ssh 1 /usr/lib/mseg/build/mseg-textfile
	# The others never did anything.
	for i in 2 3 4; do
		[ -z "$(recap "h$i")" ] || { recap "h$i" >&2; false; }
		[ "$(policy_gen "$i")" = "${gens[i]}" ]
		[ "$(fleet_exec "$i" md5sum /etc/mseg/mseg.rules)" = "${rules[i]}" ]
	done
}

@test "fleet: rolling the policy out again repairs the hand-edited host and changes nothing elsewhere" {
	local i good expr
	good=$(host_hash 1)
	[ "$(host_hash 4)" != "$good" ]
	rollout || { cat "$BATS_TEST_TMPDIR/ansible.log" >&2; false; }
	for i in 1 2 3; do
		recap "h$i" | grep -q 'changed=0 ' || { recap "h$i" >&2; false; }
	done
	recap h4 | grep -q 'changed=[1-9]' || { recap h4 >&2; false; }
	for i in 1 2 3 4; do
		[ "$(host_hash "$i")" = "$good" ]
	done
	expr=$(yq_expr MsegPolicyDrift)
	wait_until 100 instances_are "$expr" ""
}
