/* SPDX-License-Identifier: MIT */
/*
 * Synthetic sample content. Byte j of a sample is byte j % 8 (little-endian)
 * of the word mix(key + (j / 8) x W), where key mixes the seed and the
 * sample id: random-access, so that a checker can recompute any sample
 * without generating the ones before it, and fast enough (one multiply
 * chain per 8 bytes) that checking every byte keeps up with the ring.
 */
#include <string.h>

#include "synth.h"

#define GOLDEN 0x9e3779b97f4a7c15u

uint64_t br_synth_mix(uint64_t x)
{
    x += GOLDEN;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* Distinct (seed, sample) pairs give distinct keys with overwhelming odds:
 * the seed goes through the mixer before the sample is folded in. */
static uint64_t sample_key(uint64_t seed, uint64_t sample)
{
    return br_synth_mix(br_synth_mix(seed ^ 0x5eedu) ^ (sample * 0xd6e8feb86659fd93u));
}

/* Word k of a sample, as the little-endian files store it. */
static uint64_t word(uint64_t key, uint64_t k)
{
    return br_synth_mix(key + k * GOLDEN);
}

/* Loads and stores in the files' byte order. On a little-endian host that
 * is one plain move: these loops are what bounds the demo's checking. */
static void store_le64(uint8_t *p, uint64_t w)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &w, 8);
#else
    for (unsigned b = 0; b < 8; b++)
        p[b] = (uint8_t)(w >> (8 * b));
#endif
}

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t w = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&w, p, 8);
#else
    for (unsigned b = 0; b < 8; b++)
        w |= (uint64_t)p[b] << (8 * b);
#endif
    return w;
}

void br_synth_fill(void *dst, size_t len, uint64_t seed, uint64_t sample)
{
    const uint64_t key = sample_key(seed, sample);
    const size_t words = len / 8;
    uint8_t *p = dst;
    for (size_t k = 0; k < words; k++)
        store_le64(p + k * 8, word(key, k));
    if (words * 8 < len) {
        uint8_t tail[8];
        store_le64(tail, word(key, words));
        memcpy(p + words * 8, tail, len - words * 8);
    }
}

size_t br_synth_check(const void *buf, size_t len, uint64_t seed, uint64_t sample)
{
    const uint64_t key = sample_key(seed, sample);
    const size_t words = len / 8;
    const uint8_t *p = buf;
    uint8_t want[8];
    size_t k = 0, n = 8;
    for (; k < words; k++)
        if (load_le64(p + k * 8) != word(key, k))
            break;
    if (k == words) {
        n = len - words * 8;
        if (n == 0)
            return len;
    }
    /* A word differs (or the tail is left): find its first wrong byte. */
    store_le64(want, word(key, k));
    for (size_t b = 0; b < n; b++)
        if (p[k * 8 + b] != want[b])
            return k * 8 + b;
    return len;
}

size_t br_synth_size(uint64_t seed, uint64_t sample, size_t min, size_t max)
{
    if (max <= min)
        return min;
    uint64_t span = (uint64_t)(max - min) + 1;
    /* span is 0 only for [0, SIZE_MAX] on a 64-bit size_t: any value fits. */
    uint64_t r = br_synth_mix(sample_key(seed, sample) ^ 0x512eu);
    return min + (size_t)(span ? r % span : r);
}

int32_t br_synth_label(uint64_t seed, uint64_t sample)
{
    return (int32_t)(br_synth_mix(sample_key(seed, sample) ^ 0x1abe1u) % 2001u) - 1000;
}
