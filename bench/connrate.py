#!/usr/bin/env python3
"""Short-connection rate for bench/e2e.sh.

  connrate.py serve ADDR PORT SECONDS   accept, read 1 byte, answer, close;
                                        exits after SECONDS
  connrate.py run ADDR PORT COUNT       COUNT sequential connections (connect,
                                        1 byte there and back, close); prints
                                        connections per second
  connrate.py window ADDR PORT SECONDS  sequential connections for SECONDS,
                                        each given 1 s; prints how many
                                        completed and how many failed
"""
import socket
import sys
import time


def serve(addr, port, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(512)
    s.settimeout(1.0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        c.settimeout(2.0)
        try:
            if c.recv(1):
                c.sendall(b"k")
        except OSError:
            pass
        c.close()


def run(addr, port, count):
    t0 = time.monotonic()
    for _ in range(count):
        c = socket.create_connection((addr, port), timeout=2.0)
        c.sendall(b"x")
        if c.recv(1) != b"k":
            sys.exit("connrate: no answer")
        c.close()
    print(f"{count / (time.monotonic() - t0):.0f}")


def window(addr, port, seconds):
    ok = failed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with socket.create_connection((addr, port), timeout=1.0) as c:
                c.sendall(b"x")
                if c.recv(1) != b"k":
                    raise OSError("no answer")
            ok += 1
        except OSError:
            failed += 1
    print(f"{ok} {failed}")


def main():
    cmd, addr, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if cmd == "serve":
        serve(addr, port, n)
    elif cmd == "window":
        window(addr, port, n)
    else:
        run(addr, port, n)


if __name__ == "__main__":
    main()
