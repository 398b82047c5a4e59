/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the tests that run programs (test_cli, test_named,
 * test_hostile): start one with its output on pipes, read its lines and
 * its output within a deadline, and wait for its end without blocking the
 * suite. Each test file keeps its own list of the children it must kill
 * in teardown: these helpers only start and reap.
 *
 * Include after <setjmp.h>, <stdarg.h>, <stddef.h> and <cmocka.h>.
 */
#ifndef BR_TEST_PROC_H
#define BR_TEST_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The children a test started, killed by its teardown if the test failed
 * before it reaped them. tu_spawn tracks, tu_wait_exit untracks; a test
 * that forks by itself tracks its children here too. */
void tu_child_track(pid_t pid);
void tu_child_untrack(pid_t pid);
/* SIGKILLs every tracked child, and with `reap` waits for each. */
void tu_children_kill(bool reap);

/*
 * Starts program prog with args (argv[1..], NULL-terminated). Its stdout
 * goes to a pipe returned in *out_fd; its stderr to a pipe in *err_fd, to
 * the stdout pipe when err_fd == out_fd, or to ours when err_fd is NULL.
 * The child dies with SIGTERM when the test process does (a test that
 * fails must not leave a server running) and starts with no signal
 * blocked. Tracked (tu_child_track). Fails the test if it cannot start.
 */
pid_t tu_spawn(const char *prog, const char *const *args, int *out_fd, int *err_fd);

/* Waits at most timeout_ms for child pid to end (its pidfd turns
 * readable), reaps and untracks it and returns its wait status; fails the
 * test naming `what` (NULL: "a child") if it still runs by then. */
int tu_wait_exit(pid_t pid, int timeout_ms, const char *what);

/* The same without failing: 0 with the child reaped, untracked and its
 * status in *status, or -ETIMEDOUT with the child still running (and
 * tracked) after timeout_ms. */
int tu_wait_exit_within(pid_t pid, int timeout_ms, int *status);

/*
 * Where pidfd_open is refused (ENOSYS on kernels before 5.3, or a seccomp
 * filter), the waits above poll waitpid(WNOHANG) instead, with a backoff
 * from 1 to 16 ms, against the same deadline. tu_proc_use_pidfd(false)
 * forces that path (tests of it); tu_proc_polled_waits counts the waits
 * that took it.
 */
void tu_proc_use_pidfd(bool use);
unsigned tu_proc_polled_waits(void);

/* "exited with 3", "killed by signal 9 (Killed)": a wait status in words. */
const char *tu_describe_status(int status, char *buf, size_t cap);

/* Reads what is available on fd and appends it to buf (cap bytes, kept
 * NUL-terminated, the rest dropped); *used counts what buf holds. False at
 * end of file. */
bool tu_drain(int fd, char *buf, size_t cap, size_t *used);

/* Reads one line (without its '\n') from fd within timeout_ms, byte by
 * byte so that nothing after it is taken from the pipe. False at end of
 * file or timeout. */
bool tu_read_line(int fd, char *buf, size_t cap, int timeout_ms);

/* Runs prog with args to its end; its stdout and stderr go to out and err
 * (cap bytes each, NUL-terminated). A run still going after timeout_ms
 * fails the test, and teardown kills it: the hang guard. Returns the wait
 * status. */
int tu_run(const char *prog, const char *const *args, char *out, char *err, size_t cap,
           int timeout_ms);

/* The same without failing: 0 with *status, or -ETIMEDOUT with the run
 * still going as *pid (tracked; its pipes closed, what it wrote so far in
 * out and err). */
int tu_run_within(const char *prog, const char *const *args, char *out, char *err, size_t cap,
                  int timeout_ms, pid_t *pid, int *status);

#endif
