/* SPDX-License-Identifier: MIT */
/*
 * batchring: a loader, run in persistent worker processes, writes each batch
 * straight into a slot of a shared-memory ring; the trainer's generator hands
 * out a pointer to the next ready slot and recycles it on the next call.
 *
 * This header is the reference manual. It reads from top to bottom in the
 * order a program uses the library:
 *
 *   1. How the public structs grow  the ABI rule every struct below follows
 *   2. Errors                       codes, messages, br_strerror
 *   3. Write a loader               br_job, hooks, the file reader br_io
 *   4. Open a generator             br_options, br_open, br_close
 *   5. Iterate                      br_batch, br_next, checkpoints
 *   6. Datasets                     built-in loaders: records, files, indexed
 *   7. Serve and attach             named rings shared between processes
 *   8. Observe                      counters of a generator or a named ring
 *   9. Versions                     br_version
 * Plugins for `batchring serve --plugin` have their own header,
 * <batchring/plugin.h>.
 *
 * Every function's comment ends with the version that added it ("Since
 * 0.x"). Every function that can fail returns 0 or a negative error code:
 * -errno values (-EINVAL, -ENOMEM, -ETIMEDOUT, ...) or one of the BR_E*
 * codes below, which sit in a reserved range [BR_ERRNO_FIRST,
 * BR_ERRNO_LAST] far from any errno. A failing call also leaves a human
 * message, read with br_last_error().
 *
 * Names: br_ for the public API, BR_ for its macros. The calls on the
 * generator, which is what the library is, are plain verbs (br_open,
 * br_next, br_close, br_attach, br_serve_wait; br_open_dataset is br_open
 * with a dataset's loader); every other call names its object first, then
 * the verb (br_dataset_open_records, br_io_read, br_ring_remove_stale). A
 * call that fills caller memory with a value or a struct and returns a
 * code is named <what it gets>_get (br_stats_get, br_ring_status_get,
 * br_checkpoint_get); one that returns its answer directly (a message, a
 * name, a version) is named after it (br_last_error, br_version).
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

/*=====================================================================
 * 1. How the public structs grow
 *=====================================================================
 *
 * 0.3 is the last ABI break before 1.0 for a program that follows this
 * rule. From 0.3 on, a public struct only ever gains fields at its end:
 * none is moved, resized, retyped or removed, and each new field is marked
 * with the version that added it. Enums and flags only gain values. How a
 * program built against an older or a newer header keeps working depends
 * on who allocates the struct and who writes it:
 *
 * a. Options: the caller allocates, the library reads (br_options).
 *    The struct carries its own size in its first field, `size`, which
 *    br_options_init() sets to the sizeof the caller was compiled with (it
 *    is a static inline function over br_options_init_sized(), so the
 *    sizeof is the program's, not the library's; Linux's clone3 and
 *    perf_event_open take their structs the same way). br_open reads
 *    `size` bytes and no more. Fields a smaller (older) struct lacks count
 *    as zero, and every field added after 0.3 has zero as its default,
 *    meaning "as before". A larger (newer) struct is accepted when every
 *    byte this library does not know is zero (the program sets no option
 *    this library lacks) and refused with -EINVAL otherwise, the message
 *    naming the first such byte (Linux's copy_struct_from_user rule). So:
 *    always start from br_options_init(), never from `= {0}` (size 0 is
 *    refused) nor from a struct of another build. Settings by key (zstd's
 *    ZSTD_CCtx_setParameter) would need no size, but cost one call per
 *    option and lose the one initialiser a reader sees; options are set
 *    once per generator, so a sized struct is the simpler contract.
 *
 * b. Results: the caller allocates, the library writes (br_stats,
 *    br_worker_stats, br_ring_status, br_dataset_info). Each getter takes
 *    the caller's sizeof: the name in this header is a static inline
 *    function that passes it to the exported *_sized call. The library
 *    writes exactly that many bytes: the fields it knows that fit, and
 *    zeros past the end of its own struct. An older program gets the
 *    fields it knows; a newer one reads 0 from a field this library lacks,
 *    so every field added after 0.3 is one for which 0 means "not known".
 *    An array of results (br_ring_status_get's workers) is walked with the
 *    caller's sizeof as its stride. A size smaller than the struct of 0.3
 *    is -EINVAL.
 *
 * c. The batch: the caller allocates, br_next writes it once per batch
 *    (br_batch). It has a fixed size, with reserved words at its end that
 *    br_next zeroes (libuv's `reserved` fields, liburing's `pad`). A later
 *    version gives a reserved word a name and a meaning, in place, and
 *    sizeof(br_batch) never changes. No size argument on the path that
 *    runs once per batch, and a batch stays a plain struct that a caller
 *    may keep on the stack or in an array. Should the reserved words run
 *    out, a new call fills a new struct; br_next and br_batch stay as
 *    they are.
 *
 * d. Library-owned: the library allocates, the caller reads or fills in
 *    place (br_job, which a loader is handed; br_plugin_args and br_plugin
 *    in <batchring/plugin.h>). Append-only: a caller never allocates,
 *    copies or takes the sizeof of one, so appending is safe for older
 *    callers. A loader built against a newer header reads or writes a
 *    br_job field marked "since 0.x" only when br_version() says the
 *    running library is at least 0.x. The plugin structs carry their own
 *    revision, br_plugin_args.abi.
 *
 * Functions are never changed in place: a call that needs another
 * signature gets a new name, and from 1.0 on a new symbol version
 * (cmake/batchring.map).
 */

