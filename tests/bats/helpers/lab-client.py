#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""lab-client: the client side of the namespace lab.

    lab-client.py tcp ADDR PORT [--timeout S] [--sport N]
                                                connect, exchange one message
    lab-client.py udp ADDR PORT [--timeout S]   exchange one datagram
    lab-client.py persist ADDR PORT DIR [--timeout S] [--life S] [--phases N]
    lab-client.py ping ADDR 0 [--timeout S]     one ICMP/ICMPv6 echo (raw socket)

    --sport N   tcp, udp: from this source port (SO_REUSEADDR)
    --size N    udp: a datagram of N bytes (larger than the MTU: fragmented)
    --id N      ping: this echo identifier

Exit 0 when the echo came back whole, 1 otherwise (reason on stderr).

persist keeps ONE TCP connection: it connects, exchanges a message and writes
DIR/res.0 ("ok" or "fail: why") and DIR/sport; then for i = 1..N it waits for
DIR/go.i to appear, exchanges again on the same socket and writes DIR/res.i.
It gives up after --life seconds in total. Every wait is bounded.
"""
import argparse
import os
import socket
import struct
import sys
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def recv_exact(s, n, deadline):
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out after %d/%d bytes" % (len(buf), n))
        s.settimeout(left)
        data = s.recv(n - len(buf))
        if not data:
            raise ConnectionError("connection closed")
        buf += data
    return buf


def bind_sport(s, a):
    if a.sport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::" if family(a.addr) == socket.AF_INET6 else "0.0.0.0", a.sport))


def tcp_once(a):
    msg = b"mseg-lab-%d\n" % os.getpid()
    with socket.socket(family(a.addr), socket.SOCK_STREAM) as s:
        s.settimeout(a.timeout)
        bind_sport(s, a)
        s.connect((a.addr, a.port))
        s.sendall(msg)
        got = recv_exact(s, len(msg), time.monotonic() + a.timeout)
    if got != msg:
        raise ValueError("echo mismatch")


def udp_once(a):
    msg = b"mseg-lab-udp-%d" % os.getpid()
    if a.size:
        msg = (msg * (a.size // len(msg) + 1))[:a.size]
    with socket.socket(family(a.addr), socket.SOCK_DGRAM) as s:
        s.settimeout(a.timeout)
        bind_sport(s, a)
        s.connect((a.addr, a.port))
        s.send(msg)
        got = s.recv(65536)
    if got != msg:
        raise ValueError("echo mismatch")


def icmp_csum(data):
    data += b"\0" * (len(data) % 2)
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ping_once(a):
    v6 = family(a.addr) == socket.AF_INET6
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    req, rep = (128, 129) if v6 else (8, 0)
    ident = a.id if a.id is not None else os.getpid() & 0xFFFF
    data = b"mseg-lab-ping"
    csum = 0 if v6 else icmp_csum(struct.pack("!BBHHH", req, 0, 0, ident, 1) + data)
    msg = struct.pack("!BBHHH", req, 0, csum, ident, 1) + data  # v6: kernel sums
    deadline = time.monotonic() + a.timeout
    with socket.socket(family(a.addr), socket.SOCK_RAW, proto) as s:
        s.sendto(msg, (a.addr, 0))
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no echo reply")
            s.settimeout(left)
            pkt, peer = s.recvfrom(65536)
            if not v6:
                pkt = pkt[(pkt[0] & 0xF) * 4:]
            typ, _, _, pid = struct.unpack_from("!BBHH", pkt)
            if typ == rep and pid == ident and peer[0] == a.addr:
                return


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text + "\n")
    os.rename(path + ".tmp", path)


def persist(a):
    end = time.monotonic() + a.life
    s = socket.socket(family(a.addr), socket.SOCK_STREAM)
    s.settimeout(a.timeout)
    s.connect((a.addr, a.port))
    write(os.path.join(a.dir, "sport"), str(s.getsockname()[1]))
    pending = 0  # bytes sent whose echo has not come back yet
    for i in range(a.phases + 1):
        if i:
            go = os.path.join(a.dir, "go.%d" % i)
            while not os.path.exists(go):
                if time.monotonic() > end:
                    return 0
                time.sleep(0.05)
        msg = b"phase-%d\n" % i
        try:
            s.sendall(msg)
            pending += len(msg)
            recv_exact(s, pending, time.monotonic() + a.timeout)
            pending = 0
            res = "ok"
        except (OSError, ValueError) as e:
            res = "fail: %s" % (e.__class__.__name__ + " " + str(e)).strip()
        write(os.path.join(a.dir, "res.%d" % i), res)
    s.close()
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["tcp", "udp", "persist", "ping"])
    ap.add_argument("addr")
    ap.add_argument("port", type=int)
    ap.add_argument("dir", nargs="?")
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--life", type=float, default=60.0)
    ap.add_argument("--phases", type=int, default=4)
    ap.add_argument("--sport", type=int, default=0)
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--id", type=int)
    a = ap.parse_args()
    try:
        if a.mode == "tcp":
            tcp_once(a)
        elif a.mode == "udp":
            udp_once(a)
        elif a.mode == "ping":
            ping_once(a)
        else:
            return persist(a)
    except (OSError, ValueError) as e:
        print("lab-client: %s %s:%d: %s %s" % (a.mode, a.addr, a.port,
              e.__class__.__name__, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
