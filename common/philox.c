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
static inline void block_values(int kind, uint64_t seed, uint64_t stream, uint64_t b, float v[4])
{
    const phx_u4 o = phx_block(seed, stream, b);
    if (kind == KIND_UNIFORM) {
        for (int j = 0; j < 4; j++) v[j] = phx_u01(o.v[j]);
    } else if (kind == KIND_GAUSSIAN) {
        phx_box_muller(o.v[0], o.v[1], &v[0], &v[1]);
        phx_box_muller(o.v[2], o.v[3], &v[2], &v[3]);
    } else {
        for (int j = 0; j < 4; j++) v[j] = (o.v[j] >> 31) ? -1.0f : 1.0f;
    }
}

static void fill(int kind, float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset)
{
    if (n == 0) return;
    const uint64_t b0 = offset >> 2, b1 = (offset + n - 1) >> 2;   /* blocks covering the range */
    const long long nb = (long long)(b1 - b0 + 1);
#pragma omp parallel for if (n >= PHILOX_PAR_MIN) schedule(static)
    for (long long q = 0; q < nb; q++) {
        const uint64_t b = b0 + (uint64_t)q;
        float v[4];
        block_values(kind, seed, stream, b, v);
        for (int j = 0; j < 4; j++) {
            const uint64_t e = 4 * b + (uint64_t)j;
            if (e >= offset && e - offset < n) x[e - offset] = v[j];
        }
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
