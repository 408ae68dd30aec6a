#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""lab-raw: crafted frames into the namespace lab, and listeners that say what arrived.

    lab-raw.py send-eth DEV DMAC FILE...   each frame of each FILE over AF_PACKET
                                           on DEV, its MACs rewritten (source:
                                           DEV's, destination: DMAC)
    lab-raw.py send-ip FILE...             each frame's IP packet (past Ethernet
                                           and VLAN tags) through a raw socket:
                                           the kernel routes it from this host
    lab-raw.py sink --out FILE --ready FILE [--udp PORTS] [--raw4 PROTO]
                    [--raw6 PROTO] [--life S]
                                           one line per datagram or raw packet
                                           received: "udp SRC SPORT DPORT LEN",
                                           "raw4|raw6 SRC PROTO ..." (TCP: SPORT
                                           DPORT FLAGS; ICMP: TYPE ID)
    lab-raw.py snd-nxt DEV SRC SPORT DST DPORT --ready FILE --timeout S
                                           sniff DEV until a TCP segment with
                                           payload from SRC:SPORT to DST:DPORT
                                           passes; print its seq + length (the
                                           sender's next sequence number)

A FILE holds one binary frame (mseg-pkt -o) or hex frames one per line
(mseg-pkt --hex). Every wait is bounded; exit 0 on success.
"""
import argparse
import ipaddress
import os
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
VLAN_TPIDS = (0x8100, 0x88A8)


def frames(path):
    data = open(path, "rb").read()
    try:
        text = data.decode("ascii")
        lines = [l.strip() for l in text.splitlines() if l.strip()]
        return [bytes.fromhex(l) for l in lines]
    except (UnicodeDecodeError, ValueError):
        return [data]


def dev_mac(dev):
    with open("/sys/class/net/%s/address" % dev) as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def send_eth(a):
    dmac = bytes.fromhex(a.dmac.replace(":", ""))
    smac = dev_mac(a.dev)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((a.dev, 0))
        for path in a.files:
            for f in frames(path):
                f = dmac + smac + f[12:]
                if s.send(f) != len(f):
                    raise OSError("short send")


def ip_packet(f):
    off, proto = 12, 0
    while True:
        proto = struct.unpack_from("!H", f, off)[0]
        if proto not in VLAN_TPIDS:
            break
        off += 4
    return proto, f[off + 2:]


def send_ip(a):
    for path in a.files:
        for f in frames(path):
            proto, pkt = ip_packet(f)
            if proto == 0x0800:
                s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
                dst = str(ipaddress.IPv4Address(pkt[16:20]))
            elif proto == 0x86DD:
                # IPPROTO_RAW on IPv6: the packet carries its own header
                s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
                dst = str(ipaddress.IPv6Address(pkt[24:40]))
            else:
                raise ValueError("not IP: ethertype 0x%04x" % proto)
            with s:
                if s.sendto(pkt, (dst, 0)) != len(pkt):
                    raise OSError("short send")


def l4_words(proto, l4):
    """TCP: sport dport flags; ICMP/ICMPv6: type id; else the first byte."""
    if proto == 6 and len(l4) >= 14:
        return "%d %d 0x%02x" % (struct.unpack_from("!HH", l4) + (l4[13],))
    if proto in (1, 58) and len(l4) >= 6:
        return "%d %d" % (l4[0], struct.unpack_from("!H", l4, 4)[0])
    return "%d" % (l4[0] if l4 else -1)


def sink(a):
    socks = {}
    for p in [int(x) for x in a.udp.split(",") if x]:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", p))
        socks[s] = "udp"
    if a.raw4 is not None:
        socks[socket.socket(socket.AF_INET, socket.SOCK_RAW, a.raw4)] = "raw4"
    if a.raw6 is not None:
        socks[socket.socket(socket.AF_INET6, socket.SOCK_RAW, a.raw6)] = "raw6"
    out = open(a.out, "a", buffering=1)
    with open(a.ready + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(a.ready + ".tmp", a.ready)
    end = time.monotonic() + a.life
    while time.monotonic() < end:
        ready, _, _ = select.select(list(socks), [], [], 0.5)
        for s in ready:
            data, peer = s.recvfrom(65536)
            kind = socks[s]
            if kind == "udp":
                src = peer[0].removeprefix("::ffff:")
                line = "udp %s %d %d %d" % (src, peer[1], s.getsockname()[1], len(data))
            elif kind == "raw4":
                hl = (data[0] & 0xF) * 4
                line = "raw4 %s %d %s" % (peer[0], data[9], l4_words(data[9], data[hl:]))
            else:
                line = "raw6 %s %d %s" % (peer[0], a.raw6, l4_words(a.raw6, data))
            out.write(line + "\n")


def snd_nxt(a):
    src, dst = ipaddress.ip_address(a.src), ipaddress.ip_address(a.dst)
    end = time.monotonic() + a.timeout
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as s:
        s.bind((a.dev, 0))
        with open(a.ready + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.rename(a.ready + ".tmp", a.ready)
        while time.monotonic() < end:
            r, _, _ = select.select([s], [], [], 0.2)
            if not r:
                continue
            f = s.recv(65536)
            proto, pkt = ip_packet(f)
            if proto == 0x0800 and src.version == 4 and pkt[9] == 6:
                hl = (pkt[0] & 0xF) * 4
                ips, ipd = pkt[12:16], pkt[16:20]
                tot = struct.unpack_from("!H", pkt, 2)[0]
                tcp, tlen = pkt[hl:], tot - hl
            elif proto == 0x86DD and src.version == 6 and pkt[6] == 6:
                ips, ipd = pkt[8:24], pkt[24:40]
                tcp, tlen = pkt[40:], struct.unpack_from("!H", pkt, 4)[0]
            else:
                continue
            if ips != src.packed or ipd != dst.packed:
                continue
            sp, dp, seq = struct.unpack_from("!HHI", tcp)
            if sp != a.sport or dp != a.dport:
                continue
            data = tlen - (tcp[12] >> 4) * 4
            if data > 0:
                print((seq + data) & 0xFFFFFFFF)
                return 0
    print("lab-raw: no segment with data from %s:%d" % (a.src, a.sport), file=sys.stderr)
    return 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("send-eth")
    p.add_argument("dev")
    p.add_argument("dmac")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("send-ip")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("sink")
    p.add_argument("--out", required=True)
    p.add_argument("--ready", required=True)
    p.add_argument("--udp", default="")
    p.add_argument("--raw4", type=int)
    p.add_argument("--raw6", type=int)
    p.add_argument("--life", type=float, default=120)
    p = sub.add_parser("snd-nxt")
    p.add_argument("dev")
    p.add_argument("src")
    p.add_argument("sport", type=int)
    p.add_argument("dst")
    p.add_argument("dport", type=int)
    p.add_argument("--ready", required=True)
    p.add_argument("--timeout", type=float, default=5)
    a = ap.parse_args()
    try:
        if a.cmd == "send-eth":
            send_eth(a)
        elif a.cmd == "send-ip":
            send_ip(a)
        elif a.cmd == "sink":
            sink(a)
        else:
            return snd_nxt(a)
    except (OSError, ValueError) as e:
        print("lab-raw: %s: %s %s" % (a.cmd, e.__class__.__name__, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
