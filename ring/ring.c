/* SPDX-License-Identifier: MIT */
/*
 * The ring protocol, in one place.
 *
 * Batch `seq` lives in slot seq % nslots, on lap seq / nslots. Each slot has
 * one 32-bit futex word, (lap << 2) | phase:
 *
 *   worker   claims seq (CAS on header.claim), waits for (lap, FREE),
 *            CASes it to (lap, LOADING), writes ids, labels, data and the
 *            descriptor, then publishes (lap, READY) or (lap, FAILED).
 *   consumer waits for (lap, READY|FAILED) with acquire, hands the batch
 *            out, and on its next call publishes (lap + 1, FREE).
 *
 * Only the owner of a phase writes the slot's other fields: the loading
 * worker between LOADING and READY, nobody while READY (the consumer only
 * reads). Publishing READY or FAILED is a seq_cst store, so (a) everything the publisher
 * wrote before is visible to whoever acquires the new word, and (b) the
 * store is ordered before the publisher's load of `waiters`; a sleeper
 * increments `waiters` (seq_cst) before it checks the word. Of the two, at
 * least one sees the other: no wake-up is lost. Sleeps are bounded anyway,
 * so that a dead peer is noticed. Where the workers hold every CPU, a
 * worker that woke a sleeper (the consumer, which sleeps until a run of
 * batches is ready) then yields its CPU to it (publish in
 * producer/worker.c), so that the consumer does not wait for a CPU that
 * workers hold while the ring fills.
 *
 * Waking workers. A worker whose slot is not yet free does not sleep on
 * the slot's word: it sleeps on the header's `kick` word, counted in
 * `slot_sleepers`. The first such sleep for a slot is a nap, counted in
 * the word's high half (BR_NAPPER_ONE): timed to when the slot and the
 * run of max(1, nslots / 2) slots after it should be free at the pace the
 * worker saw the cursor move (nap_ns in producer/worker.c). If the slot is
 * still taken after the nap, or the pace is not known yet, the worker
 * sleeps untimed, counted in the low half (BR_SLEEPER_ONE), with no
 * timeout but the 100 ms slice that notices a dead parent: so a trainer
 * that pauses costs a worker one extra wake-up, not one per guessed
 * period. The consumer bumps `kick` and wakes sleepers (br__kick_workers)
 * in two places only:
 *  - after a run of max(1, nslots / 2) releases (consumer.c,
 *    br__consumer_release), if an untimed sleeper is counted
 *    (BR_SLEEPERS_UNTIMED): workers that ran ahead of the trainer (the
 *    ring full, workers asleep) are woken once per half ring, find that
 *    half free and fill it in one go, while the other half, still ready,
 *    covers their wake-up. Nappers wake by themselves at about that time,
 *    so while the trainer keeps its pace this kick finds no untimed
 *    sleeper and costs the trainer no syscall. Between runs a release is
 *    one store and no load of slot_sleepers; at the end of a run one load,
 *    and a syscall only when an untimed sleeper sleeps.
 *  - before it waits itself (consumer.c, br__consumer_wait), and again
 *    before each of its sleep slices, if anyone sleeps or naps
 *    (BR_SLEEPERS_ALL): a worker that sleeps then must load. No nap's
 *    timeout is needed for progress: this kick wakes nappers too.
 * No worker sleeps through a batch the consumer waits for: the consumer
 * waits for seq only after releasing every batch below it, so the worker
 * of seq finds its slot (that of seq - nslots) FREE or is kicked.
 * The ordering argument is the same Dekker pair as above:
 *   [K1] the consumer's release stores of slot words (br__slot_release),
 *        then a seq_cst fence and its seq_cst load of slot_sleepers, and
 *        if non-zero the seq_cst bump of kick and FUTEX_WAKE
 *        (br__kick_workers). A release is not seq_cst: the fence, once
 *        per run, gives the store-load order for every release of the
 *        run (C11's fence rule: if the load after the fence misses the
 *        worker's increment, the fence comes before that increment in the
 *        single total order, so the worker's later seq_cst load of its
 *        slot word sees every release stored before the fence);
 *   [K2] the worker's seq_cst increment of slot_sleepers, its load of
 *        kick, then its load of the slot word, and a futex wait on kick
 *        while kick holds what it loaded (br__worker_sleep).
 * [K1] pairs with [K2]: either the worker's load of the slot word sees the
 * release, or the consumer's load of slot_sleepers sees the worker, and
 * then its bump of kick makes the futex wait fail or wakes it. Nappers and
 * untimed sleepers are counted in the same word, so the pairing is the
 * same for both; which half the consumer tests decides only whom a kick
 * may skip. model/slots.pml checks this without the slices and without
 * the naps' timeouts (-DKICKS, -DNAPS): a worker blocked in its sleep for
 * good while the consumer waits is an error there.
 *
 * Stopping workers. The supervisor stops a run by storing STOPPING in the
 * header's `state`, bumping `kick` and waking every sleeper
 * (br__ring_stop_workers). A worker checks `state` before each claim and
 * after each sleep; a worker about to sleep loads `kick`, then `state`,
 * both seq_cst, and sleeps only while the state is RUNNING. So either it
 * sees STOPPING, or its load of kick came before the bump and its futex
 * wait fails (the word changed) or is woken: no worker sleeps through a
 * stop.
 *
 * Every sleep above and below goes through one wrapper, br__futex_wait /
 * br__futex_wake: a wait compares the word in the kernel, so a wake that
 * comes between the sleeper's load and its sleep is never lost, and every
 * sleep is bounded anyway.
 *
 * Starting the workers (supervisor). br_open forks the supervisor and
 * sleeps on the header's `sup_state` while it is STARTING, in 10 ms slices
 * between which it checks that the supervisor lives. The supervisor stores
 * RUNNING once every worker is forked, or FAILED after writing fail_code
 * and fail_msg, with release, then wakes every sleeper
 * (supervisor.c, set_sup_state); pairs with br_open's acquire load of
 * sup_state (supervisor.c, br__sup_start), which then reads the text.
 *
 * Named rings. A producer (br_open with a name, then br_serve_wait) and a
 * consumer in another process (br_attach) meet through four header words:
 *  - `consumer`, the claim: br_attach stores (start time << 32) | pid with
 *    release once it holds the consumer's lock (byte 1 of the object);
 *    pairs with the acquire loads in br_ring_status_get, br_consumer_pid_get and
 *    br__ring_attach. The word is for display; liveness is the lock.
 *    Detach clears it with a CAS (acq_rel) from its own value only, so a
 *    newer consumer's claim is never erased; br_serve_wait clears a dead
 *    consumer's word the same way.
 *  - `cursor` and `consumer_wait_since`: stored by br_attach (the first
 *    batch not released, and 0) before it announces itself; the wait
 *    protocol beside wait_announce (consumer/consumer.c) says how readers
 *    pair them.
 *  - `consumer_done`: RUNNING at attach, EOF or FAILED when the run ends,
 *    stored with release (api/next.c, consumer_finished).
 *  - `consumer_events`, a futex word: [E1] after any of the stores above
 *    (attach, detach, end of run) the consumer bumps it (seq_cst) and wakes
 *    the producer (br__ring_consumer_event). [E2] br_serve_wait loads
 *    consumer_events (acquire), then consumer_done and consumer, and sleeps
 *    while consumer_events still holds what it loaded. [E1] pairs with
 *    [E2]: if the producer's load saw the bump, its acquire makes the
 *    stores before it visible; if not, its futex wait finds the word
 *    changed or is woken. The sleep is in 100 ms slices, between which the
 *    producer checks its supervisor and the consumer's lock.
 *
 * The header's claim counter hands out seqs; the consumer's cursor says what
 * is consumed. Worker records say which seq each worker holds, so that the
 * supervisor can give a dead worker's batch to its replacement.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ring/error.h"
#include "ring/ring.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

uint64_t br__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t page_size(void)
{
    return (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Rounds v up to a multiple of align (a power of two); false on overflow. */
