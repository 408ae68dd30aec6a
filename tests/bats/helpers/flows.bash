# shellcheck shell=bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Readers for `mseg flows` and `mseg graph` (issue 15), shared by flows.bats
# (crafted frames) and flows_lab.bats (the application lab).
#
# Requires common.bash.

# The fields of one `mseg flows --json` row, in order (docs/json.md).
# shellcheck disable=SC2034 # the suites read it
FLOWS_FIELDS='["src","src_kind","dst","dst_kind","proto","dport","verdict","rule","connections","packets","bytes","first_seen","first_seen_ns","last_seen","last_seen_ns","staged_verdict","staged_rule","disagreements"]'

# boot_ns: CLOCK_BOOTTIME now, in nanoseconds: the clock of every *_ns field.
boot_ns() {
	"$MSEG_PYTHON" -c 'import time; print(time.clock_gettime_ns(time.CLOCK_BOOTTIME))'
}

# flows_rows [JQ_COND]: the rows of `mseg flows --json` for which COND holds,
# as one sorted array, the times left out (they are checked apart).
flows_rows() {
	local all
	all=$(mseg flows --json) || return 1
	jq -c -S "[.[] | select(${1:-true}) | del(.first_seen, .first_seen_ns, .last_seen, .last_seen_ns,
		.staged_verdict, .staged_rule, .disagreements)]
		| sort_by(.src, .dst, .proto, .dport, .verdict, (.rule | tostring))" <<<"$all"
}

# flows_sorted JSON: an array of rows as flows_rows prints it.
flows_sorted() {
	jq -c -S 'sort_by(.src, .dst, .proto, .dport, .verdict, (.rule | tostring))' <<<"$1"
}

# flows_map [flows_gc]: mseg_flows (or mseg_flows_gc) read straight from
# bpftool (helpers/mapdecode.py: every CPU's slots added up by flow), one
# object per flow per line.
flows_map() {
	local which=${1:-flows}
	map_dump "mseg_$which" | "$MSEG_PYTHON" "$MSEG_HELPERS/mapdecode.py" "$which"
}

# _graph_norm: a drawing (svggraph.py's object) in one order.
_graph_norm='.nodes |= sort_by(.name, .shape) | .edges |= sort_by(.from, .to, .labels, .stroke, (.dash // ""))'

# graph_of SVG: what the SVG draws (helpers/svggraph.py), in one order.
graph_of() {
	"$MSEG_PYTHON" "$MSEG_HELPERS/svggraph.py" "$1" | jq -c -S "$_graph_norm"
}

# graph_expected ROWS: the drawing `mseg graph` owes the rows of `mseg flows
# --json` (docs/DESIGN.md, "Flows"): a node per host or segment (a segment a
# box, a host an ellipse), an edge per flow, allowed solid green, denied
# dashed red, would-deny dotted orange, labelled PROTO/PORT and the count.
graph_expected() {
	jq -c -S '
		def shape: if . == "segment" then "polygon" else "ellipse" end;
		def stroke: {"allowed": "#2e7d32", "denied": "#c62828", "would-deny": "#ef6c00"}[.verdict];
		def dash: {"allowed": null, "denied": "5,2", "would-deny": "1,5"}[.verdict];
		def service: .proto + (if .dport == null then "" else "/\(.dport)" end);
		def count: "\(.connections) connection" + (if .connections == 1 then "" else "s" end);
		{nodes: ([.[] | {name: .src, shape: (.src_kind | shape)}, {name: .dst, shape: (.dst_kind | shape)}] | unique),
		 edges: [.[] | {from: .src, to: .dst, stroke: stroke, dash: dash, labels: [service, count]}]}
	' <<<"$1" | jq -c -S "$_graph_norm"
}
