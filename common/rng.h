/* rng: explicit-state, seedable, reproducible random streams (DESIGN.md §2).
 * A stream is (seed, stream id): the experiment gives each independent use (data draw, noise for training,
 * sampling repeat r, ...) its own stream id, so results do not depend on the order in which other parts of
 * the program consume random numbers, nor on the thread count (noise is drawn serially, then used in parallel).
 * Backed by GSL's MT19937 so GSL's distributions can be used on the same state (rng_gsl). */
#ifndef SF_RNG_H
#define SF_RNG_H
#include <gsl/gsl_rng.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rng rng;

rng *rng_alloc(uint64_t seed, uint64_t stream);
void rng_free(rng *r);
gsl_rng *rng_gsl(rng *r);
/* The generator's whole state as bytes (to checkpoint a run and resume it bit for bit). */
size_t rng_state_size(const rng *r);
const void *rng_state_ptr(const rng *r);
/* Installs saved bytes: 0, or -1 with the reason in why[whylen] when they are not a valid MT19937 state (wrong
 * size, position out of range, a word over 32 bits, all zero); r is then unchanged. */
int rng_state_set(rng *r, const void *state, size_t size, char *why, size_t whylen);
/* The same validation without an rng: for loaders, before anything else is done with a file. */
int rng_state_check(const void *state, size_t size, char *why, size_t whylen);

double rng_uniform(rng *r);                     /* [0, 1) */
double rng_uniform_pos(rng *r);                 /* (0, 1) */
double rng_gaussian(rng *r);                    /* N(0, 1), ziggurat */
size_t rng_index(rng *r, size_t n);             /* uniform on {0..n-1} */
uint64_t rng_u64(rng *r);                      /* 64 uniform bits (two 32-bit draws): a Philox seed */
void rng_gaussian_fill(rng *r, float *x, size_t n);
void rng_gaussian_fill_d(rng *r, double *x, size_t n);
void rng_shuffle(rng *r, size_t *idx, size_t n);   /* Fisher-Yates on an index array */

/* Stream ids used across the suite, so that two modules never share one by accident. */
uint64_t rng_stream_id(uint64_t purpose, uint64_t index);

#endif
