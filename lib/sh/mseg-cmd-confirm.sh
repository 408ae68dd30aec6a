# shellcheck shell=bash
# mseg-cmd-confirm.sh: `mseg confirm`, the end of `mseg apply --confirm`.
# Requires mseg-common.sh and mseg-confirm.sh.

mseg_confirm_usage() {
  cat <<'EOF'
usage: mseg confirm [--rollback]

Keep the policy applied by 'mseg apply --confirm SECONDS FILE'. Unless
'mseg confirm' comes within SECONDS, the policy in force before it is put
back by itself (the rollback process 'mseg apply --confirm' started, which
outlives the shell that ran it). 'mseg status' shows what is pending and
its deadline, or how the last one ended.

--rollback   put the previous policy back now, and end the confirmation

Fails, saying so, when no confirmation is pending, and when the deadline
has passed (the rollback is then under way). An edit made while one is
pending (mseg apply, rule add, ...) supersedes it: the rollback leaves a
policy changed since the apply alone, and records that.

(--timer TOKEN is the rollback process itself; it is not for operators.)
EOF
}

mseg_cmd_confirm() {
  local what=keep
  if mseg_wants_help "$@"; then
    mseg_confirm_usage
    return 0
  fi
  if [[ ${1:-} == --timer ]]; then
    (($# == 2)) || mseg_usage_die "confirm: --timer takes one token"
    mseg_confirm_timer "$2"
    return
  fi
  while (($#)); do
    case $1 in
      --rollback) what=rollback ;;
      *) mseg_usage_die "confirm: unknown argument: $1 (see 'mseg confirm --help')" ;;
    esac
    shift
  done
  mseg_confirm_now "$what"
}
