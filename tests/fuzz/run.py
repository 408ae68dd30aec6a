#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""The differential fuzzer: random and mutated frames through the loaded
classifier (build/mseg-testrun, one process per round), each verdict and
each round's counters compared with the model (model.py, written from
docs/DESIGN.md).

    run.py --prog-id ID [--seed N] [--frames N] [--rounds N]

Needs TC_BPF_MNT (the pinned maps of the program) and the build in the
tree above. Prints the seed first: MSEG_FUZZ_SEED=N (or --seed N) replays
a run. Exit 0 when every verdict and counter agreed, 1 otherwise.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import gen
import model

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The bounds docs/DESIGN.md gives; the build must agree with them.
BOUNDS = {"MSEG_MAX_VLANS": 4, "MSEG_MAX_EXT_HDRS": 12}


def pin(name):
    return os.path.join(os.environ["TC_BPF_MNT"], "tc", "globals", name)


def stats():
    out = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", pin("mseg_stats")],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    cpus = [v["value"] for v in json.loads(out)[0]["formatted"]["values"]]
    return {k: sum(c[k] for c in cpus) for k in cpus[0]}


def mseg(*args, stdin=None):
    subprocess.run([os.path.join(ROOT, "scripts", "mseg")] + list(args), input=stdin,
                   check=True, capture_output=True, text=True, timeout=120)


def describe(f):
    try:
        kind, p = model.parse(f, BOUNDS)
    except model.Refused as r:
        return "refused (%s)" % r.reason
    return "%s: family %d proto %d ports %d->%d frag %s icmp %s" % (
        kind, p.family, p.proto, p.sport, p.dport, p.frag, p.icmp)


def one_round(rng, n, prog_id, tmp, rnd):
    text, (default, exact, cidrs, failsafes) = gen.policy(rng)
    strict = rng.random() < 0.3
    mseg("apply", "-", stdin=text)
    mseg("config", "set", "strict", "on" if strict else "off")
    groups = gen.frames(rng, n)
    path = os.path.join(tmp, "frames.%d" % rnd)
    with open(path, "w") as out:
        for g in groups:
            out.write("-\n")
            for f in g:
                out.write(f.hex() + "\n")
    before = stats()
    res = subprocess.run([os.path.join(ROOT, "build", "mseg-testrun"), "--prog-id", str(prog_id),
                          "--reset", pin("mseg_sessions"), "--reset", pin("mseg_frags"),
                          "--keep-going", path], capture_output=True, text=True, timeout=600)
    if res.returncode:
        raise RuntimeError("mseg-testrun: %s" % res.stderr.strip())
    after = stats()
    got = res.stdout.split()
    cls = model.Classifier(model.Policy(default, exact, cidrs, failsafes), strict, BOUNDS)
    bad, i, refused, total = [], 0, 0, 0
    for g in groups:
        cls.reset()
        for f in g:
            v = got[i]
            i += 1
            total += 1
            if v == "refused":
                refused += 1
                continue
            want = cls.frame(f)
            if cls.pending:
                # strict mode: the TCP tracker's call (model.py)
                want = int(v) if int(v) in (model.PASS, model.SHOT) else want
                cls.settle(want)
            if int(v) != want:
                bad.append("round %d frame %d: verdict %s, model %d (%s; %s)\n  %s"
                           % (rnd, total, v, want, "strict" if strict else "loose",
                              describe(f), f.hex()))
    if i != len(got):
        raise RuntimeError("%d verdicts for %d frames" % (len(got), i))
    for k in model.COUNTERS:
        d = after.get(k, 0) - before.get(k, 0)
        if k == "invalid" and cls.count[k] <= d <= cls.count[k] + cls.count["tracked"]:
            continue  # the tracker may call some segments of live sessions invalid
        if d != cls.count[k]:
            bad.append("round %d: counter %s moved %d, model %d" % (rnd, k, d, cls.count[k]))
    gaps = model.check_invariants({k: after.get(k, 0) for k in model.COUNTERS})
    if gaps != (0, 0):
        bad.append("round %d: the counters break the invariant: gaps %s" % (rnd, gaps))
    return total, refused, bad, cls.count


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prog-id", type=int, required=True)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("MSEG_FUZZ_SEED", "0")) or None)
    ap.add_argument("--frames", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 2**31)
    print("seed %d (replay: MSEG_FUZZ_SEED=%d)" % (seed, seed), flush=True)
    rng = random.Random(seed)
    t0 = time.monotonic()
    frames = refused = 0
    bad = []
    seen = dict.fromkeys(model.COUNTERS, 0)
    with tempfile.TemporaryDirectory(prefix="mseg-fuzz.") as tmp:
        for r in range(a.rounds):
            n, ref, b, count = one_round(rng, a.frames // a.rounds, a.prog_id, tmp, r)
            frames += n
            refused += ref
            bad += b
            for k in seen:
                seen[k] += count[k]
    print("%d frames in %d rounds (%d refused by the kernel's test run), %.1f s"
          % (frames, a.rounds, refused, time.monotonic() - t0))
    print("model counts: " + " ".join("%s=%d" % kv for kv in seen.items()))
    for line in bad[:20]:
        print(line)
    print("%d mismatches" % len(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
