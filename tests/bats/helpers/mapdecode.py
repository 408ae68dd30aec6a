#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""mapdecode: decode `bpftool -j map dump` of an mseg map (stdin) into JSON lines.

    mapdecode.py sessions   # shape of `mseg sessions --json`
    mapdecode.py flows      # mseg_flows, every CPU's slots added up by flow
    mapdecode.py flows_gc   # mseg_flows_gc

The tests' own reading of the maps, independent of lib/sh, so the suites can
cross-check the scripts and run before they exist. Uses the BTF field names
of bpf/mseg_abi.h (bpftool's "formatted" member).
"""
import ipaddress
import json
import sys
import time

STATES = ["NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1",
          "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK",
          "CLOSING"]
ACTIONS = ["allow", "deny", "log"]
VERDICTS = ["allowed", "denied", "would-deny"]  # enum mseg_flow_verdict
PROTOS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 0: "any"}
SESS_REPLIED = 0x01  # bpf/mseg_abi.h MSEG_SESS_*
SESS_PICKUP = 0x02


def as_bytes(v):
    return bytes(int(x, 0) if isinstance(x, str) else x for x in v)


def addr(v):
    a = ipaddress.IPv6Address(as_bytes(v))
    return str(a.ipv4_mapped) if a.ipv4_mapped else str(a)


def name(table, i):
    return table[i] if 0 <= i < len(table) else str(i)


def sessions(entries):
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    for e in entries:
        k, v = e["formatted"]["key"], e["formatted"]["value"]
        lo = (addr(k["addr_lo"]), k["port_lo"])
        hi = (addr(k["addr_hi"]), k["port_hi"])
        src, dst = (hi, lo) if v["orig_is_hi"] else (lo, hi)
        yield {
            "proto": PROTOS.get(k["proto"], str(k["proto"])),
            "src": src[0], "sport": src[1], "dst": dst[0], "dport": dst[1],
            "state": name(STATES, v["state"]),
            "packets": sum(v["packets"]), "bytes": sum(v["bytes"]),
            "idle_s": round((now - v["last_seen_ns"]) / 1e9, 1),
            "action": name(ACTIONS, v["action"]),
            "confirmed": bool(v["flags"] & SESS_REPLIED),
            "pickup": bool(v["flags"] & SESS_PICKUP),
            "policy_gen": v["policy_gen"],
        }


def rules(entries):
    for e in entries:
        k, v = e["formatted"]["key"], e["formatted"]["value"]
        yield {
            "src": addr(k["src"]), "dst": addr(k["dst"]),
            "sport": k["sport"], "dport": k["dport"],
            "proto": PROTOS.get(k["proto"], str(k["proto"])),
            "set": k["set"], "action": name(ACTIONS, v["action"]),
            "hits": v["hits"],
        }


def flow_key(k):
    return {
        "src": addr(k["src"]), "dst": addr(k["dst"]),
        "proto": PROTOS.get(k["proto"], str(k["proto"])),
        "dport": k["dport"], "family": k["family"],
        "verdict": name(VERDICTS, k["verdict"]),
        "rule": k["rule_id"] or "default",
    }


def flows(entries):
    """mseg_flows: every CPU's used slots added up by flow (addresses, not
    segments), as its key says."""
    acc = {}
    for e in entries:
        for c in e["formatted"]["values"]:
            slot = c["value"]
            v = slot["count"]
            if not v["last_ns"]:
                continue
            k = flow_key(slot["flow"])
            a = acc.setdefault(json.dumps(k, sort_keys=True), dict(
                k, connections=0, packets=0, bytes=0, first_ns=0, last_ns=0))
            a["connections"] += v["connections"]
            a["packets"] += v["packets"]
            a["bytes"] += v["bytes"]
            if v["first_ns"] and (not a["first_ns"] or v["first_ns"] < a["first_ns"]):
                a["first_ns"] = v["first_ns"]
            a["last_ns"] = max(a["last_ns"], v["last_ns"])
    yield from acc.values()


def flows_gc(entries):
    """mseg_flows_gc: the counts of the sessions mseg gc deleted, by flow."""
    for e in entries:
        v = e["formatted"]["value"]
        yield dict(flow_key(e["formatted"]["key"]), packets=v["packets"],
                   bytes=v["bytes"], first_ns=v["first_ns"], last_ns=v["last_ns"])


def main():
    kind = sys.argv[1]
    entries = json.load(sys.stdin)
    for obj in {"sessions": sessions, "rules": rules, "flows": flows,
                    "flows_gc": flows_gc}[kind](entries):
        print(json.dumps(obj))


if __name__ == "__main__":
    main()
