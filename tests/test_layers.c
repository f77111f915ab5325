/* test_layers: the CPU image layers of common/nn/ (conv.h, norm.h, pool.h, tensor_ops.h) that the paper's image
 * ScoreNet (paper §5.1, App. G; REFERENCE.md "Score network") and the class-proportion classifier are built from.
 *   - conv2d / conv_transpose2d forward against direct loop definitions (double), for stride 1 / 2, padding
 *     0 / 1, output_padding 1, non-square kernels and strides, bias and none, 1x1 convolutions, and with the
 *     workspace forcing one, two and all images per GEMM chunk;
 *   - every backward (din, dW, db, dgamma, dbeta, ...) against central finite differences of a double-accumulated
 *     loss L = <out, R>; gradients are pre-filled with a constant to check that they ACCUMULATE;
 *   - conv_transpose2d as the exact adjoint of conv2d; results bitwise independent of the thread count;
 *   - GroupNorm / LayerNorm forward against a direct computation; max-pool against a naive loop; concat;
 *     cross-entropy against a hand computation; dropout mask statistics, scaling, eval identity;
 *   - the ScoreNet shape chain 28 -> 26 -> 12 -> 5 -> 2 -> 5 -> 12 -> 26 -> 28 (output_padding 1 on tconv3 /
 *     tconv2), run end to end at the real channel counts.
 * Run with OMP_NUM_THREADS=1 on shared machines (the thread-independence check sets its own counts). */
#include "act.h"
#include "conv.h"
#include "norm.h"
#include "philox.h"
#include "pool.h"
#include "rng.h"
#include "tensor_ops.h"
#include "test.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void fill_uniform(rng *r, float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rng_uniform(r));
}

static float *fal(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double max_abs_diff(const float *a, const double *b, size_t n, double *maxref)
{
    double m = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;   /* NaN sticks */
        if (fabs(b[i]) > r) r = fabs(b[i]);
    }
    if (maxref) *maxref = r;
    return m;
}

/* Central finite differences of loss() w.r.t. every x[i], against grad[i] - pre (grad was pre-filled with
 * `pre` before the backward, so this also checks that gradients accumulate). Pass: max error <= tol * max(1,
 * max |grad|). */
typedef double (*loss_fn)(void *ctx);
static void fd_check(const char *name, loss_fn loss, void *ctx, float *x, const float *grad, float pre, size_t n,
                     double h, double tol)
{
    double maxerr = 0, maxg = 0;
    for (size_t i = 0; i < n; i++) {
        const float save = x[i];
        const float xp = (float)(save + h), xm = (float)(save - h);
        x[i] = xp;
        const double lp = loss(ctx);
        x[i] = xm;
        const double lm = loss(ctx);
        x[i] = save;
        const double fd = (lp - lm) / ((double)xp - (double)xm);
        const double g = (double)grad[i] - pre;
        const double e = fabs(fd - g);
        if (!(e <= maxerr)) maxerr = e;
        if (fabs(g) > maxg) maxg = fabs(g);
    }
    char d[200];
    snprintf(d, sizeof d, "max |fd - grad| = %.3g, max |grad| = %.3g (n %zu)", maxerr, maxg, n);
    test_report(maxerr <= tol * (maxg > 1 ? maxg : 1), name, d);
}

/* ---------------------------------------------------------------- naive convolution definitions */

static void naive_conv2d(double *out, const float *in, const float *W, const float *b, int B, const nn_conv_geom *g)
{
    for (int n = 0; n < B; n++)
        for (int oc = 0; oc < g->OC; oc++)
            for (int oh = 0; oh < g->OH; oh++)
                for (int ow = 0; ow < g->OW; ow++) {
                    double s = b ? b[oc] : 0.0;
                    for (int ic = 0; ic < g->IC; ic++)
                        for (int i = 0; i < g->KH; i++)
                            for (int j = 0; j < g->KW; j++) {
                                int ih = oh * g->SH - g->PH + i, iw = ow * g->SW - g->PW + j;
                                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                                s += (double)in[(((size_t)n * g->IC + ic) * g->H + ih) * g->W + iw] *
                                     W[(((size_t)oc * g->IC + ic) * g->KH + i) * g->KW + j];
                            }
                    out[(((size_t)n * g->OC + oc) * g->OH + oh) * g->OW + ow] = s;
                }
}

static void naive_tconv2d(double *out, const float *in, const float *W, const float *b, int B, const nn_conv_geom *g)
{
    const size_t on = (size_t)B * g->OC * g->OH * g->OW;
    for (size_t i = 0; i < on; i++) out[i] = 0;
    for (int n = 0; n < B; n++)
        for (int ic = 0; ic < g->IC; ic++)
            for (int ih = 0; ih < g->H; ih++)
                for (int iw = 0; iw < g->W; iw++) {
                    double x = in[(((size_t)n * g->IC + ic) * g->H + ih) * g->W + iw];
                    for (int oc = 0; oc < g->OC; oc++)
                        for (int i = 0; i < g->KH; i++)
                            for (int j = 0; j < g->KW; j++) {
                                int oh = ih * g->SH - g->PH + i, ow = iw * g->SW - g->PW + j;
                                if (oh < 0 || oh >= g->OH || ow < 0 || ow >= g->OW) continue;
                                out[(((size_t)n * g->OC + oc) * g->OH + oh) * g->OW + ow] +=
                                    x * W[(((size_t)ic * g->OC + oc) * g->KH + i) * g->KW + j];
                            }
                }
    if (b)
        for (int n = 0; n < B; n++)
            for (int oc = 0; oc < g->OC; oc++)
                for (int p = 0; p < g->OH * g->OW; p++) out[((size_t)n * g->OC + oc) * g->OH * g->OW + p] += b[oc];
}

/* ---------------------------------------------------------------- conv / conv-transpose cases */

typedef struct {
    int transposed, B, has_bias;
    nn_conv_geom g;
    float *in, *W, *b, *R, *out, *ws;
    size_t ws_n, nin, nw, nout;
} conv_case;

static void cc_forward(conv_case *c)
{
    if (c->transposed)
        nn_conv_transpose2d_forward(c->out, c->in, c->W, c->has_bias ? c->b : NULL, c->B, &c->g, c->ws, c->ws_n);
    else nn_conv2d_forward(c->out, c->in, c->W, c->has_bias ? c->b : NULL, c->B, &c->g, c->ws, c->ws_n);
}

static double cc_loss(void *ctx)
{
    conv_case *c = ctx;
    cc_forward(c);
    return dot(c->out, c->R, c->nout);
}

