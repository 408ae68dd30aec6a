#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""flowset: the mseg_flows set of a flow, as bpf/mseg_flows.h computes it,
written again from bpf/mseg_abi.h's layout.

    flowset.py SRC DST PROTO RULE VERDICT N [AVOID]

prints N destination ports (1..65535) whose flows SRC -> DST:PORT (protocol
number PROTO, deciding rule RULE, verdict 0 allowed / 1 denied) fall in one
set, and that set: "SET PORT PORT ...", a set not in AVOID (SET,SET,...).
"""
import ipaddress
import struct
import sys

MULT = 0x9E3779B97F4A7C15
MASK = (1 << 64) - 1


def addr16(a):
    ip = ipaddress.ip_address(a)
    if ip.version == 4:
        return b"\0" * 10 + b"\xff\xff" + ip.packed, 4
    return ip.packed, 6


def flow_set(src, dst, proto, rule, verdict, dport, bits):
    s, fam = addr16(src)
    d, _ = addr16(dst)
    key = s + d + struct.pack("<IHBBB7x", rule, dport, proto, fam, verdict)
    assert len(key) == 48
    h = 0
    for (w,) in struct.iter_unpack("<Q", key):
        h = ((h ^ w) * MULT) & MASK
    return h >> (64 - bits)


def main():
    src, dst, proto, rule, verdict, n = sys.argv[1:7]
    bits = 11  # MSEG_FLOW_SET_BITS
    avoid = {int(x) for x in sys.argv[7].split(",") if x} if len(sys.argv) > 7 else set()
    by_set = {}
    for port in range(1, 65536):
        k = flow_set(src, dst, int(proto), int(rule), int(verdict), port, bits)
        if k in avoid:
            continue
        by_set.setdefault(k, []).append(port)
        if len(by_set[k]) == int(n):
            print(k, " ".join(map(str, by_set[k])))
            return
    sys.exit("flowset: no set holds %s ports" % n)


if __name__ == "__main__":
    main()
