# SPDX-License-Identifier: MIT
"""batchring's tensors: Batch.torch and torch_labels, their lifetimes
(slices, other threads, interpreter exit) and batchring.torch.RingIterable.
Skipped as a whole, visibly, where torch is missing (run.py)."""
import os
import random
import subprocess
import sys
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import batchring  # noqa: E402
import batchring.torch  # noqa: E402

from brtest import N, REC, WAIT_S, Served  # noqa: E402


# A consumer that takes batches 0-2 and exits with batch 2 still seen by a
# module-level tensor, as a script may.
EXIT_WITH_TENSOR = """
import sys, batchring, batchring.torch
g = batchring.attach(sys.argv[1], timeout=%d)
for _ in range(3):
    b = next(g)
x = b.torch("uint8", (b.count, -1))
print(b.seq, flush=True)
del b
"""


def test_exit_with_a_tensor_alive_gives_its_batch_back(plugin):
    """The tensor is freed while the interpreter shuts down: its batch goes
    back and the consumer detaches as after close(), so the next consumer
    goes on after it (a consumer that seemed to crash would have it
    delivered again)."""
    name = "/br-py-%d-x" % os.getpid()
    s = Served(name, "samples=64,bytes=256")
    try:
        out = subprocess.run([sys.executable, "-c", EXIT_WITH_TENSOR % WAIT_S, name],
                             capture_output=True, text=True, timeout=WAIT_S)
        assert (out.returncode, out.stdout.strip(), out.stderr) == (0, "2", "")
        with batchring.attach(name, timeout=WAIT_S) as g:
            assert next(g).seq == 3
    finally:
        s.stop()



