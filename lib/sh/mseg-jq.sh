#!/usr/bin/env bash
# mseg-jq.sh: jq functions that turn bpftool's BTF view of the maps into text.
#
# Kept as a bash string (not a .jq file) so it installs with lib/sh/*.sh and
# every command prepends the same definitions with mseg_jq. jq 1.6 holds
# numbers as doubles: u64 counters print exactly up to 2^53.
# shellcheck disable=SC2034 # globals and namerefs serve the sourcing scripts

[[ -n ${MSEG_JQ_LOADED:-} ]] && return 0
MSEG_JQ_LOADED=1

# shellcheck disable=SC2016 # jq code: $names are jq variables
MSEG_JQ_DEFS='
def mseg_hex:
  if . < 16 then "0123456789abcdef"[.:.+1]
  else ((. / 16 | floor) | mseg_hex) + ((. % 16) | mseg_hex) end;

def mseg_is_v4: (.[0:10] | all(. == 0)) and .[10] == 255 and .[11] == 255;

def mseg_addr4: .[12:16] | map(tostring) | join(".");

# 16 bytes as IPv6 text (RFC 5952), whatever they hold.
def mseg_addr6:
  . as $b
  | [range(0; 8) as $i | $b[2 * $i] * 256 + $b[2 * $i + 1]] as $g
  | (reduce range(0; 8) as $i ({best: null, cur: null};
       if $g[$i] == 0 then
         .cur = (if .cur == null then [$i, 1] else [.cur[0], .cur[1] + 1] end)
         | if .cur[1] >= 2 and (.best == null or .cur[1] > .best[1])
           then .best = .cur else . end
       else .cur = null end)
     | .best) as $z
  | if $z == null then $g | map(mseg_hex) | join(":")
    else ($g[0:$z[0]] | map(mseg_hex) | join(":")) + "::"
      + ($g[$z[0] + $z[1]:] | map(mseg_hex) | join(":"))
    end;

# 16 address bytes -> text: IPv4-mapped as a dotted quad, else RFC 5952.
def mseg_addr: if mseg_is_v4 then mseg_addr4 else mseg_addr6 end;

# {address bytes as JSON text: address text} for every address f yields
# over the input array: a big table between few hosts decodes each once.
def mseg_addr_names(f):
  [.[] | f] | unique | map({key: tostring, value: mseg_addr}) | from_entries;

def mseg_proto:
  {"1": "icmp", "6": "tcp", "17": "udp", "58": "icmpv6"}[tostring] // tostring;

def mseg_name($names): $names[.] // tostring;

# Rows (arrays) under a header -> left-aligned columns, two spaces apart.
def mseg_table($head):
  ([$head] + . | map(map(tostring))) as $all
  | [range(0; $head | length) as $c | $all | map(.[$c] | length) | max] as $w
  | $all[]
  | [range(0; length) as $c | .[$c] + (" " * ($w[$c] - (.[$c] | length)))]
  | join("  ") | sub(" +$"; "");

def mseg_round1: . * 10 | round / 10;
'

#######################################
# Run jq with mseg's definitions in front of PROGRAM.
# Arguments:
#   PROGRAM, then jq options; input comes from stdin.
#######################################
mseg_jq() {
  local prog=$1
  shift
  jq "$@" "$MSEG_JQ_DEFS $prog"
}
