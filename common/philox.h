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
 * Seeds and streams (a stream id is 64 bits: purpose in the top 8 bits, an index in the low 56, built by
 * philox_stream()). Every call site draws ONE 64-bit Philox seed from the rng it was given (rng_u64: two
 * MT19937 words), so the run's --seed, the per-part rng_stream_id derivations and the trainers' checkpointed rng
 * state define every draw exactly as before (a resumed run draws what an uninterrupted one would); the bulk
 * numbers then come from Philox, the same bits on the CPU and the GPU:
 *
 *   purpose                 index   seed drawn                          element offset          who
 *   PHILOX_DSM_TIME         0       per step / eval call (dsm_perturb,  i (sample in the batch)  t_i
 *   PHILOX_DSM_NOISE        0       scorenet perturbed_loss)            i * dim + d              z_i
 *   PHILOX_SAMPLER_INIT     0       per sampler_em call                 i * dim + d              x_T / prior std
 *   PHILOX_SAMPLER_NOISE    step k  per sampler_em(_from) call          i * dim + d              z at EM step k
 *   PHILOX_HUTCHINSON       0       per probe draw (likelihood)         i * dim + d              e (Gaussian or
 *                                                                                                +-1)
 *   PHILOX_DROPOUT          0       per digitnet_loss / train step      i * 128 + j              dropout masks
 *   PHILOX_DEQUANT, PHILOX_CALIB_*  reserved (dequantisation noise and calibration draws stay on the rng /
 *                                   go through dsm_perturb)
 *
 * The DSM draws of a batch split into chunks (scorenet's max_batch) take their slice [first, first + nc) of
 * the batch's streams, so chunking does not change them. Data shuffling, augmentation and the statistics keep
 * GSL's MT19937 (rng.h): they are host-only and need no GPU twin.
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
/* t[i] = t_lo + (t_hi - t_lo) u (double, rounded to float), u = uniform element offset + i (the DSM times) */
void philox_time_fill(float *t, size_t n, double t_lo, double t_hi, uint64_t seed, uint64_t stream,
                      uint64_t offset);
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
void philox_time_fill_cuda(float *t, size_t n, double t_lo, double t_hi, uint64_t seed, uint64_t stream,
                           uint64_t offset);
void philox_dsm_draw_cuda(float *t, float *z, size_t n, size_t dim, double t_lo, double t_hi, uint64_t seed,
                          uint64_t step);
void philox_sampler_noise_cuda(float *z, size_t len, uint64_t seed, uint64_t repeat, uint32_t step);
void philox_probe_cuda(float *e, size_t len, int rademacher, uint64_t seed, uint64_t repeat);

#ifdef __cplusplus
}
#endif

#endif
