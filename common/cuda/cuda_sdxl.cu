/* cuda/cuda_sdxl: the fp16 kernels of nn/nn_cuda_sdxl.h, which carry the SDXL UNet's layer calls on a GPU
 * (models/sdxl/sdxl_ops.h; issue 9 item 7). Storage is fp16 throughout; every sum is fp32 or wider:
 *   - GEMMs on cuBLAS with fp16 operands and CUBLAS_COMPUTE_32F (tensor cores, fp32 accumulation). Row-major on
 *     a column-major BLAS as in cuda_gemm.cu: row-major out[T, OC] = in W^T is, column-major, out^T[OC, T] =
 *     op_T(W viewed [IC, OC]) op_N(in viewed [IC, T]); convolutions are
 *     im2col into [K, P] per image then, column-major, out^T[P, OC] = col^T[P, K] W^T[K, OC], one strided batched
 *     call over the images of a chunk (W shared: stride 0);
 *   - norms: one block per (sample, group) or per row, two passes (mean, then the centred second moment: no
 *     cancellation), per-thread fp32 partial sums reduced in double (nn_cuda_block_sum_all);
 *   - attention: the online-softmax ("flash") recurrence, one thread per query, keys and values staged through
 *     shared memory in fp32 tiles, scores in base 2 (q pre-scaled by log2(e)/sqrt(dh)); per chunk of 8 keys the
 *     running max is updated once and the accumulator rescaled once. No [Tq, Tk] matrix exists anywhere. This
 *     runs on the fp32 CUDA cores, not the tensor cores: correct and memory-light, not yet as fast as a
 *     tensor-core (mma) tile kernel would be. */
#include "cuda_internal.cuh"
#include "nn_cuda_sdxl.h"
#include <cuda_fp16.h>
#include <mma.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef __half h16;

static __device__ __forceinline__ float ld(const h16 *p, size_t i) { return __half2float(p[i]); }
static __device__ __forceinline__ h16 rn(float x) { return __float2half_rn(x); }

/* ------------------------------------------------------------------------------------------------ GEMMs */

static void hgemm_check(const char *what, int a, int b, int c)
{
    LOG_CHECK(a > 0 && b >= 0 && c > 0, "%s: bad sizes (%d, %d, %d)", what, a, b, c);
}

/* out[r, c] = out[r, c] + b[c] (in fp32, one rounding) for out[R, Cn] */
static __global__ void rows_bias_kernel(h16 *out, const h16 *b, size_t R, int Cn)
{
    NN_GRID_STRIDE(i, R * (size_t)Cn) out[i] = rn(ld(out, i) + ld(b, i % (size_t)Cn));
}

