/* nn/linear: fully connected layer, CPU + OpenMP (see linear.h).
 * Kernels. All three products are written as "row += sum_k a_k * M[k, :]" sweeps whose inner loop runs over
 * contiguous memory (vectorised with `omp simd` + explicit fmaf, since ISO C mode turns off FMA contraction and
 * we do not use fast-math):
 *   forward  out[b, :] = b + sum_i in[b, i] WT[i, :]   (WT = W^T, transposed once per call into a 64 KiB stack
 *                                                        buffer; larger layers fall back to dot products)
 *   din      din[b, :] += sum_o dout[b, o] W[o, :]
 *   dW       dW[o, :]  += sum_b dout[b, o] in[b, :]    (threads own disjoint output rows o: no reduction,
 *                                                        bitwise identical for any thread count)
 * The k-sums are unrolled by 4 into a short add tree so that two FMA chains run in parallel per vector. */
#include "linear.h"
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <string.h>

#define LINEAR_WT_MAX 16384          /* floats in the transposed-weight stack buffer (64 KiB) */
#define LINEAR_PAR_MIN (1L << 21)    /* multiply-adds below which a call stays single-threaded (measured: threading
                                        * a 256x32x32 layer on 2 cores is a net loss) */

/* y[b, 0:N] += sum_k x[b, k] M[k, 0:N] for rows b in [b0, b1); x is [*, K], M is [K, N], y is [*, N]. */
static void rows_axpy(float *restrict y, const float *restrict x, const float *restrict M, int b0, int b1, int K,
                      int N)
{
    for (int b = b0; b < b1; b++) {
        float *restrict yr = y + (size_t)b * N;
        const float *xr = x + (size_t)b * K;
        int k = 0;
        for (; k + 4 <= K; k += 4) {
            const float a0 = xr[k], a1 = xr[k + 1], a2 = xr[k + 2], a3 = xr[k + 3];
            const float *m0 = M + (size_t)k * N, *m1 = m0 + N, *m2 = m1 + N, *m3 = m2 + N;
#pragma omp simd
            for (int j = 0; j < N; j++) {
                float p = fmaf(a1, m1[j], a0 * m0[j]);
                float q = fmaf(a3, m3[j], a2 * m2[j]);
                yr[j] += p + q;
            }
        }
        for (; k < K; k++) {
            const float a0 = xr[k];
            const float *m0 = M + (size_t)k * N;
#pragma omp simd
            for (int j = 0; j < N; j++) yr[j] = fmaf(a0, m0[j], yr[j]);
        }
    }
}

static void linear_forward(float *out, const float *in, const float *W, const float *bias, int B, int IC, int OC,
                           int add)
{
    const int par = (long)B * IC * OC >= LINEAR_PAR_MIN;
    if ((long)IC * OC <= LINEAR_WT_MAX) {
        float WT[LINEAR_WT_MAX];
        for (int o = 0; o < OC; o++)
            for (int i = 0; i < IC; i++) WT[(size_t)i * OC + o] = W[(size_t)o * IC + i];
#pragma omp parallel for schedule(static) if (par)
        for (int b0 = 0; b0 < B; b0 += 64) {
            int b1 = b0 + 64 < B ? b0 + 64 : B;
            for (int b = b0; b < b1; b++) {
                float *yr = out + (size_t)b * OC;
                if (!add) {
                    if (bias) memcpy(yr, bias, (size_t)OC * sizeof *yr);
                    else memset(yr, 0, (size_t)OC * sizeof *yr);
                } else if (bias) {
                    for (int o = 0; o < OC; o++) yr[o] += bias[o];
                }
            }
            rows_axpy(out, in, WT, b0, b1, IC, OC);
        }
        return;
    }
    /* large layers: one dot product per output (a later GEMM path replaces this) */
#pragma omp parallel for schedule(static) if (par)
    for (int b = 0; b < B; b++) {
        const float *xr = in + (size_t)b * IC;
        float *yr = out + (size_t)b * OC;
        for (int o = 0; o < OC; o++) {
            const float *wr = W + (size_t)o * IC;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int i = 0; i < IC; i++) s += xr[i] * wr[i];
            if (bias) s += bias[o];
            yr[o] = add ? yr[o] + s : s;
        }
    }
}

void nn_linear_forward(float *out, const float *in, const float *W, const float *b, int B, int IC, int OC)
{
    linear_forward(out, in, W, b, B, IC, OC, 0);
}

void nn_linear_forward_add(float *out, const float *in, const float *W, const float *b, int B, int IC, int OC)
{
    linear_forward(out, in, W, b, B, IC, OC, 1);
}

void nn_linear_backward(float *din, float *dW, float *db, const float *dout, const float *in, const float *W, int B,
                        int IC, int OC)
{
    const int par = (long)B * IC * OC >= LINEAR_PAR_MIN;
    if (din) {
#pragma omp parallel for schedule(static) if (par)
        for (int b0 = 0; b0 < B; b0 += 64) rows_axpy(din, dout, W, b0, b0 + 64 < B ? b0 + 64 : B, OC, IC);
    }
    if (!dW && !db) return;
#pragma omp parallel if (par && OC > 1)
    {
        const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        const int o0 = (int)((long)OC * tid / nt), o1 = (int)((long)OC * (tid + 1) / nt);
        if (dW) {
            int b = 0;
            for (; b + 4 <= B; b += 4) {
                const float *x0 = in + (size_t)b * IC, *x1 = x0 + IC, *x2 = x1 + IC, *x3 = x2 + IC;
                const float *g = dout + (size_t)b * OC;
                for (int o = o0; o < o1; o++) {
                    const float g0 = g[o], g1 = g[OC + o], g2 = g[2 * OC + o], g3 = g[3 * OC + o];
                    float *restrict wr = dW + (size_t)o * IC;
#pragma omp simd
                    for (int i = 0; i < IC; i++) {
                        float p = fmaf(g1, x1[i], g0 * x0[i]);
                        float q = fmaf(g3, x3[i], g2 * x2[i]);
                        wr[i] += p + q;
                    }
                }
            }
            for (; b < B; b++) {
                const float *x0 = in + (size_t)b * IC;
                for (int o = o0; o < o1; o++) {
                    const float g0 = dout[(size_t)b * OC + o];
                    float *restrict wr = dW + (size_t)o * IC;
#pragma omp simd
                    for (int i = 0; i < IC; i++) wr[i] = fmaf(g0, x0[i], wr[i]);
                }
            }
        }
        if (db) {
            for (int o = o0; o < o1; o++) {
                double s = 0.0;
                for (int b = 0; b < B; b++) s += dout[(size_t)b * OC + o];
                db[o] += (float)s;
            }
        }
    }
}
