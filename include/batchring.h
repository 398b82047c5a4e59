/* SPDX-License-Identifier: MIT */
/*
 * batchring: a loader, run in persistent worker processes, writes each batch
 * straight into a slot of a shared-memory ring; the trainer's generator hands
 * out a pointer to the next ready slot and recycles it on the next call.
 *
 * This header is the reference. Every function that can fail returns 0 or a
 * negative error code: -errno values (-EINVAL, -ENOMEM, -ETIMEDOUT, ...) or
 * one of the BR_E* codes below, which sit in a reserved range
 * [BR_ERRNO_FIRST, BR_ERRNO_LAST] far from any errno. A failing call also
 * leaves a human message, read with br_last_error().
 *
 * Threads: a br_gen is not thread-safe; use it from one thread at a time.
 * The exceptions are br_stats_get() and br_worker_stats_get(), which only
 * read counters and may run in a monitoring thread while another calls
 * br_next (not while one calls br_close). Different generators are
 * independent. br_strerror(), br_err_name() and br_version() may be called
 * from any thread.
 *
 * Handles: a br_gen * is a checked handle, not a pointer to memory, so a
 * call on a closed generator returns BR_ESTOPPED instead of touching freed
 * memory, and br_close() may be called twice.
 *
 * Processes: br_open() forks a supervisor process from the calling thread,
 * and the supervisor forks the workers. They die with that thread
 * (PR_SET_PDEATHSIG), so open the generator from a thread that outlives it
 * (normally the main thread). A loader runs in a forked child: it sees the
 * trainer's memory as it was at br_open and must not rely on other threads
 * of the trainer. Workers start with default signal handlers, an empty
 * signal mask and SIGINT ignored (Ctrl-C is the trainer's to handle).
 */
#ifndef BATCHRING_H
#define BATCHRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batchring/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(BR_BUILDING) && defined(__GNUC__)
#define BR_API __attribute__((visibility("default")))
#else
#define BR_API
#endif

/*
 * Our own error codes: name, value, description. One list generates the
 * enum, br_strerror() and br_err_name().
 */
#define BR_ERRNO_MAP(XX)                                                       \
    XX(EOF, -30001, "end of data: the last epoch has been delivered")          \
    XX(ELOADER, -30002, "the loader failed")                                   \
    XX(EWORKER, -30003, "a worker process died too often")                     \
    XX(ESTOPPED, -30004, "the generator is stopped")                           \
    XX(EBADRING, -30005, "the shared-memory ring is malformed")                \
    XX(EPRODUCER, -30006, "the producer of the ring is gone")                  \
    XX(EVERSION, -30007, "the ring has an unsupported layout version")

enum br_errno {
#define BR_ERRNO_ENUM_(name, value, text) BR_##name = (value),
    BR_ERRNO_MAP(BR_ERRNO_ENUM_)
#undef BR_ERRNO_ENUM_
    BR_ERRNO_FIRST = -30099, /* lowest value of the reserved range */
    BR_ERRNO_LAST = -30001   /* highest value of the reserved range */
};

/* Passing this as br_options.slots asks for the automatic depth: 2 slots
 * per worker (2 for inline loading), and for small batches as many more as
 * fit in about 4 MiB of ring, at most 128 (br_stats.slots tells). */
#define BR_SLOTS_AUTO UINT32_MAX

/* br_options.max_restarts that is never used up: every worker death is
 * survived (a loader that dies on one batch every time then loops; for
 * endless named rings, `batchring serve --max-restarts unlimited`). */
#define BR_MAX_RESTARTS_UNLIMITED UINT32_MAX

/*
 * Guard mode, for debugging a loader that writes past job->cap: with
 * BR_GUARD=1 in the environment, br_open (and so br_open_dataset and
 * batchring serve, whose --guard sets it) lays the ring out with a
 * PROT_NONE page after every slot's data. A write past the slot then
 * kills the worker with SIGSEGV, reported as that worker's death at the
 * batch it was loading (BR_EWORKER once max_restarts is used up), instead
 * of silently corrupting another batch. The slot's writable bytes are
 * job->cap rounded up to the page size: a write past the rounded end
 * faults at once; one between job->cap and the rounded end is found
 * when the loader returns (the tail is filled with a pattern before the
 * loader runs and checked after it), and fails that batch with
 * BR_ELOADER naming the offset. job->out stays page-aligned. Costs one
 * page per slot and the pattern check per batch. BR_GUARD unset, empty
 * or 0: off; any other value than 1 makes br_open fail with -EINVAL.
 * With workers = 0 the loader runs in the calling process, which a
 * write past the slot kills.
 */

