#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# mseg apply --confirm SECONDS FILE and mseg confirm (issue 4/6): a policy
# applied with --confirm is taken back by the host itself unless `mseg
# confirm` arrives in time, so an operator who locks themself out is let back
# in (netplan try, a confirmed commit). On real TCP through the namespace lab
# (helpers/lab.bash): the client's connections to the server's port 5001 are
# allowed by the policy in force (A) and denied by the one applied (B).
#
# Every command runs in the router's netns, so a rollback process a test
# leaves behind dies with the lab at the latest; teardown kills the recorded
# one first. No wait is unbounded: wait_until counts its tries, and the
# only sleeps are bounded waits past a deadline. Where a check must happen
# before the deadline, the test holds the edit lock (the rollback takes it,
# so it waits), and a machine too loaded to get there within SECONDS makes
# the test retry with more seconds, never pass or fail by luck.
# shellcheck disable=SC2154,SC2030,SC2031 # bats sets $status, $output, $stderr; each @test is a subshell

bats_require_minimum_version 1.5.0

load helpers/common
load helpers/lab

setup_file() {
	require_build
	lab_setup >/dev/null
	lab_start_servers 1200
	# the edit lock of the lab's pin set, as mseg-common.sh names it
	# shellcheck disable=SC2016 # expanded by the inner bash
	CONFIRM_LOCK=$(bash -c 'source "$MSEG_ROOT/lib/sh/mseg-common.sh" && mseg_lock && echo "$MSEG_LOCK_FILE"')
	export CONFIRM_LOCK
}

teardown_file() {
	lab_teardown
}

setup() {
	require_build
	need "the lab came up" test -n "${LAB_PROG_ID:-}"
	need "the edit lock's path" test -d "${CONFIRM_LOCK:-}"
	HOLD_FD=""
	OTHER_MNT=""
	SHELL_PID=""
	P=$BATS_TEST_TMPDIR
	# A: what is in force (a segment, a rule, a CIDR rule); B: default deny,
	# the operator's lock-out; C: another policy that allows 5001.
	printf '%s\n' "default allow" "segment add clients 10.77.1.0/24" \
		"rule add --src clients --dst $LAB_S4 --proto tcp --dport 5001 --action allow --comment base" \
		"cidr add 10.99.0.0/16 --action deny" >"$P/A"
	printf '%s\n' "default deny" "cidr add 10.98.0.0/16 --action allow" >"$P/B"
	printf '%s\n' "default allow" "cidr add 10.97.0.0/16 --action deny" >"$P/C"
	m apply "$P/A" >/dev/null
	PREV=$(m save)
}

teardown() {
	release_lock
	if [[ -n $SHELL_PID ]]; then
		kill -KILL -- "-$SHELL_PID" 2>/dev/null || true
		wait "$SHELL_PID" 2>/dev/null || true
	fi
	kill_timer
	if [[ -n $OTHER_MNT ]]; then
		umount "$OTHER_MNT" 2>/dev/null || true
		rmdir "$OTHER_MNT" 2>/dev/null || true
	fi
	m apply "$BATS_TEST_TMPDIR/A" >/dev/null 2>&1 || true
}

# m ARGS...: mseg in the router's netns.
m() { ip netns exec "$LAB_R" "$MSEG_SCRIPTS/mseg" "$@"; }

fail_msg() {
	echo "$*" >&2
	return 1
}

# confirm_json: the "confirm" object of mseg status --json.
confirm_json() { m status --json | jq -c .confirm; }

confirm_state() { m status --json | jq -r .confirm.state; }

# timer_alive PID: PID is a rollback process (mseg confirm --timer ...).
timer_alive() {
	[[ $1 =~ ^[0-9]+$ && -r /proc/$1/cmdline ]] || return 1
	tr '\0' ' ' <"/proc/$1/cmdline" | grep -q -- ' confirm --timer '
}

