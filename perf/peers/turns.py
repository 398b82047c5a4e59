# SPDX-License-Identifier: MIT
"""The peers cases' turn protocol, shared by the Python children
(torch_loader.py, batchring_py.py) of perf/case_peers.c.

The child prints {"ready": info} once its workers delivered their first
batches, then answers each line on stdin:

  run SECONDS [WARMUP]   takes batches for WARMUP seconds (untimed:
                         figures warm_batches, warm_ns, warm_cpu_ns),
                         then for SECONDS (batches, ns, cpu_ns, bytes,
                         batches_per_s, ...), one JSON line
  quit                   ends it (so does the end of input)

`phase(seconds)` is the child's own loop: the figures of one stretch of
batches. The warm-up is the C driver's choice (case_peers.c explains why
it has one); WARMUP 0 or absent times the whole turn.
"""
import json
import sys


def serve(phase, info, prog):
    print(json.dumps({"ready": info}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] != "run" or len(words) not in (2, 3):
            raise SystemExit("%s: unknown command %r" % (prog, line))
        try:
            seconds = float(words[1])
            warm = float(words[2]) if len(words) == 3 else 0.0
        except ValueError:
            raise SystemExit("%s: not a number of seconds in %r" % (prog, line))
        # NaN compares false both ways: refused with the negatives.
        if not (seconds > 0 and warm >= 0):
            raise SystemExit("%s: seconds must be > 0 and the warm-up >= 0: %r" % (prog, line))
        w = phase(warm) if warm > 0 else {"batches": 0, "ns": 0, "cpu_ns": 0}
        r = phase(seconds)
        r.update({"warm_batches": w["batches"], "warm_ns": w["ns"], "warm_cpu_ns": w["cpu_ns"]})
        print(json.dumps(r), flush=True)
