#!/usr/bin/env bash
# mseg-common.sh: errors, paths and the edit lock shared by every mseg command.
#
# Sourced, never run. The caller sets MSEG_ROOT (the repository or install
# root) before sourcing; everything else may be overridden from the
# environment so tests and installed copies find their own build.
# shellcheck disable=SC2034 # globals and namerefs serve the sourcing scripts

[[ -n ${MSEG_COMMON_LOADED:-} ]] && return 0
MSEG_COMMON_LOADED=1

: "${MSEG_ROOT:?MSEG_ROOT must be set before sourcing mseg-common.sh}"
MSEG_OBJ=${MSEG_OBJ:-$MSEG_ROOT/build/mseg.bpf.o}
MSEG_ABI_BIN=${MSEG_ABI_BIN:-$MSEG_ROOT/build/mseg-abi}
MSEG_GC_BIN=${MSEG_GC_BIN:-$MSEG_ROOT/build/mseg-gc}
MSEG_LOG_BIN=${MSEG_LOG_BIN:-$MSEG_ROOT/build/mseg-log}
MSEG_SESSIONS_BIN=${MSEG_SESSIONS_BIN:-$MSEG_ROOT/build/mseg-sessions}
MSEG_FLOWS_BIN=${MSEG_FLOWS_BIN:-$MSEG_ROOT/build/mseg-flows}
MSEG_RULESET_BIN=${MSEG_RULESET_BIN:-$MSEG_ROOT/build/mseg-ruleset}
# Exactly where tc pins BTF maps with LIBBPF_PIN_BY_NAME, so scripts and a
# plain `tc filter add ... bpf obj` always agree on one set of maps.
MSEG_PIN_DIR="${TC_BPF_MNT:-/sys/fs/bpf}/tc/globals"

# mseg's tc filters are recognised by this (pref, handle): a fixed low pref
# runs mseg before filters with auto-assigned prefs (49152 and down), and a
# fixed slot lets `tc filter replace` upgrade the program in place.
readonly MSEG_TC_PREF=1337
readonly MSEG_TC_HANDLE=1

#######################################
# Print one "mseg: ..." line to stderr and exit 1 (a runtime failure).
# Arguments:
#   The message, without the "mseg: " prefix.
#######################################
mseg_die() {
  printf 'mseg: %s\n' "$*" >&2
  exit 1
}

#######################################
# Like mseg_die, but exit 2: the command line itself is wrong.
#######################################
mseg_usage_die() {
  printf 'mseg: %s\n' "$*" >&2
  exit 2
}

