#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Print `bpftool batch file` lines that put COUNT random prefixes of one
family into the mseg_cidr trie, none of them containing any --avoid
address (so they never decide the benchmark's probe) and none equal to a
--skip prefix (one already in the trie), so the trie ends up with exactly
COUNT more entries.

  cidr-prefixes.py --abi FILE --pin PATH --family 4|6 --count N
                   [--seed N] [--avoid ADDR]... [--skip CIDR]...

The key and value layout comes from build/mseg-abi's output (FILE). Lengths
are uniform over 8..32 (IPv4) or 16..128 (IPv6); actions cycle through
allow, deny and log, in rule set 0.
"""

import argparse
import ipaddress
import random
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--abi", required=True)
    ap.add_argument("--pin", required=True)
    ap.add_argument("--family", type=int, choices=(4, 6), required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--avoid", action="append", default=[])
    ap.add_argument("--skip", action="append", default=[])
    a = ap.parse_args()

    fields, consts, sizes = {}, {}, {}
    with open(a.abi) as f:
        for line in f:
            w = line.split()
            if w[0] == "field":
                fields[w[1]] = (int(w[2]), int(w[3]))
            elif w[0] == "const":
                consts[w[1]] = int(w[2])
            elif w[0] == "map" and w[1] == "mseg_cidr":
                sizes = (int(w[2]), int(w[3]))

    def put(buf, name, value):
        off, size = fields[name]
        buf[off:off + size] = value if isinstance(value, bytes) else value.to_bytes(size, "little")

    rng = random.Random(a.seed)
    avoid = [ipaddress.ip_address(x) for x in a.avoid]
    width, (lo, hi) = (32, (8, 32)) if a.family == 4 else (128, (16, 128))
    cls = ipaddress.IPv4Network if a.family == 4 else ipaddress.IPv6Network
    skip = set(ipaddress.ip_network(x) for x in a.skip)
    seen = set()
    out = sys.stdout
    while len(seen) < a.count:
        plen = rng.randint(lo, hi)
        net = cls((rng.getrandbits(width) >> (width - plen) << (width - plen), plen))
        if net in seen or net in skip or any(x in net for x in avoid):
            continue
        seen.add(net)
        key, val = bytearray(sizes[0]), bytearray(sizes[1])
        if a.family == 4:
            addr = bytes(10) + b"\xff\xff" + net.network_address.packed
            bits = consts["cidr_v4_base_bits"] + plen
        else:
            addr = net.network_address.packed
            bits = consts["cidr_hdr_bits"] + plen
        put(key, "cidr_key.prefixlen", bits)
        put(key, "cidr_key.set", 0)
        put(key, "cidr_key.family", a.family)
        put(key, "cidr_key.addr", addr)
        put(val, "cidr_val.action", len(seen) % 3)
        put(val, "cidr_val.priority", 100)
        out.write("map update pinned %s key hex %s value hex %s\n"
                  % (a.pin, key.hex(" "), val.hex(" ")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
