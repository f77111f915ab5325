/* rng: seedable streams over GSL's MT19937 (see rng.h). */
#include "rng.h"
#include "log.h"
#include "mem.h"
#include <gsl/gsl_randist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rng {
    gsl_rng *g;
};

/* splitmix64: decorrelates nearby (seed, stream) pairs before they reach MT19937's 32-bit seeding. */
static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t rng_stream_id(uint64_t purpose, uint64_t index)
{
    return splitmix64(purpose * 0x100000001B3ull + index);
}

rng *rng_alloc(uint64_t seed, uint64_t stream)
{
    rng *r = mem_calloc(1, sizeof *r);
    r->g = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r->g) LOG_FATAL("gsl_rng_alloc failed");
    uint64_t s = splitmix64(splitmix64(seed) ^ splitmix64(stream + 0x632BE59BD9B4E019ull));
    unsigned long s32 = (unsigned long)(s ^ (s >> 32)) & 0xFFFFFFFFul;
    gsl_rng_set(r->g, s32 ? s32 : 4357ul);   /* 0 selects GSL's default seed: avoid aliasing */
    return r;
}

void rng_free(rng *r)
{
    if (!r) return;
    gsl_rng_free(r->g);
    free(r);
}

gsl_rng *rng_gsl(rng *r) { return r->g; }
size_t rng_state_size(const rng *r) { return gsl_rng_size(r->g); }
const void *rng_state_ptr(const rng *r) { return gsl_rng_state(r->g); }

/* GSL's MT19937 state (gsl/rng/mt.c): 624 words that each hold 32 bits, and the position of the next word.
 * gsl_rng_get indexes mt[mti] without a check, so a saved state is validated before it is installed. */
#define RNG_MT_N 624
typedef struct {
    unsigned long mt[RNG_MT_N];
    int mti;
} rng_mt_state;

int rng_state_check(const void *state, size_t size, char *why, size_t whylen)
{
    if (size != sizeof(rng_mt_state)) {
        snprintf(why, whylen, "rng state is %zu bytes, MT19937 needs %zu", size, sizeof(rng_mt_state));
        return -1;
    }
    rng_mt_state s;
    memcpy(&s, state, sizeof s);   /* the bytes may come unaligned from a file */
    if (s.mti < 0 || s.mti > RNG_MT_N) {
        snprintf(why, whylen, "rng state position %d is outside [0, %d]", s.mti, RNG_MT_N);
        return -1;
    }
    int nonzero = 0;
    for (int i = 0; i < RNG_MT_N; i++) {
        if (s.mt[i] > 0xFFFFFFFFul) {
            snprintf(why, whylen, "rng state word %d (0x%lx) exceeds 32 bits", i, s.mt[i]);
            return -1;
        }
        nonzero |= s.mt[i] != 0;
    }
    if (!nonzero) {   /* MT19937 stays at zero forever from an all-zero state */
        snprintf(why, whylen, "rng state is all zero");
        return -1;
    }
    return 0;
}

int rng_state_set(rng *r, const void *state, size_t size, char *why, size_t whylen)
{
    LOG_CHECK(gsl_rng_size(r->g) == sizeof(rng_mt_state), "rng: GSL's MT19937 state layout changed");
    if (rng_state_check(state, size, why, whylen) != 0) return -1;
    memcpy(gsl_rng_state(r->g), state, size);
    return 0;
}
double rng_uniform(rng *r) { return gsl_rng_uniform(r->g); }
double rng_uniform_pos(rng *r) { return gsl_rng_uniform_pos(r->g); }
double rng_gaussian(rng *r) { return gsl_ran_gaussian_ziggurat(r->g, 1.0); }
size_t rng_index(rng *r, size_t n) { return (size_t)gsl_rng_uniform_int(r->g, (unsigned long)n); }

uint64_t rng_u64(rng *r)
{
    /* MT19937 words are 32 bits (gsl_rng_max = 2^32 - 1) */
    const uint64_t hi = (uint64_t)gsl_rng_get(r->g) & 0xffffffffu;
    return hi << 32 | ((uint64_t)gsl_rng_get(r->g) & 0xffffffffu);
}

void rng_gaussian_fill(rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)gsl_ran_gaussian_ziggurat(r->g, 1.0);
}

void rng_gaussian_fill_d(rng *r, double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = gsl_ran_gaussian_ziggurat(r->g, 1.0);
}

void rng_shuffle(rng *r, size_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_index(r, i);
        size_t tmp = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = tmp;
    }
}
