/* SPDX-License-Identifier: MIT */
/*
 * Replays saved inputs through a harness's LLVMFuzzerTestOneInput without
 * libFuzzer, so that any compiler's build (the gcc suite, under ASan or
 * not) runs the regressions and seeds as a plain CTest. Arguments are
 * files or directories of files; a missing directory is skipped, but no
 * input at all is a skip (exit 77), never a pass. Each input runs in its
 * own child process, so that one failure does not hide the next, and a
 * ring that a crashed harness left in /dev/shm (brtest-fuzz-PID-N, named
 * after that child) is removed here and counted as a failure.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run_input(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long len;
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    /* At least one byte: an empty input is passed as a valid pointer. */
    buf = malloc(len > 0 ? (size_t)len : 1);
    if (!buf || (len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len)) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)len);
    free(buf);
}

/* Removes the rings child `pid` left; returns how many there were. */
static int remove_left_rings(pid_t pid)
{
    char prefix[64];
    int n = 0;
    struct dirent *e;
    DIR *d = opendir("/dev/shm");
    snprintf(prefix, sizeof prefix, "brtest-fuzz-%d-", (int)pid);
    while (d && (e = readdir(d)) != NULL) {
        char path[512];
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
        unlink(path);
        n++;
    }
    if (d)
        closedir(d);
    return n;
}

static int failures;

static int replay_file(const char *path)
{
    int status, left;
    pid_t pid;
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        perror("replay: fork");
        exit(1);
    }
    if (pid == 0) {
        run_input(path);
        exit(0);
    }
    if (waitpid(pid, &status, 0) != pid) {
        perror("replay: waitpid");
        exit(1);
    }
    left = remove_left_rings(pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || left) {
        failures++;
        fprintf(stderr, "replay: FAILED %s (%s %d%s)\n", path,
                WIFEXITED(status) ? "exit" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                left ? ", left rings in /dev/shm" : "");
    } else {
        fprintf(stderr, "replay: ok %s\n", path);
    }
    return 1;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
    int n = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        struct dirent **ents;
        int m;
        if (stat(argv[i], &st) < 0)
            continue;
        if (!S_ISDIR(st.st_mode)) {
            n += replay_file(argv[i]);
            continue;
        }
        m = scandir(argv[i], &ents, NULL, by_name);
        for (int k = 0; k < m; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], ents[k]->d_name);
            if (ents[k]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode))
                n += replay_file(path);
            free(ents[k]);
        }
        free(ents);
    }
    if (n == 0) {
        fprintf(stderr, "replay: no inputs found: skipped\n");
        return 77;
    }
    fprintf(stderr, "replay: %d inputs, %d failed\n", n, failures);
    return failures ? 1 : 0;
}
