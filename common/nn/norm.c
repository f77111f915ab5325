/* nn/norm: GroupNorm / LayerNorm forward and backward, CPU + OpenMP (see norm.h; the ScoreNet's GroupNorm
 * layers of paper §5.1 / App. G, REFERENCE.md "Score network").
 * Forward: per (b, g) a two-pass mean / variance in double (no cancellation), then out = x a_c + b_c with
 * a_c = rstd gamma[c], b_c = beta[c] - mean a_c (one FMA per element, as torch's fused kernel).
 * Backward: per (b, g) the two group sums of dxhat and dxhat xhat in double, then din; a second pass over
 * channels (threads own channels) sums dgamma / dbeta over the batch in a fixed order. */
#include "norm.h"
#include "act_exp.h"
#include "log.h"
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#define NORM_PAR_MIN (1L << 14)   /* elements below which a call stays single-threaded */

static void check(int B, int C, int HW, int G)
{
    LOG_CHECK(B >= 0 && C > 0 && HW > 0 && G > 0 && C % G == 0, "groupnorm: bad sizes (B %d C %d HW %d G %d)", B, C,
              HW, G);
}

/* mean and 1 / sqrt(var + eps) of one group's n values: two passes in double (the variance about the mean, no
 * cancellation), vectorised sums; shared by the plain and the fused forward so the two give the same bits */
static void group_stats(const float *x, size_t n, float eps, double *mu_out, double *rs_out)
{
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += x[i];
    const double mu = s / (double)n;
    double v = 0.0;
#pragma omp simd reduction(+ : v)
    for (size_t i = 0; i < n; i++) {
        const double d = x[i] - mu;
        v += d * d;
    }
    *mu_out = mu;
    *rs_out = 1.0 / sqrt(v / (double)n + (double)eps);
}

/* y = GroupNorm(in) and, when h != NULL, h = SiLU(y): the one forward loop of nn_groupnorm_forward and
 * nn_groupnorm_silu_forward */
static void gn_forward(float *y, float *h, float *mean, float *rstd, const float *in, const float *gamma,
                       const float *beta, int B, int C, int HW, int G, float eps)
{
    check(B, C, HW, G);
    const int CG = C / G;
    const size_t n = (size_t)CG * HW;
#pragma omp parallel for schedule(static) if ((long)B * C * HW >= NORM_PAR_MIN)
    for (int bg = 0; bg < B * G; bg++) {
        const int b = bg / G, g = bg % G;
        const size_t base = ((size_t)b * C + (size_t)g * CG) * HW;
        const float *x = in + base;
        double mu, rs;
        group_stats(x, n, eps, &mu, &rs);
        mean[bg] = (float)mu;
        rstd[bg] = (float)rs;
        for (int cc = 0; cc < CG; cc++) {
            const int c = g * CG + cc;
            const float a = (float)rs * (gamma ? gamma[c] : 1.0f);
            const float sh = (beta ? beta[c] : 0.0f) - (float)mu * a;
            const float *xr = x + (size_t)cc * HW;
            float *yo = y + base + (size_t)cc * HW;
            if (!h) {
#pragma omp simd
                for (int p = 0; p < HW; p++) yo[p] = fmaf(xr[p], a, sh);
                continue;
            }
            float *ho = h + base + (size_t)cc * HW;
#pragma omp simd
            for (int p = 0; p < HW; p++) {
                const float yv = fmaf(xr[p], a, sh);
                yo[p] = yv;
                ho[p] = act_silu(yv);
            }
        }
    }
}

void nn_groupnorm_forward(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                          const float *beta, int B, int C, int HW, int G, float eps)
{
    gn_forward(out, NULL, mean, rstd, in, gamma, beta, B, C, HW, G, eps);
}

void nn_groupnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                           const float *mean, const float *rstd, const float *gamma, int B, int C, int HW, int G)
{
    check(B, C, HW, G);
    const int CG = C / G;
    const size_t n = (size_t)CG * HW;
    const int par = (long)B * C * HW >= NORM_PAR_MIN;
    if (din) {
#pragma omp parallel for schedule(static) if (par)
        for (int bg = 0; bg < B * G; bg++) {
            const int b = bg / G, g = bg % G;
            const size_t base = ((size_t)b * C + (size_t)g * CG) * HW;
            const float mu = mean[bg], rs = rstd[bg];
            double s1 = 0.0, s2 = 0.0;   /* sum dxhat, sum dxhat xhat */
            for (int cc = 0; cc < CG; cc++) {
                const float gm = gamma ? gamma[g * CG + cc] : 1.0f;
                const float *x = in + base + (size_t)cc * HW, *dy = dout + base + (size_t)cc * HW;
                float a1 = 0.0f, a2 = 0.0f;
                for (int p = 0; p < HW; p++) {
                    const float dxh = dy[p] * gm;
                    a1 += dxh;
                    a2 += dxh * ((x[p] - mu) * rs);
                }
                s1 += a1;
                s2 += a2;
            }
            const float m1 = (float)(s1 / (double)n), m2 = (float)(s2 / (double)n);
            for (int cc = 0; cc < CG; cc++) {
                const float gm = gamma ? gamma[g * CG + cc] : 1.0f;
                const size_t o = base + (size_t)cc * HW;
                const float *x = in + o, *dy = dout + o;
                float *dx = din + o;
#pragma omp simd
                for (int p = 0; p < HW; p++) {
                    const float xh = (x[p] - mu) * rs;
                    dx[p] += rs * (dy[p] * gm - m1 - xh * m2);
                }
            }
        }
    }
    if (!dgamma && !dbeta) return;
#pragma omp parallel for schedule(static) if (par)
    for (int c = 0; c < C; c++) {
        const int g = c / CG;
        double sg = 0.0, sb = 0.0;
        for (int b = 0; b < B; b++) {
            const float mu = mean[(size_t)b * G + g], rs = rstd[(size_t)b * G + g];
            const size_t o = ((size_t)b * C + c) * HW;
            const float *x = in + o, *dy = dout + o;
            float ag = 0.0f, ab = 0.0f;
            for (int p = 0; p < HW; p++) {
                ag += dy[p] * ((x[p] - mu) * rs);
                ab += dy[p];
            }
            sg += ag;
            sb += ab;
        }
        if (dgamma) dgamma[c] += (float)sg;
        if (dbeta) dbeta[c] += (float)sb;
    }
}

