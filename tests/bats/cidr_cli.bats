#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# scripts/mseg-cidr and its seed spelling `mseg ip-range` against the real
# object: every test gets a private bpffs, its own netns with a veth pair
# and `mseg attach` on one end. Every bad input must give one "mseg: ..."
# line on stderr, the exit status of the other commands (2 for a bad
# command line) and leave the policy maps and mseg_config exactly as they were.
# shellcheck disable=SC2030,SC2031,SC2154 # each @test is its own subshell; bats sets $stderr_lines

bats_require_minimum_version 1.5.0

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
MSEG=$ROOT/scripts/mseg
CIDR=$ROOT/scripts/mseg-cidr
ABI_BIN=$ROOT/build/mseg-abi

setup() {
  if [[ ! -r $ROOT/build/mseg.bpf.o || ! -x $ABI_BIN ]]; then
    echo "build/mseg.bpf.o or build/mseg-abi is missing: run make" >&2
    return 1
  fi
  WORK=$(mktemp -d /tmp/mseg-cidr-cli.XXXXXX)
  mkdir "$WORK/bpffs"
  mount -t bpf bpf "$WORK/bpffs"
  export TC_BPF_MNT=$WORK/bpffs
  export MSEG_LOCK_DIR=$WORK
  unset MSEG_ROOT MSEG_OBJ MSEG_ABI_BIN
  PIN=$TC_BPF_MNT/tc/globals
  NS=mseg-ccli-$$-$BATS_TEST_NUMBER
  DEV=mk$$x$BATS_TEST_NUMBER
  ip netns add "$NS"
  ip -n "$NS" link add "$DEV" type veth peer name "${DEV}p"
  ip netns exec "$NS" "$MSEG" attach "$DEV" >/dev/null
}

teardown() {
  [[ -n ${NS:-} ]] && ip netns del "$NS" 2>/dev/null
  [[ -n ${WORK:-} ]] || return 0
  local mnt
  for mnt in "$WORK/bpffs" "$WORK/empty"; do
    if mountpoint -q "$mnt"; then
      umount "$mnt" 2>/dev/null || umount -l "$mnt"
    fi
  done
  rm -rf --one-file-system "$WORK"
}

c() { "$CIDR" "$@"; }
m() { ip netns exec "$NS" "$MSEG" "$@"; }

cfg() {
  bpftool -j map dump pinned "$PIN/mseg_config" | jq -e ".[0].formatted.value.$1"
}

# trie: every identity (mseg_ident, the prefixes' trie) of the rule set in
# force as BTF sees it (compiler layout), sorted, without the set (each
# edit switches it; the other set holds the same).
trie() {
  bpftool -j map dump pinned "$PIN/mseg_ident" |
    jq -c --argjson s "$(cfg active_set)" 'map(.formatted | select(.key.set == $s) | del(.key.set)) | sort'
}

snapshot() {
  local map
  for map in mseg_source mseg_ident mseg_rules mseg_rules_hash mseg_config; do
    [[ -e $PIN/$map ]] && bpftool map dump pinned "$PIN/$map"
  done
  ls -R "$TC_BPF_MNT"
}

