# SPDX-License-Identifier: MIT
"""batchring's Python package against real rings: every byte against the
file `batchring mkdata` wrote, holds, errors, Ctrl-C during a wait.
Environment (set by CTest): PYTHONPATH=<build>/python, BR_CLI=<batchring>,
BR_TEST_PLUGIN=<test_named_plugin.so>."""
import json
import os
import signal
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import batchring

CLI = os.environ.get("BR_CLI")
PLUGIN = os.environ.get("BR_TEST_PLUGIN")
N, REC = 1000, 4096


@pytest.fixture(scope="module")
def data():
    if not CLI:
        pytest.skip("BR_CLI not set (run through ctest)")
    d = tempfile.mkdtemp(prefix="br-py-")
    subprocess.run([CLI, "mkdata", "--layout", "records", "--dir", d, "--samples", str(N),
                    "--sample-bytes", str(REC), "-q"], check=True, stdout=subprocess.DEVNULL)
    raw = np.fromfile(os.path.join(d, "records.bin"), dtype=np.uint8).reshape(N, REC)
    lab = np.fromfile(os.path.join(d, "labels.bin"), dtype=np.int32)
    return d, raw, lab


def shm():
    """This process's rings (other tests may run beside us)."""
    return {n for n in os.listdir("/dev/shm") if n.startswith("br-py-%d-" % os.getpid())}


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


def test_ctrl_c_during_a_wait(plugin):
    name = "/br-py-%d-c" % os.getpid()
    s = Served(name, "samples=64,bytes=256,block=2")
    try:
        script = ("import batchring\n"
                  "g = batchring.attach(%r)\n"
                  "try:\n"
                  "    for b in g: pass\n"
                  "except KeyboardInterrupt:\n"
                  "    print('interrupted', flush=True)\n" % name)
        c = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        # Poll the ring until the consumer waits for batch 2 (no sleeps).
        for _ in range(200000):
            st = s.stat()
            if st.get("consumer_waiting_seq") == 2:
                break
        else:
            pytest.fail("the consumer never waited")
        c.send_signal(signal.SIGINT)
        out, _ = c.communicate(timeout=10)
        assert out.strip() == "interrupted"
        assert c.returncode == 0
    finally:
        s.stop()
    assert shm() == set()


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


def test_no_leaked_processes_or_rings():
    """Runs last (file order): every generator above was closed or
    collected, so no worker or serve process of ours is left."""
    import gc
    gc.collect()
    kids = set()
    for tid in os.listdir("/proc/self/task"):
        with open("/proc/self/task/%s/children" % tid) as f:
            kids.update(f.read().split())
    assert kids == set()
    assert shm() == set()
