#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""lab-bulk: TCP connections that exercise what a firewall's window tracking
must not get wrong, each checked end to end.

    lab-bulk.py server PORT --ready FILE [--life S]
    lab-bulk.py client ADDR PORT SCENARIO... [--size N] [--life S]

The server answers each connection according to the first line the client
sends ("SCENARIO SIZE"). Scenarios:

  bulk      SIZE bytes each way at once; the client shuts down its side
            first, the server checks what it got, answers OK and closes;
            the client socket ends in TIME-WAIT
  keepalive keepalive probes every second through 4 s of silence (both
            ends), then 64 KiB and the same close; TIME-WAIT
  zerowin   the client's receive buffer is 4 KiB and it reads nothing for
            3 s while the server sends SIZE bytes: the window closes and the
            server probes it; then everything is read; TIME-WAIT
  srvabort  the client sends SIZE bytes; the server resets the connection
            (SO_LINGER 0) after 256 KiB: the client must see the reset;
            its socket is gone
  cliabort  the server sends SIZE bytes; the client resets the connection
            after 256 KiB; its socket is gone

The data is a fixed pattern, checked byte for byte. The client prints one
JSON object per connection: scenario, sport, ok, why, expect (the state the
client socket must end in: TIME-WAIT or gone). Every wait is bounded.
"""
import argparse
import json
import os
import socket
import struct
import threading
import time

PATTERN = bytes((i * 89 + 17) % 256 for i in range(251))
CHUNK = 65536
DOUBLED = PATTERN * (CHUNK // len(PATTERN) + 2)
TIMEOUT = 30


def expected(pos, n):
    off = pos % len(PATTERN)
    return DOUBLED[off:off + n]


def send_pattern(sock, total):
    pos = 0
    while pos < total:
        n = min(CHUNK, total - pos)
        sock.sendall(expected(pos, n))
        pos += n


def recv_check(sock, limit=None):
    """Read until EOF (or limit bytes); return (count, pattern ok)."""
    pos, ok = 0, True
    while limit is None or pos < limit:
        want = CHUNK if limit is None else min(CHUNK, limit - pos)
        data = sock.recv(want)
        if not data:
            break
        if data != expected(pos, len(data)):
            ok = False
        pos += len(data)
    return pos, ok


def recv_line(sock):
    buf = b""
    while not buf.endswith(b"\n"):
        data = sock.recv(1)
        if not data:
            raise ConnectionError("closed before a line")
        buf += data
    return buf.decode().strip()


def keepalive(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 20)


def abort(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# --- the server ----------------------------------------------------------------

def serve_one(c):
    c.settimeout(TIMEOUT)
    try:
        scenario, size = recv_line(c).split()
        size = int(size)
        if scenario in ("bulk", "zerowin"):
            sender = threading.Thread(
                target=send_pattern, args=(c, size if scenario == "bulk" else size))
            sender.start()
            got, ok = recv_check(c)
            sender.join()
            want = size if scenario == "bulk" else 0
            c.sendall(b"OK\n" if ok and got == want else b"BAD %d\n" % got)
            c.close()
        elif scenario == "keepalive":
            keepalive(c)
            got, ok = recv_check(c)
            c.sendall(b"OK\n" if ok and got == 65536 else b"BAD %d\n" % got)
            c.close()
        elif scenario == "srvabort":
            recv_check(c, 256 * 1024)
            abort(c)
        elif scenario == "cliabort":
            try:
                send_pattern(c, size)
            except OSError:
                pass  # the client's reset
            c.close()
    except (OSError, ValueError):
        c.close()


def server(a):
    end = time.monotonic() + a.life
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", a.port))
    s.listen(64)
    s.settimeout(0.5)
    with open(a.ready, "w") as f:
        f.write(str(os.getpid()))
    while time.monotonic() < end:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve_one, args=(c,), daemon=True).start()
    return 0


# --- the client ----------------------------------------------------------------

def connect(a, rcvbuf=None):
    fam = socket.AF_INET6 if ":" in a.addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(TIMEOUT)
    s.connect((a.addr, a.port))
    return s


def finish(s, size):
    """Shut our side, read the rest and the server's verdict, close."""
    s.shutdown(socket.SHUT_WR)
    got, ok = recv_check(s, size) if size else (0, True)
    rest = s.recv(64).decode().strip()
    tail = s.recv(64)
    s.close()
    if not ok or got != size:
        return "received %d bytes of %d, pattern %s" % (got, size, ok)
    if rest != "OK" or tail:
        return "server said %r" % rest
    return None


def run(a, scenario):
    size = a.size
    s = connect(a, 4096 if scenario == "zerowin" else None)
    res = {"scenario": scenario, "sport": s.getsockname()[1], "ok": False,
           "why": "", "expect": "TIME-WAIT"}
    try:
        s.sendall(b"%s %d\n" % (scenario.encode(), size))
        if scenario == "bulk":
            sender = threading.Thread(target=send_pattern, args=(s, size))
            sender.start()
            got, ok = recv_check(s, size)
            sender.join()
            why = finish(s, 0) if ok and got == size else \
                "received %d bytes of %d, pattern %s" % (got, size, ok)
        elif scenario == "keepalive":
            keepalive(s)
            time.sleep(4)
            send_pattern(s, 65536)
            why = finish(s, 0)
        elif scenario == "zerowin":
            time.sleep(3)
            why = finish(s, size)
        elif scenario == "srvabort":
            res["expect"] = "gone"
            try:
                send_pattern(s, size)
                s.recv(1)
                why = "no reset from the server"
            except (ConnectionResetError, BrokenPipeError):
                why = None
            s.close()
        else:  # cliabort
            res["expect"] = "gone"
            got, ok = recv_check(s, 256 * 1024)
            abort(s)
            why = None if ok and got == 256 * 1024 else "received %d, pattern %s" % (got, ok)
        res["ok"] = why is None
        res["why"] = why or ""
    except OSError as e:
        res["why"] = "%s %s" % (e.__class__.__name__, e)
    return res


def client(a):
    for scenario in a.scenarios:
        print(json.dumps(run(a, scenario)), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    sp = sub.add_parser("server")
    sp.add_argument("port", type=int)
    sp.add_argument("--ready", required=True)
    sp.add_argument("--life", type=float, default=300)
    cp = sub.add_parser("client")
    cp.add_argument("addr")
    cp.add_argument("port", type=int)
    cp.add_argument("scenarios", nargs="+",
                    choices=["bulk", "keepalive", "zerowin", "srvabort", "cliabort"])
    cp.add_argument("--size", type=int, default=4 << 20)
    a = ap.parse_args()
    return server(a) if a.mode == "server" else client(a)


if __name__ == "__main__":
    raise SystemExit(main())