static void conv_case_run(rng *r, const char *label, int transposed, nn_conv_geom g, int B, int has_bias)
{
    conv_case c = {.transposed = transposed, .B = B, .has_bias = has_bias, .g = g};
    c.nin = (size_t)B * g.IC * g.H * g.W;
    c.nw = (size_t)g.IC * g.OC * g.KH * g.KW;
    c.nout = (size_t)B * g.OC * g.OH * g.OW;
    c.in = fal(c.nin);
    c.W = fal(c.nw);
    c.b = fal(g.OC);
    c.R = fal(c.nout);
    c.out = fal(c.nout);
    fill_uniform(r, c.in, c.nin, -1, 1);
    fill_uniform(r, c.W, c.nw, -1, 1);
    fill_uniform(r, c.b, g.OC, -1, 1);
    fill_uniform(r, c.R, c.nout, -1, 1);
    const size_t wmin = transposed ? nn_conv_transpose2d_ws_min(&g) : nn_conv2d_ws_min(&g);
    const size_t wrec = transposed ? nn_conv_transpose2d_ws_floats(&g, B) : nn_conv2d_ws_floats(&g, B);
    c.ws = fal(wmin * B + 7);
    char nm[200];

    /* forward against the direct definition, with 1, 2 and B images per GEMM chunk */
    double *ref = malloc(c.nout * sizeof *ref);
    if (transposed) naive_tconv2d(ref, c.in, c.W, has_bias ? c.b : NULL, B, &g);
    else naive_conv2d(ref, c.in, c.W, has_bias ? c.b : NULL, B, &g);
    const size_t wss[3] = {wmin, 2 * wmin + 3, wmin * B + 7};
    float *grads[3][3];   /* [chunking][din, dW, db] */
    for (int k = 0; k < 3; k++) {
        c.ws_n = wss[k];
        for (size_t i = 0; i < c.nout; i++) c.out[i] = NAN;
        cc_forward(&c);
        double mref, e = max_abs_diff(c.out, ref, c.nout, &mref);
        char d[160];
        snprintf(d, sizeof d, "max err %.3g (max |ref| %.3g)", e, mref);
        snprintf(nm, sizeof nm, "%s forward vs naive (workspace %s)", label,
                 k == 0 ? "1 image / chunk" : k == 1 ? "2 images / chunk" : "whole batch");
        test_report(e <= 1e-5 * (1 + mref), nm, d);
        /* backward with gradients pre-filled with 0.5 (they must accumulate) */
        float *din = fal(c.nin), *dW = fal(c.nw), *db = fal(g.OC);
        for (size_t i = 0; i < c.nin; i++) din[i] = 0.5f;
        for (size_t i = 0; i < c.nw; i++) dW[i] = 0.5f;
        for (int i = 0; i < g.OC; i++) db[i] = 0.5f;
        if (transposed)
            nn_conv_transpose2d_backward(din, dW, has_bias ? db : NULL, c.R, c.in, c.W, B, &g, c.ws, c.ws_n);
        else nn_conv2d_backward(din, dW, has_bias ? db : NULL, c.R, c.in, c.W, B, &g, c.ws, c.ws_n);
        grads[k][0] = din;
        grads[k][1] = dW;
        grads[k][2] = db;
    }
    snprintf(nm, sizeof nm, "%s recommended workspace is a whole number of images", label);
    CHECK(wrec >= wmin && wrec % wmin == 0, nm);
    /* finite differences on the all-in-one-chunk gradients (the loss is linear: large steps are exact) */
    c.ws_n = wss[2];
    snprintf(nm, sizeof nm, "%s backward din (fd)", label);
    fd_check(nm, cc_loss, &c, c.in, grads[2][0], 0.5f, c.nin, 0.25, 1e-4);
    snprintf(nm, sizeof nm, "%s backward dW (fd)", label);
    fd_check(nm, cc_loss, &c, c.W, grads[2][1], 0.5f, c.nw, 0.25, 1e-4);
    if (has_bias) {
        snprintf(nm, sizeof nm, "%s backward db (fd)", label);
        fd_check(nm, cc_loss, &c, c.b, grads[2][2], 0.5f, g.OC, 0.25, 1e-4);
    } else {
        int untouched = 1;
        for (int i = 0; i < g.OC; i++) untouched &= grads[2][2][i] == 0.5f;
        snprintf(nm, sizeof nm, "%s backward db NULL leaves nothing", label);
        CHECK(untouched, nm);
    }
    /* chunked gradients agree with the single-chunk ones */
    double worst = 0;
    for (int k = 0; k < 2; k++)
        for (int t = 0; t < 3; t++) {
            size_t n = t == 0 ? c.nin : t == 1 ? c.nw : (size_t)g.OC;
            for (size_t i = 0; i < n; i++) {
                double e = fabs((double)grads[k][t][i] - grads[2][t][i]);
                if (!(e <= worst)) worst = e;
            }
        }
    snprintf(nm, sizeof nm, "%s backward independent of the chunking", label);
    CHECK_CLOSE(worst, 0.0, 1e-4, 0, nm);
    for (int k = 0; k < 3; k++)
        for (int t = 0; t < 3; t++) free(grads[k][t]);
    free(ref);
    free(c.in);
    free(c.W);
    free(c.b);
    free(c.R);
    free(c.out);
    free(c.ws);
}

static nn_conv_geom geom2(int transposed, int IC, int OC, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                          int OPH, int OPW)
{
    nn_conv_geom g = {IC, OC, H, W, KH, KW, SH, SW, PH, PW, OPH, OPW, 0, 0};
    if (transposed) nn_conv_transpose2d_geom_finish(&g);
    else nn_conv2d_geom_finish(&g);
    return g;
}

static void test_conv(rng *r)
{
    conv_case_run(r, "conv2d k3 s1 p0 bias", 0, nn_conv2d_geom(2, 3, 6, 5, 3, 3, 1, 0), 3, 1);
    conv_case_run(r, "conv2d k3 s2 p0 nobias", 0, nn_conv2d_geom(3, 4, 7, 8, 3, 3, 2, 0), 3, 0);
    conv_case_run(r, "conv2d k3 s2 p1 bias", 0, nn_conv2d_geom(2, 3, 6, 7, 3, 3, 2, 1), 3, 1);
    conv_case_run(r, "conv2d k2x3 s(2,1) p(1,0) nobias", 0, geom2(0, 3, 2, 5, 6, 2, 3, 2, 1, 1, 0, 0, 0), 3, 0);
    conv_case_run(r, "conv2d k1 s1 p0 (pointwise) bias", 0, nn_conv2d_geom(4, 3, 3, 5, 1, 1, 1, 0), 3, 1);
    conv_case_run(r, "conv2d k3x1 s1 p(1,0) bias", 0, geom2(0, 2, 2, 4, 3, 3, 1, 1, 1, 1, 0, 0, 0), 2, 1);
    conv_case_run(r, "tconv k3 s2 p0 op1 bias", 1, nn_conv_transpose2d_geom(3, 2, 3, 4, 3, 3, 2, 0, 1), 3, 1);
    conv_case_run(r, "tconv k3 s2 p0 op0 nobias", 1, nn_conv_transpose2d_geom(2, 3, 2, 3, 3, 3, 2, 0, 0), 3, 0);
    conv_case_run(r, "tconv k3 s2 p1 op1 nobias", 1, nn_conv_transpose2d_geom(2, 3, 3, 3, 3, 3, 2, 1, 1), 3, 0);
    conv_case_run(r, "tconv k3 s1 p0 bias", 1, nn_conv_transpose2d_geom(4, 1, 4, 5, 3, 3, 1, 0, 0), 3, 1);
    conv_case_run(r, "tconv k2x3 s(2,1) p(0,1) op(1,0) bias", 1, geom2(1, 3, 2, 3, 4, 2, 3, 2, 1, 0, 1, 1, 0), 3, 1);
}

