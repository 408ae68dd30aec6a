#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The Ansible role without a fleet (fleet.bats runs it on one): the playbook
# parses, and the policy filter (roles/mseg/filter_plugins/mseg_policy.py)
# turns random policies into rulesets that mseg's own parser accepts and
# that hold exactly the rules an independent count predicts; what today's
# format cannot say is refused by name.

# shellcheck disable=SC2154 # bats sets $output/$status
bats_require_minimum_version 1.5.0

load helpers/common

ANSIBLE_DIR=$MSEG_ROOT/deploy/ansible

setup() {
	require_build
	need ansible-playbook command -v ansible-playbook
}

@test "ansible: site.yml and the role parse" {
	ANSIBLE_CONFIG=$ANSIBLE_DIR/ansible.cfg run ansible-playbook --syntax-check \
		-i "$ANSIBLE_DIR/examples/inventory.yml" "$ANSIBLE_DIR/site.yml"
	echo "$output" >&2
	[ "$status" -eq 0 ]
}

# expand SEED: a random policy expanded by the filter into $BATS_TEST_TMPDIR/rules,
# and the number of exact rules an independent count expects on stdout.
expand() {
	/usr/bin/python3 - "$1" "$ANSIBLE_DIR/roles/mseg/filter_plugins" "$BATS_TEST_TMPDIR/rules" <<-'EOF'
		import random, sys
		sys.path.insert(0, sys.argv[2])
		from mseg_policy import mseg_ruleset
		rng = random.Random(int(sys.argv[1]))
		groups, hostvars = {"all": []}, {}
		for g in ("a", "b", "c"):
		    groups[g] = []
		    for i in range(rng.randint(0, 6)):
		        h = "%s%d" % (g, i)
		        groups[g].append(h)
		        groups["all"].append(h)
		        hv = {"mseg_address": "10.%d.0.%d" % (ord(g), i + 1)}
		        if rng.random() < 0.5:
		            hv["mseg_address6"] = "fd00:%x::%x" % (ord(g), i + 1)
		        hostvars[h] = hv
		segments = {g: {"groups": [g]} for g in ("a", "b", "c")}
		segments["ext"] = {"prefixes": ["192.0.2.%d/32" % rng.randint(1, 9), "2001:db8::%x/128" % rng.randint(1, 9)]}
		rules, want = [], set()
		def addrs(seg):
		    out = list(segments[seg].get("prefixes", []))
		    for g in segments[seg].get("groups", []):
		        for h in groups[g]:
		            out += [hostvars[h][k] + ("/32" if k == "mseg_address" else "/128")
		                    for k in ("mseg_address", "mseg_address6") if k in hostvars[h]]
		    return [a.split("/")[0] for a in out]
		for _ in range(rng.randint(1, 6)):
		    src, dst = rng.choice(list(segments)), rng.choice(list(segments))
		    proto = rng.choice(["tcp", "udp", "icmp", "any"])
		    port = rng.randint(1, 65535) if proto in ("tcp", "udp") and rng.random() < 0.7 else None
		    action = rng.choice(["allow", "deny", "log"])
		    r = {"from": src, "to": dst, "proto": proto, "action": action}
		    if port:
		        r["port"] = port
		    rules.append(r)
		    for s in addrs(src):
		        for d in addrs(dst):
		            if (":" in s) == (":" in d) and s != d:
		                want.add((s, d, proto, port))
		policy = {"default": rng.choice(["allow", "deny"]), "segments": segments, "rules": rules,
		          "cidrs": [{"segment": "ext", "action": "deny", "priority": 3}]}
		lines = mseg_ruleset(policy, groups, hostvars)
		open(sys.argv[3], "w").write("\n".join(lines) + "\n")
		open(sys.argv[3] + ".segments", "w").write(
		    "\n".join(mseg_ruleset(policy, groups, hostvars, "segments")) + "\n")
		# A later rule for the same key replaces an earlier one (mseg apply).
		print(len(want))
	EOF
}

