# SPDX-License-Identifier: MIT
"""The Python tests' fixtures: the records of `batchring mkdata`, the
check that a test leaves no process or /dev/shm entry of ours, and the
plugin that `batchring serve --plugin` loads."""
import gc
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from brtest import CLI, PLUGIN, N, REC, shm, children


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



@pytest.fixture(autouse=True)
def no_leaks():
    """Every test leaves no child process (workers, supervisors, serve) and
    no /dev/shm entry of ours: its generators were closed or collected."""
    assert shm() == set()
    yield
    gc.collect()
    assert children() == set()
    assert shm() == set()


@pytest.fixture
def plugin():
    if not (CLI and PLUGIN):
        pytest.skip("BR_CLI/BR_TEST_PLUGIN not set (run through ctest)")

