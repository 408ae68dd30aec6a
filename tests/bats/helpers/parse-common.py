#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Run random frames through helpers/bpf/parse_common.bpf.c (loaded, its id
given) and check every answer: the fast parse either declines a frame and
leaves its record untouched (0) or takes it and agrees field for field with
the full walk (1). The frames: the differential fuzzer's (tests/fuzz/gen.py:
tags, options, extension chains, fragments, cuts, flips), and frames of the
fast parse's own shape with one random byte of the headers changed, which
are the ones that sit on its boundary. Prints the seed; MSEG_PC_SEED=N
replays."""
import argparse
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "fuzz"))
import gen  # noqa: E402


def common_shape(rng):
    """A UDP or non-SYN TCP frame without tags, options or extensions,
    maybe with one header byte changed."""
    s = gen.rnd_spec(rng, proto=rng.choice((6, 17)))
    s.tags, s.ip_opts, s.ext = [], 0, []
    if s.proto == 6:
        s.flags = rng.choice((0x10, 0x18, 0x11, 0x14, 0x04, 0x12, 0x02))
    if rng.random() < 0.3:
        gen.mutate(rng, s)
    f = gen.frame(s)
    if rng.random() < 0.5:
        i = rng.randrange(12, min(len(f), 80))
        f = f[:i] + bytes([rng.randrange(256)]) + f[i + 1:]
    if rng.random() < 0.1:
        f = f[:rng.randrange(14, len(f) + 1)]
    return f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prog-id", required=True)
    ap.add_argument("--frames", type=int, default=20000)
    a = ap.parse_args()
    seed = int(os.environ.get("MSEG_PC_SEED", random.randrange(1 << 32)))
    print("seed %d" % seed)
    rng = random.Random(seed)
    frames = [f for g in gen.frames(rng, a.frames // 2) for f in g]
    frames += [common_shape(rng) for _ in range(a.frames // 2)]
    res = subprocess.run([os.path.join(ROOT, "build", "mseg-testrun"), "--prog-id", a.prog_id,
                          "--keep-going"], input="".join(f.hex() + "\n" for f in frames),
                         capture_output=True, text=True, timeout=600)
    if res.returncode:
        sys.exit("mseg-testrun: %s" % res.stderr.strip())
    got = res.stdout.split()
    if len(got) != len(frames):
        sys.exit("%d answers for %d frames" % (len(got), len(frames)))
    seen = {}
    bad = 0
    for f, r in zip(frames, got):
        seen[r] = seen.get(r, 0) + 1
        if r not in ("0", "1", "refused"):
            bad += 1
            if bad <= 5:
                print("answer %s for frame %s" % (r, f.hex()))
    print("answers: %s" % " ".join("%s=%d" % kv for kv in sorted(seen.items())))
    if bad:
        sys.exit("%d frames where the fast parse and the walk disagree" % bad)
    if seen.get("0", 0) < len(frames) // 10 or seen.get("1", 0) < len(frames) // 10:
        sys.exit("both outcomes must be common: the test did not reach the boundary")


main()
