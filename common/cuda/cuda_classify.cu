/* cuda/cuda_classify: the digit classifier's layers on the GPU (nn_cuda.h; common/models/digitnet.c): max-pool
 * forward / backward (pool.h), dropout with the Philox mask of tensor_ops.h (philox_core.h, so the mask has the
 * CPU's bits) and log-softmax cross-entropy forward / backward (tensor_ops.h). CPU references: pool.c,
 * tensor_ops.c; compared in tests/test_cuda_classify.c. */
#include "cuda_internal.cuh"
#include "philox_core.h"
#include <math.h>

/* ---- max-pool: one thread per output, the reference's window walk (first maximum in row-major order wins; a
 * NaN wins at once), so out and idx are the CPU's bits */

struct pgeom {
    int C, H, W, KH, KW, SH, SW, PH, PW, OH, OW;
};

static pgeom to_pgeom(const nn_pool_geom *g)
{
    pgeom p = {g->C, g->H, g->W, g->KH, g->KW, g->SH, g->SW, g->PH, g->PW, g->OH, g->OW};
    return p;
}

static __global__ void maxpool_fwd_kernel(float *out, int32_t *idx, const float *in, size_t total, pgeom g)
{
    NN_GRID_STRIDE(o, total)
    {
        const size_t pl = o / ((size_t)g.OH * g.OW);
        const int r = (int)(o % ((size_t)g.OH * g.OW)), oh = r / g.OW, ow = r % g.OW;
        const float *x = in + pl * (size_t)g.H * g.W;
        const int h0 = oh * g.SH - g.PH, w0 = ow * g.SW - g.PW;
        float best = -INFINITY;
        int32_t bi = -1;
        for (int i = 0; i < g.KH && !(bi >= 0 && isnan(best)); i++) {
            const int ih = h0 + i;
            if (ih < 0 || ih >= g.H) continue;
            for (int j = 0; j < g.KW; j++) {
                const int iw = w0 + j;
                if (iw < 0 || iw >= g.W) continue;
                const float v = x[(size_t)ih * g.W + iw];
                if (bi < 0 || v > best || isnan(v)) {
                    best = v;
                    bi = ih * g.W + iw;
                    if (isnan(v)) break;
                }
            }
        }
        out[o] = best;
        idx[o] = bi;
    }
}

/* one thread per INPUT element: it adds the outputs whose argmax it is, in ascending output order (the CPU's
 * order), so the sums are the CPU's bits and need no atomics */
static __global__ void maxpool_bwd_kernel(float *din, const float *dout, const int32_t *idx, size_t total, pgeom g)
{
    NN_GRID_STRIDE(e, total)
    {
        const size_t pl = e / ((size_t)g.H * g.W);
        const int q = (int)(e % ((size_t)g.H * g.W)), ih = q / g.W, iw = q % g.W;
        /* outputs whose window covers (ih, iw): oh S - P <= ih < oh S - P + K */
        int oh0 = ih + g.PH - g.KH + 1, ow0 = iw + g.PW - g.KW + 1;
        oh0 = oh0 <= 0 ? 0 : (oh0 + g.SH - 1) / g.SH;
        ow0 = ow0 <= 0 ? 0 : (ow0 + g.SW - 1) / g.SW;
        int oh1 = (ih + g.PH) / g.SH, ow1 = (iw + g.PW) / g.SW;
        if (oh1 > g.OH - 1) oh1 = g.OH - 1;
        if (ow1 > g.OW - 1) ow1 = g.OW - 1;
        const size_t base = pl * (size_t)g.OH * g.OW;
        float acc = din[e];
        int hit = 0;
        for (int oh = oh0; oh <= oh1; oh++)
            for (int ow = ow0; ow <= ow1; ow++) {
                const size_t o = base + (size_t)oh * g.OW + ow;
                if (idx[o] == q) {
                    acc += dout[o];
                    hit = 1;
                }
            }
        if (hit) din[e] = acc;
    }
}

