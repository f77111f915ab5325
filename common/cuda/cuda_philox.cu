/* cuda/cuda_philox: the GPU side of the counter-based generator (common/philox.h; issue 8 item 5). The
 * arithmetic is philox_core.h, the same source the CPU compiles, with every float operation explicitly rounded
 * (__fmul_rn, __fadd_rn, ...: never fused by nvcc), so each kernel writes the same bits as its CPU twin in
 * common/philox.c. One thread per Philox block (4 consecutive elements), grid-stride; the partial blocks at
 * either end of [offset, offset + n) write only their lanes inside it. */
#include "cuda_internal.cuh"
#include "philox.h"
#include "philox_core.h"

enum { KIND_UNIFORM, KIND_GAUSSIAN, KIND_RADEMACHER, KIND_TIME };

static __global__ void philox_fill_kernel(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset,
                                          int kind, double t_lo, double t_hi)
{
    const uint64_t b0 = offset >> 2, nb = ((offset + n - 1) >> 2) - b0 + 1;
    NN_GRID_STRIDE(q, nb)
    {
        const uint64_t b = b0 + q;
        const phx_u4 o = phx_block(seed, stream, b);
        float v[4];
        if (kind == KIND_GAUSSIAN) {
            phx_box_muller(o.v[0], o.v[1], &v[0], &v[1]);
            phx_box_muller(o.v[2], o.v[3], &v[2], &v[3]);
        } else if (kind == KIND_RADEMACHER) {
#pragma unroll
            for (int j = 0; j < 4; j++) v[j] = (o.v[j] >> 31) ? -1.0f : 1.0f;
        } else if (kind == KIND_TIME) {
#pragma unroll
            for (int j = 0; j < 4; j++) v[j] = phx_time(t_lo, t_hi, phx_u01(o.v[j]));
        } else {
#pragma unroll
            for (int j = 0; j < 4; j++) v[j] = phx_u01(o.v[j]);
        }
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const uint64_t e = 4 * b + (uint64_t)j;
            if (e >= offset && e - offset < n) x[e - offset] = v[j];
        }
    }
}

static void launch(int kind, float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset, double t_lo,
                   double t_hi)
{
    if (n == 0) return;
    const size_t nb = ((offset + n - 1) >> 2) - (offset >> 2) + 1;
    philox_fill_kernel<<<nn_cuda_blocks(nb), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(x, n, seed, stream, offset,
                                                                                       kind, t_lo, t_hi);
    CUDA_CHECK_LAUNCH();
}

extern "C" void philox_uniform_fill_cuda(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset)
{
    launch(KIND_UNIFORM, x, n, seed, stream, offset, 0.0, 0.0);
}

extern "C" void philox_gaussian_fill_cuda(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset)
{
    launch(KIND_GAUSSIAN, x, n, seed, stream, offset, 0.0, 0.0);
}

extern "C" void philox_rademacher_fill_cuda(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset)
{
    launch(KIND_RADEMACHER, x, n, seed, stream, offset, 0.0, 0.0);
}

extern "C" void philox_time_fill_cuda(float *t, size_t n, double t_lo, double t_hi, uint64_t seed, uint64_t stream,
                                      uint64_t offset)
{
    launch(KIND_TIME, t, n, seed, stream, offset, t_lo, t_hi);
}

extern "C" void philox_dsm_draw_cuda(float *t, float *z, size_t n, size_t dim, double t_lo, double t_hi,
                                     uint64_t seed, uint64_t step)
{
    launch(KIND_TIME, t, n, seed, philox_stream(PHILOX_DSM_TIME, step), 0, t_lo, t_hi);
    launch(KIND_GAUSSIAN, z, n * dim, seed, philox_stream(PHILOX_DSM_NOISE, step), 0, 0.0, 0.0);
}

extern "C" void philox_sampler_noise_cuda(float *z, size_t len, uint64_t seed, uint64_t repeat, uint32_t step)
{
    launch(KIND_GAUSSIAN, z, len, seed, philox_stream(PHILOX_SAMPLER_NOISE, philox_sampler_index(repeat, step)), 0,
           0.0, 0.0);
}

extern "C" void philox_probe_cuda(float *e, size_t len, int rademacher, uint64_t seed, uint64_t repeat)
{
    launch(rademacher ? KIND_RADEMACHER : KIND_GAUSSIAN, e, len, seed, philox_stream(PHILOX_HUTCHINSON, repeat), 0,
           0.0, 0.0);
}
