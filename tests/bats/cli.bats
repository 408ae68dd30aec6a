#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The operator commands (scripts/mseg, scripts/mseg-rule) against the real
# object: every test gets a private bpffs, its own netns with a veth pair
# and `mseg attach` on one end. Every error must be one "mseg: ..." line on
# stderr with a non-zero exit, and leave the policy maps and mseg_config exactly
# as they were.
# shellcheck disable=SC2030,SC2031,SC2154 # each @test is its own subshell; bats sets $stderr_lines

bats_require_minimum_version 1.5.0

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
MSEG=$ROOT/scripts/mseg
RULE=$ROOT/scripts/mseg-rule
ABI_BIN=$ROOT/build/mseg-abi

setup() {
  if [[ ! -r $ROOT/build/mseg.bpf.o || ! -x $ABI_BIN ]]; then
    echo "build/mseg.bpf.o or build/mseg-abi is missing: run make" >&2
    return 1
  fi
  WORK=$(mktemp -d /tmp/mseg-cli.XXXXXX)
  mkdir "$WORK/bpffs"
  mount -t bpf bpf "$WORK/bpffs"
  export TC_BPF_MNT=$WORK/bpffs
  # Lock files go with the test, not into /run/lock.
  export MSEG_LOCK_DIR=$WORK
  unset MSEG_ROOT MSEG_OBJ MSEG_ABI_BIN
  PIN=$TC_BPF_MNT/tc/globals
  # Unique per run and per test, and within IFNAMSIZ.
  NS=mseg-cli-$$-$BATS_TEST_NUMBER
  DEV=mc$$x$BATS_TEST_NUMBER
  PEER=mp$$x$BATS_TEST_NUMBER
  ip netns add "$NS"
  ip -n "$NS" link add "$DEV" type veth peer name "$PEER"
  m attach "$DEV" >/dev/null
}

