# SPDX-License-Identifier: MIT
"""batchring's Python package against real rings: every byte against the
file `batchring mkdata` wrote, holds, every error class provoked for real
(rings served by `batchring serve`, workers and producers killed, objects
in /dev/shm that are not rings), Ctrl-C during a wait, pinning against the
stub CUDA runtime; after each test, no process or /dev/shm entry of ours
is left. Environment (set by CTest): PYTHONPATH=<build>/python,
BR_CLI=<batchring>, BR_TEST_PLUGIN=<test_named_plugin.so>,
BR_CUDA_STUB=<libcudart_stub.so>."""
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

import batchring

from brtest import CLI, CUDA_STUB, N, REC, WAIT_S, Served, shm, wait_exit


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
