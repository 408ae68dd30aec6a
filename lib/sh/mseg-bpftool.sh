#!/usr/bin/env bash
# mseg-bpftool.sh: thin wrappers around bpftool for the pinned maps.
#
# Keys and values go in as hex strings made by mseg-layout.sh; failures
# become one "mseg: ..." line. Requires mseg-common.sh and mseg-layout.sh.
# shellcheck disable=SC2034 # globals and namerefs serve the sourcing scripts

[[ -n ${MSEG_BPFTOOL_LOADED:-} ]] && return 0
MSEG_BPFTOOL_LOADED=1

#######################################
# Print the pinned path of map NAME.
#######################################
mseg_map_path() {
  printf '%s/%s\n' "$MSEG_PIN_DIR" "$1"
}

#######################################
# Run bpftool -j; print its JSON, or die with its error on one line.
#######################################
_mseg_bpftool_json() {
  local out
  if ! out=$(bpftool -j "$@" 2>&1); then
    out=$(jq -r '.error? // empty' <<<"$out" 2>/dev/null || true)
    mseg_die "bpftool $1 $2 failed: ${out:-unknown error}"
  fi
  printf '%s\n' "$out"
}

#######################################
# Print `bpftool map show` JSON of map NAME (id, sizes, max_entries).
#######################################
mseg_map_show() {
  _mseg_bpftool_json map show pinned "$MSEG_PIN_DIR/$1"
}

#######################################
# Print the whole map NAME as bpftool's JSON array (raw and BTF "formatted").
#######################################
mseg_map_dump() {
  _mseg_bpftool_json map dump pinned "$MSEG_PIN_DIR/$1"
}

#######################################
# Print the number of entries in map NAME without decoding them.
#######################################
mseg_map_count() {
  local n
  # Streamed: a full session table dumps hundreds of MB of JSON, too much
  # for a shell variable or for jq. Each entry has one raw "key":[ array.
  n=$(
    set +e
    bpftool -j map dump pinned "$MSEG_PIN_DIR/$1" 2>/dev/null |
      tr '[' '\n' | grep -c '"key":$'
    exit "${PIPESTATUS[0]}"
  ) || mseg_die "bpftool map dump of $1 failed"
  printf '%s\n' "$n"
}

#######################################
# Print the value of KEY_HEX in map NAME as hex bytes ("0a 00 ..."), or
# nothing if the key is absent; dies on any other failure.
#######################################
mseg_map_lookup() {
  local name=$1 key=$2 out rc=0
  local -a k
  read -ra k <<<"$key"
  out=$(bpftool -j map lookup pinned "$MSEG_PIN_DIR/$name" key hex "${k[@]}" 2>&1) ||
    rc=$?
  if ((rc != 0)); then
    # bpftool prints a bare null (and no error) for a missing key.
    [[ $out == null ]] && return 0
    out=$(jq -r '.error? // empty' <<<"$out" 2>/dev/null || true)
    mseg_die "lookup in $name failed: ${out:-unknown error}"
  fi
  jq -r '.value | map(ltrimstr("0x")) | join(" ")' <<<"$out"
}

#######################################
# Write KEY_HEX -> VALUE_HEX into map NAME.
#######################################
mseg_map_update() {
  local name=$1
  local -a k v
  read -ra k <<<"$2"
  read -ra v <<<"$3"
  _mseg_bpftool_json map update pinned "$MSEG_PIN_DIR/$name" \
    key hex "${k[@]}" value hex "${v[@]}" >/dev/null
}

#######################################
# Write KEY_HEX -> VALUE_HEX into map NAME only if that exact key is absent
# (BPF_NOEXIST). For an LPM trie this is the way to ask "is this very
# prefix there?": a lookup answers with the longest prefix that contains
# the key, which may be a shorter one.
# Returns:
#   1 if the key was already there (nothing written); dies on any other
#   failure.
#######################################
mseg_map_insert() {
  local name=$1 out rc=0
  local -a k v
  read -ra k <<<"$2"
  read -ra v <<<"$3"
  out=$(bpftool -j map update pinned "$MSEG_PIN_DIR/$name" \
    key hex "${k[@]}" value hex "${v[@]}" noexist 2>&1) || rc=$?
  ((rc == 0)) && return 0
  out=$(jq -r '.error? // empty' <<<"$out" 2>/dev/null || true)
  [[ $out == *"File exists"* ]] && return 1
  mseg_die "update of $name failed: ${out:-unknown error}"
}

#######################################
# Print how many entries of map NAME belong to rule set SET, without
# decoding them: streamed like mseg_map_count, because a full trie dumps
# far more JSON than jq takes quickly. Counts the BTF "set" field, which
# only the keys of the rule-set maps (mseg_ident, mseg_rules, mseg_source) have.
#######################################
mseg_map_count_set() {
  local n
  n=$(
    set +e
    bpftool -j map dump pinned "$MSEG_PIN_DIR/$1" 2>/dev/null |
      tr ',{' '[\n*]' | grep -cx "\"set\":$2"
    exit "${PIPESTATUS[0]}"
  ) || mseg_die "bpftool map dump of $1 failed"
  printf '%s\n' "$n"
}

#######################################
# Delete KEY_HEX from map NAME.
# Returns:
#   1 if the key was absent; dies on any other failure.
#######################################
mseg_map_delete() {
  local name=$1 out rc=0
  local -a k
  read -ra k <<<"$2"
  out=$(bpftool -j map delete pinned "$MSEG_PIN_DIR/$name" key hex "${k[@]}" 2>&1) ||
    rc=$?
  ((rc == 0)) && return 0
  out=$(jq -r '.error? // empty' <<<"$out" 2>/dev/null || true)
  [[ $out == *"No such file or directory"* ]] && return 1
  mseg_die "delete from $name failed: ${out:-unknown error}"
}