/* Upper bounds checked by br_open(). */
#define BR_MAX_WORKERS 1024u
#define BR_MAX_SLOTS 65536u
#define BR_MAX_BATCH_SIZE (1u << 24)
#define BR_ERR_CAP 512u /* bytes of a loader's error message, with the NUL */

/*
 * A worker's file reader: io_uring when the kernel allows it, pread
 * otherwise (or when BR_IO=pread is set in the environment), with the same
 * results; reads of registered files that the page cache holds are copied
 * from a mapping (br_io_register_file). Each worker process has its own
 * (created after the fork); with workers = 0 the trainer has one. Loaders
 * reach it as job->io.
 */
typedef struct br_io br_io;

/* Which path a reader uses, as reported in br_worker_stats.io_backend. */
enum br_io_backend { BR_IO_NONE = 0, BR_IO_URING = 1, BR_IO_PREAD = 2 };

/*
 * One job for a loader: fill the batch of `count` samples `ids` into `out`.
 * The loader writes at most `cap` bytes to `out` and sets `size` (0 on
 * entry) to the number written. `out` is the ring slot itself, in shared memory, aligned
 * to a page: nothing copies it afterwards.
 *
 * On failure the loader returns a negative code (a -errno value, or any
 * negative number) and may write a message into `err` (a buffer of
 * `err_cap` bytes, NUL-terminated, empty on entry); the consumer then gets
 * BR_ELOADER and that message with the batch number and its ids.
 */
typedef struct br_job {
    const uint64_t *ids;   /* sample ids of this batch, in order */
    const int32_t *labels; /* their labels, or NULL when opened without */
    uint32_t count;        /* number of ids (batch_size, or fewer at the end) */
    uint64_t seq;          /* global batch number: 0, 1, 2, ... */
    uint64_t epoch;        /* seq's epoch, from 0 */
    uint64_t batch;        /* seq's batch number within its epoch */
    uint32_t worker;       /* index of the worker running it (0 inline) */
    void *out;             /* where the batch goes (the slot) */
    size_t cap;            /* bytes available at out (slot_bytes) */
    size_t size;           /* set by the loader: bytes written, <= cap */
    char *err;             /* where a failing loader writes its message */
    size_t err_cap;        /* size of err, BR_ERR_CAP */
    br_io *io;             /* this worker's file reader */
    void *state;           /* what opt.worker_init made for this worker */
    uint64_t seed;         /* this batch's seed, from (opt.seed, seq, rank):
                              the same whichever worker loads it, so random
                              augmentation is reproducible */
    uint64_t *offsets;     /* count + 1 entries in shared memory: a loader
                              with variable-size samples writes sample i at
                              out + offsets[i] .. out + offsets[i + 1] */
    bool has_offsets;      /* set to true when offsets were filled */
} br_job;

/* Fills one batch. Returns 0, or a negative code with a message in job->err. */
typedef int (*br_loader_fn)(br_job *job, void *user);