timer_gone() { ! timer_alive "$1"; }

# kill_timer: kill the pending confirmation's rollback process (by its
# recorded pid, checked to be one), then clear what is pending.
kill_timer() {
	local pid
	pid=$(m status --json 2>/dev/null | jq -r 'select(.confirm.state == "pending") | .confirm.pid // empty')
	if [[ -n $pid ]] && timer_alive "$pid"; then
		kill "$pid" 2>/dev/null || true
		wait_until 50 timer_gone "$pid" || true
	fi
	[[ -n $pid ]] && m confirm >/dev/null 2>&1
	return 0
}

# hold_lock: take the edit lock in this shell (HOLD_FD); commands run with
# MSEG_LOCK_FD=$HOLD_FD use it, any other edit (the rollback) waits.
hold_lock() {
	exec {HOLD_FD}<"$CONFIRM_LOCK"
	flock -w 60 "$HOLD_FD" || fail_msg "the edit lock was not free within 60 s"
}

release_lock() {
	[[ -n ${HOLD_FD:-} ]] || return 0
	exec {HOLD_FD}<&-
	HOLD_FD=""
}

# held ARGS...: mseg under the lock this shell holds.
held() { MSEG_LOCK_FD=$HOLD_FD m "$@"; }

# epoch RFC3339
epoch() { date -u -d "$1" +%s; }

# apply_held FILE SECONDS...: `mseg apply --confirm S FILE` with the first
# S for which this shell then holds the edit lock while the confirmation is
# still pending (the rollback did not get the lock first); sets T0 (just
# before the apply) and SECS. A machine slower than S seconds between the
# two commands gets the next S.
apply_held() {
	local file=$1 s
	shift
	for s in "$@"; do
		T0=$(date +%s)
		SECS=$s
		m apply --confirm "$s" "$file" >/dev/null || fail_msg "apply --confirm $s $file failed"
		hold_lock || return 1
		[[ $(confirm_state) == pending ]] && return 0
		echo "# the rollback came first with $s s: trying with more" >&3
		release_lock
	done
	fail_msg "never held the lock before the deadline ($*)"
}

# past_deadline: the pending confirmation's deadline has passed (by 1 s).
past_deadline() {
	local d
	d=$(m status --json | jq -r .confirm.deadline)
	(($(date +%s) > $(epoch "$d") + 1))
}

not_pending() { [[ $(confirm_state) != pending ]]; }

save_is() { [[ $(m save) == "$1" ]]; }

@test "without 'mseg confirm', the previous policy comes back by itself after SECONDS: exactly, and real TCP it allows connects again" {
	lab_tcp_connect "$LAB_S4" 5001 || fail_msg "no connection under A"
	apply_held "$P/B" 4 10 30
	local c dl
	c=$(confirm_json)
	[[ $(jq -r .state <<<"$c") == pending ]] || fail_msg "status: $c"
	[[ $(jq -r .seconds <<<"$c") == "$SECS" ]] || fail_msg "status: $c"
	dl=$(epoch "$(jq -r .deadline <<<"$c")")
	((dl >= T0 + SECS)) || fail_msg "deadline $dl before $T0 + $SECS"
	(($(jq -r .seconds_left <<<"$c") <= SECS)) || fail_msg "status: $c"
	timer_alive "$(jq -r .pid <<<"$c")" || fail_msg "no rollback process: $c"
	[[ $(jq -r .timer_alive <<<"$c") == true ]] || fail_msg "status: $c"
	# B is in force: the connection A allowed is refused
	run -0 held save
	[[ $output == "default deny"*"cidr add 10.98.0.0/16 --action allow"* && $output != *5001* ]] ||
		fail_msg "B is not in force: $output"
	run -1 lab_tcp_connect "$LAB_S4" 5001 1
	run -0 m status
	[[ $output == *"confirm:"*pending* ]] || fail_msg "status text: $output"
	release_lock
	# back by itself, exactly A, and not before the deadline
	wait_until $(((SECS + 60) * 10)) save_is "$PREV" || fail_msg "not rolled back: $(m save)"
	lab_tcp_connect "$LAB_S4" 5001 || fail_msg "no connection after the rollback"
	c=$(confirm_json)
	[[ $(jq -r .state <<<"$c") == rolled_back ]] || fail_msg "status: $c"
	(($(epoch "$(jq -r .time <<<"$c")") >= dl)) || fail_msg "rolled back before the deadline: $c"
	wait_until 50 timer_gone "$(jq -r .pid <<<"$c")" || fail_msg "the rollback process is still there"
	run -0 m status
	[[ $output == *"confirm:"*"rolled back"* ]] || fail_msg "status text: $output"
	run -1 m confirm
}