void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                          const float *beta, int N, int D, float eps)
{
    nn_groupnorm_forward(out, mean, rstd, in, gamma, beta, N, D, 1, 1, eps);
}

void nn_layernorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                           const float *mean, const float *rstd, const float *gamma, int N, int D)
{
    nn_groupnorm_backward(din, dgamma, dbeta, dout, in, mean, rstd, gamma, N, D, 1, 1);
}

/* ---------------------------------------------------------------- GroupNorm + SiLU, fused (norm.h)
 * One pass per (sample, group) instead of GroupNorm, then SiLU over the whole tensor. The forward is
 * nn_groupnorm_forward's loop (gn_forward), so y has its bits; the backward's sums are vector reductions (double
 * lanes), so they match nn_groupnorm_backward up to the order of the additions. */

void nn_groupnorm_silu_forward(float *y, float *h, float *mean, float *rstd, const float *in, const float *gamma,
                               const float *beta, int B, int C, int HW, int G, float eps)
{
    gn_forward(y, h, mean, rstd, in, gamma, beta, B, C, HW, G, eps);
}

void nn_groupnorm_silu_backward(float *din, float *dgamma, float *dbeta, const float *dh, size_t dh_bstride,
                                const float *y, const float *in, const float *mean, const float *rstd, const float *gamma, int B,
                                int C, int HW, int G, float *ws)
{
    check(B, C, HW, G);
    const int CG = C / G;
    const size_t n = (size_t)CG * HW;
    const int aff = dgamma || dbeta;
    double *acc = aff ? calloc(2 * (size_t)C, sizeof *acc) : NULL;   /* dgamma, dbeta sums over b, per c */
    LOG_CHECK(!aff || acc, "groupnorm_silu_backward: out of memory (%d channels)", C);
    /* one thread: the sums over b of dgamma / dbeta go in b order (ws is one group's dy) */
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            const size_t bg = (size_t)b * G + g, base = ((size_t)b * C + (size_t)g * CG) * HW;
            const float mu = mean[bg], rs = rstd[bg];
            double s1 = 0.0, s2 = 0.0;   /* sum dxhat, sum dxhat xhat */
            for (int cc = 0; cc < CG; cc++) {
                const int c = g * CG + cc;
                const float gm = gamma ? gamma[c] : 1.0f;
                const size_t o = base + (size_t)cc * HW;
                const float *x = in + o, *yy = y + o;
                const float *d = dh + (size_t)b * dh_bstride + ((size_t)g * CG + cc) * HW;
                float *dy = ws + (size_t)cc * HW;
                float a1 = 0.0f, a2 = 0.0f, ag = 0.0f, ab = 0.0f;
#pragma omp simd reduction(+ : a1, a2, ag, ab)
                for (int p = 0; p < HW; p++) {
                    const float dv = d[p] * act_silu_grad(yy[p]);
                    const float xh = (x[p] - mu) * rs;
                    dy[p] = dv;
                    a1 += dv * gm;
                    a2 += (dv * gm) * xh;
                    ag += dv * xh;
                    ab += dv;
                }
                s1 += a1;
                s2 += a2;
                if (aff) {
                    acc[c] += ag;
                    acc[C + c] += ab;
                }
            }
            if (!din) continue;
            const float m1 = (float)(s1 / (double)n), m2 = (float)(s2 / (double)n);
            for (int cc = 0; cc < CG; cc++) {
                const float gm = gamma ? gamma[g * CG + cc] : 1.0f;
                const size_t o = base + (size_t)cc * HW;
                const float *x = in + o, *dy = ws + (size_t)cc * HW;
                float *dx = din + o;
#pragma omp simd
                for (int p = 0; p < HW; p++) {
                    const float xh = (x[p] - mu) * rs;
                    dx[p] = rs * (dy[p] * gm - m1 - xh * m2);
                }
            }
        }
    if (aff) {
        for (int c = 0; c < C; c++) {
            if (dgamma) dgamma[c] += (float)acc[c];
            if (dbeta) dbeta[c] += (float)acc[C + c];
        }
        free(acc);
    }
}
