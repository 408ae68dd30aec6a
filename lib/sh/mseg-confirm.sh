# shellcheck shell=bash
# mseg-confirm.sh: `mseg apply --confirm SECONDS FILE` and its rollback
# process, `mseg confirm [--rollback]`, and what `mseg status` reports of
# them. Sourced by scripts/mseg-apply and scripts/mseg; requires
# mseg-common.sh.
#
# State lives next to the edit lock, in $(mseg_lock_key).confirm, a
# directory only root may enter (mode 0700), so it is per pin set:
#   previous.rules  `mseg save` before the apply: what a rollback applies
#   applied.rules   `mseg save` right after it: a policy in force that
#                   differs from this at the deadline was changed by another
#                   edit since (superseded), and is not rolled back
#   pending.json    the pending confirmation: token, rollback pid, deadline
#   last.json       how the last one ended: confirmed, rolled_back,
#                   superseded or rollback_failed
#   log             the rollback process's stderr (it also logs to syslog)
# Every change of pending.json and last.json is made under the edit lock,
# by rename, so `mseg status` (no lock) reads a whole record or none.
# shellcheck disable=SC2034 # globals serve the sourcing scripts

readonly MSEG_CONFIRM_MAX=86400

#######################################
# Die with a usage error unless $1 is whole seconds in 1..MSEG_CONFIRM_MAX.
#######################################
mseg_confirm_check_seconds() {
  if ! mseg_is_uint "$1" "$MSEG_CONFIRM_MAX" || (($1 == 0)); then
    mseg_usage_die "apply: --confirm takes whole seconds (1..$MSEG_CONFIRM_MAX), not '$1'"
  fi
}

# Print this pin set's state directory (it may not exist).
mseg_confirm_dir() {
  local key
  key=$(mseg_lock_key) || exit
  printf '%s.confirm\n' "$key"
}

# RFC 3339 UTC of epoch second $1 (docs/json.md).
_mseg_confirm_time() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

#######################################
# One line to stderr ("mseg: ...") and to syslog (daemon facility), where
# the rollback process's messages must be found after its shell is gone.
# Arguments: syslog level, message.
#######################################
_mseg_confirm_log() {
  local level=$1
  shift
  printf 'mseg: %s\n' "$*" >&2
  logger -t mseg -p "daemon.$level" -- "$*" 2>/dev/null || true
}

# _mseg_confirm_put DIR NAME JSON: write DIR/NAME whole, by rename.
_mseg_confirm_put() {
  { printf '%s\n' "$3" >"$1/.$2.tmp" && mv -f -- "$1/.$2.tmp" "$1/$2"; } ||
    mseg_die "cannot write $1/$2"
}

# _mseg_confirm_alive PID TOKEN: PID is the rollback process of TOKEN (a
# recycled pid is never taken for it: its command line must name TOKEN).
_mseg_confirm_alive() {
  local pid=$1 token=$2 cmd
  [[ $pid =~ ^[1-9][0-9]*$ && -n $token ]] || return 1
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmd == *" confirm --timer $token "* ]]
}

# _mseg_confirm_stop PID TOKEN: end that rollback process, and only it.
_mseg_confirm_stop() {
  if _mseg_confirm_alive "$1" "$2"; then
    kill -TERM "$1" 2>/dev/null || true
  fi
}

# _mseg_confirm_mseg CMD ARGS...: scripts/mseg-CMD (or scripts/mseg for
# CMD "mseg") under the edit lock this process holds.
_mseg_confirm_mseg() {
  local cmd=$1
  shift
  if [[ $cmd == mseg ]]; then cmd=""; else cmd="-$cmd"; fi
  MSEG_LOCK_FD=$MSEG_LOCK_FD "$MSEG_ROOT/scripts/mseg$cmd" "$@"
}

# _mseg_confirm_pending DIR: print the pending record, or fail.
_mseg_confirm_pending() {
  local rec
  rec=$(cat -- "$1/pending.json" 2>/dev/null) || return 1
  jq -e 'type == "object" and (.token | type) == "string"' >/dev/null 2>&1 <<<"$rec" ||
    return 1
  printf '%s\n' "$rec"
}

