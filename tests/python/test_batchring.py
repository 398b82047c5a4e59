# SPDX-License-Identifier: MIT
"""batchring's Python package against real rings: every byte against the
file `batchring mkdata` wrote, holds, every error class provoked for real
(rings served by `batchring serve`, workers and producers killed, objects
in /dev/shm that are not rings), Ctrl-C during a wait, pinning against the
stub CUDA runtime; after each test, no process or /dev/shm entry of ours
is left. Environment (set by CTest): PYTHONPATH=<build>/python,
BR_CLI=<batchring>, BR_TEST_PLUGIN=<test_named_plugin.so>,
BR_CUDA_STUB=<libcudart_stub.so>."""
import gc
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import batchring

CLI = os.environ.get("BR_CLI")
PLUGIN = os.environ.get("BR_TEST_PLUGIN")
CUDA_STUB = os.environ.get("BR_CUDA_STUB")
N, REC = 1000, 4096
# Bound on waiting for another process's event (not a sleep: the waits
# below return as soon as it happens); BR_TEST_TIME_SCALE as for the C tests.
WAIT_S = 30 * int(os.environ.get("BR_TEST_TIME_SCALE", "1") or 1)


@pytest.fixture(scope="module")
def data():
    if not CLI:
        pytest.skip("BR_CLI not set (run through ctest)")
    d = tempfile.mkdtemp(prefix="br-py-")
    subprocess.run([CLI, "mkdata", "--layout", "records", "--dir", d, "--samples", str(N),
                    "--sample-bytes", str(REC), "-q"], check=True, stdout=subprocess.DEVNULL)
    raw = np.fromfile(os.path.join(d, "records.bin"), dtype=np.uint8).reshape(N, REC)
    lab = np.fromfile(os.path.join(d, "labels.bin"), dtype=np.int32)
    yield d, raw, lab
    shutil.rmtree(d)


def shm():
    """This process's rings (other tests may run beside us)."""
    return {n for n in os.listdir("/dev/shm") if n.startswith("br-py-%d-" % os.getpid())}


def children():
    kids = set()
    for tid in os.listdir("/proc/self/task"):
        with open("/proc/self/task/%s/children" % tid) as f:
            kids.update(f.read().split())
    return kids


@pytest.fixture(autouse=True)
def no_leaks():
    """Every test leaves no child process (workers, supervisors, serve) and
    no /dev/shm entry of ours: its generators were closed or collected."""
    assert shm() == set()
    yield
    gc.collect()
    assert children() == set()
    assert shm() == set()


