#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# What an operator meets around the commands (issue 4/6): --version on mseg
# and every helper; monitor writing plain lines into a pipe; the pressure
# levels kept in order; man pages generated from the commands' own --help;
# bash completion; make install shipping only what an operator runs, and
# make uninstall taking it all away again.
# shellcheck disable=SC2154 # bats sets $output, $stderr

bats_require_minimum_version 1.5.0

load helpers/common

setup() {
	require_build
}

teardown() {
	crafted_teardown
}

@test "mseg --version, mseg COMMAND --version and every helper's --version name this build" {
	local want abi
	abi=$(sed -nE 's/^#define MSEG_ABI_VERSION ([0-9]+).*/\1/p' "$MSEG_ROOT/bpf/mseg_abi.h")
	want=$("$MSEG_BUILD/mseg-abi" | sed -n 's/^version //p')
	[ -n "$want" ]
	[ "$(mseg --version)" = "mseg $want (abi $abi)" ]
	[ "$(mseg sessions --version)" = "mseg $want (abi $abi)" ]
	[ "$(mseg rule --version)" = "mseg $want (abi $abi)" ]
	local h
	for h in mseg-gc mseg-log mseg-eventd mseg-sessions mseg-textfile mseg-abi; do
		[ "$("$MSEG_BUILD/$h" --version)" = "$h $want (abi $abi)" ] ||
			{ echo "$h --version: $("$MSEG_BUILD/$h" --version)" >&2; return 1; }
	done
}

@test "monitor prints plain lines into a pipe, with no terminal escapes" {
	crafted_setup >/dev/null
	local out=$BATS_TEST_TMPDIR/monitor
	mseg monitor --count 2 >"$out"
	[ "$(wc -l <"$out")" = 2 ]
	if grep -q $'\033\|\r' "$out"; then return 1; fi
	grep -qE '^Sessions: 0 \| Evictions: 0 \| Pressure: 0% \| SYN_SENT: 0 \| Flood: no \| Level: ok$' "$out"
	# through a terminal, it still redraws in place
	need script command -v script
	script -qec "timeout -k 5 10 $MSEG_SCRIPTS/mseg monitor --count 2" /dev/null >"$out"
	grep -q $'\r\033\[K' "$out"
}

@test "config keeps warn_pct < crit_pct < degrade_pct, effective values, and changes nothing when refused" {
	crafted_setup >/dev/null
	run --separate-stderr mseg config set crit_pct 50
	[ "$status" -eq 1 ]
	[ "$stderr" = "mseg: the pressure levels must rise: warn_pct < crit_pct < degrade_pct, not 80, 50, 95 (crit_pct 50)" ]
	[ "$(mseg config show --json | jq .crit_pct)" = 90 ]
	run --separate-stderr mseg config set warn_pct 90
	[ "$status" -eq 1 ]
	run --separate-stderr mseg config set degrade_pct 90
	[ "$status" -eq 1 ]
	# in an order that keeps them rising, any levels go
	mseg config set warn_pct 40
	mseg config set crit_pct 50
	mseg config set degrade_pct 60
	[ "$(mseg config show --json | jq -c '[.warn_pct, .crit_pct, .degrade_pct]')" = '[40,50,60]' ]
	# 0 is the default (80): not below crit_pct 50
	run --separate-stderr mseg config set warn_pct 0
	[ "$status" -eq 1 ]
	[[ $stderr == *"not 80, 50, 60 (warn_pct 0)" ]]
}