# _mseg_confirm_end DIR REC STATE REASON: the pending confirmation REC
# ended as STATE: record it in last.json, then forget it.
_mseg_confirm_end() {
  local dir=$1 rec=$2 state=$3 reason=$4
  _mseg_confirm_put "$dir" last.json "$(jq -c --arg state "$state" --arg reason "$reason" \
    --argjson now "$(date +%s)" \
    '{state: $state, file, seconds, deadline_epoch, pid, token,
      time_epoch: $now, reason: (if $reason == "" then null else $reason end)}' <<<"$rec")"
  rm -f -- "$dir/pending.json"
}

# Close every descriptor above 2 (a pipe of an SSH session, bats' fd 3, the
# edit lock): the rollback process must hold none of its parent's.
_mseg_confirm_close_fds() {
  local f fd
  for f in /proc/self/fd/*; do
    fd=${f##*/}
    ((fd > 2)) || continue
    { exec {fd}>&-; } 2>/dev/null || true
  done
}

#######################################
# mseg apply --confirm SECONDS FILE: validate FILE, save the policy in
# force, start the rollback process, apply FILE, and leave a pending
# confirmation whose deadline is SECONDS after the apply ended. A bad FILE
# changes nothing and starts nothing; so does a pending confirmation
# (refused: confirm or roll back the first one before another).
# Arguments:
#   SECONDS, FILE (a real file), and the name to report ("-" for stdin).
#######################################
mseg_confirm_apply() {
  local secs=$1 file=$2 name=${3:-$2} dir rec token pid i now deadline out
  mseg_confirm_check_seconds "$secs"
  [[ $name == - ]] || name=$(readlink -f -- "$name")
  "$MSEG_RULESET_BIN" check "$file" >/dev/null || exit
  mseg_lock
  dir=$(mseg_confirm_dir) || exit
  _mseg_lock_dir "$dir"
  if rec=$(_mseg_confirm_pending "$dir"); then
    deadline=$(jq -r .deadline_epoch <<<"$rec")
    mseg_die "apply: a confirmation is pending (applied from $(jq -r .file <<<"$rec"), rolled back at $(_mseg_confirm_time "$deadline")): 'mseg confirm' keeps it, 'mseg confirm --rollback' ends it; then apply again"
  fi
  _mseg_confirm_mseg save >"$dir/.previous.rules.tmp" ||
    mseg_die "apply: cannot save the policy in force: nothing changed"
  mv -f -- "$dir/.previous.rules.tmp" "$dir/previous.rules"
  rm -f -- "$dir/applied.rules" "$dir"/timer.*
  token=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  # The deadline is final once FILE is in force; until then it is this.
  _mseg_confirm_put "$dir" pending.json "$(jq -n -c --arg token "$token" --arg file "$name" \
    --argjson secs "$secs" --argjson deadline $(($(date +%s) + secs + 1)) \
    '{token: $token, pid: null, file: $file, seconds: $secs, deadline_epoch: $deadline}')"
  # The rollback process: a session of its own (no terminal, no group a
  # shell's hangup or kill reaches), no descriptor of ours, not the lock.
  (
    cd / || exit 1
    _mseg_confirm_close_fds
    exec setsid env -u MSEG_LOCK_FD TC_BPF_MNT="${TC_BPF_MNT:-/sys/fs/bpf}" \
      MSEG_LOCK_DIR="${MSEG_LOCK_DIR:-/run/mseg}" MSEG_ROOT="$MSEG_ROOT" \
      "$MSEG_ROOT/scripts/mseg" confirm --timer "$token" </dev/null >"$dir/log" 2>&1
  ) &
  # It reports its own pid once it runs: FILE is applied only then.
  for ((i = 0; i < 300; i++)); do
    [[ -s $dir/timer.$token ]] && break
    sleep 0.1
  done
  pid=$(cat -- "$dir/timer.$token" 2>/dev/null) || pid=""
  rm -f -- "$dir/timer.$token"
  if ! _mseg_confirm_alive "$pid" "$token"; then
    rm -f -- "$dir/pending.json"
    mseg_die "apply: the rollback process did not start: nothing changed"
  fi
  rec=$(jq -c --argjson pid "$pid" '.pid = $pid' "$dir/pending.json")
  _mseg_confirm_put "$dir" pending.json "$rec"
  if ! out=$(_mseg_confirm_mseg apply "$file"); then
    rm -f -- "$dir/pending.json"
    _mseg_confirm_stop "$pid" "$token"
    mseg_die "apply: $name was not applied: nothing changed, no rollback pending"
  fi
  printf '%s\n' "$out"
  { _mseg_confirm_mseg save >"$dir/.applied.rules.tmp" &&
    mv -f -- "$dir/.applied.rules.tmp" "$dir/applied.rules"; } ||
    _mseg_confirm_log warning "apply: cannot save the applied policy: it is rolled back at the deadline even after another edit"
  # The first whole second at least SECONDS after FILE is in force.
  now=$(date +%s)
  deadline=$((now + secs + 1))
  _mseg_confirm_put "$dir" pending.json "$(jq -c --argjson d "$deadline" --argjson now "$now" \
    '.deadline_epoch = $d | .time_epoch = $now' <<<"$rec")"
  printf "pending: 'mseg confirm' before %s (%s s) keeps it; otherwise the previous policy comes back by itself\n" \
    "$(_mseg_confirm_time "$deadline")" "$secs"
}

