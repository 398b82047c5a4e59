/* SPDX-License-Identifier: MIT */
/*
 * batchring for CPython: a generator over the public C API (batchring.h
 * only), whose batches are Python objects that own one hold on their slot.
 *
 * Lifetime rules, the point of this file:
 *  - A Batch owns its slot until release() or until it is collected. Its
 *    ids, labels and data are _View objects that implement the buffer
 *    protocol over the slot; every view counts in batch->exports for its
 *    whole life, and every array made from it (numpy arrays, torch
 *    tensors, memoryviews) keeps the view, and so the batch, alive. The
 *    view's life and not its buffer exports: numpy.ndarray(buffer=) gives
 *    the buffer back at once and keeps only the object, and a torch tensor
 *    holds the view from its DLPack capsule until torch frees the storage
 *    (dl_batch_delete, at exit too). release() with
 *    views alive only marks the batch: the slot goes back when the last
 *    view goes, never while a tensor still sees it.
 *  - Generators we open use opt.hold = H >= 2: br_next never gives a slot
 *    back by itself, and BR_EHELD (batchring.HoldLimit) is how a caller
 *    learns it holds too many. An attached ring has the hold its producer
 *    chose (br_stats.hold). `batchring serve` leaves it at 1 (br_next
 *    gives the previous batch back itself): there we allow one batch, and
 *    refuse (HoldLimit) a next() while the previous batch still has
 *    exports, instead of letting br_next recycle memory a tensor sees. A
 *    ring served with --hold H >= 2 is treated as one we opened with H.
 *  - close() invalidates the batches without exports at once and defers
 *    br_close until the last exported batch is gone, so no view ever
 *    outlives the mapping.
 *  - br_next runs without the GIL, in slices of SLICE_MS, checking for
 *    signals (Ctrl-C) between slices.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <batchring.h>

#define SLICE_MS 50

static PyObject *Error, *LoaderError, *WorkerError, *ProducerGone, *Timeout, *BadRing,
    *HoldLimit, *Stopped, *CudaError, *InvalidArgument, *NotFound;
static PyTypeObject *BatchType; /* set by _set_batch_type: batchring.Batch */

/* What turns a view into an array, looked up once instead of per batch
 * (a batch's arrays are the per-batch cost that Python adds over C):
 * numpy.frombuffer and the dtypes of ids, labels and offsets, set when
 * batchring is imported (_set_numpy); torch.frombuffer, torch.dtype and
 * the dtype names, set when batchring.torch is (_set_torch). */
static PyObject *np_frombuffer, *np_u8, *np_u64, *np_i32;
/* numpy.ndarray and numpy.dtype, and {dtype argument: (numpy dtype,
 * itemsize), or None where the dtype has fields or a subarray}: the
 * arguments Batch.numpy saw, so that a shaped array costs one numpy call
 * (see shaped_array). */
static PyObject *np_ndarray, *np_dtype_type, *np_dtype_cache;
#define NP_DTYPE_CACHE_MAX 64
static PyObject *torch_frombuffer, *torch_dtype_type, *torch_dtypes, *torch_i32;
/* torch.utils.dlpack.from_dlpack and {torch dtype: (DLPack type code, bits)}: a
 * shaped tensor made from a DLPack capsule costs about half of what
 * numpy.ndarray + torch.from_numpy did, and a third of frombuffer + view
 * (see shaped_tensor). */
static PyObject *torch_from_dlpack, *torch_dl_dtypes;
static PyObject *torch_size_type; /* torch.Size, a shape the fast paths read */
static PyObject *str_dtype_kw; /* ("dtype",): the keyword both frombuffers take */
static PyObject *str_reshape, *str_view;

/* Positional-or-keyword arguments of a METH_FASTCALL | METH_KEYWORDS
 * method, all optional: out[i] is left as the caller set it when absent.
 * PyArg_ParseTupleAndKeywords would build a tuple and a dict per call. */
static int args_parse(const char *fn, const char *const *names, Py_ssize_t n,
                      PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **out)
{
    if (nargs > n) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd arguments (%zd given)", fn, n,
                     nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        out[i] = args[i];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t j = 0;
        while (j < n && PyUnicode_CompareWithASCIIString(key, names[j]) != 0)
            j++;
        if (j == n) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fn, key);
            return -1;
        }
        if (j < nargs) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument %R", fn, key);
            return -1;
        }
        out[j] = args[nargs + k];
    }
    return 0;
}

typedef struct GenObject {
    PyObject_HEAD
    br_gen *g;
    br_dataset *ds;
    int closing;          /* close() called: no more next() */
    int own_hold;         /* opt.hold >= 2 (we release); 0: attached, limit 1 */
    uint32_t hold;        /* the limit (own_hold) */
    long long timeout_ms; /* the caller's, -1 forever */
    Py_ssize_t nexported; /* valid batches with exports > 0 */
    struct BatchObject *last; /* borrowed: the newest batch, when !own_hold */
    PyObject *keep;       /* a tuple kept alive for the C generator (ids) */
    int pinned;           /* br_pin registered the ring with CUDA */
    PyObject *pin_error;  /* why "cuda-if-available" left it unpinned, or NULL */
} GenObject;

typedef struct BatchObject {
    PyObject_HEAD
    GenObject *gen;       /* strong */
    br_batch b;
    int valid;            /* still held (not released, generator open) */
    int release_pending;  /* release() asked while exported */
    Py_ssize_t exports;
} BatchObject;

typedef struct {
    PyObject_HEAD
    BatchObject *batch; /* strong */
    const void *ptr;
    Py_ssize_t len;     /* bytes */
    Py_ssize_t itemsize;
    const char *format;
} ViewObject;

static PyTypeObject GenType, ViewType;

/* ---- errors ---------------------------------------------------------- */

static PyObject *raise_code(int rc, const char *msg)
{
    PyObject *cls = Error;
    switch (rc) {
    case BR_ELOADER: cls = LoaderError; break;
    case BR_EWORKER: cls = WorkerError; break;
    case BR_EPRODUCER: cls = ProducerGone; break;
    case BR_EBADRING:
    case BR_EVERSION: cls = BadRing; break;
    case BR_EHELD: cls = HoldLimit; break;
    case BR_ESTOPPED: cls = Stopped; break;
    case BR_ECUDA: cls = CudaError; break;
    case -ETIMEDOUT: cls = Timeout; break;
    case -EINVAL: cls = InvalidArgument; break;
    case -ENOENT: cls = NotFound; break;
    default: break;
    }
    const char *text = msg && msg[0] ? msg : br_strerror(rc);
    /* str(e) is the library's message; e.code and e.name say which code. */
    PyObject *e = PyObject_CallFunction(cls, "s", text);
    if (!e)
        return NULL;
    PyObject *code = PyLong_FromLong(rc), *name = PyUnicode_FromString(br_err_name(rc));
    int bad = !code || !name || PyObject_SetAttrString(e, "code", code) ||
              PyObject_SetAttrString(e, "name", name);
    /* The OSError ones (Timeout, NotFound) carry errno as the builtins do. */
    if (!bad && PyObject_IsInstance(e, PyExc_OSError) == 1) {
        PyObject *no = PyLong_FromLong(-rc);
        bad = !no || PyObject_SetAttrString(e, "errno", no);
        Py_XDECREF(no);
    }
    Py_XDECREF(code);
    Py_XDECREF(name);
    if (bad) {
        Py_DECREF(e);
        return NULL;
    }
    PyErr_SetObject(cls, e);
    Py_DECREF(e);
    return NULL;
}

/* ---- batches --------------------------------------------------------- */