/*=====================================================================
 * 2. Errors
 *=====================================================================*/

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
    XX(EVERSION, -30007, "the ring has an unsupported layout version")        \
    XX(EHELD, -30008, "the caller holds too many batches: release one")         \
    XX(ECUDA, -30009, "the CUDA runtime is missing or refused to pin the ring")

enum br_errno {
#define BR_ERRNO_ENUM_(name, value, text) BR_##name = (value),
    BR_ERRNO_MAP(BR_ERRNO_ENUM_)
#undef BR_ERRNO_ENUM_
    BR_ERRNO_FIRST = -30099, /* lowest value of the reserved range */
    BR_ERRNO_LAST = -30001   /* highest value of the reserved range */
};

/* A generator: a checked handle (see "Handles" above). */
typedef struct br_gen br_gen;

/*
 * The message of the last failing call on g, or, when g is NULL, of the
 * calling thread's last failed call that has no generator to keep it:
 * br_open and its kin, and the getters (br_stats_get, br_worker_stats_get,
 * br_checkpoint_get, br_consumer_pid_get, br_dataset_info_get, which may
 * run in a monitoring thread and so never write g's message). Never NULL
 * ("" if none). Valid until the next such call. Since 0.1.
 */
BR_API const char *br_last_error(const br_gen *g);

/* Description of any code we return (ours or -errno). Never NULL.
 * Since 0.1. */
BR_API const char *br_strerror(int code);

/* Symbolic name of a code ("BR_EOF", "EINVAL", ...). Never NULL.
 * Since 0.1. */
BR_API const char *br_err_name(int code);

/*=====================================================================
 * 3. Write a loader
 *=====================================================================*/

/* Upper bounds checked by br_open(). */
#define BR_MAX_WORKERS 1024u
#define BR_MAX_SLOTS 65536u
#define BR_MAX_BATCH_SIZE (1u << 24)
#define BR_ERR_CAP 512u /* bytes of a loader's error message, with the NUL */

/*
 * A worker's file reader. A read takes one of three paths, with the same
 * results: a copy from a mapping of the page cache (registered files whose
 * pages are resident: br_io_register_file), io_uring (when the kernel
 * allows it), or pread. The reader measures which is cheapest per file and
 * read size on the batches' own reads, and measures again now and then
 * (docs/datasets.md); BR_IO in the environment forces a policy: "pread",
 * "uring", or "copy" (copies where resident, io_uring for the rest). Each
 * worker process has its own reader (created after the fork); with
 * workers = 0 the trainer has one. Loaders reach it as job->io.
 */
typedef struct br_io br_io;

/* Which path a reader uses, as reported in br_worker_stats.io_backend. */
enum br_io_backend { BR_IO_NONE = 0, BR_IO_URING = 1, BR_IO_PREAD = 2 };

/*
 * One job for a loader: fill the batch of `count` samples `ids` into `out`.
 * The loader writes at most `cap` bytes to `out` and sets `size` (0 on
 * entry) to the number written. `out` is the ring slot itself, in shared
 * memory, aligned to a page: nothing copies it afterwards.
 *
 * On failure the loader returns a negative code (a -errno value, or any
 * negative number) and may write a message into `err` (a buffer of
 * `err_cap` bytes, NUL-terminated, empty on entry); the consumer then gets
 * BR_ELOADER and that message with the batch number and its ids.
 *
 * The library allocates every br_job: append-only (rule d above); a loader
 * never copies one or takes its sizeof. Since 0.1; fields as of 0.3.
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
 * Queues a read of len bytes at offset of the open file fd into dst, for
 * sample `sample` (named in error messages). dst is normally inside
 * job->out; a read that would write past the job's slot is refused. Reads
 * run when br_io_wait is called (or earlier, when the queue is full).
 * Returns 0, or -EINVAL (bad arguments; message in br_io_last_error).
 * Since 0.2.
 */
BR_API int br_io_read(br_io *io, int fd, uint64_t offset, size_t len, void *dst,
                      uint64_t sample);

/*
 * Runs every queued read and waits for all of them; short reads are
 * resubmitted for the rest. Each read takes the path the reader measured
 * cheapest for its file, size and residency (reads sent to io_uring go in
 * one submit); the batch's timings update that choice. Returns 0 when
 * every byte arrived, or a negative code: -errno of a failed read, or
 * -ENODATA when the file ended before the expected length (it is shorter
 * than the dataset says). The message (br_io_last_error) names the file,
 * offset, length and sample. A loader can copy it into job->err and
 * return the code. Since 0.2.
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
 * that shrinks gives the same error as with reads. Whether a resident read
 * is copied or read is measured per file (br_io_wait); BR_IO=uring or
 * BR_IO=pread in the environment turns the copies off, BR_IO=copy copies
 * every resident read. Since 0.2.
 */
BR_API int br_io_register_file(br_io *io, int fd);

/* The message of the last failure of the reader ("" if none). Since 0.2. */
BR_API const char *br_io_last_error(const br_io *io);

/* "io_uring" or "pread": the path this reader uses. Since 0.2. */
BR_API const char *br_io_backend_name(const br_io *io);

/*=====================================================================
 * 4. Open a generator
 *=====================================================================*/

/* Passing this as br_options.slots asks for the automatic depth: 2 slots
 * per worker (2 for inline loading), and for small batches as many more as
 * fit in about 8 MiB of ring, at most 128; with fewer workers than online
 * CPUs, no more than fit in half the L2 cache (at least 16), so that the
 * workers write slots that are still in their cache; with as many workers
 * as online CPUs or more, as many as fit in 16 MiB, at most 256, so that
 * a trainer waiting for them sleeps less often per batch (br_stats.slots
 * tells). */
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

