# SPDX-License-Identifier: MIT
"""What the Python tests share (conftest.py has the fixtures): the
environment CTest sets, PYTHONPATH=<build>/python, BR_CLI=<batchring>,
BR_TEST_PLUGIN=<test_named_plugin.so>, BR_CUDA_STUB=<libcudart_stub.so>;
this process's rings and children; rings served by `batchring serve`."""
import json
import os
import select
import signal
import subprocess
import time

import pytest


CLI = os.environ.get("BR_CLI")
PLUGIN = os.environ.get("BR_TEST_PLUGIN")
CUDA_STUB = os.environ.get("BR_CUDA_STUB")
N, REC = 1000, 4096
# Bound on waiting for another process's event (not a sleep: the waits
# below return as soon as it happens); BR_TEST_TIME_SCALE as for the C tests.
WAIT_S = 30 * int(os.environ.get("BR_TEST_TIME_SCALE", "1") or 1)


def shm():
    """This process's rings (other tests may run beside us)."""
    return {n for n in os.listdir("/dev/shm") if n.startswith("br-py-%d-" % os.getpid())}


def children():
    kids = set()
    for tid in os.listdir("/proc/self/task"):
        with open("/proc/self/task/%s/children" % tid) as f:
            kids.update(f.read().split())
    return kids


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
        self.p.wait(timeout=WAIT_S)     # its status: the run may have stopped on an error
        assert not os.path.exists("/dev/shm" + self.name)

