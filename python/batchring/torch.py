# SPDX-License-Identifier: MIT
"""batchring for PyTorch: batches as tensors that are views of the ring.

    from batchring.torch import RingIterable
    # batchring serve --name /train --hold 2 ...
    for x, y in RingIterable(attach="/train", shape=(-1, 4096)):
        ...                                   # x: uint8 [B, 4096], y: int32 [B]

RingIterable is an IterableDataset: DataLoader(ds, batch_size=None,
num_workers=0) passes its tensors through unchanged (batchring's own
workers do the loading). The tensors keep their batch held until they are
gone, so the batch before the one being taken is still held: a served
ring must let its consumer hold 2 batches (serve --hold 2 or more), and
RingIterable says so before the first batch otherwise.
"""
import warnings

import torch as _torch
import torch.utils.dlpack as _dlpack

import batchring as _br

_DTYPES = {"uint8": _torch.uint8, "int8": _torch.int8, "int16": _torch.int16,
           "int32": _torch.int32, "int64": _torch.int64, "float16": _torch.float16,
           "float32": _torch.float32, "float64": _torch.float64, "bfloat16": _torch.bfloat16}


# The slot is read-only memory, and torch.frombuffer (Batch.torch's path
# for shapes DLPack cannot say, and torch_labels) warns once per process
# about any non-writable buffer; the tensor must not be written to:
# batchring's views say so. Called from C, the warning is attributed to the
# caller's code, so the filter cannot name this module: it is process-wide,
# for that one message.
warnings.filterwarnings("ignore", message="The given buffer is not writable",
                        category=UserWarning)

# Batch.torch and Batch.torch_labels (in C) call these. A shaped tensor is
# made from a DLPack capsule that describes the slot (torch's from_dlpack
# takes it without a copy): about half the cost of numpy.ndarray +
# torch.from_numpy, a third of torch.frombuffer + view.
# DLPack's type codes: 0 signed, 1 unsigned, 2 float, 4 bfloat.
_DLPACK = {_torch.uint8: (1, 8), _torch.int8: (0, 8), _torch.int16: (0, 16),
           _torch.int32: (0, 32), _torch.int64: (0, 64), _torch.float16: (2, 16),
           _torch.float32: (2, 32), _torch.float64: (2, 64), _torch.bfloat16: (4, 16)}
# from_dlpack first asks its argument for __dlpack__, which a capsule does
# not have: an AttributeError made and dropped per batch (~0.15 us). The
# capsule goes straight to the function it then calls, where torch has it.
_FROM_CAPSULE = getattr(_dlpack, "_from_dlpack", None) or _dlpack.from_dlpack
_br._batchring._set_torch(_torch.frombuffer, _torch.dtype, _DTYPES,
                          _FROM_CAPSULE, _DLPACK, _torch.Size)


class RingIterable(_torch.utils.data.IterableDataset):
    """(data, labels) tensors from a ring: attach="/name" (a served ring) or
    records=(path, record_size) with open_records' keywords. shape: the
    data tensor's shape per batch (e.g. (-1, 4096)); dtype: its dtype.
    pin=True page-locks the ring for CUDA (Generator.pin) so that
    .to("cuda", non_blocking=True) copies from the slot itself. A served
    ring needs serve --hold 2 or more: the tensors of the batch before are
    alive while the next is taken."""

    def __init__(self, attach=None, records=None, labels=None, shape=None, dtype="uint8",
                 timeout=None, pin=None, **kw):
        super().__init__()
        if (attach is None) == (records is None):
            raise ValueError("give one of attach='/name' or records=(path, record_size)")
        if attach is not None and (labels is not None or kw):
            # The producer chose them: a served ring takes no options.
            raise TypeError("RingIterable(attach=...) takes shape, dtype, timeout and pin only, "
                            "not %s" % ", ".join(sorted(kw) + (["labels"] if labels else [])))
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
            if gen.hold < 2:
                _br._batchring._raise_held(
                    "ring %s lets its consumer hold 1 batch, and the tensors RingIterable gives "
                    "are alive while it takes the next batch: serve it with --hold 2 (or more)"
                    % self.attach)
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
