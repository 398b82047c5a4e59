/* SPDX-License-Identifier: MIT */
/*
 * batchring soak: serves a verified records dataset as a named ring and
 * kills workers (and optionally consumers) with SIGKILL at random times,
 * checking that no batch is lost, repeated or damaged.
 *
 * Three kinds of process:
 *   - the soak process itself (the judge): it writes the dataset, kills,
 *     and checks what the consumers report; it holds no generator;
 *   - one producer child: br_open_dataset with opt.name and a loop on
 *     br_serve_wait, until the judge SIGTERMs it (then br_close);
 *   - one consumer child at a time: br_attach, then br_next, checking every
 *     id, label, offset and byte of each batch itself, and reporting each
 *     batch (seq, epoch, ids) to the judge on a pipe of its own.
 *
 * What counts as delivered is what docs/named-rings.md promises: a batch
 * is delivered when its consumer releases it (the next br_next, or
 * br_close). A consumer that dies holding batch k (returned, not released)
 * has it delivered again to the next consumer; one that released k has
 * not. So across a consumer kill the next consumer must start at the
 * killed one's last reported batch k (with the same ids: counted once) or
 * at k + 1; anything else is a lost or a repeated batch. Inside one
 * consumer the seqs must be consecutive. Every sample id must appear once
 * per epoch: each finished epoch exactly once, the last (cut short) at
 * most once.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <batchring.h>

#include "cli.h"
#include "synth.h"

#define SOAK_DATA_SEED 7411u
/* The consumer's br_next timeout: how often it looks at its stop flag. */
#define SOAK_NEXT_TIMEOUT_MS 200
/* A consumer that cannot attach within this long ends the run. */
#define SOAK_ATTACH_MS 5000u
#define SOAK_MAX_WORKERS 64u

/* One report on a consumer's pipe: this header, then count ids. */
struct soak_report {
    uint64_t seq, epoch, batch, size;
    uint32_t count;
    uint32_t bad; /* 1: the consumer found a wrong id, label, offset or byte */
};

struct soak_opts {
    double seconds, kill_rate, consumer_kill_rate;
    uint64_t workers, batch, record_size, samples, seed;
    char name[256];
};

/* ------------------------------------------------------------ helpers */

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir)
{
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        br_cli_error("could not remove %s completely: %s", dir, strerror(errno));
}

/* The random stream of a run: splitmix64 on the seed. */
static uint64_t rnd_next(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15u;
    return br_synth_mix(*state);
}

/* An exponential gap (a Poisson process of `rate` events a second), in ns. */
static uint64_t rnd_gap_ns(uint64_t *state, double rate)
{
    double u = ((double)(rnd_next(state) >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
    double s = 0.0;
    /* -ln(u), to within 1%, without libm (which the CLI does not link):
     * the number of steps of 1/64 in ln that take u up to 1. At most
     * ~2400 steps, a few times a second. */
    for (double x = u; x < 1.0; x *= 1.0 + 1.0 / 64)
        s += 1.0 / 64;
    return (uint64_t)(s / rate * 1e9);
}

static bool write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

/* Reads the parent pid and state of pid from /proc/PID/stat. */
static bool proc_parent(pid_t pid, pid_t *ppid, char *state)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: skip to the last ')'. */
    char *p = strrchr(buf, ')');
    int pp;
    if (!p || sscanf(p + 1, " %c %d", state, &pp) != 2)
        return false;
    *ppid = pp;
    return true;
}

/*
 * Kills pid with SIGKILL if, and only if, it is a worker of this run: a
 * live child of a child (the supervisor) of our producer. The pidfd pins
 * the process: its parent is read while the pidfd shows it alive, so the
 * stat read was about that very process and not a later one with a
 * reused pid, and the signal goes through the pidfd to it and nobody
 * else. Returns true when the signal was sent.
 */
static bool kill_worker(pid_t pid, pid_t producer)
{
    pid_t sup, sup_parent;
    char state, sup_state;
    bool sent = false;
    if (pid <= 0)
        return false;
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0)
        return false;
    if (proc_parent(pid, &sup, &state) && state != 'Z' && state != 'X' && sup > 0 &&
        proc_parent(sup, &sup_parent, &sup_state) && sup_parent == producer &&
        syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 0) == 0)
        sent = syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0) == 0;
    close(pfd);
    return sent;
}

