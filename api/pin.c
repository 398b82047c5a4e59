/* SPDX-License-Identifier: MIT */
/*
 * br_pin: the ring's data area page-locked for CUDA, through the runtime
 * found on the machine at run time. Nothing of CUDA is needed to build
 * batchring: the three entry points used are declared here as the
 * runtime's ABI defines them (cudaError_t is an int-sized enum, 0 is
 * cudaSuccess; cudaHostRegisterPortable is 1).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/gen.h"

#define BR_CUDA_SUCCESS 0
#define BR_CUDA_HOST_REGISTER_PORTABLE 1u

typedef int (*cuda_host_register_fn)(void *ptr, size_t size, unsigned int flags);
typedef int (*cuda_host_unregister_fn)(void *ptr);
typedef const char *(*cuda_get_error_string_fn)(int error);

/* Tried in order when BR_CUDART is unset: the development link, then the
 * major versions a driver of the last years ships. */
static const char *const cudart_names[] = {
    "libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11", "libcudart.so.10",
};

/* dlopen()s the runtime: BR_CUDART's file if set, else the first of
 * cudart_names found. Returns the handle, or NULL with a message. */
static void *cudart_open(char *msg)
{
    const char *env = getenv("BR_CUDART");
    char tried[512] = "";
    size_t used = 0;
    void *lib;

    if (env && env[0]) {
        lib = dlopen(env, RTLD_NOW | RTLD_LOCAL);
        if (!lib)
            br__fail(msg, 0, "no CUDA runtime: BR_CUDART is %s, which dlopen refused: %s", env,
                     dlerror());
        return lib;
    }
    for (size_t i = 0; i < sizeof cudart_names / sizeof cudart_names[0]; i++) {
        lib = dlopen(cudart_names[i], RTLD_NOW | RTLD_LOCAL);
        if (lib)
            return lib;
        if (used < sizeof tried)
            used += (size_t)snprintf(tried + used, sizeof tried - used, "%s%s",
                                     i ? ", " : "", cudart_names[i]);
    }
    br__fail(msg, 0, "no CUDA runtime: none of %s could be loaded (set BR_CUDART to the "
             "library's path)", tried);
    return NULL;
}

/* The runtime's text for code, or a placeholder when it has none. */
static const char *cuda_text(cuda_get_error_string_fn text, int code)
{
    const char *s = text ? text(code) : NULL;
    return s ? s : "(no message from the runtime)";
}

int br__gen_pin(struct br_gen *g, int mode, char *msg)
{
    cuda_host_register_fn reg;
    cuda_get_error_string_fn text;
    void *lib, *addr;
    size_t len;
    int rc, err;

    if (mode == BR_PIN_NONE)
        return 0;
    if (mode != BR_PIN_CUDA && mode != BR_PIN_CUDA_IF_AVAILABLE)
        return br__fail(msg, -EINVAL, "pin mode %d is none of BR_PIN_NONE (0), BR_PIN_CUDA (1), "
                        "BR_PIN_CUDA_IF_AVAILABLE (2)", mode);
    if (g->pin_lib)
        return br__fail(msg, -EBUSY, "the ring is pinned already");
    rc = br__gen_region(g, &addr, &len, msg);
    if (rc)
        return rc;
    lib = cudart_open(msg);
    if (!lib) {
        rc = BR_ECUDA;
        goto fallback;
    }
    reg = (cuda_host_register_fn)dlsym(lib, "cudaHostRegister");
    g->pin_unregister = (cuda_host_unregister_fn)dlsym(lib, "cudaHostUnregister");
    text = (cuda_get_error_string_fn)dlsym(lib, "cudaGetErrorString");
    if (!reg || !g->pin_unregister) {
        br__fail(msg, 0, "the CUDA runtime loaded has no %s", reg ? "cudaHostUnregister"
                                                                 : "cudaHostRegister");
        rc = BR_ECUDA;
        goto close;
    }
    err = reg(addr, len, BR_CUDA_HOST_REGISTER_PORTABLE);
    if (err != BR_CUDA_SUCCESS) {
        char size[32];
        br__fail(msg, 0, "cudaHostRegister of the ring's %s at %p failed: %s (cudaError %d)",
                 br__format_bytes(size, len), addr, cuda_text(text, err), err);
        rc = BR_ECUDA;
        goto close;
    }
    g->pin_lib = lib;
    g->pin_addr = addr;
    return 0;
close:
    g->pin_unregister = NULL;
    dlclose(lib);
fallback:
    if (mode == BR_PIN_CUDA_IF_AVAILABLE) {
        /* The caller asked to pin if it can: the generator works unpinned,
         * and the reason stays in its message. */
        char why[BR_MSG_CAP];
        snprintf(why, sizeof why, "%s", msg);
        br__fail(g->msg, 0, "not pinned (BR_PIN_CUDA_IF_AVAILABLE): %s", why);
        return 0;
    }
    return rc;
}

BR_API int br_pin(br_gen *handle, int mode)
{
    struct br_gen *g = br__gen_lookup(handle);
    if (!g)
        return handle ? BR_ESTOPPED : -EINVAL;
    return br__gen_pin(g, mode, g->msg);
}

void br__gen_region_fini(struct br_gen *g)
{
    if (g->region_hooked) {
        void *addr;
        size_t len;
        g->region_hooked = false;
        if (g->region_unreg && br__gen_region(g, &addr, &len, g->msg) == 0)
            g->region_unreg(g->region_user, addr, len);
    }
    if (g->pin_lib) {
        /* A failure here leaves nothing to undo: the unmap that follows
         * ends the mapping either way. */
        (void)g->pin_unregister(g->pin_addr);
        g->pin_unregister = NULL;
        dlclose(g->pin_lib);
        g->pin_lib = NULL;
    }
}