static void gen_finish_close(GenObject *self)
{
    if (self->g) {
        br_gen *g = self->g;
        self->g = NULL;
        Py_BEGIN_ALLOW_THREADS
        br_close(g);
        Py_END_ALLOW_THREADS
    }
    if (self->ds) {
        br_dataset_close(self->ds);
        self->ds = NULL;
    }
    Py_CLEAR(self->keep);
}

/* Gives the slot back (when it is ours to give) and marks the batch
 * invalid. Called with exports == 0. */
static int batch_drop(BatchObject *self)
{
    int rc = 0;
    if (!self->valid)
        return 0;
    self->valid = 0;
    self->release_pending = 0;
    GenObject *gen = self->gen;
    if (gen->g && gen->own_hold && !gen->closing)
        rc = br_release_seq(gen->g, self->b.seq);
    return rc;
}

static void batch_exports_gone(BatchObject *self)
{
    GenObject *gen = self->gen;
    if (!self->valid)
        return;
    gen->nexported--;
    if (gen->closing) {
        self->valid = 0;
        if (gen->nexported == 0)
            gen_finish_close(gen);
    } else if (self->release_pending) {
        batch_drop(self);
    }
}

static void Batch_dealloc(BatchObject *self)
{
    if (self->valid && self->exports == 0)
        batch_drop(self);
    if (self->gen && self->gen->last == self)
        self->gen->last = NULL;
    Py_CLEAR(self->gen);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Its slot is still the caller's to read: held, and not closed under it
 * (a batch with views keeps a closing generator's mapping until they go;
 * one without has none to count on). */
static int batch_usable(const BatchObject *self)
{
    return self->valid && !self->release_pending && (!self->gen->closing || self->exports > 0);
}

static int batch_check(BatchObject *self)
{
    if (!batch_usable(self)) {
        PyErr_SetString(PyExc_ValueError,
                        "batch is released (or its generator closed): its slot may hold "
                        "another batch now");
        return -1;
    }
    return 0;
}

static PyObject *batch_view(BatchObject *self, const void *ptr, size_t len, size_t itemsize,
                            const char *format)
{
    if (batch_check(self))
        return NULL;
    ViewObject *v = PyObject_New(ViewObject, &ViewType);
    if (!v)
        return NULL;
    Py_INCREF(self);
    v->batch = self;
    if (self->exports++ == 0)
        self->gen->nexported++;
    v->ptr = ptr;
    v->len = (Py_ssize_t)len;
    v->itemsize = (Py_ssize_t)itemsize;
    v->format = format;
    return (PyObject *)v;
}

static PyObject *Batch_release(BatchObject *self, PyObject *unused)
{
    (void)unused;
    if (!self->valid)
        Py_RETURN_NONE;
    if (self->exports > 0) {
        self->release_pending = 1; /* done when the last view goes */
        Py_RETURN_NONE;
    }
    int rc = batch_drop(self);
    if (rc)
        return raise_code(rc, self->gen->g ? br_last_error(self->gen->g) : "");
    Py_RETURN_NONE;
}

static PyObject *Batch_enter(PyObject *self, PyObject *unused)
{
    (void)unused;
    Py_INCREF(self);
    return self;
}

static PyObject *Batch_exit(BatchObject *self, PyObject *args)
{
    (void)args;
    return Batch_release(self, NULL);
}

/* frombuffer(view, dtype=dtype), then .<how>(shape) unless shape is None:
 * the calls Batch.numpy and Batch.torch make, without a Python frame. */
static PyObject *array_of(PyObject *frombuffer, PyObject *view, PyObject *dtype, PyObject *how,
                          PyObject *shape)
{
    if (!view)
        return NULL;
    PyObject *args[2] = {view, dtype};
    PyObject *a = PyObject_Vectorcall(frombuffer, args, 1, str_dtype_kw);
    Py_DECREF(view);
    if (!a || !shape || shape == Py_None)
        return a;
    /* margs[0] is the spare slot PY_VECTORCALL_ARGUMENTS_OFFSET lets the
     * callee use (it binds the method there instead of allocating). */
    PyObject *margs[3] = {NULL, a, shape};
    PyObject *r =
        PyObject_VectorcallMethod(how, margs + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(a);
    return r;
}

static PyObject *Batch_data(BatchObject *self, void *c)
{
    (void)c;
    PyObject *v = batch_view(self, self->b.data, self->b.size, 1, "B");
    if (!v)
        return NULL;
    PyObject *m = PyMemoryView_FromObject(v);
    Py_DECREF(v);
    return m;
}

static PyObject *Batch_ids(BatchObject *self, void *c)
{
    (void)c;
    return array_of(np_frombuffer,
                    batch_view(self, self->b.ids, (size_t)self->b.count * 8, 8, "Q"), np_u64,
                    NULL, NULL);
}

/* An array of a part the batch may lack (labels, offsets): None then. */
static PyObject *optional_array(BatchObject *self, const void *ptr, size_t len, size_t itemsize,
                                const char *format, PyObject *frombuffer, PyObject *dtype)
{
    if (!ptr) {
        if (batch_check(self))
            return NULL;
        Py_RETURN_NONE;
    }
    return array_of(frombuffer, batch_view(self, ptr, len, itemsize, format), dtype, NULL,
                    NULL);
}

static PyObject *Batch_labels(BatchObject *self, void *c)
{
    (void)c;
    return optional_array(self, self->b.labels, (size_t)self->b.count * 4, 4, "i",
                          np_frombuffer, np_i32);
}

static PyObject *Batch_offsets(BatchObject *self, void *c)
{
    (void)c;
    return optional_array(self, self->b.offsets, ((size_t)self->b.count + 1) * 8, 8, "Q",
                          np_frombuffer, np_u64);
}

/* Most dimensions of a shape the fast paths take (numpy allows 64). */
#define SHAPE_MAX_DIMS 8

/* The dimensions of `shape`, a tuple, a torch.Size (a shape often comes
 * from x.shape; its items are its tuple's) or a list of ints with at
 * most one -1 (resolved here), if it covers `size` bytes of
 * `itemsize`-byte items exactly: their number, 1 to SHAPE_MAX_DIMS. 0 for
 * any other shape, without an exception: the caller then goes through
 * numpy's or torch's own reshape, and its errors. */
static Py_ssize_t shape_covering(PyObject *shape, size_t size, Py_ssize_t itemsize,
                                 int64_t *dims)
{
    if (!(PyTuple_CheckExact(shape) || PyList_CheckExact(shape) ||
          (torch_size_type && Py_IS_TYPE(shape, (PyTypeObject *)torch_size_type))) ||
        itemsize <= 0 || size % (size_t)itemsize)
        return 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(shape), free_dim = -1, known = 1;
    if (n < 1 || n > SHAPE_MAX_DIMS)
        return 0;
    PyObject *const *items = PySequence_Fast_ITEMS(shape);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyLong_CheckExact(items[i]))
            return 0;
        long long d = PyLong_AsLongLong(items[i]);
        if (d == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        if (d == -1 && free_dim < 0)
            free_dim = i;
        else if (d <= 0 || (unsigned long long)d > (size_t)PY_SSIZE_T_MAX / (size_t)known)
            return 0;
        else
            known *= (Py_ssize_t)d;
        dims[i] = d;
    }
    Py_ssize_t elems = (Py_ssize_t)(size / (size_t)itemsize);
    if (free_dim < 0 ? known != elems : elems % known)
        return 0;
    if (free_dim >= 0)
        dims[free_dim] = elems / known;
    return n;
}

/* (numpy dtype, itemsize) for Batch.numpy's dtype argument, or None for a
 * dtype the fast path leaves to numpy (fields, subarrays, objects, which
 * numpy refuses to make from a buffer, and metadata, which a dtype equal
 * to one in the cache would lose), or NULL without an exception for one
 * numpy refuses (its own path raises numpy's error). A new reference. */
static PyObject *np_dtype_entry(PyObject *dtype)
{
    PyObject *entry;
    if (PyObject_TypeCheck(dtype, (PyTypeObject *)np_dtype_type)) {
        PyObject *meta = PyObject_GetAttrString(dtype, "metadata");
        int plain = meta == Py_None;
        Py_XDECREF(meta);
        if (!plain) {
            PyErr_Clear();
            return Py_NewRef(Py_None);
        }
    }
    entry = PyDict_GetItemWithError(np_dtype_cache, dtype);
    if (entry || PyErr_Occurred()) {
        PyErr_Clear(); /* an unhashable argument: numpy's own path */
        return Py_XNewRef(entry);
    }
    PyObject *dt = PyObject_CallOneArg(np_dtype_type, dtype);
    PyObject *fields = dt ? PyObject_GetAttrString(dt, "fields") : NULL;
    PyObject *sub = fields ? PyObject_GetAttrString(dt, "subdtype") : NULL;
    PyObject *size = sub ? PyObject_GetAttrString(dt, "itemsize") : NULL;
    PyObject *has_objects = size ? PyObject_GetAttrString(dt, "hasobject") : NULL;
    int objects = has_objects ? PyObject_IsTrue(has_objects) : -1;
    Py_XDECREF(has_objects);
    if (objects >= 0)
        entry = fields == Py_None && sub == Py_None && !objects ? PyTuple_Pack(2, dt, size)
                                                                : Py_NewRef(Py_None);
    Py_XDECREF(dt);
    Py_XDECREF(fields);
    Py_XDECREF(sub);
    Py_XDECREF(size);
    if (!entry) {
        PyErr_Clear();
        return NULL;
    }
    if (PyDict_GET_SIZE(np_dtype_cache) < NP_DTYPE_CACHE_MAX &&
        PyDict_SetItem(np_dtype_cache, dtype, entry) < 0)
        PyErr_Clear();
    return entry;
}

/* numpy.ndarray(shape, dtype, view): Batch.numpy(dtype, shape) in one numpy
 * call, where frombuffer(...).reshape(shape) takes two that cost several
 * times as much. Only for a shape that covers the data (shape_covering)
 * and a plain dtype: for any other, NULL without an exception, and the
 * caller takes numpy's own path and its errors. The array's base is the
 * view: it holds the batch. */
static PyObject *shaped_array(BatchObject *self, PyObject *dtype, PyObject *shape)
{
    PyObject *entry = np_dtype_entry(dtype), *arr = NULL;
    int64_t dims[SHAPE_MAX_DIMS];
    Py_ssize_t n = 0;
    if (entry && entry != Py_None) {
        Py_ssize_t itemsize = PyLong_AsSsize_t(PyTuple_GET_ITEM(entry, 1));
        if (itemsize == -1)
            PyErr_Clear();
        else
            n = shape_covering(shape, self->b.size, itemsize, dims);
    }
    PyObject *tuple = n ? PyTuple_New(n) : NULL;
    for (Py_ssize_t i = 0; tuple && i < n; i++) {
        PyObject *d = PyLong_FromLongLong(dims[i]);
        if (!d)
            Py_CLEAR(tuple);
        else
            PyTuple_SET_ITEM(tuple, i, d);
    }
    if (tuple) {
        PyObject *view = batch_view(self, self->b.data, self->b.size, 1, "B");
        if (view) {
            PyObject *args[3] = {tuple, PyTuple_GET_ITEM(entry, 0), view};
            arr = PyObject_Vectorcall(np_ndarray, args, 3, NULL);
            Py_DECREF(view);
        }
        Py_DECREF(tuple);
    }
    Py_XDECREF(entry);
    return arr;
}

static PyObject *Batch_numpy(BatchObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    static const char *const names[] = {"dtype", "shape"};
    PyObject *opt[2] = {NULL, Py_None};
    if (args_parse("numpy", names, 2, args, nargs, kwnames, opt))
        return NULL;
    if (!opt[0])
        opt[0] = np_u8;
    if (opt[1] != Py_None) {
        PyObject *a = shaped_array(self, opt[0], opt[1]);
        if (a || PyErr_Occurred())
            return a;
    }
    return array_of(np_frombuffer, batch_view(self, self->b.data, self->b.size, 1, "B"), opt[0],
                    str_reshape, opt[1]);
}

/* batchring.torch imported (it registers torch's frombuffer): 0, or -1. */
static int torch_ready(void)
{
    if (torch_frombuffer)
        return 0;
    PyObject *m = PyImport_ImportModule("batchring.torch");
    Py_XDECREF(m);
    if (m && !torch_frombuffer)
        PyErr_SetString(PyExc_ImportError, "batchring.torch did not register torch");
    return torch_frombuffer ? 0 : -1;
}

/* A torch.dtype, or its name ("uint8", "float32", ...) looked up. Borrowed. */
static PyObject *torch_dtype_of(PyObject *dtype)
{
    if (Py_IS_TYPE(dtype, (PyTypeObject *)torch_dtype_type))
        return dtype;
    PyObject *t = PyUnicode_Check(dtype) ? PyDict_GetItemWithError(torch_dtypes, dtype) : NULL;
    if (!t && !PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "dtype=%R: a torch.dtype, or one of the names %R", dtype,
                     torch_dtypes);
    return t;
}

/*
 * DLPack, the tensor exchange ABI torch.utils.dlpack.from_dlpack takes (the
 * "dltensor" capsule of DLPack 0.x, which every torch since 1.2 accepts).
 * The layout is DLPack's own; only the fields batchring fills are named.
 */
/* DLPack's codes for a signed integer and for the CPU; the other types'
 * codes come with torch's dtypes (batchring/torch.py, _DLPACK). */
enum { DL_INT = 0, DL_CPU = 1 };

struct dl_tensor {
    void *data;
    struct {
        int32_t device_type, device_id;
    } device;
    int32_t ndim;
    struct {
        uint8_t code, bits;
        uint16_t lanes;
    } dtype;
    int64_t *shape, *strides; /* strides in elements */
    uint64_t byte_offset;
};

struct dl_managed {
    struct dl_tensor tensor;
    void *manager_ctx;                       /* our view: it holds the slot */
    void (*deleter)(struct dl_managed *self); /* called by the consumer */
};

/* One allocation per tensor: the managed tensor and its shape and strides. */
struct dl_batch_tensor {
    struct dl_managed m;
    int64_t shape[SHAPE_MAX_DIMS], strides[SHAPE_MAX_DIMS];
};

#if PY_VERSION_HEX >= 0x030D0000
#define interpreter_finalizing() Py_IsFinalizing()
#else
#define interpreter_finalizing() _Py_IsFinalizing()
#endif

/* The main thread (threading.main_thread), set at import: the one that
 * shuts the interpreter down. */
static unsigned long main_thread_ident;

/* This thread may still take the GIL while the interpreter shuts down: the
 * main thread, which finalizes (torch frees a tensor without the GIL,
 * even there). Any other thread would be stopped for good by taking it. */
static int finalizing_here(void)
{
    return PyThread_get_thread_ident() == main_thread_ident && PyGILState_GetThisThreadState();
}

/* torch calls this when the tensor's storage dies, in whatever thread let
 * go of it last (a pin-memory thread, say): the view goes with the GIL
 * held, and with it the batch's export. At exit, a tensor still alive (a
 * module's global) is freed by the main thread while the modules are
 * cleared: the view goes then too, so the generator closes as it would
 * (an attached consumer gives its batches back instead of seeming to have
 * crashed). Another thread's tensor keeps its view then. */
static void dl_batch_delete(struct dl_managed *m)
{
    if (!m)
        return;
    if (m->manager_ctx && (!interpreter_finalizing() || finalizing_here())) {
        PyGILState_STATE gil = PyGILState_Ensure();
        Py_DECREF((PyObject *)m->manager_ctx);
        PyGILState_Release(gil);
    }
    PyMem_RawFree(m);
}

/* A capsule collected before from_dlpack took it (an error between the
 * two) still owns the tensor; one that was taken is renamed by torch. */
static void dl_capsule_free(PyObject *capsule)
{
    if (PyCapsule_IsValid(capsule, "dltensor"))
        dl_batch_delete(PyCapsule_GetPointer(capsule, "dltensor"));
}

/*
 * torch.utils.dlpack.from_dlpack of a capsule that describes the slot's
 * data with `shape`: the tensor Batch.torch(dtype, shape) makes, whose
 * storage keeps a view of the batch (and so the batch held) until torch
 * frees it. Only for a dtype DLPack names and a shape that covers the data
 * (shape_covering): for any other, NULL without an exception, and the
 * caller takes torch's own path (frombuffer + view) and its errors.
 */
static PyObject *dl_tensor(BatchObject *self, const void *ptr, size_t size, uint8_t code,
                           uint8_t bits, const int64_t *dims, Py_ssize_t n);

static PyObject *shaped_tensor(BatchObject *self, PyObject *dtype, PyObject *shape)
{
    PyObject *entry = PyDict_GetItemWithError(torch_dl_dtypes, dtype); /* (code, bits) */
    if (!entry)
        return NULL;
    long code = PyLong_AsLong(PyTuple_GET_ITEM(entry, 0));
    long bits = PyLong_AsLong(PyTuple_GET_ITEM(entry, 1));
    int64_t dims[SHAPE_MAX_DIMS];
    Py_ssize_t n;
    if (PyErr_Occurred() || bits <= 0 || bits % 8) {
        PyErr_Clear();
        return NULL;
    }
    if (!(n = shape_covering(shape, self->b.size, bits / 8, dims)))
        return NULL;
    return dl_tensor(self, self->b.data, self->b.size, (uint8_t)code, (uint8_t)bits, dims, n);
}

/* torch.utils.dlpack.from_dlpack of a capsule that describes `size` bytes
 * at ptr (part of the batch) as a C-contiguous tensor of dims[n] items of
 * (code, bits). */
static PyObject *dl_tensor(BatchObject *self, const void *ptr, size_t size, uint8_t code,
                           uint8_t bits, const int64_t *dims, Py_ssize_t n)
{
    struct dl_batch_tensor *t = PyMem_RawCalloc(1, sizeof *t);
    if (!t)
        return PyErr_NoMemory();
    PyObject *view = batch_view(self, ptr, size, 1, "B");
    if (!view) {
        PyMem_RawFree(t);
        return NULL;
    }
    int64_t stride = 1;
    for (Py_ssize_t i = n; i-- > 0;) {
        t->shape[i] = dims[i];
        t->strides[i] = stride;
        stride *= dims[i];
    }
    t->m.tensor.data = (void *)ptr;
    t->m.tensor.device.device_type = DL_CPU;
    t->m.tensor.ndim = (int32_t)n;
    t->m.tensor.dtype.code = code;
    t->m.tensor.dtype.bits = bits;
    t->m.tensor.dtype.lanes = 1;
    t->m.tensor.shape = t->shape;
    t->m.tensor.strides = t->strides;
    t->m.manager_ctx = view; /* the view's reference moves here */
    t->m.deleter = dl_batch_delete;
    PyObject *capsule = PyCapsule_New(&t->m, "dltensor", dl_capsule_free);
    if (!capsule) {
        dl_batch_delete(&t->m);
        return NULL;
    }
    PyObject *tensor = PyObject_Vectorcall(torch_from_dlpack, &capsule, 1, NULL);
    Py_DECREF(capsule);
    return tensor ? tensor : (PyErr_Occurred() ? NULL : PyErr_NoMemory());
}

static PyObject *Batch_torch(BatchObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    static const char *const names[] = {"dtype", "shape"};
    PyObject *opt[2] = {NULL, Py_None};
    if (args_parse("torch", names, 2, args, nargs, kwnames, opt) || torch_ready())
        return NULL;
    PyObject *dtype = opt[0] ? torch_dtype_of(opt[0]) : PyDict_GetItemString(torch_dtypes, "uint8");
    if (!dtype)
        return NULL;
    if (opt[1] != Py_None) {
        PyObject *t = shaped_tensor(self, dtype, opt[1]);
        if (t || PyErr_Occurred())
            return t;
    }
    return array_of(torch_frombuffer, batch_view(self, self->b.data, self->b.size, 1, "B"),
                    dtype, str_view, opt[1]);
}

static PyObject *Batch_torch_labels(BatchObject *self, PyObject *unused)
{
    (void)unused;
    if (torch_ready())
        return NULL;
    if (!self->b.labels)
        return optional_array(self, NULL, 0, 4, "i", torch_frombuffer, torch_i32);
    const int64_t count = self->b.count;
    return dl_tensor(self, self->b.labels, (size_t)count * 4, DL_INT, 32, &count, 1);
}

static PyObject *Batch_u64(BatchObject *self, void *c)
{
    return PyLong_FromUnsignedLongLong(*(uint64_t *)((char *)&self->b + (size_t)c));
}

static PyObject *Batch_count(BatchObject *self, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLong(self->b.count);
}

static PyObject *Batch_size(BatchObject *self, void *c)
{
    (void)c;
    return PyLong_FromSize_t(self->b.size);
}

static PyObject *Batch_held(BatchObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(batch_usable(self));
}

static PyMethodDef Batch_methods[] = {
    {"release", (PyCFunction)Batch_release, METH_NOARGS,
     "Gives the slot back now, or when the last view of it goes. Idempotent."},
    {"numpy", (PyCFunction)(void (*)(void))Batch_numpy, METH_FASTCALL | METH_KEYWORDS,
     "numpy(dtype=\"uint8\", shape=None): the data as a read-only numpy array (no copy)."},
    {"torch", (PyCFunction)(void (*)(void))Batch_torch, METH_FASTCALL | METH_KEYWORDS,
     "torch(dtype=\"uint8\", shape=None): the data as a torch tensor (no copy; "
     "DLPack, or torch.frombuffer for shapes it cannot say). Read-only memory: writing to "
     "it is an error of the caller."},
    {"torch_labels", (PyCFunction)Batch_torch_labels, METH_NOARGS,
     "The labels as an int32 torch tensor (no copy), or None."},
    {"__enter__", Batch_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Batch_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Batch_getset[] = {
    {"seq", (getter)Batch_u64, NULL, "global batch number", (void *)offsetof(br_batch, seq)},
    {"epoch", (getter)Batch_u64, NULL, "epoch, from 0", (void *)offsetof(br_batch, epoch)},
    {"batch", (getter)Batch_u64, NULL, "batch within the epoch", (void *)offsetof(br_batch, batch)},
    {"count", (getter)Batch_count, NULL, "samples in the batch", NULL},
    {"size", (getter)Batch_size, NULL, "bytes of data", NULL},
    {"held", (getter)Batch_held, NULL, "True until released", NULL},
    {"data", (getter)Batch_data, NULL, "the loader's bytes: a read-only memoryview of the slot",
     NULL},
    {"ids", (getter)Batch_ids, NULL, "the sample ids: a numpy uint64 view", NULL},
    {"labels", (getter)Batch_labels, NULL,
     "the labels: a numpy int32 view, or None when opened without", NULL},
    {"offsets", (getter)Batch_offsets, NULL,
     "count + 1 sample offsets into data (numpy uint64), or None", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject BaseBatchType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "batchring._batchring._Batch",
    .tp_basicsize = sizeof(BatchObject),
    .tp_dealloc = (destructor)Batch_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "One batch, held in its slot (made by a generator).",
    .tp_methods = Batch_methods,
    .tp_getset = Batch_getset,
};

/* ---- views (the buffer protocol) ------------------------------------- */

static int View_getbuffer(ViewObject *self, Py_buffer *view, int flags)
{
    BatchObject *b = self->batch;
    if (batch_check(b))
        return -1;
    if ((flags & PyBUF_WRITABLE) == PyBUF_WRITABLE) {
        PyErr_SetString(PyExc_BufferError, "a batch is read-only");
        return -1;
    }
    view->obj = (PyObject *)self;
    Py_INCREF(self);
    view->buf = (void *)self->ptr;
    view->len = self->len;
    view->readonly = 1;
    view->itemsize = self->itemsize;
    view->format = (flags & PyBUF_FORMAT) ? (char *)self->format : NULL;
    view->ndim = 1;
    view->shape = NULL;
    if ((flags & PyBUF_ND) == PyBUF_ND) {
        /* shape[0] lives in internal: one Py_ssize_t per export */
        view->internal = PyMem_Malloc(sizeof(Py_ssize_t));
        if (!view->internal) {
            Py_DECREF(self);
            view->obj = NULL;
            PyErr_NoMemory();
            return -1;
        }
        *(Py_ssize_t *)view->internal = self->len / self->itemsize;
        view->shape = (Py_ssize_t *)view->internal;
    } else {
        view->internal = NULL;
    }
    view->strides = ((flags & PyBUF_STRIDES) == PyBUF_STRIDES) ? &view->itemsize : NULL;
    view->suboffsets = NULL;
    return 0;
}

static void View_releasebuffer(ViewObject *self, Py_buffer *view)
{
    (void)self;
    PyMem_Free(view->internal);
}

static void View_dealloc(ViewObject *self)
{
    BatchObject *b = self->batch;
    if (--b->exports == 0)
        batch_exports_gone(b);
    Py_CLEAR(self->batch);
    PyObject_Free(self);
}

static PyBufferProcs View_as_buffer = {(getbufferproc)View_getbuffer,
                                       (releasebufferproc)View_releasebuffer};

static PyTypeObject ViewType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "batchring._batchring._View",
    .tp_basicsize = sizeof(ViewObject),
    .tp_dealloc = (destructor)View_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Read-only bytes of a held batch (buffer protocol).",
    .tp_as_buffer = &View_as_buffer,
};

/* ---- generators ------------------------------------------------------ */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* pin=: None/False, True (pin if CUDA can), "none", "cuda",
 * "cuda-if-available", or an enum br_pin_mode value (br_pin checks it). */
static int pin_arg(PyObject *o, int *mode)
{
    if (!o || o == Py_None || o == Py_False) {
        *mode = BR_PIN_NONE;
        return 0;
    }
    if (o == Py_True) {
        *mode = BR_PIN_CUDA_IF_AVAILABLE;
        return 0;
    }
    if (PyUnicode_Check(o)) {
        static const struct {
            const char *name;
            int mode;
        } names[] = {{"none", BR_PIN_NONE},
                     {"cuda", BR_PIN_CUDA},
                     {"cuda-if-available", BR_PIN_CUDA_IF_AVAILABLE}};
        const char *s = PyUnicode_AsUTF8(o);
        if (!s)
            return -1;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!strcmp(s, names[i].name)) {
                *mode = names[i].mode;
                return 0;
            }
        PyErr_Format(PyExc_ValueError,
                     "pin=%R: expected True, False, None, \"none\", \"cuda\" or "
                     "\"cuda-if-available\"", o);
        return -1;
    }
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "pin=%R: expected a bool, a mode name or a PIN_* constant",
                     o);
        return -1;
    }
    *mode = (int)v;
    return 0;
}

