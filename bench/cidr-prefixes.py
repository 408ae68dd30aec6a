#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Print `mseg cidr --batch` lines (`add` arguments) for COUNT random
prefixes of one family, none of them containing any --avoid
address (so they never decide the benchmark's probe) and none equal to a
--skip prefix (one already in the trie), so the trie ends up with exactly
COUNT more entries.

  cidr-prefixes.py --family 4|6 --count N
                   [--seed N] [--avoid ADDR]... [--skip CIDR]...

Lengths are uniform over 8..32 (IPv4) or 16..128 (IPv6); actions cycle
through allow, deny and log.
"""

import argparse
import ipaddress
import random
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", type=int, choices=(4, 6), required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--avoid", action="append", default=[])
    ap.add_argument("--skip", action="append", default=[])
    a = ap.parse_args()

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
        out.write("%s --action %s\n" % (net, ("allow", "deny", "log")[len(seen) % 3]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
