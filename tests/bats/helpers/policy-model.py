#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""A random policy, random flows, and the verdicts docs/policy.md defines.

  policy-model.py gen --dir DIR [--seed N] [--rules N] [--flows N]
      Writes into DIR:
        policy.rules  a ruleset for `mseg apply` (failsafes, segments, rules
                      with ids)
        frames.hex    one Ethernet/IP/TCP-SYN or UDP frame per flow, in hex
        flows.txt     the same flows as `mseg explain --batch` reads them
        expect.json   per flow: the deciding rule id (0: default), action
  policy-model.py check --dir DIR --verdicts FILE --explain FILE
      Compares the classifier's verdicts (mseg-testrun) and explain's
      "ACTION RULE_ID" lines with the model.

The model is written from docs/policy.md alone, with Python's ipaddress
for every prefix question; it shares no code with mseg.
"""

import argparse
import ipaddress
import json
import random
import struct
import sys

ACTIONS = ["allow", "deny", "log"]
ORDER = {"deny": 0, "log": 1, "allow": 2}
VERDICT = {"allow": 0, "log": 0, "deny": 2}
DEFAULT = "deny"
PROTO = {"tcp": 6, "udp": 17}
# docs/policy.md, "failsafes": the default list, and the first failsafe id
FAILSAFE_DEFAULT = [("tcp", 22), ("tcp", 53), ("udp", 53), ("udp", 67), ("udp", 68), ("udp", 123)]
FAILSAFE_ID = 262112
ROOT = {4: ipaddress.ip_network("10.0.0.0/8"), 6: ipaddress.ip_network("fd00::/16")}


def rand_sub(rng, net, lo, hi):
    plen = rng.randint(max(lo, net.prefixlen), hi)
    bits = net.max_prefixlen
    a = int(net.network_address) | (rng.getrandbits(bits - net.prefixlen) if bits > net.prefixlen else 0)
    a = a >> (bits - plen) << (bits - plen)
    return ipaddress.ip_network((a, plen))


def inside(rng, net):
    bits = net.max_prefixlen - net.prefixlen
    return net.network_address + (rng.getrandbits(bits) if bits else 0)


def spec(net):
    # docs/policy.md: IPv4 /L scores 97 + L, IPv6 /L 1 + L
    return 97 + net.prefixlen if net.version == 4 else 1 + net.prefixlen


class Model:
    def __init__(self, segments, rules, failsafes):
        self.segments, self.rules = segments, rules
        # a failsafe's id is its place in the list ordered by port, then
        # protocol number
        order = sorted(set(failsafes), key=lambda e: (e[1], PROTO[e[0]]))
        self.failsafes = {(PROTO[p], port): FAILSAFE_ID + i for i, (p, port) in enumerate(order)}
        # each side as ("any",), ("seg", name) or ("net", network)
        for r in rules:
            for k in ("src", "dst"):
                v = r[k]
                r["_" + k] = (("any",) if v == "any" else ("seg", v) if v in segments
                              else ("net", ipaddress.ip_network(v)))

    def segment_of(self, addr):
        best, blen = None, -1
        for name, nets in self.segments.items():
            for n in nets:
                if n.version == addr.version and addr in n and n.prefixlen > blen:
                    best, blen = (name, spec(n)), n.prefixlen
        return best

    @staticmethod
    def side(sel, addr, seg):
        if sel[0] == "any":
            return 0
        if sel[0] == "seg":
            return seg[1] if seg and seg[0] == sel[1] else None
        net = sel[1]
        return spec(net) if net.version == addr.version and addr in net else None

    def decide(self, f):
        # a failsafe beats every rule: the flow's protocol and destination port
        fs = self.failsafes.get((f["proto"], f["dport"]))
        if fs:
            return fs, "allow"
        best = None
        sseg, dseg = self.segment_of(f["src"]), self.segment_of(f["dst"])
        for r in self.rules:
            proto = r["proto"]
            if proto == "icmp":
                proto = 1 if f["src"].version == 4 else 58
            elif proto != "any":
                proto = PROTO[proto]
            if proto != "any" and proto != f["proto"]:
                continue
            if r["ports"] and not any(lo <= f["dport"] <= hi for lo, hi in r["ports"]):
                continue
            if r["sport"] and r["sport"] != f["sport"]:
                continue
            ss, ds = self.side(r["_src"], f["src"], sseg), self.side(r["_dst"], f["dst"], dseg)
            if ss is None or ds is None:
                continue
            rank = (r["prio"], -ds, -ss, r["proto"] == "any", not r["ports"],
                    not r["sport"], ORDER[r["action"]], r["id"])
            if best is None or rank < best[0]:
                best = (rank, r)
        return (best[1]["id"], best[1]["action"]) if best else (0, DEFAULT)


def ports_text(ports):
    return ",".join(str(lo) if lo == hi else "%d-%d" % (lo, hi) for lo, hi in ports)


def draw_ports(rng):
    kind = rng.random()
    if kind < 0.4:
        p = rng.randint(1, 120)
        return [(p, p)]
    if kind < 0.7:
        lo = rng.randint(1, 110)
        return [(lo, lo + rng.randint(1, 40))]
    pts, at = [], rng.randint(1, 30)
    for _ in range(rng.randint(2, 4)):
        hi = at + rng.choice([0, 0, rng.randint(1, 15)])
        pts.append((at, hi))
        at = hi + rng.randint(2, 30)
    return pts


def broad(side, fam):
    """A prefix holding a 64th or more of the family's addresses. A rule
    between two of them is expanded onto every pair of the identities inside
    (docs/policy.md, compilation): two such rules in a thousand can outgrow
    mseg_rules, so the draw leaves that case to bench/ and keeps one side
    narrower."""
    return "/" in side and ipaddress.ip_network(side).prefixlen <= ROOT[fam].prefixlen + 6


def gen(args):
    rng = random.Random(args.seed)
    segments = {}
    used = set()
    for i in range(40):
        fam = 4 if i % 2 == 0 else 6
        nets = []
        for _ in range(rng.randint(1, 3)):
            n = rand_sub(rng, ROOT[fam], 12 if fam == 4 else 20, 28 if fam == 4 else 124)
            if n not in used:
                used.add(n)
                nets.append(n)
        if nets:
            segments["seg%d" % i] = nets
    segs = {4: [s for s, n in segments.items() if n[0].version == 4],
            6: [s for s, n in segments.items() if n[0].version == 6]}
    pool = {4: [n for s in segs[4] for n in segments[s]], 6: [n for s in segs[6] for n in segments[s]]}

    def sel(fam):
        r = rng.random()
        if r < 0.12:
            return "any"
        if r < 0.6:
            return rng.choice(segs[fam])
        base = rng.choice(pool[fam]) if rng.random() < 0.8 else ROOT[fam]
        top = 32 if fam == 4 else 128
        n = rand_sub(rng, base, base.prefixlen - 4 if rng.random() < 0.3 else base.prefixlen, top)
        return str(n.network_address) if n.prefixlen == top else str(n)

    rules, keys, nsport = [], set(), 0
    while len(rules) < args.rules:
        fam = rng.choice([4, 6])
        r = {"src": sel(fam), "dst": sel(fam), "sport": 0, "ports": []}
        r["proto"] = rng.choice(["any", "tcp", "tcp", "udp", "udp", "icmp"])
        if r["src"] == "any" and r["dst"] == "any":
            # a few narrow ones: broad rules everywhere would decide everything
            r["proto"] = rng.choice(["tcp", "udp"])
        if r["proto"] in PROTO and (rng.random() < 0.7 or r["src"] == r["dst"] == "any"):
            r["ports"] = draw_ports(rng)
            if nsport < 8 and rng.random() < 0.03:
                r["sport"] = rng.randint(20000, 20000 + args.flows)
                nsport += 1
        key = (r["src"], r["dst"], r["proto"], r["sport"], ports_text(r["ports"]))
        if key in keys or (broad(r["src"], fam) and broad(r["dst"], fam)):
            continue
        keys.add(key)
        r["prio"] = rng.choice([10, 50, 100, 100, 100, 200])
        if r["src"] == "any" or r["dst"] == "any":
            r["prio"] = rng.choice([100, 200])
        r["action"] = rng.choice(ACTIONS)
        r["id"] = len(rules) + 1
        rules.append(r)
    # the failsafes: absent (the default list), said, off, or a drawn list
    # on the ports the flows use
    kind = rng.random()
    failsafes, fs_line = FAILSAFE_DEFAULT, None
    if kind < 0.15:
        fs_line = "failsafe default"
    elif kind < 0.35:
        failsafes, fs_line = [], "failsafe off"
    elif kind >= 0.5:
        failsafes = [(rng.choice(["tcp", "udp"]), rng.randint(1, 130)) for _ in range(rng.randint(1, 12))]
        fs_line = "failsafe set " + " ".join("%s/%d" % e for e in failsafes)
    with open(args.dir + "/policy.rules", "w") as f:
        f.write("default %s\n" % DEFAULT)
        if fs_line:
            f.write(fs_line + "\n")
        for name, nets in segments.items():
            f.write("segment add %s %s\n" % (name, " ".join(map(str, nets))))
        for r in rules:
            line = "rule add --id %d --src %s --dst %s" % (r["id"], r["src"], r["dst"])
            if r["proto"] != "any":
                line += " --proto " + r["proto"]
            if r["sport"]:
                line += " --sport %d" % r["sport"]
            if r["ports"]:
                line += " --dport " + ports_text(r["ports"])
            line += " --action %s --priority %d\n" % (r["action"], r["prio"])
            f.write(line)
    model = Model(segments, rules, failsafes)
    near = {fam: pool[fam] + [r["_dst"][1] for r in rules if r["_dst"][0] == "net"
                              and r["_dst"][1].version == fam][:50] for fam in (4, 6)}
    expect = []
    with open(args.dir + "/frames.hex", "w") as frames, open(args.dir + "/flows.txt", "w") as flows:
        for i in range(args.flows):
            fam = 4 if i % 2 == 0 else 6
            nets = near[fam]
            src = inside(rng, rng.choice(nets)) if rng.random() < 0.8 else inside(rng, ROOT[fam])
            dst = inside(rng, rng.choice(nets)) if rng.random() < 0.8 else inside(rng, ROOT[fam])
            proto = rng.choice(["tcp", "udp"])
            f = {"src": src, "dst": dst, "proto": PROTO[proto], "sport": 20000 + i,
                 "dport": rng.randint(1, 130)}
            frames.write(frame(f).hex() + "\n")
            flows.write("--src %s --dst %s --proto %s --sport %d --dport %d\n"
                        % (src, dst, proto, f["sport"], f["dport"]))
            rid, action = model.decide(f)
            expect.append({"flow": "%s %s -> %s %d" % (proto, src, dst, f["dport"]),
                           "rule": rid, "action": action})
    with open(args.dir + "/expect.json", "w") as f:
        json.dump(expect, f)
    decided = sum(1 for e in expect if e["rule"])
    print("%s; segments %d, rules %d, flows %d: %d decided by a rule or failsafe (%d distinct), %d by default"
          % (fs_line or "no failsafe line", len(segments), len(rules), len(expect), decided,
             len({e["rule"] for e in expect if e["rule"]}), len(expect) - decided))


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def frame(f):
    src, dst, proto = f["src"], f["dst"], f["proto"]
    if proto == 6:  # a SYN: the first packet of a new connection
        l4 = struct.pack("!HHIIBBHHH", f["sport"], f["dport"], 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    else:
        l4 = struct.pack("!HHHH", f["sport"], f["dport"], 16, 0) + b"mseg-pol"
    eth = bytes.fromhex("020000000002020000000001")
    if src.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0,
                         src.packed, dst.packed)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        return eth + b"\x08\x00" + ip + l4
    ip = struct.pack("!IHBB16s16s", 0x60000000, len(l4), proto, 64, src.packed, dst.packed)
    return eth + b"\x86\xdd" + ip + l4


def check(args):
    with open(args.dir + "/expect.json") as f:
        expect = json.load(f)
    with open(args.verdicts) as f:
        verdicts = [int(x) for x in f if x.strip()]
    with open(args.explain) as f:
        explained = [x.split() for x in f if x.strip()]
    if len(verdicts) != len(expect) or len(explained) != len(expect):
        print("%d verdicts, %d explained, for %d flows" % (len(verdicts), len(explained), len(expect)))
        return 1
    bad = 0
    for e, v, x in zip(expect, verdicts, explained):
        want = VERDICT[e["action"]]
        if v != want or x != [e["action"], str(e["rule"])]:
            bad += 1
            if bad <= 10:
                print("%s: model rule %d %s (verdict %d); classifier %d; explain %s"
                      % (e["flow"], e["rule"], e["action"], want, v, " ".join(x)))
    print("%d of %d flows disagree" % (bad, len(expect)))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--dir", required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--rules", type=int, default=1000)
    g.add_argument("--flows", type=int, default=10000)
    c = sub.add_parser("check")
    c.add_argument("--dir", required=True)
    c.add_argument("--verdicts", required=True)
    c.add_argument("--explain", required=True)
    args = ap.parse_args()
    if args.cmd == "gen":
        gen(args)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