/* ------------------------------------------------------------ producer */

static volatile sig_atomic_t producer_stop;

static void on_producer_stop(int sig)
{
    (void)sig;
    producer_stop = 1;
}

/* The producer child: serves until SIGTERM. Exits 0 after a clean stop, 1
 * when the generator failed. Writes one byte on `ready` once the ring is
 * there. */
static int run_producer(const struct soak_opts *o, const char *dir, int ready,
                        const sigset_t *old)
{
    char records[4200], labels[4200];
    br_dataset *ds = NULL;
    br_gen *g = NULL;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_producer_stop;
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGINT, SIG_IGN); /* Ctrl-C is the judge's; it stops us with SIGTERM */
    signal(SIGHUP, SIG_IGN);
    sigprocmask(SIG_SETMASK, old, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        return 1;
    snprintf(records, sizeof records, "%s/%s", dir, BR_MKDATA_RECORDS);
    snprintf(labels, sizeof labels, "%s/%s", dir, BR_MKDATA_LABELS);
    int rc = br_dataset_open_records(&ds, records, o->record_size, labels, 0);
    if (rc) {
        br_cli_error("producer: opening %s: %s", records, br_last_error(NULL));
        return 1;
    }
    br_options opt;
    br_options_init(&opt);
    opt.batch_size = (uint32_t)o->batch;
    opt.workers = (uint32_t)o->workers;
    opt.epochs = 0;
    opt.shuffle = true;
    opt.seed = o->seed;
    opt.max_restarts = UINT32_MAX; /* the soak kills workers on purpose */
    opt.name = o->name;
    rc = br_open_dataset(&g, ds, NULL, 0, &opt);
    if (rc) {
        br_cli_error("producer: br_open_dataset: %s: %s", br_err_name(rc), br_last_error(NULL));
        br_dataset_close(ds);
        return 1;
    }
    char one = 1;
    write_all(ready, &one, 1);
    close(ready);
    rc = 0;
    while (!producer_stop) {
        rc = br_serve_wait(g, 100);
        if (rc == -ETIMEDOUT) {
            rc = 0;
            continue;
        }
        if (rc) {
            br_cli_error("producer: br_serve_wait: %s: %s", br_err_name(rc), br_last_error(g));
            break;
        }
        break; /* 0: the consumer reached the end, which an endless run has not */
    }
    br_close(g);
    br_dataset_close(ds);
    return rc ? 1 : 0;
}

/* ------------------------------------------------------------ consumer */

/* Checks one batch: ids in range, the batch number, labels, offsets, and
 * every byte. Returns true when all is right; otherwise says what. */
static bool check_batch(const br_batch *b, const struct soak_opts *o, uint64_t per_epoch)
{
    const char *why = NULL;
    uint64_t bad_id = 0;
    size_t at = 0;
    if (b->seq != b->epoch * per_epoch + b->batch || b->batch >= per_epoch)
        why = "its seq, epoch and batch number disagree";
    else if (!b->labels || !b->offsets || b->offsets[0] != 0 || b->offsets[b->count] != b->size)
        why = "its labels or offsets are missing or wrong";
    for (uint32_t i = 0; !why && i < b->count; i++) {
        uint64_t id = b->ids[i];
        bad_id = id;
        if (id >= o->samples)
            why = "an id is out of range";
        else if (b->labels[i] != br_synth_label(SOAK_DATA_SEED, id))
            why = "a label is wrong";
        else if (b->offsets[i + 1] - b->offsets[i] != o->record_size)
            why = "a sample has the wrong size";
        else if ((at = br_synth_check((const char *)b->data + b->offsets[i], o->record_size,
                                      SOAK_DATA_SEED, id)) != o->record_size)
            why = "a byte is wrong";
    }
    if (!why)
        return true;
    br_cli_error("consumer %d: batch %" PRIu64 " (epoch %" PRIu64 ") is wrong: %s (sample %" PRIu64
                 ", byte %zu)",
                 (int)getpid(), b->seq, b->epoch, why, bad_id, at);
    return false;
}