@test "man pages come from the commands' --help, one per command, and render cleanly" {
	need help2man command -v help2man
	local b=$BATS_TEST_TMPDIR/build
	make -s -C "$MSEG_ROOT" BUILD="$b" man >/dev/null
	local page
	for page in mseg mseg-attach mseg-sessions mseg-log mseg-gc mseg-config mseg-rule \
		mseg-segment mseg-explain mseg-failsafe mseg-apply mseg-confirm mseg-eventd mseg-textfile; do
		test -s "$b/man/$page.8"
		run --separate-stderr env MANWIDTH=80 man --warnings -l "$b/man/$page.8"
		[[ $status == 0 && -z $stderr ]] || { echo "$page: $stderr" >&2; return 1; }
	done
	# every option of `mseg sessions --help` is in its page
	local opt
	for opt in $("$MSEG_SCRIPTS/mseg" sessions --help | grep -oE -- '--[a-z]+' | sort -u); do
		MANWIDTH=200 man -l "$b/man/mseg-sessions.8" 2>/dev/null | grep -qF -- "$opt" ||
			{ echo "mseg-sessions.8 lacks $opt" >&2; return 1; }
	done
	# the NAME line is the command's line in `mseg --help`
	grep -qx 'mseg-sessions \\- the live sessions, filtered, sorted' "$b/man/mseg-sessions.8"
	# and the paths are the installed ones, not this build's
	if grep -q "$MSEG_ROOT" "$b"/man/*.8; then return 1; fi
}

# complete WORDS...: what bash completion offers after WORDS (the last word
# is the one being completed).
complete_words() {
	bash -c '
		source "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		mseg() { "$MSEG_SCRIPTS/mseg" "$@"; }
		_mseg; printf "%s\n" "${COMPREPLY[@]}"' _ "$MSEG_ROOT/completion/mseg" "$@" | sort | xargs
}

@test "bash completion offers commands, subcommands, options and their values" {
	[ "$(complete_words mseg se)" = "segment sessions" ]
	[ "$(complete_words mseg ses)" = "sessions" ]
	[ "$(complete_words mseg sessions "")" = "del flush list" ]
	[[ " $(complete_words mseg sessions --) " == *" --dport "*" --src "* ]]
	[ "$(complete_words mseg sessions --state ESTA)" = "ESTABLISHED" ]
	[ "$(complete_words mseg sessions del --action d)" = "deny" ]
	[ "$(complete_words mseg config set flood_)" = "flood_half_open flood_syn_rate flood_syn_timeout" ]
	[ "$(complete_words mseg attach lo)" = "lo" ]
	[ "$(complete_words mseg log --f)" = "--follow" ]
	[ "$(complete_words mseg seg)" = "segment" ]
	[ "$(complete_words mseg segment "")" = "--help add del list show" ]
	[ "$(complete_words mseg explain --d)" = "--dport --dst" ]
	[ "$(complete_words mseg conf)" = "config confirm" ]
	[ "$(complete_words mseg confirm --)" = "--help --rollback" ]
	[ "$(complete_words mseg apply --c)" = "--check --confirm" ]
	[ "$(complete_words mseg fa)" = "failsafe" ]
	[ "$(complete_words mseg failsafe "")" = "--help --json add default del list off set" ]
	[ "$(complete_words mseg failsafe add udp/1)" = "udp/123" ]
	[ "$(complete_words mseg rule list --a)" = "--all" ]
	[ "$(complete_words mseg fl)" = "flows" ]
	[ "$(complete_words mseg flows --)" = "--dot --help --json --since --staged-diff" ]
	[ "$(complete_words mseg graph --s)" = "--since" ]
	[ "$(complete_words mseg le)" = "learn" ]
	[ "$(complete_words mseg learn --s)" = "--segments --since" ]
	[ "$(complete_words mseg learn --w)" = "--widen" ]
}

@test "make install ships what an operator runs, not the test tools; make uninstall removes it all" {
	local d=$BATS_TEST_TMPDIR/root
	make -s -C "$MSEG_ROOT" install DESTDIR="$d" >/dev/null
	local lib=$d/usr/local/lib/mseg
	local t
	for t in mseg-gc mseg-log mseg-eventd mseg-sessions mseg-flows mseg-textfile mseg-ruleset mseg-abi; do
		test -x "$lib/build/$t"
	done
	for t in mseg-pkt mseg-testrun mseg-fill; do
		[ ! -e "$lib/build/$t" ]
	done
	[ ! -e "$lib/scripts/mseg-deps" ]
	test -x "$lib/scripts/mseg-rule"
	test -s "$d/usr/local/share/man/man8/mseg.8"
	test -s "$d/usr/local/share/man/man8/mseg-sessions.8"
	test -s "$d/usr/local/share/man/man8/mseg-flows.8"
	test -s "$d/usr/local/share/man/man8/mseg-graph.8"
	test -x "$lib/scripts/mseg-graph"
	test -s "$d/usr/local/share/man/man8/mseg-learn.8"
	test -x "$lib/scripts/mseg-learn"
	test -s "$d/usr/local/share/bash-completion/completions/mseg"
	test -s "$d/usr/local/lib/systemd/system/mseg-eventd.service"
	# the installed command runs from the install tree
	[[ $("$d/usr/local/sbin/mseg" --version) == "mseg "* ]]
	run "$d/usr/local/sbin/mseg" deps
	[ "$status" -eq 2 ]
	make -s -C "$MSEG_ROOT" uninstall DESTDIR="$d" >/dev/null
	[ -z "$(find "$d" -not -type d)" ]
}
