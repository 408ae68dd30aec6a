#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Differential test of `mseg sessions` against an independent model.

Lays out a random session table (IPv4 and IPv6, five protocols, every TCP
state, every verdict, some sessions long expired) with `mseg-fill --spec`,
then for random filter sets compares what `mseg sessions --json` lists (the
sessions, their fields, their order), `--count` and `del` with Python's
ipaddress module and sort. Prints the seed; exits 1 on the first mismatch.

usage: sessions-fuzz.py SEED N ROUNDS
(mseg, mseg-fill and TC_BPF_MNT come from the environment: MSEG_SCRIPTS,
MSEG_BUILD.)
"""
import ipaddress
import json
import os
import random
import subprocess
import sys

STATES = ["NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1",
          "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK",
          "CLOSING"]
ACTIONS = ["allow", "deny", "log"]
PROTOS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 47: "47"}
TIMEOUTS = {"timeout_syn_sent": 300, "timeout_udp": 300, "timeout_syn_recv": 1000,
            "timeout_established": 1000, "timeout_fin_wait": 1000,
            "timeout_close_wait": 1000, "timeout_last_ack": 1000,
            "timeout_time_wait": 1000, "timeout_close": 1000, "timeout_udp_replied": 1000,
            "timeout_icmp": 1000, "timeout_other": 1000}
MSEG = os.path.join(os.environ["MSEG_SCRIPTS"], "mseg")
FILL = os.path.join(os.environ["MSEG_BUILD"], "mseg-fill")


def pools(rng):
    v4 = [ipaddress.ip_address("10.0.%d.%d" % (rng.randrange(4), rng.randrange(256)))
          for _ in range(40)]
    v4 += [ipaddress.ip_address("192.168.1.%d" % rng.randrange(256)) for _ in range(10)]
    v6 = [ipaddress.ip_address("fd00:0:0:%x::%x" % (rng.randrange(4), rng.randrange(1, 65536)))
          for _ in range(30)]
    v6 += [ipaddress.ip_address("2001:db8::%x:0:%x" % (rng.randrange(3), rng.randrange(65536)))
           for _ in range(10)]
    return v4, v6


def make_table(rng, n):
    v4, v6 = pools(rng)
    table, seen = [], set()
    while len(table) < n:
        fam = rng.choice((v4, v4, v6))
        src, dst = rng.choice(fam), rng.choice(fam)
        proto = rng.choice((6, 6, 17, 1, 58, 47))
        if (proto == 1 and fam is v6) or (proto == 58 and fam is v4):
            proto = 17
        sport = rng.choice((1000, 1001, 1002, rng.randrange(65536)))
        dport = rng.choice((22, 53, 80, 443, rng.randrange(65536)))
        state = rng.randrange(11) if proto == 6 else 0
        # Expired: idle 400 s, past the 300 s that main() sets for SYN_SENT
        # and unanswered UDP; the rest idle under a second, far from the
        # 1000 s every other timeout gets.
        expired = rng.random() < 0.15 and proto in (6, 17)
        if expired and proto == 6:
            state = 1
        idle = 400.0 if expired else rng.uniform(0, 1)
        # the key is direction-normalised: one entry per endpoint pair
        ends = tuple(sorted(((int(src), sport), (int(dst), dport))))
        if (proto, ends) in seen:
            continue
        seen.add((proto, ends))
        table.append({"proto": proto, "src": src, "sport": sport, "dst": dst,
                      "dport": dport, "state": state, "action": rng.randrange(3),
                      "idle": idle, "expired": expired})
    return table


def spec_lines(table):
    return "".join("%d %s %d %s %d %d %d %.3f 0\n" % (
        s["proto"], s["src"], s["sport"], s["dst"], s["dport"], s["state"],
        s["action"], s["idle"]) for s in table)


def random_filter(rng, table):
    """A filter as argv and as a predicate; drawn near the table's contents."""
    args, preds = [], []
    pick = rng.choice(table)
    for opt in rng.sample(["src", "dst", "proto", "sport", "dport", "state", "action"],
                          rng.randrange(1, 4)):
        if opt in ("src", "dst"):
            addr = pick[opt] if rng.random() < 0.7 else rng.choice(table)[opt]
            bits = addr.max_prefixlen
            plen = rng.choice((bits, bits, rng.randrange(8, bits + 1)))
            net = ipaddress.ip_network("%s/%d" % (addr, plen), strict=False)
            text = str(net) if plen != bits or rng.random() < 0.5 else str(addr)
            args += ["--" + opt, text]
            preds.append(lambda s, o=opt, n=net: s[o].version == n.version and s[o] in n)
        elif opt == "proto":
            p = pick["proto"] if rng.random() < 0.7 else rng.choice(list(PROTOS))
            args += ["--proto", PROTOS[p]]
            preds.append(lambda s, p=p: s["proto"] == p)
        elif opt in ("sport", "dport"):
            v = pick[opt] if rng.random() < 0.7 else rng.choice((22, 1000, 5))
            args += ["--" + opt, str(v)]
            preds.append(lambda s, o=opt, v=v: s[o] == v)
        elif opt == "state":
            st = STATES[pick["state"]] if rng.random() < 0.7 else rng.choice(STATES)
            args += ["--state", rng.choice((st, st.lower()))]
            preds.append(lambda s, st=st: STATES[s["state"]] == st)
        else:
            a = rng.randrange(3)
            args += ["--action", ACTIONS[a]]
            preds.append(lambda s, a=a: s["action"] == a)
    return args, lambda s: all(p(s) for p in preds)