@test "with 'mseg confirm' in time, the new policy stays past the deadline and the rollback process is gone" {
	local want c pid dl s out
	# a machine so loaded that confirm comes too late gets more seconds
	for s in 4 10 30; do
		m apply --confirm "$s" "$P/B" >/dev/null || fail_msg "apply --confirm $s failed"
		out=$(m confirm 2>&1) && break
		[[ $out == *"too late"* ]] || fail_msg "confirm: $out"
		echo "# confirm came too late with $s s: trying with more" >&3
		wait_until 600 save_is "$PREV" || fail_msg "not rolled back: $(m save)"
	done
	[[ $out == confirmed* ]] || fail_msg "confirm said: $out"
	want=$(m save)
	[[ $want == "default deny"* ]] || fail_msg "B is not in force: $want"
	c=$(confirm_json)
	[[ $(jq -r .state <<<"$c") == confirmed ]] || fail_msg "status: $c"
	pid=$(jq -r .pid <<<"$c")
	dl=$(epoch "$(jq -r .deadline <<<"$c")")
	wait_until 100 timer_gone "$pid" || fail_msg "the rollback process $pid is still there"
	# past the deadline (bounded: at most SECS + 2 s), B is still in force
	while (($(date +%s) <= dl + 1)); do sleep 0.5; done
	save_is "$want" || fail_msg "the policy changed: $(m save)"
	run -1 lab_tcp_connect "$LAB_S4" 5001 1
	run -1 --separate-stderr m confirm
}

@test "mseg confirm with nothing pending exits non-zero and says so; so does --rollback; bad arguments are usage errors" {
	local before
	before=$(confirm_json)
	[[ $(jq -r .state <<<"$before") != pending ]] || fail_msg "pending: $before"
	run -1 --separate-stderr m confirm
	[[ $stderr == "mseg: "*"no confirmation is pending"* ]] || fail_msg "confirm said: $stderr"
	[[ -z $output ]] || fail_msg "stdout: $output"
	run -1 --separate-stderr m confirm --rollback
	[[ $stderr == "mseg: "*"no confirmation is pending"* ]] || fail_msg "confirm --rollback said: $stderr"
	run -2 --separate-stderr m confirm --bogus
	run -2 --separate-stderr m confirm now
	[[ $(confirm_json) == "$before" ]] || fail_msg "status: $(confirm_json), was $before"
	save_is "$PREV" || fail_msg "the policy changed"
	run -0 m confirm --help
	[[ $output == *"usage: mseg confirm"* ]]
}