/* Options of br_open(). Always start from br_options_init(), which sets
 * `size` (rule a above). Since 0.1; `size` since 0.3. */
typedef struct br_options {
    uint32_t size;         /* sizeof(br_options) of the caller's build, set
                              by br_options_init; 0 is refused */
    uint32_t batch_size;   /* samples per batch (default 32) */
    uint32_t workers;      /* 0: load inside br_next; n: n worker processes
                              (default 1) */
    uint32_t slots;        /* ring depth, the prefetch budget
                              (default BR_SLOTS_AUTO: 2 x max(workers, 1),
                              deeper for batches under 4 MiB: up to 8 MiB
                              of ring (16 MiB when the workers hold every
                              CPU), or with fewer workers than CPUs
                              half the L2, at least 16 slots) */
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
    uint32_t hold;         /* Since 0.3. Batches the caller may hold at once
                              (br_release); 0 or 1 (default): br_next gives
                              the previous batch back itself, as before.
                              H >= 2: nothing is given back implicitly; must
                              be below slots; BR_SLOTS_AUTO makes room for
                              2 x workers free slots beside the H held. A
                              named ring records it for its consumer */
    uint32_t pin;          /* Since 0.3. enum br_pin_mode: register the
                              ring's data area with a GPU runtime at open
                              (br_pin); 0 = BR_PIN_NONE (default) */
    const char *cpus;      /* Since 0.3. Where the workers run. NULL
                              (default): the environment's BR_CPUS, and
                              when that is unset or "", not pinned (the
                              workers keep the trainer's affinity, as
                              before). "0-3,8" (the kernel's CPU list
                              syntax): worker i is pinned to the i-th CPU of
                              the list, round-robin, and a replacement to
                              its predecessor's CPU. "auto": when the
                              online CPUs do not all share one last-level
                              cache, every worker may run anywhere in the
                              LLC domain of the CPU the trainer runs on at
                              br_open; with one domain, not pinned
                              (docs/perf/notes.md says why this is not the
                              default). A bad list, a CPU that is not
                              online or one this process may not use is
                              -EINVAL at br_open, the message naming it.
                              Read at br_open only; "" = NULL */
    /* New fields go here, each marked with its version; 0 = as before. */
} br_options;

/*
 * Sets the first `size` bytes of *opt to the defaults documented in
 * struct br_options, with opt->size = size. Call it through
 * br_options_init(), which passes the caller's sizeof. Fields past this
 * library's br_options are zeroed. Returns 0, or -EINVAL when opt is NULL
 * or size is smaller than the br_options of 0.3 or does not fit in
 * opt->size; message in br_last_error(NULL). Since 0.3.
 */
BR_API int br_options_init_sized(br_options *opt, size_t size);

/* Sets *opt to the defaults. Returns as br_options_init_sized.
 * Since 0.1 (a static inline over br_options_init_sized since 0.3). */
static inline int br_options_init(br_options *opt)
{
    return br_options_init_sized(opt, sizeof *opt);
}

/*
 * Sets opt->rank and opt->world from the variables the usual launchers set,
 * the first pair found of: RANK/WORLD_SIZE (torchrun), OMPI_COMM_WORLD_RANK/
 * OMPI_COMM_WORLD_SIZE (Open MPI), PMI_RANK/PMI_SIZE (MPICH, Intel MPI),
 * SLURM_PROCID/SLURM_NTASKS (Slurm). Returns 0; -ENOENT when none is set
 * (opt unchanged); -EINVAL when the pair found is malformed or rank >=
 * world. The message is in br_last_error(NULL). Since 0.2.
 */
BR_API int br_shard_from_env(br_options *opt);

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
 *   -EINVAL     a bad argument; the message names it (see docs/errors.md),
 *               including an opt->size this library cannot read (0, or
 *               larger with a non-zero byte past its br_options; rule a)
 *   -ENOMEM     the ring does not fit in memory; the message gives sizes
 *   -EOVERFLOW  the sizes overflow
 *   other -errno from memfd_create, mmap, fork.
 * Since 0.1.
 */
BR_API int br_open(br_gen **out, br_loader_fn load, void *user,
                   const uint64_t *ids, const int32_t *labels, size_t n_ids,
                   const br_options *opt);

/*
 * Stops and reaps the workers, unmaps the ring, frees g. NULL is fine.
 * With a worker_fini hook, workers finish the batch they are loading and
 * run worker_fini; any still running after 1 s is killed (see
 * br_worker_fini_fn). Without one, workers are killed at once. When it
 * returns, no process of the generator is left. Returns 0. Since 0.1.
 */
BR_API int br_close(br_gen *g);

/*=====================================================================
 * 5. Iterate
 *=====================================================================*/

/*
 * One batch as the consumer sees it. Every pointer points into the ring
 * and stays valid until the next br_next() or br_close() on the generator
 * (with opt.hold >= 2: until br_release() or br_close()).
 * Fixed size; br_next zeroes `reserved`, which later versions turn into
 * named fields in place (rule c above). Since 0.1; `reserved` since 0.3.
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
    uint64_t reserved[4];   /* zero; room for fields of later versions */
} br_batch;

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
 *   BR_EHELD     opt.hold >= 2 and the caller holds hold batches, or the
 *                batch whose slot the next one needs (release one; the
 *                generator stays usable). Since 0.3
 *   -EINVAL      g or out is NULL
 * After BR_ELOADER or BR_EWORKER the generator is stopped. Since 0.1.
 */
