#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The edit lock (issue 4/6): it lived at a predictable name in the
# world-writable /run/lock, so an unprivileged user could hold it (flock on
# a read-only descriptor) and block every edit, or plant a symlink there
# that root's next edit followed (creating the file it pointed to). Both
# tests below failed on that code. The lock now lives in /run/mseg (mode
# 0700) and is opened without following links; a lock directory that
# others could write is refused, by the shell commands and the C tools.
# shellcheck disable=SC2154,SC2030,SC2031 # bats sets $stderr; each @test is a subshell

bats_require_minimum_version 1.5.0

load helpers/common

setup() {
	require_build
	crafted_setup >/dev/null
	# an unused uid, no account needed (setpriv takes numbers)
	USER_ID=$((61000 + RANDOM % 3000))
	USER_PID=""
	LOCKS=()
}

teardown() {
	if [[ -n $USER_PID ]]; then
		kill "$USER_PID" 2>/dev/null || true
		wait "$USER_PID" 2>/dev/null || true
	fi
	local l
	for l in ${LOCKS[@]+"${LOCKS[@]}"}; do
		rm -rf -- "$l"
	done
	crafted_teardown
}

# as_user CMD...: CMD as the unprivileged USER_ID, no groups, no capabilities.
as_user() {
	setpriv --reuid="$USER_ID" --regid="$USER_ID" --clear-groups \
		--inh-caps=-all --bounding-set=-all -- "$@"
}

# lock_path: where the edit lock of this pin set lives (with the default
# lock directory), as mseg-common.sh's mseg_lock names it.
lock_path() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	env -u MSEG_LOCK_DIR MSEG_ROOT="$MSEG_ROOT" bash -c \
		'source "$MSEG_ROOT/lib/sh/mseg-common.sh" && mseg_lock && echo "$MSEG_LOCK_FILE"'
}

@test "an unprivileged user cannot hold the edit lock: root's edit goes through" {
	local path
	path=$(lock_path)
	LOCKS+=("$path")
	# the user tries to hold it for 30 s
	timeout -k 5 30 setpriv --reuid="$USER_ID" --regid="$USER_ID" --clear-groups \
		--inh-caps=-all --bounding-set=-all -- flock "$path" sleep 30 3>&- &
	USER_PID=$!
	sleep 1
	run --separate-stderr env -u MSEG_LOCK_DIR MSEG_LOCK_TIMEOUT=3 "$MSEG_SCRIPTS/mseg" default deny
	[ "$status" -eq 0 ] || { echo "root's edit: $status $stderr" >&2; return 1; }
	[ "$(mseg default)" = deny ]
	# and it could not even open it
	run as_user flock -n "$path" true
	[ "$status" -ne 0 ]
}

@test "an unprivileged user cannot plant a symlink that root's next edit follows" {
	local path victim=$BATS_TEST_TMPDIR/victim
	path=$(lock_path)
	LOCKS+=("$path")
	chmod 0711 "$BATS_TEST_TMPDIR"
	# before first use (as after a reboot), the user plants a link at its name
	rm -rf -- "$path"
	run as_user ln -s "$victim" "$path"
	env -u MSEG_LOCK_DIR MSEG_LOCK_TIMEOUT=3 "$MSEG_SCRIPTS/mseg" default deny 2>/dev/null || true
	[ ! -e "$victim" ]
	[ ! -L "$path" ] || [ "$(stat -c %u "$path")" = 0 ]
}

@test "a lock directory others can write, or a link, is refused with nothing changed" {
	local open=$BATS_TEST_TMPDIR/open link=$BATS_TEST_TMPDIR/link
	mkdir -m 1777 "$open"
	run --separate-stderr env MSEG_LOCK_DIR="$open" "$MSEG_SCRIPTS/mseg" default deny
	[ "$status" -eq 1 ]
	[ "$stderr" = "mseg: $open must be a directory owned by root with mode 0700 (it is 1777, uid 0): refusing to lock there" ]
	[ "$(mseg default)" = allow ]
	ln -s "$MSEG_LOCK_DIR" "$link"
	run --separate-stderr env MSEG_LOCK_DIR="$link" "$MSEG_SCRIPTS/mseg" default deny
	[ "$status" -eq 1 ]
	[ "$stderr" = "mseg: $link is a symlink: refusing to lock there" ]
	[ "$(mseg default)" = allow ]
	# the C tools' locks too (gc; sessions del/flush; the event drainer)
	run --separate-stderr env MSEG_LOCK_DIR="$open" "$MSEG_SCRIPTS/mseg" sessions flush
	[ "$status" -eq 1 ]
	[[ $stderr == "mseg: $open must be a directory owned by root with mode 0700 (it is 1777, uid 0): refusing to lock there" ]]
	run --separate-stderr env MSEG_LOCK_DIR="$link" "$MSEG_SCRIPTS/mseg" gc
	[ "$status" -eq 1 ]
	[[ $stderr == "mseg: cannot open $link: Not a directory (a symlink or a file where mseg keeps its lock)" ]]
	# an unprivileged user cannot take the C tools' locks either
	"$MSEG_SCRIPTS/mseg" gc >/dev/null
	run as_user flock -n "$(ls -d "$MSEG_LOCK_DIR"/*.gc)" true
	[ "$status" -ne 0 ]
}
