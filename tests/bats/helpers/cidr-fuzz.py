#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Random CIDR rules and packets, and a reference longest-prefix match.

  cidr-fuzz.py gen --dir DIR [--seed N]
                   [--prefixes N] [--packets N]
      Draws N prefixes of both families (nested on purpose, so that longest
      prefix matters) and N packets (src and dst of one family, mostly
      inside some prefix, some IPv6 ones IPv4-mapped, which the classifier
      drops). Writes into DIR:
        load.rules     a ruleset for `mseg apply`: default deny and one
                       `cidr add PREFIX --action A` per prefix
        prefixes.json  [{"cidr", "action"}] as `mseg-cidr list` should show
        frames.hex     one Ethernet/IP/UDP frame per line, in hex
        expect.json    per frame: the expected verdict and deciding prefix

  cidr-fuzz.py check --dir DIR --verdicts FILE --list FILE
      Compares the classifier's verdicts (one per line, from mseg-testrun)
      and the hit counts of `mseg-cidr list --json` with the reference.

The reference uses only Python's ipaddress: the deciding prefix is the
longest one of the packet's family that contains dst, else src; no match
means the default action, which the suite sets to deny.
"""

import argparse
import ipaddress
import json
import random
import struct
import sys

ACTIONS = ["allow", "deny", "log"]
TC_ACT_OK, TC_ACT_SHOT = 0, 2
VERDICT = {"allow": TC_ACT_OK, "log": TC_ACT_OK, "deny": TC_ACT_SHOT}
DEFAULT = "deny"
MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def random_inside(rng, net):
    """A random address of net (any host bits)."""
    host = net.max_prefixlen - net.prefixlen
    bits = rng.getrandbits(host) if host else 0
    # the class, not ip_address(): a small int would make an IPv4 address
    return type(net.network_address)(int(net.network_address) | bits)


def draw_prefixes(rng, count):
    """count distinct prefixes, half per family, many nested in others."""
    nets = {4: [], 6: []}
    seen = set()
    while len(seen) < count:
        fam = 4 if len(seen) % 2 == 0 else 6
        maxlen = 32 if fam == 4 else 128
        pool = nets[fam]
        if pool and rng.random() < 0.75:
            # nest inside an existing prefix: longest prefix must decide
            parent = rng.choice(pool)
            if parent.prefixlen == maxlen:
                continue
            plen = rng.randint(parent.prefixlen + 1, min(maxlen, parent.prefixlen + 24))
            addr = random_inside(rng, parent)
        else:
            # roots are not too short, so that random addresses often
            # miss every prefix and reach the source lookup or the default
            plen = rng.randint(6, 32) if fam == 4 else rng.randint(12, 64)
            cls = ipaddress.IPv4Address if fam == 4 else ipaddress.IPv6Address
            addr = cls(rng.getrandbits(maxlen))
        net = ipaddress.ip_network((addr, plen), strict=False)
        # the CLI refuses IPv6 prefixes inside ::ffff:0:0/96 (they read
        # like IPv4); keep the reference to what an operator can add
        if net.version == 6 and net.subnet_of(MAPPED):
            continue
        if net in seen:
            continue
        seen.add(net)
        pool.append(net)
    return nets


class Reference:
    """Longest-prefix match over ipaddress networks, per family.

    The networks are indexed by (version, prefixlen, network address); an
    address is looked up at every prefix length in use, longest first, so a
    lookup costs one dict probe per length instead of a scan of them all.
    """

    def __init__(self, rules):
        self.rules = rules  # {network: action}
        self.index = {}
        lengths = {4: set(), 6: set()}
        for net in rules:
            self.index[(net.version, net.prefixlen, int(net.network_address))] = net
            lengths[net.version].add(net.prefixlen)
        self.lengths = {fam: sorted(l, reverse=True) for fam, l in lengths.items()}

    def longest(self, addr):
        a, top = int(addr), addr.max_prefixlen
        for plen in self.lengths[addr.version]:
            net = self.index.get((addr.version, plen, a >> (top - plen) << (top - plen)))
            if net is not None:
                # and ipaddress agrees that it contains the address
                assert addr in net, (addr, net)
                return net
        return None

    def decide(self, src, dst):
        """(deciding network or None, "dst"|"src"|None, action)."""
        net = self.longest(dst)
        if net is not None:
            return net, "dst", self.rules[net]
        net = self.longest(src)
        if net is not None:
            return net, "src", self.rules[net]
        return None, None, DEFAULT


def draw_addr(rng, fam, pool):
    r = rng.random()
    if r < 0.65:
        return random_inside(rng, rng.choice(pool))
    if fam == 6 and r < 0.75:
        # an IPv6 packet with IPv4-mapped addresses: dropped (v4_mapped)
        return ipaddress.IPv6Address(int(MAPPED.network_address) | rng.getrandbits(32))
    if fam == 4:
        return ipaddress.IPv4Address(rng.getrandbits(32))
    return ipaddress.IPv6Address(rng.getrandbits(128))


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def frame(src, dst, sport, dport):
    payload = b"mseg-fuz"
    udp_len = 8 + len(payload)
    eth_dst, eth_src = bytes.fromhex("020000000002"), bytes.fromhex("020000000001")
    if src.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 1, 0, 64, 17, 0,
                         src.packed, dst.packed)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
        return eth_dst + eth_src + b"\x08\x00" + ip + udp
    pseudo = src.packed + dst.packed + struct.pack("!IxxxB", udp_len, 17)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    c = csum(pseudo + udp) or 0xffff
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip = struct.pack("!IHBB16s16s", 0x60000000, udp_len, 17, 64, src.packed, dst.packed)
    return eth_dst + eth_src + b"\x86\xdd" + ip + udp


def gen(args):
    rng = random.Random(args.seed)
    nets = draw_prefixes(rng, args.prefixes)
    rules = {}
    with open(args.dir + "/load.rules", "w") as batch:
        batch.write("default %s\n" % DEFAULT)
        for fam in (4, 6):
            for net in nets[fam]:
                action = rng.choice(ACTIONS)
                rules[net] = action
                batch.write("cidr add %s --action %s\n" % (net, action))
    with open(args.dir + "/prefixes.json", "w") as f:
        json.dump([{"cidr": str(n), "action": a} for n, a in rules.items()], f)
    ref = Reference(rules)
    expect = []
    with open(args.dir + "/frames.hex", "w") as frames:
        for i in range(args.packets):
            fam = 4 if i % 2 == 0 else 6
            src = draw_addr(rng, fam, nets[fam])
            dst = draw_addr(rng, fam, nets[fam])
            # a fresh 5-tuple each time: every frame is a new flow
            sport = 10000 + i
            frames.write(frame(src, dst, sport, 7).hex() + "\n")
            if fam == 6 and (src in MAPPED or dst in MAPPED):
                # refused before any rule (v4_mapped): dropped, no prefix counts it
                expect.append({"src": str(src), "dst": str(dst), "sport": sport,
                               "by": None, "side": None, "action": "v4_mapped",
                               "verdict": 2})
                continue
            net, side, action = ref.decide(src, dst)
            expect.append({"src": str(src), "dst": str(dst), "sport": sport,
                           "by": str(net) if net else None, "side": side, "action": action,
                           "verdict": VERDICT[action]})
    with open(args.dir + "/expect.json", "w") as f:
        json.dump(expect, f)
    decided = sum(1 for e in expect if e["by"])
    mapped = sum(1 for e in expect if e["action"] == "v4_mapped")
    print("prefixes %d (v4 %d, v6 %d), packets %d: %d decided by a prefix, %d by default,"
          " %d IPv4-mapped dropped" % (len(rules), len(nets[4]), len(nets[6]), len(expect),
                                       decided, len(expect) - decided - mapped, mapped))


def check(args):
    with open(args.dir + "/expect.json") as f:
        expect = json.load(f)
    with open(args.dir + "/prefixes.json") as f:
        prefixes = json.load(f)
    with open(args.verdicts) as f:
        verdicts = [int(line) for line in f if line.strip()]
    with open(args.list) as f:
        listed = json.load(f)
    bad = 0
    if len(verdicts) != len(expect):
        print("%d verdicts for %d frames" % (len(verdicts), len(expect)))
        return 1
    for e, v in zip(expect, verdicts):
        if v != e["verdict"]:
            bad += 1
            if bad <= 10:
                print("verdict %d, expected %d (%s by %s): %s -> %s sport %d"
                      % (v, e["verdict"], e["action"], e["by"], e["src"], e["dst"], e["sport"]))
    # the CLI lists exactly the prefixes loaded, with their actions...
    want = sorted((p["cidr"], p["action"]) for p in prefixes)
    got = sorted((p["cidr"], p["action"]) for p in listed)
    if want != got:
        bad += 1
        print("mseg-cidr list differs from the loaded prefixes: %s"
              % sorted(set(want) ^ set(got))[:10])
    # ...and each prefix counted exactly the flows it decided
    hits = {}
    for e in expect:
        if e["by"]:
            hits[e["by"]] = hits.get(e["by"], 0) + 1
    for p in listed:
        if p["hits"] != hits.get(p["cidr"], 0):
            bad += 1
            if bad <= 20:
                print("%s: %d hits, expected %d" % (p["cidr"], p["hits"], hits.get(p["cidr"], 0)))
    nets = set(p["cidr"] for p in listed)
    print("%d frames, %d prefixes (%d of them deciding), %d mismatches"
          % (len(expect), len(nets), len(hits), bad))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--dir", required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--prefixes", type=int, default=1000)
    g.add_argument("--packets", type=int, default=10000)
    c = sub.add_parser("check")
    c.add_argument("--dir", required=True)
    c.add_argument("--verdicts", required=True)
    c.add_argument("--list", required=True)
    args = ap.parse_args()
    if args.cmd == "gen":
        gen(args)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