/* Pins an open generator's ring. "cuda-if-available" is asked of br_pin
 * as "cuda", so that its fallback is known here (pinned False, pin_error
 * the library's reason) instead of read out of a message. Returns 0, or
 * -1 with the exception set; the generator stays usable either way. */
static int gen_pin(GenObject *self, int mode)
{
    int rc;
    if (mode == BR_PIN_NONE)
        return 0;
    Py_BEGIN_ALLOW_THREADS /* dlopen and cudaHostRegister of the whole ring */
    rc = br_pin(self->g, mode == BR_PIN_CUDA_IF_AVAILABLE ? BR_PIN_CUDA : mode);
    Py_END_ALLOW_THREADS
    if (rc == BR_ECUDA && mode == BR_PIN_CUDA_IF_AVAILABLE) {
        PyObject *why = PyUnicode_FromString(br_last_error(self->g));
        if (!why)
            return -1;
        Py_XSETREF(self->pin_error, why);
        return 0;
    }
    if (rc) {
        raise_code(rc, br_last_error(self->g));
        return -1;
    }
    self->pinned = 1;
    Py_CLEAR(self->pin_error);
    return 0;
}

/* HoldLimit with the library's message in Python's terms: it names
 * br_release and br_next, which a Python caller does not call. */
static PyObject *raise_held(const char *lib, uint32_t hold)
{
    static const char how[] = "b.release(), `with b:`, or drop the batch and every array, "
                              "tensor and memoryview of it";
    char msg[1024 + 256]; /* the library's message and ours around it */
    const char *call = strstr(lib, "(br_release)");
    if (!strncmp(lib, "the caller holds", 16))
        snprintf(msg, sizeof msg,
                 "you hold %u batches, as many as hold=%u allows: release one (%s) before "
                 "next(); a larger hold is hold= when opening, serve --hold for a served ring",
                 hold, hold, how);
    else if (call)
        snprintf(msg, sizeof msg, "%.*s(%s)%s", (int)(call - lib), lib, how,
                 call + strlen("(br_release)"));
    else
        snprintf(msg, sizeof msg, "%s", lib);
    return raise_code(BR_EHELD, msg);
}