static bool round_up(uint64_t v, uint64_t align, uint64_t *out)
{
    uint64_t r;
    if (__builtin_add_overflow(v, align - 1, &r))
        return false;
    *out = r & ~(align - 1);
    return true;
}

int br__ring_layout(const struct br_ring_geometry *g, struct br_ring_header *h, char *msg)
{
    const uint64_t page = page_size();
    bool labels = g->flags & BR_RING_LABELS;
    uint64_t desc_bytes, worker_bytes, meta_end, slots_bytes;

    h->header_bytes = sizeof(struct br_ring_header);
    h->nslots = g->nslots;
    h->nworkers = g->nworkers;
    h->batch_size = g->batch_size;
    h->flags = g->flags;
    h->slot_bytes = g->slot_bytes;
    h->n_ids = g->n_ids;
    h->epochs = g->epochs;
    h->batches_per_epoch = g->batches_per_epoch;
    h->end_seq = g->end_seq;
    h->page_size = (uint32_t)page;

    desc_bytes = (uint64_t)g->nslots * sizeof(struct br_slot_desc);
    worker_bytes = (uint64_t)g->nworkers * sizeof(struct br_worker_rec);
    h->desc_offset = sizeof(struct br_ring_header);
    h->worker_offset = h->desc_offset + desc_bytes;
    h->meta_offset = h->worker_offset + worker_bytes;
    if (!round_up(br__meta_err_offset(g->batch_size, labels) + BR_ERR_CAP, BR_CACHE_LINE,
                  &h->meta_stride))
        goto overflow;
    if (__builtin_mul_overflow(h->meta_stride, (uint64_t)g->nslots, &meta_end) ||
        __builtin_add_overflow(meta_end, h->meta_offset, &meta_end) ||
        !round_up(meta_end, page, &h->data_offset))
        goto overflow;
    /* Guard mode adds a PROT_NONE page after each slot's page-rounded data
     * (br__ring_protect_guards): data stays page-aligned, and a write past
     * the rounded end faults. */
    if (g->slot_bytes == 0 || !round_up(g->slot_bytes, page, &h->slot_stride) ||
        ((g->flags & BR_RING_GUARD) &&
         __builtin_add_overflow(h->slot_stride, page, &h->slot_stride)) ||
        __builtin_mul_overflow(h->slot_stride, (uint64_t)g->nslots, &slots_bytes) ||
        __builtin_add_overflow(slots_bytes, h->data_offset, &h->total_bytes) ||
        h->total_bytes > (uint64_t)SSIZE_MAX)
        goto overflow;
    return 0;
overflow:
    return br__fail(msg, -EOVERFLOW,
                    "ring size overflows: %u slots x slot_bytes %llu (plus metadata for "
                    "batch_size %u) does not fit in 64 bits",
                    g->nslots, (unsigned long long)g->slot_bytes, g->batch_size);
}

/* MemAvailable from /proc/meminfo, in bytes; 0 when unknown. */
static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    char line[256];
    unsigned long long kib = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            break;
    fclose(f);
    return (uint64_t)kib * 1024u;
}

static int ring_size_error(char *msg, int code, const struct br_ring_header *h, const char *what)
{
    char total[32], slot[32], avail[32];
    return br__fail(msg, code,
                    "cannot reserve the ring: it needs %s (%u slots x %s of slot_bytes, plus "
                    "%llu bytes of header and metadata) but %s; lower slots or slot_bytes",
                    br__format_bytes(total, h->total_bytes), h->nslots,
                    br__format_bytes(slot, h->slot_stride),
                    (unsigned long long)h->data_offset,
                    what ? what : br__format_bytes(avail, mem_available()));
}

