#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Long-running helpers outlive their pins (issue 4/6): mseg gc --interval,
# mseg log --follow, mseg-eventd and mseg-textfile --interval are started,
# then mseg is re-attached with new pins (detach, pins removed, attach: new
# maps); each helper must work on the new maps and say so on stderr. On the
# code before this change gc kept sweeping the old table, log --follow kept
# polling the old ring, and textfile said nothing.
# shellcheck disable=SC2154,SC2030,SC2031 # bats sets $output; each @test is a subshell

bats_require_minimum_version 1.5.0

load helpers/common

setup() {
	require_build
	crafted_setup >/dev/null
	HELPER_PID=""
	OUT=$BATS_TEST_TMPDIR/out
	ERR=$BATS_TEST_TMPDIR/err
}

teardown() {
	if [[ -n $HELPER_PID ]]; then
		kill -TERM "$HELPER_PID" 2>/dev/null || true
		wait "$HELPER_PID" 2>/dev/null || true
	fi
	crafted_teardown
}

# start CMD...: a helper in the background, bounded, its output in OUT/ERR.
start() {
	timeout -k 5 60 "$@" >"$OUT" 2>"$ERR" 3>&- &
	HELPER_PID=$!
}

# said TEXT: the helper's stderr has a line containing TEXT.
said() { grep -qF -- "$1" "$ERR"; }

# deny_event SPORT: one denied UDP flow through the classifier (default deny).
deny_event() {
	mseg default deny
	[ "$(verdict --proto udp --src 10.6.0.1 --dst 10.6.0.2 --sport "$1" --dport 53)" = "$TC_ACT_SHOT" ]
}

# entries: the kernel's count of entries in the (current) session table.
entries() { "$MSEG_BUILD/mseg-sessions" --count --all; }
entries_are() { [[ $(entries) == "$1" ]]; }

@test "mseg gc --interval sweeps the new table after a re-attach with new pins, and says so" {
	start "$MSEG_SCRIPTS/mseg" gc --interval 1 --json
	wait_until 50 test -s "$OUT"
	repin_crafted
	mseg config set timeout_time_wait 1
	"$MSEG_BUILD/mseg-fill" --count 300 --expired 300 --idle 5 >/dev/null
	[ "$(entries)" = 300 ]
	# within a few sweeps the new table is empty
	wait_until 100 entries_are 0
	said "mseg: gc: the pins under $TC_BPF_MNT/tc/globals were replaced (mseg_sessions: map id"
	said "mseg: gc: reopened the maps under $TC_BPF_MNT/tc/globals"
	kill -0 "$HELPER_PID"
}

@test "mseg gc --interval exits 1 when the pins are gone for good, saying why" {
	start "$MSEG_SCRIPTS/mseg" gc --interval 1
	wait_until 50 test -s "$OUT"
	nsrun "$CRAFT_NS" "$MSEG_SCRIPTS/mseg" detach "$CRAFT_DEV" >/dev/null
	rm -f "$TC_BPF_MNT"/tc/globals/mseg_*
	local rc=0
	wait "$HELPER_PID" || rc=$?
	HELPER_PID=""
	[ "$rc" = 1 ]
	said "mseg: gc: the pins under $TC_BPF_MNT/tc/globals were replaced (mseg_sessions: map id"
	said "-> gone)"
	said "mseg: gc: cannot reopen the maps: exiting"
}

@test "mseg log --follow reads the new ring after a re-attach with new pins, and says so" {
	start "$MSEG_SCRIPTS/mseg" log --json --follow --timeout 50
	deny_event 1001
	wait_until 50 grep -q '"sport":1001' "$OUT"
	repin_crafted
	deny_event 1002
	wait_until 50 grep -q '"sport":1002' "$OUT"
	said "mseg: log: the pins under $TC_BPF_MNT/tc/globals were replaced"
	said "mseg: log: reopened the maps"
}

@test "mseg-eventd drains the new ring after a re-attach with new pins; exits 1 when they are gone" {
	start "$MSEG_BUILD/mseg-eventd"
	deny_event 2001
	wait_until 50 grep -q '"sport":2001' "$MSEG_EVENTS_DIR/events.jsonl"
	repin_crafted
	deny_event 2002
	wait_until 50 grep -q '"sport":2002' "$MSEG_EVENTS_DIR/events.jsonl"
	said "mseg: eventd: the pins under $TC_BPF_MNT/tc/globals were replaced"
	said "mseg: eventd: reopened the maps"
	nsrun "$CRAFT_NS" "$MSEG_SCRIPTS/mseg" detach "$CRAFT_DEV" >/dev/null
	rm -f "$TC_BPF_MNT"/tc/globals/mseg_*
	local rc=0
	wait "$HELPER_PID" || rc=$?
	HELPER_PID=""
	[ "$rc" = 1 ]
	said "mseg: eventd: cannot reopen the maps: exiting"
}

@test "mseg-textfile --interval reads the new maps after a re-attach with new pins, and says so" {
	local dir=$BATS_TEST_TMPDIR/prom
	mkdir "$dir"
	"$MSEG_BUILD/mseg-fill" --count 7 >/dev/null
	start "$MSEG_BUILD/mseg-textfile" --dir "$dir" --interval 1
	wait_until 50 grep -q '^mseg_map_entries{map="mseg_sessions"} 7$' "$dir/mseg.prom"
	repin_crafted
	"$MSEG_BUILD/mseg-fill" --count 3 >/dev/null
	wait_until 50 grep -q '^mseg_map_entries{map="mseg_sessions"} 3$' "$dir/mseg.prom"
	wait_until 20 said "mseg: textfile: the pins under $TC_BPF_MNT/tc/globals were replaced (mseg_sessions: map id"
	said "reading the new maps"
}