/*
 * Optional per-worker hooks. worker_init runs once in each worker process
 * (and in the trainer for workers = 0) before its first batch: open files
 * there, allocate scratch memory, and store it in *state; every job of that
 * worker gets it as job->state. It returns 0, or a negative code with a
 * message in err (err_cap bytes): the generator then fails with
 * BR_ELOADER: with workers = 0 from br_open itself; in a worker process at
 * the first batch that worker takes (so a worker that takes none fails
 * nothing).
 *
 * worker_fini(state, user) runs at most once per worker process, in that
 * process, and only after its worker_init succeeded, when the worker ends
 * in order: it ran out of batches (the last epoch), or the generator was
 * stopped by br_close (or by br_next on BR_ELOADER or BR_EWORKER). A stop
 * lets a worker that is inside the loader finish that batch, and one that
 * waits for a free slot give up the batch it took; each then runs
 * worker_fini and exits. Workers still running 1 second after the stop
 * began (a loader stuck in a read, a worker_fini that blocks) are killed
 * with SIGKILL, so br_close returns within about 1 s whatever a loader
 * does; such a worker's worker_fini does not run, or is cut short. A
 * worker killed by a signal (a crash, a kill from outside, the trainer's
 * death) runs no worker_fini; its replacement runs worker_init and, in
 * turn, worker_fini. With workers = 0, br_close runs worker_fini in the
 * calling thread if worker_init ran at br_open. Without a worker_fini
 * hook nothing needs to run: br_close kills the workers at once.
 */
typedef int (*br_worker_init_fn)(br_io *io, uint32_t worker, void *user, void **state,
                                 char *err, size_t err_cap);
typedef void (*br_worker_fini_fn)(void *state, void *user);

/*
 * One batch as the consumer sees it. Every pointer points into the ring
 * and stays valid until the next br_next() or br_close() on the generator.
 */
typedef struct br_batch {
    uint64_t seq;           /* global batch number, consecutive */
    uint64_t epoch;         /* epoch of this batch, from 0 */
    uint64_t batch;         /* batch number within the epoch */
    uint32_t count;         /* number of samples */
    const uint64_t *ids;    /* count sample ids */
    const int32_t *labels;  /* count labels, or NULL when opened without */
    const void *data;       /* what the loader wrote (page-aligned) */
    size_t size;            /* bytes at data */
    const uint64_t *offsets; /* count + 1 sample offsets into data, or NULL
                                when the loader did not fill them */
} br_batch;

/* Options of br_open(). Always start from br_options_init(). */
typedef struct br_options {
    uint32_t batch_size;   /* samples per batch (default 32) */
    uint32_t workers;      /* 0: load inside br_next; n: n worker processes
                              (default 1) */
    uint32_t slots;        /* ring depth, the prefetch budget
                              (default BR_SLOTS_AUTO: 2 x max(workers, 1),
                              deeper for batches under 2 MiB) */
    size_t slot_bytes;     /* capacity of one slot: the largest batch the
                              loader writes (no default: must be set) */
    uint64_t epochs;       /* stop after this many epochs; 0 = forever
                              (default 0) */
    bool drop_last;        /* drop the short last batch of each epoch
                              (default false) */
    int timeout_ms;        /* br_next waits at most this long for a batch;
                              -1 = forever (default -1); with workers = 0
                              loading is inline and never times out */
    uint32_t max_restarts; /* worker deaths survived over the generator's
                              life before br_next fails (default 3;
                              BR_MAX_RESTARTS_UNLIMITED: never) */
    br_worker_init_fn worker_init; /* optional, see br_worker_init_fn */
    br_worker_fini_fn worker_fini; /* optional */
    bool shuffle;          /* a different order each epoch (default false) */
    uint64_t seed;         /* the order's and the batch seeds' seed
                              (default 0); same seed, same order */
    uint32_t rank;         /* this process's shard, 0 <= rank < world */
    uint32_t world;        /* number of shards; 0 or 1 = no sharding
                              (default 1). Ranks see disjoint positions of
                              each epoch's order, the same count each:
                              ceil(n / world), wrapping around to the start
                              of the order for the last few (default), or
                              floor(n / world) with shard_drop_tail */
    bool shard_drop_tail;
    const char *name;      /* NULL (default): batches for this process's
                              br_next. "/name": serve a named ring for a
                              consumer in another process (br_attach);
                              needs workers >= 1; see br_serve_wait */
    uint64_t start_seq;    /* first batch of the run (default 0): a run
                              resumed at k yields exactly what the whole run
                              yields from batch k on */
} br_options;

