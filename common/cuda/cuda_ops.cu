/* cuda/cuda_ops: GPU twins of tensor_ops.h's ScoreNet glue (paper §5.1, App. G; REFERENCE.md "Score network"):
 * the per-channel broadcast add "+ Dense(embed)" (added before each GroupNorm) / per-channel bias, with its
 * gradient (a per-(sample, channel) or per-channel sum), and the U-Net skip concatenation cat([h, skip], dim=1).
 * Elementwise kernels are grid-stride loops; the channel sums (also the conv bias gradient, nn_cuda_chan_sum_add_)
 * are double sums in a fixed tree (deterministic): per (sample, channel) one block each; per channel over the
 * whole batch two stages (slices, then their ordered sum), so even C = 1 or 32 keeps the GPU busy. */
#include "cuda_internal.cuh"

static __global__ void chan_add_kernel(float *x, const float *v, int B, int C, int HW, int v_bstride)
{
    const size_t total = (size_t)B * C * HW;
    NN_GRID_STRIDE(e, total)
    {
        const size_t bc = e / HW, b = bc / C, c = bc - b * C;
        x[e] += v[b * v_bstride + c];
    }
}

/* one block per output o: v_bstride 0 -> o = c, summed over b and p; else o = (b, c), summed over p */
static __global__ void chan_sum_kernel(float *dv, const float *dout, int B, int C, int HW, int v_bstride)
{
    const int nout = v_bstride ? B * C : C;
    for (int o = blockIdx.x; o < nout; o += gridDim.x) {
        const int b0 = v_bstride ? o / C : 0, c = v_bstride ? o % C : o, nb = v_bstride ? 1 : B;
        const size_t n = (size_t)nb * HW;
        double s = 0.0;
        for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
            const size_t bb = i / HW, p = i - bb * HW;
            s += dout[(((size_t)b0 + bb) * C + c) * HW + p];
        }
        s = nn_cuda_block_sum(s);
        if (threadIdx.x == 0) dv[(size_t)b0 * v_bstride + c] += (float)s;
    }
}

int nn_cuda_slices_(size_t n)
{
    const size_t per = (size_t)NN_CUDA_THREADS * 8;   /* >= 8 values per thread in stage 1 */
    size_t s = (n + per - 1) / per;
    return (int)(s < 1 ? 1 : s > 256 ? 256 : s);
}

static __global__ void sum_partials_kernel(float *dst, const double *part, int C, int S)
{
    NN_GRID_STRIDE(c, (size_t)C)
    {
        double t = 0.0;
        for (int k = 0; k < S; k++) t += part[c * (size_t)S + k];
        dst[c] += (float)t;
    }
}

void nn_cuda_sum_partials_(float *dst, const double *part, int C, int S)
{
    sum_partials_kernel<<<nn_cuda_blocks((size_t)C), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(dst, part, C, S);
    CUDA_CHECK_LAUNCH();
}

/* stage 1 of the per-channel sum over (b, p): block (c, s) sums slice s of the B * HW values of channel c */
static __global__ void chan_sum_part_kernel(double *part, const float *dout, int B, int C, int HW, int S)
{
    const size_t n = (size_t)B * HW, len = (n + S - 1) / S;
    for (size_t o = blockIdx.x; o < (size_t)C * S; o += gridDim.x) {
        const int c = (int)(o / S), sl = (int)(o - (size_t)c * S);
        const size_t lo = sl * len, hi = lo + len < n ? lo + len : n;
        double s = 0.0;
        for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
            const size_t b = i / HW, p = i - b * HW;
            s += dout[(b * C + c) * HW + p];
        }
        s = nn_cuda_block_sum(s);
        if (threadIdx.x == 0) part[o] = s;
    }
}

