#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The fast parse of the common frame shape (mseg_parse_common() in
# bpf/mseg_parse.h) against the full walk it stands in front of: on 20,000
# random frames (the fuzzer's, and frames of its own shape with one header
# byte changed) it either declines a frame and writes nothing, or takes it
# and writes field for field what the walk writes. The seed is printed;
# MSEG_PC_SEED=N replays.

load helpers/common

setup_file() {
	require_build
	need build/mseg-testrun test -x "$MSEG_BUILD/mseg-testrun"
	bpffs_setup
	clang -O2 -g -target bpf -mcpu=v3 -Wall -Werror -I "/usr/include/$(uname -m)-linux-gnu" \
		-I "$MSEG_ROOT/bpf" -c "$MSEG_HELPERS/bpf/parse_common.bpf.c" \
		-o "$BATS_FILE_TMPDIR/parse_common.o"
	bpftool prog loadall "$BATS_FILE_TMPDIR/parse_common.o" "$MSEG_BPFFS/pc" type tc
	PC_ID=$(bpftool -j prog show pinned "$MSEG_BPFFS/pc/parse_common_check" | jq -e .id)
	export PC_ID
}

teardown_file() {
	bpffs_teardown
}

@test "parse: the fast parse declines untouched or agrees with the full walk, on 20,000 random frames" {
	run timeout -k 5 300 "$MSEG_PYTHON" "$MSEG_HELPERS/parse-common.py" --prog-id "$PC_ID" --frames 20000
	echo "$output"
	[[ $output == seed* ]]
	[ "$status" -eq 0 ]
	[[ $output == *"answers: "*"0="*"1="* ]]
}