extern "C" void nn_h_linear_cuda(void *out, const void *in, const void *W, const void *b, int T, int IC, int OC,
                                 int acc)
{
    hgemm_check("nn_h_linear_cuda", OC, T, IC);
    if (T == 0) return;
    const float alpha = 1.0f, beta = acc ? 1.0f : 0.0f;
    /* column-major: out^T[OC, T] = (W viewed [IC, OC])^T (in viewed [IC, T]) */
    CUBLAS_CHECK(cublasGemmEx(nn_cuda_blas_(), CUBLAS_OP_T, CUBLAS_OP_N, OC, T, IC, &alpha, W, CUDA_R_16F, IC, in,
                              CUDA_R_16F, IC, &beta, out, CUDA_R_16F, OC, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (b) {
        const size_t n = (size_t)T * OC;
        rows_bias_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>((h16 *)out, (const h16 *)b,
                                                                                      (size_t)T, OC);
        CUDA_CHECK_LAUNCH();
    }
}

/* x[b, c, p] += v[b * vb + c] for x[B, C, HW] */
static __global__ void chan_add_kernel(h16 *x, const h16 *v, int C, int HW, size_t n, int vb)
{
    NN_GRID_STRIDE(i, n)
    {
        const size_t bc = i / (size_t)HW;
        const int c = (int)(bc % (size_t)C), bi = (int)(bc / (size_t)C);
        x[i] = rn(ld(x, i) + ld(v, (size_t)bi * vb + c));
    }
}

extern "C" void nn_h_chan_add_cuda(void *x, const void *v, int B, int C, int HW, int v_bstride)
{
    const size_t n = (size_t)B * C * HW;
    if (n == 0) return;
    chan_add_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>((h16 *)x, (const h16 *)v, C, HW, n,
                                                                                 v_bstride);
    CUDA_CHECK_LAUNCH();
}

static int pointwise(const nn_conv_geom *g)
{
    return g->KH == 1 && g->KW == 1 && g->SH == 1 && g->SW == 1 && g->PH == 0 && g->PW == 0;
}

extern "C" size_t nn_h_conv2d_ws_halves(const nn_conv_geom *g)
{
    return pointwise(g) ? 0 : (size_t)g->IC * g->KH * g->KW * g->OH * g->OW;
}

/* col[m, IC KH KW, OH OW] for the nimg images in[m, IC, H, W] (zero padding) */
static __global__ void im2col_kernel(h16 *col, const h16 *in, int nimg, nn_conv_geom g)
{
    const size_t P = (size_t)g.OH * g.OW, K = (size_t)g.IC * g.KH * g.KW, n = (size_t)nimg * K * P;
    NN_GRID_STRIDE(i, n)
    {
        const size_t p = i % P, rk = i / P;
        const int r = (int)(rk % K), m = (int)(rk / K);
        const int c = r / (g.KH * g.KW), ky = r / g.KW % g.KH, kx = r % g.KW;
        const int oy = (int)(p / (size_t)g.OW), ox = (int)(p % (size_t)g.OW);
        const int y = oy * g.SH - g.PH + ky, x = ox * g.SW - g.PW + kx;
        h16 val = __float2half_rn(0.0f);
        if (y >= 0 && y < g.H && x >= 0 && x < g.W) val = in[(((size_t)m * g.IC + c) * g.H + y) * g.W + x];
        col[i] = val;
    }
}

extern "C" void nn_h_conv2d_cuda(void *out, const void *in, const void *W, const void *b, int B,
                                 const nn_conv_geom *g, void *ws, size_t ws_halves)
{
    hgemm_check("nn_h_conv2d_cuda", g->OC, B, g->IC);
    const int K = g->IC * g->KH * g->KW, P = g->OH * g->OW;
    const size_t per = nn_h_conv2d_ws_halves(g);
    LOG_CHECK(per == 0 || ws_halves >= per, "nn_h_conv2d_cuda: workspace %zu halves < %zu for one image", ws_halves,
              per);
    const int chunk = per == 0 ? B : (int)(ws_halves / per < (size_t)B ? ws_halves / per : (size_t)B);
    const float alpha = 1.0f, beta = 0.0f;
    const h16 *x = (const h16 *)in;
    h16 *y = (h16 *)out;
    for (int n0 = 0; n0 < B; n0 += chunk) {
        const int m = B - n0 < chunk ? B - n0 : chunk;
        const h16 *xi = x + (size_t)n0 * g->IC * g->H * g->W;
        const h16 *col = xi;
        if (per) {
            const size_t tot = (size_t)m * per;
            im2col_kernel<<<nn_cuda_blocks(tot), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>((h16 *)ws, xi, m, *g);
            CUDA_CHECK_LAUNCH();
            col = (const h16 *)ws;
        }
        /* column-major per image: out^T[P, OC] = (col viewed [P, K]) (W viewed [K, OC]) */
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(nn_cuda_blas_(), CUBLAS_OP_N, CUBLAS_OP_N, P, g->OC, K, &alpha, col,
                                                CUDA_R_16F, P, (long long)K * P, W, CUDA_R_16F, K, 0LL, &beta,
                                                y + (size_t)n0 * g->OC * P, CUDA_R_16F, P, (long long)g->OC * P, m,
                                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    if (b) nn_h_chan_add_cuda(out, b, B, g->OC, P, 0);
}

/* ------------------------------------------------------------------------------------------------ norms */

#define NORM_THREADS 512

static __global__ void groupnorm_kernel(h16 *out, const h16 *in, const h16 *gamma, const h16 *beta, int C, int HW,
                                        int G, float eps, int silu)
{
    const int bg = blockIdx.x, b = bg / G, g = bg % G, cpg = C / G;
    const size_t n = (size_t)cpg * HW, base = ((size_t)b * C + (size_t)g * cpg) * HW;
    float s = 0.0f;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) s += ld(in, base + i);
    const double mean = nn_cuda_block_sum_all(s) / (double)n;
    const float mu = (float)mean;
    float s2 = 0.0f;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float d = ld(in, base + i) - mu;
        s2 += d * d;
    }
    const double var = nn_cuda_block_sum_all(s2) / (double)n;
    const float rstd = (float)(1.0 / sqrt(var + (double)eps));
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        const int c = g * cpg + (int)(i / (size_t)HW);
        const float a = rstd * (gamma ? ld(gamma, c) : 1.0f), sh = (beta ? ld(beta, c) : 0.0f) - mu * a;
        float v = fmaf(ld(in, base + i), a, sh);
        if (silu) v = v / (1.0f + expf(-v));
        out[base + i] = rn(v);
    }
}

extern "C" void nn_h_groupnorm_cuda(void *out, const void *in, const void *gamma, const void *beta, int B, int C,
                                    int HW, int G, float eps, int silu)
{
    LOG_CHECK(B > 0 && G > 0 && C % G == 0 && HW > 0, "nn_h_groupnorm_cuda: bad sizes (B %d C %d HW %d G %d)", B, C,
              HW, G);
    groupnorm_kernel<<<(unsigned)(B * G), NORM_THREADS, 0, nn_cuda_stream_()>>>(
        (h16 *)out, (const h16 *)in, (const h16 *)gamma, (const h16 *)beta, C, HW, G, eps, silu);
    CUDA_CHECK_LAUNCH();
}

#define LN_THREADS 128

static __global__ void layernorm_kernel(h16 *out, const h16 *in, const h16 *gamma, const h16 *beta, int D,
                                        float eps)
{
    const size_t base = (size_t)blockIdx.x * D;
    float s = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) s += ld(in, base + i);
    const float mu = (float)(nn_cuda_block_sum_all(s) / D);
    float s2 = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        const float d = ld(in, base + i) - mu;
        s2 += d * d;
    }
    const float rstd = (float)(1.0 / sqrt(nn_cuda_block_sum_all(s2) / D + (double)eps));
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        const float v = (ld(in, base + i) - mu) * rstd;
        out[base + i] = rn(fmaf(v, gamma ? ld(gamma, i) : 1.0f, beta ? ld(beta, i) : 0.0f));
    }
}