#######################################
# Load mseg_config's value into array NAME as hex bytes.
#######################################
mseg_config_read() {
  local hex key
  key=$(mseg_index_key_hex 0)
  hex=$(mseg_map_lookup mseg_config "$key") || exit
  [[ -n $hex ]] || mseg_die "mseg_config has no entry 0"
  # shellcheck disable=SC2086 # split the hex bytes into words on purpose
  mseg_buf_from "$1" $hex
}

#######################################
# Print config field NAME (e.g. policy_gen) as stored (0 = default).
#######################################
mseg_config_get() {
  local -a cfg
  mseg_config_read cfg
  mseg_buf_get_uint cfg "config.$1"
}

#######################################
# Read-modify-write mseg_config in one map update. Call under mseg_lock:
# only user space writes this map, so the lock makes the edit atomic.
# Arguments:
#   [--bump-gen] then FIELD VALUE pairs (field names without "config.";
#   mode sets the audit bit of config.mode, mode.acct its no-accounting bit)
#######################################
mseg_config_edit() {
  local bump=0 gen key cur mask
  local -a cfg
  if [[ ${1:-} == --bump-gen ]]; then
    bump=1
    shift
  fi
  mseg_config_read cfg
  while (($# >= 2)); do
    if [[ $1 == mode || $1 == mode.acct ]]; then
      # only the named bit: the staged bits are mseg apply --staged's; a
      # change of mode changes verdicts, so sessions are judged again
      mask=$MSEG_MODE_AUDIT
      [[ $1 == mode.acct ]] && mask=$MSEG_MODE_NO_ACCT
      cur=$(mseg_buf_get_uint cfg config.mode) || exit
      [[ $1 == mode ]] && (((cur & mask) != ($2 & mask))) && bump=1
      set -- mode $(((cur & ~mask) | ($2 & mask))) "${@:3}"
    fi
    mseg_buf_set_uint cfg "config.$1" "$2"
    shift 2
  done
  if ((bump)); then
    gen=$(mseg_buf_get_uint cfg config.policy_gen) || exit
    # Wraps like the u32 it is; sessions only compare for equality.
    mseg_buf_set_uint cfg config.policy_gen $(((gen + 1) & 0xffffffff))
  fi
  key=$(mseg_index_key_hex 0)
  mseg_map_update mseg_config "$key" "${cfg[*]}"
}

#######################################
# Bump config.policy_gen so sessions are judged again. Call under mseg_lock.
#######################################
mseg_policy_gen_bump() {
  mseg_config_edit --bump-gen
}

#######################################
# Change the policy by one statement (docs/policy.md), atomically: the
# encoder (build/mseg-ruleset edit) validates it against the policy in
# force and writes two `bpftool batch` scripts. The first makes the
# inactive rule set hold the new policy, one config write switches to it
# (with the default), the second brings the other set up to date, then a
# policy_gen bump has open sessions judged again. Each script holds only
# the entries that differ from what its set holds (both sets hold the
# policy in force between commands), so an edit costs what it changes.
# Arguments:
#   a statement (rule add ..., segment del ..., ...), or --file FILE
#   --prefix WORDS for a file of them
# Outputs:
#   the encoder's message (rule added: ..., segment web: ...)
#######################################
mseg_policy_edit() {
  local set new dir out rc=0 def
  [[ -x $MSEG_RULESET_BIN ]] || mseg_die "ruleset tool not found: $MSEG_RULESET_BIN: run 'make'"
  # bad input is a usage error whatever is pinned
  if [[ ${1:-} != --file ]]; then
    "$MSEG_RULESET_BIN" parse "$@" >/dev/null || exit
  fi
  mseg_abi_load
  mseg_require_maps mseg_ident mseg_rules mseg_source mseg_config
  dir=$(mktemp -d) || mseg_die "mktemp failed"
  # shellcheck disable=SC2064 # expand now: the path is local
  trap "rm -rf -- '$dir'" EXIT
  if [[ ${1:-} == --file ]]; then
    # read whole (and bounded) before the lock is taken: stdin's writer
    # may hold it, and what is applied is what was read
    "$MSEG_RULESET_BIN" copy "$2" "$dir/input" || exit
    set -- --file "$dir/input" "${@:3}"
  fi
  mseg_lock
  set=$(mseg_config_get active_set) || exit
  new=$((1 - set))
  out=$("$MSEG_RULESET_BIN" edit "$set" "$new" "$dir/write" "$dir/sync" "$@") || rc=$?
  if ((rc == 3)); then
    printf '%s\n' "${out%%$'\n'*}"
    return 0
  fi
  ((rc == 0)) || exit "$rc"
  mseg_child bpftool batch file "$dir/write" >/dev/null 2>"$dir/err" ||
    mseg_die "writing the new rule set failed: $(tail -n 1 "$dir/err")"
  def=${out##*$'\n'default }
  # New flows see the new set from this write on, and open sessions are
  # judged again: the generation moves in the same write, so an edit killed
  # after it is a rule every session sees. Once the old set holds the new
  # policy too, a second bump catches a packet that raced the switch (read
  # the new generation, then the old set) and cached an old verdict.
  mseg_config_edit --bump-gen active_set "$new" default_action "$(mseg_action_num "$def")"
  mseg_child bpftool batch file "$dir/sync" >/dev/null 2>"$dir/serr" || echo failed >>"$dir/serr"
  mseg_policy_gen_bump
  [[ ! -s $dir/serr ]] ||
    mseg_die "switched to the new rule set, but bringing the old one up to date failed: the next edit rewrites it"
  printf '%s\n' "${out%%$'\n'*}"
}