uint64_t br__proc_start_time(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long start = 0;
    ssize_t n;
    int fd;
    char *p;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* Field 2 (comm) may hold spaces and parentheses: count from the last
     * ')'. starttime is field 22, the 20th after it. */
    p = strrchr(buf, ')');
    if (!p)
        return 0;
    for (int field = 2; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    if (!p || sscanf(p + 1, "%llu", &start) != 1)
        return 0;
    return start;
}

bool br__proc_alive(pid_t pid, uint64_t start)
{
    char path[64], state = 0;
    FILE *f;
    if (pid <= 0 || br__proc_start_time(pid) != start)
        return false;
    /* A zombie has exited: only its parent has not reaped it yet. */
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "re");
    if (f) {
        char buf[512];
        if (fgets(buf, sizeof buf, f)) {
            char *p = strrchr(buf, ')');
            if (p && p[1] == ' ')
                state = p[2];
        }
        fclose(f);
    }
    return state != 'Z' && state != 'X';
}

int br__ring_check_name(const char *name, char *msg)
{
    size_t len;
    if (!name)
        return br__fail(msg, -EINVAL, "ring name is NULL");
    len = strlen(name);
    /* "/." and "/.." would name /dev/shm itself or its parent. */
    if (name[0] != '/' || len < 2 || len > 251 || strchr(name + 1, '/') ||
        !strcmp(name, "/.") || !strcmp(name, "/.."))
        return br__fail(msg, -EINVAL,
                        "ring name '%s' must be '/' followed by 1 to 250 characters, none of "
                        "them '/', and not . or .. (like /train)",
                        name);
    return 0;
}

/* Room for `bytes` more on the file system behind /dev/shm? */
static int check_shm_room(const struct br_ring_header *h, char *msg)
{
    struct statvfs vfs;
    uint64_t room;
    char need[32], slot[32], have[32];
    if (statvfs("/dev/shm", &vfs) < 0)
        return 0; /* nothing to check against; fallocate will tell */
    room = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    if (h->total_bytes <= room)
        return 0;
    return br__fail(msg, -ENOSPC,
                    "cannot create the ring: it needs %s (%u slots x %s of slot_bytes, plus "
                    "metadata) but /dev/shm has only %s free; lower slots or slot_bytes, or "
                    "give /dev/shm more room (a container's default is 64 MB: docker run "
                    "--shm-size=%lluM, or mount -o remount,size=... /dev/shm)",
                    br__format_bytes(need, h->total_bytes), h->nslots,
                    br__format_bytes(slot, h->slot_stride), br__format_bytes(have, room),
                    (unsigned long long)(h->total_bytes >> 20) * 2 + 64);
}

/*
 * Named rings: opening a name, and who holds it.
 *
 * A name in /dev/shm may hold anything any local user put there: a FIFO
 * (whose open would block), a symbolic link, another program's shared
 * memory, another user's object. Every open of a ring name goes through
 * br__ring_open (O_NONBLOCK | O_NOFOLLOW, then fstat), and nothing but a
 * regular object of ours is used, let alone unlinked.
 *
 * Liveness has one source, OFD byte-range locks on the object (fcntl
 * F_OFD_*), which belong to the open file description: the kernel drops
 * them when its last descriptor is closed, that is when the process that
 * holds it is gone, in whatever PID namespace it ran. Pids are for display.
 *
 *   byte 0  the producer's read lock, taken right after it creates the
 *           object and held for the ring's life (the supervisor closes its
 *           inherited copy, so the lock dies with the producer). A gc or a
 *           replacing producer takes the write lock on it before it unlinks.
 *   byte 1  the attached consumer's write lock, held while it is attached:
 *           one consumer at a time.
 *
 * Anyone tests a lock with F_OFD_GETLK, which changes nothing and works on
 * a read-only descriptor. GETLK does not report the caller's own lock (the
 * same open file description), so test with a descriptor of your own open.
 */

static const char *file_kind(mode_t mode)
{
    return S_ISFIFO(mode)   ? "FIFO"
           : S_ISDIR(mode)  ? "directory"
           : S_ISLNK(mode)  ? "symbolic link"
           : S_ISSOCK(mode) ? "socket"
           : S_ISCHR(mode)  ? "character device"
           : S_ISBLK(mode)  ? "block device"
                            : "file of an unknown type";
}

int br__ring_open(const char *name, int flags, struct stat *st, char *msg)
{
    /* shm_open passes its flags to open(2): O_NONBLOCK makes the open of a
     * FIFO return at once (fstat below refuses it), O_NOFOLLOW refuses a
     * symbolic link. For a regular object O_NONBLOCK changes nothing. */
    int fd = shm_open(name, flags | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP || e == EISDIR)
            return br__fail(msg, BR_EBADRING,
                            "%s is not a batchring ring: /dev/shm%s is a %s (left alone)", name,
                            name, e == ELOOP ? "symbolic link" : "directory");
        return br__fail(msg, -e, "cannot open ring %s: %s%s", name, strerror(e),
                        e == ENOENT ? " (is its producer running? batchring ls lists rings)"
                                    : "");
    }
    if (fstat(fd, st) < 0) {
        int e = errno;
        close(fd);
        return br__fail(msg, -e, "fstat of ring %s: %s", name, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return br__fail(msg, BR_EBADRING,
                        "%s is not a batchring ring: /dev/shm%s is a %s, not a shared-memory "
                        "object (left alone)",
                        name, name, file_kind(st->st_mode));
    }
    if (st->st_uid != geteuid()) {
        close(fd);
        return br__fail(msg, -EACCES, "ring %s belongs to uid %u, not to this process (uid %u)",
                        name, (unsigned)st->st_uid, (unsigned)geteuid());
    }
    return fd;
}

/* F_OFD_SETLK of `type` on byte `byte`: 0, -EBUSY if another open file
 * description holds a conflicting lock, or -errno. */
static int ofd_setlk(int fd, short type, off_t byte)
{
    struct flock lk = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    if (fcntl(fd, F_OFD_SETLK, &lk) == 0)
        return 0;
    return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
}

/* F_OFD_GETLK: the type of a lock another open file description holds on
 * byte `byte` (a write lock conflicts with every lock, so any is seen):
 * F_RDLCK, F_WRLCK, F_UNLCK for none, or -errno. */
