#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""pktcheck: an independent decoder for mseg-pkt's frames (the self-check).

Usage: pktcheck.py FILE
Prints one line of key=value facts about the frame and exits 1 if a checksum
or a length is wrong. Written apart from mseg-pkt so the two check each other.
"""
import ipaddress
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s  # 0xffff when the embedded checksum is right


EXT = {0: "hop", 60: "dst", 43: "rt", 44: "frag", 51: "ah"}
L4 = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}


def main(path):
    f = open(path, "rb").read()
    facts = {"len": len(f)}
    ok = True
    off = 12
    vlans = []
    (etype,) = struct.unpack_from("!H", f, off)
    while etype == 0x8100:
        vlans.append(struct.unpack_from("!H", f, off + 2)[0] & 0xFFF)
        off += 4
        (etype,) = struct.unpack_from("!H", f, off)
    off += 2
    if vlans:
        facts["vlan"] = ",".join(map(str, vlans))
    facts["ethertype"] = "0x%04x" % etype
    frag_off = 0
    if etype == 0x0800:
        ihl = (f[off] & 0xF) * 4
        tot = struct.unpack_from("!H", f, off + 2)[0]
        fl = struct.unpack_from("!H", f, off + 6)[0]
        frag_off = (fl & 0x1FFF) * 8
        proto = f[off + 9]
        src = ipaddress.ip_address(f[off + 12:off + 16])
        dst = ipaddress.ip_address(f[off + 16:off + 20])
        if csum(f[off:off + ihl]) != 0xFFFF:
            ok = False
            facts["ipcsum"] = "bad"
        else:
            facts["ipcsum"] = "ok"
        facts["ihl"] = ihl
        if fl & 0x2000:
            facts["mf"] = 1
        end = off + tot
        pseudo = f[off + 12:off + 20] + struct.pack("!BBH", 0, proto, end - off - ihl)
        l4off = off + ihl
    elif etype == 0x86DD:
        plen = struct.unpack_from("!H", f, off + 4)[0]
        nh = f[off + 6]
        src = ipaddress.ip_address(f[off + 8:off + 24])
        dst = ipaddress.ip_address(f[off + 24:off + 40])
        end = off + 40 + plen
        p = off + 40
        chain = []
        while nh in EXT:
            chain.append(EXT[nh])
            if nh == 44:
                frag_off = struct.unpack_from("!H", f, p + 2)[0] & 0xFFF8
                if struct.unpack_from("!H", f, p + 2)[0] & 1:
                    facts["mf"] = 1
                size = 8
            elif nh == 51:
                size = (f[p + 1] + 2) * 4
            else:
                size = (f[p + 1] + 1) * 8
            nh = f[p]
            p += size
        if chain:
            facts["ext"] = ",".join(chain)
        proto = nh
        l4off = p
        pseudo = f[off + 8:off + 40] + struct.pack("!IxxxB", end - l4off, proto)
    else:
        print(" ".join("%s=%s" % kv for kv in facts.items()))
        return 0
    facts["src"] = src
    facts["dst"] = dst
    facts["proto"] = L4.get(proto, proto)
    if end != len(f):
        facts["iplen"] = "frame-%+d" % (end - len(f))
        if end > len(f):
            ok = False
    seg = f[l4off:end]
    if frag_off:
        facts["frag"] = frag_off
    elif proto in (6, 17):
        sp, dp = struct.unpack_from("!HH", seg, 0)
        facts["sport"] = sp
        facts["dport"] = dp
        if proto == 6:
            facts["flags"] = "0x%02x" % seg[13]
            facts["seq"] = struct.unpack_from("!I", seg, 4)[0]
            hlen = (seg[12] >> 4) * 4
            i = 20
            while i < hlen:  # options: report a window scale
                kind = seg[i]
                if kind == 0:
                    break
                if kind == 1:
                    i += 1
                    continue
                if i + 1 >= hlen or seg[i + 1] < 2:
                    break
                if kind == 3 and seg[i + 1] == 3:
                    facts["wscale"] = seg[i + 2]
                i += seg[i + 1]
        else:
            if struct.unpack_from("!H", seg, 4)[0] != len(seg):
                ok = False
                facts["udplen"] = "bad"
        c = csum(pseudo + seg)
        facts["l4csum"] = "ok" if c == 0xFFFF else "bad"
        ok = ok and c == 0xFFFF
    elif proto in (1, 58):
        facts["type"] = seg[0]
        facts["id"] = struct.unpack_from("!H", seg, 4)[0]
        c = csum((pseudo if proto == 58 else b"") + seg)
        facts["l4csum"] = "ok" if c == 0xFFFF else "bad"
        ok = ok and c == 0xFFFF
    if frag_off:
        facts["payload"] = len(seg)
    elif proto == 6:
        facts["payload"] = len(seg) - (seg[12] >> 4) * 4
    else:
        facts["payload"] = len(seg) - {17: 8, 1: 8, 58: 8}.get(proto, 0)
    print(" ".join("%s=%s" % kv for kv in facts.items()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