/* A consumer child: attaches, checks and reports batches until SIGTERM
 * (then br_close, which counts the batch it holds as taken). Exits 0, or 1
 * on an error of the library or of its pipe. */
static int run_consumer(const struct soak_opts *o, int out, const sigset_t *old)
{
    br_gen *g = NULL;
    br_batch b;
    int rc;
    const uint64_t per_epoch = (o->samples + o->batch - 1) / o->batch;
    uint64_t *buf = malloc(sizeof(struct soak_report) + o->batch * sizeof(uint64_t));
    br_cli_catch_stop_signals();
    sigprocmask(SIG_SETMASK, old, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (!buf || getppid() == 1)
        return 1;
    /* The killed consumer before us is reaped, so its claim is dead; a
     * retry covers only a ring that is still coming up. */
    const uint64_t t0 = br_util_now_ns();
    while ((rc = br_attach(&g, o->name, SOAK_NEXT_TIMEOUT_MS)) == -EBUSY &&
           br_util_now_ns() - t0 < SOAK_ATTACH_MS * 1000000ull && !br_cli_stop) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    if (rc) {
        br_cli_error("consumer %d: br_attach %s: %s: %s", (int)getpid(), o->name, br_err_name(rc),
                     br_last_error(NULL));
        free(buf);
        return 1;
    }
    for (;;) {
        rc = br_next(g, &b);
        if (rc == -ETIMEDOUT) {
            if (br_cli_stop)
                break;
            continue;
        }
        if (rc) {
            br_cli_error("consumer %d: br_next: %s: %s", (int)getpid(), br_err_name(rc),
                         br_last_error(g));
            break;
        }
        struct soak_report r = {.seq = b.seq,
                                .epoch = b.epoch,
                                .batch = b.batch,
                                .size = b.size,
                                .count = b.count > o->batch ? 0 : b.count,
                                .bad = !check_batch(&b, o, per_epoch) || b.count > o->batch};
        memcpy(buf, &r, sizeof r);
        memcpy((char *)buf + sizeof r, b.ids, r.count * sizeof(uint64_t));
        if (!write_all(out, buf, sizeof r + r.count * sizeof(uint64_t))) {
            br_cli_error("consumer %d: report pipe: %s", (int)getpid(), strerror(errno));
            rc = -EPIPE;
            break;
        }
        if (br_cli_stop)
            break;
    }
    br_close(g);
    free(buf);
    return rc && rc != -ETIMEDOUT ? 1 : 0;
}

/* ------------------------------------------------------------ the judge */

struct judge {
    const struct soak_opts *o;
    uint64_t next_seq;     /* the seq the next batch must have */
    bool have_held;        /* the current consumer's last batch, not yet released */
    struct soak_report held;
    uint64_t *held_ids;
    uint64_t *ids;         /* scratch: the ids of the report being judged */
    bool boundary;         /* a consumer was killed since the last report */
    uint64_t epoch;        /* the epoch the bitmap is for */
    uint64_t *seen;        /* one bit a sample of `epoch` */
    uint64_t seen_n;
    uint64_t batches, bytes, lost, repeated, bad, redelivered;
};

/* Checks that the epoch of the bitmap has every sample once. */
static void judge_close_epoch(struct judge *j, bool finished)
{
    if (finished && j->seen_n != j->o->samples) {
        br_cli_error("epoch %" PRIu64 " delivered %" PRIu64 " of %" PRIu64 " samples", j->epoch,
                     j->seen_n, j->o->samples);
        j->lost += j->o->samples - j->seen_n;
    }
    memset(j->seen, 0, (j->o->samples + 63) / 64 * 8);
    j->seen_n = 0;
}

static void judge_count(struct judge *j, const struct soak_report *r, const uint64_t *ids)
{
    if (r->epoch != j->epoch) {
        judge_close_epoch(j, r->epoch > j->epoch);
        j->epoch = r->epoch;
    }
    for (uint32_t i = 0; i < r->count; i++) {
        uint64_t id = ids[i];
        if (id >= j->o->samples) {
            j->bad++;
            continue;
        }
        if (j->seen[id / 64] >> (id % 64) & 1) {
            br_cli_error("sample %" PRIu64 " delivered twice in epoch %" PRIu64 " (batch %" PRIu64
                         ")",
                         id, r->epoch, r->seq);
            j->repeated++;
            continue;
        }
        j->seen[id / 64] |= 1ull << (id % 64);
        j->seen_n++;
    }
}

/* One report of the current consumer. */
static void judge_report(struct judge *j, const struct soak_report *r, const uint64_t *ids)
{
    j->bytes += r->size;
    j->bad += r->bad;
    if (j->boundary && j->have_held && r->seq == j->held.seq) {
        /* The batch the killed consumer held, delivered again: the
         * promise. It must be the same batch; it is counted once. */
        j->boundary = false;
        j->redelivered++;
        if (r->epoch != j->held.epoch || r->count != j->held.count ||
            memcmp(ids, j->held_ids, r->count * sizeof *ids)) {
            br_cli_error("batch %" PRIu64 " delivered again with other ids", r->seq);
            j->bad++;
        }
        return;
    }
    j->boundary = false;
    if (r->seq < j->next_seq) {
        br_cli_error("batch %" PRIu64 " delivered again (expected %" PRIu64 ")", r->seq,
                     j->next_seq);
        j->repeated++;
        return;
    }
    if (r->seq > j->next_seq) {
        br_cli_error("batches %" PRIu64 "..%" PRIu64 " never delivered", j->next_seq, r->seq - 1);
        j->lost += r->seq - j->next_seq;
    }
    j->next_seq = r->seq + 1;
    j->batches++;
    judge_count(j, r, ids);
    j->held = *r;
    memcpy(j->held_ids, ids, r->count * sizeof *ids);
    j->have_held = true;
}

/* Parses the complete reports in buf[0..*len) and keeps the rest. */
static void judge_parse(struct judge *j, char *buf, size_t *len)
{
    size_t at = 0;
    for (;;) {
        struct soak_report r;
        if (*len - at < sizeof r)
            break;
        memcpy(&r, buf + at, sizeof r);
        size_t need = sizeof r + (size_t)r.count * sizeof(uint64_t);
        if (r.count > j->o->batch) {
            br_cli_error("a garbled report (count %u)", r.count);
            j->bad++;
            at = *len;
            break;
        }
        if (*len - at < need)
            break;
        memcpy(j->ids, buf + at + sizeof r, r.count * sizeof(uint64_t));
        judge_report(j, &r, j->ids);
        at += need;
    }
    memmove(buf, buf + at, *len - at);
    *len -= at;
}

struct consumer {
    pid_t pid;
    int fd; /* the read end of its report pipe */
    char *buf;
    size_t len, cap;
};

/*
 * fork with SIGTERM blocked until the child has its own handler: the judge
 * may stop a child the moment it exists (a consumer started just before
 * the end), and a child killed by SIGTERM before its handler would look
 * like a failure. The child unblocks it once its handler is in place.
 */
static pid_t fork_child(sigset_t *old)
{
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    fflush(NULL);
    sigprocmask(SIG_BLOCK, &term, old);
    pid_t pid = fork();
    if (pid != 0)
        sigprocmask(SIG_SETMASK, old, NULL);
    return pid;
}

static int consumer_start(struct consumer *c, const struct soak_opts *o)
{
    int p[2];
    sigset_t old;
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork_child(&old);
    if (pid < 0) {
        int e = -errno;
        close(p[0]);
        close(p[1]);
        return e;
    }
    if (pid == 0) {
        close(p[0]);
        _exit(run_consumer(o, p[1], &old));
    }
    close(p[1]);
    c->pid = pid;
    c->fd = p[0];
    c->len = 0;
    return 0;
}

/* Reads what the consumer has written; false at end of file. */
static bool consumer_read(struct consumer *c, struct judge *j)
{
    if (c->cap - c->len < 65536) {
        char *nb = realloc(c->buf, c->cap * 2 + 65536);
        if (!nb)
            return false;
        c->buf = nb;
        c->cap = c->cap * 2 + 65536;
    }
    ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    judge_parse(j, c->buf, &c->len);
    return true;
}

/* Reads the consumer's pipe to its end, reaps it, and says how it ended:
 * 0 for exit 0, 1 for a kill by SIGKILL, -1 otherwise. A report cut short
 * by a kill is dropped: that batch was never released. */
static int consumer_finish(struct consumer *c, struct judge *j)
{
    int st = 0;
    while (consumer_read(c, j))
        ;
    close(c->fd);
    c->fd = -1;
    c->len = 0;
    while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
        ;
    c->pid = 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
        return 1;
    return -1;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: batchring soak [--seconds S] [--kill-rate R] [--consumer-kill-rate R2]\n"
            "                      [--workers N] [--batch B] [--record-size BYTES]\n"
            "                      [--samples N] [--seed X] [--name /NAME]\n\n"
            "Serves a verified records dataset (written to a temporary directory and\n"
            "removed at the end) as a named ring, kills random workers with SIGKILL at R\n"
            "a second (and, with R2 > 0, the consumer at R2 a second, replacing it with\n"
            "a new one that attaches and resumes), checks every byte, id and label of\n"
            "every batch, and that every sample is delivered once per epoch. A batch\n"
            "counts as delivered when its consumer releases it; the one a killed\n"
            "consumer held is delivered again to the next, as docs/named-rings.md\n"
            "promises. Prints one summary line; exits 0 only when nothing was lost,\n"
            "repeated or wrong and the run ended without an error.\n\n"
            "  --seconds S             how long to run (default 10)\n"
            "  --kill-rate R           worker kills a second (default 10)\n"
            "  --consumer-kill-rate R2 consumer kills a second (default 0)\n"
            "  --workers N             worker processes (default 2)\n"
            "  --batch B               samples per batch (default 64)\n"
            "  --record-size BYTES     bytes per sample (default 4096)\n"
            "  --samples N             samples in the dataset (default 4096)\n"
            "  --seed X                seed of the kill times and the order (default 1)\n"
            "  --name /NAME            the ring's name (default /batchring-soak-PID)\n"
            "  -h, --help              this text\n");
}