static int ofd_holder(int fd, off_t byte)
{
    struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    if (fcntl(fd, F_OFD_GETLK, &lk) < 0)
        return -errno;
    return lk.l_type;
}

/* 1 if a lock of `type` is held on `byte` by another description, 0 if
 * none or one of the other type, or -errno. */
static int ofd_held_as(int fd, off_t byte, short type)
{
    int holder = ofd_holder(fd, byte);
    return holder < 0 ? holder : holder == type;
}

int br__ring_lock_producer(int fd) { return ofd_setlk(fd, F_RDLCK, BR_LOCK_PRODUCER); }
int br__ring_lock_consumer(int fd) { return ofd_setlk(fd, F_WRLCK, BR_LOCK_CONSUMER); }
/* Only a producer takes the read lock on its byte; a write lock there is a
 * remover's (br__ring_unlink_stale), which only gets it when no producer is
 * left: seen in the instant a gc removes a stale ring, it is no producer. */
int br__ring_producer_alive(int fd) { return ofd_held_as(fd, BR_LOCK_PRODUCER, F_RDLCK); }
int br__ring_consumer_alive(int fd) { return ofd_held_as(fd, BR_LOCK_CONSUMER, F_WRLCK); }

/* What an existing object at a ring's name is, from its header, trusting
 * nothing else in it: 0 for a ring of this layout (*pid its producer), or
 * BR_EBADRING / BR_EVERSION with a message that says it is left alone. */
static int read_owner(int fd, const char *name, pid_t *pid, char *msg)
{
    struct br_ring_header h;
    if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h ||
        br__load_relaxed_u32(&h.magic) != BR_RING_MAGIC)
        return br__fail(msg, BR_EBADRING,
                        "%s is not a batchring ring (no ring header in /dev/shm%s; left alone)",
                        name, name);
    if (h.layout_major != BR_LAYOUT_MAJOR)
        return br__fail(msg, BR_EVERSION,
                        "ring %s has layout %u.%u, from another version of batchring (this one "
                        "knows %u.x); left alone: that version's batchring gc removes it",
                        name, h.layout_major, h.layout_minor, BR_LAYOUT_MAJOR);
    *pid = h.owner_pid;
    return 0;
}

int br__ring_unlink_stale(const char *name, pid_t *owner, char *msg)
{
    struct stat st, now;
    char path[300];
    pid_t pid = 0;
    int rc, fd;

    *owner = 0;
    fd = br__ring_open(name, O_RDWR, &st, msg);
    if (fd < 0)
        return fd;
    /* The write lock on the producer's byte: only if no producer holds its
     * read lock, which it takes before the object has any content. Held
     * while we unlink, so that nobody else replaces the ring meanwhile. */
    rc = ofd_setlk(fd, F_WRLCK, BR_LOCK_PRODUCER);
    if (rc == -EBUSY && ofd_holder(fd, BR_LOCK_PRODUCER) == F_WRLCK) {
        /* Another remover (a second gc) holds it and unlinks the name:
         * gone, as far as our caller is concerned. */
        close(fd);
        return br__fail(msg, -ENOENT, "ring %s is being removed by another process", name);
    }
    if (rc == -EBUSY) {
        if (read_owner(fd, name, &pid, msg) == 0)
            *owner = pid;
        close(fd);
        if (pid)
            return br__fail(msg, -EBUSY, "ring %s is served by pid %d, which is running", name,
                            (int)pid);
        return br__fail(msg, -EBUSY, "ring %s is locked by a running process (a producer "
                        "creating it?)", name);
    }
    if (rc == 0)
        rc = read_owner(fd, name, &pid, msg);
    else
        br__fail(msg, rc, "locking ring %s: %s", name, strerror(-rc));
    *owner = pid;
    /* The name must still refer to the object we locked: a name unlinked
     * and created again since our open is someone else's now. */
    snprintf(path, sizeof path, "/dev/shm%s", name);
    if (rc == 0 && (lstat(path, &now) < 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino))
        rc = br__fail(msg, -ENOENT, "ring %s was removed or replaced meanwhile", name);
    if (rc == 0 && shm_unlink(name) < 0 && errno != ENOENT)
        rc = br__fail(msg, -errno, "shm_unlink %s: %s", name, strerror(errno));
    close(fd);
    return rc;
}

/* Opens `name` for a new ring, replacing a stale ring of ours whose
 * producer is gone (nothing else), and takes the producer's lock on it. */
static int open_named(const char *name, char *msg)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        pid_t owner;
        int rc, fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0) {
            /* Taken before the object has any content: a ring that exists
             * at all is locked until its producer is gone. */
            rc = br__ring_lock_producer(fd);
            if (rc == 0)
                return fd;
            /* A gc looked at our empty object in the instant before the
             * lock (it leaves non-rings alone): ours to remove and retry. */
            close(fd);
            shm_unlink(name);
            if (rc == -EBUSY)
                continue;
            return br__fail(msg, rc, "locking ring %s: %s", name, strerror(-rc));
        }
        if (errno != EEXIST)
            return br__fail(msg, -errno, "shm_open %s: %s", name, strerror(errno));
        rc = br__ring_unlink_stale(name, &owner, msg);
        if (rc == -ENOENT)
            continue;
        /* Served, not a ring, another version's ring, another user's: the
         * name is taken, and the message says by what. */
        if (rc == -EBUSY || rc == BR_EBADRING || rc == BR_EVERSION || rc == -EACCES)
            return -EEXIST;
        if (rc)
            return rc;
    }
    return br__fail(msg, -EEXIST, "ring %s: could not replace a stale ring", name);
}

