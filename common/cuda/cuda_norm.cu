/* cuda/cuda_norm: GPU twins of norm.h's GroupNorm (torch.nn.GroupNorm: biased variance, eps inside the sqrt,
 * affine gamma / beta), the normaliser of the paper's image ScoreNet (paper §5.1, App. G; REFERENCE.md: GN(4, 32)
 * after conv1, GN(32, C) elsewhere, eps 1e-5).
 * forward   one block per (sample, group) (grid-stride over them): two-pass mean / variance in double (block
 *           reductions in a fixed tree, no cancellation), then out = fmaf(x, a_c, b_c) with a_c = rstd gamma_c,
 *           b_c = beta_c - mean a_c formed WITHOUT contraction (__fmul_rn / __fsub_rn), exactly the CPU's float
 *           operations, so the two agree to the last bit or so; mean / rstd [B, G] saved as float.
 * backward  din: one block per (sample, group), the two group sums of dxhat and dxhat xhat in double, then
 *           din += rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)); dgamma / dbeta: two stages (C x S slice
 *           blocks of (batch, pixel), then an ordered sum of the S partials per channel), double sums. No
 *           atomics: deterministic. */
#include "cuda_internal.cuh"

static __global__ void gn_fwd_kernel(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                                     const float *beta, int B, int C, int HW, int G, float eps)
{
    const int CG = C / G;
    const size_t n = (size_t)CG * HW;
    for (int bg = blockIdx.x; bg < B * G; bg += gridDim.x) {
        const int b = bg / G, g = bg % G;
        const size_t base = ((size_t)b * C + (size_t)g * CG) * HW;
        const float *x = in + base;
        double s = 0.0;
        for (size_t i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
        const double mu = nn_cuda_block_sum_all(s) / (double)n;
        double v = 0.0;
        for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
            const double d = (double)x[i] - mu;
            v += d * d;
        }
        const double var = nn_cuda_block_sum_all(v) / (double)n;
        const double rs = 1.0 / sqrt(var + (double)eps);
        if (threadIdx.x == 0) {
            mean[bg] = (float)mu;
            rstd[bg] = (float)rs;
        }
        /* every read of x above finished before the block sums returned: out may alias in */
        const float muf = (float)mu, rsf = (float)rs;
        float *o = out + base;
        for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
            const int c = g * CG + (int)(i / HW);
            const float a = __fmul_rn(rsf, gamma ? gamma[c] : 1.0f);
            const float sh = __fsub_rn(beta ? beta[c] : 0.0f, __fmul_rn(muf, a));
            o[i] = fmaf(x[i], a, sh);
        }
    }
}

static __global__ void gn_bwd_din_kernel(float *din, const float *dout, const float *in, const float *mean,
                                         const float *rstd, const float *gamma, int B, int C, int HW, int G)
{
    const int CG = C / G;
    const size_t n = (size_t)CG * HW;
    for (int bg = blockIdx.x; bg < B * G; bg += gridDim.x) {
        const int g = bg % G;
        const size_t base = ((size_t)(bg / G) * C + (size_t)g * CG) * HW;
        const float mu = mean[bg], rs = rstd[bg];
        const float *x = in + base, *dy = dout + base;
        double s1 = 0.0, s2 = 0.0;   /* sum dxhat, sum dxhat xhat */
        for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
            const float gm = gamma ? gamma[g * CG + (int)(i / HW)] : 1.0f;
            const float dxh = dy[i] * gm;
            s1 += dxh;
            s2 += (double)(dxh * ((x[i] - mu) * rs));
        }
        s1 = nn_cuda_block_sum_all(s1);
        s2 = nn_cuda_block_sum_all(s2);
        const float m1 = (float)(s1 / (double)n), m2 = (float)(s2 / (double)n);
        float *dx = din + base;
        for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
            const float gm = gamma ? gamma[g * CG + (int)(i / HW)] : 1.0f;
            const float xh = (x[i] - mu) * rs;
            dx[i] += rs * (dy[i] * gm - m1 - xh * m2);
        }
    }
}

/* stage 1 of dgamma / dbeta (cuda_internal.cuh: two-stage reductions): block (c, s) sums slice s of the B * HW
 * values of channel c into part[c S + s] (dgamma terms) and part[C S + c S + s] (dbeta terms) */
static __global__ void gn_bwd_affine_part_kernel(double *part, const float *dout, const float *in, const float *mean,
                                                 const float *rstd, int B, int C, int HW, int G, int S)
{
    const int CG = C / G;
    const size_t n = (size_t)B * HW, len = (n + S - 1) / S;
    for (size_t o = blockIdx.x; o < (size_t)C * S; o += gridDim.x) {
        const int c = (int)(o / S), sl = (int)(o - (size_t)c * S), g = c / CG;
        const size_t lo = sl * len, hi = lo + len < n ? lo + len : n;
        double sg = 0.0, sb = 0.0;
        for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
            const size_t b = i / HW, p = i - b * HW;
            const size_t e = (b * C + c) * HW + p;
            const float mu = mean[b * G + g], rs = rstd[b * G + g];
            const float dy = dout[e];
            sg += (double)(dy * ((in[e] - mu) * rs));
            sb += dy;
        }
        sg = nn_cuda_block_sum(sg);
        sb = nn_cuda_block_sum(sb);
        if (threadIdx.x == 0) {
            part[o] = sg;
            part[(size_t)C * S + o] = sb;
        }
    }
}

static void check(int B, int C, int HW, int G, const char *who)
{
    LOG_CHECK(B >= 0 && C > 0 && HW > 0 && G > 0 && C % G == 0, "%s: bad sizes (B %d C %d HW %d G %d)", who, B, C,
              HW, G);
}

static unsigned blocks_for(long n) { return (unsigned)(n < NN_CUDA_MAX_BLOCKS ? (n > 0 ? n : 1) : NN_CUDA_MAX_BLOCKS); }

extern "C" void nn_groupnorm_forward_cuda(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                                          const float *beta, int B, int C, int HW, int G, float eps)
{
    check(B, C, HW, G, "nn_groupnorm_forward_cuda");
    if (B == 0) return;
    gn_fwd_kernel<<<blocks_for((long)B * G), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(out, mean, rstd, in, gamma,
                                                                                      beta, B, C, HW, G, eps);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_groupnorm_backward_cuda(float *din, float *dgamma, float *dbeta, const float *dout,
                                           const float *in, const float *mean, const float *rstd, const float *gamma,
                                           int B, int C, int HW, int G)
{
    check(B, C, HW, G, "nn_groupnorm_backward_cuda");
    if (B == 0) return;
    if (din) {
        gn_bwd_din_kernel<<<blocks_for((long)B * G), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(
            din, dout, in, mean, rstd, gamma, B, C, HW, G);
        CUDA_CHECK_LAUNCH();
    }
    if (dgamma || dbeta) {   /* two stages: C x S slices, then their ordered sums (deterministic) */
        const int S = nn_cuda_slices_((size_t)B * HW);
        const size_t np = (size_t)C * S;
        double *part = nn_cuda_scratch_(2 * np);
        gn_bwd_affine_part_kernel<<<blocks_for((long)np), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(
            part, dout, in, mean, rstd, B, C, HW, G, S);
        CUDA_CHECK_LAUNCH();
        if (dgamma) nn_cuda_sum_partials_(dgamma, part, C, S);
        if (dbeta) nn_cuda_sum_partials_(dbeta, part + np, C, S);
    }
}