extern "C" void nn_maxpool2d_forward_cuda(float *out, int32_t *idx, const float *in, int B, const nn_pool_geom *g)
{
    const size_t total = (size_t)B * g->C * g->OH * g->OW;
    if (total == 0) return;
    maxpool_fwd_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(out, idx, in, total,
                                                                                         to_pgeom(g));
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_maxpool2d_backward_cuda(float *din, const float *dout, const int32_t *idx, int B,
                                           const nn_pool_geom *g)
{
    const size_t total = (size_t)B * g->C * g->H * g->W;
    if (total == 0) return;
    maxpool_bwd_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(din, dout, idx, total,
                                                                                         to_pgeom(g));
    CUDA_CHECK_LAUNCH();
}

/* ---- dropout: mask of unit u = philox uniform of element offset + u, as nn_dropout_forward */

static __device__ __forceinline__ float dropout_mask(uint64_t seed, uint64_t stream, uint64_t e, float p, float scale)
{
    const phx_u4 o = phx_block(seed, stream, e >> 2);
    return (p > 0.0f && phx_u01(o.v[e & 3]) < p) ? 0.0f : scale;
}

static __global__ void dropout_fwd_kernel(float *out, float *mask, const float *in, size_t n_units, size_t inner,
                                          float p, float scale, uint64_t seed, uint64_t stream, uint64_t offset)
{
    NN_GRID_STRIDE(i, n_units * inner)
    {
        const size_t u = i / inner;
        const float m = dropout_mask(seed, stream, offset + u, p, scale);
        if (i % inner == 0) mask[u] = m;
        out[i] = __fmul_rn(in[i], m);
    }
}

static __global__ void dropout_bwd_kernel(float *din, const float *dout, const float *mask, size_t n, size_t inner)
{
    NN_GRID_STRIDE(i, n) din[i] = __fadd_rn(din[i], mask ? __fmul_rn(dout[i], mask[i / inner]) : dout[i]);
}

extern "C" void nn_dropout_forward_cuda(float *out, float *mask, const float *in, size_t n_units, size_t inner,
                                        float p, int train, uint64_t seed, uint64_t stream, uint64_t offset)
{
    const size_t n = n_units * inner;
    if (n == 0) return;
    if (!train) {
        if (out != in) nn_cuda_memcpy_d2d(out, in, n * sizeof *out);
        return;
    }
    LOG_CHECK(p >= 0.0f && p <= 1.0f, "dropout: p = %g outside [0, 1]", (double)p);
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    dropout_fwd_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(out, mask, in, n_units, inner, p,
                                                                                     scale, seed, stream, offset);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_dropout_backward_cuda(float *din, const float *dout, const float *mask, size_t n_units,
                                         size_t inner, int train)
{
    const size_t n = n_units * inner;
    if (!din || n == 0) return;
    dropout_bwd_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(din, dout, train ? mask : NULL,
                                                                                     n, inner);
    CUDA_CHECK_LAUNCH();
}

/* ---- cross-entropy: one thread per row (K is the class count, 10 here), sums in double as the CPU; the batch
 * loss by a fixed-order block reduction (deterministic) */

static __global__ void ce_fwd_kernel(float *logp, double *rowloss, const float *logits, const int *labels, int B,
                                     int K)
{
    NN_GRID_STRIDE(b, (size_t)B)
    {
        const float *x = logits + b * K;
        float *o = logp + b * K;
        float mx = -INFINITY;
        for (int k = 0; k < K; k++) mx = x[k] > mx ? x[k] : mx;
        double s = 0.0;
        for (int k = 0; k < K; k++) s += exp((double)x[k] - mx);
        const double lse = mx + log(s);
        for (int k = 0; k < K; k++) o[k] = (float)((double)x[k] - lse);
        const int l = labels[b];
        rowloss[b] = (l >= 0 && l < K) ? -(double)o[l] : NAN;
    }
}

static __global__ void ce_sum_kernel(double *out, const double *rowloss, int B)
{
    /* in row order per thread, then the fixed tree: deterministic (the CPU sums in row order: equal to rounding) */
    double s = 0.0;
    for (int i = threadIdx.x; i < B; i += blockDim.x) s += rowloss[i];
    s = nn_cuda_block_sum(s);
    if (threadIdx.x == 0) *out = s;
}

static __global__ void ce_bwd_kernel(float *dlogits, double sc, const float *logp, const int *labels, int B, int K)
{
    NN_GRID_STRIDE(e, (size_t)B * K)
    {
        const int b = (int)(e / K), k = (int)(e % K);
        dlogits[e] += (float)(sc * (exp((double)logp[e]) - (k == labels[b] ? 1.0 : 0.0)));
    }
}

extern "C" double nn_cross_entropy_forward_cuda(float *logp, const float *logits, const int *labels, int B, int K)
{
    if (B <= 0) return 0.0;
    double *scratch = nn_cuda_scratch_((size_t)B + 1);   /* the total, then the row losses */
    cudaStream_t s = nn_cuda_stream_();
    ce_fwd_kernel<<<nn_cuda_blocks((size_t)B), NN_CUDA_THREADS, 0, s>>>(logp, scratch + 1, logits, labels, B, K);
    CUDA_CHECK_LAUNCH();
    ce_sum_kernel<<<1, NN_CUDA_THREADS, 0, s>>>(scratch, scratch + 1, B);
    CUDA_CHECK_LAUNCH();
    double sum = 0.0;
    nn_cuda_memcpy_d2h(&sum, scratch, sizeof sum);
    return sum / B;
}

extern "C" void nn_cross_entropy_backward_cuda(float *dlogits, float dloss, const float *logp, const int *labels,
                                               int B, int K)
{
    if (B <= 0) return;
    const size_t n = (size_t)B * K;
    ce_bwd_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(dlogits, (double)dloss / B, logp,
                                                                                labels, B, K);
    CUDA_CHECK_LAUNCH();
}