static PyObject *Gen_next(GenObject *self)
{
    if (!self->g || self->closing) {
        return raise_code(BR_ESTOPPED, "the generator is closed");
    }
    if (!self->own_hold && self->last && self->last->valid) {
        BatchObject *prev = self->last;
        if (prev->exports > 0) {
            char msg[320];
            snprintf(msg, sizeof msg,
                     "batch %llu still has views (numpy arrays, tensors, memoryviews) and "
                     "this attached ring lets its consumer hold one batch (serve --hold H "
                     "lets it hold H): drop them (or copy) before the next batch",
                     (unsigned long long)prev->b.seq);
            return raise_code(BR_EHELD, msg);
        }
        prev->valid = 0; /* br_next gives its slot back */
        self->last = NULL;
    }
    br_batch b;
    int rc;
    long long deadline = self->timeout_ms < 0 ? -1 : now_ms() + self->timeout_ms;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        rc = br_next(self->g, &b);
        Py_END_ALLOW_THREADS
        if (rc != -ETIMEDOUT)
            break;
        if (PyErr_CheckSignals())
            return NULL;
        if (deadline >= 0 && now_ms() >= deadline)
            return raise_code(rc, "no batch within the timeout: the generator stays usable, "
                                  "the next call waits for the same batch");
    }
    if (rc == BR_EOF) {
        PyErr_SetNone(PyExc_StopIteration);
        return NULL;
    }
    if (rc == BR_EHELD && self->own_hold)
        return raise_held(br_last_error(self->g), self->hold);
    if (rc)
        return raise_code(rc, br_last_error(self->g));
    BatchObject *o = (BatchObject *)BatchType->tp_alloc(BatchType, 0);
    if (!o) {
        if (self->own_hold)
            br_release_seq(self->g, b.seq);
        return NULL;
    }
    Py_INCREF(self);
    o->gen = self;
    o->b = b;
    o->valid = 1;
    if (!self->own_hold)
        self->last = o;
    return (PyObject *)o;
}

