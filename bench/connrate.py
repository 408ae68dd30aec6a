#!/usr/bin/env python3
"""Short-connection rate for bench/e2e.sh and bench/flood.sh, and an
established flow's throughput for bench/flood.sh.

  connrate.py serve ADDR PORT SECONDS   accept, read 1 byte, answer, close;
                                        exits after SECONDS
  connrate.py run ADDR PORT COUNT       COUNT sequential connections (connect,
                                        1 byte there and back, close); prints
                                        connections per second
  connrate.py window ADDR PORT SECONDS  sequential connections for SECONDS,
                                        each given 1 s; prints how many
                                        completed and how many failed
  connrate.py sink ADDR PORT SECONDS    accept, count the bytes of each
                                        connection until its sender shuts it,
                                        answer the count (8 bytes), close;
                                        exits after SECONDS
  connrate.py bulk ADDR PORT IDLE SECONDS
                                        connect (the flow is established now),
                                        send 1 byte a second for IDLE seconds,
                                        then as much as it can for SECONDS;
                                        prints the Mbit/s the sink received,
                                        timed until its count came back
"""
import socket
import sys
import time


def accepted(addr, port, seconds, backlog):
    """Yield each connection accepted on ADDR:PORT until SECONDS are up,
    and the time they are up."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(backlog)
    s.settimeout(1.0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        yield c, end


def serve(addr, port, seconds):
    for c, _ in accepted(addr, port, seconds, 512):
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


def sink(addr, port, seconds):
    for c, end in accepted(addr, port, seconds, 16):
        c.settimeout(max(1.0, end - time.monotonic()))
        n = 0
        try:
            while True:
                b = c.recv(1 << 20)
                if not b:
                    break
                n += len(b)
            c.sendall(n.to_bytes(8, "big"))
        except OSError:
            pass
        c.close()


def bulk(addr, port, idle, seconds):
    """A flow cut or stalled on the way counts as 0 Mbit/s."""
    try:
        print(f"{bulk_mbps(addr, port, idle, seconds):.0f}")
    except OSError as e:
        print(f"connrate: bulk flow broken: {e}", file=sys.stderr)
        print("0")


def bulk_mbps(addr, port, idle, seconds):
    chunk = b"\0" * (1 << 16)
    with socket.create_connection((addr, port), timeout=5.0) as c:
        for _ in range(idle):
            c.sendall(b"x")
            time.sleep(1.0)
        t0 = time.monotonic()
        end = t0 + seconds
        while time.monotonic() < end:
            c.sendall(chunk)
        c.shutdown(socket.SHUT_WR)
        c.settimeout(30.0)
        got = b""
        while len(got) < 8:
            b = c.recv(8 - len(got))
            if not b:
                raise OSError("the sink did not answer")
            got += b
        elapsed = time.monotonic() - t0
    # the idle bytes arrived before the bulk and are not counted in its time
    return (int.from_bytes(got, "big") - idle) * 8 / elapsed / 1e6


def main():
    cmd, addr, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if cmd == "bulk":
        bulk(addr, port, n, int(sys.argv[5]))
    elif cmd == "sink":
        sink(addr, port, n)
    elif cmd == "serve":
        serve(addr, port, n)
    elif cmd == "window":
        window(addr, port, n)
    else:
        run(addr, port, n)


if __name__ == "__main__":
    main()