extern "C" void nn_h_layernorm_cuda(void *out, const void *in, const void *gamma, const void *beta, int N, int D,
                                    float eps)
{
    LOG_CHECK(N >= 0 && D > 0, "nn_h_layernorm_cuda: bad sizes (N %d D %d)", N, D);
    if (N == 0) return;
    layernorm_kernel<<<(unsigned)N, LN_THREADS, 0, nn_cuda_stream_()>>>((h16 *)out, (const h16 *)in,
                                                                        (const h16 *)gamma, (const h16 *)beta, D, eps);
    CUDA_CHECK_LAUNCH();
}

/* ------------------------------------------------------------------------------------------------ element-wise */

static __global__ void silu_kernel(h16 *out, const h16 *in, size_t n)
{
    NN_GRID_STRIDE(i, n)
    {
        const float x = ld(in, i);
        out[i] = rn(x / (1.0f + expf(-x)));
    }
}

extern "C" void nn_h_silu_cuda(void *out, const void *in, size_t n)
{
    if (n == 0) return;
    silu_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>((h16 *)out, (const h16 *)in, n);
    CUDA_CHECK_LAUNCH();
}

static __global__ void geglu_kernel(h16 *out, const h16 *in, int I, size_t n)
{
    NN_GRID_STRIDE(i, n)
    {
        const size_t r = i / (size_t)I, c = i % (size_t)I;
        const float a = ld(in, r * 2 * I + c), x = ld(in, r * 2 * I + I + c);
        out[i] = rn(a * 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)));
    }
}