def wait_exit(pid):
    """Waits until pid (not necessarily our child) has exited: a pidfd
    becomes readable then. False if it is still running after WAIT_S."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], WAIT_S)[0])
    finally:
        os.close(fd)


def test_every_batch_matches_the_file(data):
    d, raw, lab = data
    seen = np.zeros(N, dtype=np.int64)
    with batchring.open_records(os.path.join(d, "records.bin"), REC,
                                labels=os.path.join(d, "labels.bin"), batch_size=64,
                                workers=2, shuffle=True, seed=5, epochs=2) as g:
        seqs = []
        for b in g:
            x = b.numpy("uint8", (b.count, REC))
            assert np.array_equal(x, raw[b.ids])
            assert np.array_equal(b.labels, lab[b.ids])
            assert bytes(b.data[:REC]) == raw[b.ids[0]].tobytes()
            assert list(b.offsets) == [i * REC for i in range(b.count + 1)]
            seen[b.ids] += 1
            seqs.append(b.seq)
    assert seqs == list(range(len(seqs)))
    assert (seen == 2).all()


def test_view_keeps_batch_held_then_slot_recycles(data):
    d, raw, _ = data
    g = batchring.open_records(os.path.join(d, "records.bin"), REC, batch_size=64, workers=1,
                               hold=3, slots=6, epochs=0)
    b = next(g)
    ids = b.ids.copy()
    view = b.numpy("uint8", (b.count, REC))
    b.release()                     # deferred: a view still sees the slot
    assert not b.held
    with pytest.raises(ValueError):
        b.data
    del b
    # Lap the ring: the slot the view sees is never reloaded; the ring
    # refuses (HoldLimit) to load into it instead.
    with pytest.raises(batchring.HoldLimit) as e:
        for _ in range(14):
            next(g).release()
    assert "batch 0 is still held" in str(e.value)
    assert np.array_equal(view, raw[ids])
    del view                        # now the slot goes back
    for _ in range(14):
        next(g).release()
    g.close()
    g.close()                       # idempotent


def test_batch_kept_past_close_refuses_new_views(data):
    d, raw, _ = data
    g = batchring.open_records(os.path.join(d, "records.bin"), REC, batch_size=8, slots=4)
    b, kept = next(g), next(g)
    view = kept.numpy("uint8", (kept.count, REC))
    g.close()                       # deferred: a view of `kept` still sees the ring
    assert not b.held and kept.held
    with pytest.raises(ValueError):
        b.numpy()                   # its slot is no longer the caller's
    assert np.array_equal(kept.numpy("uint8", (kept.count, REC)), raw[kept.ids])
    del view
    assert not kept.held            # the last view went: the ring is unmapped
    with pytest.raises(ValueError):
        kept.data


def test_hold_limit(data):
    d, _, _ = data
    with batchring.open_records(os.path.join(d, "records.bin"), REC, batch_size=64,
                                workers=1, hold=3, epochs=0) as g:
        held = [next(g) for _ in range(3)]
        with pytest.raises(batchring.HoldLimit) as e:
            next(g)
        assert e.value.name == "BR_EHELD" and "hold" in str(e.value)
        held.pop(0)                 # collected: its hold goes back
        assert next(g).seq == 3


def test_errors(data):
    d, _, _ = data
    with pytest.raises(batchring.Error) as e:
        batchring.open_records(os.path.join(d, "nope.bin"), REC)
    assert e.value.name == "ENOENT" and "nope.bin" in str(e.value)
    with pytest.raises(batchring.Error) as e:
        batchring.open_records(os.path.join(d, "records.bin"), 4095)
    assert e.value.name == "EINVAL"
    with pytest.raises(batchring.Error) as e:
        batchring.attach("/br-py-none-%d" % os.getpid())
    assert e.value.name == "ENOENT"
    with pytest.raises(ValueError):
        batchring.open_records(os.path.join(d, "records.bin"), REC, hold=1)


class Served:
    """batchring serve --plugin: a ring whose batch `block` never loads."""

    def __init__(self, name, arg, extra=()):
        self.name = name
        self.p = subprocess.Popen([CLI, "serve", "--name", name, "--plugin", PLUGIN,
                                   "--plugin-arg", arg, "--batch", "8", "--workers", "1", "--slot-bytes", "4096",
                                   *extra], stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == name

    def stat(self):
        out = subprocess.run([CLI, "stat", self.name, "--json"], capture_output=True,
                             text=True, check=True).stdout
        return json.loads(out)

    def worker_pids(self):
        return [w["pid"] for w in self.stat()["worker_stats"]]

    def wait_consumer_waiting(self, seq):
        """Polls the ring (each stat watches it for 250 ms) until its
        consumer waits for batch seq."""
        end = time.monotonic() + WAIT_S
        while time.monotonic() < end:
            if self.stat().get("consumer_waiting_seq") == seq:
                return
        pytest.fail("the consumer never waited for batch %d" % seq)

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=30)     # its status: the run may have stopped on an error
        assert not os.path.exists("/dev/shm" + self.name)


@pytest.fixture
def plugin():
    if not (CLI and PLUGIN):
        pytest.skip("BR_CLI/BR_TEST_PLUGIN not set (run through ctest)")


def test_attach_served_ring_and_errors(plugin):
    before = shm()
    name = "/br-py-%d-a" % os.getpid()
    s = Served(name, "samples=64,bytes=256,block=5,fail=1000")
    try:
        with batchring.attach(name, timeout=0.3) as g:
            got = [next(g).seq for _ in range(5)]
            assert got == [0, 1, 2, 3, 4]
            assert s.stat()["consumer_pid"] == os.getpid()
            with pytest.raises(batchring.Timeout):
                next(g)
    finally:
        s.stop()
    name = "/br-py-%d-f" % os.getpid()
    s = Served(name, "samples=64,bytes=256,fail=2")
    try:
        g = batchring.attach(name)
        next(g), next(g)
        with pytest.raises(batchring.LoaderError):
            next(g)
        with pytest.raises(batchring.Error):
            next(g)
        g.close()
    finally:
        s.stop()
    assert shm() == before == set()


def test_attach_ring_served_with_hold(plugin):
    """serve --hold 3: the consumer gives batches back itself, and the
    package knows the hold (br_stats.hold) from the attach on."""
    name = "/br-py-%d-h" % os.getpid()
    s = Served(name, "samples=64,bytes=256", ["--hold", "3"])
    try:
        with batchring.attach(name, timeout=WAIT_S) as g:
            assert g.hold == 3
            assert [next(g).seq for _ in range(10)] == list(range(10))
            held = [next(g) for _ in range(3)]
            views = [b.numpy() for b in held]
            with pytest.raises(batchring.HoldLimit):
                next(g)
            del views[0]
            held[0].release()
            assert next(g).seq == 13
            assert [v.size for v in views] == [256 * 8] * 2
    finally:
        s.stop()


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
    pytest.importorskip("torch")
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


# A consumer in its own process: iterates the ring and prints how it ended
# (the exception's class and code, or "end").
CONSUMER = """
import sys, batchring
g = batchring.attach(sys.argv[1])
try:
    for b in g:
        pass
    print("end", flush=True)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