#######################################
# Succeed if $1 is a decimal integer in 0..$2 (no sign, no leading zeros).
#######################################
mseg_is_uint() {
  local s=$1 max=$2
  [[ $s =~ ^(0|[1-9][0-9]*)$ ]] || return 1
  # Compare lengths first: bash arithmetic would overflow on long input.
  ((${#s} <= ${#max})) || return 1
  ((10#$s <= max))
}

#######################################
# Read the value of option $1 from "$2" or die with a usage error.
# Globals:
#   MSEG_OPTARG is set to the value.
#######################################
mseg_optarg() {
  local opt=$1
  (($# >= 2)) || mseg_usage_die "$opt needs a value"
  MSEG_OPTARG=$2
}

#######################################
# Die unless every named map is pinned, with a hint on what to run.
# Arguments:
#   Map names.
#######################################
mseg_require_maps() {
  local name
  local -a pinned=()
  for name in "$@"; do
    [[ -e $MSEG_PIN_DIR/$name ]] && continue
    shopt -s nullglob
    pinned=("$MSEG_PIN_DIR"/mseg_*)
    shopt -u nullglob
    if ((${#pinned[@]} == 0)); then
      mseg_die "no pinned maps under $MSEG_PIN_DIR: run 'mseg attach DEV' first"
    fi
    mseg_die "map $name is not pinned under $MSEG_PIN_DIR: run 'mseg attach DEV' with this build"
  done
}

#######################################
# Create directory $1 (mode 0700) if it is missing, then die unless it is
# a real directory (not a symlink) owned by root (or us) and closed to
# everyone else: nobody else can then open a lock in it, or plant one.
#######################################
_mseg_lock_dir() {
  local d=$1 mode uid
  if [[ ! -e $d && ! -L $d ]]; then
    mkdir -m 0700 -- "$d" 2>/dev/null || [[ -d $d ]] || mseg_die "cannot create $d"
  fi
  [[ -L $d ]] && mseg_die "$d is a symlink: refusing to lock there"
  [[ -d $d ]] || mseg_die "$d is not a directory: refusing to lock there"
  read -r mode uid < <(stat -c '%a %u' -- "$d") || mseg_die "cannot stat $d"
  if (((8#$mode & 8#077) != 0 || (uid != 0 && uid != EUID))); then
    mseg_die "$d must be a directory owned by root with mode 0700 (it is $mode, uid $uid): refusing to lock there"
  fi
}

#######################################
# Print the name this pin set's locks and state take in $MSEG_LOCK_DIR
# (default /run/mseg), without the suffix: DIR/DEV-INO of the bpffs
# instance that holds the pins (see mseg_lock). Checks nothing of DIR.
#######################################
mseg_lock_key() {
  local base=${MSEG_LOCK_DIR:-/run/mseg} mnt=${TC_BPF_MNT:-/sys/fs/bpf} id
  id=$(stat -L -c '%d-%i' -- "$mnt") || mseg_die "cannot stat $mnt"
  printf '%s/%s\n' "$base" "$id"
}

#######################################
# Take the edit lock of this pin set; held until the process exits.
# The lock is a directory in $MSEG_LOCK_DIR (default /run/mseg, mode 0700)
# named after the bpffs instance that holds the pins (its device-inode), so
# edits of one rule set serialise, tests on private bpffs mounts never wait
# on each other, and commands in other netns agree (/run is not remounted
# by `ip netns exec`). Only root can open it; it is opened read-only and
# checked to be the very directory that was checked, never a link's target.
# tools/mseg_lock.h takes the gc and events locks the same way. A command
# that runs another mseg command while it holds the lock passes it on:
# MSEG_LOCK_FD=$MSEG_LOCK_FD CMD (the child inherits the descriptor, and its
# mseg_lock returns at once).
# Globals:
#   MSEG_LOCK_FD, MSEG_LOCK_FILE
#######################################
mseg_lock() {
  [[ -n ${MSEG_LOCK_FD:-} ]] && return 0
  local key
  key=$(mseg_lock_key) || exit
  _mseg_lock_dir "${key%/*}"
  MSEG_LOCK_FILE="$key.edit"
  _mseg_lock_dir "$MSEG_LOCK_FILE"
  exec {MSEG_LOCK_FD}<"$MSEG_LOCK_FILE" || mseg_die "cannot open the lock $MSEG_LOCK_FILE"
  if [[ $(stat -L -c '%d:%i' "/proc/self/fd/$MSEG_LOCK_FD") != \
    "$(stat -c '%d:%i' -- "$MSEG_LOCK_FILE")" ]]; then
    mseg_die "the lock $MSEG_LOCK_FILE changed while it was opened: refusing it"
  fi
  flock -w "${MSEG_LOCK_TIMEOUT:-30}" "$MSEG_LOCK_FD" ||
    mseg_die "timed out waiting for the lock $MSEG_LOCK_FILE"
}

#######################################
# Run a writer under the edit lock so that it dies with this command: a
# killed `mseg` must not leave a child writing maps while holding the lock
# it inherited (build/mseg-ruleset does the same for itself).
# Arguments:
#   the command and its arguments
#######################################
mseg_child() {
  setpriv --pdeathsig KILL -- "$@"
}

#######################################
# Die with a usage error unless $1 names a plausible network device.
#######################################
mseg_check_devname() {
  local dev=$1
  # The kernel's dev_valid_name(), plus no leading '-' so tc/ip never
  # read the name as an option.
  if [[ -z $dev || ${#dev} -gt 15 || $dev == -* || $dev == . || $dev == .. ||
    $dev =~ [/:[:space:]] ]]; then
    mseg_usage_die "invalid device name: '$dev'"
  fi
}

#######################################
# Succeed if any argument asks for help.
#######################################
mseg_wants_help() {
  local a
  for a in "$@"; do
    [[ $a == -h || $a == --help ]] && return 0
  done
  return 1
}