BR_API int br_next(br_gen *g, br_batch *out);

/*
 * The position to checkpoint: the seq after the last batch br_next
 * returned (start_seq before the first). Resuming with start_seq = *next_seq
 * yields exactly the batches this run would have yielded next.
 * Returns 0, or -EINVAL for NULL arguments or a closed generator.
 * Since 0.3 (br_checkpoint in 0.2).
 */
BR_API int br_checkpoint_get(const br_gen *g, uint64_t *next_seq);

/*---------------------------------------------------------------------
 * Holding batches (opt.hold)
 *
 * With opt.hold = H >= 2 a batch stays valid, in its slot, until the caller
 * gives it back with br_release (in any order) or closes the generator:
 * br_next no longer gives the previous one back. br_next returns BR_EHELD
 * (never a wait that cannot end) when H batches are held, or when the
 * slot the next batch needs still holds a batch: the ring is a ring, and
 * batch s + slots is loaded where batch s was.
 *
 * Named rings: the producer's opt.hold is recorded in the ring, and its
 * consumer (br_attach) may hold as many. A consumer that dies holding
 * batches gives them back to the next one exactly once: the next consumer
 * resumes at the first batch not released and delivers exactly the
 * batches its predecessor took and did not release, in seq order; those
 * it released out of order are not delivered again (their slots already
 * say "free for the next lap"). br_close releases every held batch.
 *---------------------------------------------------------------------*/

/*
 * Gives batch b (as br_next filled it) back to the workers. Only b->seq
 * is read. Returns 0, or -EINVAL (g or b NULL, or b is not a batch the
 * caller holds: never returned, or released already; the message says
 * which), BR_ESTOPPED for a closed generator. Thread-safety: as br_next,
 * from one thread at a time. Since 0.3.
 */
BR_API int br_release(br_gen *g, const br_batch *b);

/* br_release by seq. Returns as br_release. Since 0.3. */
BR_API int br_release_seq(br_gen *g, uint64_t seq);

/*
 * Copies the data of batch b (b->size bytes) to dst, for a caller who
 * keeps it past its release. Returns 0, or -EINVAL (b or dst NULL with a
 * non-empty batch), -ENOSPC (cap < b->size); message in
 * br_last_error(NULL). Since 0.3.
 */
BR_API int br_batch_copy(const br_batch *b, void *dst, size_t cap);

/*---------------------------------------------------------------------
 * The ring as registrable memory, and the GPU
 *---------------------------------------------------------------------*/

/*
 * The data area of g's ring as mapped in this process (every slot's
 * batches: each br_batch.data lies inside it): page-aligned, the same for
 * the generator's life, for local and attached rings. For
 * cudaHostRegister, ibv_reg_mr, io_uring fixed buffers, mlock. With
 * BR_GUARD=1 it holds the guard pages (PROT_NONE) between slots, which
 * most registrations refuse. Returns 0, or -EINVAL (closed generator,
 * NULL outputs, a generator that serves a named ring: its consumer
 * registers its own mapping). Since 0.3.
 */
BR_API int br_region(const br_gen *g, void **addr, size_t *len);

/* Registers the data area (br_region's addr, len) with whatever the
 * caller pins it for. Returns 0, or a negative code that fails
 * br_region_hook_set. */
typedef int (*br_region_fn)(void *user, void *addr, size_t len);
/* Undoes br_region_fn; runs once, in br_close, before the unmap. */
typedef void (*br_region_release_fn)(void *user, void *addr, size_t len);

/*
 * Runs reg(user, addr, len) now, on the mapped data area, and arranges
 * for unreg(user, addr, len) (may be NULL) to run in br_close before the
 * ring is unmapped, so that a wrapper pins without racing br_close. One
 * hook per generator. Returns 0, reg's negative code (the hook is then not
 * installed), -EBUSY (a hook is installed), -EINVAL (as br_region, or reg
 * NULL). Since 0.3.
 */
BR_API int br_region_hook_set(br_gen *g, br_region_fn reg, br_region_release_fn unreg,
                              void *user);

/* What br_pin registers the ring with. Since 0.3. */
enum br_pin_mode {
    BR_PIN_NONE = 0,
    BR_PIN_CUDA = 1,              /* cudaHostRegister, or fail */
    BR_PIN_CUDA_IF_AVAILABLE = 2  /* cudaHostRegister, or stay unpinned */
};

/*
 * Page-locks the ring's data area for the GPU: dlopen()s the CUDA runtime
 * (the file named by BR_CUDART if set, else libcudart.so, then
 * libcudart.so.13 down to .10), calls cudaHostRegister(addr, len,
 * cudaHostRegisterPortable), and cudaHostUnregister in br_close before the
 * unmap. batchring needs no CUDA header or library to build. With
 * opt.pin, br_open does this after it has started its workers (pinned
 * memory is not for forked children). Returns 0 (pinned; with
 * BR_PIN_CUDA_IF_AVAILABLE also when it could not pin: br_last_error(g)
 * then says why, and the generator works unpinned), or BR_ECUDA (no
 * runtime found, or a call failed: the message has the runtime's
 * cudaGetErrorString), -EBUSY (already pinned), -EINVAL (as br_region, or
 * an unknown mode). Since 0.3.
 */
BR_API int br_pin(br_gen *g, int mode);