#######################################
# The rollback process (`mseg confirm --timer TOKEN`, started by
# mseg_confirm_apply): wait for the deadline, take the edit lock, and put
# the saved policy back, unless the confirmation was confirmed or ended
# meanwhile (it is no longer pending with TOKEN), or the policy in force is
# no longer the one applied (superseded by another edit: left alone).
#######################################
mseg_confirm_timer() {
  local token=$1 dir rec now deadline secs sleeper="" cur
  dir=$(mseg_confirm_dir) || exit
  trap '' HUP
  # shellcheck disable=SC2064 # the sleeper's pid is read when the trap runs
  trap '[[ -n $sleeper ]] && kill "$sleeper" 2>/dev/null; exit 0' TERM INT
  printf '%s\n' "$BASHPID" >"$dir/timer.$token"
  while :; do
    rec=$(_mseg_confirm_pending "$dir") || exit 0
    [[ $(jq -r .token <<<"$rec") == "$token" ]] || exit 0
    deadline=$(jq -r .deadline_epoch <<<"$rec")
    now=$(date +%s)
    if ((now >= deadline)); then
      MSEG_LOCK_TIMEOUT=$MSEG_CONFIRM_MAX mseg_lock
      # Confirmed, rolled back or ended while the lock was awaited: nothing to do.
      rec=$(_mseg_confirm_pending "$dir") || exit 0
      [[ $(jq -r .token <<<"$rec") == "$token" ]] || exit 0
      # The apply that started us held the lock until FILE was in force and
      # its deadline final: a slow apply moves it past the first one.
      deadline=$(jq -r .deadline_epoch <<<"$rec")
      (($(date +%s) < deadline)) || break
      exec {MSEG_LOCK_FD}<&-
      unset MSEG_LOCK_FD
      continue
    fi
    sleep $((deadline - now)) &
    sleeper=$!
    wait "$sleeper" || true
    sleeper=""
  done
  secs=$(jq -r .seconds <<<"$rec")
  if [[ -f $dir/applied.rules ]] && cur=$(_mseg_confirm_mseg save) &&
    [[ $cur != "$(cat -- "$dir/applied.rules")" ]]; then
    _mseg_confirm_end "$dir" "$rec" superseded \
      "the policy was changed by another edit after 'mseg apply --confirm'"
    _mseg_confirm_log notice "confirm: no 'mseg confirm' within $secs s, but the policy was changed since: not rolled back"
    return 0
  fi
  if ! _mseg_confirm_mseg apply "$dir/previous.rules" >&2; then
    _mseg_confirm_end "$dir" "$rec" rollback_failed \
      "could not apply the previous policy: run 'mseg apply $dir/previous.rules'"
    _mseg_confirm_log err "confirm: no 'mseg confirm' within $secs s, and the rollback FAILED: the previous policy is in $dir/previous.rules"
    return 1
  fi
  _mseg_confirm_end "$dir" "$rec" rolled_back "no 'mseg confirm' within $secs s"
  _mseg_confirm_log warning "confirm: no 'mseg confirm' within $secs s of 'mseg apply --confirm $(jq -r .file <<<"$rec")': rolled back to the previous policy"
}