# fails STATUS MESSAGE CMD...: CMD exits with STATUS, prints nothing on
# stdout, exactly the stderr line "mseg: MESSAGE" (MESSAGE ending in "*"
# is a prefix), and changes neither map.
fails() {
  local want_status=$1 want=$2 before after
  shift 2
  before=$(snapshot)
  run --separate-stderr "$@"
  after=$(snapshot)
  if [[ $status != "$want_status" ]]; then
    echo "$*: exit $status, expected $want_status; stderr: $stderr" >&2
    return 1
  fi
  if [[ $want == *'*' ]]; then
    [[ ${#stderr_lines[@]} == 1 && $stderr == "mseg: ${want%'*'}"* ]]
  else
    [[ ${#stderr_lines[@]} == 1 && $stderr == "mseg: $want" ]]
  fi || {
    echo "$*: stderr is not the one line 'mseg: $want': $stderr" >&2
    return 1
  }
  if [[ -n $output ]]; then
    echo "$*: unexpected stdout: $output" >&2
    return 1
  fi
  if [[ $before != "$after" ]]; then
    echo "$*: the maps changed" >&2
    diff <(echo "$before") <(echo "$after") >&2
    return 1
  fi
}

# set_hits A.B.C.D/LEN N: make the data path's per-CPU flow counter of
# that prefix's rule id N, as if it had decided N flows.
set_hits() {
  local id
  id=$(c list --json | jq --arg c "$1" '.[] | select(.cidr == $c) | .id')
  [[ -n $id ]] || { echo "set_hits: no entry $1" >&2; return 1; }
  local -a k v
  mapfile -t k < <(printf '%08x' "$id" | sed 's/../&\n/g' | grep . | tac)
  # packets, flows, audited: flows is the one list shows as hits
  mapfile -t v < <(printf '%048x' 0 | sed 's/../&\n/g' | grep .)
  mapfile -t -O 8 v < <(printf '%016x' "$2" | sed 's/../&\n/g' | grep . | tac)
  # bpftool writes the value to every CPU: N / CPUs each, summed when read
  local cpus
  cpus=$(nproc --all)
  (($2 % cpus == 0)) || { echo "set_hits: $2 is not a multiple of $cpus CPUs" >&2; return 1; }
  mapfile -t -O 8 v < <(printf '%016x' $(($2 / cpus)) | sed 's/../&\n/g' | grep . | tac)
  bpftool map update pinned "$PIN/mseg_rule_hits" key hex "${k[@]}" value hex "${v[@]}"
}

@test "mseg-cidr, mseg cidr and mseg ip-range print their usage with --help" {
  local -a cmds=(
    "$CIDR --help" "$CIDR -h" "$CIDR help" "$CIDR add --help" "$CIDR del --help"
    "$CIDR list --help" "$CIDR add 10.0.0.0/8 --help" "$MSEG cidr --help"
    "$MSEG ip-range --help" "$MSEG ip-range add --help" "$MSEG ip-range list --help"
  )
  local cmd
  for cmd in "${cmds[@]}"; do
    # shellcheck disable=SC2086 # each entry is a command line
    run --separate-stderr $cmd
    [[ $status == 0 && $output == usage:* && -z $stderr ]] ||
      { echo "$cmd: exit $status, stdout '${output:0:40}', stderr '$stderr'" >&2; return 1; }
    [[ $output == *"--action allow|deny|log"* && $output == *ip-range* ]]
  done
  run "$MSEG" --help
  [[ $output == *"cidr add|del|list"* && $output == *ip-range* ]]
  # --help wins over a bad argument and touches nothing
  run c add nonsense --help
  [[ $status == 0 && $output == usage:* ]]
}

@test "bad CIDRs: one clear line, exit 2, the trie unchanged" {
  c add 10.0.0.0/8 --action deny >/dev/null
  c add 2001:db8::/32 --action allow >/dev/null
  # address that does not parse
  local a
  for a in 10.0.0.300 10.0.0 010.0.0.0 host.example 1::2::3 g::1 fe80::1%eth0 "[::1]" " 10.0.0.0"; do
    fails 2 "invalid CIDR '$a/8': '$a' is not an IPv4 or IPv6 address" c add "$a/8" --action deny
  done
  fails 2 "invalid CIDR '/8': '' is not an IPv4 or IPv6 address" c add /8 --action deny
  # missing prefix
  fails 2 "invalid CIDR '10.0.0.0': missing /LENGTH (e.g. 10.0.0.0/8 or 2001:db8::/32)" \
    c add 10.0.0.0 --action deny
  fails 2 "invalid CIDR '2001:db8::': missing /LENGTH*" c add 2001:db8:: --action deny
  # non-numeric prefix, and trailing garbage
  fails 2 "invalid CIDR '10.0.0.0/x': prefix length 'x' is not a number" c add 10.0.0.0/x --action deny
  fails 2 "invalid CIDR '10.0.0.0/': prefix length '' is not a number" c add 10.0.0.0/ --action deny
  fails 2 "invalid CIDR '10.0.0.0/8x': prefix length '8x' is not a number" c add 10.0.0.0/8x --action deny
  fails 2 "invalid CIDR '10.0.0.0/8 extra': prefix length '8 extra' is not a number" \
    c add "10.0.0.0/8 extra" --action deny
  fails 2 "invalid CIDR '10.0.0.0/8/8': prefix length '8/8' is not a number" c add 10.0.0.0/8/8 --action deny
  fails 2 "invalid CIDR '10.0.0.0/1.5': prefix length '1.5' is not a number" c add 10.0.0.0/1.5 --action deny
  fails 2 "add: one CIDR at a time (got '10.0.0.0/8' and 'extra')" c add 10.0.0.0/8 extra --action deny
  # a newline in a comment would split the statement mseg save writes
  fails 2 "--comment holds a control character" \
    c add 10.0.0.0/8 --action deny --comment "$(printf 'x\nrule add --src any --dst any --action allow')"
  # sign and leading zeros
  local p
  for p in +8 -8 08 00 -0; do
    fails 2 "invalid CIDR '10.0.0.0/$p': write the prefix length '$p' without sign or leading zeros" \
      c add "10.0.0.0/$p" --action deny
  done
  # too long for the family
  fails 2 "invalid CIDR '10.0.0.0/33': an IPv4 prefix length is 0..32" c add 10.0.0.0/33 --action deny
  fails 2 "invalid CIDR '10.0.0.0/99999999999999999999': an IPv4 prefix length is 0..32" \
    c add 10.0.0.0/99999999999999999999 --action deny
  fails 2 "invalid CIDR '2001:db8::/129': an IPv6 prefix length is 0..128" c add 2001:db8::/129 --action deny
  # host bits, with the network that was meant (RFC 5952 for IPv6)
  fails 2 "10.1.2.3/8 has host bits set: did you mean 10.0.0.0/8?" c add 10.1.2.3/8 --action deny
  fails 2 "10.1.2.3/0 has host bits set: did you mean 0.0.0.0/0?" c add 10.1.2.3/0 --action deny
  fails 2 "192.168.1.129/25 has host bits set: did you mean 192.168.1.128/25?" \
    c add 192.168.1.129/25 --action deny
  fails 2 "2001:DB8:0:0:1::1/64 has host bits set: did you mean 2001:db8::/64?" \
    c add 2001:DB8:0:0:1::1/64 --action deny
  fails 2 "2001:db8:0:1:1:0:0:1/80 has host bits set: did you mean 2001:db8:0:1:1::/80?" \
    c add 2001:db8:0:1:1:0:0:1/80 --action deny
  fails 2 "1:0:0:1:0:0:1:1/127 has host bits set: did you mean 1::1:0:0:1:0/127?" \
    c add 1:0:0:1:0:0:1:1/127 --action deny
  fails 2 "::1/0 has host bits set: did you mean ::/0?" c add ::1/0 --action deny
  # IPv4-mapped IPv6 prefixes would never match IPv4 packets
  fails 2 "::ffff:10.0.0.0/104 is an IPv4-mapped prefix, which only IPv6 packets could match: write it as 10.0.0.0/8" \
    c add ::ffff:10.0.0.0/104 --action deny
  # empty input
  fails 2 "invalid CIDR: empty (expected ADDRESS/LENGTH, e.g. 10.0.0.0/8)" c add "" --action deny
  fails 2 "invalid CIDR: empty*" c del ""
  fails 2 "invalid CIDR: empty*" "$MSEG" ip-range add --cidr "" --action deny
  fails 2 "add: missing CIDR (e.g. 10.0.0.0/8 or 2001:db8::/32)" c add --action deny
  fails 2 "del: missing CIDR*" c del
  fails 2 "--cidr needs a value" "$MSEG" ip-range add --action deny --cidr
  # the same checks guard del
  fails 2 "10.1.2.3/8 has host bits set: did you mean 10.0.0.0/8?" c del 10.1.2.3/8
  fails 2 "invalid CIDR '10.0.0.0/8x': prefix length '8x' is not a number" c del 10.0.0.0/8x
  [[ $(c list --json | jq -c 'map(.cidr)') == '["10.0.0.0/8","2001:db8::/32"]' ]]
}

@test "bad actions, priorities, options and subcommands: exit 2, nothing written" {
  c add 10.0.0.0/8 --action deny >/dev/null
  fails 2 "invalid --action: 'drop' (expected allow, deny or log)" c add 10.0.0.0/8 --action drop
  fails 2 "invalid --action: 'DENY' (expected allow, deny or log)" c add 10.0.0.0/8 --action DENY
  fails 2 "add: missing --action (allow, deny or log)" c add 10.0.0.0/8 --action=
  fails 2 "add: missing --action (allow, deny or log)" c add 10.0.0.0/8
  fails 2 "--action needs a value" c add 10.0.0.0/8 --action
  local p
  for p in -1 x 4294967296 99999999999999999999 07 " 1"; do
    fails 2 "invalid --priority: '$p' (expected an integer 0..4294967295)" \
      c add 10.0.0.0/8 --action allow --priority "$p"
  done
  fails 2 "add: unknown option: --frob (see 'mseg-cidr --help')" c add 10.0.0.0/8 --frob 1 --action deny
  fails 2 "add: unknown option: -x*" c add -x 10.0.0.0/8 --action deny
  fails 2 "del: --action is not a selector: give only the CIDR" c del 10.0.0.0/8 --action deny
  fails 2 "add: one CIDR at a time*" c add 10.0.0.0/8 --cidr 11.0.0.0/8 --action deny
  fails 2 "list: unknown argument: --frob" c list --frob
  fails 2 "cidr: unknown subcommand: 'frob' (expected add, del or list)" c frob
  fails 2 "cidr: missing subcommand*" c
  fails 2 "cidr: unknown subcommand: 'frob'*" "$MSEG" ip-range frob
  [[ $(c list --json | jq -c 'map([.cidr, .action])') == '[["10.0.0.0/8","deny"]]' ]]
}

@test "deleting a CIDR that does not exist is an error, even inside a longer or shorter one" {
  c add 10.0.0.0/8 --action deny >/dev/null
  c add 10.1.2.0/24 --action allow >/dev/null
  c add 2001:db8::/32 --action deny >/dev/null
  fails 1 "no such CIDR rule: 10.1.0.0/16" c del 10.1.0.0/16
  fails 1 "no such CIDR rule: 10.0.0.0/7" c del 10.0.0.0/7
  fails 1 "no such CIDR rule: 10.1.2.0/25" c del 10.1.2.0/25
  fails 1 "no such CIDR rule: 2001:db8::/48" c del 2001:DB8::/48
  fails 1 "no such CIDR rule: ::/0" c del ::/0
  # an IPv4 prefix is not the IPv6 one with the same bits
  fails 1 "no such CIDR rule: 0.0.0.0/0" c del 0.0.0.0/0
  fails 1 "no such CIDR rule: 192.168.0.0/16" "$MSEG" ip-range del --cidr 192.168.0.0/16
  [[ $(c list --json | jq length) == 3 ]]
}

@test "add/list/del round trip, IPv4: key as the compiler laid it out, policy_gen bumped" {
  local gen
  gen=$(cfg policy_gen)
  run --separate-stderr c add 10.20.0.0/16 --action deny
  [[ $status == 0 && $output == "cidr added: 10.20.0.0/16: deny" ]]
  [[ $(cfg policy_gen) == $((gen + 2)) ]]
  # prefixlen = 16 header bits + 96 mapped bits + 16; IPv4-mapped address
  # flags: keys (src, any) and (any, dst) exist (the CIDR's two arms), each
  # one entry for any protocol (SRC_ANY_IDS 512, DST_ANY_IDS 1024), and
  # (any, any): the default failsafes' (docs/policy.md), no NO_ANY_ANY,
  # each on one port (ANY_ANY_WHOLE 128)
  [[ $(trie | jq -c 'map(.value.id |= (. > 0))') == '[{"key":{"prefixlen":128,"family":4,"addr":[0,0,0,0,0,0,0,0,0,0,255,255,10,20,0,0],"pad":[0,0]},"value":{"id":true,"flags":1676}}]' ]]
  # the identity's number (a hash of the prefix) is what the two arms' keys
  # name; the six (any, any) keys are the default failsafes' ports, one
  # each: all of them in the hash, none in the trie (bpf/mseg_maps.h)
  local id
  id=$(trie | jq '.[0].value.id')
  bpftool -j map dump pinned "$PIN/mseg_rules_hash" |
    jq -e --argjson s "$(cfg active_set)" --argjson id "$id" \
      'map(.formatted.key | select(.set == $s) | [.src_id, .dst_id]) | sort == [[0, 0], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0], [0, $id], [$id, 0]]'
  bpftool -j map dump pinned "$PIN/mseg_rules" |
    jq -e --argjson s "$(cfg active_set)" 'map(select(.formatted.key.set == $s)) == []'
  run --separate-stderr c list --json
  [[ $status == 0 ]]
  [[ $(jq -c . <<<"$output") == '[{"id":1,"cidr":"10.20.0.0/16","family":4,"action":"deny","priority":100,"audit":false,"would_deny":0,"hits":0,"packets":0,"comment":""}]' ]]
  run m cidr list
  [[ $status == 0 && ${lines[0]} == "CIDR"*ACTION*PRIORITY*HITS && ${lines[1]} == "10.20.0.0/16"*deny*100*0 ]]
  c add 10.20.30.40/32 --action log --priority 7 >/dev/null
  c add 0.0.0.0/0 --action allow >/dev/null
  [[ $(trie | jq -c 'map([.key.prefixlen, .key.family, .key.addr[12:16]])') == \
    '[[112,4,[0,0,0,0]],[128,4,[10,20,0,0]],[144,4,[10,20,30,40]]]' ]]
  [[ $(c list --json | jq -c 'map([.cidr, .action, .priority])') == \
    '[["0.0.0.0/0","allow",100],["10.20.0.0/16","deny",100],["10.20.30.40/32","log",7]]' ]]
  [[ $(cfg policy_gen) == $((gen + 6)) ]]
  run --separate-stderr c del 10.20.0.0/16
  [[ $status == 0 && $output == "cidr deleted: 10.20.0.0/16" ]]
  [[ $(cfg policy_gen) == $((gen + 8)) ]]
  c del 10.20.30.40/32 >/dev/null
  c del 0.0.0.0/0 >/dev/null
  [[ $(c list --json) == "[]" && $(trie) == "[]" ]]
  [[ $(cfg policy_gen) == $((gen + 12)) ]]
}

@test "add/list/del round trip, IPv6: RFC 5952 text, family 6, prefixlen 16 + len" {
  local gen
  gen=$(cfg policy_gen)
  run --separate-stderr c add 2001:DB8:0:0:0:0:0:0/32 --action allow
  [[ $status == 0 && $output == "cidr added: 2001:db8::/32: allow" ]]
  c add ::/0 --action deny >/dev/null
  c add fe80::/10 --action log >/dev/null
  c add 2001:db8:0:1:1:0:0:1/128 --action deny >/dev/null
  [[ $(cfg policy_gen) == $((gen + 8)) ]]
  [[ $(trie | jq -c 'map([.key.prefixlen, .key.family, .key.addr[0:4]]) | sort') == \
    '[[16,6,[0,0,0,0]],[26,6,[254,128,0,0]],[48,6,[32,1,13,184]],[144,6,[32,1,13,184]]]' ]]
  [[ $(c list --json | jq -c 'map([.cidr, .family, .action])') == \
    '[["::/0",6,"deny"],["2001:db8::/32",6,"allow"],["2001:db8:0:1:1::1/128",6,"deny"],["fe80::/10",6,"log"]]' ]]
  c del 2001:db8::/32 >/dev/null
  c del ::/0 >/dev/null
  c del FE80::/10 >/dev/null
  c del 2001:db8:0:1:1::1/128 >/dev/null
  [[ $(trie) == "[]" && $(cfg policy_gen) == $((gen + 16)) ]]
}

@test "adding twice leaves one entry; a new action updates it and keeps its hits" {
  c add 10.0.0.0/8 --action deny >/dev/null
  local gen
  gen=$(cfg policy_gen)
  run --separate-stderr c add 10.0.0.0/8 --action deny
  [[ $status == 0 && $output == "cidr unchanged: 10.0.0.0/8: deny" ]]
  # Nothing changed: nothing to judge again.
  [[ $(cfg policy_gen) == "$gen" && $(trie | jq length) == 1 ]]
  set_hits 10.0.0.0/8 42
  run --separate-stderr c add 10.0.0.0/8 --action allow
  [[ $status == 0 && $output == "cidr updated: 10.0.0.0/8: allow" ]]
  [[ $(cfg policy_gen) == $((gen + 2)) ]]
  [[ $(c list --json | jq -c 'map({cidr, family, action, priority, hits})') == '[{"cidr":"10.0.0.0/8","family":4,"action":"allow","priority":100,"hits":42}]' ]]
  # a priority change alone is a change; without --priority it is kept
  c add 10.0.0.0/8 --action allow --priority 5 >/dev/null
  c add 10.0.0.0/8 --action log >/dev/null
  [[ $(c list --json | jq -c 'map([.action, .priority, .hits])') == '[["log",5,42]]' ]]
  [[ $(cfg policy_gen) == $((gen + 6)) ]]
  # A longer prefix inside an existing one is a new entry, although a
  # lookup of it finds 10.0.0.0/8.
  run --separate-stderr c add 10.1.0.0/16 --action log
  [[ $output == "cidr added: 10.1.0.0/16: log" ]]
  [[ $(trie | jq length) == 2 ]]
  # one family's prefix never stands for the other's
  c add 0.0.0.0/0 --action deny >/dev/null
  run --separate-stderr c add ::/0 --action deny
  [[ $output == "cidr added: ::/0: deny" && $(trie | jq length) == 4 ]]
}

@test "ip-range (the seed's spelling) reaches the same rules" {
  local gen
  gen=$(cfg policy_gen)
  run --separate-stderr "$MSEG" ip-range add --cidr 192.168.1.0/24 --action allow
  [[ $status == 0 && $output == "cidr added: 192.168.1.0/24: allow" ]]
  "$MSEG" ip-range add --cidr=10.0.0.0/8 --action=deny >/dev/null
  "$MSEG" ip-range add --cidr 172.16.0.0/12 --action allow >/dev/null
  "$MSEG" ip-range add --cidr 2001:db8::/32 --action log >/dev/null
  [[ $(cfg policy_gen) == $((gen + 8)) ]]
  [[ $("$MSEG" ip-range list --json) == "$(c list --json)" ]]
  [[ $("$MSEG" ip-range list) == "$(c list)" ]]
  [[ $("$MSEG" ip-range list --json | jq -c 'map(.cidr)') == \
    '["10.0.0.0/8","172.16.0.0/12","192.168.1.0/24","2001:db8::/32"]' ]]
  "$MSEG" ip-range del --cidr 10.0.0.0/8 >/dev/null
  c del 172.16.0.0/12 >/dev/null
  "$MSEG" cidr del 2001:db8::/32 >/dev/null
  [[ $(c list --json | jq -c 'map(.cidr)') == '["192.168.1.0/24"]' ]]
}

@test "list: IPv4 first, then by address, then by length, with hits" {
  local x
  for x in 2001:db8::/32:deny 10.1.0.0/16:allow ::/0:log 192.168.0.0/16:deny \
    10.0.0.0/8:deny 2001:db8::/48:allow 9.0.0.0/8:log 10.1.0.0/24:deny \
    0.0.0.0/0:allow fe80::/10:deny 10.1.0.0/32:log 2001:db8::1/128:deny 10.0.0.0/32:allow; do
    c add "${x%:*}" --action "${x##*:}" >/dev/null
  done
  set_hits 10.1.0.0/16 4
  set_hits 0.0.0.0/0 12345678902
  run --separate-stderr c list --json
  [[ $status == 0 ]]
  [[ $(jq -c 'map(.cidr)' <<<"$output") == \
    '["0.0.0.0/0","9.0.0.0/8","10.0.0.0/8","10.0.0.0/32","10.1.0.0/16","10.1.0.0/24","10.1.0.0/32","192.168.0.0/16","::/0","2001:db8::/32","2001:db8::/48","2001:db8::1/128","fe80::/10"]' ]]
  [[ $(jq -c 'map(select(.hits > 0) | [.cidr, .hits])' <<<"$output") == '[["0.0.0.0/0",12345678902],["10.1.0.0/16",4]]' ]]
  [[ $(jq -c 'map(.family) | unique' <<<"$output") == '[4,6]' ]]
  run c list
  [[ $status == 0 && ${#lines[@]} == 14 ]]
  [[ ${lines[1]} == "0.0.0.0/0 "*allow*100*12345678902 && ${lines[13]} == "fe80::/10 "*deny* ]]
}

@test "entries of another rule set are neither listed, counted, touched nor updated" {
  c add 10.0.0.0/8 --action deny >/dev/null
  # Put a statement into the other set by hand, as a staged rule set would hold it.
  local -a v
  local other
  other=$((1 - $(cfg active_set)))
  mapfile -t v < <(printf 'cidr add 12.0.0.0/8 --action deny --id 7' | od -An -v -tx1 | tr ' ' '\n' | grep .)
  while ((${#v[@]} < 512)); do v+=(00); done
  bpftool map update pinned "$PIN/mseg_source" key hex "0$other" 00 00 00 07 00 00 00 value hex "${v[@]}"
  [[ $(c list --json | jq length) == 1 ]]
  [[ $(m status --json | jq .cidrs) == 1 ]]
  run m status
  [[ $output == *"cidr rules:      1"* ]]
  c add 10.0.0.0/8 --action allow >/dev/null
  c add 11.0.0.0/8 --action allow >/dev/null
  [[ $(m status --json | jq .cidrs) == 2 ]]
  c del 10.0.0.0/8 >/dev/null
  c del 11.0.0.0/8 >/dev/null
  [[ $(c list --json) == "[]" && $(m status --json | jq .cidrs) == 0 ]]
  # every edit compiled into the inactive set and emptied it first: the
  # staged statement of an interrupted edit is gone, no identity is left
  [[ $(trie) == "[]" ]]
}

@test "without pinned maps every cidr command says to attach first" {
  mkdir "$WORK/empty"
  mount -t bpf bpf "$WORK/empty"
  export TC_BPF_MNT=$WORK/empty
  PIN=$TC_BPF_MNT/tc/globals
  local msg="no pinned maps under $PIN: run 'mseg attach DEV' first"
  fails 1 "$msg" c add 10.0.0.0/8 --action deny
  fails 1 "$msg" c del 10.0.0.0/8
  fails 1 "$msg" c list
  fails 1 "$msg" "$MSEG" ip-range list --json
  # a bad command line is reported as such before any map is looked for
  fails 2 "10.1.2.3/8 has host bits set: did you mean 10.0.0.0/8?" c add 10.1.2.3/8 --action deny
  [[ ! -e $TC_BPF_MNT/tc ]]
}

@test "concurrent cidr edits serialise on the lock: every add lands, two bumps each" {
  local gen i
  gen=$(cfg policy_gen)
  (for ((i = 0; i < 15; i++)); do c add "10.$i.0.0/16" --action deny >/dev/null; done) 3>&- &
  local a=$!
  (for ((i = 0; i < 15; i++)); do c add "2001:db8:$i::/48" --action allow >/dev/null; done) 3>&- &
  local b=$!
  wait "$a"
  wait "$b"
  [[ $(c list --json | jq length) == 30 ]]
  [[ $(cfg policy_gen) == $((gen + 60)) ]]
}