/*=====================================================================
 * 6. Datasets
 *=====================================================================
 *
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

/* What br_dataset_info_get reports (rule b above). Since 0.2. */
typedef struct br_dataset_info {
    uint64_t samples;          /* n */
    uint64_t max_sample_bytes; /* the largest sample */
    uint64_t total_bytes;      /* sum of all samples */
    bool has_labels;
    const char *layout;        /* "records", "files", "indexed", "tokens" or
                                  "packed" */
    uint32_t shards;           /* files holding the samples (1 for one file
                                  or a list of files). Since 0.3. */
} br_dataset_info;

/* Open a dataset of each layout (above) into *out. Returns 0, or -EINVAL,
 * -ENOMEM or the -errno of opening or reading a file, with the message
 * naming the file. Since 0.2. */
BR_API int br_dataset_open_records(br_dataset **out, const char *path, size_t record_bytes,
                                   const char *labels_path, unsigned flags);
BR_API int br_dataset_open_files(br_dataset **out, const char *list_path,
                                 const char *labels_path, unsigned flags);
BR_API int br_dataset_open_indexed(br_dataset **out, const char *data_path,
                                   const char *index_path, const char *labels_path,
                                   unsigned flags);

/*
 * Token streams for language-model training, in many shards.
 *
 * pattern names the shards: a glob(3) pattern ("data/train_*.bin"; a plain
 * path matches itself), whose matches are taken in sorted name order
 * (strcmp), or "@LIST", a file naming one shard per line (relative to the
 * list's directory), taken in the list's order. Shard formats:
 *   token_bytes = 0  llm.c .bin shards: a header of 256 little-endian int32
 *                    (magic 20240520, version 1, token count, the rest
 *                    unused), then the uint16 tokens; the file size must
 *                    be 1024 + 2 x count. A bad magic, version or size is
 *                    refused at open, naming the file and the field.
 *   token_bytes = 2 or 4  raw little-endian tokens, no header.
 * Sample ids run through the shards in order: a shard of c tokens holds
 * (c - 1) / seq_len samples (windows), window j being tokens
 * [j x T, j x T + T] (T = seq_len, T + 1 tokens); no window crosses a
 * shard. A batch of B windows is written as int32 inputs[B][T] followed by
 * int32 targets[B][T], targets being the inputs shifted by one token, so
 * b.data is what a model takes (no br_batch.offsets). Without shuffle, one
 * rank and batches inside one shard, batch k is inputs = tokens[kBT ..
 * kBT + BT), targets = tokens[kBT + 1 .. kBT + BT + 1): what a sequential
 * reader gives. Shuffle, ranks, resume and seeds come from the options as
 * for every layout. Workers open shards as they need them and keep at most
 * 64 open each, so thousands of shards need no more descriptors; a shard
 * that is missing or shorter than at open when read fails the batch with
 * BR_ELOADER naming it. flags must be 0. Returns 0, or -EINVAL, -ENOENT (no
 * match), -ENOMEM or the -errno of opening or reading a shard, with the
 * message naming it. Since 0.3.
 */
BR_API int br_dataset_open_tokens(br_dataset **out, const char *pattern, size_t seq_len,
                                  size_t token_bytes, unsigned flags);

/*
 * The records layout over many shards: pattern names them as for
 * br_dataset_open_tokens (a glob, sorted by name, or "@LIST"); each shard
 * is a whole number of records of record_bytes, and sample ids run
 * through the shards in order (shard k's records follow shard k - 1's).
 * labels_path, optional, holds one int32 per sample of all shards. Workers
 * open shards as they need them and keep at most 64 open each; a shard
 * that is missing or shorter than at open fails the batch with BR_ELOADER
 * naming it. flags must be 0 (no O_DIRECT). Returns as
 * br_dataset_open_records, -ENOENT when nothing matches. Since 0.3.
 */
BR_API int br_dataset_open_record_shards(br_dataset **out, const char *pattern,
                                         size_t record_bytes, const char *labels_path,
                                         unsigned flags);

/*
 * The indexed layout over many shards: pattern names the data shards as
 * for br_dataset_open_tokens (a glob, sorted by name, or "@LIST"), and
 * each data shard has its own index beside it, the file of the same name
 * with index_suffix appended (NULL means ".idx": data/train-007.bin is
 * indexed by data/train-007.bin.idx), n pairs (uint64 offset, uint64
 * length) into that shard. Sample ids run through the shards in order
 * (shard k's index entries follow shard k - 1's); an index may be empty.
 * labels_path, optional, holds one int32 per sample of all shards. Every
 * entry is checked against its shard at open, naming both files. Workers
 * open shards as they need them and keep at most 64 open each; a shard
 * that is missing or shorter than at open fails the batch with BR_ELOADER
 * naming it. flags must be 0 (no O_DIRECT). Returns as
 * br_dataset_open_indexed, -ENOENT when nothing matches. Since 0.3.
 */
BR_API int br_dataset_open_indexed_shards(br_dataset **out, const char *pattern,
                                          const char *index_suffix, const char *labels_path,
                                          unsigned flags);

/*
 * The files layout from a pattern instead of a list file: a glob (its
 * matches sorted by name, strcmp; relative names relative to the working
 * directory of this call) or "@LIST" (as br_dataset_open_files(LIST)).
 * Sample i is the whole i-th file. flags must be 0. Returns as
 * br_dataset_open_files, -ENOENT when nothing matches. Since 0.3.
 */
BR_API int br_dataset_open_files_glob(br_dataset **out, const char *pattern,
                                      const char *labels_path, unsigned flags);

/* Fills the first `size` bytes of *out (rule b). Call it through
 * br_dataset_info_get(). Returns 0, or -EINVAL for NULL arguments or a size
 * smaller than the br_dataset_info of 0.3. Since 0.3. */