/* <conv2d(x), y> == <x, conv_transpose2d(y)> with the same weight buffer (conv W[OC, IC] = tconv W[IC', OC']) */
static void test_conv_adjoint(rng *r)
{
    const int B = 2;
    nn_conv_geom gc = nn_conv2d_geom(3, 5, 9, 8, 3, 2, 2, 1);
    nn_conv_geom gt = geom2(1, 5, 3, gc.OH, gc.OW, 3, 2, 2, 2, 1, 1, (9 + 2 - 3) % 2, (8 + 2 - 2) % 2);
    CHECK(gt.OH == 9 && gt.OW == 8, "conv adjoint: tconv restores the conv input size (output_padding)");
    size_t nx = (size_t)B * 3 * 9 * 8, ny = (size_t)B * 5 * gc.OH * gc.OW, nw = 5 * 3 * 3 * 2;
    float *x = fal(nx), *y = fal(ny), *W = fal(nw), *cx = fal(ny), *ty = fal(nx);
    float *ws = fal(nn_conv2d_ws_floats(&gc, B) + nn_conv_transpose2d_ws_floats(&gt, B));
    fill_uniform(r, x, nx, -1, 1);
    fill_uniform(r, y, ny, -1, 1);
    fill_uniform(r, W, nw, -1, 1);
    nn_conv2d_forward(cx, x, W, NULL, B, &gc, ws, nn_conv2d_ws_floats(&gc, B));
    nn_conv_transpose2d_forward(ty, y, W, NULL, B, &gt, ws, nn_conv_transpose2d_ws_floats(&gt, B));
    double a = dot(cx, y, ny), b = dot(x, ty, nx);
    CHECK_CLOSE(a, b, 1e-4, 1e-5, "conv_transpose2d is the adjoint of conv2d");
    free(x), free(y), free(W), free(cx), free(ty), free(ws);
}

/* forward and backward bitwise identical with 1 and 2 threads (sizes above the parallel thresholds) */
static void test_conv_threads(rng *r)
{
    const int B = 6;
    nn_conv_geom g = nn_conv2d_geom(16, 32, 20, 20, 3, 3, 2, 1);
    nn_conv_geom gt = nn_conv_transpose2d_geom(32, 16, g.OH, g.OW, 3, 3, 2, 1, 1);
    size_t nin = (size_t)B * 16 * 20 * 20, nout = (size_t)B * 32 * g.OH * g.OW, nw = 16 * 32 * 9;
    /* workspace for 4 images: the batch of 6 runs as chunks of 4 + 2 */
    const size_t w1 = nn_conv2d_ws_floats(&g, 4), w2 = nn_conv_transpose2d_ws_floats(&gt, 4);
    const size_t wsn = w1 > w2 ? w1 : w2;
    float *in = fal(nin), *W = fal(nw), *b = fal(32), *R = fal(nout), *ws = fal(wsn);
    fill_uniform(r, in, nin, -1, 1);
    fill_uniform(r, W, nw, -1, 1);
    fill_uniform(r, b, 32, -1, 1);
    fill_uniform(r, R, nout, -1, 1);
    float *res[2][8];
    const int saved = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        float *out = fal(nout), *din = fal(nin), *dW = fal(nw), *db = fal(32);
        float *tout = fal(nin), *tdin = fal(nout), *tdW = fal(nw), *tdb = fal(16);
        nn_conv2d_forward(out, in, W, b, B, &g, ws, wsn);
        nn_conv2d_backward(din, dW, db, R, in, W, B, &g, ws, wsn);
        nn_conv_transpose2d_forward(tout, R, W, b, B, &gt, ws, wsn);
        nn_conv_transpose2d_backward(tdin, tdW, tdb, in, R, W, B, &gt, ws, wsn);
        res[t][0] = out, res[t][1] = din, res[t][2] = dW, res[t][3] = db;
        res[t][4] = tout, res[t][5] = tdin, res[t][6] = tdW, res[t][7] = tdb;
    }
    omp_set_num_threads(saved);
    const size_t ns[8] = {nout, nin, nw, 32, nin, nout, nw, 16};
    int same = 1;
    for (int k = 0; k < 8; k++) same &= memcmp(res[0][k], res[1][k], ns[k] * sizeof(float)) == 0;
    CHECK(same, "conv2d / conv_transpose2d forward + backward bitwise identical with 1 and 2 threads");
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 8; k++) free(res[t][k]);
    free(in), free(W), free(b), free(R), free(ws);
}

/* ---------------------------------------------------------------- group norm / layer norm */

typedef struct {
    int B, C, HW, G, affine;
    float eps;
    float *in, *gamma, *beta, *R, *out, *mean, *rstd;
} gn_case;

static double gn_loss(void *ctx)
{
    gn_case *c = ctx;
    nn_groupnorm_forward(c->out, c->mean, c->rstd, c->in, c->affine ? c->gamma : NULL, c->affine ? c->beta : NULL,
                         c->B, c->C, c->HW, c->G, c->eps);
    return dot(c->out, c->R, (size_t)c->B * c->C * c->HW);
}

