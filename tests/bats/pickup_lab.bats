#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Attaching to a host with live connections (the fleet's first rollout: the
# role attaches over its own SSH connection, then applies default deny with
# SSH allowed in). mseg picks those connections up mid-stream; the first
# packet it sees may be the responder's. The pickup must not take that
# responder for the originator: the policy allows "client -> server:PORT",
# and a session oriented server -> client would be denied when the new
# policy re-judges it, cutting the connection the policy allows (seen as
# the fleet's ssh going UNREACHABLE in the middle of a rollout).
#
# A ticker connection (only the server sends; helpers/lab-ticker.py) is
# open before mseg is attached, on egress first, so the first packet mseg
# sees is the server's. IPv4 and IPv6.

# shellcheck disable=SC2154,SC2153 # bats sets $output/$status; lab.bash sets LAB_*
bats_require_minimum_version 1.5.0

load helpers/common
load helpers/lab

setup() {
	require_build
	lab_setup --no-filter
}

teardown() {
	[[ -n ${LAB_C:-} ]] && lab_teardown
	return 0
}

server_listens() { ip netns exec "$LAB_S" ss -Hltn "sport = :$1" | grep -q .; }

ticks() { cat "$LAB_DIR/ticks.$1" 2>/dev/null || echo 0; }

ticks_at_least() { (($(ticks "$1") >= $2)); }

# ticks_grow FAMILY N: wait until the client received N more bytes.
ticks_grow() {
	local from
	from=$(ticks "$1")
	wait_until 100 ticks_at_least "$1" $((from + $2))
}

@test "a connection picked up from the responder's packet keeps the originator the policy allows" {
	local fam c s
	for fam in 4 6; do
		if [[ $fam == 4 ]]; then c=$LAB_C4 s=$LAB_S4; else c=$LAB_C6 s=$LAB_S6; fi
		_lab_bg "$LAB_S" "$LAB_DIR/serve.$fam.log" timeout -k 5 90 \
			"$MSEG_PYTHON" "$MSEG_HELPERS/lab-ticker.py" serve "500$fam" --life 80
		wait_until 50 server_listens "500$fam"
		_lab_bg "$LAB_C" "$LAB_DIR/read.$fam.log" timeout -k 5 90 \
			"$MSEG_PYTHON" "$MSEG_HELPERS/lab-ticker.py" read "$s" "500$fam" "$LAB_DIR/ticks.$fam" --life 80
		ticks_grow "$fam" 3 || { cat "$LAB_DIR"/*."$fam".log >&2; false; }
	done
	# Egress first (the server's packets), so the server's packet is surely
	# the first one mseg sees; then ingress (the client's ACKs).
	attach_dev "$LAB_RC" "$LAB_R" --egress
	for fam in 4 6; do
		ticks_grow "$fam" 3
	done
	attach_dev "$LAB_RC" "$LAB_R" --ingress
	for fam in 4 6; do
		ticks_grow "$fam" 3
	done
	# Each was picked up, its originator the client.
	for fam in 4 6; do
		if [[ $fam == 4 ]]; then c=$LAB_C4 s=$LAB_S4; else c=$LAB_C6 s=$LAB_S6; fi
		run -0 mseg sessions --json --proto tcp
		[ "$(jq -r --argjson p "500$fam" 'map(select(.sport == $p or .dport == $p)) | .[0].src' <<<"$output")" = "$c" ] ||
			{ echo "sessions: $output" >&2; false; }
	done
	printf '%s\n' 'default deny' \
		"rule --src $LAB_C4 --dst $LAB_S4 --proto tcp --dport 5004 --action allow" \
		"rule --src $LAB_C6 --dst $LAB_S6 --proto tcp --dport 5006 --action allow" |
		mseg apply - >/dev/null
	for fam in 4 6; do
		ticks_grow "$fam" 5 || { echo "IPv$fam: the allowed connection was cut" >&2; mseg sessions >&2; false; }
	done
}
