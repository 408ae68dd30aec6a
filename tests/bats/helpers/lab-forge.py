#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""lab-forge: send forged TCP segments, one after the other, at once.

    lab-forge.py SEGMENT...

A SEGMENT is SRC:SPORT,DST:DPORT,FLAGS,SEQ,ACK[,badsum] (IPv6 addresses in
brackets: [fd77:1::2]:5000,...). FLAGS are letters of S A F R P; SEQ and
ACK are numbers (0..2^32-1); badsum gives the segment a wrong TCP checksum,
so its receiver drops it silently. The segments leave through a raw IP
socket with the header written here (any source address), in the order
given, within microseconds: unlike hping3, which waits for a reply to every
probe, nothing lies between them long enough for a timeout to pass.
"""
import socket
import struct
import sys

FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def endpoint(text):
    if text.startswith("["):
        addr, port = text[1:].split("]:")
    else:
        addr, port = text.rsplit(":", 1)
    return addr, int(port)


def segment(spec):
    parts = spec.split(",")
    (src, sport), (dst, dport) = endpoint(parts[0]), endpoint(parts[1])
    flags = sum(FLAG_BITS[c] for c in parts[2])
    seq, ack = int(parts[3]) & 0xFFFFFFFF, int(parts[4]) & 0xFFFFFFFF
    bad = len(parts) > 5 and parts[5] == "badsum"
    v6 = ":" in src
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    s, d = socket.inet_pton(fam, src), socket.inet_pton(fam, dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags,
                      65535, 0, 0)
    if v6:
        pseudo = s + d + struct.pack("!IxxxB", len(tcp), socket.IPPROTO_TCP)
    else:
        pseudo = s + d + struct.pack("!xBH", socket.IPPROTO_TCP, len(tcp))
    sum16 = csum(pseudo + tcp) ^ (0x5A5A if bad else 0)
    tcp = tcp[:16] + struct.pack("!H", sum16) + tcp[18:]
    if v6:
        ip = struct.pack("!IHBB", 6 << 28, len(tcp), socket.IPPROTO_TCP, 64) + s + d
    else:
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000,
                          64, socket.IPPROTO_TCP, 0, s, d)
        ip = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return fam, dst, ip + tcp


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(sys.argv) > 1 else 2
    pkts = [segment(a) for a in sys.argv[1:]]
    socks = {}
    for fam, dst, pkt in pkts:
        if fam not in socks:
            socks[fam] = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_RAW)
        socks[fam].sendto(pkt, (dst, 0))
    for s in socks.values():
        s.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