static void gn_run(rng *r, const char *label, int B, int C, int HW, int G, int affine)
{
    gn_case c = {B, C, HW, G, affine, 1e-5f, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    const size_t n = (size_t)B * C * HW;
    c.in = fal(n), c.gamma = fal(C), c.beta = fal(C), c.R = fal(n), c.out = fal(n);
    c.mean = fal((size_t)B * G), c.rstd = fal((size_t)B * G);
    fill_uniform(r, c.in, n, -2, 2);
    for (size_t i = 0; i < n; i++) c.in[i] += 0.7f;   /* a non-zero mean */
    fill_uniform(r, c.gamma, C, 0.5, 1.5);
    fill_uniform(r, c.beta, C, -1, 1);
    fill_uniform(r, c.R, n, -1, 1);
    char nm[200];
    /* forward against the direct definition */
    gn_loss(&c);
    const int CG = C / G;
    double err = 0, serr = 0;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            double s = 0, v = 0, m;
            const size_t base = ((size_t)b * C + (size_t)g * CG) * HW, cnt = (size_t)CG * HW;
            for (size_t i = 0; i < cnt; i++) s += c.in[base + i];
            m = s / cnt;
            for (size_t i = 0; i < cnt; i++) v += (c.in[base + i] - m) * (c.in[base + i] - m);
            v /= cnt;
            double rs = 1 / sqrt(v + 1e-5);
            serr = fmax(serr, fabs(c.mean[b * G + g] - m) + fabs(c.rstd[b * G + g] - rs) / rs);
            for (size_t i = 0; i < cnt; i++) {
                int ch = g * CG + (int)(i / HW);
                double want = (c.in[base + i] - m) * rs * (affine ? c.gamma[ch] : 1) + (affine ? c.beta[ch] : 0);
                err = fmax(err, fabs(c.out[base + i] - want));
            }
        }
    snprintf(nm, sizeof nm, "%s forward vs direct", label);
    CHECK_CLOSE(err, 0, 2e-6, 0, nm);
    snprintf(nm, sizeof nm, "%s saved mean / rstd", label);
    CHECK_CLOSE(serr, 0, 1e-6, 0, nm);
    /* backward (pre-filled 0.5: accumulation) */
    float *din = fal(n), *dg = fal(C), *dbt = fal(C);
    for (size_t i = 0; i < n; i++) din[i] = 0.5f;
    for (int i = 0; i < C; i++) dg[i] = dbt[i] = 0.5f;
    nn_groupnorm_backward(din, affine ? dg : NULL, affine ? dbt : NULL, c.R, c.in, c.mean, c.rstd,
                          affine ? c.gamma : NULL, B, C, HW, G);
    snprintf(nm, sizeof nm, "%s backward din (fd)", label);
    fd_check(nm, gn_loss, &c, c.in, din, 0.5f, n, 4e-3, 3e-3);
    if (affine) {
        snprintf(nm, sizeof nm, "%s backward dgamma (fd)", label);
        fd_check(nm, gn_loss, &c, c.gamma, dg, 0.5f, C, 0.25, 1e-4);
        snprintf(nm, sizeof nm, "%s backward dbeta (fd)", label);
        fd_check(nm, gn_loss, &c, c.beta, dbt, 0.5f, C, 0.25, 1e-4);
    }
    /* din sums to zero within each group for the no-affine... (always: d/dshift of the normalised output is 0) */
    double worst = 0;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            double s = 0;
            const size_t base = ((size_t)b * C + (size_t)g * CG) * HW;
            for (size_t i = 0; i < (size_t)CG * HW; i++) s += din[base + i] - 0.5;
            worst = fmax(worst, fabs(s));
        }
    snprintf(nm, sizeof nm, "%s din sums to 0 per group (shift invariance)", label);
    CHECK_CLOSE(worst, 0, 1e-4, 0, nm);
    free(din), free(dg), free(dbt);
    free(c.in), free(c.gamma), free(c.beta), free(c.R), free(c.out), free(c.mean), free(c.rstd);
}

typedef struct {
    int N, D;
    float *in, *gamma, *beta, *R, *out, *mean, *rstd;
} ln_case;

static double ln_loss(void *ctx)
{
    ln_case *c = ctx;
    nn_layernorm_forward(c->out, c->mean, c->rstd, c->in, c->gamma, c->beta, c->N, c->D, 1e-5f);
    return dot(c->out, c->R, (size_t)c->N * c->D);
}