static PyObject *Gen_close(GenObject *self, PyObject *unused)
{
    (void)unused;
    if (self->closing)
        Py_RETURN_NONE;
    self->closing = 1;
    if (self->nexported == 0)
        gen_finish_close(self);
    Py_RETURN_NONE;
}

static PyObject *Gen_enter(PyObject *self, PyObject *unused)
{
    (void)unused;
    Py_INCREF(self);
    return self;
}

static PyObject *Gen_exit(GenObject *self, PyObject *args)
{
    (void)args;
    return Gen_close(self, NULL);
}

static PyObject *Gen_stats(GenObject *self, PyObject *unused)
{
    (void)unused;
    br_stats s;
    if (!self->g)
        return raise_code(BR_ESTOPPED, "the generator is closed");
    int rc = br_stats_get(self->g, &s);
    if (rc)
        return raise_code(rc, br_last_error(NULL));
    return Py_BuildValue("{sKsKsKsKsKsIsIsI}", "batches", (unsigned long long)s.batches,
                         "bytes", (unsigned long long)s.bytes, "stall_ns",
                         (unsigned long long)s.stall_ns, "elapsed_ns",
                         (unsigned long long)s.elapsed_ns, "loaded",
                         (unsigned long long)s.loaded, "workers", s.workers, "slots", s.slots,
                         "restarts", s.restarts);
}