int br__ring_create(struct br_ring *r, const struct br_ring_geometry *g, const char *name,
                    char *msg)
{
    struct br_ring_header h;
    uint64_t avail;
    void *base;
    int fd, rc;

    memset(r, 0, sizeof *r);
    memset(&h, 0, sizeof h);
    rc = br__ring_layout(g, &h, msg);
    if (rc)
        return rc;

    avail = mem_available();
    if (avail && h.total_bytes > avail) {
        char have[64], a[32];
        snprintf(have, sizeof have, "only %s of memory is available", br__format_bytes(a, avail));
        return ring_size_error(msg, -ENOMEM, &h, have);
    }
    if (name) {
        rc = br__ring_check_name(name, msg);
        if (!rc)
            rc = check_shm_room(&h, msg);
        if (rc)
            return rc;
        fd = open_named(name, msg);
        if (fd < 0)
            return fd;
    } else {
        fd = memfd_create("batchring", MFD_CLOEXEC);
        if (fd < 0)
            return br__fail(msg, -errno, "memfd_create: %s", strerror(errno));
    }
    /* fallocate charges the memory now: running out is an error here, not
     * a SIGBUS in a worker halfway through an epoch. */
    if (ftruncate(fd, (off_t)h.total_bytes) < 0 ||
        fallocate(fd, 0, 0, (off_t)h.total_bytes) < 0) {
        int e = errno;
        if (name)
            shm_unlink(name);
        close(fd);
        if (e == ENOSPC || e == ENOMEM || e == EFBIG)
            return ring_size_error(msg, -ENOMEM, &h, strerror(e));
        return br__fail(msg, -e, "reserving %llu bytes for the ring: %s",
                        (unsigned long long)h.total_bytes, strerror(e));
    }
    base = mmap(NULL, h.total_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    rc = -errno;
    /* The mapping keeps the memory; forked workers inherit it. A named
     * ring's descriptor stays open: it carries the producer's lock. */
    if (base == MAP_FAILED && name)
        shm_unlink(name);
    if (!name || base == MAP_FAILED)
        close(fd);
    if (base == MAP_FAILED) {
        return br__fail(msg, rc, "mmap of %llu bytes: %s", (unsigned long long)h.total_bytes,
                        strerror(-rc));
    }

    /* The object is fresh and zero. Fill in what is not zero, magic last. */
    struct br_ring_header *hdr = base;
    memcpy((char *)hdr + sizeof hdr->magic, (char *)&h + sizeof h.magic,
           offsetof(struct br_ring_header, claim) - sizeof h.magic);
    hdr->layout_major = BR_LAYOUT_MAJOR;
    hdr->layout_minor = BR_LAYOUT_MINOR;
    hdr->owner_pid = (int32_t)getpid();
    hdr->owner_start = br__proc_start_time(getpid());
    hdr->owner_uid = (uint32_t)geteuid();
    hdr->start_seq = g->start_seq;
    hdr->hold = g->hold;
    br__store_relaxed_u32(&hdr->state, BR_RUN_RUNNING);
    br__store_relaxed_u64(&hdr->fail_seq, BR_NO_FAILURE);
    br__ring_bind(r, base, h.total_bytes, base);
    if (name) {
        r->owner_fd = fd;
        r->has_owner_fd = true;
    }
    for (uint32_t i = 0; i < g->nworkers; i++)
        br__store_relaxed_u64(&r->workers[i].job, BR_JOB_IDLE);
    /* A run resumed at start_seq: each slot is free for the first seq at
     * or after it that maps there. */
    br__store_relaxed_u64(&hdr->claim, g->start_seq);
    br__store_relaxed_u64(&hdr->cursor, g->start_seq);
    for (uint32_t i = 0; i < g->nslots; i++) {
        uint64_t first = g->start_seq + (i + g->nslots - g->start_seq % g->nslots) % g->nslots;
        br__store_relaxed_u32(&r->desc[i].word, br__slot_word(first / g->nslots, BR_FREE));
    }

    rc = br__ring_populate(r, msg);
    /* Before any worker is forked: they inherit the protection. */
    if (!rc)
        rc = br__ring_protect_guards(r, msg);
    if (rc) {
        /* Unlink while we still hold the lock (unmap drops it). */
        if (name)
            shm_unlink(name);
        br__ring_unmap(r);
        return rc;
    }
    /* Pairs with the acquire load of magic in br__ring_validate: whoever
     * sees the magic sees the whole header. */
    br__store_release_u32(&hdr->magic, BR_RING_MAGIC);
    return 0;
}

int br__ring_populate_range(const struct br_ring *r, uint64_t offset, uint64_t len, char *msg)
{
    uint8_t *start = (uint8_t *)r->base + offset;
    if (len == 0 || madvise(start, len, MADV_POPULATE_WRITE) == 0)
        return 0;
    if (errno == EINVAL) {
        /* Kernel before 5.14: read every page. A read fault maps a page of
         * a shared writable shmem mapping writable, and a read cannot undo
         * another process's write the way a read-modify-write could. */
        const uint64_t page = page_size();
        uint8_t sink = 0;
        for (uint64_t off = 0; off < len; off += page)
            sink ^= ((volatile uint8_t *)start)[off];
        (void)sink;
        return 0;
    }
    {
        char size[32];
        return br__fail(msg, errno == ENOMEM || errno == EFAULT ? -ENOMEM : -errno,
                        "faulting in the ring (%s): %s", br__format_bytes(size, len),
                        strerror(errno));
    }
}

int br__ring_populate(const struct br_ring *r, char *msg)
{
    const uint64_t data_off = (uint64_t)(r->data - (uint8_t *)r->base);
    int rc;
    if (r->slot_span == r->slot_stride)
        return br__ring_populate_range(r, 0, r->bytes, msg);
    /* Guard mode: every page but the guards, which are PROT_NONE (or about
     * to be) and must stay unwritten. */
    rc = br__ring_populate_range(r, 0, data_off, msg);
    for (uint32_t i = 0; rc == 0 && i < r->nslots; i++)
        rc = br__ring_populate_range(r, data_off + (uint64_t)i * r->slot_stride, r->slot_span,
                                     msg);
    return rc;
}

int br__ring_protect_guards(const struct br_ring *r, char *msg)
{
    for (uint32_t i = 0; i < r->nslots && r->slot_span < r->slot_stride; i++) {
        uint8_t *guard = r->data + (uint64_t)i * r->slot_stride + r->slot_span;
        if (mprotect(guard, r->slot_stride - r->slot_span, PROT_NONE) < 0)
            return br__fail(msg, -errno, "guard mode: mprotect of the guard page after slot %u: %s",
                            i, strerror(errno));
    }
    return 0;
}

/* Validates a private copy of the header mapped at base, taken once, so
 * that whatever is checked is what is used (br__ring_bind keeps it). */
static int header_copy_validate(const void *base, size_t bytes, struct br_ring_header *copy,
                                char *msg)
{
    if (bytes < sizeof *copy)
        return br__ring_validate(base, bytes, msg); /* names the short object */
    /* Pairs with the creator's release store of magic: a copy taken after
     * it holds the whole header the creator wrote. */
    (void)br__load_acquire_u32(&((const struct br_ring_header *)base)->magic);
    memcpy(copy, base, sizeof *copy);
    return br__ring_validate(copy, bytes, msg);
}

int br__ring_check_bind(struct br_ring *r, void *base, size_t bytes, char *msg)
{
    struct br_ring_header geo;
    int rc = header_copy_validate(base, bytes, &geo, msg);
    if (rc == 0)
        br__ring_bind(r, base, bytes, &geo);
    return rc;
}

/* The one opener of an existing named ring, for its consumer (read-write,
 * with the claim and the prefault) or for an observer (read-only: no lock
 * taken, nothing faulted in, no uid or liveness demanded, since stat and gc
 * look at stale and foreign rings too). */
static int ring_map_named(struct br_ring *r, const char *name, bool consumer, char *msg)
{
    struct br_ring_header geo;
    struct stat st;
    void *base;
    int fd, rc;

    memset(r, 0, sizeof *r);
    rc = br__ring_check_name(name, msg);
    if (rc)
        return rc;
    /* Never blocks (a FIFO at the name is refused), never follows a link. */
    fd = br__ring_open(name, consumer ? O_RDWR : O_RDONLY, &st, msg);
    if (fd < 0)
        return fd;
    if ((uint64_t)st.st_size < sizeof(struct br_ring_header)) {
        close(fd);
        return br__fail(msg, BR_EBADRING, "bad ring %s: the object has %lld bytes, less than "
                        "the %zu-byte header", name, (long long)st.st_size,
                        sizeof(struct br_ring_header));
    }
    /* Mapped without touching anything past the header: until the checks
     * below pass, this process allocates none of the object's memory. */
    base = mmap(NULL, (size_t)st.st_size, consumer ? PROT_READ | PROT_WRITE : PROT_READ,
                MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        rc = -errno;
        close(fd);
        return br__fail(msg, rc, "mmap of ring %s: %s", name, strerror(-rc));
    }
    rc = header_copy_validate(base, (size_t)st.st_size, &geo, msg);
    if (rc) {
        /* The checks see a header, not its name: say whose it is. */
        char detail[BR_MSG_CAP];
        snprintf(detail, sizeof detail, "%s", msg);
        br__fail(msg, rc, "%s: %s", name, detail);
    }
    if (rc == 0 && !consumer)
        goto bind;
    if (rc == 0 && geo.owner_uid != (uint32_t)geteuid())
        rc = br__fail(msg, -EACCES, "ring %s was made by uid %u, not this process's uid %u",
                      name, geo.owner_uid, (unsigned)geteuid());
    /* br_open refuses a named ring without workers; a consumer that took
     * one would load inline with no loader (found by fuzz_ring). */
    if (rc == 0 && geo.nworkers == 0)
        rc = br__fail(msg, BR_EBADRING, "bad ring %s: nworkers is 0, and a served ring has at "
                      "least 1 worker", name);
    /* A producer reserves the whole object (fallocate in br__ring_create).
     * Faulting in a sparse one would allocate the difference here, and on
     * a small /dev/shm fill it. */
    if (rc == 0 && (uint64_t)st.st_blocks * 512u < (uint64_t)st.st_size) {
        char have[32], want[32];
        rc = br__fail(msg, BR_EBADRING,
                      "bad ring %s: only %s of its %s are allocated, and a producer allocates "
                      "all of it (a sparse object: not attaching)",
                      name, br__format_bytes(have, (uint64_t)st.st_blocks * 512u),
                      br__format_bytes(want, (uint64_t)st.st_size));
    }
    if (rc == 0) {
        int alive = br__ring_producer_alive(fd);
        if (alive < 0)
            rc = br__fail(msg, alive, "testing the producer's lock on ring %s: %s", name,
                          strerror(-alive));
        else if (!alive)
            rc = br__fail(msg, BR_EPRODUCER, "the producer of ring %s (pid %d) is gone; "
                          "batchring gc removes such rings",
                          name, (int)geo.owner_pid);
    }
    /* One consumer at a time: the lock is the claim, held until unmap. */
    if (rc == 0) {
        rc = br__ring_lock_consumer(fd);
        if (rc == -EBUSY) {
            /* For the message only: pairs with br_attach's release store
             * of the word, after its lock. */
            uint64_t cur = br__load_acquire_u64(&((struct br_ring_header *)base)->consumer);
            rc = br__fail(msg, -EBUSY, "ring %s already has a consumer: pid %u", name,
                          (unsigned)(cur & 0xffffffffu));
        } else if (rc) {
            rc = br__fail(msg, rc, "taking the consumer's lock on ring %s: %s", name,
                          strerror(-rc));
        }
    }
    if (rc) {
        munmap(base, (size_t)st.st_size);
        close(fd);
        return rc;
    }
bind:
    br__ring_bind(r, base, (size_t)st.st_size, &geo);
    /* Kept until br__ring_unmap: the locks (the consumer's claim, and the
     * liveness tests of both sides) are held and tested on it. */
    r->owner_fd = fd;
    r->has_owner_fd = true;
    if (!consumer)
        return 0;
    rc = br__ring_populate(r, msg);
    /* The consumer only reads the slots, but a guard ring's guards are
     * PROT_NONE in every mapping of it that can write. */
    if (!rc)
        rc = br__ring_protect_guards(r, msg);
    if (rc)
        br__ring_unmap(r);
    return rc;
}

int br__ring_attach(struct br_ring *r, const char *name, char *msg)
{
    return ring_map_named(r, name, true, msg);
}

int br__ring_observe(struct br_ring *r, const char *name, char *msg)
{
    return ring_map_named(r, name, false, msg);
}

void br__ring_bind(struct br_ring *r, void *base, size_t bytes, const struct br_ring_header *geo)
{
    const struct br_ring_header *h = &r->geo;
    memcpy(&r->geo, geo, sizeof r->geo);
    r->base = base;
    r->bytes = bytes;
    r->hdr = base;
    r->desc = (struct br_slot_desc *)((uint8_t *)base + h->desc_offset);
    r->workers = (struct br_worker_rec *)((uint8_t *)base + h->worker_offset);
    r->meta = (uint8_t *)base + h->meta_offset;
    r->data = (uint8_t *)base + h->data_offset;
    r->meta_stride = h->meta_stride;
    r->slot_stride = h->slot_stride;
    r->slot_span = (h->flags & BR_RING_GUARD) ? h->slot_stride - h->page_size : h->slot_stride;
    r->slot_bytes = h->slot_bytes;
    r->nslots = h->nslots;
    r->batch_size = h->batch_size;
    r->labels = h->flags & BR_RING_LABELS;
    /* Only the creator of a named ring sets these, after binding. */
    r->owner_fd = -1;
    r->has_owner_fd = false;
    r->cpus_to_spare = br__ring_cpus_to_spare(h->nworkers);
}

void br__ring_unmap(struct br_ring *r)
{
    if (r->base)
        munmap(r->base, r->bytes);
    if (r->has_owner_fd)
        close(r->owner_fd);
    memset(r, 0, sizeof *r);
}

#define BR_CHECK_(cond, code, ...)                 \
    do {                                           \
        if (!(cond))                               \
            return br__fail(msg, code, __VA_ARGS__); \
    } while (0)

int br__ring_validate(const void *base, size_t bytes, char *msg)
{
    const struct br_ring_header *h = base;
    struct br_ring_header want;
    struct br_ring_geometry g;
    uint32_t magic;

    BR_CHECK_(bytes >= sizeof *h, BR_EBADRING,
              "bad ring: the object has %zu bytes, less than the %zu-byte header", bytes,
              sizeof *h);
    /* Pairs with the creator's release store of magic. */
    magic = br__load_acquire_u32(&h->magic);
    BR_CHECK_(magic == BR_RING_MAGIC, BR_EBADRING,
              "bad ring: magic is 0x%08x, expected 0x%08x (not a batchring ring, or not "
              "yet initialised)",
              magic, BR_RING_MAGIC);
    BR_CHECK_(h->layout_major == BR_LAYOUT_MAJOR, BR_EVERSION,
              "ring layout version %u.%u (layout_major %u) is not supported: this library reads %u.x",
              h->layout_major, h->layout_minor, h->layout_major, BR_LAYOUT_MAJOR);
    BR_CHECK_(h->header_bytes == sizeof *h, BR_EBADRING,
              "bad ring: header_bytes is %u, expected %zu", h->header_bytes, sizeof *h);
    BR_CHECK_(h->total_bytes == bytes, BR_EBADRING,
              "bad ring: total_bytes is %llu but the object has %zu bytes",
              (unsigned long long)h->total_bytes, bytes);
    BR_CHECK_(h->page_size == page_size(), BR_EBADRING,
              "bad ring: page_size is %u, this machine's is %llu", h->page_size,
              (unsigned long long)page_size());
    BR_CHECK_(h->nslots >= 1 && h->nslots <= BR_MAX_SLOTS, BR_EBADRING,
              "bad ring: nslots is %u, expected 1..%u", h->nslots, BR_MAX_SLOTS);
    BR_CHECK_(h->nworkers <= BR_MAX_WORKERS, BR_EBADRING,
              "bad ring: nworkers is %u, expected at most %u", h->nworkers, BR_MAX_WORKERS);
    BR_CHECK_(h->batch_size >= 1 && h->batch_size <= BR_MAX_BATCH_SIZE, BR_EBADRING,
              "bad ring: batch_size is %u, expected 1..%u", h->batch_size, BR_MAX_BATCH_SIZE);
    BR_CHECK_((h->flags & ~BR_RING_KNOWN_FLAGS) == 0, BR_EBADRING,
              "bad ring: unknown flags 0x%x", h->flags & ~BR_RING_KNOWN_FLAGS);
    BR_CHECK_(h->hold < h->nslots, BR_EBADRING, "bad ring: hold is %u, expected 0..%u (below "
              "nslots)", h->hold, h->nslots - 1);
    BR_CHECK_(h->reserved32 == 0, BR_EBADRING, "bad ring: reserved32 is not zero");
    for (size_t i = 0; i < sizeof h->reserved / sizeof h->reserved[0]; i++)
        BR_CHECK_(h->reserved[i] == 0, BR_EBADRING, "bad ring: reserved word %zu is not zero",
                  i);
    BR_CHECK_(h->slot_bytes >= 1, BR_EBADRING, "bad ring: slot_bytes is 0");
    BR_CHECK_(h->n_ids >= h->batch_size, BR_EBADRING,
              "bad ring: n_ids %llu is smaller than batch_size %u",
              (unsigned long long)h->n_ids, h->batch_size);

    /* Every offset and stride must be exactly what this geometry implies:
     * then all of them lie inside the object and are aligned. */
    memset(&g, 0, sizeof g);
    g.nslots = h->nslots;
    g.nworkers = h->nworkers;
    g.batch_size = h->batch_size;
    g.flags = h->flags;
    g.slot_bytes = h->slot_bytes;
    memset(&want, 0, sizeof want);
    if (br__ring_layout(&g, &want, msg))
        return br__fail(msg, BR_EBADRING, "bad ring: its geometry overflows (slot_bytes %llu)",
                        (unsigned long long)h->slot_bytes);
#define BR_CHECK_FIELD_(field)                                                              \
    BR_CHECK_(h->field == want.field, BR_EBADRING,                                         \
              "bad ring: " #field " is %llu, expected %llu for this geometry",              \
              (unsigned long long)h->field, (unsigned long long)want.field)
    BR_CHECK_FIELD_(desc_offset);
    BR_CHECK_FIELD_(worker_offset);
    BR_CHECK_FIELD_(meta_offset);
    BR_CHECK_FIELD_(meta_stride);
    BR_CHECK_FIELD_(data_offset);
    BR_CHECK_FIELD_(slot_stride);
    BR_CHECK_FIELD_(total_bytes);
#undef BR_CHECK_FIELD_
    return 0;
}

#undef BR_CHECK_

int br__futex_wait(_Atomic uint32_t *word, uint32_t seen, const struct timespec *timeout)
{
    /* Not FUTEX_PRIVATE_FLAG: the word is shared between processes. */
    if (syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, seen, timeout, NULL, 0) == 0)
        return 0;
    /* EAGAIN: the word no longer held `seen`, which is what a wake says. */
    return errno == EAGAIN ? 0 : -errno;
}

