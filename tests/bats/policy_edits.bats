#!/usr/bin/env bats
# shellcheck disable=SC2154 # bats sets $status and $output
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Edits write only what they change (docs/policy.md, "where the policy
# lives"): both rule sets hold the policy in force between commands, and
# after any sequence of edits each holds exactly what a fresh apply of the
# same policy into an empty set writes. A set whose seal does not match
# (a hand edit, an interrupted write) is rewritten whole.

bats_require_minimum_version 1.5.0

load helpers/common

setup_file() {
	require_build
	crafted_setup
}

teardown_file() {
	crafted_teardown
}

setup() {
	require_build
	need "the classifier loaded" test -n "${PROG_ID:-}"
}

teardown() {
	mseg default allow >/dev/null
	policy_flush
}

# sets: the policy maps' entries per rule set, the set byte left out,
# sorted: {"0": [...], "1": [...]}.
sets() {
	local m
	for m in mseg_source mseg_ident mseg_rules mseg_rules_hash; do
		map_dump "$m" | jq -c --arg m "$m" 'map(.formatted | [.key.set, $m, (.key | del(.set)), .value])'
	done | jq -s -c 'add | group_by(.[0]) | map({key: (.[0][0] | tostring), value: (map(.[1:]) | sort)})
		| from_entries | {"0": (.["0"] // []), "1": (.["1"] // [])}'
}

# mirrored: both sets hold the same entries, and the seals are there.
mirrored() {
	local s
	s=$(sets)
	jq -e '.["0"] == .["1"]' <<<"$s" >/dev/null || {
		echo "the two rule sets differ:" >&2
		jq -c '(.["0"] - .["1"]) as $a | (.["1"] - .["0"]) as $b | {only0: $a, only1: $b}' <<<"$s" >&2
		return 1
	}
	jq -e '.["0"] | map(select(.[0] == "mseg_source" and (.[2].line | startswith("# sealed")))) | length == 1' \
		<<<"$s" >/dev/null || { echo "no seal" >&2; return 1; }
}

# fresh_equal: the set in force holds what an apply of `mseg save` into an
# emptied set writes (every entry, nothing incremental).
fresh_equal() {
	local set before after saved=$BATS_TEST_TMPDIR/saved
	set=$(config_get active_set)
	before=$(sets | jq -c --arg s "$set" '.[$s]')
	mseg save >"$saved"
	"$MSEG_BUILD/mseg-ruleset" clear $((1 - set))
	mseg apply "$saved" >/dev/null
	[[ $(config_get active_set) == $((1 - set)) ]]
	after=$(sets | jq -c --arg s "$((1 - set))" '.[$s]')
	[[ $before == "$after" ]] || {
		echo "edited and freshly applied sets differ:" >&2
		diff <(jq -c '.[]' <<<"$before") <(jq -c '.[]' <<<"$after") >&2
		return 1
	}
	mirrored
}

# edits SEED N: N random edits, one a line, words separated by tabs. Some
# are refused (a prefix of another segment, a segment still in use, a rule
# that does not exist): a refused edit changes nothing, which mirrored
# checks too.
edits() {
	"$MSEG_PYTHON" - "$1" "$2" <<'PY'
import random, sys
rng = random.Random(int(sys.argv[1]))
def pfx(fam):
    if fam == 4:
        return "10.%d.%d.0/%d" % (20 + rng.randrange(4), rng.randrange(8), rng.choice([22, 24]))
    return "fd00:%d:%d::/%d" % (20 + rng.randrange(4), rng.randrange(8), rng.choice([48, 64]))
def host(fam):
    if fam == 4:
        return "10.%d.%d.%d" % (20 + rng.randrange(4), rng.randrange(8), 1 + rng.randrange(9))
    return "fd00:%d:%d::%d" % (20 + rng.randrange(4), rng.randrange(8), 1 + rng.randrange(9))
def sel(fam):
    k = rng.randrange(5)
    return ("any" if k == 0 else "s%d%d" % (fam, rng.randrange(3)) if k < 3
            else pfx(fam) if k == 3 else host(fam))
for _ in range(int(sys.argv[2])):
    fam, act = rng.choice([4, 6]), rng.choice(["allow", "deny", "log"])
    k = rng.randrange(10)
    if k < 2:
        e = ["segment", "add", "s%d%d" % (fam, rng.randrange(3)), pfx(fam)]
    elif k == 2:
        e = ["segment", "del", "s%d%d" % (fam, rng.randrange(3)), pfx(fam)]
    elif k < 6:
        e = ["rule", "add", "--src", sel(fam), "--dst", sel(fam)]
        if rng.randrange(2):
            e += ["--proto", "tcp", "--dport", "%d-%d" % (1000 + rng.randrange(20), 1030 + rng.randrange(20))]
        e += ["--action", act, "--priority", str(50 * (1 + rng.randrange(3)))]
    elif k == 6:
        e = ["rule", "del", str(1 + rng.randrange(12))]
    elif k == 7:
        e = ["cidr", "add", pfx(fam), "--action", act]
    elif k == 8:
        e = ["cidr", "del", pfx(fam)]
    else:
        e = ["default", rng.choice(["allow", "deny"])]
    print("\t".join(e))
PY
}

@test "random edits: both sets hold the same, and what a fresh apply of the policy writes" {
	local seed=${MSEG_FUZZ_SEED:-$((RANDOM * 32768 + RANDOM))} i=0 line
	local -a e
	echo "seed $seed (replay: MSEG_FUZZ_SEED=$seed)"
	mseg segment add s40 10.20.0.0/24 >/dev/null
	mseg segment add s60 fd00:20::/48 >/dev/null
	edits "$seed" 60 >"$BATS_TEST_TMPDIR/edits"
	while IFS= read -r line; do
		IFS=$'\t' read -ra e <<<"$line"
		i=$((i + 1))
		mseg "${e[@]}" >/dev/null 2>&1 || true
		mirrored || { echo "after edit $i: ${e[*]}" >&2; return 1; }
		if ((i % 20 == 0)); then
			fresh_equal || { echo "after edit $i: ${e[*]}" >&2; return 1; }
		fi
	done <"$BATS_TEST_TMPDIR/edits"
	((i == 60))
	# the draw was not trivial
	(($(mseg rule list --json | jq length) >= 3))
	(($(mseg segment list --json | jq length) >= 3))
}

@test "a set whose seal does not match is rewritten whole: hand edits and interrupted writes leave nothing behind" {
	mseg segment add web 10.30.0.0/24 >/dev/null
	mseg rule add --src any --dst web --proto tcp --dport 80 --action allow >/dev/null
	mirrored
	local set other
	set=$(config_get active_set)
	other=$((1 - set))
	# an interrupted write: the other set lost its seal and holds a stray entry
	bpftool map delete pinned "$(pin mseg_source)" key hex "0$other" 00 00 00 ff ff ff ff
	local -a k v
	mapfile -t k < <(printf '%02x\n' 120 0 0 0 "$other" 0 0 0 1 2 3 4 5 6 7 8 6 0 80 0)
	mapfile -t v < <(for ((i = 0; i < 64; i++)); do echo 00; done)
	bpftool map update pinned "$(pin mseg_rules)" key hex "${k[@]}" value hex "${v[@]}"
	mseg rule add --src any --dst web --proto tcp --dport 443 --action allow >/dev/null
	mirrored
	# the stray entry is gone from both sets
	[[ $(map_dump mseg_rules | jq 'map(select(.formatted.key.src_id == 67305985)) | length') == 0 ]]
	# a statement written by hand into the set in force (its seal no longer
	# matches) is read as policy, and the set is rewritten whole
	set=$(config_get active_set)
	mapfile -t v < <(printf 'rule add --src any --dst web --proto udp --dport 5353 --action deny --id 9' |
		od -An -v -tx1 | tr ' ' '\n' | grep .)
	while ((${#v[@]} < 512)); do v+=(00); done
	bpftool map update pinned "$(pin mseg_source)" key hex "0$set" 00 00 00 09 00 00 80 value hex "${v[@]}"
	mseg rule add --src any --dst web --proto tcp --dport 8080 --action deny >/dev/null
	mirrored
	fresh_equal
	[[ $(mseg rule list --json | jq -c 'map(.id)') == '[1,2,3,9]' ]]
	# and the data path follows the policy
	[[ $(verdict --src 10.9.0.1 --dst 10.30.0.5 --proto udp --sport 4000 --dport 5353) == 2 ]]
	[[ $(verdict --src 10.9.0.1 --dst 10.30.0.5 --proto tcp --sport 4000 --dport 8080 --flags S) == 2 ]]
}
