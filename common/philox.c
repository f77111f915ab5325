/* philox: the CPU side of the counter-based generator (see philox.h for the scheme, philox_core.h for the
 * arithmetic shared with common/cuda/cuda_philox.cu). Each fill walks the Philox blocks that cover
 * [offset, offset + n) and writes the lanes that fall inside; blocks are independent, so the OpenMP split never
 * changes a value. */
#include "philox.h"
#include "log.h"
#include "philox_core.h"

#define PHILOX_PAR_MIN 16384   /* elements below which a fill stays on one thread */

uint64_t philox_stream(unsigned purpose, uint64_t index)
{
    LOG_CHECK(purpose < 256, "philox_stream: purpose %u out of range", purpose);
    LOG_CHECK(index < (1ull << 56), "philox_stream: index %llu does not fit in 56 bits", (unsigned long long)index);
    return (uint64_t)purpose << 56 | index;
}

uint64_t philox_sampler_index(uint64_t repeat, uint32_t step)
{
    LOG_CHECK(repeat < (1ull << 24), "philox_sampler_index: repeat %llu does not fit in 24 bits",
              (unsigned long long)repeat);
    return repeat << 32 | step;
}

void philox4x32(const uint32_t ctr[4], const uint32_t key[2], int rounds, uint32_t out[4])
{
    const phx_u4 o = phx_philox(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1], rounds);
    for (int i = 0; i < 4; i++) out[i] = o.v[i];
}

float philox_uniform_at(uint64_t seed, uint64_t stream, uint64_t e) { return phx_uniform_at(seed, stream, e); }
float philox_gaussian_at(uint64_t seed, uint64_t stream, uint64_t e) { return phx_gaussian_at(seed, stream, e); }

enum { KIND_UNIFORM, KIND_GAUSSIAN, KIND_RADEMACHER };

/* the four values of block b */
static inline __attribute__((always_inline)) void block_values(int kind, uint64_t seed, uint64_t stream, uint64_t b, float v[4])
{
    const phx_u4 o = phx_block(seed, stream, b);
    if (kind == KIND_UNIFORM) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) v[j] = phx_u01(o.v[j]);
    } else if (kind == KIND_GAUSSIAN) {
        phx_box_muller(o.v[0], o.v[1], &v[0], &v[1]);
        phx_box_muller(o.v[2], o.v[3], &v[2], &v[3]);
    } else {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) v[j] = (o.v[j] >> 31) ? -1.0f : 1.0f;
    }
}

static void fill(int kind, float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset)
{
    if (n == 0) return;
    /* whole blocks [bf, bl) write 4 elements each, straight into x (a loop the compiler vectorises); the
     * partial blocks at either end go element by element */
    const uint64_t end = offset + n, bf = (offset + 3) >> 2, bl = end >> 2;
    if (bf >= bl) {
        for (uint64_t e = offset; e < end; e++) {
            float v[4];
            block_values(kind, seed, stream, e >> 2, v);
            x[e - offset] = v[e & 3];
        }
        return;
    }
    for (uint64_t e = offset; e < 4 * bf; e++) {
        float v[4];
        block_values(kind, seed, stream, e >> 2, v);
        x[e - offset] = v[e & 3];
    }
    float *xm = x + (4 * bf - offset);
    const long long nb = (long long)(bl - bf);
    /* one loop per kind (a constant kind inside, so no control flow blocks vectorisation) */
#define PHILOX_FILL_LOOP(K)                                                                                        \
    _Pragma("omp parallel for simd if (n >= PHILOX_PAR_MIN) schedule(static)")                                    \
    for (long long q = 0; q < nb; q++) block_values((K), seed, stream, bf + (uint64_t)q, xm + 4 * q)
    if (kind == KIND_UNIFORM) PHILOX_FILL_LOOP(KIND_UNIFORM);
    else if (kind == KIND_GAUSSIAN) PHILOX_FILL_LOOP(KIND_GAUSSIAN);
    else PHILOX_FILL_LOOP(KIND_RADEMACHER);
#undef PHILOX_FILL_LOOP
    for (uint64_t e = 4 * bl; e < end; e++) {
        float v[4];
        block_values(kind, seed, stream, e >> 2, v);
        x[e - offset] = v[e & 3];
    }
}

void philox_uniform_fill(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset)
{
    fill(KIND_UNIFORM, x, n, seed, stream, offset);
}

void philox_gaussian_fill(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset)
{
    fill(KIND_GAUSSIAN, x, n, seed, stream, offset);
}

void philox_rademacher_fill(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset)
{
    fill(KIND_RADEMACHER, x, n, seed, stream, offset);
}

void philox_time_fill(float *t, size_t n, double t_lo, double t_hi, uint64_t seed, uint64_t stream,
                      uint64_t offset)
{
    for (size_t i = 0; i < n; i++) t[i] = phx_time(t_lo, t_hi, phx_uniform_at(seed, stream, offset + i));
}

void philox_dsm_draw(float *t, float *z, size_t n, size_t dim, double t_lo, double t_hi, uint64_t seed,
                     uint64_t step)
{
    const uint64_t st = philox_stream(PHILOX_DSM_TIME, step);
    for (size_t i = 0; i < n; i++) t[i] = phx_time(t_lo, t_hi, phx_uniform_at(seed, st, i));
    philox_gaussian_fill(z, n * dim, seed, philox_stream(PHILOX_DSM_NOISE, step), 0);
}

void philox_sampler_noise(float *z, size_t len, uint64_t seed, uint64_t repeat, uint32_t step)
{
    philox_gaussian_fill(z, len, seed, philox_stream(PHILOX_SAMPLER_NOISE, philox_sampler_index(repeat, step)), 0);
}

void philox_probe(float *e, size_t len, int rademacher, uint64_t seed, uint64_t repeat)
{
    const uint64_t st = philox_stream(PHILOX_HUTCHINSON, repeat);
    if (rademacher) philox_rademacher_fill(e, len, seed, st, 0);
    else philox_gaussian_fill(e, len, seed, st, 0);
}