void br__futex_wake(_Atomic uint32_t *word, int how_many)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, how_many, NULL, NULL, 0);
}

void br__ring_consumer_event(struct br_ring_header *h)
{
    /* [E1] seq_cst bump after the caller's stores (claim, consumer_done);
     * pairs with [E2]: see "Named rings" at the top of this file. */
    br__add_seq_cst_u32(&h->consumer_events, 1);
    br__futex_wake(&h->consumer_events, INT_MAX);
}

int br__slot_sleep(struct br_slot_desc *d, uint32_t seen, int timeout_ms)
{
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
    int rc = 0;

    /* seq_cst increment, then seq_cst load of the word: pairs with the
     * seq_cst store + load of waiters in br__slot_publish. */
    br__add_seq_cst_u32(&d->waiters, 1);
    if (br__load_seq_cst_u32(&d->word) == seen)
        rc = br__futex_wait(&d->word, seen, timeout_ms < 0 ? NULL : &ts);
    br__sub_seq_cst_u32(&d->waiters, 1);
    return rc;
}

int br__worker_sleep(struct br_ring *r, struct br_slot_desc *d, uint32_t seen, uint64_t timeout_ns,
                     uint32_t kind)
{
    struct br_ring_header *h = r->hdr;
    struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
    uint32_t kick;
    int rc = 0;

    /* [K2] (protocol at the top): pairs with [K1], the seq_cst load of
     * slot_sleepers in br__kick_workers after a release. */
    br__add_seq_cst_u32(&h->slot_sleepers, kind);
    kick = br__load_seq_cst_u32(&h->kick);
    /* The state after kick: pairs with br__ring_stop_workers, which stores
     * the state before it bumps kick. */
    if (br__load_seq_cst_u32(&d->word) == seen &&
        br__load_seq_cst_u32(&h->state) == BR_RUN_RUNNING)
        rc = br__futex_wait(&h->kick, kick, &ts);
    br__sub_seq_cst_u32(&h->slot_sleepers, kind);
    return rc;
}