static bool parse_rate(const char *opt, const char *text, double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || !end || *end || text[0] == '-' || !(v >= 0) || v > max) {
        br_cli_error("bad value '%s' for --%s: a number from 0 to %g", text, opt, max);
        return false;
    }
    *out = v;
    return true;
}

int br_cli_soak(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"seconds", required_argument, NULL, 's'},
        {"kill-rate", required_argument, NULL, 'k'},
        {"consumer-kill-rate", required_argument, NULL, 'c'},
        {"workers", required_argument, NULL, 'w'},
        {"batch", required_argument, NULL, 'b'},
        {"record-size", required_argument, NULL, 'r'},
        {"samples", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 'x'},
        {"name", required_argument, NULL, 'N'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct soak_opts o = {.seconds = 10, .kill_rate = 10, .workers = 2, .batch = 64,
                          .record_size = 4096, .samples = 4096, .seed = 1};
    int c;
    snprintf(o.name, sizeof o.name, "/batchring-soak-%d", (int)getpid());
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'h':
            usage(stdout);
            return BR_CLI_OK;
        case 's':
            ok = parse_rate("seconds", optarg, 86400.0 * 365, &o.seconds) && o.seconds > 0;
            if (!ok && o.seconds == 0)
                br_cli_error("--seconds must be more than 0");
            break;
        case 'k':
            ok = parse_rate("kill-rate", optarg, 10000, &o.kill_rate);
            break;
        case 'c':
            ok = parse_rate("consumer-kill-rate", optarg, 100, &o.consumer_kill_rate);
            break;
        case 'w':
            ok = br_cli_number("workers", optarg, 1, SOAK_MAX_WORKERS, false, &o.workers);
            break;
        case 'b':
            ok = br_cli_number("batch", optarg, 1, 65536, false, &o.batch);
            break;
        case 'r':
            ok = br_cli_number("record-size", optarg, 1, 1u << 24, true, &o.record_size);
            break;
        case 'n':
            ok = br_cli_number("samples", optarg, 1, 1u << 26, false, &o.samples);
            break;
        case 'x':
            ok = br_cli_number("seed", optarg, 0, UINT64_MAX, false, &o.seed);
            break;
        case 'N':
            ok = br_cli_ring_name_ok(optarg) &&
                 snprintf(o.name, sizeof o.name, "%s", optarg) < (int)sizeof o.name;
            break;
        default:
            usage(stderr);
            return BR_CLI_USAGE;
        }
        if (!ok)
            return BR_CLI_USAGE;
    }
    if (optind < argc) {
        br_cli_error("unexpected argument '%s'", argv[optind]);
        return BR_CLI_USAGE;
    }
    if (o.batch * o.workers > o.samples) {
        br_cli_error("--batch x --workers (%" PRIu64 ") is more than --samples "
                     "(%" PRIu64 ")",
                     o.batch * o.workers, o.samples);
        return BR_CLI_USAGE;
    }

    /* The dataset, in a directory of our own. */
    const char *tmp = getenv("TMPDIR");
    char dir[4096], err[1024], h[32];
    snprintf(dir, sizeof dir, "%s/batchring-soak-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        br_cli_error("cannot create a directory %s: %s", dir, strerror(errno));
        return BR_CLI_FAILED;
    }
    struct br_mkdata_spec spec = {.layout = "records", .dir = dir, .samples = o.samples,
                                  .min_bytes = o.record_size, .max_bytes = o.record_size,
                                  .seed = SOAK_DATA_SEED};
    uint64_t data_bytes = 0;
    if (br_mkdata_write(&spec, &data_bytes, err, sizeof err)) {
        br_cli_error("%s", err);
        remove_tree(dir);
        return BR_CLI_FAILED;
    }

    br_cli_catch_stop_signals();
    bool failed = false, started = false;
    double elapsed = 0;
    uint64_t wkills = 0, ckills = 0;
    struct judge j = {.o = &o};
    struct consumer cons = {.fd = -1};
    j.seen = calloc((o.samples + 63) / 64, 8);
    j.held_ids = calloc(o.batch, sizeof(uint64_t));
    j.ids = calloc(o.batch, sizeof(uint64_t));
    int ready[2];
    pid_t producer = -1;
    if (!j.seen || !j.held_ids || !j.ids || pipe2(ready, O_CLOEXEC) < 0) {
        br_cli_error("out of memory or descriptors");
        failed = true;
        goto out;
    }
    sigset_t old;
    producer = fork_child(&old);
    if (producer == 0) {
        close(ready[0]);
        _exit(run_producer(&o, dir, ready[1], &old));
    }
    started = producer > 0;
    close(ready[1]);
    char one;
    ssize_t got = producer < 0 ? -1 : read(ready[0], &one, 1);
    close(ready[0]);
    if (got != 1) {
        br_cli_error("the producer did not start");
        failed = true;
        goto out;
    }
    printf("soak: ring %s, %" PRIu64 " samples of %" PRIu64 " B (%s), batch %" PRIu64
           ", %" PRIu64 " workers, %.1f s, worker kills %.1f/s, consumer kills %.1f/s, seed %"
           PRIu64 "\n", o.name, o.samples, o.record_size, br_util_bytes(h, data_bytes),
           o.batch, o.workers, o.seconds, o.kill_rate, o.consumer_kill_rate, o.seed);
    fflush(stdout);

    uint64_t rs = o.seed ^ 0x50a4u;
    const uint64_t t0 = br_util_now_ns(), end = t0 + (uint64_t)(o.seconds * 1e9);
    uint64_t next_wkill = o.kill_rate > 0 ? t0 + rnd_gap_ns(&rs, o.kill_rate) : UINT64_MAX;
    uint64_t next_ckill =
        o.consumer_kill_rate > 0 ? t0 + rnd_gap_ns(&rs, o.consumer_kill_rate) : UINT64_MAX;
    int e = consumer_start(&cons, &o);
    if (e) {
        br_cli_error("starting a consumer: %s", strerror(-e));
        failed = true;
        goto out;
    }
    for (uint64_t now = t0; now < end && !br_cli_stop; now = br_util_now_ns()) {
        uint64_t wake = end < next_wkill ? end : next_wkill;
        wake = wake < next_ckill ? wake : next_ckill;
        struct pollfd pf = {.fd = cons.fd, .events = POLLIN};
        int ms = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;
        if (poll(&pf, 1, ms) > 0 && !consumer_read(&cons, &j)) {
            /* The consumer ended on its own: an error (it said which). */
            consumer_finish(&cons, &j);
            br_cli_error("the consumer ended before the run did");
            failed = true;
            break;
        }
        int st;
        if (waitpid(producer, &st, WNOHANG) == producer) {
            producer = -1;
            br_cli_error("the producer ended before the run did");
            failed = true;
            break;
        }
        now = br_util_now_ns();
        if (now >= next_wkill) {
            br_ring_status rst;
            br_worker_stats ws[SOAK_MAX_WORKERS];
            if (br_ring_status_get(o.name, &rst, ws, SOAK_MAX_WORKERS) == 0 && rst.workers) {
                uint32_t n = rst.workers < SOAK_MAX_WORKERS ? rst.workers : SOAK_MAX_WORKERS;
                uint32_t pick = (uint32_t)(rnd_next(&rs) % n);
                wkills += kill_worker(ws[pick].pid, producer);
            }
            next_wkill = now + rnd_gap_ns(&rs, o.kill_rate);
        }
        if (now >= next_ckill) {
            kill(cons.pid, SIGKILL); /* our own unreaped child: the pid is still it */
            int how = consumer_finish(&cons, &j);
            if (how < 0) {
                br_cli_error("the consumer failed before it was killed");
                failed = true;
                break;
            }
            ckills++;
            j.boundary = true;
            e = consumer_start(&cons, &o);
            if (e) {
                br_cli_error("starting a consumer: %s", strerror(-e));
                failed = true;
                break;
            }
            next_ckill = now + rnd_gap_ns(&rs, o.consumer_kill_rate);
        }
    }
    /* The end: the consumer closes (its last batch counts as taken), then
     * the producer removes the ring. */
    if (cons.pid > 0) {
        kill(cons.pid, SIGTERM);
        if (consumer_finish(&cons, &j) != 0) {
            br_cli_error("the last consumer did not end cleanly");
            failed = true;
        }
    }
    judge_close_epoch(&j, false);
    elapsed = (double)(br_util_now_ns() - t0) / 1e9;