@test "ansible: random policies expand into rulesets mseg accepts, with the expected number of rules (seeded)" {
	local seed=${MSEG_SEED:-$RANDOM} i want got
	echo "seed $seed" >&2
	for ((i = 0; i < 20; i++)); do
		want=$(expand $((seed + i)))
		run mseg apply --check "$BATS_TEST_TMPDIR/rules"
		[ "$status" -eq 0 ] || { echo "seed $((seed + i)): $output" >&2; cat "$BATS_TEST_TMPDIR/rules" >&2; false; }
		# Distinct exact rules by key, as mseg apply counts them.
		got=$(grep '^rule ' "$BATS_TEST_TMPDIR/rules" | sed 's/ --action .*//' | sort -u | wc -l)
		[ "$got" -eq "$want" ] || { echo "seed $((seed + i)): $got rules, want $want" >&2; false; }
		[ "$(grep -c '^cidr ' "$BATS_TEST_TMPDIR/rules")" -eq 2 ]
		[ "$(grep -c '^default ' "$BATS_TEST_TMPDIR/rules")" -eq 1 ]
		# the same policy in the policy language: mseg's parser takes it too
		run mseg apply --check "$BATS_TEST_TMPDIR/rules.segments"
		[ "$status" -eq 0 ] || { echo "seed $((seed + i)) (segments): $output" >&2; cat "$BATS_TEST_TMPDIR/rules.segments" >&2; false; }
	done
}

# segments POLICY-PYTHON: the filter's "segments" ruleset for that policy
# (hosts g1, g2 in group g, w1 in group w).
segments() {
	/usr/bin/python3 - "$ANSIBLE_DIR/roles/mseg/filter_plugins" "$1" <<-'EOF'
		import sys
		sys.path.insert(0, sys.argv[1])
		from mseg_policy import mseg_ruleset
		hv = {"g1": {"mseg_address": "10.0.0.1"}, "g2": {"mseg_address": "10.0.0.2", "mseg_address6": "fd00::2"},
		      "w1": {"mseg_address": "10.0.1.1"}}
		print("\n".join(mseg_ruleset(eval(sys.argv[2]), {"g": ["g1", "g2"], "w": ["w1"]}, hv, "segments")))
	EOF
}

@test "ansible: format segments writes segments and rules between them, and prefixes where segments overlap" {
	run segments '{"default": "deny", "segments": {"net": {"prefixes": ["10.1.0.0/16"]}, "h": {"groups": ["g"]}, "w": {"groups": ["w"]}},
		"rules": [{"from": "h", "to": "net", "proto": "tcp", "port": 22, "action": "allow"},
		          {"from": "w", "to": "h", "proto": "udp", "action": "deny"}]}'
	[ "$status" -eq 0 ]
	[ "$output" = "default deny
segment add h 10.0.0.1/32 10.0.0.2/32 fd00::2/128
segment add net 10.1.0.0/16
segment add w 10.0.1.1/32
rule add --src h --dst net --proto tcp --dport 22 --action allow
rule add --src w --dst h --proto udp --action deny" ]
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/seg.rules"
	run mseg apply --check "$BATS_TEST_TMPDIR/seg.rules"
	[ "$status" -eq 0 ]
	# "all" overlaps h and w (the same hosts): not a segment of mseg's; its
	# rule is written per pair of prefixes, a wide one included
	run segments '{"segments": {"all": {"groups": ["g", "w"]}, "h": {"groups": ["g"]}, "net": {"prefixes": ["10.1.0.0/16"]}},
		"rules": [{"from": "net", "to": "all", "proto": "tcp", "port": 22, "action": "allow"}]}'
	[ "$status" -eq 0 ]
	[ "$output" = "default allow
segment add net 10.1.0.0/16
rule add --src 10.1.0.0/16 --dst 10.0.0.1 --proto tcp --dport 22 --action allow
rule add --src 10.1.0.0/16 --dst 10.0.0.2 --proto tcp --dport 22 --action allow
rule add --src 10.1.0.0/16 --dst 10.0.1.1 --proto tcp --dport 22 --action allow" ]
}