bool br__kick_workers(struct br_ring *r, int how_many, uint32_t which)
{
    struct br_ring_header *h = r->hdr;
    /* [K1]: the fence orders every release the caller made before (each
     * a release store, br__slot_release) before this load of
     * slot_sleepers; pairs with [K2] in br__worker_sleep. One fence per
     * run of releases, not one locked store per release. */
    br__fence_seq_cst();
    if (!(br__load_seq_cst_u32(&h->slot_sleepers) & which))
        return false;
    br__add_seq_cst_u32(&h->kick, 1);
    br__futex_wake(&h->kick, how_many);
    /* Only the consumer kicks (the supervisor's stop is not counted). */
    br__store_relaxed_u32(&h->kick_wakes, br__load_relaxed_u32(&h->kick_wakes) + 1);
    return true;
}

void br__ring_stop_workers(struct br_ring *r)
{
    struct br_ring_header *h = r->hdr;
    /* seq_cst, then the seq_cst bump of kick: a sleeper that loads the new
     * kick also sees STOPPING (br__worker_sleep). kick is the consumer's
     * word otherwise; this one write at the end of the run is the
     * supervisor's. The wake is unconditional: one syscall per stop. */
    br__store_seq_cst_u32(&h->state, BR_RUN_STOPPING);
    br__add_seq_cst_u32(&h->kick, 1);
    br__futex_wake(&h->kick, INT_MAX);
}