BR_API int br_dataset_info_get_sized(const br_dataset *ds, br_dataset_info *out, size_t size);

/* Fills *out. Returns as br_dataset_info_get_sized. Since 0.2 (a static
 * inline over br_dataset_info_get_sized since 0.3). */
static inline int br_dataset_info_get(const br_dataset *ds, br_dataset_info *out)
{
    return br_dataset_info_get_sized(ds, out, sizeof *out);
}

/* Closes the files and frees ds. NULL is fine. Returns 0. Since 0.2. */
BR_API int br_dataset_close(br_dataset *ds);

/*
 * The packed format (docs/datasets.md has it byte by byte): a directory of
 * shards NAME-00000.brp, NAME-00001.brp, ..., each with a header (magic,
 * version, layout, sample counts, record size or an index, labels and
 * metadata presence, dtype and shape) and xxHash (XXH3-64) checksums of
 * every block of its body and of the block table. Written by br_pack_*
 * (batchring pack), checked by br_pack_verify (batchring verify).
 *
 * br_dataset_open_packed opens one: path is the directory, a glob pattern
 * of its shards, or the one shard of a single-shard dataset. No record
 * size is given: the headers say it, and every header field is checked
 * against the others and the file (magic, version, header checksum, shard
 * index and count, first id, size, block table checksum; the index,
 * labels and metadata sections' blocks are verified as they are read), so
 * a wrong, missing, extra or foreign shard is an error at open naming it.
 * Data blocks are not read at open (br_pack_verify reads them all). flags
 * must be 0. Returns 0, or -EINVAL/-EBADMSG/-ENOENT/-ENOMEM or the -errno
 * of a file, message in br_last_error(NULL). Since 0.3.
 */
BR_API int br_dataset_open_packed(br_dataset **out, const char *path, unsigned flags);

/*
 * A packed dataset of tokens (written with BR_PACK_TOKENS: batchring pack
 * --tokens) as the tokens layout: windows of seq_len + 1 tokens inside one
 * shard, batches of int32 inputs[B][T] then targets[B][T], as
 * br_dataset_open_tokens; the token width comes from the headers, which
 * are checked as by br_dataset_open_packed. br_dataset_open_packed refuses
 * a tokens pack (it needs seq_len), and this function any other. flags
 * must be 0. Returns as br_dataset_open_packed. Since 0.3.
 */
BR_API int br_dataset_open_packed_tokens(br_dataset **out, const char *path, size_t seq_len,
                                         unsigned flags);

/* The metadata blob of sample id of a packed dataset written with
 * BR_PACK_META (in memory since the open): *data and *len. Returns 0, or
 * -EINVAL (no such sample, or no metadata). Since 0.3. */
BR_API int br_dataset_meta_get(const br_dataset *ds, uint64_t id, const void **data, size_t *len);

typedef struct br_pack_writer br_pack_writer;

/* Flags of br_pack_open. Since 0.3. */
#define BR_PACK_LABELS 0x1u /* every sample carries an int32 label */
#define BR_PACK_META 0x2u   /* every sample carries a metadata blob (may be empty) */
#define BR_PACK_TOKENS 0x4u /* samples are tokens of record_bytes (2 or 4) bytes:
                               br_pack_add appends any whole number of them */

/*
 * Starts a packed dataset in directory dir (created if missing; refused if
 * it holds .brp files already), shards named NAME-NNNNN.brp with NAME the
 * directory's last component. max_shard_bytes bounds a shard file (0: 1
 * GiB); a sample larger than that gets a shard of its own. record_bytes >
 * 0 makes a records layout (every sample that size); 0 an indexed one.
 * block_bytes is the checksum block (0: 64 KiB). Returns 0, or -EINVAL,
 * -EEXIST, -ENOMEM or a file's -errno, message in br_last_error(NULL).
 * Since 0.3.
 */
BR_API int br_pack_open(br_pack_writer **out, const char *dir, uint64_t max_shard_bytes,
                        uint64_t record_bytes, uint32_t block_bytes, unsigned flags);

/* Records what the samples are, for readers: dtype (at most 15 chars,
 * e.g. "uint8", "float32") and up to 4 dimensions. Call before the first
 * br_pack_add. Returns 0 or -EINVAL. Since 0.3. */
BR_API int br_pack_set_dtype(br_pack_writer *w, const char *dtype, uint32_t ndim,
                             const uint64_t *shape);

/* Appends one sample (label and meta are ignored without their flag).
 * Returns 0, or -EINVAL (a records layout's size mismatch), -ENOSPC or a
 * file's -errno; message in br_last_error(NULL). Since 0.3. */
BR_API int br_pack_add(br_pack_writer *w, const void *data, size_t len, int32_t label,
                       const void *meta, size_t meta_len);

/*
 * Appends every token of the token shards of pattern (a glob or "@LIST";
 * token_bytes 0 for llm.c .bin shards, 2 or 4 for raw files, checked as
 * br_dataset_open_tokens checks them) to a writer opened with
 * BR_PACK_TOKENS and record_bytes the tokens' width. Each file starts a
 * new shard, so a file that fits in one shard gives the same windows
 * packed as it does as a file. Returns 0, or -EINVAL (not a tokens writer,
 * another width, a bad shard), -ENOENT, or a file's -errno; message in
 * br_last_error(NULL). Since 0.3.
 */
BR_API int br_pack_add_tokens(br_pack_writer *w, const char *pattern, size_t token_bytes);

/* Finishes the last shard, writes every header's shard count and total,
 * and frees w (also on failure). *samples, *shards (may be NULL) get what
 * was written. Returns 0 or a file's -errno. Since 0.3. */