/* Aggregate counters of a generator, read with br_stats_get(). */
typedef struct br_stats {
    uint64_t batches;       /* batches returned by br_next */
    uint64_t bytes;         /* their bytes */
    uint64_t stall_ns;      /* time br_next spent waiting for a batch */
    uint64_t elapsed_ns;    /* time since br_open */
    uint64_t loaded;        /* batches loaded by all workers (or inline) */
    uint64_t load_ns;       /* time spent in the loader, summed */
    uint64_t slot_wait_ns;  /* time workers waited for a free slot, summed */
    uint32_t workers;       /* worker processes (after any lowering) */
    uint32_t slots;         /* ring depth (BR_SLOTS_AUTO resolved) */
    uint32_t restarts;      /* workers replaced after a death */
} br_stats;

/* Per-worker counters, read with br_worker_stats_get(). */
typedef struct br_worker_stats {
    int32_t pid;            /* current process id, 0 when not running */
    uint32_t restarts;      /* times this worker was replaced */
    uint64_t batches;       /* batches it loaded */
    uint64_t bytes;         /* bytes it wrote */
    uint64_t load_ns;       /* time in the loader */
    uint64_t slot_wait_ns;  /* time waiting for a free slot */
    uint32_t io_backend;    /* enum br_io_backend: which read path ran */
    uint64_t io_reads;      /* reads completed by its reader */
    uint64_t io_bytes;      /* bytes they read */
    uint64_t io_copies;     /* of io_reads, those copied straight out of the
                               page cache (see br_io_register_file) */
} br_worker_stats;

typedef struct br_gen br_gen;

/*
 * Sets *opt to the defaults documented in struct br_options.
 * Returns 0, or -EINVAL when opt is NULL.
 */
BR_API int br_options_init(br_options *opt);

/*
 * Creates a generator over n_ids samples `ids` (labels optional, NULL or
 * n_ids values) and starts opt->workers worker processes that run `load`.
 * Batch k of an epoch holds ids[k*B .. min((k+1)*B, n_ids)) (without
 * shuffle and shards). ids = NULL means the ids 0 .. n_ids - 1 without an
 * array: a dataset of 10^9 samples costs no memory for its ids.
 *
 * The ring (slots x slot_bytes plus metadata) is reserved and faulted in
 * here, so lack of memory fails now rather than as a SIGBUS later.
 *
 * If batch_size x workers > n_ids, workers is lowered to
 * n_ids / batch_size and br_last_error(*out) says so; the call succeeds.
 *
 * Returns 0 and sets *out, or a negative code with *out = NULL and the
 * message in br_last_error(NULL) (per thread):
 *   -EINVAL     a bad argument; the message names it (see docs/errors.md)
 *   -ENOMEM     the ring does not fit in memory; the message gives sizes
 *   -EOVERFLOW  the sizes overflow
 *   other -errno from memfd_create, mmap, fork.
 */
BR_API int br_open(br_gen **out, br_loader_fn load, void *user,
                   const uint64_t *ids, const int32_t *labels, size_t n_ids,
                   const br_options *opt);

/*
 * Gives the slot of the previous batch back to the workers, then waits for
 * the next batch in sequence order and describes it in *out.
 * Returns:
 *   0            *out holds the batch
 *   BR_EOF       the last epoch is done (again on every later call)
 *   -ETIMEDOUT   timeout_ms passed; the generator stays usable and the
 *                next call waits for the same batch
 *   BR_ELOADER   the loader failed on this batch; message has its text
 *   BR_EWORKER   a worker died and max_restarts was used up
 *   BR_ESTOPPED  the generator is stopped (after an error or close)
 *   -EINVAL      g or out is NULL
 * After BR_ELOADER or BR_EWORKER the generator is stopped.
 */
BR_API int br_next(br_gen *g, br_batch *out);

/*
 * Stops and reaps the workers, unmaps the ring, frees g. NULL is fine.
 * With a worker_fini hook, workers finish the batch they are loading and
 * run worker_fini; any still running after 1 s is killed (see
 * br_worker_fini_fn). Without one, workers are killed at once. When it
 * returns, no process of the generator is left. Returns 0.
 */
BR_API int br_close(br_gen *g);

/*
 * The message of the last failing call on g, or of the last failed
 * br_open() of the calling thread when g is NULL. Never NULL ("" if none).
 * Valid until the next call on g (or the next br_open of the thread).
 */
