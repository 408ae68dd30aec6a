#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""lab-echo: TCP and UDP echo servers for the namespace lab.

    lab-echo.py --tcp 5001,5002 --udp 5001 --ready FILE [--life SECONDS]

Binds :: with IPV6_V6ONLY off, so each port serves IPv4 and IPv6. Writes FILE
once every socket listens. Exits by itself after --life seconds (default 120);
the lab also runs it under timeout(1) and kills it in teardown.
"""
import argparse
import os
import socket
import threading
import time


def dual_socket(kind, port):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    return s


def tcp_conn(c):
    c.settimeout(60)
    try:
        while True:
            data = c.recv(65536)
            if not data:
                break
            c.sendall(data)
    except OSError:
        pass
    finally:
        c.close()


def tcp_serve(s):
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=tcp_conn, args=(c,), daemon=True).start()


def udp_serve(s):
    while True:
        data, peer = s.recvfrom(65536)
        s.sendto(data, peer)


def ports(arg):
    return [int(p) for p in arg.split(",") if p] if arg else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcp", default="")
    ap.add_argument("--udp", default="")
    ap.add_argument("--ready", required=True)
    ap.add_argument("--life", type=float, default=120)
    a = ap.parse_args()
    for p in ports(a.tcp):
        s = dual_socket(socket.SOCK_STREAM, p)
        threading.Thread(target=tcp_serve, args=(s,), daemon=True).start()
    for p in ports(a.udp):
        s = dual_socket(socket.SOCK_DGRAM, p)
        threading.Thread(target=udp_serve, args=(s,), daemon=True).start()
    with open(a.ready + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(a.ready + ".tmp", a.ready)
    time.sleep(a.life)


if __name__ == "__main__":
    main()