BR_API int br_pack_close(br_pack_writer *w, uint64_t *samples, uint32_t *shards);

/* Gives up: removes the shards written so far and frees w (NULL is fine).
 * Since 0.3. */
BR_API void br_pack_abort(br_pack_writer *w);

/* Where br_pack_verify found the first fault. Since 0.3. */
#define BR_PACK_BLOCK_HEADER (-1) /* the header (its checksum or a field) */
#define BR_PACK_BLOCK_TABLE (-2)  /* the block table (its checksum) */
#define BR_PACK_BLOCK_FILE (-3)   /* the file itself: missing, wrong size */
typedef struct br_pack_fault {
    uint32_t shard; /* the shard's index in name order */
    int64_t block;  /* the first bad block, or BR_PACK_BLOCK_* */
    uint64_t lo, hi; /* its byte range in the shard file, [lo, hi) */
} br_pack_fault;

/*
 * Checks every header and every block checksum of the packed dataset at
 * path (as br_dataset_open_packed). Returns 0 when all match, or -EBADMSG
 * with *fault (may be NULL) and br_last_error(NULL) naming the first bad
 * shard file, block and byte range; or -EINVAL/-ENOENT/-ENOMEM/-errno for
 * what cannot be read. Since 0.3.
 */
BR_API int br_pack_verify(const char *path, br_pack_fault *fault);

/*
 * The transform stage. A transform runs in the worker on each sample after
 * the dataset's reader has read it (into per-worker scratch, not the slot):
 * it gets the sample's bytes `in` (len of them), its id, and writes at most
 * out_cap bytes at `out` (inside the slot), setting *out_len; seed is the
 * batch's seed (br_job.seed: the same whichever worker loads the batch, so
 * a random augmentation is reproducible), state what opt->worker_init made
 * for this worker (NULL without one). Outputs are packed one after another;
 * br_batch.offsets says where each starts. A sample of the tokens layout
 * reaches it as its window: int32 inputs[T] then int32 targets[T] (8T
 * bytes). Returns 0, or a negative code: the batch then fails with
 * BR_ELOADER naming the sample.
 * Since 0.3.
 */
typedef int (*br_transform_fn)(const void *in, size_t len, uint64_t id, void *out,
                               size_t out_cap, size_t *out_len, uint64_t seed, void *state);

/*
 * Sets (fn != NULL) or clears (fn = NULL) the transform of every generator
 * opened on ds afterwards. max_out_bytes is the largest output of one
 * sample: opt->slot_bytes = 0 then means batch_size x max_out_bytes. user
 * is what opt->worker_init/worker_fini of br_open_dataset receive as their
 * `user`. Returns 0, or -EINVAL (ds NULL, or fn without max_out_bytes),
 * message in br_last_error(NULL). Since 0.3.
 */
BR_API int br_dataset_transform_set(br_dataset *ds, br_transform_fn fn, size_t max_out_bytes,
                                    void *user);

/*
 * br_open with the dataset's loader and labels. ids = NULL means every
 * sample, 0 .. n - 1 (n_ids is then ignored); otherwise ids must be < n.
 * opt->slot_bytes = 0 means batch_size x max_sample_bytes (rounded up to
 * the O_DIRECT alignment when reading with O_DIRECT), or with a transform
 * batch_size x its max_out_bytes. opt->worker_init/worker_fini (Since 0.3;
 * refused before) run in each worker around the dataset's own reader, with
 * the `user` of br_dataset_transform_set (NULL without one); their state
 * is the transform's `state`. Returns as br_open.
 * Since 0.2.
 */
BR_API int br_open_dataset(br_gen **out, br_dataset *ds, const uint64_t *ids, size_t n_ids,
                           const br_options *opt);

/*=====================================================================
 * 7. Serve and attach: named rings
 *=====================================================================
 *
 * A producer opens a generator with opt.name = "/name": the ring is a
 * POSIX shared-memory object (/dev/shm/name), created O_EXCL, mode 0600,
 * with room checked in /dev/shm and reserved up front. A stale ring of the
 * same name whose producer is dead is replaced; one whose producer runs is
 * -EEXIST. br_close (by the producer) removes it. The producer's br_next
 * is -EINVAL: its batches are for the consumer.
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
 * in br_last_error(NULL). Since 0.2.
 */
BR_API int br_attach(br_gen **out, const char *name, int timeout_ms);

/*
 * For the producer of a named ring: waits until its consumer has taken
 * the last batch of the last epoch (0), up to timeout_ms (-1: forever).
 * Returns 0, -ETIMEDOUT (still serving; call again), BR_ESTOPPED (the
 * consumer stopped on an error), BR_EWORKER (the workers are gone), or
 * -EINVAL (not a producer). A consumer that dies is forgotten, so the next
 * one can attach. Since 0.2.
 */
BR_API int br_serve_wait(br_gen *g, int timeout_ms);

/*
 * The pid of the live consumer attached to g's ring, or 0 if none.
 * Returns 0, or -EINVAL. Since 0.3 (br_consumer_pid in 0.2).
 */
BR_API int br_consumer_pid_get(const br_gen *g, int32_t *pid);

/*
 * Removes the named ring if its producer is dead. Returns 0 (removed),
 * -EBUSY (its producer runs), or br_ring_status_get's errors. Since 0.2.
 */
BR_API int br_ring_remove_stale(const char *name);