void br__slot_release(struct br_slot_desc *d, uint32_t word)
{
    /* Release: the consumer's reads of the batch come before a worker's
     * writes into the slot (pairs with take_slot's acquire load). Neither
     * seq_cst nor followed by a load of waiters, as a publish is: only a
     * consumer sleeps on a slot word, for READY or FAILED of the batch it
     * waits for, never on a slot it gives back; workers sleep on kick,
     * and the store-load order [K1] needs is br__kick_workers' fence,
     * once per run of releases. On x86 this is a plain store that retires
     * into the store buffer: the consumer does not stall while the line
     * moves to the worker that loads into the slot next, as it did on the
     * xchg of a seq_cst store. */
    br__store_release_u32(&d->word, word);
}

bool br__slot_publish(struct br_slot_desc *d, uint32_t word)
{
    /* seq_cst: release for the slot's contents (pairs with the reader's
     * acquire load of the word) and ordered before the load of waiters
     * (pairs with br__slot_sleep). */
    br__store_seq_cst_u32(&d->word, word);
    if (!br__load_seq_cst_u32(&d->waiters))
        return false;
    br__futex_wake(&d->word, INT_MAX);
    return true;
}

bool br__ring_cpus_to_spare(uint32_t workers)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return workers > 0 && workers < (online > 0 ? (uint32_t)online : 1);
}
