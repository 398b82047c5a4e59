/* SPDX-License-Identifier: MIT */
/*
 * fuzz_files: br_dataset_open_files (the list file's parser: lines, a last
 * line without a newline, CRLF, empty lines, NUL bytes, names that are
 * missing or not regular files; the labels file) and, when it opens, the
 * files loader in this process.
 *
 * Why: a list is text from users and scripts; a bad line must be an error
 * at open naming its line, never a shifted sample or a read past the
 * buffer, and a dataset that opened must load exactly each listed file.
 *
 * The list lives in this process's scratch directory beside a few sample
 * files (a, b, c, "d d", sub/e, and the directory sub). Lines that start
 * with '/' or contain ".." are not run: they could name any file on the
 * machine (a FIFO or a device would block), and what the parser does with
 * them is already reached by names that do not exist.
 *
 * Input: opts (u8: bit 0 a labels file, bits 2-6 the generator's options,
 * see fuzz_run_dataset), the list file (u16 LE length, bytes), the rest is
 * the labels file.
 */
#include <sys/stat.h>

#include "fuzz/fuzz_util.h"

struct list {
    const uint8_t *text;
    size_t len;
};

/* Line id of the list, as the library reads it: up to '\n', without one
 * trailing '\r'. */
static void line_of(const struct list *l, uint64_t id, char *name, size_t cap)
{
    size_t at = 0, end;
    for (uint64_t line = 0; line < id; line++) {
        const uint8_t *nl = memchr(l->text + at, '\n', l->len - at);
        FUZZ_CHECK(nl != NULL, "sample %llu: the list has fewer lines", (unsigned long long)id);
        at = (size_t)(nl - l->text) + 1;
    }
    const uint8_t *nl = memchr(l->text + at, '\n', l->len - at);
    end = nl ? (size_t)(nl - l->text) : l->len;
    if (end > at && l->text[end - 1] == '\r')
        end--;
    FUZZ_CHECK(end - at < cap, "line %llu is too long to have opened", (unsigned long long)id);
    memcpy(name, l->text + at, end - at);
    name[end - at] = '\0';
}

static int listed_file(void *ctx, uint64_t id, const uint8_t **p, size_t *len)
{
    static uint8_t buf[1 << 16];
    static char name[4096];
    ssize_t n;
    int fd;
    line_of(ctx, id, name, sizeof name);
    fd = open(fuzz_path(3, name), O_RDONLY | O_CLOEXEC);
    FUZZ_CHECK(fd >= 0, "sample %llu, %s, opened but cannot be read back: %s",
               (unsigned long long)id, name, strerror(errno));
    n = read(fd, buf, sizeof buf);
    close(fd);
    FUZZ_CHECK(n >= 0 && (size_t)n < sizeof buf, "reading back %s", name);
    *p = buf;
    *len = (size_t)n;
    return 1;
}

/* The sample files, made once per process. */
static void make_samples(void)
{
    static int made;
    static const char c300[300] = {1, 2, 3};
    if (made++)
        return;
    fuzz_write_file(fuzz_path(0, "a"), "", 0);
    fuzz_write_file(fuzz_path(0, "b"), "B", 1);
    fuzz_write_file(fuzz_path(0, "c"), c300, sizeof c300);
    fuzz_write_file(fuzz_path(0, "d d"), "d\nd\r\n", 5);
    FUZZ_CHECK(mkdir(fuzz_path(0, "sub"), 0700) == 0 || errno == EEXIST, "mkdir sub: %s",
               strerror(errno));
    fuzz_write_file(fuzz_path(0, "sub/e"), "eeeeeee", 7);
}

/* Whether the list stays inside the scratch directory. */
static int confined(const uint8_t *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '/' && (i == 0 || text[i - 1] == '\n'))
            return 0;
        if (text[i] == '.' && i + 1 < len && text[i + 1] == '.')
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct list l;
    const uint8_t *labels;
    size_t labels_len;
    br_dataset *ds = NULL;
    br_dataset_info info;
    uint8_t opts;
    int rc;

    fuzz_fds_begin();
    opts = fuzz_u8(&in);
    l.text = fuzz_part(&in, &l.len);
    labels = in.p;
    labels_len = in.left;
    if (!confined(l.text, l.len))
        return 0;
    make_samples();
    fuzz_write_file(fuzz_path(0, "list"), l.text, l.len);
    if (opts & 1)
        fuzz_write_file(fuzz_path(1, "labels"), labels, labels_len);

    rc = br_dataset_open_files(&ds, fuzz_path(0, "list"), opts & 1 ? fuzz_path(1, "labels") : NULL,
                               opts & 2);
    FUZZ_CHECK_RC("br_dataset_open_files", rc, br_last_error(NULL));
    FUZZ_CHECK((rc == 0) == (ds != NULL), "open returned %d and %s dataset", rc, ds ? "a" : "no");
    if (rc == 0) {
        struct fuzz_expect want = {listed_file, &l, opts & 1 ? labels : NULL};
        FUZZ_CHECK(!(opts & 2), "BR_DATASET_DIRECT accepted for a files dataset");
        FUZZ_CHECK(br_dataset_info_get(ds, &info) == 0, "br_dataset_info_get");
        FUZZ_CHECK(!(opts & 1) || labels_len == info.samples * 4,
                   "a labels file of %zu bytes opened for %llu samples", labels_len,
                   (unsigned long long)info.samples);
        fuzz_run_dataset(ds, opts, &want);
        br_dataset_close(ds);
    }
    fuzz_check_fds();
    return 0;
}