/*
 * Checks a ring name without touching /dev/shm: "/" followed by 1 to 250
 * characters, none of them "/", and not "/." or "/..". The rule every call
 * that takes a name applies (opt.name, br_attach, br_ring_status_get,
 * br_ring_remove_stale). Returns 0, or -EINVAL with the rule in
 * br_last_error(NULL). Since 0.3.
 */
BR_API int br_ring_name_check(const char *name);

/*=====================================================================
 * 8. Observe
 *=====================================================================*/

/* Aggregate counters of a generator, read with br_stats_get() (rule b
 * above). Since 0.1. */
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
    uint64_t stall_sleeps;  /* Since 0.3. Times br_next slept (a futex wait)
                               for a batch: its wake-ups; per batch, the
                               cost of a slow loader beside stall_ns */
    uint64_t slot_sleeps;   /* Since 0.3. Times workers slept for a free
                               slot, summed (the ring was full) */
    uint32_t hold;          /* Since 0.3. Batches the caller may hold at
                               once: opt.hold, or for br_attach the hold
                               the producer chose; 1 when br_next gives
                               the previous batch back itself */
} br_stats;

/* Per-worker counters, read with br_worker_stats_get() and
 * br_ring_status_get() (rule b above). Since 0.1. */
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
    uint64_t slot_sleeps;   /* Since 0.3. Times it slept for a free slot */
    uint64_t io_preads;     /* Since 0.3. Of io_reads, those read through
                               pread; the rest of the reads not copied went
                               through io_backend (the reader measures which
                               path is cheapest per file: docs/datasets.md) */
} br_worker_stats;

/*
 * Fills the first `size` bytes of *out with the generator's counters
 * (cheap: reads shared memory; rule b). Call it through br_stats_get().
 * Returns 0, or -EINVAL for NULL arguments or a size smaller than the
 * br_stats of 0.3. Since 0.3.
 */
BR_API int br_stats_get_sized(const br_gen *g, br_stats *out, size_t size);

/* Fills *out. Returns as br_stats_get_sized. Since 0.1 (a static inline
 * over br_stats_get_sized since 0.3). */
static inline int br_stats_get(const br_gen *g, br_stats *out)
{
    return br_stats_get_sized(g, out, sizeof *out);
}

/*
 * Fills the first `size` bytes of *out with worker i's counters,
 * 0 <= i < workers (rule b). Call it through br_worker_stats_get().
 * Returns 0, or -EINVAL (NULL arguments, i out of range, or a size smaller
 * than the br_worker_stats of 0.3). Since 0.3.
 */
BR_API int br_worker_stats_get_sized(const br_gen *g, uint32_t i, br_worker_stats *out,
                                     size_t size);

/* Fills *out. Returns as br_worker_stats_get_sized. Since 0.1 (a static
 * inline over br_worker_stats_get_sized since 0.3). */
static inline int br_worker_stats_get(const br_gen *g, uint32_t i, br_worker_stats *out)
{
    return br_worker_stats_get_sized(g, i, out, sizeof *out);
}

/* br_ring_status.finished: how the ring's consumer ended. Since 0.3 (the
 * numbers 0, 1, 2 since 0.2). */
enum br_ring_finished {
    BR_RING_RUNNING = 0, /* not finished */
    BR_RING_ENDED = 1,   /* the consumer took the last batch of the last epoch */
    BR_RING_STOPPED = 2  /* the consumer stopped on an error */
};

/* A snapshot of a named ring, read from outside without changing it
 * (rule b above). Since 0.2. */
typedef struct br_ring_status {
    int32_t owner_pid;          /* the producer */
    bool owner_alive;           /* false: a stale ring (br_ring_remove_stale) */
    uint32_t owner_uid;
    int32_t consumer_pid;       /* the live attached consumer, 0 if none */
    uint32_t finished;          /* enum br_ring_finished */
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
 * Reads the named ring's header and slot states into the first
 * `status_size` bytes of *out and, when workers is not NULL, up to
 * workers_cap workers' counters into the array `workers`, whose elements
 * are `worker_size` bytes each (rule b). Call it through
 * br_ring_status_get(). Read-only: it maps the ring PROT_READ and claims
 * nothing. Returns 0, -ENOENT, -EACCES, BR_EBADRING (also for a
 * `finished` word that is none of enum br_ring_finished), BR_EVERSION,
 * -EINVAL (also for sizes smaller than the structs of 0.3); message in
 * br_last_error(NULL). Since 0.3.
 */
BR_API int br_ring_status_get_sized(const char *name, br_ring_status *out, size_t status_size,
                                    br_worker_stats *workers, uint32_t workers_cap,
                                    size_t worker_size);

/* Fills *out and up to workers_cap entries of workers (may be NULL).
 * Returns as br_ring_status_get_sized. Since 0.3 (br_ring_stat in 0.2). */
static inline int br_ring_status_get(const char *name, br_ring_status *out,
                                     br_worker_stats *workers, uint32_t workers_cap)
{
    return br_ring_status_get_sized(name, out, sizeof *out, workers, workers_cap,
                                    sizeof(br_worker_stats));
}

/*=====================================================================
 * 9. Versions
 *=====================================================================
 *
 * BR_VERSION_MAJOR/MINOR/PATCH and BR_VERSION_NUMBER (batchring/version.h)
 * are the header's; these are the linked library's. The compatibility
 * promise is in batchring/version.h.
 */

/* BR_VERSION_NUMBER of the library actually linked. Since 0.1. */
BR_API unsigned br_version(void);

/* "MAJOR.MINOR.PATCH" of the library actually linked. Since 0.1. */
BR_API const char *br_version_string(void);

#ifdef __cplusplus
}
#endif

#endif /* BATCHRING_H */