static void test_layernorm(rng *r)
{
    ln_case c = {3, 7, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    const size_t n = 21;
    c.in = fal(n), c.gamma = fal(7), c.beta = fal(7), c.R = fal(n), c.out = fal(n), c.mean = fal(3), c.rstd = fal(3);
    fill_uniform(r, c.in, n, -1, 2);
    fill_uniform(r, c.gamma, 7, 0.5, 1.5);
    fill_uniform(r, c.beta, 7, -1, 1);
    fill_uniform(r, c.R, n, -1, 1);
    ln_loss(&c);
    double err = 0;
    for (int i = 0; i < 3; i++) {
        double m = 0, v = 0;
        for (int d = 0; d < 7; d++) m += c.in[i * 7 + d] / 7.0;
        for (int d = 0; d < 7; d++) v += (c.in[i * 7 + d] - m) * (c.in[i * 7 + d] - m) / 7.0;
        for (int d = 0; d < 7; d++)
            err = fmax(err, fabs(c.out[i * 7 + d] - ((c.in[i * 7 + d] - m) / sqrt(v + 1e-5) * c.gamma[d] + c.beta[d])));
    }
    CHECK_CLOSE(err, 0, 2e-6, 0, "layernorm forward vs direct (per-element affine)");
    float din[21], dg[7] = {0}, db[7] = {0};
    memset(din, 0, sizeof din);
    nn_layernorm_backward(din, dg, db, c.R, c.in, c.mean, c.rstd, c.gamma, 3, 7);
    fd_check("layernorm backward din (fd)", ln_loss, &c, c.in, din, 0, n, 4e-3, 3e-3);
    fd_check("layernorm backward dgamma (fd)", ln_loss, &c, c.gamma, dg, 0, 7, 0.25, 1e-4);
    fd_check("layernorm backward dbeta (fd)", ln_loss, &c, c.beta, db, 0, 7, 0.25, 1e-4);
    free(c.in), free(c.gamma), free(c.beta), free(c.R), free(c.out), free(c.mean), free(c.rstd);
}

static void test_norm(rng *r)
{
    gn_run(r, "groupnorm G2 C4", 3, 4, 5, 2, 1);
    gn_run(r, "groupnorm G=C (GN32-style)", 2, 3, 6, 3, 1);
    gn_run(r, "groupnorm G1 no-affine", 2, 3, 4, 1, 0);
    gn_run(r, "groupnorm G2 C8 HW9", 2, 8, 9, 2, 1);
    test_layernorm(r);
}

/* ---------------------------------------------------------------- max pool */

typedef struct {
    int B;
    nn_pool_geom g;
    float *in, *R, *out;
    int32_t *idx;
} pool_case;

static double pool_loss(void *ctx)
{
    pool_case *c = ctx;
    nn_maxpool2d_forward(c->out, c->idx, c->in, c->B, &c->g);
    return dot(c->out, c->R, (size_t)c->B * c->g.C * c->g.OH * c->g.OW);
}

static void pool_run(rng *r, const char *label, int B, nn_pool_geom g)
{
    pool_case c = {B, g, NULL, NULL, NULL, NULL};
    const size_t nin = (size_t)B * g.C * g.H * g.W, nout = (size_t)B * g.C * g.OH * g.OW;
    c.in = fal(nin), c.R = fal(nout), c.out = fal(nout);
    c.idx = malloc(nout * sizeof *c.idx);
    /* distinct values 0.01 apart (a shuffled ramp) so +-h never changes an argmax */
    size_t *perm = malloc(nin * sizeof *perm);
    for (size_t i = 0; i < nin; i++) perm[i] = i;
    rng_shuffle(r, perm, nin);
    for (size_t i = 0; i < nin; i++) c.in[i] = 0.01f * (float)perm[i] - 1.0f;
    free(perm);
    fill_uniform(r, c.R, nout, -1, 1);
    pool_loss(&c);
    int ok = 1;
    for (int pl = 0; pl < B * g.C; pl++)
        for (int oh = 0; oh < g.OH; oh++)
            for (int ow = 0; ow < g.OW; ow++) {
                double best = -INFINITY;
                for (int i = 0; i < g.KH; i++)
                    for (int j = 0; j < g.KW; j++) {
                        int ih = oh * g.SH - g.PH + i, iw = ow * g.SW - g.PW + j;
                        if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                        best = fmax(best, c.in[(size_t)pl * g.H * g.W + ih * g.W + iw]);
                    }
                size_t o = ((size_t)pl * g.OH + oh) * g.OW + ow;
                ok &= c.out[o] == (float)best && c.in[(size_t)pl * g.H * g.W + c.idx[o]] == c.out[o];
            }
    char nm[200];
    snprintf(nm, sizeof nm, "%s forward vs naive (+ argmax)", label);
    CHECK(ok, nm);
    float *din = fal(nin);
    for (size_t i = 0; i < nin; i++) din[i] = 0.5f;
    nn_maxpool2d_backward(din, c.R, c.idx, B, &g);
    snprintf(nm, sizeof nm, "%s backward din (fd)", label);
    fd_check(nm, pool_loss, &c, c.in, din, 0.5f, nin, 1e-3, 1e-3);
    free(din), free(c.in), free(c.R), free(c.out), free(c.idx);
}

static void test_pool(rng *r)
{
    nn_pool_geom g = nn_maxpool2d_geom(2, 6, 7, 2, 2, 0);
    CHECK(g.OH == 3 && g.OW == 3, "maxpool k2 s2: 6x7 -> 3x3 (floor)");
    pool_run(r, "maxpool k2 s2", 2, g);
    pool_run(r, "maxpool k3 s2 p1", 2, nn_maxpool2d_geom(3, 5, 6, 3, 2, 1));
    nn_pool_geom g2 = {2, 5, 4, 2, 3, 1, 1, 0, 1, 0, 0};
    nn_maxpool2d_geom_finish(&g2);
    pool_run(r, "maxpool k2x3 s1 p(0,1)", 2, g2);
    /* ties: first maximum; NaN propagates */
    float x[4] = {1, 1, 0, 1}, o;
    int32_t ix;
    nn_pool_geom g1 = nn_maxpool2d_geom(1, 2, 2, 2, 2, 0);
    nn_maxpool2d_forward(&o, &ix, x, 1, &g1);
    CHECK(o == 1 && ix == 0, "maxpool tie -> first maximum");
    x[2] = NAN;
    nn_maxpool2d_forward(&o, &ix, x, 1, &g1);
    CHECK(isnan(o) && ix == 2, "maxpool NaN propagates");
}

/* ---------------------------------------------------------------- tensor ops */

typedef struct {
    int B, C, HW, vs;
    float *x, *v, *R, *out;
} ca_case;

static double ca_loss(void *ctx)
{
    ca_case *c = ctx;
    const size_t n = (size_t)c->B * c->C * c->HW;
    memcpy(c->out, c->x, n * sizeof(float));
    nn_chan_add_forward(c->out, c->v, c->B, c->C, c->HW, c->vs);
    return dot(c->out, c->R, n);
}

static void test_chan_add(rng *r)
{
    for (int shared = 0; shared < 2; shared++) {
        ca_case c = {3, 4, 5, shared ? 0 : 4, NULL, NULL, NULL, NULL};
        const size_t n = 60, nv = shared ? 4 : 12;
        c.x = fal(n), c.v = fal(nv), c.R = fal(n), c.out = fal(n);
        fill_uniform(r, c.x, n, -1, 1);
        fill_uniform(r, c.v, nv, -1, 1);
        fill_uniform(r, c.R, n, -1, 1);
        ca_loss(&c);
        int ok = 1;
        for (int b = 0; b < 3; b++)
            for (int ch = 0; ch < 4; ch++)
                for (int p = 0; p < 5; p++) {
                    size_t i = ((size_t)b * 4 + ch) * 5 + p;
                    ok &= c.out[i] == c.x[i] + c.v[shared ? ch : b * 4 + ch];
                }
        CHECK(ok, shared ? "chan_add [C] bias forward" : "chan_add [B, C] forward (Dense(embed) broadcast)");
        float *dv = fal(nv);
        for (size_t i = 0; i < nv; i++) dv[i] = 0.5f;
        nn_chan_add_backward(dv, c.R, 3, 4, 5, c.vs);
        fd_check(shared ? "chan_add [C] backward dv (fd)" : "chan_add [B, C] backward dv (fd)", ca_loss, &c, c.v, dv,
                 0.5f, nv, 0.25, 1e-4);
        free(dv), free(c.x), free(c.v), free(c.R), free(c.out);
    }
}

/* the per-sample division and the scale of the backend table (the score's 1/std(t), the chunk weight) */
static void test_rowdiv_scale(rng *r)
{
    float v[3] = {0.5f, 3.0f, -7.0f}, src[12], dst[12];
    fill_uniform(r, src, 12, -1, 1);
    nn_rowdiv(dst, v, src, 3, 4);
    int ok = 1;
    for (int i = 0; i < 12; i++) ok &= dst[i] == src[i] / v[i / 4];
    nn_rowdiv(src, v, src, 3, 4);   /* in place */
    for (int i = 0; i < 12; i++) ok &= dst[i] == src[i];
    nn_scale(dst, 0.25f, 12);
    for (int i = 0; i < 12; i++) ok &= dst[i] == src[i] * 0.25f;
    CHECK(ok, "rowdiv (per-row division, in place too) and scale are exact");
}

static void test_concat(rng *r)
{
    const int B = 2, C1 = 3, C2 = 2, HW = 4;
    float a[24], b[16], out[40], g[40], da[24], db[16];
    fill_uniform(r, a, 24, -1, 1);
    fill_uniform(r, b, 16, -1, 1);
    fill_uniform(r, g, 40, -1, 1);
    nn_concat_forward(out, a, b, B, C1, C2, HW);
    int ok = 1;
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C1 + C2; c++)
            for (int p = 0; p < HW; p++) {
                float want = c < C1 ? a[(n * C1 + c) * HW + p] : b[(n * C2 + c - C1) * HW + p];
                ok &= out[(n * (C1 + C2) + c) * HW + p] == want;
            }
    CHECK(ok, "concat forward: [a, b] along channels, per sample");
    for (int i = 0; i < 24; i++) da[i] = 1;
    for (int i = 0; i < 16; i++) db[i] = 1;
    nn_concat_backward(da, db, g, B, C1, C2, HW);
    ok = 1;
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C1 + C2; c++)
            for (int p = 0; p < HW; p++) {
                float got = c < C1 ? da[(n * C1 + c) * HW + p] : db[(n * C2 + c - C1) * HW + p];
                ok &= got == 1 + g[(n * (C1 + C2) + c) * HW + p];
            }
    CHECK(ok, "concat backward: split and accumulate");
    nn_concat_backward(NULL, db, g, B, C1, C2, HW);   /* NULL half skipped */
    CHECK(db[0] == 1 + 2 * g[C1 * HW], "concat backward with da NULL");
}