BR_API const char *br_last_error(const br_gen *g);

/* Description of any code we return (ours or -errno). Never NULL. */
BR_API const char *br_strerror(int code);

/* Symbolic name of a code ("BR_EOF", "EINVAL", ...). Never NULL. */
BR_API const char *br_err_name(int code);

/*
 * Fills *out with the generator's counters (cheap: reads shared memory).
 * Returns 0, or -EINVAL for NULL arguments.
 */
BR_API int br_stats_get(const br_gen *g, br_stats *out);

/*
 * Fills *out with worker i's counters, 0 <= i < workers.
 * Returns 0, or -EINVAL (NULL arguments, or i out of range).
 */
BR_API int br_worker_stats_get(const br_gen *g, uint32_t i,
                               br_worker_stats *out);

/*
 * Queues a read of len bytes at offset of the open file fd into dst, for
 * sample `sample` (named in error messages). dst is normally inside
 * job->out; a read that would write past the job's slot is refused. Reads
 * run when br_io_wait is called (or earlier, when the queue is full).
 * Returns 0, or -EINVAL (bad arguments; message in br_io_last_error).
 */
BR_API int br_io_read(br_io *io, int fd, uint64_t offset, size_t len, void *dst,
                      uint64_t sample);

/*
 * Runs every queued read and waits for all of them; short reads are
 * resubmitted for the rest. Several reads go to io_uring in one submit; a
 * lone read goes through pread, which is one syscall as well and measured
 * faster for one sequential read (perf case records-seq). Returns 0 when every byte arrived, or a
 * negative code: -errno of a failed read, or -ENODATA when the file ended
 * before the expected length (it is shorter than the dataset says). The
 * message (br_io_last_error) names the file, offset, length and sample.
 * A loader can copy it into job->err and return the code.
 */
BR_API int br_io_wait(br_io *io);

/*
 * Registers fd as a fixed file of this reader (io_uring looks it up once,
 * not on every read); later reads of fd use it. Call it from worker_init
 * for files the worker keeps open for its whole life: the registration
 * holds the file open, so a registered fd must not be closed and reused
 * for another file. Returns 0 (also when the reader uses pread, or the
 * table is full: reads then work unregistered), or -EINVAL.
 *
 * A registered regular file opened for reading without O_DIRECT, no larger
 * than RAM, is also mapped read-only, and later reads of it whose pages are
 * in the page cache are copied from the mapping instead of read (counted in
 * br_worker_stats.io_copies; docs/datasets.md). The reader catches SIGBUS
 * during those copies (a handler that passes every other SIGBUS on to the
 * one installed before it) and checks the file's size after them, so a file
 * that shrinks gives the same error as with reads. BR_IO=uring or
 * BR_IO=pread in the environment turns the copies off.
 */
BR_API int br_io_register_file(br_io *io, int fd);

/* The message of the last failure of the reader ("" if none). */
BR_API const char *br_io_last_error(const br_io *io);

/* "io_uring" or "pread": the path this reader uses. */
BR_API const char *br_io_backend_name(const br_io *io);

/*
 * Built-in datasets, so that most users never write a loader. Opening one
 * opens and checks its files in the calling process: a missing or
 * unreadable file, a size that does not fit the layout (a records file
 * whose size is not a multiple of the record size, an index entry past the
 * end of the data file, a labels file of the wrong size) is an error here
 * that names the file. Workers inherit the descriptors and read through
 * their br_io. A dataset must stay open until every generator using it is
 * closed. Failures leave their message in br_last_error(NULL).
 *
 * Layouts (all integers little-endian):
 *   records  one file, sample i at offset i x record_bytes; adjacent ids in
 *            a batch are read with one read
 *   files    a list file, one path per line (relative paths are relative to
 *            the list's directory); sample i is the whole file on line i
 *   indexed  a data file plus an index file of n (uint64 offset, uint64
 *            length) pairs; sample i is data[offset_i .. offset_i + length_i)
 *   labels   optional for every layout: n int32 values, one per sample
 *
 * A batch's samples are packed one after another; br_batch.offsets gives
 * where each starts (count + 1 entries).
 */