except batchring.Error as e:
    print(type(e).__name__, e.name, e, flush=True)
g.close()
"""


def consumer(name):
    return subprocess.Popen([sys.executable, "-c", CONSUMER, name], stdout=subprocess.PIPE,
                            text=True)


def test_ctrl_c_during_a_wait(plugin):
    name = "/br-py-%d-c" % os.getpid()
    s = Served(name, "samples=64,bytes=256,block=2")
    try:
        c = consumer(name)
        s.wait_consumer_waiting(2)
        c.send_signal(signal.SIGINT)
        out, _ = c.communicate(timeout=WAIT_S)
        assert out.strip() == "KeyboardInterrupt"
        assert c.returncode == 0
    finally:
        s.stop()


def test_worker_error_past_the_restart_budget(plugin):
    """A served worker killed while it loads, with no restart allowed."""
    name = "/br-py-%d-w" % os.getpid()
    s = Served(name, "samples=64,bytes=256,block=3", ["--max-restarts", "0"])
    try:
        with batchring.attach(name, timeout=WAIT_S) as g:
            assert [next(g).seq for _ in range(3)] == [0, 1, 2]
            (worker,) = s.worker_pids()
            os.kill(worker, signal.SIGKILL)     # it is stuck loading batch 3
            with pytest.raises(batchring.WorkerError) as e:
                next(g)
            assert e.value.name == "BR_EWORKER"
            assert "pid %d" % worker in str(e.value) and "max_restarts is 0" in str(e.value)
            with pytest.raises(batchring.Error):
                next(g)                         # stopped, not a wait
    finally:
        s.stop()


def test_producer_gone_while_python_waits(plugin):
    name = "/br-py-%d-p" % os.getpid()
    s = Served(name, "samples=64,bytes=256,block=2")
    c = consumer(name)
    try:
        s.wait_consumer_waiting(2)
        workers = s.worker_pids()
        s.p.kill()
        s.p.wait()
        out, _ = c.communicate(timeout=WAIT_S)
        assert out.startswith("ProducerGone BR_EPRODUCER "), out
        assert "pid %d" % s.p.pid in out
        # Its workers die with it (PR_SET_PDEATHSIG).
        assert all(wait_exit(w) for w in workers)
    finally:
        if c.poll() is None:
            c.kill()
            c.wait()
        if s.p.poll() is None:
            s.p.kill()
            s.p.wait()
    # A killed producer leaves its ring; gc removes it (this test made it).
    assert os.path.exists("/dev/shm" + name)
    subprocess.run([CLI, "gc", name], check=True, capture_output=True)
    assert not os.path.exists("/dev/shm" + name)


def test_bad_ring_not_a_ring_and_another_layout(plugin):
    """Objects in /dev/shm that attach must refuse, and leave alone."""
    name = "/br-py-%d-b" % os.getpid()
    path = "/dev/shm" + name
    magic, major = 0x474e5242, 99              # ring/layout.h: "BRNG", a future major
    cases = [(b"\0" * 8, "BR_EBADRING", "header"),
             (b"not a ring" * 6554, "BR_EBADRING", "magic"),
             (magic.to_bytes(4, "little") + major.to_bytes(2, "little") + bytes(65530),
              "BR_EVERSION", "layout")]
    try:
        for content, code, word in cases:
            with open(path, "wb") as f:
                f.write(content)
            with pytest.raises(batchring.BadRing) as e:
                batchring.attach(name, timeout=1)
            assert e.value.name == code, str(e.value)
            assert word in str(e.value), str(e.value)
            assert name in str(e.value), str(e.value)   # names the ring
            with open(path, "rb") as f:
                assert f.read() == content
    finally:
        if os.path.exists(path):
            os.unlink(path)


def cuda_log(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


@pytest.fixture
def cuda(monkeypatch, tmp_path):
    """The stub CUDA runtime (tests/cuda_stub.c) where batchring looks for
    libcudart, logging every call. Under ctest it is always there."""
    if not CUDA_STUB:
        if CLI:
            pytest.fail("BR_CUDA_STUB is not set, so pinning would go untested")
        pytest.skip("BR_CUDA_STUB not set (run through ctest)")
    log = str(tmp_path / "cudastub.log")
    monkeypatch.setenv("BR_CUDART", CUDA_STUB)
    monkeypatch.setenv("BR_CUDA_STUB_LOG", log)
    monkeypatch.delenv("BR_CUDA_STUB_FAIL", raising=False)
    return log


def registered(log):
    """(address, bytes) of the one cudaHostRegister in the stub's log."""
    regs = re.findall(r"^cudaHostRegister (0x[0-9a-f]+) (\d+) 1$", cuda_log(log), re.M)
    assert len(regs) == 1, cuda_log(log)
    return int(regs[0][0], 16), int(regs[0][1])