#######################################
# mseg confirm: keep the pending policy; with "rollback", go back to the
# previous one now. Dies when nothing is pending, and (keep) when the
# deadline has passed while the rollback process still runs: it is taking
# the policy back.
#######################################
mseg_confirm_now() {
  local what=$1 dir rec pid token deadline
  mseg_lock
  dir=$(mseg_confirm_dir) || exit
  rec=$(_mseg_confirm_pending "$dir") ||
    mseg_die "confirm: no confirmation is pending (see 'mseg status')"
  pid=$(jq -r '.pid // empty' <<<"$rec")
  token=$(jq -r .token <<<"$rec")
  deadline=$(jq -r .deadline_epoch <<<"$rec")
  if [[ $what == rollback ]]; then
    _mseg_confirm_mseg apply "$dir/previous.rules" >/dev/null ||
      mseg_die "confirm: could not apply the previous policy ($dir/previous.rules): still pending"
    _mseg_confirm_end "$dir" "$rec" rolled_back "mseg confirm --rollback"
    _mseg_confirm_stop "$pid" "$token"
    _mseg_confirm_log notice "confirm: rolled back to the policy in force before 'mseg apply --confirm' (mseg confirm --rollback)" 2>/dev/null
    echo "rolled back: the policy in force before 'mseg apply --confirm' is back"
    return 0
  fi
  if (($(date +%s) >= deadline)) && _mseg_confirm_alive "$pid" "$token"; then
    mseg_die "confirm: too late: the deadline was $(_mseg_confirm_time "$deadline"); the previous policy is being put back (see 'mseg status')"
  fi
  _mseg_confirm_end "$dir" "$rec" confirmed ""
  _mseg_confirm_stop "$pid" "$token"
  echo "confirmed: the policy applied from $(jq -r .file <<<"$rec") stays"
}

#######################################
# Print the "confirm" object of `mseg status --json`: the pending
# confirmation, else how the last one ended, else state "none"; every field
# present, null where it has no value.
#######################################
mseg_confirm_status_json() {
  local dir rec state=pending alive=null
  dir=$(mseg_confirm_dir) || exit
  if ! rec=$(_mseg_confirm_pending "$dir"); then
    state=""
    rec=$(cat -- "$dir/last.json" 2>/dev/null) || rec='{"state": "none"}'
  fi
  local pid token
  pid=$(jq -r '.pid // empty' <<<"$rec")
  token=$(jq -r '.token // empty' <<<"$rec")
  if [[ -n $pid ]]; then
    _mseg_confirm_alive "$pid" "$token" && alive=true || alive=false
  fi
  jq -c --arg state "$state" --argjson now "$(date +%s)" --argjson alive "$alive" '
    def t: if . == null then null else todate end;
    (if $state == "" then .state else $state end) as $s
    | {state: $s, file, seconds, deadline: (.deadline_epoch | t),
       seconds_left: (if $s == "pending" and .deadline_epoch != null
                      then ([.deadline_epoch - $now, 0] | max) else null end),
       pid, timer_alive: $alive, time: (.time_epoch | t), reason}' <<<"$rec"
}

# The status line of mseg_confirm_status_json's object ($1).
mseg_confirm_status_text() {
  jq -r '
    if .state == "none" then "none"
    elif .state == "pending" and .timer_alive then
      "pending: rolled back at \(.deadline) (in \(.seconds_left) s) unless '"'mseg confirm'"'"
    elif .state == "pending" then
      "pending, but its rollback process (pid \(.pid)) is gone: '"'mseg confirm'"' keeps it, '"'mseg confirm --rollback'"' goes back"
    elif .state == "rolled_back" then "rolled back at \(.time) (\(.reason))"
    elif .state == "confirmed" then "confirmed at \(.time)"
    elif .state == "superseded" then "superseded at \(.time) (\(.reason))"
    else "rollback FAILED at \(.time): \(.reason)" end' <<<"$1"
}
