#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""lab-reuse: many short TCP connections that reuse a few client ports.

    lab-reuse.py ADDR PORT --ports FIRST-LAST --count N [--gap S] [--life S]

Each connection binds one of the client ports (round robin), connects to the
echo server at ADDR PORT, exchanges one line and ends with an RST (SO_LINGER
0), so the port is free again at once; a port is used again --gap seconds
(default 1.1) after its last connection ended, long enough for a firewall's
1-second CLOSE timeout to have passed. Up to one connection per port is in
flight at a time. Stops after N connections or --life seconds (default 120).

Prints one JSON object: connections made, failed ones (with the first few
reasons), and slow ones (the handshake took over 0.8 s: a SYN was sent
again, i.e. the first went unanswered).
"""
import argparse
import json
import selectors
import socket
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


class Conn:
    def __init__(self, a, port):
        self.port = port
        self.msg = b"reuse-%d\n" % port
        self.got = b""
        self.sock = socket.socket(family(a.addr), socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.sock.bind(("::" if family(a.addr) == socket.AF_INET6 else "0.0.0.0", port))
        self.sock.setblocking(False)
        self.start = time.monotonic()
        self.connected_at = None
        self.sock.connect_ex((a.addr, a.port))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("port", type=int)
    ap.add_argument("--ports", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--gap", type=float, default=1.1)
    ap.add_argument("--life", type=float, default=120)
    ap.add_argument("--timeout", type=float, default=5)
    a = ap.parse_args()
    first, last = (int(x) for x in a.ports.split("-"))
    free_at = {p: 0.0 for p in range(first, last + 1)}
    sel = selectors.DefaultSelector()
    live = {}
    started = done = failed = slow = 0
    reasons = []
    end = time.monotonic() + a.life

    def finish(c, why=None):
        nonlocal done, failed, slow
        sel.unregister(c.sock)
        c.sock.close()  # SO_LINGER 0: an RST, the port is free
        del live[c.port]
        free_at[c.port] = time.monotonic() + a.gap
        if why:
            failed += 1
            if len(reasons) < 5:
                reasons.append("port %d: %s" % (c.port, why))
        else:
            done += 1
            if c.connected_at - c.start > 0.8:
                slow += 1

    while (done + failed < a.count) and time.monotonic() < end:
        now = time.monotonic()
        for p, t in free_at.items():
            if started >= a.count:
                break
            if p not in live and t <= now:
                try:
                    c = Conn(a, p)
                except OSError as e:
                    free_at[p] = now + a.gap
                    if len(reasons) < 5:
                        reasons.append("port %d: bind: %s" % (p, e))
                    continue
                live[p] = c
                started += 1
                sel.register(c.sock, selectors.EVENT_WRITE, c)
        for key, ev in sel.select(timeout=0.01):
            c = key.data
            if c.connected_at is None:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    finish(c, "connect: errno %d" % err)
                    continue
                c.connected_at = time.monotonic()
                try:
                    c.sock.send(c.msg)
                except OSError as e:
                    finish(c, "send: %s" % e)
                    continue
                sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            try:
                data = c.sock.recv(256)
            except OSError as e:
                finish(c, "recv: %s" % e)
                continue
            if not data:
                finish(c, "closed before the echo")
                continue
            c.got += data
            if c.got == c.msg:
                finish(c)
        now = time.monotonic()
        for c in list(live.values()):
            if now - c.start > a.timeout:
                finish(c, "timed out")
    for c in list(live.values()):
        finish(c, "unfinished at the end")
    print(json.dumps({"connections": done + failed, "ok": done, "failed": failed,
                      "slow": slow, "reasons": reasons}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
