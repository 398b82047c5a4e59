# SPDX-License-Identifier: MIT
"""batchring for PyTorch: batches as tensors that are views of the ring.

    from batchring.torch import RingIterable
    for x, y in RingIterable(attach="/train", shape=(64, 4096)):
        ...                                   # x: uint8 [64, 4096], y: int32 [64]

RingIterable is an IterableDataset: DataLoader(ds, batch_size=None,
num_workers=0) passes its tensors through unchanged (batchring's own
workers do the loading). The tensors keep their batch held until they are
gone.
"""
import warnings

import numpy as _np
import torch as _torch

import batchring as _br

_DTYPES = {"uint8": _torch.uint8, "int8": _torch.int8, "int16": _torch.int16,
           "int32": _torch.int32, "int64": _torch.int64, "float16": _torch.float16,
           "float32": _torch.float32, "float64": _torch.float64, "bfloat16": _torch.bfloat16}


# The slot is read-only memory, and torch.frombuffer and torch.from_numpy
# warn (once per process) about any non-writable buffer or array; the
# tensor must not be written to: batchring's views say so. Called from C,
# the warnings are attributed to the caller's code, so the filter cannot
# name this module: it is process-wide, for those two messages.
warnings.filterwarnings("ignore", message="The given (buffer|NumPy array) is not writable",
                        category=UserWarning)

# Batch.torch and Batch.torch_labels (in C) call these. A shaped tensor is
# made through a numpy array where numpy has the dtype (not bfloat16):
# torch.from_numpy of it costs about half of torch.frombuffer + view.
_NUMPY = {t: (_np.dtype(n), _np.dtype(n).itemsize) for n, t in _DTYPES.items()
          if hasattr(_np, n)}
_br._batchring._set_torch(_torch.frombuffer, _torch.dtype, _DTYPES, _torch.from_numpy,
                          _np.ndarray, _NUMPY)


class RingIterable(_torch.utils.data.IterableDataset):
    """(data, labels) tensors from a ring: attach="/name" (a served ring) or
    records=(path, record_size) with open_records' keywords. shape: the
    data tensor's shape per batch (e.g. (-1, 4096)); dtype: its dtype.
    pin=True page-locks the ring for CUDA (Generator.pin) so that
    .to("cuda", non_blocking=True) copies from the slot itself."""

    def __init__(self, attach=None, records=None, labels=None, shape=None, dtype="uint8",
                 timeout=None, pin=None, **kw):
        super().__init__()
        if (attach is None) == (records is None):
            raise ValueError("give one of attach='/name' or records=(path, record_size)")
        self.attach, self.records, self.labels = attach, records, labels
        self.shape, self.dtype, self.timeout, self.pin, self.kw = shape, dtype, timeout, pin, kw
        self._gen = None

    def _open(self):
        if self.attach is not None:
            return _br.attach(self.attach, timeout=self.timeout, pin=self.pin)
        path, size = self.records
        return _br.open_records(path, size, labels=self.labels, timeout=self.timeout,
                                pin=self.pin, **self.kw)

    def __iter__(self):
        gen = self._open()
        self._gen = gen
        try:
            for b in gen:
                x = b.torch(self.dtype, self.shape)
                y = b.torch_labels()
                del b  # the tensors hold the batch now
                yield x, y
        finally:
            gen.close()
            self._gen = None

    def close(self):
        if self._gen is not None:
            self._gen.close()
