#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""lab-tcpctl: TCP endpoints that act only when the test tells them to.

    lab-tcpctl.py server PORT DIR [--life S]
    lab-tcpctl.py client ADDR PORT DIR NAME [--life S]

The server listens on PORT (IPv4 and IPv6, one socket) and writes
DIR/server.ready. A client binds a port and writes it to DIR/NAME/port (so a
test can watch the handshake), connects, sends its NAME and a newline, reads
the server's "ok" line and writes DIR/NAME/sport: the connection is
established and both sides have exchanged data.

From then on each end obeys its own numbered commands, one file each:
DIR/NAME/cli.cmd.N for the client, DIR/NAME/srv.cmd.N for the server's end
of connection NAME (N = 1, 2, ...), and answers each in .res.N ("ok" or
"fail: why"). Commands:

    send      send 10 bytes
    shutdown  shutdown(SHUT_WR): our FIN, the socket stays open
    close     close(): our FIN, the socket is released
    abort     SO_LINGER {on, 0} then close(): an RST
    got N     wait (3 s at most) until this end has received N bytes in
              all since the first command: "fail" if they never arrive
    quit      stop obeying (the socket, if still open, is left to exit)

Between commands each end reads whatever arrives, so no unread data ever
turns a close() into an RST. Everything gives up after --life seconds; every
wait is bounded.
"""
import argparse
import os
import re
import socket
import struct
import threading
import time


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text + "\n")
    os.rename(path + ".tmp", path)


class End:
    """One end of a connection: its socket and the bytes it has received."""

    def __init__(self, sock):
        self.sock = sock
        self.received = 0


def drain(end):
    """Read what has arrived, without blocking; False once at EOF."""
    end.sock.setblocking(False)
    try:
        while True:
            data = end.sock.recv(65536)
            if not data:
                return False
            end.received += len(data)
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        return False


def wait_received(end, n):
    deadline = time.monotonic() + 3
    while end.received < n and time.monotonic() < deadline:
        if not drain(end):
            break
        time.sleep(0.01)
    if end.received < n:
        raise ValueError("received %d bytes, expected %d" % (end.received, n))


def act(end, cmd):
    sock = end.sock
    if cmd.startswith("got "):
        wait_received(end, int(cmd.split()[1]))
    elif cmd == "send":
        sock.setblocking(True)
        sock.settimeout(2)
        sock.sendall(b"x" * 10)
    elif cmd == "shutdown":
        sock.shutdown(socket.SHUT_WR)
    elif cmd == "close":
        drain(end)
        sock.close()
    elif cmd == "abort":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
        sock.close()
    elif cmd != "quit":
        raise ValueError("unknown command '%s'" % cmd)


def obey(sock, cdir, role, end_time):
    end = End(sock)
    n = 1
    is_open = reading = True
    while time.monotonic() < end_time:
        path = os.path.join(cdir, "%s.cmd.%d" % (role, n))
        if os.path.exists(path):
            with open(path) as f:
                cmd = f.read().strip()
            try:
                act(end, cmd)
                res = "ok"
            except (OSError, ValueError) as e:
                res = "fail: %s %s" % (e.__class__.__name__, e)
            write(os.path.join(cdir, "%s.res.%d" % (role, n)), res)
            n += 1
            if cmd == "quit":
                return
            if cmd in ("close", "abort"):
                is_open = False
            continue
        if is_open and reading:
            reading = drain(end)
        time.sleep(0.01)


def recv_line(sock, deadline):
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no line")
        sock.settimeout(left)
        data = sock.recv(64)
        if not data:
            raise ConnectionError("closed before a line")
        buf += data
    return buf.decode().strip()


def serve_one(c, top, end):
    try:
        name = recv_line(c, time.monotonic() + 5)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise ValueError("bad connection name %r" % name)
        cdir = os.path.join(top, name)
        os.makedirs(cdir, exist_ok=True)
        c.sendall(b"ok\n")
        obey(c, cdir, "srv", end)
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
    write(os.path.join(a.dir, "server.ready"), str(os.getpid()))
    while time.monotonic() < end:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve_one, args=(c, a.dir, end),
                         daemon=True).start()
    return 0


def client(a):
    end = time.monotonic() + a.life
    cdir = os.path.join(a.dir, a.name)
    os.makedirs(cdir, exist_ok=True)
    fam = socket.AF_INET6 if ":" in a.addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 0))
    write(os.path.join(cdir, "port"), str(s.getsockname()[1]))
    s.settimeout(5)
    s.connect((a.addr, a.port))
    s.sendall(a.name.encode() + b"\n")
    if recv_line(s, time.monotonic() + 5) != "ok":
        raise ValueError("no ok from the server")
    write(os.path.join(cdir, "sport"), str(s.getsockname()[1]))
    obey(s, cdir, "cli", end)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    sp = sub.add_parser("server")
    sp.add_argument("port", type=int)
    sp.add_argument("dir")
    sp.add_argument("--life", type=float, default=120)
    cp = sub.add_parser("client")
    cp.add_argument("addr")
    cp.add_argument("port", type=int)
    cp.add_argument("dir")
    cp.add_argument("name")
    cp.add_argument("--life", type=float, default=60)
    a = ap.parse_args()
    try:
        return server(a) if a.mode == "server" else client(a)
    except (OSError, ValueError) as e:
        print("lab-tcpctl: %s: %s %s" % (a.mode, e.__class__.__name__, e),
              flush=True)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