# filter_error POLICY-PYTHON: the filter's error for that policy.
filter_error() {
	/usr/bin/python3 - "$ANSIBLE_DIR/roles/mseg/filter_plugins" "$1" <<-'EOF'
		import sys
		sys.path.insert(0, sys.argv[1])
		from mseg_policy import mseg_ruleset
		try:
		    mseg_ruleset(eval(sys.argv[2]), {"g": ["h"]}, {"h": {"mseg_address": "10.0.0.1"}})
		except Exception as e:
		    print(e)
		    sys.exit(0)
		print("no error")
		sys.exit(1)
	EOF
}

@test "ansible: what today's ruleset format cannot say is refused by name" {
	run filter_error '{"segments": {"net": {"prefixes": ["10.1.0.0/16"]}, "h": {"groups": ["g"]}}, "rules": [{"from": "h", "to": "net", "proto": "tcp", "port": 22, "action": "allow"}]}'
	[ "$status" -eq 0 ]
	[[ $output == *"rule 1 (h -> net): segment net holds 10.1.0.0/16"* ]]
	run filter_error '{"segments": {"h": {"groups": ["g"]}}, "rules": [{"from": "h", "to": "nope", "action": "allow"}]}'
	[[ $output == *"rule 1 (h -> nope): no segment 'nope'"* ]]
	run filter_error '{"segments": {"h": {"groups": ["nogroup"]}}}'
	[[ $output == *"segment h: no inventory group nogroup"* ]]
	run filter_error '{"segments": {"h": {"prefixes": ["10.0.0.1/8"]}}}'
	[[ $output == *"has host bits set"* ]]
	run filter_error '{"segments": {"h": {"groups": ["g"]}}, "rules": [{"from": "h", "to": "h", "proto": "icmp", "port": 1, "action": "allow"}]}'
	[[ $output == *"a port needs proto tcp or udp"* ]]
	run filter_error '{"default": "maybe"}'
	[[ $output == *"default must be allow or deny"* ]]
}

# failsafe_lines POLICY: the failsafe statements the filter writes for POLICY.
failsafe_lines() {
	/usr/bin/python3 - "$ANSIBLE_DIR/roles/mseg/filter_plugins" "$1" <<-'EOF2'
		import sys
		sys.path.insert(0, sys.argv[1])
		from mseg_policy import mseg_ruleset
		for line in mseg_ruleset(eval(sys.argv[2]), {}, {}, "segments"):
		    if line.startswith("failsafe"):
		        print(line)
	EOF2
}

@test "ansible: the policy's failsafe key becomes mseg's failsafe statement, which mseg accepts" {
	run failsafe_lines '{}'
	[ "$status" -eq 0 ] && [ -z "$output" ]
	# YAML reads a bare off as false.
	for p in '{"failsafe": "off"}' '{"failsafe": False}' '{"failsafe": []}'; do
		run failsafe_lines "$p"
		[ "$output" = "failsafe off" ]
	done
	run failsafe_lines '{"failsafe": ["tcp/22", "udp/53"]}'
	[ "$output" = "failsafe set tcp/22 udp/53" ]
	printf 'default deny\n%s\n' "$output" >"$BATS_TEST_TMPDIR/rules"
	run mseg apply --check "$BATS_TEST_TMPDIR/rules"
	[ "$status" -eq 0 ]
	run filter_error '{"failsafe": ["icmp/1"]}'
	[[ $output == *"failsafe 'icmp/1': must be tcp/PORT or udp/PORT"* ]]
	run filter_error '{"failsafe": "sometimes"}'
	[[ $output == *'failsafe must be default, "off" or a list'* ]]
}
