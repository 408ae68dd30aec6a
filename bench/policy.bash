# shellcheck shell=bash
# Policies for the benchmarks that compare mseg with nftables on the same
# policy (connrate.sh, rulecount.sh): a generator of a realistic filler mix
# in `mseg apply` format, and a translation of that format into one nft
# table, so both filters always load the same policy.

# policy_mix N: N allow rules (rule add + cidr add) for hosts no benchmark
# sends from or to (10.0.0.0/9, 10.200-201.0.0/16, 100.64.0.0/10 and their
# IPv6 twins fd10::/16, fd20::/16, fd21::/16, 2001:db8::/32):
#   - N/50 segments (at least 2), each one IPv4 /24 and one IPv6 /64;
#   - 80 % of the rules between two segments (tcp, one port each), no two
#     alike;
#   - 10 % exact rules between two hosts (tcp 443), IPv4 and IPv6 in turn;
#   - 10 % CIDR rules (a /24 or a /64), IPv4 and IPv6 in turn.
policy_mix() {
  awk -v n="$1" 'BEGIN {
    ns = int(n / 50); if (ns < 2) ns = 2
    nc = int(n / 10); ne = int(n / 10); nr = n - nc - ne
    for (i = 0; i < ns; i++)
      printf "segment add s%d 10.%d.%d.0/24 fd10:0:%x:%x::/64\n",
        i, int(i / 256), i % 256, int(i / 256), i % 256
    for (i = 0; i < nr; i++)
      printf "rule add --src s%d --dst s%d --proto tcp --dport %d --action allow\n",
        i % ns, (i * 7 + int(i / ns) + 1) % ns, 1000 + int(i / ns)
    for (i = 0; i < ne; i++)
      if (i % 2 == 0)
        printf "rule add --src 10.200.%d.%d --dst 10.201.%d.%d --proto tcp --dport 443 --action allow\n",
          int(i / 256) % 256, i % 256, int(i / 256) % 256, i % 256
      else
        printf "rule add --src fd20::%x --dst fd21::%x --proto tcp --dport 443 --action allow\n", i, i
    for (i = 0; i < nc; i++)
      if (i % 2 == 0)
        printf "cidr add 100.%d.%d.0/24 --action allow\n", 64 + int(i / 512), int(i / 2) % 256
      else
        printf "cidr add 2001:db8:%x:%x::/64 --action allow\n", int(i / 65536), i % 65536
  }'
}

# policy_nft TABLE HOOK PRIORITY [maps|chain]: the `mseg apply` statements
# on stdin as one nft table (family inet) whose base chain on HOOK accepts established
# and related packets first (conntrack) and then decides a new flow as the
# policy does. It takes what policy_mix and the benchmarks write: `default`,
# `segment add NAME PREFIX...`, `rule add` between two segments or two
# hosts with one protocol and one port, `cidr add`; anything else is an
# error. Segments become identities as mseg compiles them (docs/policy.md):
# an interval map from address to a number per family, looked up once per
# side (the source's number in the packet mark, the destination's in the
# connection mark), then one verdict map on (src . dst . protocol . port).
# Exact rules are a verdict map on the 4-tuple, CIDR rules an interval
# verdict map looked up with the source and with the destination. The
# translation decides every flow as mseg does when no two rules with
# different actions match one flow, as in every policy the benchmarks make.
# With "maps" only the table and its maps are written, with "chain" only the
# chain (to add to a table loaded with the maps: the chain brings conntrack
# with it, the maps alone cost a packet nothing).
policy_nft() {
  awk -v table="$1" -v hook="$2" -v prio="$3" -v part="${4:-all}" '
    function die(msg) { printf "mseg: policy_nft: line %d: %s\n", NR, msg > "/dev/stderr"; bad = 1; exit 1 }
    function verdict(a) {
      if (a == "allow") return "accept"
      if (a == "deny") return "drop"
      die("action " a)
    }
    function host(x) { return x ~ /^[0-9.]+$/ || (x ~ /:/ && x !~ /\//) }
    function add(set, elem) { elems[set, ++count[set]] = elem }
    function opt(name,   i) {
      for (i = 3; i < NF; i++) if ($i == name) return $(i + 1)
      return ""
    }
    /^[[:space:]]*(#|$)/ { next }
    $1 == "default" { policy = verdict($2); next }
    $1 == "segment" && $2 == "add" {
      id[$3] = ++ids
      for (i = 4; i <= NF; i++) add(index($i, ":") ? "seg6" : "seg4", $i " : " ids)
      next
    }
    $1 == "rule" && $2 == "add" {
      s = opt("--src"); d = opt("--dst"); p = opt("--proto"); port = opt("--dport")
      v = verdict(opt("--action"))
      if (p == "" || port == "" || port !~ /^[0-9]+$/) die("needs --proto and one --dport")
      if (s in id && d in id) add("pol", id[s] " . " id[d] " . " p " . " port " : " v)
      else if (host(s) && host(d)) add(index(s, ":") ? "exact6" : "exact4", s " . " d " . " p " . " port " : " v)
      else die("a side is neither a known segment nor a host: " s " " d)
      next
    }
    $1 == "cidr" && $2 == "add" {
      add(index($3, ":") ? "cidr6" : "cidr4", $3 " : " verdict(opt("--action")))
      next
    }
    { die("not translated: " $0) }
    function decl(set, type, flags,   i) {
      printf "  map %s { type %s;%s\n", set, type, flags
      for (i = 1; i <= count[set]; i++)
        printf "%s%s", (i == 1 ? "    elements = { " : ",\n      "), elems[set, i]
      print (count[set] ? " }\n  }" : "  }")
    }
    END {
      if (bad) exit 1
      printf "table inet %s {\n", table
      if (part != "chain") {
        decl("seg4", "ipv4_addr : mark", " flags interval;")
        decl("seg6", "ipv6_addr : mark", " flags interval;")
        decl("pol", "mark . mark . inet_proto . inet_service : verdict", "")
        decl("exact4", "ipv4_addr . ipv4_addr . inet_proto . inet_service : verdict", "")
        decl("exact6", "ipv6_addr . ipv6_addr . inet_proto . inet_service : verdict", "")
        decl("cidr4", "ipv4_addr : verdict", " flags interval;")
        decl("cidr6", "ipv6_addr : verdict", " flags interval;")
      }
      if (part == "maps") { print "}"; exit }
      printf "  chain filter { type filter hook %s priority %s; policy %s;\n", hook, prio, policy ? policy : "accept"
      print "    ct state established,related accept"
      print "    meta mark set ip saddr map @seg4"
      print "    ct mark set ip daddr map @seg4"
      print "    meta mark set ip6 saddr map @seg6"
      print "    ct mark set ip6 daddr map @seg6"
      print "    meta mark . ct mark . meta l4proto . th dport vmap @pol"
      print "    ip saddr . ip daddr . meta l4proto . th dport vmap @exact4"
      print "    ip6 saddr . ip6 daddr . meta l4proto . th dport vmap @exact6"
      print "    ip daddr vmap @cidr4"
      print "    ip saddr vmap @cidr4"
      print "    ip6 daddr vmap @cidr6"
      print "    ip6 saddr vmap @cidr6"
      print "  }"
      print "}"
    }'
}