static PyObject *Gen_checkpoint(GenObject *self, PyObject *unused)
{
    (void)unused;
    uint64_t next;
    if (!self->g)
        return raise_code(BR_ESTOPPED, "the generator is closed");
    int rc = br_checkpoint_get(self->g, &next);
    if (rc)
        return raise_code(rc, br_last_error(NULL));
    return PyLong_FromUnsignedLongLong(next);
}

static PyObject *Gen_get_closed(GenObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(self->closing);
}

static PyObject *Gen_get_hold(GenObject *self, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLong(self->hold);
}

static PyObject *Gen_pin(GenObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"mode", NULL};
    PyObject *o = Py_True;
    int mode;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &o) || pin_arg(o, &mode))
        return NULL;
    if (!self->g || self->closing)
        return raise_code(BR_ESTOPPED, "the generator is closed");
    if (gen_pin(self, mode))
        return NULL;
    return PyBool_FromLong(self->pinned);
}

static PyObject *Gen_get_pinned(GenObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(self->pinned);
}

static PyObject *Gen_get_pin_error(GenObject *self, void *c)
{
    (void)c;
    PyObject *r = self->pin_error ? self->pin_error : Py_None;
    Py_INCREF(r);
    return r;
}

static void Gen_dealloc(GenObject *self)
{
    self->closing = 1;
    gen_finish_close(self);
    Py_CLEAR(self->pin_error);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Gen_iter(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

static PyMethodDef Gen_methods[] = {
    {"close", (PyCFunction)Gen_close, METH_NOARGS,
     "Stops the workers and unmaps the ring (once the last batch with views is gone). "
     "Idempotent."},
    {"stats", (PyCFunction)Gen_stats, METH_NOARGS, "br_stats as a dict."},
    {"checkpoint", (PyCFunction)Gen_checkpoint, METH_NOARGS,
     "The seq to resume at (start_seq)."},
    {"pin", (PyCFunction)(void (*)(void))Gen_pin, METH_VARARGS | METH_KEYWORDS,
     "pin(mode=True): page-locks the ring for CUDA (br_pin), so that a tensor's "
     ".to('cuda', non_blocking=True) is a DMA from the slot. mode: True (if CUDA "
     "can; else pin_error says why), \"cuda\" (or CudaError). Returns pinned."},
    {"__enter__", Gen_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Gen_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Gen_getset[] = {
    {"closed", (getter)Gen_get_closed, NULL, "close() was called", NULL},
    {"hold", (getter)Gen_get_hold, NULL, "batches the caller may hold at once", NULL},
    {"pinned", (getter)Gen_get_pinned, NULL, "the ring is registered with CUDA", NULL},
    {"pin_error", (getter)Gen_get_pin_error, NULL,
     "why pin=True left the ring unpinned (the library's message), or None", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject GenType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "batchring.Generator",
    .tp_basicsize = sizeof(GenObject),
    .tp_dealloc = (destructor)Gen_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An iterator of batches; a context manager.",
    .tp_iter = Gen_iter,
    .tp_iternext = (iternextfunc)Gen_next,
    .tp_methods = Gen_methods,
    .tp_getset = Gen_getset,
};

static int timeout_arg(PyObject *o, long long *ms)
{
    if (!o || o == Py_None) {
        *ms = -1;
        return 0;
    }
    double s = PyFloat_AsDouble(o);
    if (s == -1.0 && PyErr_Occurred())
        return -1;
    *ms = s < 0 ? -1 : (long long)(s * 1000.0);
    return 0;
}

static GenObject *gen_new(void)
{
    GenObject *self = PyObject_New(GenObject, &GenType);
    if (!self)
        return NULL;
    self->g = NULL;
    self->ds = NULL;
    self->closing = 0;
    self->own_hold = 0;
    self->hold = 1;
    self->timeout_ms = -1;
    self->nexported = 0;
    self->last = NULL;
    self->keep = NULL;
    self->pinned = 0;
    self->pin_error = NULL;
    return self;
}

static PyObject *mod_attach(PyObject *m, PyObject *args, PyObject *kw)
{
    (void)m;
    static char *kwlist[] = {"name", "timeout", "pin", NULL};
    const char *name;
    PyObject *timeout = Py_None, *pin = Py_None;
    int pin_mode;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|OO", kwlist, &name, &timeout, &pin) ||
        pin_arg(pin, &pin_mode))
        return NULL;
    GenObject *self = gen_new();
    if (!self)
        return NULL;
    if (timeout_arg(timeout, &self->timeout_ms)) {
        Py_DECREF(self);
        return NULL;
    }
    br_gen *g = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = br_attach(&g, name, SLICE_MS);
    Py_END_ALLOW_THREADS
    if (rc) {
        Py_DECREF(self);
        return raise_code(rc, br_last_error(NULL));
    }
    self->g = g;
    br_stats st;
    /* Served with --hold H >= 2: every batch is ours to give back, as in
     * a generator we opened with hold H. */
    if (br_stats_get(g, &st) == 0 && st.hold >= 2) {
        self->own_hold = 1;
        self->hold = st.hold;
    }
    if (gen_pin(self, pin_mode)) {
        Py_DECREF(self); /* closes the ring; the exception stays set */
        return NULL;
    }
    return (PyObject *)self;
}

/* PyArg "O&" converters: a Python int in range, else OverflowError (a
 * negative or too large value) or TypeError (not an int). */
static int uint_arg(PyObject *o, unsigned long long max, unsigned long long *v)
{
    PyObject *i = PyNumber_Index(o);
    if (!i)
        return 0;
    *v = PyLong_AsUnsignedLongLong(i);
    int bad = *v == (unsigned long long)-1 && PyErr_Occurred();
    Py_DECREF(i);
    if (bad || *v > max) {
        PyErr_Clear();
        PyErr_Format(PyExc_OverflowError, "%R is out of range: expected an int from 0 to %llu", o,
                     max);
        return 0;
    }
    return 1;
}

static int u32_arg(PyObject *o, void *out)
{
    unsigned long long v;
    if (!uint_arg(o, UINT32_MAX, &v))
        return 0;
    *(unsigned int *)out = (unsigned int)v;
    return 1;
}

static int u64_arg(PyObject *o, void *out)
{
    return uint_arg(o, UINT64_MAX, out);
}

/* _open_dataset(layout, a, b, labels, record_size, direct, <br_options
 * fields>, ids, token_bytes): batchring._open's one call, in the order of
 * kwlist. */
static PyObject *mod_open_dataset(PyObject *m, PyObject *args, PyObject *kw)
{
    (void)m;
    static char *kwlist[] = {"layout", "a", "b", "labels", "record_size", "direct",
                             "batch_size", "workers", "slots", "slot_bytes", "shuffle",
                             "seed", "epochs", "drop_last", "rank", "world", "from_env",
                             "hold", "pin", "timeout", "start_seq", "max_restarts", "cpus",
                             "ids", "token_bytes", NULL};
    const char *layout, *a, *b = NULL, *labels = NULL, *cpus = NULL;
    Py_ssize_t record_size = 0;
    int direct = 0, shuffle = 0, drop_last = 0, from_env = 0;
    unsigned int batch_size = 32, workers = 1, slots = BR_SLOTS_AUTO, rank = 0, world = 1,
                 hold = 2, max_restarts = 3, token_bytes = 0;
    unsigned long long slot_bytes = 0, seed = 0, epochs = 1, start_seq = 0;
    PyObject *timeout = Py_None, *ids = Py_None, *pin = Py_None;
    int pin_mode;
    /* O& with range-checked converters: "I" and "K" would wrap -1 or 2**32
     * + 2 into a valid-looking value. */
    if (!PyArg_ParseTupleAndKeywords(
            args, kw, "ss|zznpO&O&O&O&pO&O&pO&O&pO&OOO&O&zOO&", kwlist, &layout, &a, &b,
            &labels, &record_size, &direct, u32_arg, &batch_size, u32_arg, &workers, u32_arg,
            &slots, u64_arg, &slot_bytes, &shuffle, u64_arg, &seed, u64_arg, &epochs, &drop_last,
            u32_arg, &rank, u32_arg, &world, &from_env, u32_arg, &hold, &pin, &timeout, u64_arg,
            &start_seq, u32_arg, &max_restarts, &cpus, &ids, u32_arg, &token_bytes) ||
        pin_arg(pin, &pin_mode))
        return NULL;
    if (hold < 2) {
        PyErr_SetString(PyExc_ValueError,
                        "hold must be at least 2 from Python: the batch in your loop variable "
                        "is still held when the next one is taken");
        return NULL;
    }
    GenObject *self = gen_new();
    if (!self)
        return NULL;
    if (timeout_arg(timeout, &self->timeout_ms)) {
        Py_DECREF(self);
        return NULL;
    }
    br_options opt;
    br_options_init(&opt);
    opt.batch_size = batch_size;
    opt.workers = workers;
    opt.slots = slots;
    opt.slot_bytes = (size_t)slot_bytes;
    opt.shuffle = shuffle != 0;
    opt.seed = seed;
    opt.epochs = epochs;
    opt.drop_last = drop_last != 0;
    opt.rank = rank;
    opt.world = world;
    opt.hold = hold;
    /* Pinned below, after br_open (where opt.pin would do it too): one
     * path for every generator, with a fallback that is known. */
    opt.start_seq = start_seq;
    opt.max_restarts = max_restarts;
    opt.cpus = cpus;
    opt.timeout_ms = SLICE_MS;
    int rc = 0;
    if (from_env) {
        rc = br_shard_from_env(&opt);
        if (rc && rc != -ENOENT) {
            Py_DECREF(self);
            return raise_code(rc, br_last_error(NULL));
        }
    }
    unsigned flags = direct ? BR_DATASET_DIRECT : 0;
    /* record_size is the record size, or the window (seq_len) of tokens;
     * b the index (indexed) or the index suffix (indexed_shards). */
    static const char *const layouts[] = {"records", "files", "indexed", "tokens",
                                          "record_shards", "indexed_shards", "files_glob",
                                          "packed", "packed_tokens"};
    size_t which = 0, n = sizeof layouts / sizeof layouts[0];
    while (which < n && strcmp(layout, layouts[which]))
        which++;
    if (which == n) {
        Py_DECREF(self);
        PyErr_Format(PyExc_ValueError, "unknown layout '%s'", layout);
        return NULL;
    }
    const size_t size = (size_t)record_size;
    br_dataset *ds = NULL;
    Py_BEGIN_ALLOW_THREADS
    switch (which) {
    case 0: rc = br_dataset_open_records(&ds, a, size, labels, flags); break;
    case 1: rc = br_dataset_open_files(&ds, a, labels, flags); break;
    case 2: rc = br_dataset_open_indexed(&ds, a, b, labels, flags); break;
    case 3: rc = br_dataset_open_tokens(&ds, a, size, token_bytes, flags); break;
    case 4: rc = br_dataset_open_record_shards(&ds, a, size, labels, flags); break;
    case 5: rc = br_dataset_open_indexed_shards(&ds, a, b, labels, flags); break;
    case 6: rc = br_dataset_open_files_glob(&ds, a, labels, flags); break;
    case 7: rc = br_dataset_open_packed(&ds, a, flags); break;
    default: rc = br_dataset_open_packed_tokens(&ds, a, size, flags); break;
    }
    Py_END_ALLOW_THREADS
    if (rc) {
        Py_DECREF(self);
        return raise_code(rc, br_last_error(NULL));
    }
    self->ds = ds;
    /* ids: any C-contiguous buffer of uint64 (a numpy uint64 array), kept
     * alive by the generator for its life. */
    const uint64_t *idp = NULL;
    size_t n_ids = 0;
    if (ids != Py_None) {
        Py_buffer view;
        if (PyObject_GetBuffer(ids, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)) {
            Py_DECREF(self);
            return NULL;
        }
        int ok = view.itemsize == 8 && view.format &&
                 (!strcmp(view.format, "Q") || !strcmp(view.format, "<Q") ||
                  !strcmp(view.format, "=Q") || !strcmp(view.format, "L") ||
                  !strcmp(view.format, "<L") || !strcmp(view.format, "=L"));
        idp = view.buf;
        n_ids = (size_t)(view.len / 8);
        PyBuffer_Release(&view);
        if (!ok) {
            Py_DECREF(self);
            PyErr_SetString(PyExc_TypeError, "ids must be a contiguous uint64 buffer "
                                             "(numpy.asarray(ids, dtype=numpy.uint64))");
            return NULL;
        }
        Py_INCREF(ids);
        self->keep = ids;
    }
    br_gen *g = NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = br_open_dataset(&g, ds, idp, n_ids, &opt);
    Py_END_ALLOW_THREADS
    if (rc) {
        PyObject *ret = raise_code(rc, br_last_error(NULL));
        Py_DECREF(self);
        return ret;
    }
    self->g = g;
    self->own_hold = 1;
    self->hold = hold;
    if (gen_pin(self, pin_mode)) {
        Py_DECREF(self); /* stops the workers; the exception stays set */
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *mod_set_batch_type(PyObject *m, PyObject *t)
{
    (void)m;
    if (!PyType_Check(t) || !PyType_IsSubtype((PyTypeObject *)t, &BaseBatchType)) {
        PyErr_SetString(PyExc_TypeError, "a subclass of _Batch");
        return NULL;
    }
    Py_INCREF(t);
    Py_XDECREF(BatchType);
    BatchType = (PyTypeObject *)t;
    Py_RETURN_NONE;
}

/* Stores values[i] in the static *slots[i], each owning a reference. */
static void keep_all(PyObject **const *slots, PyObject *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        Py_INCREF(values[i]);
        Py_XSETREF(*slots[i], values[i]);
    }
}

/* _set_numpy(numpy.frombuffer, the numpy.dtype of uint8, uint64 and int32,
 *            numpy.ndarray, numpy.dtype) */
static PyObject *mod_set_numpy(PyObject *m, PyObject *args)
{
    (void)m;
    PyObject *fb, *u8, *u64, *i32, *ndarray, *dtype_type, *cache;
    if (!PyArg_ParseTuple(args, "OOOOOO", &fb, &u8, &u64, &i32, &ndarray, &dtype_type) ||
        !(cache = PyDict_New()))
        return NULL;
    PyObject **const slots[] = {&np_frombuffer, &np_u8,         &np_u64,        &np_i32,
                                &np_ndarray,    &np_dtype_type, &np_dtype_cache};
    PyObject *const values[] = {fb, u8, u64, i32, ndarray, dtype_type, cache};
    keep_all(slots, values, 7);
    Py_DECREF(cache);
    Py_RETURN_NONE;
}

/* _set_torch(torch.frombuffer, torch.dtype, {name: torch dtype},
 *            torch.utils.dlpack.from_dlpack, {torch dtype: (DLPack code, bits)},
 *            torch.Size) */
static PyObject *mod_set_torch(PyObject *m, PyObject *args)
{
    (void)m;
    PyObject *fb, *type, *names, *i32, *from_dlpack, *dl_dtypes, *size_type;
    if (!PyArg_ParseTuple(args, "OO!O!OO!O!", &fb, &PyType_Type, &type, &PyDict_Type, &names,
                          &from_dlpack, &PyDict_Type, &dl_dtypes, &PyType_Type, &size_type))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)size_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "torch.Size must be a tuple type");
        return NULL;
    }
    if (!(i32 = PyDict_GetItemString(names, "int32")) ||
        !PyDict_GetItemString(names, "uint8")) {
        PyErr_SetString(PyExc_ValueError, "the dtype names need int32 and uint8");
        return NULL;
    }
    PyObject **const slots[] = {&torch_frombuffer, &torch_dtype_type, &torch_dtypes,
                                &torch_i32,        &torch_from_dlpack, &torch_dl_dtypes,
                                &torch_size_type};
    PyObject *const values[] = {fb, type, names, i32, from_dlpack, dl_dtypes, size_type};
    keep_all(slots, values, 7);
    Py_RETURN_NONE;
}

static PyObject *mod_strerror(PyObject *m, PyObject *arg)
{
    (void)m;
    int code = (int)PyLong_AsLong(arg);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(br_strerror(code));
}

/* _raise_held(msg): HoldLimit with the library's code, for the Python
 * side's own checks (batchring.torch). */
static PyObject *mod_raise_held(PyObject *m, PyObject *arg)
{
    (void)m;
    const char *msg = PyUnicode_AsUTF8(arg);
    return msg ? raise_code(BR_EHELD, msg) : NULL;
}

static PyMethodDef mod_methods[] = {
    {"attach", (PyCFunction)(void (*)(void))mod_attach, METH_VARARGS | METH_KEYWORDS,
     "attach(name, timeout=None, pin=None): the consumer of a served ring."},
    {"_open_dataset", (PyCFunction)(void (*)(void))mod_open_dataset,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_set_batch_type", mod_set_batch_type, METH_O, NULL},
    {"_set_numpy", mod_set_numpy, METH_VARARGS, NULL},
    {"_set_torch", mod_set_torch, METH_VARARGS, NULL},
    {"strerror", mod_strerror, METH_O, "br_strerror(code)"},
    {"_raise_held", mod_raise_held, METH_O, NULL},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "batchring._batchring",
                                    "batchring's C core (see batchring/__init__.py).", -1,
                                    mod_methods, NULL, NULL, NULL, NULL};

static int add_exc(PyObject *m, PyObject **slot, const char *name, PyObject *base)
{
    char full[96];
    snprintf(full, sizeof full, "batchring.%s", name);
    *slot = PyErr_NewException(full, base, NULL);
    if (!*slot)
        return -1;
    Py_INCREF(*slot);
    return PyModule_AddObject(m, name, *slot);
}

PyMODINIT_FUNC PyInit__batchring(void)
{
    if (PyType_Ready(&BaseBatchType) < 0 || PyType_Ready(&ViewType) < 0 ||
        PyType_Ready(&GenType) < 0)
        return NULL;
    if (!(str_dtype_kw = Py_BuildValue("(s)", "dtype")) ||
        !(str_reshape = PyUnicode_InternFromString("reshape")) ||
        !(str_view = PyUnicode_InternFromString("view")))
        return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (!m)
        return NULL;
    {
        PyObject *threading = PyImport_ImportModule("threading");
        PyObject *main = threading ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
        PyObject *ident = main ? PyObject_GetAttrString(main, "ident") : NULL;
        main_thread_ident = ident ? PyLong_AsUnsignedLong(ident) : (unsigned long)-1;
        if (PyErr_Occurred()) { /* then only this, the importing, thread */
            PyErr_Clear();
            main_thread_ident = PyThread_get_thread_ident();
        }
        Py_XDECREF(threading);
        Py_XDECREF(main);
        Py_XDECREF(ident);
    }
    BatchType = &BaseBatchType;
    Py_INCREF(BatchType);
    /* Timeout, InvalidArgument and NotFound are also the builtin error a
     * Python caller catches for them: TimeoutError, ValueError (as
     * Python's own checks of the same arguments raise), FileNotFoundError. */
    PyObject *timeout_bases = NULL, *invalid_bases = NULL, *missing_bases = NULL;
    if (add_exc(m, &Error, "Error", NULL) || add_exc(m, &LoaderError, "LoaderError", Error) ||
        add_exc(m, &WorkerError, "WorkerError", Error) ||
        add_exc(m, &ProducerGone, "ProducerGone", Error) ||
        add_exc(m, &BadRing, "BadRing", Error) || add_exc(m, &HoldLimit, "HoldLimit", Error) ||
        add_exc(m, &Stopped, "Stopped", Error) || add_exc(m, &CudaError, "CudaError", Error) ||
        !(timeout_bases = PyTuple_Pack(2, Error, PyExc_TimeoutError)) ||
        add_exc(m, &Timeout, "Timeout", timeout_bases) ||
        !(invalid_bases = PyTuple_Pack(2, Error, PyExc_ValueError)) ||
        add_exc(m, &InvalidArgument, "InvalidArgument", invalid_bases) ||
        !(missing_bases = PyTuple_Pack(2, Error, PyExc_FileNotFoundError)) ||
        add_exc(m, &NotFound, "NotFound", missing_bases)) {
        Py_XDECREF(timeout_bases);
        Py_XDECREF(invalid_bases);
        Py_XDECREF(missing_bases);
        Py_DECREF(m);
        return NULL;
    }
    Py_DECREF(timeout_bases);
    Py_DECREF(invalid_bases);
    Py_DECREF(missing_bases);
    Py_INCREF(&BaseBatchType);
    PyModule_AddObject(m, "_Batch", (PyObject *)&BaseBatchType);
    Py_INCREF(&GenType);
    PyModule_AddObject(m, "Generator", (PyObject *)&GenType);
    PyModule_AddIntConstant(m, "SLICE_MS", SLICE_MS);
    PyModule_AddIntConstant(m, "PIN_NONE", BR_PIN_NONE);
    PyModule_AddIntConstant(m, "PIN_CUDA", BR_PIN_CUDA);
    PyModule_AddIntConstant(m, "PIN_CUDA_IF_AVAILABLE", BR_PIN_CUDA_IF_AVAILABLE);
    PyModule_AddStringConstant(m, "version", br_version_string());
    return m;
}
