# shellcheck shell=bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Many flows in one go: mseg-pkt --count writes a series of frames that
# differ in one port, and feed_series runs them through build/mseg-testrun
# in one process: a thousand distinct flows in about a second, where a
# thousand mseg-pkt and bpftool runs would take minutes under bats.
#
# Requires common.bash.

# port_series N PROTO sport|dport FIRST MSEG-PKT-ARGS...: N frames, one hex
# line each: the frame `mseg-pkt --proto PROTO --sport|--dport FIRST ARGS`
# builds, then the same with that port FIRST+1, ..., FIRST+N-1.
port_series() {
	local n=$1 proto=$2 which=$3 first=$4
	shift 4
	"$MSEG_PKT" --proto "$proto" "--$which" "$first" --step "$which" --count "$n" "$@" --hex
}

# series_check N PROTO sport|dport FIRST MSEG-PKT-ARGS...: fail unless the
# first, a middle and the last frame of port_series are byte for byte what
# mseg-pkt builds for those ports.
series_check() {
	local n=$1 proto=$2 which=$3 first=$4 i want got
	shift 4
	local -a lines
	mapfile -t lines < <(port_series "$n" "$proto" "$which" "$first" "$@")
	((${#lines[@]} == n)) || {
		echo "series_check: ${#lines[@]} frames, expected $n" >&2
		return 1
	}
	for i in 0 $((n / 2)) $((n - 1)); do
		want=$("$MSEG_PKT" --proto "$proto" "--$which" $((first + i)) "$@" --hex) || return 1
		got=${lines[i]}
		[[ $got == "$want" ]] || {
			echo "series_check: frame $i of $proto $which $first $*:" >&2
			echo "  series:  $got" >&2
			echo "  mseg-pkt: $want" >&2
			return 1
		}
	done
}

# feed_series N PROTO sport|dport FIRST MSEG-PKT-ARGS...: run the series
# through $PROG_ID in one process (build/mseg-testrun), in order; prints how
# many frames got each verdict: "0:820" or "0:5,2:3".
feed_series() {
	local frames out
	frames=$(mktemp "${BATS_TEST_TMPDIR:-/tmp}/series.XXXXXX")
	port_series "$@" >"$frames" || {
		rm -f "$frames"
		return 1
	}
	out=$("$MSEG_BUILD/mseg-testrun" --prog-id "$PROG_ID" "$frames") || {
		rm -f "$frames"
		return 1
	}
	rm -f "$frames"
	sort -n <<<"$out" | uniq -c | awk '{ printf "%s%s:%s", (NR > 1 ? "," : ""), $2, $1 } END { print "" }'
}