def sort_key(s):
    return (s["src"].version, int(s["src"]), s["sport"], int(s["dst"]), s["dport"], s["proto"])


def shown(s):
    return [PROTOS[s["proto"]], str(s["src"]), s["sport"], str(s["dst"]), s["dport"],
            STATES[s["state"]], ACTIONS[s["action"]]]


def listed(out):
    return [[o["proto"], o["src"], o["sport"], o["dst"], o["dport"], o["state"], o["action"]]
            for o in json.loads(out)]


def mseg(*args):
    return subprocess.run([MSEG, "sessions", *args], check=True, capture_output=True,
                          text=True, timeout=60).stdout


def fail(seed, what, args, want, got):
    if isinstance(want, list) and isinstance(got, list):
        first = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b),
                     min(len(want), len(got)))
        want = "%d rows; from row %d: %s" % (len(want), first, want[first:first + 3])
        got = "%d rows; from row %d: %s" % (len(got), first, got[first:first + 3])
    print("seed %d: %s differs for %s\n  want %s\n  got  %s" % (seed, what, " ".join(args),
                                                            want, got), file=sys.stderr)
    sys.exit(1)


def main():
    seed, n, rounds = (int(a) for a in sys.argv[1:4])
    print("sessions-fuzz: seed %d, %d sessions, %d filters" % (seed, n, rounds))
    rng = random.Random(seed)
    for key, value in TIMEOUTS.items():
        subprocess.run([MSEG, "config", "set", key, str(value)], check=True, timeout=60)
    table = make_table(rng, n)
    subprocess.run([FILL, "--spec", "-"], input=spec_lines(table), text=True, check=True,
                   capture_output=True, timeout=60)
    live = sorted((s for s in table if not s["expired"]), key=sort_key)
    if listed(mseg("--json")) != [shown(s) for s in live]:
        fail(seed, "the whole listing", [], [shown(s) for s in live], mseg("--json"))
    for _ in range(rounds):
        args, pred = random_filter(rng, table)
        want = [shown(s) for s in live if pred(s)]
        got = listed(mseg("--json", *args))
        if got != want:
            fail(seed, "the listing", args, want, got)
        count = int(mseg("--count", *args))
        if count != len(want):
            fail(seed, "--count", args, len(want), count)
        with_expired = sum(1 for s in table if pred(s))
        if int(mseg("--count", "--all", *args)) != with_expired:
            fail(seed, "--count --all", args, with_expired, mseg("--count", "--all", *args))
    # del takes expired sessions too; what is left is exactly the rest
    args, pred = random_filter(rng, table)
    gone = [s for s in table if pred(s)]
    out = json.loads(mseg("del", "--json", *args))
    if out["deleted"] != len(gone):
        fail(seed, "del's count", args, len(gone), out)
    rest = [shown(s) for s in sorted(table, key=sort_key) if not pred(s)]
    got = listed(mseg("--json", "--all"))
    if got != rest:
        fail(seed, "the table after del", args, rest, got)
    print("sessions-fuzz: ok (del %s: %d sessions)" % (" ".join(args), len(gone)))


if __name__ == "__main__":
    main()
