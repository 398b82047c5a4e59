/* SPDX-License-Identifier: MIT */
/*
 * The ring as registrable memory (br_region, br_region_hook_set) and
 * br_pin against the stub CUDA runtime (tests/cuda_stub.c, found through
 * BR_CUDART as a real one would be through the library names): found,
 * not found, register fails, pin-if-you-can falling back, unregister at
 * close, attach + pin.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#define DATA 4096u
#define N_IDS 64u

static int pin_loader(br_job *job, void *user)
{
    (void)user;
    memset(job->out, (int)(job->seq & 0xff), DATA);
    job->size = DATA;
    return 0;
}

static char log_path[128];

/* A fresh stub log, BR_CUDART at the stub, no failure asked for. */
static int setup(void **state)
{
    (void)state;
    snprintf(log_path, sizeof log_path, "/tmp/brtest-%d-cudastub.log", (int)getpid());
    unlink(log_path);
    setenv("BR_CUDA_STUB_LOG", log_path, 1);
    setenv("BR_CUDART", BR_CUDA_STUB_PATH, 1);
    unsetenv("BR_CUDA_STUB_FAIL");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(log_path);
    unsetenv("BR_CUDA_STUB_LOG");
    unsetenv("BR_CUDART");
    unsetenv("BR_CUDA_STUB_FAIL");
    return 0;
}

/* The stub log's text (empty when nothing was called). */
static const char *stub_log(void)
{
    static char text[8192];
    FILE *f = fopen(log_path, "r");
    size_t n = 0;
    if (f) {
        n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
    }
    text[n] = '\0';
    return text;
}

