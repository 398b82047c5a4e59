# SPDX-License-Identifier: MIT
"""batchring's Python package against real rings: every byte against the
file `batchring mkdata` wrote, holds, every error class provoked for real
(rings served by `batchring serve`, workers and producers killed, objects
in /dev/shm that are not rings), Ctrl-C during a wait, pinning against the
stub CUDA runtime; after each test, no process or /dev/shm entry of ours
is left. Environment (set by CTest): PYTHONPATH=<build>/python,
BR_CLI=<batchring>, BR_TEST_PLUGIN=<test_named_plugin.so>,
BR_CUDA_STUB=<libcudart_stub.so>."""
import errno
import os
import re
import signal
import subprocess
import sys
import threading
import time

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
    assert "b.release()" in str(e.value) and "br_release" not in str(e.value)
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
    # Each also the builtin a Python caller catches for it.
    with pytest.raises(FileNotFoundError) as e:
        batchring.open_records(os.path.join(d, "nope.bin"), REC)
    assert isinstance(e.value, batchring.NotFound) and isinstance(e.value, batchring.Error)
    assert e.value.name == "ENOENT" and e.value.errno == errno.ENOENT
    assert "nope.bin" in str(e.value)
    with pytest.raises(ValueError) as e:
        batchring.open_records(os.path.join(d, "records.bin"), 4095)
    assert isinstance(e.value, batchring.InvalidArgument) and e.value.name == "EINVAL"
    with pytest.raises(batchring.NotFound) as e:
        batchring.attach("/br-py-none-%d" % os.getpid())
    assert e.value.name == "ENOENT"
    with pytest.raises(ValueError):
        batchring.open_records(os.path.join(d, "records.bin"), REC, hold=1)
    # Out of range is refused, never wrapped into a valid-looking value.
    for kw in ({"hold": 2**32 + 2}, {"batch_size": -1}, {"seed": -5}, {"workers": 2**32}):
        with pytest.raises(OverflowError) as e:
            batchring.open_records(os.path.join(d, "records.bin"), REC, **kw)
        assert repr(list(kw.values())[0]) in str(e.value)
    with pytest.raises(TypeError) as e:
        batchring.open_records(os.path.join(d, "records.bin"), REC, batch_size="64")
    with pytest.raises(TypeError) as e:
        batchring.open_files(os.path.join(d, "records.bin"), token_bytes=4)
    assert "open_files() got unexpected keyword argument 'token_bytes'" in str(e.value)
    with pytest.raises(TypeError) as e:
        batchring.open_packed(d, labels=os.path.join(d, "labels.bin"))
    assert "open_packed()" in str(e.value) and "'labels'" in str(e.value)



def test_attach_served_ring_and_errors(plugin):
    before = shm()
    name = "/br-py-%d-a" % os.getpid()
    s = Served(name, "samples=64,bytes=256,block=5,fail=1000")
    try:
        with batchring.attach(name, timeout=WAIT_S) as g:
            got = [next(g).seq for _ in range(5)]
            assert got == [0, 1, 2, 3, 4]
            assert s.stat()["consumer_pid"] == os.getpid()
        # Batch 5 never loads: a short timeout ends the wait, and the
        # generator stays usable (the same error again, same batch).
        with batchring.attach(name, timeout=0.3) as g:
            for _ in range(2):
                with pytest.raises(TimeoutError) as e:
                    next(g)
                assert isinstance(e.value, batchring.Timeout)
                assert e.value.name == "ETIMEDOUT" and e.value.errno == errno.ETIMEDOUT
    finally:
        s.stop()
    name = "/br-py-%d-f" % os.getpid()
    s = Served(name, "samples=64,bytes=256,fail=2")
    try:
        g = batchring.attach(name)
        next(g), next(g)
        with pytest.raises(batchring.LoaderError) as e:
            next(g)
        assert e.value.name == "BR_ELOADER" and "batch 2" in str(e.value)
        with pytest.raises(batchring.Stopped) as e:
            next(g)                 # stopped after the error, which it names
        assert e.value.name == "BR_ESTOPPED" and e.value.code == -30004
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


