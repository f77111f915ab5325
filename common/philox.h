/* philox: a counter-based random generator that gives the same numbers on the CPU and the GPU (DESIGN.md §4;
 * issue 8 item 5). Philox4x32-10 (Salmon et al., SC 2011; the generator of Random123 and of curand's
 * CURAND_RNG_PSEUDO_PHILOX4_32_10), used statelessly:
 *
 *     (key = seed, counter = (block, stream)) -> 4 x u32          block = element offset / 4
 *
 * Element e of stream s under seed k is a pure function of (k, s, e): any slice [offset, offset + n) of any
 * stream can be regenerated alone, in any order, on any number of threads, on either device, and two streams
 * never overlap (the stream is half of the counter, 2^64 blocks each). No state to carry, checkpoint or share.
 *
 * Values:
 *   uniform   u = (w >> 8) 2^-24 in [0, 1) (24 bits, every value exact in float);
 *   Gaussian  Box-Muller on the two word pairs of a block: elements 4k, 4k+1 = r cos, r sin of pair
 *             (w0, w1) of block k, elements 4k+2, 4k+3 the same with (w2, w3); r = sqrt(-2 ln u1),
 *             u1 = ((w >> 8) + 1) 2^-24 in (0, 1], angle 2 pi u2 with u2 uniform as above. |z| <= 5.77.
 *             The float log / sincos are the project's own (philox_core.h), built from correctly-rounded IEEE
 *             operations only, so the CPU and the GPU produce identical bits;
 *   Rademacher  +1 or -1 from the top bit of w (element e = word e & 3 of block e >> 2).
 *
 * Seeds and streams (the scheme the experiments follow; a stream id is 64 bits: purpose in the top 8 bits,
 * an index in the low 56, built by philox_stream()):
 *
 *   purpose                 index                        offset of element                  who
 *   PHILOX_DSM_TIME         training step                i (sample in the batch)           dsm: t_i
 *   PHILOX_DSM_NOISE        training step                i * dim + d                        dsm: z_i
 *   PHILOX_SAMPLER_INIT     repeat                       i * dim + d                        sampler: x_T
 *   PHILOX_SAMPLER_NOISE    repeat << 32 | EM step k     i * dim + d                        sampler: z at step k
 *   PHILOX_HUTCHINSON       repeat (one fixed probe)     i * dim + d                        likelihood: e
 *   PHILOX_DEQUANT          repeat                       i * dim + d                        likelihood: U
 *   PHILOX_CALIB_TIME/NOISE calibration step             as DSM                              calib (eq. 10)
 *   PHILOX_DROPOUT          0                            unit (sample * width + j)          dropout masks:
 *                           the seed is drawn per call from the caller's rng (rng_u64), digitnet_loss
 *
 * The seed is the run's --seed (each model / experiment part may derive its own with rng_stream_id, as today).
 * "step" counts optimiser steps from 0 over the whole run, so a resumed run (checkpoint at step k) draws the
 * same numbers as an uninterrupted one without saving any generator state. Data shuffling and the statistics
 * keep GSL's MT19937 (rng.h): they are host-only and need no GPU twin.
 *
 * The GPU functions (_cuda) take DEVICE pointers, queue one kernel on the nn_cuda context's stream and return
 * without waiting; they exist only in a CUDA build (SF_HAVE_CUDA), so every call sits under #ifdef. For the same
 * arguments they write the same bits as the CPU functions (tests/test_cuda_philox.c). */
#ifndef SF_PHILOX_H
#define SF_PHILOX_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    PHILOX_DSM_TIME = 1,
    PHILOX_DSM_NOISE = 2,
    PHILOX_SAMPLER_INIT = 3,
    PHILOX_SAMPLER_NOISE = 4,
    PHILOX_HUTCHINSON = 5,
    PHILOX_DEQUANT = 6,
    PHILOX_CALIB_TIME = 7,
    PHILOX_CALIB_NOISE = 8,
    PHILOX_DROPOUT = 9,
    PHILOX_TEST = 255      /* tests only */
};

/* purpose in the top 8 bits, index (< 2^56; dies otherwise) in the low 56 */
uint64_t philox_stream(unsigned purpose, uint64_t index);
/* the sampler's index: repeat << 32 | step (repeat < 2^24) */
uint64_t philox_sampler_index(uint64_t repeat, uint32_t step);

/* The raw generator: Philox4x32 with `rounds` rounds on counter ctr[4], key key[2] (10 = Philox4x32-10). */
void philox4x32(const uint32_t ctr[4], const uint32_t key[2], int rounds, uint32_t out[4]);

/* ------------------------------------------------------------------ CPU fills (OpenMP inside; results do not
 * depend on the thread count). x[i] = element (offset + i) of stream `stream` under `seed`. */
void philox_uniform_fill(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
void philox_gaussian_fill(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
void philox_rademacher_fill(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
/* one element (tests, and scalar uses) */
float philox_uniform_at(uint64_t seed, uint64_t stream, uint64_t e);
float philox_gaussian_at(uint64_t seed, uint64_t stream, uint64_t e);

/* The draws of one DSM training step (dsm_perturb's t and z): t[n] = t_lo + (t_hi - t_lo) U (double, rounded
 * to float) from stream (PHILOX_DSM_TIME, step), z[n * dim] ~ N(0, 1) from (PHILOX_DSM_NOISE, step). */
void philox_dsm_draw(float *t, float *z, size_t n, size_t dim, double t_lo, double t_hi, uint64_t seed,
                     uint64_t step);
/* The sampler's noise for Euler-Maruyama step `step` of repetition `repeat`: z[len] ~ N(0, 1). */
void philox_sampler_noise(float *z, size_t len, uint64_t seed, uint64_t repeat, uint32_t step);
/* Hutchinson probe e[len] for repetition `repeat`: Gaussian (rademacher 0) or +-1 (rademacher 1). */
void philox_probe(float *e, size_t len, int rademacher, uint64_t seed, uint64_t repeat);

/* ------------------------------------------------------------------ GPU twins (device pointers; CUDA build) */
void philox_uniform_fill_cuda(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
void philox_gaussian_fill_cuda(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
void philox_rademacher_fill_cuda(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
void philox_dsm_draw_cuda(float *t, float *z, size_t n, size_t dim, double t_lo, double t_hi, uint64_t seed,
                          uint64_t step);
void philox_sampler_noise_cuda(float *z, size_t len, uint64_t seed, uint64_t repeat, uint32_t step);
void philox_probe_cuda(float *e, size_t len, int rademacher, uint64_t seed, uint64_t repeat);

#ifdef __cplusplus
}
#endif

#endif