typedef struct br_dataset br_dataset;

/* Flags of the br_dataset_open_* calls. */
#define BR_DATASET_DIRECT 0x1u /* read with O_DIRECT (records, indexed) */

typedef struct br_dataset_info {
    uint64_t samples;          /* n */
    uint64_t max_sample_bytes; /* the largest sample */
    uint64_t total_bytes;      /* sum of all samples */
    bool has_labels;
    const char *layout;        /* "records", "files" or "indexed" */
} br_dataset_info;

BR_API int br_dataset_open_records(br_dataset **out, const char *path, size_t record_bytes,
                                   const char *labels_path, unsigned flags);
BR_API int br_dataset_open_files(br_dataset **out, const char *list_path,
                                 const char *labels_path, unsigned flags);
BR_API int br_dataset_open_indexed(br_dataset **out, const char *data_path,
                                   const char *index_path, const char *labels_path,
                                   unsigned flags);

/* Fills *out. Returns 0, or -EINVAL for NULL arguments. */
BR_API int br_dataset_info_get(const br_dataset *ds, br_dataset_info *out);

/* Closes the files and frees ds. NULL is fine. Returns 0. */
BR_API int br_dataset_close(br_dataset *ds);

/*
 * br_open with the dataset's loader and labels. ids = NULL means every
 * sample, 0 .. n - 1 (n_ids is then ignored); otherwise ids must be < n.
 * opt->slot_bytes = 0 means batch_size x max_sample_bytes (rounded up to
 * the O_DIRECT alignment when reading with O_DIRECT). Returns as br_open.
 */
BR_API int br_open_dataset(br_gen **out, br_dataset *ds, const uint64_t *ids, size_t n_ids,
                           const br_options *opt);

/*
 * Named rings. A producer opens a generator with opt.name = "/name": the
 * ring is a POSIX shared-memory object (/dev/shm/name), created O_EXCL,
 * mode 0600, with room checked in /dev/shm and reserved up front. A stale
 * ring of the same name whose producer is dead is replaced; one whose
 * producer runs is -EEXIST. br_close (by the producer) removes it. The
 * producer's br_next is -EINVAL: its batches are for the consumer.
 *
 * A consumer in another process of the same user attaches by name and
 * uses br_next, br_last_error, br_stats_get and br_close (which detaches)
 * as on a local generator. One consumer at a time; after a consumer dies,
 * the next one resumes at the first batch it had not released. If the
 * producer dies, a waiting br_next returns BR_EPRODUCER within a second.
 */

/*
 * Attaches to the named ring as its consumer; timeout_ms is br_next's
 * (-1: wait forever). Every header field is checked before use.
 * Returns 0, or: -ENOENT (no such ring), -EACCES (another user's),
 * BR_EBADRING / BR_EVERSION (a bad or foreign header, not a regular
 * shared-memory object such as a FIFO, or a sparse object: nothing is
 * faulted in before these checks; the message names the problem),
 * BR_EPRODUCER (its producer is dead), -EBUSY (a live consumer holds it;
 * the message names its pid), -EINVAL. Liveness comes from locks on the
 * object, so a producer in another PID namespace counts as alive. Message
 * in br_last_error(NULL).
 */
BR_API int br_attach(br_gen **out, const char *name, int timeout_ms);

/*
 * For the producer of a named ring: waits until its consumer has taken
 * the last batch of the last epoch (0), up to timeout_ms (-1: forever).
 * Returns 0, -ETIMEDOUT (still serving; call again), BR_ESTOPPED (the
 * consumer stopped on an error), BR_EWORKER (the workers are gone), or
 * -EINVAL (not a producer). A consumer that dies is forgotten, so the next
 * one can attach.
 */
BR_API int br_serve_wait(br_gen *g, int timeout_ms);

