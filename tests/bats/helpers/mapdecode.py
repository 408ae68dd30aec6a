#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""mapdecode: decode `bpftool -j map dump` of an mseg map (stdin) into JSON lines.

    mapdecode.py sessions   # shape of `mseg sessions --json`
    mapdecode.py flows      # mseg_flows, per-CPU values summed

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


def flows(entries):
    """mseg_flows as its key says (addresses, not segments), values summed."""
    for e in entries:
        k = e["formatted"]["key"]
        vals = [c["value"] for c in e["formatted"]["values"]]
        firsts = [v["first_ns"] for v in vals if v["first_ns"]]
        yield {
            "src": addr(k["src"]), "dst": addr(k["dst"]),
            "proto": PROTOS.get(k["proto"], str(k["proto"])),
            "dport": k["dport"], "family": k["family"],
            "verdict": name(VERDICTS, k["verdict"]),
            "rule": k["rule_id"] or "default",
            "connections": sum(v["connections"] for v in vals),
            "packets": sum(v["packets"] for v in vals),
            "bytes": sum(v["bytes"] for v in vals),
            "first_ns": min(firsts) if firsts else 0,
            "last_ns": max(v["last_ns"] for v in vals),
        }


def main():
    kind = sys.argv[1]
    entries = json.load(sys.stdin)
    for obj in {"sessions": sessions, "rules": rules, "flows": flows}[kind](entries):
        print(json.dumps(obj))


if __name__ == "__main__":
    main()