extern "C" void nn_h_geglu_cuda(void *out, const void *in, int T, int I)
{
    const size_t n = (size_t)T * I;
    if (n == 0) return;
    geglu_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>((h16 *)out, (const h16 *)in, I, n);
    CUDA_CHECK_LAUNCH();
}

static __global__ void add_kernel(h16 *out, const h16 *a, const h16 *b, size_t n)
{
    NN_GRID_STRIDE(i, n) out[i] = rn(ld(a, i) + ld(b, i));
}

extern "C" void nn_h_add_cuda(void *out, const void *a, const void *b, size_t n)
{
    if (n == 0) return;
    add_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>((h16 *)out, (const h16 *)a,
                                                                            (const h16 *)b, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_h_concat_cuda(void *out, const void *a, int C1, const void *b, int C2, int B, int HW)
{
    /* two strided 2-D copies: B rows of C1 HW (resp. C2 HW) halves into rows of (C1 + C2) HW */
    const size_t row = (size_t)(C1 + C2) * HW * sizeof(h16), ra = (size_t)C1 * HW * sizeof(h16),
                 rb = (size_t)C2 * HW * sizeof(h16);
    if (B <= 0) return;
    if (ra) CUDA_CHECK(cudaMemcpy2DAsync(out, row, a, ra, ra, (size_t)B, cudaMemcpyDeviceToDevice, nn_cuda_stream_()));
    if (rb)
        CUDA_CHECK(cudaMemcpy2DAsync((char *)out + ra, row, b, rb, rb, (size_t)B, cudaMemcpyDeviceToDevice,
                                     nn_cuda_stream_()));
}

static __global__ void upsample_kernel(h16 *out, const h16 *in, int H, int W, size_t n)
{
    NN_GRID_STRIDE(i, n)
    {
        const size_t ox = i % (size_t)(2 * W), r = i / (size_t)(2 * W);
        const size_t oy = r % (size_t)(2 * H), pl = r / (size_t)(2 * H);
        out[i] = in[(pl * H + oy / 2) * W + ox / 2];
    }
}

extern "C" void nn_h_upsample2x_cuda(void *out, const void *in, int B, int C, int H, int W)
{
    const size_t n = (size_t)B * C * 4 * H * W;
    if (n == 0) return;
    upsample_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>((h16 *)out, (const h16 *)in, H, W,
                                                                                 n);
    CUDA_CHECK_LAUNCH();
}

/* 32 x 32 tiles through shared memory (padded: no bank conflicts), block (32, 8); grid (tiles of HW, tiles of C, B).
 * to_tokens:   out[b, p, c] = in[b, c, p]
 * from_tokens: out[b, c, p] = in[b, p, c] + res[b, c, p] (each out element read from res by the thread that
 *              writes it, so out may be res) */
#define TT 32
static __global__ void to_tokens_kernel(h16 *out, const h16 *in, int C, int HW)
{
    __shared__ h16 t[TT][TT + 1];
    const size_t off = (size_t)blockIdx.z * C * HW;
    const int p0 = blockIdx.x * TT, c0 = blockIdx.y * TT;
    for (int j = threadIdx.y; j < TT; j += blockDim.y) {
        const int c = c0 + j, p = p0 + threadIdx.x;
        if (c < C && p < HW) t[j][threadIdx.x] = in[off + (size_t)c * HW + p];
    }
    __syncthreads();
    for (int j = threadIdx.y; j < TT; j += blockDim.y) {
        const int p = p0 + j, c = c0 + threadIdx.x;
        if (c < C && p < HW) out[off + (size_t)p * C + c] = t[threadIdx.x][j];
    }
}

static __global__ void from_tokens_add_kernel(h16 *out, const h16 *in, const h16 *res, int C, int HW)
{
    __shared__ h16 t[TT][TT + 1];
    const size_t off = (size_t)blockIdx.z * C * HW;
    const int p0 = blockIdx.x * TT, c0 = blockIdx.y * TT;
    for (int j = threadIdx.y; j < TT; j += blockDim.y) {
        const int p = p0 + j, c = c0 + threadIdx.x;
        if (c < C && p < HW) t[j][threadIdx.x] = in[off + (size_t)p * C + c];
    }
    __syncthreads();
    for (int j = threadIdx.y; j < TT; j += blockDim.y) {
        const int c = c0 + j, p = p0 + threadIdx.x;
        if (c < C && p < HW) {
            const size_t i = off + (size_t)c * HW + p;
            out[i] = rn(__half2float(t[threadIdx.x][j]) + ld(res, i));
        }
    }
}

extern "C" void nn_h_to_tokens_cuda(void *out, const void *in, int B, int C, int HW)
{
    if ((size_t)B * C * HW == 0) return;
    dim3 grid((unsigned)((HW + TT - 1) / TT), (unsigned)((C + TT - 1) / TT), (unsigned)B), block(TT, 8);
    to_tokens_kernel<<<grid, block, 0, nn_cuda_stream_()>>>((h16 *)out, (const h16 *)in, C, HW);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_h_from_tokens_add_cuda(void *out, const void *in, const void *res, int B, int C, int HW)
{
    if ((size_t)B * C * HW == 0) return;
    dim3 grid((unsigned)((HW + TT - 1) / TT), (unsigned)((C + TT - 1) / TT), (unsigned)B), block(TT, 8);
    from_tokens_add_kernel<<<grid, block, 0, nn_cuda_stream_()>>>((h16 *)out, (const h16 *)in, (const h16 *)res, C,
                                                                  HW);
    CUDA_CHECK_LAUNCH();
}

/* ------------------------------------------------------------------------------------------------ attention */

#define ATT_THREADS 128   /* queries per block */
#define ATT_CHUNK 8       /* keys per running-max update */

/* DH: head dimension rounded up to a compiled size (entries past dh are zero in q, k and v, so they add nothing).
 * BK keys per shared tile: 2 BK DH floats = 32 KiB. */
template <int DH>
static __global__ void __launch_bounds__(ATT_THREADS)
    attention_kernel(h16 *out, const h16 *q, const h16 *k, const h16 *v, int heads, int Tq, int Tk, int dh,
                     float qscale)
{
    constexpr int BK = DH >= 128 ? 32 : 64;
    __shared__ float Ks[BK][DH];
    __shared__ float Vs[BK][DH];
    const int C = heads * dh, hd = blockIdx.y, b = blockIdx.z;
    const int i = blockIdx.x * ATT_THREADS + threadIdx.x;
    const bool active = i < Tq;
    const h16 *qb = q + (size_t)b * Tq * C + (size_t)hd * dh;
    const h16 *kb = k + (size_t)b * Tk * C + (size_t)hd * dh, *vb = v + (size_t)b * Tk * C + (size_t)hd * dh;
    float qr[DH], acc[DH];
#pragma unroll
    for (int d = 0; d < DH; d++) {
        qr[d] = active && d < dh ? ld(qb, (size_t)i * C + d) * qscale : 0.0f;
        acc[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j0 = 0; j0 < Tk; j0 += BK) {
        const int nk = Tk - j0 < BK ? Tk - j0 : BK;
        __syncthreads();   /* the previous tile is no longer read */
        for (int e = threadIdx.x; e < BK * DH; e += ATT_THREADS) {
            const int j = e / DH, d = e % DH;
            float kv = 0.0f, vv = 0.0f;
            if (j < nk && d < dh) {
                const size_t at = (size_t)(j0 + j) * C + d;
                kv = ld(kb, at);
                vv = ld(vb, at);
            }
            Ks[j][d] = kv;
            Vs[j][d] = vv;
        }
        __syncthreads();
        if (!active) continue;
        for (int j = 0; j < nk; j += ATT_CHUNK) {
            float s[ATT_CHUNK], mx = m;
#pragma unroll
            for (int c = 0; c < ATT_CHUNK; c++) {
                float t = -INFINITY;
                if (j + c < nk) {
                    t = 0.0f;
#pragma unroll
                    for (int d = 0; d < DH; d++) t = fmaf(qr[d], Ks[j + c][d], t);
                }
                s[c] = t;
                mx = fmaxf(mx, t);
            }
            const float corr = exp2f(m - mx);   /* m = -inf on the first chunk: 0, and acc, l are 0 anyway */
            l *= corr;
#pragma unroll
            for (int d = 0; d < DH; d++) acc[d] *= corr;
#pragma unroll
            for (int c = 0; c < ATT_CHUNK; c++) {
                const float p = exp2f(s[c] - mx);   /* keys past nk: exp2(-inf) = 0 */
                l += p;
#pragma unroll
                for (int d = 0; d < DH; d++) acc[d] = fmaf(p, Vs[j + c][d], acc[d]);   /* zero rows past nk */
            }
            m = mx;
        }
    }
    if (!active) return;
    const float inv = 1.0f / l;
    h16 *ob = out + (size_t)b * Tq * C + (size_t)hd * dh + (size_t)i * C;
#pragma unroll
    for (int d = 0; d < DH; d++)
        if (d < dh) ob[d] = rn(acc[d] * inv);
}

/* The tensor-core variant for dh = 64 (every SDXL attention): the same online-softmax recurrence on tiles. A block
 * of 4 warps owns 64 queries (16 per warp); per tile of 64 keys, each warp computes S = Q K^T (16 x 64) with wmma
 * (fp16 in, fp32 accumulate) into shared memory, turns it into probabilities (two lanes per row: running max and
 * sum in fp32, P stored fp16), then P V (16 x 64) with wmma into the same shared buffer, and folds that into its
 * output accumulator, which lives in registers (lane l owns elements l + 32 i of the 16 x 64 tile, i.e. row i/2),
 * rescaled by exp2(m_old - m_new) per row. Q stays in registers as wmma fragments. 40 KiB of shared memory. */
#define MMA_Q 64
#define MMA_K 64
#define MMA_D 64
static __global__ void __launch_bounds__(128)
    attention_mma_kernel(h16 *out, const h16 *q, const h16 *k, const h16 *v, int heads, int Tq, int Tk, float qscale)
{
    using namespace nvcuda;
    __shared__ __align__(32) h16 Ks[MMA_K * MMA_D];
    __shared__ __align__(32) h16 Vs[MMA_K * MMA_D];
    __shared__ __align__(32) float Sw[4][16 * MMA_K];   /* per warp: Q staging, then S, then the tile's P V */
    __shared__ __align__(32) h16 Pw[4][16 * MMA_K];
    __shared__ float corr_s[4][16], l_s[4][16];
    const int C = heads * MMA_D, hd = blockIdx.y, b = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int q0 = blockIdx.x * MMA_Q + warp * 16;
    const h16 *qb = q + (size_t)b * Tq * C + (size_t)hd * MMA_D;
    const h16 *kb = k + (size_t)b * Tk * C + (size_t)hd * MMA_D, *vb = v + (size_t)b * Tk * C + (size_t)hd * MMA_D;
    float *S = Sw[warp];
    h16 *P = Pw[warp];

    /* this warp's 16 query rows -> fragments (rows past Tq are zero) */
    h16 *Qst = (h16 *)S;
    for (int e = lane; e < 16 * MMA_D; e += 32) {
        const int r = e / MMA_D, d = e % MMA_D;
        Qst[e] = q0 + r < Tq ? qb[(size_t)(q0 + r) * C + d] : __float2half_rn(0.0f);
    }
    __syncwarp();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, h16, wmma::row_major> qa[MMA_D / 16];
#pragma unroll
    for (int db = 0; db < MMA_D / 16; db++) wmma::load_matrix_sync(qa[db], Qst + db * 16, MMA_D);
    __syncwarp();

    float o[32];   /* element lane + 32 i of the warp's 16 x 64 output: row i / 2, column lane + 32 (i % 2) */
#pragma unroll
    for (int i = 0; i < 32; i++) o[i] = 0.0f;
    const int row = lane >> 1, half = lane & 1;   /* softmax: two lanes per row, 32 keys each */
    float m = -INFINITY, l = 0.0f;

    for (int j0 = 0; j0 < Tk; j0 += MMA_K) {
        const int nk = Tk - j0 < MMA_K ? Tk - j0 : MMA_K;
        __syncthreads();   /* every warp is done with the previous K, V tile */
        for (int e = threadIdx.x; e < MMA_K * MMA_D / 8; e += blockDim.x) {   /* 8 halves (16 bytes) at a time */
            const int j = e / (MMA_D / 8), d8 = (e % (MMA_D / 8)) * 8;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
            if (j < nk) {
                kv = *(const uint4 *)(kb + (size_t)(j0 + j) * C + d8);
                vv = *(const uint4 *)(vb + (size_t)(j0 + j) * C + d8);
            }
            *(uint4 *)(Ks + j * MMA_D + d8) = kv;
            *(uint4 *)(Vs + j * MMA_D + d8) = vv;
        }
        __syncthreads();
        /* S[16, 64 keys] = Q K^T: K^T viewed column-major from Ks[key][d] */
        {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, h16, wmma::col_major> kf;
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
#pragma unroll
            for (int kb16 = 0; kb16 < MMA_K / 16; kb16++) {
                wmma::fill_fragment(acc, 0.0f);
#pragma unroll
                for (int db = 0; db < MMA_D / 16; db++) {
                    wmma::load_matrix_sync(kf, Ks + kb16 * 16 * MMA_D + db * 16, MMA_D);
                    wmma::mma_sync(acc, qa[db], kf, acc);
                }
                wmma::store_matrix_sync(S + kb16 * 16, acc, MMA_K, wmma::mem_row_major);
            }
        }
        __syncwarp();
        /* online softmax of each row (base 2), P = fp16 probabilities */
        {
            const float *sr = S + row * MMA_K + half * 32;
            float mx = -INFINITY;
            for (int c = 0; c < 32; c++)
                if (half * 32 + c < nk) mx = fmaxf(mx, sr[c] * qscale);
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            const float mn = fmaxf(m, mx), cr = exp2f(m - mn);
            float sum = 0.0f;
            h16 *pr = P + row * MMA_K + half * 32;
            for (int c = 0; c < 32; c++) {
                const float p = half * 32 + c < nk ? exp2f(sr[c] * qscale - mn) : 0.0f;
                sum += p;
                pr[c] = __float2half_rn(p);
            }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            l = l * cr + sum;
            m = mn;
            if (half == 0) corr_s[warp][row] = cr;
        }
        __syncwarp();
        /* the tile's P V [16, 64] into S (S is consumed) */
        {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, h16, wmma::row_major> pf;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, h16, wmma::row_major> vf;
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
#pragma unroll
            for (int db = 0; db < MMA_D / 16; db++) {
                wmma::fill_fragment(acc, 0.0f);
#pragma unroll
                for (int kb16 = 0; kb16 < MMA_K / 16; kb16++) {
                    wmma::load_matrix_sync(pf, P + kb16 * 16, MMA_K);
                    wmma::load_matrix_sync(vf, Vs + kb16 * 16 * MMA_D + db * 16, MMA_D);
                    wmma::mma_sync(acc, pf, vf, acc);
                }
                wmma::store_matrix_sync(S + db * 16, acc, MMA_D, wmma::mem_row_major);
            }
        }
        __syncwarp();
#pragma unroll
        for (int i = 0; i < 32; i++) o[i] = fmaf(o[i], corr_s[warp][i >> 1], S[lane + 32 * i]);
        __syncwarp();   /* S and corr_s are rewritten by the next tile */
    }
    if (half == 0) l_s[warp][row] = l;
    __syncwarp();
    h16 *ob = out + (size_t)b * Tq * C + (size_t)hd * MMA_D;
#pragma unroll
    for (int i = 0; i < 32; i++) {
        const int r = i >> 1, col = lane + 32 * (i & 1);
        if (q0 + r < Tq) ob[(size_t)(q0 + r) * C + col] = rn(o[i] / l_s[warp][r]);
    }
}

/* 0: the CUDA-core kernel (the default), 1: the tensor-core kernel where it applies (dh 64, 16-byte aligned
 * rows); SF_SDXL_ATTN=simple|mma in the environment picks the default, read once */
static int attn_default(void)
{
    static int k = -1;
    if (k < 0) {
        const char *e = getenv("SF_SDXL_ATTN");
        k = e && !strcmp(e, "mma") ? 1 : 0;
    }
    return k;
}

extern "C" int nn_h_attention_mma_applies(const void *q, const void *k, const void *v, int heads, int dh)
{
    (void)heads;
    return dh == MMA_D && ((uintptr_t)q & 15u) == 0 && ((uintptr_t)k & 15u) == 0 && ((uintptr_t)v & 15u) == 0;
}

extern "C" void nn_h_attention_cuda_kernel(void *out, const void *q, const void *k, const void *v, int B, int heads,
                                           int Tq, int Tk, int dh, int kernel)
{
    LOG_CHECK(B > 0 && heads > 0 && Tq > 0 && Tk > 0 && dh > 0 && dh <= 128,
              "nn_h_attention_cuda: bad sizes (B %d heads %d Tq %d Tk %d dh %d; dh <= 128)", B, heads, Tq, Tk, dh);
    LOG_CHECK(heads <= 65535 && B <= 65535, "nn_h_attention_cuda: %d heads x batch %d exceed the grid", heads, B);
    const float qscale = (float)(1.4426950408889634 / sqrt((double)dh));   /* log2(e) / sqrt(dh) */
    h16 *o = (h16 *)out;
    const h16 *qq = (const h16 *)q, *kk = (const h16 *)k, *vv = (const h16 *)v;
    cudaStream_t s = nn_cuda_stream_();
    if (kernel == 1 && nn_h_attention_mma_applies(q, k, v, heads, dh)) {
        const dim3 grid((unsigned)((Tq + MMA_Q - 1) / MMA_Q), (unsigned)heads, (unsigned)B);
        attention_mma_kernel<<<grid, 128, 0, s>>>(o, qq, kk, vv, heads, Tq, Tk, qscale);
        CUDA_CHECK_LAUNCH();
        return;
    }
    const dim3 grid((unsigned)((Tq + ATT_THREADS - 1) / ATT_THREADS), (unsigned)heads, (unsigned)B);
    if (dh <= 16) attention_kernel<16><<<grid, ATT_THREADS, 0, s>>>(o, qq, kk, vv, heads, Tq, Tk, dh, qscale);
    else if (dh <= 32) attention_kernel<32><<<grid, ATT_THREADS, 0, s>>>(o, qq, kk, vv, heads, Tq, Tk, dh, qscale);
    else if (dh <= 64) attention_kernel<64><<<grid, ATT_THREADS, 0, s>>>(o, qq, kk, vv, heads, Tq, Tk, dh, qscale);
    else attention_kernel<128><<<grid, ATT_THREADS, 0, s>>>(o, qq, kk, vv, heads, Tq, Tk, dh, qscale);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_h_attention_cuda(void *out, const void *q, const void *k, const void *v, int B, int heads, int Tq,
                                    int Tk, int dh)
{
    nn_h_attention_cuda_kernel(out, q, k, v, B, heads, Tq, Tk, dh, attn_default());
}

extern "C" void nn_h_mem_info(size_t *free_bytes, size_t *total_bytes)
{
    nn_cuda_init();
    CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
}
