#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""lab-ticker: a TCP connection on which only the server speaks.

    lab-ticker.py serve PORT --life S        accept one connection (IPv4 or
                                             IPv6), send one byte every 50 ms
    lab-ticker.py read ADDR PORT FILE --life S
                                             connect, and keep FILE holding
                                             the number of bytes received

The client never sends data, so after the handshake every packet it sends
is an ACK answering the server's: a filter attached mid-connection sees
the server's packet first. Both sides give up after --life seconds.
"""
import argparse
import os
import socket
import time


def serve(a):
    deadline = time.monotonic() + a.life
    ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("::", a.port))
    ls.listen(1)
    ls.settimeout(a.life)
    c, _ = ls.accept()
    while time.monotonic() < deadline:
        try:
            c.send(b"t")
        except OSError:
            return
        time.sleep(0.05)


def read(a):
    deadline = time.monotonic() + a.life
    s = socket.create_connection((a.addr, a.port), timeout=5)
    got = 0
    while time.monotonic() < deadline:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = s.recv(4096)
        except socket.timeout:
            break
        if not data:
            break
        got += len(data)
        tmp = a.file + ".new"
        with open(tmp, "w") as f:
            f.write("%d\n" % got)
        os.replace(tmp, a.file)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("port", type=int)
    s.add_argument("--life", type=float, default=60)
    r = sub.add_parser("read")
    r.add_argument("addr")
    r.add_argument("port", type=int)
    r.add_argument("file")
    r.add_argument("--life", type=float, default=60)
    a = p.parse_args()
    serve(a) if a.cmd == "serve" else read(a)


if __name__ == "__main__":
    main()