@test "a bad FILE or SECONDS changes nothing and starts no rollback process" {
	local before state
	before=$(ip netns pids "$LAB_R" | sort)
	state=$(confirm_json)
	printf '%s\n' "default deny" "cidr add 10.96.0.0/16 --action allow" "rule add --src nowhere" >"$P/bad"
	run ! --separate-stderr m apply --confirm 3 "$P/bad"
	[[ $stderr == *"line 3"* ]] || fail_msg "apply said: $stderr"
	run ! --separate-stderr bash -c 'printf "default deny\nfrobnicate\n" | "$@"' _ \
		ip netns exec "$LAB_R" "$MSEG_SCRIPTS/mseg" apply --confirm 3 -
	[[ $stderr == *"line 2"* ]] || fail_msg "apply - said: $stderr"
	run ! --separate-stderr m apply --confirm 3 "$P/missing"
	local s
	for s in 0 -1 abc 1.5 86401 ""; do
		run -2 --separate-stderr m apply --confirm "$s" "$P/B"
		[[ $stderr == "mseg: "* ]] || fail_msg "--confirm '$s': $stderr"
	done
	run -2 --separate-stderr m apply "$P/B" --confirm
	run -2 --separate-stderr m apply --check --confirm 3 "$P/B"
	run -2 --separate-stderr m apply --diff --confirm 3 "$P/B"
	save_is "$PREV" || fail_msg "the policy changed: $(m save)"
	[[ $(confirm_json) == "$state" ]] || fail_msg "status: $(confirm_json), was $state"
	[[ $(ip netns pids "$LAB_R" | sort) == "$before" ]] || fail_msg "a process was started"
	lab_tcp_connect "$LAB_S4" 5001 || fail_msg "no connection under A"
}

@test "the rollback process survives the shell that ran apply: its session, group and terminal gone" {
	local pid sid s
	# a shell in a session of its own, as a login over SSH is; this shell
	# then holds the edit lock, so the rollback cannot end before the
	# shell is killed (a machine too loaded to get there in S s: more S)
	for s in 5 15 40; do
		rm -f "$P/rc" "$P/out" "$P/shell.pid"
		# shellcheck disable=SC2016 # expanded by the inner bash
		ip netns exec "$LAB_R" setsid bash -c '
			echo $$ >"$3/shell.pid"
			"$1" apply --confirm "$4" "$2" >"$3/out" 2>&1
			echo $? >"$3/rc"
			exec sleep 120' _ "$MSEG_SCRIPTS/mseg" "$P/B" "$P" "$s" 3>&- &
		SHELL_PID=$!
		wait_until 300 test -s "$P/rc" || fail_msg "apply did not finish: $(cat "$P/out")"
		[[ $(cat "$P/rc") == 0 ]] || fail_msg "apply --confirm: $(cat "$P/out")"
		[[ $(cat "$P/shell.pid") == "$SHELL_PID" ]] || fail_msg "the shell is not the session's leader"
		hold_lock
		[[ $(confirm_state) == pending ]] && break
		echo "# the rollback came first with $s s: trying with more" >&3
		release_lock
		kill -KILL -- "-$SHELL_PID" 2>/dev/null || true
		wait "$SHELL_PID" 2>/dev/null || true
		SHELL_PID=""
	done
	[[ -n $SHELL_PID ]] || fail_msg "never held the lock before the deadline"
	pid=$(confirm_json | jq -r .pid)
	timer_alive "$pid" || fail_msg "no rollback process"
	sid=$(ps -o sid= -p "$pid" | tr -d ' ')
	[[ $sid != "$SHELL_PID" ]] || fail_msg "the rollback process is in the shell's session"
	# the terminal hangs up, then everything in the shell's group is killed
	kill -HUP -- "-$SHELL_PID"
	kill -KILL -- "-$SHELL_PID" 2>/dev/null || true
	wait "$SHELL_PID" 2>/dev/null || true
	SHELL_PID=""
	timer_alive "$pid" || fail_msg "the rollback process died with the shell"
	release_lock
	wait_until 900 save_is "$PREV" || fail_msg "not rolled back: $(m save)"
	[[ $(confirm_state) == rolled_back ]] || fail_msg "status: $(confirm_json)"
	lab_tcp_connect "$LAB_S4" 5001 || fail_msg "no connection after the rollback"
}

