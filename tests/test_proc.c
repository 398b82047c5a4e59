/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_proc.h"
#include "test_util.h"

#define TU_MAX_CHILDREN 32
static pid_t children[TU_MAX_CHILDREN];

void tu_child_track(pid_t pid)
{
    for (int i = 0; i < TU_MAX_CHILDREN; i++)
        if (!children[i]) {
            children[i] = pid;
            return;
        }
    fail_msg("more than %d children at once", TU_MAX_CHILDREN);
}

void tu_child_untrack(pid_t pid)
{
    for (int i = 0; i < TU_MAX_CHILDREN; i++)
        if (children[i] == pid)
            children[i] = 0;
}

void tu_children_kill(bool reap)
{
    for (int i = 0; i < TU_MAX_CHILDREN; i++)
        if (children[i]) {
            kill(children[i], SIGKILL);
            if (reap)
                waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
}

pid_t tu_spawn(const char *prog, const char *const *args, int *out_fd, int *err_fd)
{
    const char *argv[48];
    int out[2], err[2] = {-1, -1};
    const bool own_err_pipe = err_fd && err_fd != out_fd;
    size_t n = 0;
    pid_t parent = getpid(), pid;

    argv[n++] = prog;
    while (*args) {
        assert_true(n < sizeof argv / sizeof argv[0] - 1);
        argv[n++] = *args++;
    }
    argv[n] = NULL;
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    if (own_err_pipe)
        assert_int_equal(pipe2(err, O_CLOEXEC), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sigset_t none;
        /* SIGTERM makes a server clean up as Ctrl-C would. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        dup2(out[1], STDOUT_FILENO);
        if (err_fd)
            dup2(own_err_pipe ? err[1] : out[1], STDERR_FILENO);
        /* The test's signal mask is not the program's business. */
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(prog, (char *const *)argv);
        _exit(127);
    }
    tu_child_track(pid);
    close(out[1]);
    *out_fd = out[0];
    if (own_err_pipe) {
        close(err[1]);
        *err_fd = err[0];
    }
    return pid;
}

static bool use_pidfd = true;
static unsigned polled_waits;

void tu_proc_use_pidfd(bool use)
{
    use_pidfd = use;
}

unsigned tu_proc_polled_waits(void)
{
    return polled_waits;
}

/* Milliseconds left until deadline (ns), rounded up; 0 once it passed. */
static int ms_left(uint64_t deadline)
{
    uint64_t now = tu_now_ns();
    return now >= deadline ? 0 : (int)((deadline - now + 999999u) / 1000000u);
}

/* Without a pidfd there is no event for "a child ended" that a test can
 * wait on without owning SIGCHLD (signalfd needs it blocked in every
 * thread, and cmocka's and the library's threads are not ours): poll
 * waitpid instead, with a bounded backoff, against the deadline. */
static int wait_polled(pid_t pid, uint64_t deadline, int *status)
{
    int nap = 1;
    polled_waits++;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            fail_msg("waitpid %d: %s", (int)pid, strerror(errno));
        int left = ms_left(deadline);
        if (left == 0)
            return -ETIMEDOUT;
        poll(NULL, 0, nap < left ? nap : left);
        if (nap < 16)
            nap *= 2;
    }
}

int tu_wait_exit_within(pid_t pid, int timeout_ms, int *status)
{
    const uint64_t deadline = tu_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int fd = use_pidfd ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    if (fd < 0) {
        if (wait_polled(pid, deadline, status))
            return -ETIMEDOUT;
    } else {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r;
        while ((r = poll(&p, 1, ms_left(deadline))) < 0 && errno == EINTR)
            ;
        close(fd);
        if (r == 0)
            return -ETIMEDOUT;
        while (waitpid(pid, status, 0) < 0)
            if (errno != EINTR)
                fail_msg("waitpid %d: %s", (int)pid, strerror(errno));
    }
    tu_child_untrack(pid);
    return 0;
}

int tu_wait_exit(pid_t pid, int timeout_ms, const char *what)
{
    int status;
    if (tu_wait_exit_within(pid, timeout_ms, &status))
        fail_msg("%s (pid %d) still runs %d ms later: it blocks", what ? what : "a child", (int)pid,
                 timeout_ms);
    return status;
}

const char *tu_describe_status(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exited with %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, cap, "status 0x%x", status);
    return buf;
}

bool tu_drain(int fd, char *buf, size_t cap, size_t *used)
{
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0)
        return false;
    size_t take = *used + (size_t)n < cap ? (size_t)n : cap - 1 - *used;
    memcpy(buf + *used, tmp, take);
    *used += take;
    buf[*used] = '\0';
    return true;
}

bool tu_read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
    const uint64_t deadline = tu_now_ns() + (uint64_t)timeout_ms * 1000000u;
    size_t n = 0;
    for (;;) {
        uint64_t now = tu_now_ns();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char c;
        if (now >= deadline)
            return false;
        int r = poll(&p, 1, (int)((deadline - now) / 1000000u) + 1);
        if (r < 0 && errno != EINTR)
            return false;
        if (r <= 0)
            continue;
        ssize_t got = read(fd, &c, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return false;
        if (c == '\n')
            break;
        if (n + 1 < cap)
            buf[n++] = c;
    }
    buf[n] = '\0';
    return true;
}

int tu_run_within(const char *prog, const char *const *args, char *out, char *err, size_t cap,
                  int timeout_ms, pid_t *pid_out, int *status)
{
    int fds[2];
    size_t used[2] = {0, 0};
    char *bufs[2] = {out, err};
    bool open_[2] = {true, true};
    const uint64_t deadline = tu_now_ns() + (uint64_t)timeout_ms * 1000000u;
    pid_t pid = tu_spawn(prog, args, &fds[0], &fds[1]);

    *pid_out = pid;
    out[0] = err[0] = '\0';
    while (open_[0] || open_[1]) {
        struct pollfd p[2];
        nfds_t n = 0;
        int which[2];
        if (ms_left(deadline) == 0) {
            /* The caller fails the test: the pipes must not outlive it. */
            for (int i = 0; i < 2; i++)
                if (open_[i])
                    close(fds[i]);
            return -ETIMEDOUT;
        }
        for (int i = 0; i < 2; i++)
            if (open_[i]) {
                p[n] = (struct pollfd){.fd = fds[i], .events = POLLIN};
                which[n++] = i;
            }
        if (poll(p, n, ms_left(deadline)) <= 0)
            continue;
        for (nfds_t k = 0; k < n; k++)
            if (p[k].revents && !tu_drain(fds[which[k]], bufs[which[k]], cap, &used[which[k]])) {
                open_[which[k]] = false;
                close(fds[which[k]]);
            }
    }
    /* The pipes closed: it is exiting (or left them to a child); its end
     * gets a bound of its own, as a separate wait would. */
    return tu_wait_exit_within(pid, timeout_ms, status);
}

int tu_run(const char *prog, const char *const *args, char *out, char *err, size_t cap,
           int timeout_ms)
{
    pid_t pid;
    int status;
    if (tu_run_within(prog, args, out, err, cap, timeout_ms, &pid, &status))
        fail_msg("%s %s did not finish within %d ms: it blocks", prog, args[0] ? args[0] : "",
                 timeout_ms);
    return status;
}
