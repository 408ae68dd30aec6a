#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Random flows, and the ruleset `mseg learn` owes them (docs/learn.md).

  learn-model.py gen --dir DIR [--seed N] [--flows N]
      Writes into DIR:
        policy.rules    the policy the flows are judged by: default allow,
                        failsafes off, segments, exact deny rules with ids
        segments.rules  other segments, for `mseg learn --segments`
        frames.hex      one frame per flow (TCP SYN, UDP, ICMP echo), in hex
        flows.json      the flows, with the verdict the policy gives each
  learn-model.py check --dir DIR --verdicts FILE --learned FILE
                       [--widen BITS4[/BITS6]] [--segments FILE]
      Checks the classifier's verdicts (mseg-testrun) against flows.json,
      then the rules of the learned ruleset against the model's.

Written from docs/learn.md and docs/policy.md alone, with Python's
ipaddress for every prefix question; it shares no code with mseg. The
flows are drawn so that no set of mseg_flows (helpers/flowset.py) holds
more than its 4 ways, so the map forgets none of them.
"""

import argparse
import importlib.util
import ipaddress
import json
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


policy_model = _load("policy_model", "policy-model.py")  # frame(): TCP SYN and UDP frames
flowset = _load("flowset", "flowset.py")                  # flow_set(): mseg_flows' set

PROTO = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
PORTS_MAX = 64          # docs/policy.md: at most 64 ports and ranges in a list
LINE_MAX = 511          # an mseg_source statement, with the longest id
ID_MAX = 262111
FLOW_SET_BITS = 11
FLOW_WAYS = 4


# --- the draw -------------------------------------------------------------------


def rand_net(rng, base, plen):
    bits = base.max_prefixlen
    a = int(base.network_address) | rng.getrandbits(plen - base.prefixlen) << (bits - plen)
    return ipaddress.ip_network((a, plen))


def rand_host(rng, net):
    span = net.max_prefixlen - net.prefixlen
    while True:
        h = net.network_address + rng.randint(1, (1 << span) - 2)
        if h != net.network_address:
            return h


def draw_segments(rng, name, v4root, v6root):
    """A few segments: IPv4 /24s and a /16 around one of them (an address
    of the /24 is the /24's segment: the longest prefix), IPv6 /64s, one
    segment of both families."""
    segs = {}
    nets4 = [rand_net(rng, v4root, 24) for _ in range(4)]
    nets6 = [rand_net(rng, v6root, 64) for _ in range(3)]
    segs[name + "a"] = [nets4[0]]
    segs[name + "b"] = [nets4[0].supernet(new_prefix=16)]
    segs[name + "c"] = [nets4[1], nets4[2]]
    segs[name + "d"] = [nets6[0]]
    segs[name + "e"] = [nets4[3], nets6[1]]
    return segs, nets4 + nets6[:2], nets6[2]


def icmp_frame(src, dst, ident):
    eth = bytes.fromhex("020000000002020000000001")
    if src.version == 4:
        l4 = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"mseg-lrn"
        l4 = l4[:2] + struct.pack("!H", policy_model.csum(l4)) + l4[4:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, 1, 0,
                         src.packed, dst.packed)
        ip = ip[:10] + struct.pack("!H", policy_model.csum(ip)) + ip[12:]
        return eth + b"\x08\x00" + ip + l4
    l4 = struct.pack("!BBHHH", 128, 0, 0, ident, 1) + b"mseg-lrn"
    ip = struct.pack("!IHBB16s16s", 0x60000000, len(l4), 58, 64, src.packed, dst.packed)
    return eth + b"\x86\xdd" + ip + l4


def gen(args):
    rng = random.Random(args.seed)
    segs, nets, bare6 = draw_segments(rng, "s", ipaddress.ip_network("10.64.0.0/10"),
                                      ipaddress.ip_network("fd00:64::/32"))
    # the hosts: clusters in the segments' prefixes and outside any, a few per
    # /24 or /64, so --widen has sources to merge
    outside4 = [rand_net(rng, ipaddress.ip_network("10.128.0.0/10"), 24) for _ in range(3)]
    outside6 = [rand_net(rng, ipaddress.ip_network("fd00:128::/32"), 64) for _ in range(2)] + [bare6]
    hosts = {4: [], 6: []}
    for n in nets + outside4 + outside6:
        hosts[n.version] += [rand_host(rng, n) for _ in range(rng.randint(2, 6))]
    for fam in (4, 6):
        hosts[fam] = sorted(set(hosts[fam]))
    # each destination offers a few services; runs of ports make ranges
    services = {}
    for fam in (4, 6):
        for d in hosts[fam]:
            ports = set()
            for _ in range(rng.randint(1, 3)):
                p = rng.choice([80, 443, 5432, 6379, 8080, 9000 + rng.randint(0, 50),
                                rng.randint(1, 65535)])
                ports.update(range(p, min(p + rng.choice([1, 1, 1, 2, 3]), 65536)))
            services[d] = sorted(ports)
    flows, seen = [], set()
    while len(flows) < args.flows:
        fam = rng.choice([4, 4, 6])
        src, dst = rng.sample(hosts[fam], 2)
        proto = rng.choices(["tcp", "udp", "icmp"], [45, 40, 15])[0]
        port = rng.choice(services[dst]) if proto != "icmp" else 0
        key = (str(src), str(dst), proto, port)
        if key not in seen:
            seen.add(key)
            flows.append({"src": src, "dst": dst, "proto": proto, "dport": port})
    # scanners: many ports from one host to another, beyond one rule's list
    # (64 items; with long IPv6 addresses and 5-digit ports, 511 characters)
    for fam, first, n in ((4, rng.randint(1000, 2000), 100), (6, rng.randint(10000, 20000), 80)):
        src, dst = rng.sample(hosts[fam], 2)
        if fam == 6:
            src = ipaddress.ip_address(int(src) | 0x1234_5678_9ABC_DEF0 & ((1 << 64) - 1))
            dst = ipaddress.ip_address(int(dst) | 0x0FED_CBA9_8765_4321 & ((1 << 64) - 1))
        for i in range(n):
            flows.append({"src": src, "dst": dst, "proto": "tcp",
                          "dport": first + 2 * i + (i % 7 == 6)})
    # what the policy denies: exact rules on some flows (their hosts' other
    # flows, and their segments', stay allowed by the default)
    rules = []
    for f in flows:
        f["id"], f["verdict"] = 0, "allowed"
        if rng.random() < 0.12:
            f["id"], f["verdict"] = len(rules) + 1, "denied"
            rules.append(f)
    # keep every set of mseg_flows within its ways, whichever CPU counts it
    load, kept = {}, []
    for f in flows:
        p = PROTO[f["proto"]] if not (f["proto"] == "icmp" and f["src"].version == 6) else 58
        k = flowset.flow_set(str(f["src"]), str(f["dst"]), p, f["id"],
                             0 if f["verdict"] == "allowed" else 1, f["dport"], FLOW_SET_BITS)
        if load.get(k, 0) < FLOW_WAYS:
            load[k] = load.get(k, 0) + 1
            kept.append(f)
    flows = kept
    rules = [r for r in rules if r in flows]
    with open(args.dir + "/policy.rules", "w") as out:
        out.write("default allow\nfailsafe off\n")
        for name, ns in segs.items():
            out.write("segment add %s %s\n" % (name, " ".join(map(str, ns))))
        for r in rules:
            out.write("rule add --id %d --src %s --dst %s --proto %s%s --action deny\n"
                      % (r["id"], r["src"], r["dst"], r["proto"],
                         " --dport %d" % r["dport"] if r["proto"] != "icmp" else ""))
    # other segments for --segments: the hosts' prefixes grouped otherwise
    other, _, _ = draw_segments(rng, "t", ipaddress.ip_network("10.64.0.0/10"),
                                ipaddress.ip_network("fd00:64::/32"))
    other["tw"] = [ipaddress.ip_network(h).supernet(new_prefix=24) for h in hosts[4][::5]
                   if not any(h in n for ns in other.values() for n in ns)][:4]
    with open(args.dir + "/segments.rules", "w") as out:
        out.write("# segments to learn by\n")
        for name, ns in other.items():
            if ns:
                out.write("segment add %s %s\n" % (name, " ".join(sorted(set(map(str, ns))))))
    with open(args.dir + "/frames.hex", "w") as out:
        for i, f in enumerate(flows):
            if f["proto"] == "icmp":
                fr = icmp_frame(f["src"], f["dst"], 100 + i)
            else:
                fr = policy_model.frame({"src": f["src"], "dst": f["dst"], "proto": PROTO[f["proto"]],
                                         "sport": 20000 + i, "dport": f["dport"]})
            out.write(fr.hex() + "\n")
    with open(args.dir + "/flows.json", "w") as out:
        json.dump([dict(f, src=str(f["src"]), dst=str(f["dst"])) for f in flows], out)
    print("seed %d: %d flows (%d denied), %d segments; sets used %d, fullest %d"
          % (args.seed, len(flows), len(rules), len(segs), len(load), max(load.values())))


# --- the ruleset learn owes --------------------------------------------------------


def read_segments(path):
    segs = {}
    with open(path) as f:
        for line in f:
            w = line.split("#")[0].split()
            if len(w) >= 3 and w[0] == "segment" and w[1] == "add":
                segs.setdefault(w[2], []).extend(ipaddress.ip_network(x) for x in w[3:])
    return segs


class Segments:
    def __init__(self, segs):
        self.segs = segs
        self.dual = {n for n, ns in segs.items() if {x.version for x in ns} == {4, 6}}

    def of(self, addr):
        """docs/policy.md: an address is the segment of its longest segment prefix."""
        best, blen = None, -1
        for name, ns in self.segs.items():
            for n in ns:
                if n.version == addr.version and addr in n and n.prefixlen > blen:
                    best, blen = name, n.prefixlen
        return best


def rule_proto(f):
    return f["proto"]  # icmp is the ICMP of the flow's family: the rule says icmp


def ranges(ports):
    out = []
    for p in sorted(ports):
        if out and out[-1][1] + 1 == p:
            out[-1][1] = p
        else:
            out.append([p, p])
    return out


def ports_text(rs):
    return ",".join(str(lo) if lo == hi else "%d-%d" % (lo, hi) for lo, hi in rs)


def side_text(s):
    return s[1] if s[0] == "seg" else (str(s[1].network_address) if s[1].prefixlen == s[1].max_prefixlen
                                       else str(s[1]))


def statement(src, dst, proto, rs, action):
    line = "rule add --src %s --dst %s --proto %s" % (side_text(src), side_text(dst), proto)
    if rs:
        line += " --dport " + ports_text(rs)
    return line + " --action " + action


def rules_of(items, action):
    """items: {(src, dst, proto): set of ports (empty: no ports)} -> statements,
    a list split where the next range would make more than 64 items or a
    statement (with the longest id) longer than 511 characters."""
    out = []
    for (src, dst, proto), ports in items.items():
        if not ports:
            out.append(statement(src, dst, proto, [], action))
            continue
        cur = []
        for p in sorted(ports):
            trial = [list(r) for r in cur]
            if trial and trial[-1][1] + 1 == p:
                trial[-1][1] = p
            else:
                trial.append([p, p])
            fits = len(trial) <= PORTS_MAX and \
                len(statement(src, dst, proto, trial, action) + " --id %d" % ID_MAX) <= LINE_MAX
            if cur and not fits:
                out.append(statement(src, dst, proto, cur, action))
                trial = [[p, p]]
            cur = trial
        out.append(statement(src, dst, proto, cur, action))
    return out


def model(flows, segs, widen4, widen6):
    sg = Segments(segs)

    def sides(f):
        s, d = sg.of(f["src"]), sg.of(f["dst"])
        # a segment of both families is never paired with a host (docs/policy.md)
        s2 = None if (s in sg.dual and d is None) else s
        d2 = None if (d in sg.dual and s is None) else d
        return (("seg", s2) if s2 else ("net", ipaddress.ip_network(f["src"])),
                ("seg", d2) if d2 else ("net", ipaddress.ip_network(f["dst"])))

    allowed = [f for f in flows if f["verdict"] == "allowed"]
    exact_allowed = {(f["src"], f["dst"], f["proto"], f["dport"]) for f in allowed}
    # one item per (sides, protocol, port)
    items = {}
    for f in allowed:
        src, dst = sides(f)
        items.setdefault((dst, rule_proto(f), f["dport"]), set()).add(src)
    # --widen: per service, the host sources sharing a /N (two or more) are the /N
    rules = {}
    for (dst, proto, port), srcs in items.items():
        groups = {}
        for s in srcs:
            bits = (widen4 if s[1].version == 4 else widen6) if s[0] == "net" else 0
            key = ("net", s[1].supernet(new_prefix=bits)) if bits and bits < s[1].prefixlen else s
            groups.setdefault(key, set()).add(s)
        for key, members in groups.items():
            src = key if len(members) > 1 else next(iter(members))
            ports = rules.setdefault((src, dst, proto), set())
            if port:
                ports.add(port)
    allow = rules_of(rules, "allow")

    # the denied flows the allow rules would pass: an exact deny each
    def matches(side, addr):
        if side[0] == "seg":
            return sg.of(addr) == side[1]
        return addr.version == side[1].version and addr in side[1]

    exc = {}
    for f in flows:
        if f["verdict"] == "allowed" or (f["src"], f["dst"], f["proto"], f["dport"]) in exact_allowed:
            continue
        if any(proto == f["proto"] and (not ports or f["dport"] in ports)
               and matches(src, f["src"]) and matches(dst, f["dst"])
               for (src, dst, proto), ports in rules.items()):
            key = (("net", ipaddress.ip_network(f["src"])), ("net", ipaddress.ip_network(f["dst"])),
                   f["proto"])
            ps = exc.setdefault(key, set())
            if f["dport"]:
                ps.add(f["dport"])
    return allow, rules_of(exc, "deny")


def normal(line):
    """A statement of the learned ruleset, its addresses as ipaddress writes them."""
    w = line.split()
    for i, x in enumerate(w):
        if w[i - 1] in ("--src", "--dst") and (":" in x or "." in x):
            w[i] = str(ipaddress.ip_network(x).network_address) if "/" not in x else str(ipaddress.ip_network(x))
    return " ".join(w)


def check(args):
    with open(args.dir + "/flows.json") as f:
        flows = json.load(f)
    for f in flows:
        f["src"], f["dst"] = ipaddress.ip_address(f["src"]), ipaddress.ip_address(f["dst"])
    with open(args.verdicts) as f:
        verdicts = [int(x) for x in f if x.strip()]
    bad = [i for i, (f, v) in enumerate(zip(flows, verdicts))
           if v != (0 if f["verdict"] == "allowed" else 2)]
    if len(verdicts) != len(flows) or bad:
        print("the classifier's verdicts are not the policy's: %d verdicts for %d flows, %d differ"
              % (len(verdicts), len(flows), len(bad)))
        return 1
    w4, w6 = 0, 0
    if args.widen:
        a, _, b = args.widen.partition("/")
        w4, w6 = int(a), int(b or 0)
    segs = read_segments(args.segments or args.dir + "/policy.rules")
    allow, deny = model(flows, segs, w4, w6)
    with open(args.learned) as f:
        text = f.read().splitlines()
    got_allow = sorted(normal(x) for x in text if x.startswith("rule add") and x.endswith("allow"))
    got_deny = sorted(normal(x) for x in text if x.startswith("rule add") and x.endswith("deny"))
    bad = 0
    for what, want, got in (("allow", sorted(allow), got_allow), ("deny", sorted(deny), got_deny)):
        for x in sorted(set(want) - set(got))[:10]:
            print("missing %s rule: %s" % (what, x))
        for x in sorted(set(got) - set(want))[:10]:
            print("unexpected %s rule: %s" % (what, x))
        bad += want != got
    # the rest of the ruleset: default deny, the failsafes in force, every
    # segment, and the flows left out listed
    want_segs = {n: sorted(map(str, ns)) for n, ns in segs.items()}
    got_segs = read_segments(args.learned)
    got_segs = {n: sorted(map(str, ns)) for n, ns in got_segs.items()}
    denied = sum(1 for f in flows if f["verdict"] != "allowed")
    listed = sum(1 for x in text if x.startswith("#   denied "))
    for ok, why in ((want_segs == got_segs, "the segments differ: %s" % got_segs),
                    ("default deny" in text, "no 'default deny' line"),
                    ("failsafe off" in text, "not the failsafes in force ('failsafe off')"),
                    (listed == denied, "%d flows listed as left out, %d denied" % (listed, denied))):
        if not ok:
            print(why)
            bad += 1
    print("%d allow and %d deny rules (model: %d and %d) for %d flows, %d denied%s"
          % (len(got_allow), len(got_deny), len(allow), len(deny), len(flows), denied,
             "" if not bad else ": MISMATCH"))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--dir", required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--flows", type=int, default=300)
    c = sub.add_parser("check")
    c.add_argument("--dir", required=True)
    c.add_argument("--verdicts", required=True)
    c.add_argument("--learned", required=True)
    c.add_argument("--widen")
    c.add_argument("--segments")
    args = ap.parse_args()
    if args.cmd == "gen":
        gen(args)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