def test_batch_as_context_manager_epoch_batch_and_stopped(data):
    """`with b:` gives the slot back at its end; .epoch and .batch count
    within the epochs (1000 samples in batches of 64: 16 per epoch, the
    last one of 40); a closed generator raises Stopped with its code."""
    d, raw, _ = data
    g = batchring.open_records(os.path.join(d, "records.bin"), REC, batch_size=64, workers=1,
                               hold=2, epochs=2)
    got = []
    for _ in range(32):
        with next(g) as b:
            assert b.held
            got.append((b.seq, b.epoch, b.batch, b.count))
        assert not b.held           # released by the with, not by the next batch
    assert got == [(s, s // 16, s % 16, 40 if s % 16 == 15 else 64) for s in range(32)]
    with pytest.raises(StopIteration):
        next(g)
    g.close()
    with pytest.raises(batchring.Stopped) as e:
        next(g)
    assert (e.value.code, e.value.name) == (-30004, "BR_ESTOPPED")


def test_attached_ring_of_hold_1_refuses_next_while_views_live(plugin):
    """A ring served with the default hold of 1: the next batch gives the
    previous one back, so next() refuses (HoldLimit) while an array of it
    lives, instead of letting the ring load into memory it still sees; a
    batch without views is given back (and no longer readable)."""
    name = "/br-py-%d-1" % os.getpid()
    s = Served(name, "samples=64,bytes=256")
    try:
        with batchring.attach(name, timeout=WAIT_S) as g:
            assert g.hold == 1
            b = next(g)
            v = b.numpy()
            want = v.copy()
            with pytest.raises(batchring.HoldLimit) as e:
                next(g)
            assert e.value.name == "BR_EHELD" and "batch 0 still has views" in str(e.value)
            assert np.array_equal(v, want)
            del v
            c = next(g)
            assert c.seq == 1 and not b.held
            with pytest.raises(ValueError):
                b.numpy()
    finally:
        s.stop()


def test_waits_release_the_gil_and_ctrl_c_ends_them(plugin):
    """While next() waits (batch 2 never loads), another thread runs Python:
    it watches the ring with `batchring stat` until this consumer waits,
    then interrupts this process, as Ctrl-C would. The wait ends with
    KeyboardInterrupt, well within SLICE_MS of the signal (50 ms; bounded
    at 2 s x BR_TEST_TIME_SCALE here, so that a slow poll fails); the
    consumer stays attached."""
    name = "/br-py-%d-gil" % os.getpid()
    s = Served(name, "samples=64,bytes=256,block=2")
    seen, sent = [], []

    def watcher():
        s.wait_consumer_waiting(2)
        seen.append(True)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    try:
        with batchring.attach(name, timeout=WAIT_S) as g:
            next(g), next(g)
            t = threading.Thread(target=watcher)
            t.start()
            try:
                with pytest.raises(KeyboardInterrupt):
                    next(g)
                ended = time.monotonic()
            finally:
                t.join()
            assert seen == [True]
            assert ended - sent[0] < WAIT_S / 15     # 2 s x BR_TEST_TIME_SCALE
            assert s.stat()["consumer_pid"] == os.getpid()   # still attached
    finally:
        s.stop()


def mkdata(d, *args):
    subprocess.run([CLI, "mkdata", "--dir", str(d), "-q", *args], check=True,
                   stdout=subprocess.DEVNULL)


def samples_of(g):
    """{id: (bytes, label or None)} of every sample of every batch, each id
    once, the bytes cut at .offsets."""
    got = {}
    for b in g:
        data = bytes(b.data)
        labels = b.labels
        for i, sid in enumerate(b.ids):
            assert int(sid) not in got
            got[int(sid)] = (data[b.offsets[i]:b.offsets[i + 1]],
                             None if labels is None else int(labels[i]))
    return got


def indexed_samples(data_path, index_path):
    blob = open(data_path, "rb").read()
    idx = np.fromfile(index_path, dtype="<u8").reshape(-1, 2)
    return [blob[o:o + n] for o, n in idx]


def test_variable_size_layouts_every_sample(plugin, tmp_path):
    """open_indexed, open_files, open_files_glob and open_indexed_shards:
    every sample's bytes (cut at .offsets, of varying size) and label,
    shuffled, 2 workers, each id once."""
    d = tmp_path
    mkdata(d / "i", "--layout", "indexed", "--samples", "300", "--min-bytes", "1",
           "--max-bytes", "3000", "--seed", "3")
    want = indexed_samples(d / "i" / "data.bin", d / "i" / "index.bin")
    lab = np.fromfile(d / "i" / "labels.bin", dtype="<i4")
    kw = dict(batch_size=16, workers=2, shuffle=True, seed=9)
    with batchring.open_indexed(d / "i" / "data.bin", d / "i" / "index.bin",
                                labels=d / "i" / "labels.bin", **kw) as g:
        got = samples_of(g)
    assert len({len(b) for b in want}) > 50              # sizes do vary
    assert got == {i: (want[i], int(lab[i])) for i in range(300)}

    mkdata(d / "f", "--layout", "files", "--samples", "40", "--min-bytes", "1",
           "--max-bytes", "5000")
    names = [ln.strip() for ln in open(d / "f" / "files.txt") if ln.strip()]
    want = [open(os.path.join(d / "f", n) if not os.path.isabs(n) else n, "rb").read()
            for n in names]
    lab = np.fromfile(d / "f" / "labels.bin", dtype="<i4")
    with batchring.open_files(d / "f" / "files.txt", labels=d / "f" / "labels.bin", **kw) as g:
        assert samples_of(g) == {i: (want[i], int(lab[i])) for i in range(40)}
    files = sorted(os.listdir(d / "f" / "files"))
    want = [open(d / "f" / "files" / n, "rb").read() for n in files]
    with batchring.open_files_glob(str(d / "f" / "files" / "*.bin"), **kw) as g:
        assert samples_of(g) == {i: (want[i], None) for i in range(len(files))}

    mkdata(d / "s", "--layout", "indexed", "--samples", "200", "--shards", "3",
           "--min-bytes", "1", "--max-bytes", "2000")
    shards = sorted(n for n in os.listdir(d / "s") if n.startswith("data_") and
                    n.endswith(".bin"))
    assert len(shards) == 3
    want = sum((indexed_samples(d / "s" / n, d / "s" / (n + ".idx")) for n in shards), [])
    with batchring.open_indexed_shards(str(d / "s" / "data_*.bin"), **kw) as g:
        assert samples_of(g) == {i: (want[i], None) for i in range(200)}


def test_record_shards_and_packed_every_sample(plugin, tmp_path):
    """open_record_shards over 3 shard files and open_packed over what
    `batchring pack` wrote of the same records: every sample and label."""
    d = tmp_path
    mkdata(d, "--layout", "records", "--samples", "500", "--sample-bytes", "512",
           "--shards", "3")
    shards = sorted(n for n in os.listdir(d) if n.startswith("records_"))
    assert len(shards) == 3
    blob = b"".join(open(d / n, "rb").read() for n in shards)
    lab = np.fromfile(d / "labels.bin", dtype="<i4")
    want = {i: (blob[i * 512:(i + 1) * 512], int(lab[i])) for i in range(500)}
    kw = dict(batch_size=32, workers=2, shuffle=True, seed=4)
    with batchring.open_record_shards(str(d / "records_*.bin"), 512, labels=d / "labels.bin",
                                      **kw) as g:
        assert samples_of(g) == want
    with open(d / "all.bin", "wb") as f:
        f.write(blob)
    subprocess.run([CLI, "pack", str(d / "packed"), "--records", str(d / "all.bin"),
                    "--record-size", "512", "--labels", str(d / "labels.bin"),
                    "--shard-size", "64K"], check=True, capture_output=True)
    assert len([n for n in os.listdir(d / "packed") if n.endswith(".brp")]) > 1
    with batchring.open_packed(d / "packed", **kw) as g:
        assert samples_of(g) == want
    with pytest.raises(batchring.Error) as e:
        batchring.open_packed(d / "all.bin")
    assert e.value.name == "EBADMSG" and "all.bin" in str(e.value) and "magic" in str(e.value)


def test_tokens_and_packed_tokens_windows(plugin, tmp_path):
    """open_tokens over llm.c shards: each window of seq_len + 1 tokens of
    one shard, as int32 inputs[B][T] then targets[B][T]; open_packed_tokens
    over `batchring pack --tokens` of them gives the same batches."""
    d, T = tmp_path, 16
    mkdata(d, "--layout", "tokens", "--samples", "3000", "--shards", "2")
    shards = sorted(n for n in os.listdir(d) if n.startswith("tokens_"))
    toks = [np.fromfile(d / n, dtype="<u2", offset=1024).astype(np.int32) for n in shards]
    windows = [t[j * T:j * T + T + 1] for t in toks for j in range((len(t) - 1) // T)]
    kw = dict(batch_size=8, workers=2, shuffle=True, seed=2)

    def check(g):
        seen, batches = set(), []
        for b in g:
            x = b.numpy("int32", (2, b.count, T))
            assert b.offsets is None and b.labels is None
            for i, sid in enumerate(b.ids):
                w = windows[int(sid)]
                assert np.array_equal(x[0, i], w[:-1]) and np.array_equal(x[1, i], w[1:])
                seen.add(int(sid))
            batches.append((list(b.ids), bytes(b.data)))
        assert seen == set(range(len(windows)))
        return batches

    with batchring.open_tokens(str(d / "tokens_*.bin"), T, **kw) as g:
        a = check(g)
    subprocess.run([CLI, "pack", str(d / "packed"), "--tokens", str(d / "tokens_*.bin")],
                   check=True, capture_output=True)
    with batchring.open_packed_tokens(d / "packed", T, **kw) as g:
        assert check(g) == a
    with pytest.raises(batchring.Error) as e:
        batchring.open_tokens(str(d / "nothing_*.bin"), T)
    assert e.value.name == "ENOENT" and "nothing_" in str(e.value)


def test_rank_world_and_from_env(data, monkeypatch):
    """Two ranks of one world read disjoint halves that cover every sample;
    from_env=True takes RANK and WORLD_SIZE as a launcher sets them."""
    d, _, _ = data
    path = os.path.join(d, "records.bin")

    def ids(**kw):
        with batchring.open_records(path, REC, batch_size=50, shuffle=True, seed=8, **kw) as g:
            return [int(i) for b in g for i in b.ids]

    r0, r1 = ids(rank=0, world=2), ids(rank=1, world=2)
    assert not set(r0) & set(r1) and sorted(r0 + r1) == list(range(N))
    assert len(r0) == len(r1) == N // 2
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert ids(from_env=True) == r1
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(batchring.Error) as e:
        ids(from_env=True)
    assert e.value.name == "EINVAL" and "RANK" in str(e.value)
