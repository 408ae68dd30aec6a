# shellcheck shell=bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Many flows for the price of one frame: mseg-pkt builds the first frame of
# a series, the others differ only in one port, patched into the hex with
# the TCP or UDP checksum adjusted incrementally (RFC 1624, eqn. 3). A test
# can then feed a thousand distinct flows to build/mseg-testrun in about a
# second, where a thousand mseg-pkt runs would take several on a loaded
# machine. series_check compares a series with mseg-pkt's own frames.
#
# Requires common.bash.

# port_series N PROTO sport|dport FIRST MSEG-PKT-ARGS...: N frames, one hex
# line each: the frame `mseg-pkt --proto PROTO --sport|--dport FIRST ARGS`
# builds, then the same with that port FIRST+1, ..., FIRST+N-1. PROTO is tcp
# or udp.
port_series() {
	local n=$1 proto=$2 which=$3 first=$4 hex layout l4 poff coff cs0 udp=0
	shift 4
	case $proto in
	tcp) coff=16 ;;
	udp) coff=6 udp=1 ;;
	*)
		echo "port_series: tcp or udp, not '$proto'" >&2
		return 1
		;;
	esac
	case $which in
	sport) poff=0 ;;
	dport) poff=2 ;;
	*)
		echo "port_series: sport or dport, not '$which'" >&2
		return 1
		;;
	esac
	if ((n < 1 || first < 1 || first + n - 1 > 65535)); then
		echo "port_series: ports $first + $n do not fit in 1..65535" >&2
		return 1
	fi
	hex=$("$MSEG_PKT" --proto "$proto" "--$which" "$first" "$@" --hex) || return 1
	layout=$("$MSEG_PKT" --proto "$proto" "--$which" "$first" "$@" --layout) || return 1
	l4=$(awk '{ for (i = 1; i < NF; i += 2) if ($i == "l4") print $(i + 1) }' <<<"$layout")
	[[ -n $l4 ]] || {
		echo "port_series: no l4 offset in '$layout'" >&2
		return 1
	}
	# Offsets in hex digits: two per byte.
	poff=$((2 * (l4 + poff)))
	coff=$((2 * (l4 + coff)))
	cs0=$((16#${hex:coff:4}))
	# awk, not a bash loop: under bats every bash command runs its traps.
	# HC' = ~(~HC + ~m + m') in 16-bit one's complement (RFC 1624), with
	# ~x as 65535 - x and the carries folded back; a zero UDP checksum
	# means "none", so it is sent as 0xffff.
	awk -v hex="$hex" -v poff="$poff" -v coff="$coff" -v cs0="$cs0" \
		-v first="$first" -v n="$n" -v udp="$udp" '
	BEGIN {
		for (i = 0; i < n; i++) {
			port = first + i
			sum = (65535 - cs0) + (65535 - first) + port
			sum = sum % 65536 + int(sum / 65536)
			sum = sum % 65536 + int(sum / 65536)
			cs = 65535 - sum
			if (udp && cs == 0)
				cs = 65535
			printf "%s%04x%s%04x%s\n", substr(hex, 1, poff), port,
				substr(hex, poff + 5, coff - poff - 4), cs, substr(hex, coff + 5)
		}
	}'
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