typedef struct {
    int B, K, ce;
    const int *labels;
    float *x, *R, *out;
} sm_case;

static double sm_loss(void *ctx)
{
    sm_case *c = ctx;
    if (c->ce) return nn_cross_entropy_forward(c->out, c->x, c->labels, c->B, c->K);
    nn_log_softmax_forward(c->out, c->x, c->B, c->K);
    return dot(c->out, c->R, (size_t)c->B * c->K);
}

static void test_softmax_ce(rng *r)
{
    /* hand computation */
    const float logits[6] = {1, 2, 3, 0, 0, 0};
    const int labels[2] = {2, 1};
    float logp[6];
    double L = nn_cross_entropy_forward(logp, logits, labels, 2, 3);
    double want = 0.5 * ((log(exp(1.0) + exp(2.0) + exp(3.0)) - 3.0) + log(3.0));
    CHECK_CLOSE(L, want, 1e-6, 1e-6, "cross-entropy vs hand computation");
    float dl[6] = {0};
    nn_cross_entropy_backward(dl, 1.0f, logp, labels, 2, 3);
    double z = exp(1.0) + exp(2.0) + exp(3.0);
    CHECK_CLOSE(dl[2], 0.5 * (exp(3.0) / z - 1), 1e-6, 1e-6, "cross-entropy gradient (label entry) by hand");
    CHECK_CLOSE(dl[3], 0.5 / 3.0, 1e-6, 1e-6, "cross-entropy gradient (other entry) by hand");
    /* large logits: shifted, finite */
    const float big[3] = {1000, 0, -1000};
    const int l0 = 1;
    L = nn_cross_entropy_forward(logp, big, &l0, 1, 3);
    CHECK_CLOSE(L, 1000.0, 1e-3, 1e-6, "cross-entropy stable for logits of 1e3");
    /* finite differences */
    float x[15], R[15], out[15];
    int lab[3] = {0, 4, 2};
    fill_uniform(r, x, 15, -2, 2);
    fill_uniform(r, R, 15, -1, 1);
    sm_case c = {3, 5, 0, lab, x, R, out};
    float din[15];
    for (int i = 0; i < 15; i++) din[i] = 0.5f;
    sm_loss(&c);
    nn_log_softmax_backward(din, R, out, 3, 5);
    fd_check("log_softmax backward (fd)", sm_loss, &c, x, din, 0.5f, 15, 1e-3, 1e-3);
    c.ce = 1;
    for (int i = 0; i < 15; i++) din[i] = 0.5f;
    sm_loss(&c);
    nn_cross_entropy_backward(din, 1.0f, out, lab, 3, 5);
    fd_check("cross-entropy backward (fd)", sm_loss, &c, x, din, 0.5f, 15, 1e-3, 1e-3);
}

static void test_dropout(void)
{
    const size_t n = 200000;
    const float p = 0.3f;
    float *x = fal(n), *y = fal(n), *m = fal(n), *m2 = fal(n), *d = fal(n), *g = fal(n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f + (float)(i % 7);
    const uint64_t seed = 11, stream = philox_stream(PHILOX_TEST, 3);
    nn_dropout_forward(y, m, x, n, 1, p, 1, seed, stream, 0);
    size_t zeros = 0;
    int vals_ok = 1, out_ok = 1;
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        zeros += m[i] == 0.0f;
        vals_ok &= m[i] == 0.0f || m[i] == 1.0f / (1.0f - p);
        out_ok &= y[i] == x[i] * m[i];
        s += m[i];
    }
    double frac = (double)zeros / n, sd = sqrt(p * (1 - p) / n);
    char dd[120];
    snprintf(dd, sizeof dd, "dropped fraction %.5f, want %.3f +- %.5f (5 sd)", frac, p, 5 * sd);
    test_report(fabs(frac - p) <= 5 * sd, "dropout drops a fraction p of the units", dd);
    CHECK(vals_ok, "dropout mask values are 0 or 1/(1-p)");
    CHECK(out_ok, "dropout out = in * mask");
    CHECK_CLOSE(s / n, 1.0, 5 * sd / (1 - p), 0, "dropout preserves the mean (E mask = 1)");
    nn_dropout_forward(y, m2, x, n, 1, p, 1, seed, stream, 0);
    CHECK(memcmp(m, m2, n * sizeof *m) == 0, "dropout mask reproducible from the same Philox stream");
    /* any slice alone: units [1000, 1100) drawn at offset 1000 are the whole call's */
    nn_dropout_forward(y, m2, x, 100, 1, p, 1, seed, stream, 1000);
    CHECK(memcmp(m + 1000, m2, 100 * sizeof *m) == 0, "dropout mask of a slice = that slice of the whole mask");
    for (size_t i = 0; i < n; i++) g[i] = (float)(i % 5) - 2.0f, d[i] = 0.25f;
    nn_dropout_backward(d, g, m, n, 1, 1);
    int bok = 1;
    for (size_t i = 0; i < n; i++) bok &= d[i] == 0.25f + g[i] * m[i];
    CHECK(bok, "dropout backward: din += dout * mask");
    /* eval: identity, in place too */
    nn_dropout_forward(y, NULL, x, n, 1, p, 0, 0, 0, 0);
    CHECK(memcmp(y, x, n * sizeof *x) == 0, "dropout eval is the identity");
    for (size_t i = 0; i < n; i++) d[i] = 0.25f;
    nn_dropout_backward(d, g, NULL, n, 1, 0);
    bok = 1;
    for (size_t i = 0; i < n; i++) bok &= d[i] == 0.25f + g[i];
    CHECK(bok, "dropout eval backward: din += dout");
    /* Dropout2d: one mask per (b, c) plane of 9 */
    const size_t units = n / 9;
    nn_dropout_forward(y, m, x, units, 9, 0.5f, 1, seed + 1, stream, 0);
    int pl_ok = 1;
    size_t z2 = 0;
    for (size_t u = 0; u < units; u++) {
        z2 += m[u] == 0;
        for (size_t k = 0; k < 9; k++) pl_ok &= y[u * 9 + k] == x[u * 9 + k] * m[u];
    }
    CHECK(pl_ok && fabs((double)z2 / units - 0.5) < 5 * sqrt(0.25 / units),
          "dropout2d: whole planes dropped, half of them at p = 0.5, scale 2");
    nn_dropout_forward(y, m, x, 10, 1, 1.0f, 1, seed, stream, 0);
    int allz = 1;
    for (int i = 0; i < 10; i++) allz &= y[i] == 0.0f;
    CHECK(allz, "dropout p = 1 zeroes everything (no inf scale)");
    free(x), free(y), free(m), free(m2), free(d), free(g);
}