teardown() {
  [[ -n ${NS2:-} ]] && ip netns del "$NS2" 2>/dev/null
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

# m ARGS...: `mseg ARGS` in the test's netns.
m() { ip netns exec "$NS" "$MSEG" "$@"; }

# r ARGS...: `mseg-rule ARGS` in the test's netns.
r() { ip netns exec "$NS" "$RULE" "$@"; }

# cfg FIELD: one field of the pinned mseg_config, as bpftool's BTF sees it.
cfg() {
  bpftool -j map dump pinned "$PIN/mseg_config" | jq -e ".[0].formatted.value.$1"
}

# active MAP: MAP's entries of the rule set in force, as bpftool -j dumps
# them (both sets hold the policy in force: each is checked alone).
active() {
  bpftool -j map dump pinned "$PIN/$1" |
    jq --argjson s "$(cfg active_set)" 'map(select(.formatted.key.set == $s))'
}

# active_rules: the active set's compiled rule entries: the trie's and the
# hash's (the entries on one port, bpf/mseg_maps.h).
active_rules() { { active mseg_rules && active mseg_rules_hash; } | jq -s add; }

# snapshot: the maps every failing command must leave untouched.
snapshot() {
  local map
  for map in mseg_source mseg_ident mseg_rules mseg_rules_hash mseg_config; do
    [[ -e $PIN/$map ]] && bpftool map dump pinned "$PIN/$map"
  done
  ls -R "$TC_BPF_MNT"
}

# filters DEV DIR: how many bpf filters DEV has on DIR in the test's netns.
filters() {
  ip netns exec "$NS" tc -j filter show dev "$1" "$2" |
    jq '[.[] | select(.kind == "bpf" and .options.prog.id != null)] | length'
}

# fails STATUS MESSAGE CMD...: CMD exits with STATUS, prints nothing on
# stdout and exactly one stderr line starting with "mseg: MESSAGE", and
# changes no map.
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
  if [[ ${#stderr_lines[@]} != 1 || $stderr != "mseg: $want"* ]]; then
    echo "$*: stderr is not one line 'mseg: $want...': $stderr" >&2
    return 1
  fi
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

# abi KEY...: fields of build/mseg-abi's line starting with KEY.
abi() { "$ABI_BIN" | awk -v k="$*" 'index($0, k " ") == 1 { print $NF }'; }

@test "every command and subcommand prints its usage with --help" {
  local -a cmds=(
    "$MSEG --help" "$MSEG -h" "$MSEG help" "$MSEG attach --help"
    "$MSEG detach --help" "$MSEG status --help" "$MSEG default --help"
    "$MSEG config --help" "$MSEG config show --help" "$MSEG config set --help"
    "$MSEG sessions --help" "$MSEG stats --help" "$MSEG rule --help"
    "$RULE --help" "$RULE add --help" "$RULE del --help" "$RULE list --help"
  )
  local c
  for c in "${cmds[@]}"; do
    # shellcheck disable=SC2086 # each entry is a command line
    run --separate-stderr $c
    [[ $status == 0 ]] || { echo "$c: exit $status" >&2; return 1; }
    [[ $output == usage:* ]] || { echo "$c: no usage on stdout" >&2; return 1; }
    [[ -z $stderr ]] || { echo "$c: stderr: $stderr" >&2; return 1; }
  done
  run "$MSEG" --help
  [[ $output == *attach* && $output == *sessions* && $output == *rule* ]]
}

@test "unknown commands, subcommands and options are usage errors" {
  fails 2 "unknown command: 'frobnicate'" "$MSEG" frobnicate
  fails 2 "missing command" "$MSEG"
  fails 2 "unknown command" "$MSEG" ../scripts/mseg-rule
  fails 2 "config: unknown subcommand" "$MSEG" config frob
  fails 2 "rule: unknown subcommand" "$RULE" frob
  fails 2 "rule: missing subcommand" "$MSEG" rule
  fails 2 "status: unknown argument: --frob" m status --frob
  fails 2 "stats: unknown argument" m stats --frob
  fails 2 "sessions: unknown option '--frob'" m sessions --frob
  fails 2 "list: unknown argument" r list --frob
  fails 2 "attach: unknown option: --frob" m attach "$DEV" --frob
  fails 2 "attach: missing DEV" m attach
  fails 2 "attach: one device at a time" m attach "$DEV" "$PEER"
  fails 2 "invalid device name" m attach "a/b"
}

@test "attach twice leaves one filter per direction and keeps the maps" {
  [[ $(filters "$DEV" ingress) == 1 && $(filters "$DEV" egress) == 1 ]]
  r add --src 10.0.0.1 --dst 10.0.0.2 --action deny
  local ino
  ino=$(stat -c %i "$PIN/mseg_source")
  run m attach "$DEV"
  [[ $status == 0 ]]
  run m attach "$DEV" --both
  [[ $status == 0 ]]
  [[ $(filters "$DEV" ingress) == 1 && $(filters "$DEV" egress) == 1 ]]
  [[ $(stat -c %i "$PIN/mseg_source") == "$ino" ]]
  [[ $(r list --json | jq length) == 1 ]]
  [[ $(cfg abi_version) == "$(abi abi_version)" ]]
}

@test "attach --ingress and --egress attach one direction" {
  m attach "$PEER" --ingress
  [[ $(filters "$PEER" ingress) == 1 && $(filters "$PEER" egress) == 0 ]]
  m detach "$PEER"
  m attach "$PEER" --egress
  [[ $(filters "$PEER" ingress) == 0 && $(filters "$PEER" egress) == 1 ]]
}

@test "an installed symlink finds the library and the build" {
  ln -s "$MSEG" "$WORK/mseg"
  run --separate-stderr ip netns exec "$NS" "$WORK/mseg" status --json
  [[ $status == 0 ]]
  [[ $(jq -r .pin_dir <<<"$output") == "$PIN" ]]
}

@test "detach removes mseg's filters and an empty clsact; again, it says there is nothing and fails" {
  run m detach "$DEV"
  [[ $status == 0 ]]
  [[ $(filters "$DEV" ingress) == 0 && $(filters "$DEV" egress) == 0 ]]
  run ip netns exec "$NS" tc -j qdisc show dev "$DEV"
  [[ $(jq '[.[] | select(.kind == "clsact")] | length' <<<"$output") == 0 ]]
  run --separate-stderr m detach "$DEV"
  [[ $status == 1 && -z $output ]]
  [[ $stderr == "mseg: mseg is not attached to $DEV (ingress egress): nothing to detach" ]]
  # The maps stay pinned for the next attach.
  [[ -e $PIN/mseg_source && -e $PIN/mseg_sessions ]]
}

@test "detach leaves clsact and other filters alone" {
  # Whichever classifier this kernel has: act_gact may be missing.
  ip netns exec "$NS" tc filter add dev "$DEV" ingress pref 7 matchall action pass 2>/dev/null ||
    ip netns exec "$NS" tc filter add dev "$DEV" ingress pref 7 u32 match u32 0 0
  m detach "$DEV"
  [[ $(filters "$DEV" ingress) == 0 && $(filters "$DEV" egress) == 0 ]]
  run ip netns exec "$NS" tc -j filter show dev "$DEV" ingress
  [[ $(jq '[.[] | select(.pref == 7)] | length' <<<"$output") -ge 1 ]]
  run ip netns exec "$NS" tc -j qdisc show dev "$DEV"
  [[ $(jq '[.[] | select(.kind == "clsact")] | length' <<<"$output") == 1 ]]
}

@test "status --json reports the pins, capacity, counts, policy and devices" {
  r add --src 10.0.0.1 --dst 10.0.0.2 --action deny
  m default deny
  run --separate-stderr m status --json
  [[ $status == 0 ]]
  local s=$output
  [[ $(jq -r .pin_dir <<<"$s") == "$PIN" ]]
  [[ $(jq .abi_version <<<"$s") == "$(abi abi_version)" ]]
  [[ $(jq .build_abi_version <<<"$s") == "$(abi abi_version)" ]]
  [[ $(jq .capacity <<<"$s") == "$(abi max_sessions)" ]]
  [[ $(jq .sessions <<<"$s") == 0 ]]
  [[ $(jq .rules <<<"$s") == 1 ]]
  [[ $(jq -r .default_action <<<"$s") == deny ]]
  [[ $(jq .policy_gen <<<"$s") == "$(cfg policy_gen)" ]]
  [[ $(jq .strict <<<"$s") == false ]]
  [[ $(jq -c --arg d "$DEV" '.attached | map(select(.dev == $d))' <<<"$s") == \
    "[{\"dev\":\"$DEV\",\"ingress\":true,\"egress\":true}]" ]]
  run m status
  [[ $status == 0 && $output == *"$DEV (ingress,egress)"* ]]
}

@test "default allow|deny sets the action and bumps policy_gen" {
  local gen
  gen=$(cfg policy_gen)
  m default deny
  [[ $(cfg default_action) == 1 && $(cfg policy_gen) == $((gen + 1)) ]]
  [[ $(m default) == deny ]]
  # Already deny: nothing to re-judge.
  m default deny
  [[ $(cfg policy_gen) == $((gen + 1)) ]]
  m default allow
  [[ $(cfg default_action) == 0 && $(cfg policy_gen) == $((gen + 2)) ]]
  [[ $(m config show --json | jq -r .default_action) == allow ]]
}

@test "config show on fresh pins: nf_conntrack's timeouts (written out), mseg-abi's defaults" {
  local key field def
  run --separate-stderr m config show --json
  [[ $status == 0 ]]
  local json=$output
  # Literally, not taken from mseg-abi: a changed default must fail here.
  [[ $(jq -c '{timeout_syn_sent, timeout_syn_recv, timeout_established, timeout_fin_wait,
    timeout_close_wait, timeout_last_ack, timeout_time_wait, timeout_close, timeout_udp,
    timeout_udp_replied, timeout_icmp, timeout_unconfirmed}' <<<"$json") == \
    '{"timeout_syn_sent":120,"timeout_syn_recv":60,"timeout_established":432000,"timeout_fin_wait":120,"timeout_close_wait":60,"timeout_last_ack":30,"timeout_time_wait":120,"timeout_close":10,"timeout_udp":30,"timeout_udp_replied":120,"timeout_icmp":30,"timeout_unconfirmed":30}' ]]
  # They are the built-in defaults: no timeout was written into the map.
  bpftool -j map dump pinned "$PIN/mseg_config" |
    jq -e '.[0].formatted.value | [to_entries[] | select(.key | startswith("to_")) | .value]
      | length == 13 and all(. == 0)'
  while read -r key field; do
    def=$(abi "default config.$field")
    [[ -n $def ]] || { echo "mseg-abi has no default for $field" >&2; return 1; }
    [[ $(jq ".$key" <<<"$json") == "$def" ]] ||
      { echo "$key: $(jq ".$key" <<<"$json") != $def" >&2; return 1; }
  done < <(jq -r 'keys[] | select(startswith("timeout_")) | "\(.) to_\(ltrimstr("timeout_"))"' <<<"$json")
  [[ $(jq .warn_pct <<<"$json") == "$(abi default config.warn_pct)" ]]
  [[ $(jq .event_rate <<<"$json") == "$(abi default config.event_rate)" ]]
  [[ $(jq .strict <<<"$json") == false ]]
  run m config show
  [[ $status == 0 && $output == *timeout_established* ]]
}

@test "config set writes each key into its own field" {
  local -a keys
  mapfile -t keys < <(m config --help | awk '/^keys:/ { k = 1; next } k { print $1 }')
  (( ${#keys[@]} >= 19 ))
  local key field i=0 v
  for key in "${keys[@]}"; do
    i=$((i + 1))
    case $key in
      strict) m config set strict on ;;
      mode) m config set mode audit ;;
      accounting) m config set accounting off ;;
      *_pct) m config set "$key" $((40 + i)) ;;
      *) m config set "$key" $((1000 + i)) ;;
    esac
  done
  i=0
  for key in "${keys[@]}"; do
    i=$((i + 1))
    field=$key
    [[ $key == timeout_* ]] && field=to_${key#timeout_}
    # two bits of one field: audit (1) and no accounting (16)
    [[ $key == accounting ]] && field=mode
    v=$(cfg "$field")
    case $key in
      strict) [[ $v == 1 ]] ;;
      mode | accounting) [[ $v == 17 ]] ;;
      *_pct) [[ $v == $((40 + i)) ]] ;;
      *) [[ $v == $((1000 + i)) ]] ;;
    esac || { echo "$key -> $field holds $v" >&2; return 1; }
  done
  [[ $(m config show --json | jq .strict) == true ]]
  [[ $(m config show --json | jq -r .mode) == audit ]]
  [[ $(m config show --json | jq .accounting) == false ]]
  # each key sets its own bit only
  m config set mode enforce
  [[ $(cfg mode) == 16 ]]
  m config set accounting on
  [[ $(cfg mode) == 0 && $(m config show --json | jq .accounting) == true ]]
  m config set strict off
  m config set timeout_udp 0
  [[ $(cfg strict) == 0 ]]
  [[ $(m config show --json | jq .timeout_udp) == "$(abi default config.to_udp)" ]]
}

@test "config errors: unknown key, bad values, nothing written" {
  fails 2 "unknown config key: 'nope'" m config set nope 1
  fails 2 "invalid value for strict" m config set strict maybe
  fails 2 "invalid value for accounting" m config set accounting 1
  fails 2 "invalid value for timeout_udp" m config set timeout_udp abc
  fails 2 "invalid value for timeout_udp" m config set timeout_udp -5
  fails 2 "invalid value for timeout_udp" m config set timeout_udp 4294967296
  fails 2 "invalid value for timeout_udp" m config set timeout_udp 99999999999999999999
  fails 2 "invalid value for timeout_udp" m config set timeout_udp 1.5
  fails 2 "invalid value for warn_pct" m config set warn_pct 101
  fails 2 "config set needs KEY VALUE" m config set strict
  fails 2 "config: missing subcommand" m config
  fails 2 "invalid default action: 'log'" m default log
  fails 2 "default takes one argument" m default allow deny
  m config set timeout_udp 4294967295
  [[ $(cfg to_udp) == 4294967295 ]]
}

@test "rule add/list/del round trip, IPv4" {
  local gen
  gen=$(cfg policy_gen)
  run --separate-stderr r add --src 10.1.2.3 --dst 10.4.5.6 --proto tcp --dport 443 --action deny
  [[ $status == 0 ]]
  [[ $(cfg policy_gen) == $((gen + 2)) ]]
  run --separate-stderr r list --json
  [[ $status == 0 ]]
  [[ $(jq -c . <<<"$output") == \
    '[{"id":1,"src":"10.1.2.3","dst":"10.4.5.6","proto":"tcp","sport":"any","dport":443,"action":"deny","priority":100,"audit":false,"would_deny":0,"hits":0,"packets":0,"comment":""}]' ]]
  # What the compiler laid out (BTF): the two hosts are identities, the
  # rule one entry of their key on tcp/443 with the rule's id and action
  # (beside the failsafes' entries, between any and any: ids 0 and 0).
  active mseg_ident | jq -e 'map(.formatted.key.addr[12:16]) | sort == [[10,1,2,3],[10,4,5,6]]'
  active_rules | jq -e 'map(select(.formatted.key.src_id != 0)) | length == 1 and
    (.[0].formatted | .key.proto == 6 and .key.dport == [1,187] and .key.prefixlen == 120
      and .value.c[0].rule_id == 1 and .value.c[0].action == 1)'
  run m rule list
  [[ $status == 0 && $output == *10.1.2.3*10.4.5.6*tcp*443*deny* ]]
  r del --src 10.1.2.3 --dst 10.4.5.6 --proto tcp --dport 443
  [[ $(cfg policy_gen) == $((gen + 4)) ]]
  [[ $(r list --json) == "[]" ]]
}

@test "rule add/list/del round trip, IPv6" {
  r add --src 2001:db8::1 --dst 2001:DB8:0:0:0:0:0:2 --proto icmp --action log
  r add --src fe80::1 --dst fe80::2 --proto udp --sport 546 --dport 547 --action allow
  run --separate-stderr r list --json
  [[ $status == 0 ]]
  [[ $(jq -c 'map(select(.src == "2001:db8::1"))' <<<"$output") == \
    '[{"id":1,"src":"2001:db8::1","dst":"2001:db8::2","proto":"icmp","sport":"any","dport":"any","action":"log","priority":100,"audit":false,"would_deny":0,"hits":0,"packets":0,"comment":""}]' ]]
  [[ $(jq -c 'map(select(.src == "fe80::1")) | .[0] | [.proto, .sport, .dport, .action]' <<<"$output") == \
    '["udp",546,547,"allow"]' ]]
  # ICMP is ICMPv6 (58) for IPv6 addresses.
  active_rules | jq -e 'map(.formatted | select(.value.c[0].rule_id == 1) | .key.proto) == [58]'
  r del --src 2001:db8::1 --dst 2001:db8::2 --proto icmp
  r del --src fe80::1 --dst fe80::2 --proto udp --sport 546 --dport 547
  [[ $(r list --json) == "[]" ]]
}

@test "the four rule shapes are accepted, ICMP stored per family" {
  r add --src 10.0.0.1 --dst 10.0.0.2 --proto tcp --sport 1234 --dport 80 --action allow
  r add --src 10.0.0.1 --dst 10.0.0.2 --proto udp --dport 53 --action allow
  r add --src 10.0.0.1 --dst 10.0.0.2 --proto icmp --action deny
  r add --src 10.0.0.1 --dst 10.0.0.2 --action log
  r add --src 10.0.0.1 --dst 10.0.0.3 --proto any --action allow
  [[ $(r list --json | jq length) == 5 ]]
  r list --json | jq -e 'map([.proto, .sport, .dport]) | sort ==
      [["any", "any", "any"], ["any", "any", "any"], ["icmp", "any", "any"], ["tcp", 1234, 80],
       ["udp", "any", 53]]'
  # ICMP of IPv4 hosts is protocol 1 in the compiled trie
  active mseg_rules | jq -e '[.[].formatted.key | select(.prefixlen == 104) | .proto] == [1]'
}

@test "adding a rule twice leaves one; a new action replaces the old" {
  r add --src 10.0.0.1 --dst 10.0.0.2 --proto tcp --dport 22 --action deny
  local gen
  gen=$(cfg policy_gen)
  run r add --src 10.0.0.1 --dst 10.0.0.2 --proto tcp --dport 22 --action deny
  [[ $status == 0 ]]
  [[ $(r list --json | jq length) == 1 ]]
  # Nothing changed, so sessions need not be judged again.
  [[ $(cfg policy_gen) == "$gen" ]]
  r add --src 10.0.0.1 --dst 10.0.0.2 --proto tcp --dport 22 --action allow
  [[ $(r list --json | jq -c 'map(.action)') == '["allow"]' ]]
  [[ $(cfg policy_gen) == $((gen + 2)) ]]
}

@test "rules of another rule set are neither listed nor touched" {
  r add --src 10.0.0.1 --dst 10.0.0.2 --action deny
  # Put a statement into set 1 by hand, as a staged rule set would hold it.
  local -a v
  mapfile -t v < <(printf 'rule add --src 10.0.0.1 --dst 10.0.0.2 --action deny --id 1' |
    od -An -v -tx1 | tr ' ' '\n' | grep .)
  while ((${#v[@]} < 512)); do v+=(00); done
  bpftool map update pinned "$PIN/mseg_source" key hex 01 00 00 00 07 00 00 00 value hex "${v[@]}"
  [[ $(r list --json | jq length) == 1 ]]
  [[ $(m status --json | jq .rules) == 1 ]]
  r del --src 10.0.0.1 --dst 10.0.0.2
  [[ $(r list --json) == "[]" ]]
  # A set whose statements no longer match its seal (a hand edit, an
  # interrupted edit) is rewritten whole: the statement written by hand is
  # gone, the rule with it, and both sets hold the same (empty) policy.
  local src
  src=$(bpftool -j map dump pinned "$PIN/mseg_source" |
    jq -c 'map(.formatted | [.key.set, .key.index, .value.line]) | sort')
  [[ $(jq -c 'map(select(.[2] | startswith("#") or . == "failsafe default" | not))' <<<"$src") == '[]' ]]
  [[ $(jq -c 'map(select(.[0] == 0) | .[1:])' <<<"$src") == "$(jq -c 'map(select(.[0] == 1) | .[1:])' <<<"$src")" ]]
}

@test "rule errors: bad addresses, one line, nothing written" {
  local a
  # (a side may now be a prefix too: 10.0.0.1/32 is the host, docs/policy.md)
  for a in 10.0.0 10.0.0.256 10.0.0.01 010.0.0.1 " 10.0.0.1" \
    10.0.0.1.2 host.example 1::2::3 :1::2 1::2: 12345::1 1:2:3:4:5:6:7:8:9 \
    1:2:3:4:5:6:7::8 fe80::1%eth0 ::ffff:1.2.3.04 "[::1]" g::1; do
    fails 2 "invalid address for --src: '$a'" r add --src "$a" --dst 10.0.0.2 --action allow
  done
  fails 2 "invalid CIDR '10.0.0.1/33': an IPv4 prefix length is 0..32" \
    r add --src 10.0.0.1/33 --dst 10.0.0.2 --action allow
  fails 2 "invalid CIDR '::1/129': an IPv6 prefix length is 0..128" \
    r add --src ::1/129 --dst ::2 --action allow
  fails 2 "invalid address for --dst" r add --src 10.0.0.1 --dst 10.0.0.x --action allow
  fails 2 "--src and --dst must be the same address family" \
    r add --src 10.0.0.1 --dst 2001:db8::1 --action allow
  fails 2 "--src and --dst must be the same address family" \
    r del --src 2001:db8::1 --dst 10.0.0.1
}

@test "rule errors: ports, proto, action, missing options" {
  local p
  for p in 65536 -1 x 1e3 8o 99999999999999999999 " 80"; do
    fails 2 "invalid --dport: '$p'" \
      r add --src 10.0.0.1 --dst 10.0.0.2 --proto tcp --dport "$p" --action allow
  done
  fails 2 "invalid --sport: '70000'" \
    r add --src 10.0.0.1 --dst 10.0.0.2 --proto tcp --sport 70000 --dport 80 --action allow
  # (protocols by name or number now: sctp is 132, docs/policy.md)
  fails 2 "unknown --proto: 'frob'" r add --src 10.0.0.1 --dst 10.0.0.2 --proto frob --action allow
  fails 2 "unknown --proto: '256'" r add --src 10.0.0.1 --dst 10.0.0.2 --proto 256 --action allow
  fails 2 "invalid --action: 'drop'" r add --src 10.0.0.1 --dst 10.0.0.2 --action drop
  fails 2 "add: missing --src" r add --dst 10.0.0.2 --action allow
  fails 2 "add: missing --src" r add --src "" --dst 10.0.0.2 --action allow
  fails 2 "add: missing --dst" r add --src 10.0.0.1 --action allow
  fails 2 "add: missing --action" r add --src 10.0.0.1 --dst 10.0.0.2
  fails 2 "del: missing --dst" r del --src 10.0.0.1
  fails 2 "--dst needs a value" r add --src 10.0.0.1 --dst
  fails 2 "add: unknown argument: --frob" r add --src 10.0.0.1 --dst 10.0.0.2 --frob 1 --action allow
}

@test "rule errors: shapes no lookup can match" {
  fails 2 "--sport needs --dport" \
    r add --src 10.0.0.1 --dst 10.0.0.2 --proto tcp --sport 1234 --action allow
  fails 2 "ports need --proto tcp or udp (not any)" \
    r add --src 10.0.0.1 --dst 10.0.0.2 --dport 80 --action allow
  fails 2 "ports need --proto tcp or udp (not any)" \
    r add --src 10.0.0.1 --dst 10.0.0.2 --proto any --sport 1 --dport 80 --action allow
  fails 2 "ports need --proto tcp or udp (not icmp)" \
    r add --src 10.0.0.1 --dst 10.0.0.2 --proto icmp --dport 8 --action allow
}

@test "deleting a rule that does not exist is an error" {
  r add --src 10.0.0.1 --dst 10.0.0.2 --proto tcp --dport 80 --action deny
  fails 1 "no such rule: 10.0.0.1 -> 10.0.0.2 proto tcp dport 81" \
    r del --src 10.0.0.1 --dst 10.0.0.2 --proto tcp --dport 81
  fails 1 "no such rule" r del --src 10.0.0.1 --dst 10.0.0.2
  [[ $(r list --json | jq length) == 1 ]]
}

@test "without pinned maps every map command says to attach first" {
  mkdir "$WORK/empty"
  mount -t bpf bpf "$WORK/empty"
  export TC_BPF_MNT=$WORK/empty
  PIN=$TC_BPF_MNT/tc/globals
  local msg="no pinned maps under $PIN: run 'mseg attach DEV' first"
  fails 1 "$msg" r add --src 10.0.0.1 --dst 10.0.0.2 --action allow
  fails 1 "$msg" r del --src 10.0.0.1 --dst 10.0.0.2
  fails 1 "$msg" r list
  fails 1 "$msg" m status
  fails 1 "$msg" m status --json
  fails 1 "$msg" m default deny
  fails 1 "$msg" m config show
  fails 1 "$msg" m config set strict on
  fails 1 "$msg" m sessions
  fails 1 "$msg" m stats --json
  # Not even the directory tc would pin into.
  [[ ! -e $TC_BPF_MNT/tc ]]
}

@test "attach to a device that does not exist" {
  fails 1 "no such device: nosuchdev0" m attach nosuchdev0
  fails 1 "no such device: nosuchdev0" m detach nosuchdev0
}

@test "attach refuses pinned maps of another ABI version" {
  local -a val
  mapfile -t val < <(bpftool -j map lookup pinned "$PIN/mseg_config" key hex 00 00 00 00 |
    jq -r '.value[] | ltrimstr("0x")')
  # abi_version is the first u32 (mseg-abi: field config.abi_version 0 4).
  [[ $("$ABI_BIN" | awk '$2 == "config.abi_version" && $1 == "field" { print $3, $4 }') == "0 4" ]]
  val[0]=63
  bpftool map update pinned "$PIN/mseg_config" key hex 00 00 00 00 value hex "${val[@]}"
  fails 1 "pinned maps are ABI version 99, this build is $(abi abi_version): detach mseg" \
    m attach "$PEER"
  [[ $(filters "$PEER" ingress) == 0 ]]
}

@test "attach refuses a pinned map whose layout differs" {
  mkdir "$WORK/empty"
  mount -t bpf bpf "$WORK/empty"
  export TC_BPF_MNT=$WORK/empty
  PIN=$TC_BPF_MNT/tc/globals
  mkdir -p "$PIN"
  bpftool map create "$PIN/mseg_source" type hash key 8 value 8 entries 16 name mseg_source
  fails 1 "pinned map mseg_source (key/value/max 8 8 16) does not match this build" \
    m attach "$PEER"
  [[ $(filters "$PEER" ingress) == 0 ]]
}

@test "sessions --json: one object per session, originator first" {
  [[ $(m sessions --json) == "[]" ]]
  NS2=mseg-cli2-$$-$BATS_TEST_NUMBER
  ip netns add "$NS2"
  ip -n "$NS" link set "$PEER" netns "$NS2"
  # No IPv6 chatter (router solicitations, MLD): only our flows make sessions.
  local ns
  for ns in "$NS" "$NS2"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
  done
  ip -n "$NS" addr add 10.99.0.2/24 dev "$DEV"
  ip -n "$NS" link set "$DEV" up
  ip -n "$NS2" addr add 10.99.0.1/24 dev "$PEER"
  ip -n "$NS2" link set "$PEER" up
  # UDP both ways: from the higher address (the key's "hi" end) to the
  # lower, and from the lower to the higher.
  local echo='import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("0.0.0.0",int(sys.argv[1]))); s.settimeout(8)
d,a=s.recvfrom(100); s.sendto(d,a)'
  local send='import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("0.0.0.0",int(sys.argv[3]))); s.settimeout(2)
for i in range(20):
    s.sendto(b"ping",(sys.argv[1],int(sys.argv[2])))
    try:
        s.recvfrom(100); break
    except socket.timeout: pass'
  ip netns exec "$NS2" timeout -k 5 10 python3 -c "$echo" 9999 3>&- &
  local p1=$!
  ip netns exec "$NS" timeout -k 5 10 python3 -c "$echo" 9998 3>&- &
  local p2=$!
  # A datagram to an unbound port would draw an ICMP error: wait for both.
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -n $(ip netns exec "$NS2" ss -Hunl sport = :9999) &&
      -n $(ip netns exec "$NS" ss -Hunl sport = :9998) ]] && break
    sleep 0.1
  done
  ip netns exec "$NS" timeout -k 5 10 python3 -c "$send" 10.99.0.1 9999 40001
  ip netns exec "$NS2" timeout -k 5 10 python3 -c "$send" 10.99.0.2 9998 40002
  wait "$p1" "$p2"
  run --separate-stderr m sessions --json
  [[ $status == 0 ]]
  local s=$output
  jq -e 'type == "array" and length == 2' <<<"$s"
  jq -e 'map(select(.src == "10.99.0.2" and .sport == 40001 and .dst == "10.99.0.1"
    and .dport == 9999 and .proto == "udp" and .state == "NONE" and .action == "allow"
    and .packets == 2 and .bytes > 0 and (.idle_s | type) == "number"
    and .idle_s >= 0 and .idle_s < 60 and .age_s >= .idle_s)) | length == 1' <<<"$s"
  jq -e 'map(select(.src == "10.99.0.1" and .sport == 40002 and .dst == "10.99.0.2"
    and .dport == 9998 and .packets == 2)) | length == 1' <<<"$s"
  jq -e 'map(keys) | unique == [["action","age_s","bytes","confirmed","dport","dst",
    "expired","idle_s","packets","pickup","proto","rule","sport","src","state"]]' <<<"$s"
  # no rule: the default action decided both
  jq -e 'map(.rule) == ["default","default"]' <<<"$s"
  [[ $(m sessions --json --state none | jq length) == 2 ]]
  [[ $(m sessions --json --state ESTABLISHED) == "[]" ]]
  run m sessions
  [[ $status == 0 && ${lines[0]} == PROTO* && ${#lines[@]} == 3 ]]
  fails 2 "unknown state: 'SYN'" m sessions --state SYN
  fails 2 "sessions: option '--state' wants a value" m sessions --state
}

@test "stats sums every per-CPU counter" {
  run --separate-stderr m stats --json
  [[ $status == 0 ]]
  # Every field BTF knows, and only those.
  [[ $(jq -c 'keys' <<<"$output") == \
    "$(bpftool -j map dump pinned "$PIN/mseg_stats" | jq -c '.[0].formatted.values[0].value | keys')" ]]
  # bpftool writes one value to every CPU's copy: total = 5 * CPUs.
  local size ncpu
  size=$("$ABI_BIN" | awk '$1 == "map" && $2 == "mseg_stats" { print $4 }')
  local -a val=(05)
  while ((${#val[@]} < size)); do val+=(00); done
  bpftool map update pinned "$PIN/mseg_stats" key hex 00 00 00 00 value hex "${val[@]}"
  ncpu=$(bpftool -j map dump pinned "$PIN/mseg_stats" | jq '.[0].values | length')
  [[ $(m stats --json | jq .total) == $((5 * ncpu)) ]]
  run m stats
  [[ $status == 0 && $output == *total*$((5 * ncpu))* ]]
}

@test "concurrent rule edits serialise on the lock" {
  local gen before_rules
  gen=$(cfg policy_gen)
  before_rules=$(r list --json | jq length)
  local i
  (for ((i = 1; i <= 20; i++)); do
    r add --src 10.1.0.$i --dst 10.9.9.9 --proto tcp --dport 80 --action deny >/dev/null
  done) 3>&- &
  local a=$!
  (for ((i = 1; i <= 20; i++)); do
    r add --src fd00::$i --dst fd00::99 --proto udp --dport 53 --action allow >/dev/null
  done) 3>&- &
  local b=$!
  wait "$a"
  wait "$b"
  [[ $(r list --json | jq length) == $((before_rules + 40)) ]]
  [[ $(r list --json | jq '[.[] | select(.dst == "10.9.9.9" and .action == "deny")] | length') == 20 ]]
  [[ $(r list --json | jq '[.[] | select(.dst == "fd00::99" and .proto == "udp")] | length') == 20 ]]
  # Each add bumped the generation exactly twice (with its switch and after
  # the sync): no read-modify-write lost.
  [[ $(cfg policy_gen) == $((gen + 80)) ]]
}

@test "lib/sh takes every layout from mseg-abi, and its enums match the header" {
  run bash -c '
    set -euo pipefail
    MSEG_ROOT=$1
    source "$MSEG_ROOT/lib/sh/mseg-common.sh"
    source "$MSEG_ROOT/lib/sh/mseg-layout.sh"
    mseg_abi_load
    for f in "${!MSEG_FIELD_OFF[@]}"; do
      echo "field $f ${MSEG_FIELD_OFF[$f]} ${MSEG_FIELD_SIZE[$f]}"
    done
    for n in "${MSEG_ABI_MAPS[@]}"; do
      echo "map $n ${MSEG_MAP_KEYSZ[$n]} ${MSEG_MAP_VALSZ[$n]} ${MSEG_MAP_MAX[$n]}"
    done
    for k in "${!MSEG_DEFAULT[@]}"; do echo "default config.$k ${MSEG_DEFAULT[$k]}"; done
    for k in "${!MSEG_CONST[@]}"; do echo "const $k ${MSEG_CONST[$k]}"; done
    echo "version $MSEG_VERSION"
    echo "abi_version $MSEG_ABI_VERSION"
    echo "max_sessions $MSEG_ABI_MAX_SESSIONS"
    for i in "${!MSEG_ACTION_NAMES[@]}"; do
      n=${MSEG_ACTION_NAMES[i]^^}
      [[ $n == WOULD-DENY ]] && n=AUDIT
      echo "enum MSEG_ACT_$n $i"
    done
    for i in "${!MSEG_STATE_NAMES[@]}"; do echo "enum MSEG_TCP_${MSEG_STATE_NAMES[i]} $i"; done
  ' _ "$ROOT"
  [[ $status == 0 ]]
  diff <(grep -v '^enum' <<<"$output" | sort) <("$ABI_BIN" | sort)
  diff <(grep '^enum' <<<"$output" | sort) \
    <(sed -nE 's/^\s*(MSEG_(ACT|TCP)_[A-Z0-9_]+) = ([0-9]+),.*/enum \1 \3/p' \
      "$ROOT/bpf/mseg_abi.h" | sort)
}

@test "config CLI keys cover every tunable mseg_config field" {
  local fields keys
  fields=$("$ABI_BIN" | awk '$1 == "field" && $2 ~ /^config\./ { sub("config.", "", $2); print $2 }' |
    grep -vxE 'abi_version|policy_gen|default_action|active_set|staged_gen' | sort)
  # accounting is a bit of mode, as the audit mode is
  keys=$(m config show --json | jq -r 'keys[] | select(. != "default_action" and . != "accounting")
    | if startswith("timeout_") then "to_" + ltrimstr("timeout_") else . end' | sort)
  diff <(echo "$fields") <(echo "$keys")
}

@test "shellcheck passes on the operator scripts and lib/sh" {
  command -v shellcheck  # installed by scripts/mseg-deps; missing means a red test
  cd "$ROOT"
  run shellcheck -x scripts/* lib/sh/*.sh tests/run tests/demo .ci/run bench/run bench/*.sh \
    tests/bats/*.bats tests/bats/helpers/*.bash
  echo "$output"
  [[ $status == 0 ]]
}
