#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The differential fuzzer (tests/fuzz/): 100,000 random and mutated frames
# (VLAN tags up to one past the bound, IPv4 options, IPv6 extension chains
# up to one past the bound, IPv4-mapped addresses, fragments of every kind,
# ICMP errors quoting a flow, echo both ways, ND and MLD and impostors; cut
# at random points, random flags, flipped bytes) through the classifier
# under random policies, loose and strict, in groups that share a flow.
# Every verdict and every round's counters must equal the model of
# docs/DESIGN.md (tests/fuzz/model.py). The seed is printed; replay with
# MSEG_FUZZ_SEED=N, and MSEG_FUZZ_FRAMES=N changes the count.

load helpers/common

setup_file() {
	require_build
	crafted_setup
}

teardown_file() {
	crafted_teardown
}

@test "fuzz: 100,000 random and mutated frames, each verdict and the counters equal the model of docs/DESIGN.md" {
	need build/mseg-testrun test -x "$MSEG_BUILD/mseg-testrun"
	need "the classifier loaded" test -n "${PROG_ID:-}"
	run timeout -k 5 900 "$MSEG_PYTHON" "$MSEG_ROOT/tests/fuzz/run.py" --prog-id "$PROG_ID" \
		--frames "${MSEG_FUZZ_FRAMES:-100000}" --rounds 10
	echo "$output"
	[[ $output == seed* ]]
	[ "$status" -eq 0 ]
	# it really ran them: most frames reached the program
	local n
	n=$(sed -n 's/^\([0-9]*\) frames in .*/\1/p' <<<"$output")
	((n >= ${MSEG_FUZZ_FRAMES:-100000}))
}

@test "fuzz: the model itself obeys the counter invariant and sees every outcome" {
	run "$MSEG_PYTHON" - "$MSEG_ROOT/tests/fuzz" <<'EOF'
import random, sys
sys.path.insert(0, sys.argv[1])
import gen, model
rng = random.Random(11)
bounds = {"MSEG_MAX_VLANS": 4, "MSEG_MAX_EXT_HDRS": 12}
for strict in (False, True):
    _, (d, e, c, fs) = gen.policy(rng)
    cls = model.Classifier(model.Policy(d, e, c, fs), strict, bounds)
    for g in gen.frames(rng, 20000):
        cls.reset()
        for f in g:
            cls.frame(f)
    assert model.check_invariants(cls.count) == (0, 0), cls.count
    want = ["vlan_limit", "v4_mapped", "exthdr_limit", "frag_tiny", "frag_overlap",
            "malformed", "fragments", "related", "exempt", "session_hit", "new_session"]
    want += ["strict_drop"] if strict else ["unjudged"]
    missing = [k for k in want if cls.count[k] == 0]
    assert not missing, missing
print("ok")
EOF
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "fuzz: a parse bound broken on purpose (5 VLAN tags read, the design says 4) is caught" {
	need build/mseg-testrun test -x "$MSEG_BUILD/mseg-testrun"
	need "the classifier loaded" test -n "${PROG_ID:-}"
	local obj=$BATS_TEST_TMPDIR/mseg-vlan5.bpf.o broken
	rebuild_object "$obj" -DMSEG_MAX_VLANS=5
	# beside the real one, over the same pins (its maps have their layouts)
	ip -n "$CRAFT_NS" link add mtb0 type veth peer name mtb1
	ip netns exec "$CRAFT_NS" tc qdisc add dev mtb0 clsact
	ip netns exec "$CRAFT_NS" tc filter add dev mtb0 ingress bpf da obj "$obj" sec tc
	broken=$(prog_id mtb0 "$CRAFT_NS")
	[[ $broken != "$PROG_ID" ]]
	run timeout -k 5 600 "$MSEG_PYTHON" "$MSEG_ROOT/tests/fuzz/run.py" --prog-id "$broken" \
		--seed "${MSEG_FUZZ_SEED:-7}" --frames 10000 --rounds 2
	echo "$output"
	[[ $output == seed* ]]
	[ "$status" -eq 1 ]
	# caught for the reason broken: a fifth tag read instead of refused
	grep -qE '^round [0-9]+ frame [0-9]+: verdict 0, model 2 \((loose|strict); refused \(vlan_limit\)\)' <<<"$output"
}
