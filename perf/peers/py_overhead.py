#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The Python package's own cost per batch, without the loading.

The workers are made faster than any consumer (a records file of tiny
records, read in file order, 1 record per batch by default), so the
trainer never waits and its time per batch is what the package spends:
next(), the Batch object, its release, and what the loop asks of it.
Each variant runs in turns of --turn seconds, round-robin, for
--seconds in all; per variant the median over its turns of the
process CPU time per batch (time.process_time: the workers are other
processes), in microseconds, beside `empty`, the bare loop, from the
same run. Compare two builds by running each in turn, several times: a
shared machine moves these figures by tens of percent.

Variants (--only to pick):
  empty      the loop alone: the interpreter's floor
  next       b = next(g); del b          (the slot goes back at del)
  release    with next(g) as b: b.seq    (explicit release)
  numpy      x = b.numpy("uint8", shape) and its release
  torch      x = b.torch(torch.uint8, shape) and its release (needs torch)

Usage: py_overhead.py [--seconds 6] [--turn 0.25] [--record-bytes 64]
                      [--batch 1] [--workers 2] [--only next,torch]
Prints one line per variant and, with --json, one JSON object.
Needs the batchring package on PYTHONPATH (the build tree's python/).
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import batchring

try:
    import torch
except ImportError:
    torch = None


def v_empty(g, n, a):
    for _ in range(n):
        pass


def v_next(g, n, a):
    for _ in range(n):
        b = next(g)
        del b


def v_release(g, n, a):
    for _ in range(n):
        with next(g) as b:
            b.seq


def v_numpy(g, n, a):
    shape = (a.batch, a.record_bytes)
    for _ in range(n):
        b = next(g)
        x = b.numpy("uint8", shape)
        del x, b


def v_torch(g, n, a):
    shape = (a.batch, a.record_bytes)
    u8 = torch.uint8
    for _ in range(n):
        b = next(g)
        x = b.torch(u8, shape)
        del x, b


VARIANTS = {"empty": v_empty, "next": v_next, "release": v_release, "numpy": v_numpy,
            "torch": v_torch}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--turn", type=float, default=0.25)
    p.add_argument("--record-bytes", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--only", default=None)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    names = a.only.split(",") if a.only else list(VARIANTS)
    if torch is None and "torch" in names:
        names.remove("torch")
        print("py_overhead.py: torch not installed: the torch variant is skipped",
              file=sys.stderr)
    if torch is not None:
        torch.set_num_threads(1)
    d = tempfile.mkdtemp(prefix="br-pyoverhead-")
    path = os.path.join(d, "records.bin")
    records = 1 << 16
    with open(path, "wb") as f:
        f.write(bytes(range(256)) * (records * a.record_bytes // 256))
    try:
        g = batchring.open_records(path, a.record_bytes, batch_size=a.batch,
                                   workers=a.workers, epochs=0, drop_last=True)
        try:
            per = {k: [] for k in names}
            # Calibrate a chunk of batches per variant to about one turn.
            chunk = {}
            for k in names:
                n = 256
                while True:
                    t0 = time.perf_counter()
                    VARIANTS[k](g, n, a)
                    dt = time.perf_counter() - t0
                    if dt >= a.turn / 4 or n >= 1 << 26:
                        break
                    n *= 4
                chunk[k] = max(1, int(n * a.turn / max(dt, 1e-9)))
            end = time.monotonic() + a.seconds
            while time.monotonic() < end:
                for k in names:
                    c0 = time.process_time_ns()
                    VARIANTS[k](g, chunk[k], a)
                    per[k].append((time.process_time_ns() - c0) / 1e3 / chunk[k])
        finally:
            g.close()
    finally:
        os.unlink(path)
        os.rmdir(d)
    out = {"batchring": batchring.__version__, "python": sys.version.split()[0],
           "record_bytes": a.record_bytes, "batch": a.batch, "workers": a.workers,
           "turns": min(len(v) for v in per.values())}
    for k in names:
        med = statistics.median(per[k])
        out[k + "_us_per_batch"] = med
        out[k + "_us_spread"] = [min(per[k]), max(per[k])]
        print("%-8s %8.3f us/batch (min %.3f, max %.3f over %d turns)"
              % (k, med, min(per[k]), max(per[k]), len(per[k])))
    if a.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