def test_batch_arrays_dtypes_shapes_and_bad_arguments(data):
    d, raw, lab = data
    with batchring.open_records(os.path.join(d, "records.bin"), REC,
                                labels=os.path.join(d, "labels.bin"), batch_size=8,
                                slots=4) as g:
        b = next(g)
        want, want_ids = raw[b.ids], b.ids.copy()
        assert np.array_equal(b.numpy(shape=(b.count, REC)), want)
        assert np.array_equal(b.numpy(np.int32, (b.count, -1)), want.view(np.int32))
        a = b.numpy(">u2", [b.count, 2, -1])
        assert a.shape == (b.count, 2, REC // 4) and not a.flags.writeable
        assert np.array_equal(a.reshape(b.count, -1), want.view(">u2"))
        pair = [("lo", "u1"), ("hi", "u1")]          # unhashable, and with fields
        assert np.array_equal(b.numpy(pair, (b.count, -1)), want.view(np.dtype(pair)))
        sub = np.dtype(("u1", 4))                     # a subarray: numpy's own rules
        assert b.numpy(sub, (b.count, -1)).shape == \
            np.frombuffer(want.tobytes(), sub).reshape(b.count, -1).shape
        meta = np.dtype("<u4", metadata={"unit": "px"})
        assert b.numpy("<u4", (b.count, -1)).dtype.metadata is None
        assert b.numpy(meta, (b.count, -1)).dtype.metadata == {"unit": "px"}
        with pytest.raises(ValueError):
            b.numpy(object, (b.count, -1))            # never slot bytes read as pointers
        with pytest.raises(ValueError):
            b.numpy("uint8", (2, 8))                  # covers part of the batch only
        with pytest.raises(ValueError):
            b.numpy("uint8", (3, -1))
        with pytest.raises(TypeError):
            b.numpy("no such dtype", (b.count, -1))
        del a
        x = b.torch(torch.int32, (b.count, -1))
        assert x.shape == (b.count, REC // 4)
        assert np.array_equal(x.numpy(), want.view(np.int32))
        assert torch.equal(b.torch("int16"), torch.from_numpy(want.reshape(-1).view(np.int16)))
        y = b.torch_labels()
        assert y.dtype == torch.int32 and torch.equal(y, torch.from_numpy(lab[b.ids]))
        assert b.torch().dtype == torch.uint8 and b.torch().numel() == b.size
        assert b.torch(torch.bfloat16, [b.count, -1]).shape == (b.count, REC // 2)  # no numpy dtype
        assert torch.equal(b.torch("uint8", [b.count, REC]), torch.from_numpy(want))
        # A shape from x.shape (torch.Size) takes the one-call DLPack path, as
        # a tuple does; torch's frombuffer + view would leave a _base.
        z = b.torch(torch.uint8, torch.Size((b.count, REC)))
        assert z._base is None and torch.equal(z, torch.from_numpy(want))
        assert b.torch(torch.uint8, (b.count, REC))._base is None
        z = b.torch(torch.int32, torch.Size((b.count, -1)))
        assert z._base is None and z.shape == (b.count, REC // 4)
        # numpy's one-call path leaves the batch's view as the base; its
        # fallback, frombuffer + reshape, an array.
        a = b.numpy(np.uint8, torch.Size((b.count, -1)))
        assert not isinstance(a.base, np.ndarray) and np.array_equal(a, want)
        del z, a
        with pytest.raises(ValueError) as e:
            b.torch("uint128")
        assert "uint128" in str(e.value)
        with pytest.raises(TypeError):
            b.numpy("uint8", None, 3)
        with pytest.raises(TypeError):
            b.torch(dtype="uint8", shap=(8, -1))
        with pytest.raises(TypeError):
            b.numpy("uint8", dtype="uint8")
        with pytest.raises(RuntimeError):
            b.torch("uint8", (3, -1))           # torch's own error: 8 x 4096 is not 3 rows
        b.release()                         # deferred: x still sees the slot
        with pytest.raises(ValueError):
            b.torch()
        with pytest.raises(batchring.HoldLimit):
            for _ in range(8):              # the lap would load into x's slot
                next(g).release()
        assert np.array_equal(x.numpy(), want.view(np.int32))
        del x
        with pytest.raises(batchring.HoldLimit):
            next(g).release()               # the labels tensor holds the batch too
        assert torch.equal(y, torch.from_numpy(lab[want_ids]))
        del y
        next(g).release()


def test_shapes_read_as_numpy_and_torch_read_them(data):
    """The one-call paths (shape_covering) read a shape exactly as numpy's
    reshape and torch's do, or give way to them: random shapes as tuples,
    lists and torch.Size, with -1, other negatives, zeros and sizes past
    int64, against each library reshaping a copy of the bytes."""
    d, _, _ = data
    dtypes = [(torch.uint8, np.uint8), (torch.int16, np.int16), (torch.int32, np.int32),
              (torch.float32, np.float32), (torch.int64, np.int64)]
    dims = [-1, -1, -2, 0, 1, 2, 3, 4, 8, 16, REC, REC // 4, 2**40, 2**63 - 1, 2**64]
    rng = random.Random(15)

    def reshaped(f):
        try:
            return f()
        except (ValueError, RuntimeError, TypeError, OverflowError):
            return None

    with batchring.open_records(os.path.join(d, "records.bin"), REC, batch_size=4,
                                hold=2) as g, next(g) as b:
        raw = np.frombuffer(bytes(b.data), np.uint8)
        for _ in range(1500):
            td, nd = rng.choice(dtypes)
            shape = [rng.choice(dims) for _ in range(rng.randint(1, 4))]
            kind = rng.choice([tuple, list, torch.Size])
            try:
                arg = kind(shape)
            except (ValueError, RuntimeError, TypeError, OverflowError):
                continue  # torch.Size of a size past int64
            for ours, theirs in (
                    (lambda: b.torch(td, arg).numpy(),
                     lambda: torch.from_numpy(raw.view(nd).copy()).reshape(shape).numpy()),
                    (lambda: b.numpy(nd, arg), lambda: raw.view(nd).reshape(shape))):
                got, want = reshaped(ours), reshaped(theirs)
                assert (got is None) == (want is None), (kind, shape, td)
                if want is not None:
                    assert got.shape == want.shape and got.tobytes() == want.tobytes(), \
                        (kind, shape, td)


def test_tensor_slices_hold_the_batch_and_may_die_in_any_thread(data):
    """Batch.torch's tensor shares its storage with every slice of it, and
    the storage holds the batch: the slot goes back when the last slice
    goes, whichever thread drops it, and a closed generator keeps its ring
    mapped for a slice that outlives it."""
    d, raw, _ = data
    g = batchring.open_records(os.path.join(d, "records.bin"), REC, batch_size=64, workers=1,
                               hold=3, slots=6, epochs=0)
    b = next(g)
    want = raw[b.ids]
    x = b.torch(torch.float32, (b.count, -1))
    assert np.array_equal(x.numpy().view(np.uint8), want)    # bits: NaNs are not equal
    assert torch.equal(b.torch(torch.bfloat16, (b.count, -1)).view(torch.uint8),
                       torch.from_numpy(want))
    row = x[5]                      # a view of x's storage, not of the batch
    del x, b                        # release on collection: deferred, row sees the slot
    with pytest.raises(batchring.HoldLimit):
        for _ in range(14):
            next(g).release()
    assert np.array_equal(row.numpy().view(np.uint8), want[5])
    t = threading.Thread(target=lambda r: r.clear(), args=([row],))
    del row                         # the list in the thread holds the last reference
    t.start()
    t.join()
    for _ in range(14):             # the slot went back when the thread dropped it
        next(g).release()
    b = next(g)
    assert b.torch_labels() is None           # opened without labels
    tail = b.torch("int64", [b.count, REC // 8])[-1]
    ids = b.ids.copy()
    del b
    g.close()                       # deferred: tail still sees the ring
    assert np.array_equal(tail.numpy(), raw[ids[-1]].view(np.int64))
    del tail                        # the last view went: the ring is unmapped now


def test_torch_ring_iterable(data):
    from batchring.torch import RingIterable
    d, raw, lab = data
    ds = RingIterable(records=(os.path.join(d, "records.bin"), REC),
                      labels=os.path.join(d, "labels.bin"), shape=(-1, REC),
                      batch_size=64, workers=2, epochs=1)
    n = 0
    for x, y in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0):
        assert x.dtype == torch.uint8 and x.shape[1] == REC
        assert np.array_equal(x.numpy(), raw[n:n + x.shape[0]])     # file order
        assert np.array_equal(y.numpy(), lab[n:n + x.shape[0]])
        n += x.shape[0]
    assert n == N


def serve_records(name, d, hold):
    """batchring serve of the mkdata records, one epoch in file order."""
    p = subprocess.Popen([os.environ["BR_CLI"], "serve", "--name", name,
                          "--records", os.path.join(d, "records.bin"), "--record-size", str(REC),
                          "--labels", os.path.join(d, "labels.bin"), "--batch", "64",
                          "--workers", "1", "--hold", str(hold), "--epochs", "1",
                          "--exit-on-detach"],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == name
    return p


def test_ring_iterable_on_served_rings(data):
    """RingIterable(attach=) on a ring served with --hold 2, as a plain
    iterator and through a DataLoader: every row and label of every batch;
    on a ring of hold 1 it says so before the first batch, and it refuses
    options only a ring's producer chooses."""
    from batchring.torch import RingIterable
    d, raw, lab = data
    name = "/br-py-%d-ri" % os.getpid()
    for through_loader in (False, True):
        p = serve_records(name, d, hold=2)
        try:
            ds = RingIterable(attach=name, shape=(-1, REC), timeout=WAIT_S)
            it = (torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0)
                  if through_loader else ds)
            n, prev = 0, None
            for x, y in it:
                assert x.dtype == torch.uint8 and y.dtype == torch.int32
                assert np.array_equal(x.numpy(), raw[n:n + x.shape[0]])
                assert np.array_equal(y.numpy(), lab[n:n + x.shape[0]])
                if prev is not None:        # the batch before is still whole
                    assert np.array_equal(prev.numpy(), raw[n - prev.shape[0]:n])
                prev = x
                n += x.shape[0]
            assert n == N
            del prev, x, y
        finally:
            p.send_signal(2)
            assert p.wait(timeout=WAIT_S) == 0
    p = serve_records(name, d, hold=1)
    try:
        with pytest.raises(batchring.HoldLimit) as e:
            next(iter(RingIterable(attach=name, timeout=WAIT_S)))
        assert e.value.name == "BR_EHELD" and "--hold 2" in str(e.value)
    finally:
        p.send_signal(2)
        p.wait(timeout=WAIT_S)
    with pytest.raises(TypeError) as e:
        RingIterable(attach=name, batch_size=64)
    assert "batch_size" in str(e.value)