out:
    if (producer > 0) {
        int st = 0;
        kill(producer, SIGTERM);
        while (waitpid(producer, &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            br_cli_error("the producer ended with an error");
            failed = true;
        }
    }
    char shm[300];
    struct stat sst;
    snprintf(shm, sizeof shm, "/dev/shm%s", o.name);
    if (started && lstat(shm, &sst) == 0) {
        br_cli_error("the ring %s is still there after the producer ended", shm);
        failed = true;
    }
    remove_tree(dir);
    free(cons.buf);
    free(j.seen);
    free(j.held_ids);
    free(j.ids);
    if (!failed && j.batches == 0) {
        br_cli_error("no batch was delivered");
        failed = true;
    }
    printf("soak: %.1f s, worker kills %" PRIu64 ", consumer kills %" PRIu64 ", batches %" PRIu64
           ", verified %s, lost %" PRIu64 ", repeated %" PRIu64 ", wrong %" PRIu64
           ", redelivered after a consumer kill %" PRIu64 ": %s\n",
           elapsed, wkills, ckills, j.batches, br_util_bytes(h, j.bytes), j.lost, j.repeated,
           j.bad, j.redelivered,
           failed || j.lost || j.repeated || j.bad ? "FAILED" : br_cli_stop ? "ok (interrupted)"
                                                                              : "ok");
    return failed || j.lost || j.repeated || j.bad ? BR_CLI_FAILED : BR_CLI_OK;
}