static int count_of(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

static br_gen *open_pinned(uint32_t pin, const char *name, int *rc_out)
{
    br_options opt;
    br_gen *g = NULL;
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.workers = 1;
    opt.slots = 4;
    opt.slot_bytes = DATA;
    opt.epochs = 1;
    opt.pin = pin;
    opt.name = name;
    *rc_out = br_open(&g, pin_loader, NULL, NULL, NULL, N_IDS, &opt);
    return g;
}

static void expect_line(const char *what, void *addr, size_t len, int times)
{
    char line[128];
    if (len)
        snprintf(line, sizeof line, "%s %p %zu 1\n", what, addr, len);
    else
        snprintf(line, sizeof line, "%s %p\n", what, addr);
    if (count_of(stub_log(), line) != times)
        fail_msg("expected %d x \"%s\" in the stub's log:\n%s", times, line, stub_log());
}

static void test_pin_found_registers_region_and_unregisters_at_close(void **state)
{
    (void)state;
    int rc;
    br_gen *g = open_pinned(BR_PIN_CUDA, NULL, &rc);
    br_batch b;
    void *addr;
    size_t len;
    long page = sysconf(_SC_PAGESIZE);
    assert_int_equal(rc, 0);
    assert_int_equal(br_region(g, &addr, &len), 0);
    assert_int_equal((uintptr_t)addr % (uintptr_t)page, 0);
    assert_int_equal(len % (size_t)page, 0);
    assert_true(len >= 4 * DATA);
    expect_line("cudaHostRegister", addr, len, 1);
    expect_line("cudaHostUnregister", addr, 0, 0);
    /* Every batch lies in the region, and the generator works. */
    for (int i = 0; i < 8; i++) {
        assert_int_equal(tu_next(g, &b, NULL), 0);
        assert_true((const char *)b.data >= (char *)addr &&
                    (const char *)b.data + b.size <= (char *)addr + len);
        assert_int_equal(((const unsigned char *)b.data)[DATA - 1], i);
    }
    /* Pinning twice is refused. */
    assert_int_equal(br_pin(g, BR_PIN_CUDA), -EBUSY);
    assert_int_equal(br_close(g), 0);
    expect_line("cudaHostUnregister", addr, 0, 1);
}

static void test_pin_not_found_is_named_error(void **state)
{
    (void)state;
    int rc;
    br_gen *g;
    setenv("BR_CUDART", "/nonexistent/libcudart.so.12", 1);
    g = open_pinned(BR_PIN_CUDA, NULL, &rc);
    assert_int_equal(rc, BR_ECUDA);
    assert_null(g);
    assert_non_null(strstr(br_last_error(NULL), "no CUDA runtime"));
    assert_non_null(strstr(br_last_error(NULL), "/nonexistent/libcudart.so.12"));
    /* Without BR_CUDART the library names are tried; where none exists
     * (a machine without CUDA: CI) the message lists them. */
    unsetenv("BR_CUDART");
    g = open_pinned(BR_PIN_CUDA, NULL, &rc);
    if (rc == 0) {
        /* A real runtime is installed here: that branch is the found one. */
        assert_int_equal(br_close(g), 0);
    } else {
        assert_int_equal(rc, BR_ECUDA);
        /* No runtime: the names tried. A runtime without a GPU (Debian's
         * libcudart beside python3-torch): its own refusal. */
        if (!strstr(br_last_error(NULL), "no CUDA runtime"))
            assert_non_null(strstr(br_last_error(NULL), "cudaHostRegister of the ring"));
        else
            assert_non_null(strstr(br_last_error(NULL), "libcudart.so.12"));
    }
    assert_string_equal(stub_log(), "");
}

static void test_pin_if_available_falls_back_unpinned(void **state)
{
    (void)state;
    int rc;
    br_gen *g;
    br_batch b;
    setenv("BR_CUDART", "/nonexistent/libcudart.so", 1);
    g = open_pinned(BR_PIN_CUDA_IF_AVAILABLE, NULL, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(br_last_error(g), "not pinned"));
    assert_non_null(strstr(br_last_error(g), "no CUDA runtime"));
    assert_int_equal(tu_next(g, &b, NULL), 0);
    assert_int_equal(br_close(g), 0);
    /* The stub is there but refuses: unpinned too, nothing to unregister. */
    setenv("BR_CUDART", BR_CUDA_STUB_PATH, 1);
    setenv("BR_CUDA_STUB_FAIL", "cudaHostRegister", 1);
    g = open_pinned(BR_PIN_CUDA_IF_AVAILABLE, NULL, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(br_last_error(g), "stub: out of memory"));
    assert_int_equal(tu_next(g, &b, NULL), 0);
    assert_int_equal(br_close(g), 0);
    assert_int_equal(count_of(stub_log(), "cudaHostRegister"), 1);
    assert_int_equal(count_of(stub_log(), "cudaHostUnregister"), 0);
}

static void test_pin_register_fails_with_runtime_message(void **state)
{
    (void)state;
    int rc;
    br_gen *g;
    setenv("BR_CUDA_STUB_FAIL", "cudaHostRegister", 1);
    g = open_pinned(BR_PIN_CUDA, NULL, &rc);
    assert_int_equal(rc, BR_ECUDA);
    assert_null(g);
    assert_non_null(strstr(br_last_error(NULL), "cudaHostRegister"));
    assert_non_null(strstr(br_last_error(NULL), "stub: out of memory (BR_CUDA_STUB_FAIL)"));
    assert_non_null(strstr(br_last_error(NULL), "cudaError 2"));
    /* br_pin on an open generator: the same error, the generator usable. */
    g = open_pinned(BR_PIN_NONE, NULL, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(br_pin(g, BR_PIN_CUDA), BR_ECUDA);
    assert_non_null(strstr(br_last_error(g), "stub: out of memory"));
    assert_int_equal(br_pin(g, 7), -EINVAL);
    {
        br_batch b;
        assert_int_equal(tu_next(g, &b, NULL), 0);
    }
    assert_int_equal(br_close(g), 0);
    assert_int_equal(count_of(stub_log(), "cudaHostUnregister"), 0);
}

static void test_pin_attach_pins_its_own_mapping(void **state)
{
    (void)state;
    char name[64];
    int rc;
    br_gen *p, *c = NULL;
    void *addr, *paddr;
    size_t len, plen;
    br_batch b;
    snprintf(name, sizeof name, "/brtest-%d-pin", (int)getpid());
    /* The producer of a named ring has no consumer mapping to pin. */
    p = open_pinned(BR_PIN_CUDA, name, &rc);
    assert_int_equal(rc, -EINVAL);
    p = open_pinned(BR_PIN_NONE, name, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(br_pin(p, BR_PIN_CUDA), -EINVAL);
    assert_int_equal(br_region(p, &paddr, &plen), -EINVAL);
    assert_int_equal(br_attach(&c, name, TU_WAIT_MS), 0);
    assert_int_equal(br_region(c, &addr, &len), 0);
    assert_int_equal(br_pin(c, BR_PIN_CUDA), 0);
    expect_line("cudaHostRegister", addr, len, 1);
    assert_int_equal(tu_next(c, &b, NULL), 0);
    assert_true((const char *)b.data >= (char *)addr &&
                (const char *)b.data + b.size <= (char *)addr + len);
    assert_int_equal(br_close(c), 0);
    expect_line("cudaHostUnregister", addr, 0, 1);
    assert_int_equal(br_close(p), 0);
}

/* The hook: run once on the mapped area, undone once in br_close while
 * the area is still mapped. */
struct hook_rec {
    void *addr;
    size_t len;
    int regs, unregs;
    unsigned char seen_at_unreg;
    int refuse;
};

static int hook_reg(void *user, void *addr, size_t len)
{
    struct hook_rec *r = user;
    r->regs++;
    r->addr = addr;
    r->len = len;
    return r->refuse;
}

static void hook_unreg(void *user, void *addr, size_t len)
{
    struct hook_rec *r = user;
    r->unregs++;
    assert_ptr_equal(addr, r->addr);
    assert_int_equal(len, r->len);
    /* Still mapped: reading it does not fault. */
    r->seen_at_unreg = ((volatile unsigned char *)addr)[len - 1];
}

static void test_pin_region_hook_runs_once_each_way(void **state)
{
    (void)state;
    struct hook_rec r = {0}, refused = {.refuse = -EPERM};
    int rc;
    br_gen *g = open_pinned(BR_PIN_NONE, NULL, &rc);
    void *addr;
    size_t len;
    assert_int_equal(rc, 0);
    assert_int_equal(br_region_hook_set(g, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(br_region_hook_set(g, hook_reg, hook_unreg, &refused), -EPERM);
    assert_non_null(strstr(br_last_error(g), "refused"));
    assert_int_equal(br_region_hook_set(g, hook_reg, hook_unreg, &r), 0);
    assert_int_equal(br_region_hook_set(g, hook_reg, hook_unreg, &r), -EBUSY);
    assert_int_equal(br_region(g, &addr, &len), 0);
    assert_ptr_equal(r.addr, addr);
    assert_int_equal(r.len, len);
    assert_int_equal(r.regs, 1);
    assert_int_equal(r.unregs, 0);
    assert_int_equal(br_close(g), 0);
    assert_int_equal(r.unregs, 1);
    assert_int_equal(refused.unregs, 0);
    assert_int_equal(br_region(g, &addr, &len), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pin_found_registers_region_and_unregisters_at_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_not_found_is_named_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_if_available_falls_back_unpinned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_register_fails_with_runtime_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_attach_pins_its_own_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_region_hook_runs_once_each_way, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