/* A snapshot of a named ring, read from outside without changing it. */
typedef struct br_ring_status {
    int32_t owner_pid;          /* the producer */
    bool owner_alive;           /* false: a stale ring (br_ring_remove_stale) */
    uint32_t owner_uid;
    int32_t consumer_pid;       /* the live attached consumer, 0 if none */
    uint32_t finished;          /* 0 running, 1 consumer reached the end,
                                   2 consumer stopped on an error */
    uint32_t slots, workers, batch_size;
    uint64_t slot_bytes, total_bytes;
    uint64_t n_ids, epochs, batches_per_epoch, end_seq;
    uint64_t claimed;           /* seqs handed to workers so far */
    uint64_t cursor;            /* next seq the consumer takes */
    uint64_t consumer_batches, consumer_bytes, consumer_stall_ns;
    uint32_t restarts;          /* worker deaths survived */
    uint32_t slots_free, slots_loading, slots_ready, slots_failed;
    /* The consumer blocked in br_next right now: the batch it waits for
     * and how long it has waited (counted from the start of its br_next
     * call, or of the first of the calls that timed out on that batch and
     * were retried), read at the moment of the call. Shown once the wait
     * is past br_next's short spin (at most half a millisecond) and sleeps.
     * Not waiting (the batch was ready, the consumer is busy elsewhere, or
     * none is attached): BR_NOT_WAITING and 0. consumer_stall_ns grows by
     * a wait only when it ends; this shows one that has not. */
    uint64_t consumer_waiting_seq;
    uint64_t consumer_waiting_ns;
} br_ring_status;

/* br_ring_status.consumer_waiting_seq of a consumer that is not waiting. */
#define BR_NOT_WAITING UINT64_MAX

/*
 * Reads the named ring's header, slot states and, when workers is not
 * NULL, up to workers_cap workers' counters. Read-only: it maps the ring
 * PROT_READ and claims nothing. Returns 0, -ENOENT, -EACCES, BR_EBADRING,
 * BR_EVERSION, -EINVAL; message in br_last_error(NULL).
 */
BR_API int br_ring_stat(const char *name, br_ring_status *out, br_worker_stats *workers,
                        uint32_t workers_cap);

/*
 * Removes the named ring if its producer is dead. Returns 0 (removed),
 * -EBUSY (its producer runs), or br_ring_stat's errors.
 */
BR_API int br_ring_remove_stale(const char *name);

/*
 * The pid of the live consumer attached to g's ring, or 0 if none.
 * Returns 0, or -EINVAL.
 */
BR_API int br_consumer_pid(const br_gen *g, int32_t *pid);

/*
 * Custom loaders for a served ring (batchring serve --plugin LIB.so): a
 * shared object exporting
 *
 *   int br_plugin_init2(const br_plugin_args *args, br_plugin *plugin);
 *
 * which reads what serve was given in *args (batch size, workers, slot
 * bytes, --plugin-arg, ...), fills *plugin and returns 0, or a negative
 * code with a message in plugin->err; serve then fails naming the plugin
 * file and that message. The server dlopens the plugin, calls its init once
 * in the server process before the ring exists (the workers are forked
 * afterwards and inherit what it set up), and opens the generator with
 * load, worker_init, worker_fini and user from *plugin; n_ids and
 * slot_bytes give the dataset size and the largest batch when the command
 * line does not. When serve ends (the last epoch, SIGINT/SIGTERM/SIGHUP, its
 * consumer gone with --exit-on-detach, an error after the init succeeded)
 * it closes the generator, which stops and reaps the workers (each runs
 * worker_fini), then calls plugin->fini(user) once in the server process,
 * then dlcloses the plugin. fini does not run when the init failed, nor
 * when serve is killed (SIGKILL, a crash).
 *
 * Versions of this interface (BR_PLUGIN_ABI, a revision number):
 *   1  int br_plugin_init(const char *arg, br_plugin *plugin): the
 *      br_plugin fields up to err; the plugin learns only --plugin-arg.
 *   2  br_plugin_init2 and br_plugin_args; br_plugin.fini.
 * The rule: fields are only ever appended to br_plugin_args and br_plugin,
 * never moved, resized or removed, and each new one is marked with the
 * revision that added it. The server sets args->abi to its own revision,
 * fills every field of args up to it, and zeroes *plugin before the call;
 * a zero (NULL) output field means "not set". So a plugin built for an
 * older revision, or a revision-1 plugin that exports only br_plugin_init,
 * keeps working unchanged. A plugin built for a newer revision than the
 * server must neither read nor write a field of revision k unless
 * args->abi >= k (it may fail its init instead). A server looks for
 * br_plugin_init2 first and falls back to br_plugin_init, for which it
 * reads only the revision-1 fields (a fini set there does not run). A
 * server older than revision 2 knows only br_plugin_init: a plugin that
 * must also run under one exports both.
 */