/* ---------------------------------------------------------------- the ScoreNet shape chain (REFERENCE.md) */

static void test_scorenet_chain(rng *r)
{
    nn_conv_geom c1 = nn_conv2d_geom(1, 32, 28, 28, 3, 3, 1, 0);
    nn_conv_geom c2 = nn_conv2d_geom(32, 64, c1.OH, c1.OW, 3, 3, 2, 0);
    nn_conv_geom c3 = nn_conv2d_geom(64, 128, c2.OH, c2.OW, 3, 3, 2, 0);
    nn_conv_geom c4 = nn_conv2d_geom(128, 256, c3.OH, c3.OW, 3, 3, 2, 0);
    nn_conv_geom t4 = nn_conv_transpose2d_geom(256, 128, c4.OH, c4.OW, 3, 3, 2, 0, 0);
    nn_conv_geom t3 = nn_conv_transpose2d_geom(256, 64, t4.OH, t4.OW, 3, 3, 2, 0, 1);
    nn_conv_geom t2 = nn_conv_transpose2d_geom(128, 32, t3.OH, t3.OW, 3, 3, 2, 0, 1);
    nn_conv_geom t1 = nn_conv_transpose2d_geom(64, 1, t2.OH, t2.OW, 3, 3, 1, 0, 0);
    CHECK(c1.OH == 26 && c2.OH == 12 && c3.OH == 5 && c4.OH == 2 && c4.OW == 2,
          "scorenet encoder sizes 28 -> 26 -> 12 -> 5 -> 2");
    CHECK(t4.OH == 5 && t3.OH == 12 && t2.OH == 26 && t1.OH == 28 && t1.OW == 28,
          "scorenet decoder sizes 2 -> 5 -> 12 (op 1) -> 26 (op 1) -> 28");
    const nn_conv_geom *gs[8] = {&c1, &c2, &c3, &c4, &t4, &t3, &t2, &t1};
    size_t np = 0;
    for (int k = 0; k < 8; k++) np += (size_t)gs[k]->IC * gs[k]->OC * 9;
    CHECK(np == 1115297u - 1 /* tconv1.bias */ - 2 * (32 + 64 + 128 + 256 + 128 + 64 + 32) /* GN affine */ -
                    (256 * 256 + 256) /* embed.1 */ - (256 + 1) * (32 + 64 + 128 + 256 + 128 + 64 + 32) /* dense */,
          "scorenet conv weights + the other tensors add up to 1,115,297 parameters");
    /* end to end at the real channel counts (B = 2): conv -> +Dense -> GN -> swish, skips concatenated */
    const int B = 2;
    size_t wsn = 0;
    for (int k = 0; k < 8; k++) {
        size_t w = k < 4 ? nn_conv2d_ws_floats(gs[k], B) : nn_conv_transpose2d_ws_floats(gs[k], B);
        if (w > wsn) wsn = w;
    }
    float *ws = fal(wsn), *W = fal(256 * 256 * 9), *emb = fal(B * 256), *mean = fal(B * 32), *rstd = fal(B * 32);
    float *h[8], *cat = fal((size_t)B * 256 * 26 * 26);
    float *x = fal(B * 784);
    fill_uniform(r, x, B * 784, -1, 1);
    fill_uniform(r, emb, B * 256, -1, 1);
    int ok = 1;
    for (int k = 0; k < 8; k++) {
        const nn_conv_geom *g = gs[k];
        const size_t on = (size_t)B * g->OC * g->OH * g->OW;
        h[k] = fal(on);
        fill_uniform(r, W, (size_t)g->IC * g->OC * 9, -1.0 / sqrt(g->IC * 9.0), 1.0 / sqrt(g->IC * 9.0));
        const float *in = k == 0 ? x : k < 5 ? h[k - 1] : cat;
        if (k >= 5) {   /* cat[decoder, skip]: tconv3 <- [g4, h3], tconv2 <- [g3, h2], tconv1 <- [g2, h1] */
            const int skip = 7 - k;   /* k = 5 -> h[2] (c3), 6 -> h[1], 7 -> h[0] */
            nn_concat_forward(cat, h[k - 1], h[skip], B, gs[k - 1]->OC, gs[skip]->OC, g->H * g->W);
            ok &= gs[k - 1]->OC + gs[skip]->OC == g->IC && gs[skip]->OH == g->H;
        }
        if (k < 4) nn_conv2d_forward(h[k], in, W, NULL, B, g, ws, wsn);
        else nn_conv_transpose2d_forward(h[k], in, W, k == 7 ? emb : NULL, B, g, ws, wsn);
        if (k < 7) {
            nn_chan_add_forward(h[k], emb, B, g->OC, g->OH * g->OW, 256);   /* stands in for Dense_k(embed) */
            const int G = k == 0 ? 4 : 32;
            nn_groupnorm_forward(h[k], mean, rstd, h[k], NULL, NULL, B, g->OC, g->OH * g->OW, G, 1e-5f);
            nn_silu_forward(h[k], h[k], on);
        }
        for (size_t i = 0; i < on; i++) ok &= isfinite(h[k][i]);
    }
    CHECK(ok, "scorenet chain runs end to end at the real channel counts (finite, skip shapes match)");
    /* the largest layer against its naive definition: conv2 (32 -> 64, 26 -> 12) on h[0] */
    fill_uniform(r, W, 64 * 32 * 9, -0.2, 0.2);
    float *o2 = fal((size_t)B * 64 * 144);
    double *ref = malloc((size_t)B * 64 * 144 * sizeof *ref), mref;
    nn_conv2d_forward(o2, h[0], W, NULL, B, &c2, ws, wsn);
    naive_conv2d(ref, h[0], W, NULL, B, &c2);
    double e = max_abs_diff(o2, ref, (size_t)B * 64 * 144, &mref);
    CHECK_CLOSE(e, 0, 1e-5 * (1 + mref), 0, "scorenet conv2 (32 -> 64, k3 s2) vs naive at full size");
    float *o3 = fal((size_t)B * 64 * 144);
    double *ref3 = malloc((size_t)B * 64 * 144 * sizeof *ref3);
    fill_uniform(r, W, 256 * 64 * 9, -0.1, 0.1);
    nn_concat_forward(cat, h[4], h[2], B, 128, 128, 25);
    nn_conv_transpose2d_forward(o3, cat, W, NULL, B, &t3, ws, wsn);
    naive_tconv2d(ref3, cat, W, NULL, B, &t3);
    e = max_abs_diff(o3, ref3, (size_t)B * 64 * 144, &mref);
    CHECK_CLOSE(e, 0, 1e-5 * (1 + mref), 0, "scorenet tconv3 (256 -> 64, s2 op1) vs naive at full size");
    for (int k = 0; k < 8; k++) free(h[k]);
    free(ws), free(W), free(emb), free(mean), free(rstd), free(cat), free(x), free(o2), free(ref), free(o3),
        free(ref3);
}

