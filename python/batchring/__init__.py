# SPDX-License-Identifier: MIT
"""batchring for Python: iterate a shared-memory ring of batches as
zero-copy numpy arrays and torch tensors.

    import batchring
    with batchring.attach("/train") as ring:          # a `batchring serve` ring
        for b in ring:
            x = b.torch("uint8", (b.count, -1))       # a view of the slot, no copy
            y = b.torch_labels()

A batch holds its slot until release() (or `with b:`), or until it and
every array/tensor/memoryview of it are gone; then the slot is loaded again.
Errors are batchring.Error subclasses carrying the library's message
(str(e)), e.code and e.name.
"""
import numpy as _np

from . import _batchring
from ._batchring import (Error, LoaderError, WorkerError, ProducerGone, Timeout, BadRing,
                         HoldLimit, Stopped, CudaError, InvalidArgument, NotFound,
                         Generator, attach, strerror,
                         PIN_NONE, PIN_CUDA, PIN_CUDA_IF_AVAILABLE)

__version__ = _batchring.version
__all__ = ["attach", "open_records", "open_files", "open_indexed", "open_tokens",
           "open_record_shards", "open_indexed_shards", "open_files_glob", "open_packed",
           "open_packed_tokens", "Batch", "Generator",
           "Error", "LoaderError", "WorkerError", "ProducerGone", "Timeout", "BadRing",
           "HoldLimit", "Stopped", "CudaError", "InvalidArgument", "NotFound"]


class Batch(_batchring._Batch):
    """One batch, held in its ring slot. Every view keeps it held.

    .data (memoryview), .ids, .labels, .offsets (numpy views),
    .numpy(dtype, shape) and .torch(dtype, shape), .torch_labels(): no
    copy; made in C, since they are the per-batch cost of a Python loop."""
    __slots__ = ()

    def __repr__(self):
        return "<batchring.Batch seq=%d epoch=%d batch=%d count=%d size=%d%s>" % (
            self.seq, self.epoch, self.batch, self.count, self.size,
            "" if self.held else " released")


_batchring._set_numpy(_np.frombuffer, _np.dtype(_np.uint8), _np.dtype(_np.uint64),
                      _np.dtype(_np.int32), _np.ndarray, _np.dtype)
_batchring._set_batch_type(Batch)


# The keywords every open_* takes, and their defaults (br_options).
_KEYWORDS = dict(batch_size=32, workers=1, shuffle=False, seed=0, epochs=1, drop_last=False,
                 rank=0, world=1, from_env=False, hold=2, pin=None, timeout=None, slots=None,
                 slot_bytes=0, start_seq=0, max_restarts=3, direct=False, cpus=None, ids=None)


def _open(fn, layout, a, b, labels, record_size, token_bytes, kw):
    unknown = sorted(set(kw) - set(_KEYWORDS))
    if unknown:
        raise TypeError("%s() got unexpected keyword argument%s %s" % (
            fn, "s" if len(unknown) > 1 else "", ", ".join(map(repr, unknown))))
    o = dict(_KEYWORDS, **kw)
    ids = o["ids"]
    return _batchring._open_dataset(
        layout, str(a), None if b is None else str(b),
        None if labels is None else str(labels), int(record_size), bool(o["direct"]),
        o["batch_size"], o["workers"], 0xFFFFFFFF if o["slots"] is None else o["slots"],
        o["slot_bytes"], bool(o["shuffle"]), o["seed"], o["epochs"], bool(o["drop_last"]),
        o["rank"], o["world"], bool(o["from_env"]), o["hold"], o["pin"], o["timeout"],
        o["start_seq"], o["max_restarts"], o["cpus"],
        None if ids is None else _np.ascontiguousarray(ids, dtype=_np.uint64), token_bytes)


def open_records(path, record_size, labels=None, **kw):
    """A generator over a records file (sample i at i x record_size), loaded
    by `workers` C worker processes. Keywords: batch_size=32, workers=1,
    shuffle=False, seed=0, epochs=1 (0: forever), drop_last, rank/world or
    from_env=True, hold=2 (batches you may hold at once, >= 2), pin
    (True: page-lock the ring for CUDA if it can, see Generator.pin;
    "cuda": or raise CudaError), timeout (seconds per batch, None: forever), slots,
    slot_bytes, start_seq, max_restarts, direct, cpus, and ids (the samples,
    in this order, instead of all of them: a sequence of uint64)."""
    return _open("open_records", "records", path, None, labels, record_size, 0, kw)


def open_files(list_path, labels=None, **kw):
    """A generator over a list of files, one sample per file (see open_records)."""
    return _open("open_files", "files", list_path, None, labels, 0, 0, kw)


def open_indexed(data_path, index_path, labels=None, **kw):
    """A generator over variable-size samples of a data file and its index."""
    return _open("open_indexed", "indexed", data_path, index_path, labels, 0, 0, kw)


def open_tokens(pattern, seq_len, token_bytes=0, **kw):
    """Token shards for language models: pattern is a glob (sorted by name)
    or "@LIST"; token_bytes 0 reads llm.c .bin shards (uint16, checked
    header), 2 or 4 raw little-endian tokens. Sample i is a window of
    seq_len + 1 tokens; a batch of B windows is int32 inputs[B][seq_len]
    then targets[B][seq_len] (b.torch("int32", (2, b.count, seq_len))).
    Keywords as open_records (direct excepted)."""
    return _open("open_tokens", "tokens", pattern, None, None, seq_len, token_bytes, kw)


def open_record_shards(pattern, record_size, labels=None, **kw):
    """The records layout over shards (a glob, sorted by name, or "@LIST"):
    sample ids run through the shards in order. Keywords as open_records
    (direct excepted)."""
    return _open("open_record_shards", "record_shards", pattern, None, labels, record_size, 0,
                 kw)


def open_indexed_shards(pattern, index_suffix=None, labels=None, **kw):
    """The indexed layout over shards, each indexed by the file of its name
    plus index_suffix (None: ".idx"). Keywords as open_records (direct
    excepted)."""
    return _open("open_indexed_shards", "indexed_shards", pattern, index_suffix, labels, 0, 0,
                 kw)


def open_files_glob(pattern, labels=None, **kw):
    """One sample per file, the files a glob (sorted by name) or "@LIST".
    Keywords as open_records (direct excepted)."""
    return _open("open_files_glob", "files_glob", pattern, None, labels, 0, 0, kw)


def open_packed(path, **kw):
    """A packed dataset (`batchring pack`): its directory, a glob of its
    shards, or its one shard; record size, labels and index come from the
    checked headers. Keywords as open_records (direct excepted)."""
    return _open("open_packed", "packed", path, None, None, 0, 0, kw)


def open_packed_tokens(path, seq_len, **kw):
    """A packed dataset of tokens (`batchring pack --tokens`) as windows of
    seq_len + 1 tokens, batches as open_tokens'. Keywords as open_records
    (direct excepted)."""
    return _open("open_packed_tokens", "packed_tokens", path, None, None, seq_len, 0, kw)