void nn_cuda_chan_sum_add_(float *dv, const float *dout, int B, int C, int HW, int v_bstride)
{
    const long nout = v_bstride ? (long)B * C : C;
    if (nout <= 0 || HW <= 0 || B <= 0) return;
    if (!v_bstride) {   /* per channel over B * HW values: two stages (see cuda_internal.cuh) */
        const int S = nn_cuda_slices_((size_t)B * HW);
        const size_t np = (size_t)C * S;
        double *part = nn_cuda_scratch_(np);
        const unsigned blocks = (unsigned)(np < (size_t)NN_CUDA_MAX_BLOCKS ? np : (size_t)NN_CUDA_MAX_BLOCKS);
        chan_sum_part_kernel<<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(part, dout, B, C, HW, S);
        CUDA_CHECK_LAUNCH();
        nn_cuda_sum_partials_(dv, part, C, S);
        return;
    }
    const unsigned blocks = (unsigned)(nout < NN_CUDA_MAX_BLOCKS ? nout : NN_CUDA_MAX_BLOCKS);
    chan_sum_kernel<<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(dv, dout, B, C, HW, v_bstride);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_chan_add_forward_cuda(float *x, const float *v, int B, int C, int HW, int v_bstride)
{
    LOG_CHECK(B >= 0 && C > 0 && HW > 0 && v_bstride >= 0, "nn_chan_add_forward_cuda: bad sizes");
    const size_t total = (size_t)B * C * HW;
    if (total == 0) return;
    chan_add_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(x, v, B, C, HW, v_bstride);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_chan_add_backward_cuda(float *dv, const float *dout, int B, int C, int HW, int v_bstride)
{
    if (!dv) return;
    LOG_CHECK(B >= 0 && C > 0 && HW > 0 && v_bstride >= 0, "nn_chan_add_backward_cuda: bad sizes");
    nn_cuda_chan_sum_add_(dv, dout, B, C, HW, v_bstride);
}

static __global__ void concat_fwd_kernel(float *out, const float *a, const float *b, int B, int C1, int C2, int HW)
{
    const size_t na = (size_t)C1 * HW, nb = (size_t)C2 * HW, row = na + nb, total = (size_t)B * row;
    NN_GRID_STRIDE(e, total)
    {
        const size_t i = e / row, r = e - i * row;
        out[e] = r < na ? a[i * na + r] : b[i * nb + (r - na)];
    }
}

/* d[B, Cd, HW] += dout[:, off : off + Cd] with dout [B, Ctot, HW] (offsets / sizes in floats per sample) */
static __global__ void concat_bwd_kernel(float *d, const float *dout, size_t nd, size_t off, size_t row, int B)
{
    const size_t total = (size_t)B * nd;
    NN_GRID_STRIDE(e, total)
    {
        const size_t i = e / nd, r = e - i * nd;
        d[e] += dout[i * row + off + r];
    }
}

extern "C" void nn_concat_forward_cuda(float *out, const float *a, const float *b, int B, int C1, int C2, int HW)
{
    LOG_CHECK(B >= 0 && C1 >= 0 && C2 >= 0 && HW > 0, "nn_concat_forward_cuda: bad sizes");
    const size_t total = (size_t)B * (C1 + C2) * HW;
    if (total == 0) return;
    concat_fwd_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(out, a, b, B, C1, C2, HW);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_concat_backward_cuda(float *da, float *db, const float *dout, int B, int C1, int C2, int HW)
{
    LOG_CHECK(B >= 0 && C1 >= 0 && C2 >= 0 && HW > 0, "nn_concat_backward_cuda: bad sizes");
    const size_t na = (size_t)C1 * HW, nb = (size_t)C2 * HW, row = na + nb;
    if (da && na && B) {
        concat_bwd_kernel<<<nn_cuda_blocks((size_t)B * na), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(da, dout, na, 0,
                                                                                                     row, B);
        CUDA_CHECK_LAUNCH();
    }
    if (db && nb && B) {
        concat_bwd_kernel<<<nn_cuda_blocks((size_t)B * nb), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(db, dout, nb, na,
                                                                                                     row, B);
        CUDA_CHECK_LAUNCH();
    }
}

/* ---- per-row scale: dst[i, :] = v[i] src[i, :] + beta dst[i, :] (beta == 0 never reads dst) */

static __global__ void rowscale_kernel(float *dst, const float *v, const float *src, int n, int d, float beta)
{
    const size_t total = (size_t)n * d;
    NN_GRID_STRIDE(e, total)
    {
        const float y = v[e / (size_t)d] * src[e];
        dst[e] = beta == 0.0f ? y : y + beta * dst[e];
    }
}

extern "C" void nn_rowscale_cuda(float *dst, const float *v, const float *src, int n, int d, float beta)
{
    LOG_CHECK(n >= 0 && d > 0, "nn_rowscale_cuda: bad sizes");
    const size_t total = (size_t)n * d;
    if (total == 0) return;
    rowscale_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(dst, v, src, n, d, beta);
    CUDA_CHECK_LAUNCH();
}

/* ---- per-row division: dst[i, :] = src[i, :] / v[i] (a division, as the CPU's nn_rowdiv: bitwise the same) */

static __global__ void rowdiv_kernel(float *dst, const float *v, const float *src, int n, int d)
{
    const size_t total = (size_t)n * d;
    NN_GRID_STRIDE(e, total) dst[e] = src[e] / v[e / (size_t)d];
}

extern "C" void nn_rowdiv_cuda(float *dst, const float *v, const float *src, int n, int d)
{
    LOG_CHECK(n >= 0 && d > 0, "nn_rowdiv_cuda: bad sizes");
    const size_t total = (size_t)n * d;
    if (total == 0) return;
    rowdiv_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(dst, v, src, n, d);
    CUDA_CHECK_LAUNCH();
}

static __global__ void scale_kernel(float *x, float a, size_t n)
{
    NN_GRID_STRIDE(e, n) x[e] *= a;
}

extern "C" void nn_scale_cuda(float *x, float a, size_t n)
{
    if (n == 0) return;
    scale_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(x, a, n);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- the resident-data step: row gather */

static __global__ void gather_rows_kernel(float *dst, const float *src, const int32_t *idx, size_t n, size_t dim)
{
    const size_t total = n * dim;
    NN_GRID_STRIDE(j, total)
    {
        const size_t i = j / dim;
        dst[j] = src[(size_t)idx[i] * dim + (j - i * dim)];
    }
}

extern "C" void nn_gather_rows_cuda(float *dst, const float *src, const int32_t *idx, size_t n, size_t dim)
{
    if (n == 0 || dim == 0) return;
    gather_rows_kernel<<<nn_cuda_blocks(n * dim), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(dst, src, idx, n, dim);
    CUDA_CHECK_LAUNCH();
}
