#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""batchring from Python, the peers cases' Python trainer on batchring.

The same records file, order and --serve protocol (perf/peers/turns.py)
as torch_loader.py: batchring.open_records with `workers`
C worker processes and the order given by --ids, and per batch what a
PyTorch trainer does with it: a zero-copy uint8 tensor [batch,
record_bytes] of the slot (Batch.torch), dropped before the next batch.
The CPU figure is this process's time.process_time: batchring's workers
are other processes and are not counted.

Usage: batchring_py.py PATH [--record-bytes 4096] [--batch 64]
                       [--workers 2] [--ids FILE] [--seconds 3] [--serve]
Needs the batchring package on PYTHONPATH (the build tree's python/) and
torch; without them it prints {"skip": ...} and exits with status 3.
"""
import argparse
import json
import sys
import time

import turns


def skip(msg):
    print(json.dumps({"skip": msg}), flush=True)
    sys.exit(3)


try:
    import numpy as np
    import torch
    import batchring
    import batchring.torch  # noqa: F401  (imported before timing)
except ImportError as e:
    skip("batchring_py.py: %s (python3-torch, and the batchring package on PYTHONPATH)" % e)


def phase(gen, seconds, a):
    batches = nbytes = 0
    cpu0 = time.process_time_ns()
    t0 = time.monotonic_ns()
    end = t0 + int(seconds * 1e9)
    t = t0
    while t < end:
        b = next(gen)
        x = b.torch(torch.uint8, (a.batch, a.record_bytes))
        if x.shape != (a.batch, a.record_bytes):
            raise SystemExit("batchring_py.py: unexpected batch %s" % (x.shape,))
        nbytes += x.numel()
        del x, b
        batches += 1
        t = time.monotonic_ns()
    cpu = time.process_time_ns() - cpu0
    ns = t - t0
    return {"batches": batches, "ns": ns, "cpu_ns": cpu, "bytes": nbytes,
            "batches_per_s": batches * 1e9 / ns, "bytes_per_s": nbytes * 1e9 / ns,
            "trainer_cpu_us_per_batch": cpu / 1e3 / max(batches, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path")
    p.add_argument("--record-bytes", type=int, default=4096)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--ids", default=None)
    p.add_argument("--mode", default="batchring", help="ignored (the driver's protocol)")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--warmup", type=int, default=64, help="batches taken before timing")
    p.add_argument("--serve", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    ids = None if a.ids is None else np.fromfile(a.ids, dtype="<u8")
    # Batches never straddle the end of the order, as in torch_loader.py.
    gen = batchring.open_records(a.path, a.record_bytes, batch_size=a.batch,
                                 workers=a.workers, epochs=0, drop_last=True, ids=ids)
    for _ in range(a.warmup):
        next(gen).torch(torch.uint8, (a.batch, a.record_bytes))
    info = {"batchring": batchring.__version__, "python": sys.version.split()[0],
            "torch": torch.__version__, "workers": a.workers, "batch": a.batch,
            "record_bytes": a.record_bytes}
    if not a.serve:
        r = phase(gen, a.seconds, a)
        r.update(info)
        print(json.dumps(r), flush=True)
        return
    turns.serve(lambda seconds: phase(gen, seconds, a), info, "batchring_py.py")
    gen.close()


if __name__ == "__main__":
    main()