#define BR_PLUGIN_ABI 2

/* What serve was given, for a plugin to size its buffers and check its
 * argument against. Read-only; the strings stay valid until fini returns.
 * Every field below is of revision 2. */
typedef struct br_plugin_args {
    uint32_t abi;          /* the server's BR_PLUGIN_ABI (>= 2) */
    uint32_t batch_size;   /* --batch: samples per batch (the last batch of
                              an epoch may hold fewer) */
    uint32_t workers;      /* --workers, as asked (br_open lowers it when
                              batch_size x workers > n_ids) */
    uint32_t slots;        /* --slots, or 0 for the automatic depth */
    size_t slot_bytes;     /* --slot-bytes, or 0 when not given; when set it
                              wins over plugin->slot_bytes */
    uint64_t epochs;       /* --epochs, 0 = until stopped */
    uint64_t seed;         /* --seed */
    bool shuffle;          /* --shuffle */
    bool drop_last;        /* --drop-last */
    uint32_t rank;         /* this server's shard (--shard-from-env), */
    uint32_t world;        /* else 0 and 1 */
    const char *arg;       /* --plugin-arg, or NULL */
    const char *path;      /* --plugin, as given */
    const char *name;      /* the ring's name, "/NAME" */
} br_plugin_args;

/* A plugin's teardown: frees what its init allocated. */
typedef void (*br_plugin_fini_fn)(void *user);

/* What the plugin's init fills (zeroed by the server before the call). */
typedef struct br_plugin {
    br_loader_fn load;
    br_worker_init_fn worker_init; /* may stay NULL */
    br_worker_fini_fn worker_fini; /* may stay NULL */
    void *user;
    uint64_t n_ids;                /* samples (ids 0 .. n_ids - 1) */
    size_t slot_bytes;             /* largest batch, or 0 to take --slot-bytes */
    char err[BR_ERR_CAP];
    /* Revision 2. */
    br_plugin_fini_fn fini;        /* may stay NULL; see above for when it runs */
} br_plugin;

/* The entry points, as looked up with dlsym: "br_plugin_init2" (revision 2
 * on), and "br_plugin_init" (revision 1). */
typedef int (*br_plugin_init2_fn)(const br_plugin_args *args, br_plugin *plugin);
typedef int (*br_plugin_init_fn)(const char *arg, br_plugin *plugin);

/*
 * Sets opt->rank and opt->world from the variables the usual launchers set,
 * the first pair found of: RANK/WORLD_SIZE (torchrun), OMPI_COMM_WORLD_RANK/
 * OMPI_COMM_WORLD_SIZE (Open MPI), PMI_RANK/PMI_SIZE (MPICH, Intel MPI),
 * SLURM_PROCID/SLURM_NTASKS (Slurm). Returns 0; -ENOENT when none is set
 * (opt unchanged); -EINVAL when the pair found is malformed or rank >=
 * world. The message is in br_last_error(NULL).
 */
BR_API int br_shard_from_env(br_options *opt);

/*
 * The position to checkpoint: the seq after the last batch br_next
 * returned (start_seq before the first). Resuming with start_seq = *next_seq
 * yields exactly the batches this run would have yielded next.
 * Returns 0, or -EINVAL for NULL arguments or a closed generator.
 */
BR_API int br_checkpoint(const br_gen *g, uint64_t *next_seq);

/* BR_VERSION_NUMBER of the library actually linked. */
BR_API unsigned br_version(void);

/* "MAJOR.MINOR.PATCH" of the library actually linked. */
BR_API const char *br_version_string(void);

#ifdef __cplusplus
}
#endif

#endif /* BATCHRING_H */
