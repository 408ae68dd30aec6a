#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Prometheus text exposition format -> JSON, for the observability suite.

usage: promparse.py [FILE]   (default: stdin)

Prints one JSON array of {"name": ..., "labels": {...}, "value": N}, one per
sample line, in file order; integral values as integers (node_exporter prints
1234567 as 1.234567e+06). Exits 1 on a line it cannot parse, so a malformed
file fails the test that reads it.
"""
import json
import math
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?$" % NAME)
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def unescape(v):
    out, i = [], 0
    while i < len(v):
        c = v[i]
        if c == "\\" and i + 1 < len(v):
            n = v[i + 1]
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(n, "\\" + n))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_labels(s, lineno):
    labels, pos = {}, 0
    while pos < len(s):
        m = LABEL.match(s, pos)
        if not m:
            raise ValueError("line %d: bad labels: {%s}" % (lineno, s))
        labels[m.group(1)] = unescape(m.group(2))
        pos = m.end()
    return labels


def parse_value(v, lineno):
    try:
        f = float(v)
    except ValueError:
        raise ValueError("line %d: bad value: %s" % (lineno, v)) from None
    if math.isfinite(f) and f == int(f) and abs(f) < 2**63:
        return int(f)
    return f


def main():
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    samples = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            print("promparse: line %d: cannot parse: %s" % (lineno, line), file=sys.stderr)
            return 1
        try:
            samples.append({
                "name": m.group(1),
                "labels": parse_labels(m.group(2) or "", lineno),
                "value": parse_value(m.group(3), lineno),
            })
        except ValueError as e:
            print("promparse: %s" % e, file=sys.stderr)
            return 1
    json.dump(samples, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
