#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The PyTorch DataLoader peer of the perf suite's peers cases.

Reads a records file (fixed-size records, e.g. 4 KiB) through a
torch.utils.data.DataLoader with worker processes, the way a careful user
writes it, and times the trainer's side: batches/s, bytes/s and the CPU
time of this (the main) process per batch. The DataLoader's worker
processes are never counted in the CPU figure: time.process_time() covers
this process only.

Two ways to write the Dataset (--mode):
  item   the idiomatic one: __getitem__(i) reads one record with os.preadv
         into a fresh bytearray, from a file opened once per worker; the
         default collate stacks batch_size of them into a uint8 tensor
         [batch_size, record_bytes] (built in shared memory by the worker)
  batch  a BatchSampler hands __getitem__ the batch's indices; it reads
         them straight into the rows of one uint8 tensor (batch_size=None,
         no collate): what a user who profiled the first one writes

The order: --ids FILE (uint64 little-endian record numbers, e.g. the
permutation the C driver also gives batchring and its pread loop), or
0..n-1 (contiguous). The sampler cycles through it forever, so epochs do
not drain the pipeline (step-based training); batches never straddle the
wrap (drop_last within each pass).

Usage:
  torch_loader.py PATH [--record-bytes 4096] [--batch 64] [--workers 2]
                  [--ids FILE] [--mode item|batch] [--seconds 3]
      prints one JSON line: {"batches", "seconds", "batches_per_s",
      "bytes_per_s", "trainer_cpu_us_per_batch", ...}
  torch_loader.py PATH ... --serve
      the C driver's protocol (perf/case_peers.c, perf/peers/turns.py):
      prints {"ready": ...} once the workers delivered their first
      batches, then for each line "run SECONDS [WARMUP]" on stdin one JSON
      line with that turn's figures; "quit" or end of input ends it.
Without torch it prints {"skip": "python3-torch not installed ..."} and
exits with status 3.
"""
import argparse
import json
import os
import sys
import time

import turns


def skip(msg):
    print(json.dumps({"skip": msg}), flush=True)
    sys.exit(3)


try:
    import numpy as np
    import torch
    from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler
except ImportError as e:  # torch or numpy missing: the C driver says so
    skip("python3-torch not installed (apt-get install python3-torch): %s" % e)


class CycleSampler(Sampler):
    """The order, again and again."""

    def __init__(self, order):
        self.order = order

    def __iter__(self):
        while True:
            yield from self.order.tolist()

    def __len__(self):
        return len(self.order)


class CycleBatchSampler(Sampler):
    """The order in batches of `batch`, again and again; a batch never
    spans the end of one pass and the start of the next."""

    def __init__(self, order, batch):
        self.order, self.batch = order, batch

    def __iter__(self):
        n = len(self.order) - len(self.order) % self.batch
        while True:
            for s in range(0, n, self.batch):
                yield self.order[s:s + self.batch].tolist()

    def __len__(self):
        return len(self.order) // self.batch


class Records(Dataset):
    """Fixed-size records of one file; the file is opened on first use,
    so each worker process gets its own descriptor."""

    def __init__(self, path, record_bytes):
        self.path, self.rb = path, record_bytes
        self.n = os.path.getsize(path) // record_bytes
        self.fd = None

    def __len__(self):
        return self.n

    def _fd(self):
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDONLY)
        return self.fd

    def __getitem__(self, i):
        buf = bytearray(self.rb)
        if os.preadv(self._fd(), [buf], i * self.rb) != self.rb:
            raise IOError("short read of record %d" % i)
        return torch.frombuffer(buf, dtype=torch.uint8)


class BatchRecords(Records):
    """__getitem__ takes the batch's indices (a BatchSampler's list) and
    reads each record into its row of one tensor."""

    def __getitem__(self, idx):
        out = torch.empty((len(idx), self.rb), dtype=torch.uint8)
        rows = out.numpy()  # rows[r] shares the tensor's memory
        fd = self._fd()
        for r, i in enumerate(idx):
            if os.preadv(fd, [rows[r]], i * self.rb) != self.rb:
                raise IOError("short read of record %d" % i)
        return out


def make_loader(a):
    n = os.path.getsize(a.path) // a.record_bytes
    if a.ids:
        order = np.fromfile(a.ids, dtype="<u8").astype(np.int64)
        if len(order) == 0 or order.max() >= n:
            raise SystemExit("torch_loader.py: %s: ids out of range" % a.ids)
    else:
        order = np.arange(n, dtype=np.int64)
    common = dict(num_workers=a.workers, persistent_workers=a.workers > 0)
    if a.mode == "item":
        return DataLoader(Records(a.path, a.record_bytes), batch_size=a.batch,
                          sampler=CycleSampler(order), drop_last=True, **common)
    return DataLoader(BatchRecords(a.path, a.record_bytes), batch_size=None,
                      sampler=CycleBatchSampler(order, a.batch), **common)


def phase(it, seconds, a):
    """Takes batches for `seconds` of wall time; the figures of the phase."""
    batches = 0
    nbytes = 0
    cpu0 = time.process_time_ns()
    t0 = time.monotonic_ns()
    end = t0 + int(seconds * 1e9)
    t = t0
    while t < end:
        b = next(it)
        if b.shape != (a.batch, a.record_bytes) or b.dtype != torch.uint8:
            raise SystemExit("torch_loader.py: unexpected batch %s %s" % (b.shape, b.dtype))
        batches += 1
        nbytes += b.numel()
        t = time.monotonic_ns()
    cpu = time.process_time_ns() - cpu0
    ns = t - t0
    return {
        "batches": batches,
        "ns": ns,
        "cpu_ns": cpu,
        "bytes": nbytes,
        "batches_per_s": batches * 1e9 / ns,
        "bytes_per_s": nbytes * 1e9 / ns,
        "trainer_cpu_us_per_batch": cpu / 1e3 / max(batches, 1),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path")
    p.add_argument("--record-bytes", type=int, default=4096)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--ids", default=None)
    p.add_argument("--mode", choices=("item", "batch"), default="item")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--warmup", type=int, default=8, help="batches taken before timing")
    p.add_argument("--serve", action="store_true")
    a = p.parse_args()

    # The trainer's own thread pool is not what is measured; one thread,
    # as the C peers have.
    torch.set_num_threads(1)
    it = iter(make_loader(a))
    for _ in range(a.warmup):
        next(it)
    info = {"torch": torch.__version__, "python": sys.version.split()[0], "mode": a.mode,
            "workers": a.workers, "batch": a.batch, "record_bytes": a.record_bytes}
    if not a.serve:
        r = phase(it, a.seconds, a)
        r.update(info)
        print(json.dumps(r), flush=True)
        return
    turns.serve(lambda seconds: phase(it, seconds, a), info, "torch_loader.py")


if __name__ == "__main__":
    main()