def inside(batch, region):
    p = batch.numpy().__array_interface__["data"][0]
    return region[0] <= p and p + batch.size <= region[0] + region[1]


def test_pin_registers_the_ring_and_unregisters_at_close(data, cuda):
    d, raw, _ = data
    with batchring.open_records(os.path.join(d, "records.bin"), REC, batch_size=64,
                                workers=1, epochs=1, pin="cuda") as g:
        assert g.pinned and g.pin_error is None
        region = registered(cuda)
        n = 0
        for b in g:
            assert inside(b, region)
            assert np.array_equal(b.numpy("uint8", (b.count, REC)), raw[b.ids])
            n += b.count
        assert n == N
        with pytest.raises(batchring.Error) as e:
            g.pin("cuda")
        assert e.value.name == "EBUSY"
        assert "cudaHostUnregister" not in cuda_log(cuda)
    assert cuda_log(cuda).count("cudaHostUnregister 0x%x\n" % region[0]) == 1


def test_pin_failures_and_the_fallback(data, cuda, monkeypatch):
    d, _, _ = data
    path = os.path.join(d, "records.bin")
    monkeypatch.setenv("BR_CUDART", "/nonexistent/libcudart.so.12")
    with batchring.open_records(path, REC, pin=True) as g:  # if CUDA can: it cannot
        assert not g.pinned
        assert "no CUDA runtime" in g.pin_error and "/nonexistent" in g.pin_error
        assert next(g).count == 32
    with pytest.raises(batchring.CudaError) as e:
        batchring.open_records(path, REC, pin="cuda")
    assert e.value.name == "BR_ECUDA" and "/nonexistent/libcudart.so.12" in str(e.value)
    monkeypatch.setenv("BR_CUDART", CUDA_STUB)
    monkeypatch.setenv("BR_CUDA_STUB_FAIL", "cudaHostRegister")
    with pytest.raises(batchring.CudaError) as e:
        batchring.open_records(path, REC, pin="cuda")
    assert "stub: out of memory" in str(e.value) and "cudaError 2" in str(e.value)
    with batchring.open_records(path, REC) as g:
        assert g.pin() is False and "stub: out of memory" in g.pin_error
        assert next(g).count == 32
    assert "cudaHostUnregister" not in cuda_log(cuda)
    with pytest.raises(ValueError):
        batchring.open_records(path, REC, pin="gpu")
    with pytest.raises(batchring.Error) as e:
        batchring.open_records(path, REC, pin=7)
    assert e.value.name == "EINVAL"


def test_pin_attached_ring(plugin, cuda):
    """A consumer pins its own mapping of a served ring: at attach, or later."""
    name = "/br-py-%d-g" % os.getpid()
    s = Served(name, "samples=64,bytes=256")
    try:
        with batchring.attach(name, timeout=WAIT_S, pin="cuda") as g:
            assert g.pinned
            region = registered(cuda)
            b = next(g)
            assert b.seq == 0 and inside(b, region)
            del b
        assert cuda_log(cuda).count("cudaHostUnregister 0x%x\n" % region[0]) == 1
        os.unlink(cuda)
        with batchring.attach(name, timeout=WAIT_S) as g:
            assert not g.pinned
            assert g.pin("cuda") is True and g.pinned
            region = registered(cuda)
            b = next(g)
            assert inside(b, region)
            del b
    finally:
        s.stop()


def test_batch_arrays_dtypes_shapes_and_bad_arguments(data):
    torch = pytest.importorskip("torch")
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


def test_tensor_slices_hold_the_batch_and_may_die_in_any_thread(data):
    """Batch.torch's tensor shares its storage with every slice of it, and
    the storage holds the batch: the slot goes back when the last slice
    goes, whichever thread drops it, and a closed generator keeps its ring
    mapped for a slice that outlives it."""
    torch = pytest.importorskip("torch")
    import threading
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
    torch = pytest.importorskip("torch")
    from batchring.torch import RingIterable
    d, raw, lab = data
    ds = RingIterable(records=(os.path.join(d, "records.bin"), REC),
                      labels=os.path.join(d, "labels.bin"), shape=(-1, REC),
                      batch_size=64, workers=2, epochs=1)
    n = 0
    first = None
    for x, y in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0):
        assert x.dtype == torch.uint8 and x.shape[1] == REC
        rows = np.nonzero((lab == y[0].item()))[0]
        assert any(np.array_equal(x[0].numpy(), raw[r]) for r in rows)
        n += x.shape[0]
    assert n == N