@test "a second 'apply --confirm' while one is pending is refused; 'confirm --rollback' puts the previous policy back at once" {
	local want pid
	run -0 m apply --confirm 600 "$P/B"
	want=$(m save)
	pid=$(confirm_json | jq -r .pid)
	run -1 --separate-stderr m apply --confirm 600 "$P/C"
	[[ $stderr == "mseg: "*pending* ]] || fail_msg "the second apply said: $stderr"
	save_is "$want" || fail_msg "the second apply changed the policy"
	[[ $(confirm_json | jq -r .pid) == "$pid" ]] || fail_msg "another rollback process"
	run -0 --separate-stderr m confirm --rollback
	save_is "$PREV" || fail_msg "not rolled back: $(m save)"
	wait_until 100 timer_gone "$pid" || fail_msg "the rollback process $pid is still there"
	[[ $(confirm_state) == rolled_back ]] || fail_msg "status: $(confirm_json)"
	lab_tcp_connect "$LAB_S4" 5001 || fail_msg "no connection after the rollback"
	run -1 m confirm
}

@test "an edit while a confirmation is pending supersedes it: nothing is rolled back over it" {
	local want
	apply_held "$P/B" 4 10 30
	run -0 held apply "$P/C"
	want=$(held save)
	release_lock
	wait_until $(((SECS + 60) * 10)) not_pending || fail_msg "still pending"
	[[ $(confirm_state) == superseded ]] || fail_msg "status: $(confirm_json)"
	save_is "$want" || fail_msg "the edit was rolled back: $(m save)"
}

@test "the rollback waits for the edit lock, and a confirm after the deadline is refused" {
	apply_held "$P/B" 3 10 30
	local want dl
	want=$(held save)
	dl=$(epoch "$(confirm_json | jq -r .deadline)")
	wait_until $(((SECS + 5) * 10)) past_deadline || fail_msg "the deadline never passed"
	# the rollback is due, but the lock is ours
	[[ $(held save) == "$want" ]] || fail_msg "rolled back under our lock"
	run -1 --separate-stderr held confirm
	[[ $stderr == "mseg: "*"too late"* ]] || fail_msg "a late confirm said: $stderr"
	release_lock
	wait_until 600 save_is "$PREV" || fail_msg "not rolled back: $(m save)"
	[[ $(confirm_state) == rolled_back ]] || fail_msg "status: $(confirm_json)"
	(($(date +%s) >= dl))
}

@test "two pin sets never share a confirmation" {
	run -0 m apply --confirm 600 "$P/B"
	OTHER_MNT=$(mktemp -d /tmp/mseg-bpffs.XXXXXX)
	mount -t bpf bpf "$OTHER_MNT"
	run -1 --separate-stderr env TC_BPF_MNT="$OTHER_MNT" "$MSEG_SCRIPTS/mseg" confirm
	[[ $stderr == *"no confirmation is pending"* ]] || fail_msg "the other pin set: $stderr"
	[[ $(confirm_state) == pending ]] || fail_msg "status: $(confirm_json)"
	run -0 m confirm
	[[ $(confirm_state) == confirmed ]]
}

@test "status --json: the confirm object has every field, null where there is no value" {
	local c
	c=$(confirm_json)
	jq -e 'keys == (["deadline","file","pid","reason","seconds","seconds_left","state","time","timer_alive"])' \
		<<<"$c" >/dev/null || fail_msg "fields: $c"
	run -0 m apply --confirm 600 "$P/B"
	# the deadline is the first whole second at least 600 s after the apply:
	# read within the same second, 601 s are left
	c=$(confirm_json)
	jq -e '.state == "pending" and (.deadline | test("^[0-9-]+T[0-9:]+Z$")) and .seconds == 600
		and (.seconds_left | . > 500 and . <= 601) and .timer_alive and (.pid | type) == "number"
		and (.file | endswith("/B"))' <<<"$c" >/dev/null || fail_msg "pending: $c"
}