/* nn_groupnorm_silu_{forward,backward} against nn_groupnorm_* then nn_silu_* (the unfused reference): the same
 * values up to the order of the statistic sums; din may be dh (in place); dgamma / dbeta accumulate. */
static void gn_silu_run(rng *r, const char *name, int B, int C, int HW, int G, int affine)
{
    const size_t n = (size_t)B * C * HW;
    float *x = malloc(n * sizeof *x), *y0 = malloc(n * sizeof *x), *h0 = malloc(n * sizeof *x),
          *y1 = malloc(n * sizeof *x), *h1 = malloc(n * sizeof *x), *dh = malloc(n * sizeof *x),
          *dy = calloc(n, sizeof *x), *d0 = calloc(n, sizeof *x), *d1 = malloc(n * sizeof *x),
          *ws = malloc((size_t)(C / G) * HW * sizeof *x);
    float m0[128], r0[128], m1[128], r1[128], gam[32], bet[32], dg0[32], db0[32], dg1[32], db1[32];
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)(2.0 * rng_gaussian(r) + 0.5);
        dh[i] = (float)rng_gaussian(r);
    }
    for (int c = 0; c < C; c++) {
        gam[c] = (float)(1.0 + 0.3 * rng_gaussian(r));
        bet[c] = (float)(0.3 * rng_gaussian(r));
        dg0[c] = dg1[c] = 0.25f;   /* accumulate onto a non-zero value */
        db0[c] = db1[c] = -0.5f;
    }
    const float *g = affine ? gam : NULL, *be = affine ? bet : NULL;
    nn_groupnorm_forward(y0, m0, r0, x, g, be, B, C, HW, G, 1e-5f);
    nn_silu_forward(h0, y0, n);
    nn_groupnorm_silu_forward(y1, h1, m1, r1, x, g, be, B, C, HW, G, 1e-5f);
    double ef = 0.0, eb = 0.0, ea = 0.0, sb = 0.0, sa = 0.0;
    for (size_t i = 0; i < n; i++) ef = fmax(ef, fmax(fabs(y0[i] - y1[i]), fabs(h0[i] - h1[i])));
    for (int i = 0; i < B * G; i++) ef = fmax(ef, fmax(fabs(m0[i] - m1[i]), fabs(r0[i] - r1[i]) / r0[i]));
    nn_silu_backward(dy, dh, y0, n);
    nn_groupnorm_backward(d0, dg0, db0, dy, x, m0, r0, g, B, C, HW, G);
    memcpy(d1, dh, n * sizeof *d1);   /* in place: din == dh */
    nn_groupnorm_silu_backward(d1, dg1, db1, d1, (size_t)C * HW, y0, x, m0, r0, g, B, C, HW, G, ws);
    /* dh as the first C channels of a [B, C + 3, HW] concatenation gradient, din apart */
    const size_t bs = (size_t)(C + 3) * HW;
    float *dcat = malloc((size_t)B * bs * sizeof *dcat), *d2 = malloc(n * sizeof *d2);
    float dg2[32], db2[32];
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < bs; i++) dcat[b * bs + i] = i < (size_t)C * HW ? dh[b * (size_t)C * HW + i] : NAN;
    for (int c = 0; c < C; c++) dg2[c] = 0.25f, db2[c] = -0.5f;
    nn_groupnorm_silu_backward(d2, dg2, db2, dcat, bs, y0, x, m0, r0, g, B, C, HW, G, ws);
    for (size_t i = 0; i < n; i++) {
        eb = fmax(eb, fabs(d0[i] - d1[i]));
        sb = fmax(sb, fabs(d0[i]));
        if (d2[i] != d1[i] || d2[i] != d2[i]) eb = INFINITY;   /* the strided read is the same computation */
    }
    for (int c = 0; c < C; c++)
        if (dg2[c] != dg1[c] || db2[c] != db1[c]) ea = INFINITY;
    free(dcat), free(d2);
    for (int c = 0; c < C; c++) {
        ea = fmax(ea, fmax(fabs(dg0[c] - dg1[c]), fabs(db0[c] - db1[c])));
        sa = fmax(sa, fmax(fabs(dg0[c]), fabs(db0[c])));
    }
    char d[160];
    snprintf(d, sizeof d, "fwd err %.2e, din err %.2e (max %.2e), dgamma/dbeta err %.2e (max %.2e)", ef, eb, sb, ea,
             sa);
    char nm[128];
    snprintf(nm, sizeof nm, "groupnorm+silu fused == unfused (forward bitwise, backward 1e-5) (%s)", name);
    test_report(ef == 0 && eb <= 1e-5 * (sb > 1 ? sb : 1) && ea <= 1e-5 * (sa > 1 ? sa : 1) && sb > 0, nm, d);
    free(x), free(y0), free(h0), free(y1), free(h1), free(dh), free(dy), free(d0), free(d1), free(ws);
}

static void test_gn_silu(rng *r)
{
    gn_silu_run(r, "G4 C32 HW676, conv1", 2, 32, 676, 4, 1);
    gn_silu_run(r, "G32 C32 HW169", 3, 32, 169, 32, 1);
    gn_silu_run(r, "G2 C8 HW9 no-affine", 2, 8, 9, 2, 0);
}

int main(void)
{
    rng *r = rng_alloc(20261123, 7);
    test_conv(r);
    test_conv_adjoint(r);
    test_conv_threads(r);
    test_norm(r);
    test_gn_silu(r);
    test_pool(r);
    test_chan_add(r);
    test_concat(r);
    test_rowdiv_scale(r);
    test_softmax_ce(r);
    test_dropout();
    test_scorenet_chain(r);
    rng_free(r);
    return test_finish();
}
