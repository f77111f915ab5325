/* test_cuda_layers: every CUDA twin of nn_cuda.h against its CPU reference in common/nn/ (DESIGN.md §5: "every
 * CUDA kernel is checked against its CPU reference, |gpu - cpu| <= atol + rtol |cpu|; skips when no GPU").
 * Random inputs on the host, the CPU function and the GPU twin on copies of the same data, one PASS/FAIL line per
 * compared array (the worst element is printed on failure). Covered: nn_sgemm_cuda (4 transpose cases, padded
 * strides, beta 0 over NaN garbage and beta != 0; vs the double reference nn_sgemm_ref), linear forward /
 * forward_add / backward, SiLU / ReLU, Gaussian Fourier embedding, conv2d and conv_transpose2d forward /
 * backward (odd and asymmetric geometries, 1x1, output_padding, and the ScoreNet layers of REFERENCE.md "Score
 * network" at batch 8: conv1..conv4 28->26->12->5->2, tconv4..tconv1 2->5->12->26->28; workspaces of one image,
 * two images, the CPU's recommended size and the whole batch), GroupNorm (ScoreNet GN(4, 32), GN(32, C), odd
 * sizes, no affine, in place), channel add, concat, Adam, EMA, the DSM loss, and the digit classifier's max-pool,
 * ReLU mask, Philox dropout and cross-entropy (tolerances at test_classify_layers). Every gradient buffer is
 * pre-filled with nonzero values, so the += semantics are checked; NULL gradient pointers are exercised; the
 * reductions are checked to be bitwise repeatable. Tolerances, per op (fp32, TF32 off):
 *   GEMM / linear / conv         rtol 1e-4, atol 1e-5 sqrt(inner dimension) (|a|, |b| <= 1)
 *   GroupNorm out / mean, rstd   rtol 1e-5, atol 1e-5 / 1e-6;  din rtol 1e-4, atol 2e-5;  dgamma / dbeta rtol 1e-5,
 *                                atol 1e-5 sqrt(B HW)
 *   channel sums (bias grads)    rtol 1e-5, atol 1e-5 sqrt(terms)
 *   SiLU                         rtol 1e-5, atol 1e-6 (CPU: ~2-ulp polynomial exp; GPU: expf)
 *   Fourier                      atol 1e-6 (both sin/cos in double, rounded to float)
 *   ReLU, concat, chan add fwd   exact (atol 0, rtol 0)
 *   Adam, EMA, dsm gradient      rtol 1e-6 + a tiny atol (same float operations: expected bitwise);
 *                                dsm loss rtol 1e-10 (double sums of exact squares, different order)
 * Without a GPU (or in a CPU-only build) prints "SKIP ..." and "RESULT passed=0 failed=0", exit 0. */
#include "device.h"
#include "test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SF_HAVE_CUDA
#include "act.h"
#include "adam.h"
#include "conv.h"
#include "dsm.h"
#include "ema.h"
#include "fourier.h"
#include "gemm.h"
#include "linear.h"
#include "mem.h"
#include "nn_cuda.h"
#include "norm.h"
#include "philox.h"
#include "pool.h"
#include "rng.h"
#include "tensor_ops.h"

static rng *R;

static float *hrand(size_t n, double lo, double hi)
{
    float *p = mem_new(float, n);
    for (size_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * rng_uniform(R));
    return p;
}

static float *hcopy(const float *h, size_t n)
{
    float *p = mem_new(float, n);
    memcpy(p, h, n * sizeof *p);
    return p;
}

/* |gpu - cpu| <= atol + rtol |cpu| for all n; one PASS / FAIL line, worst element on failure */
static void cmp(const char *name, const float *gpu, const float *cpu, size_t n, double atol, double rtol)
{
    size_t bad = 0, worst = 0;
    double wr = -1.0;
    for (size_t i = 0; i < n; i++) {
        const double g = gpu[i], c = cpu[i], d = fabs(g - c), lim = atol + rtol * fabs(c);
        const int ok = (isfinite(g) && d <= lim) || (!isfinite(c) && !isfinite(g) && (isnan(c) == isnan(g)));
        if (!ok) bad++;
        const double r = isfinite(g) ? (lim > 0 ? d / lim : (d > 0 ? INFINITY : 0)) : INFINITY;
        if (r > wr) {
            wr = r;
            worst = i;
        }
    }
    char detail[320];
    if (n == 0) snprintf(detail, sizeof detail, "empty");
    else
        snprintf(detail, sizeof detail, "%zu of %zu outside; worst [%zu] gpu %.9g cpu %.9g |diff| %.3g allowed %.3g",
                 bad, n, worst, (double)gpu[worst], (double)cpu[worst], fabs((double)gpu[worst] - cpu[worst]),
                 atol + rtol * fabs((double)cpu[worst]));
    test_report(bad == 0, name, detail);
}

/* compare device d[n] with host cpu[n] */
static void cmpd(const char *name, const float *d, const float *cpu, size_t n, double atol, double rtol)
{
    float *g = nn_cuda_download_floats(d, n);
    cmp(name, g, cpu, n, atol, rtol);
    free(g);
}

#define GEMM_RTOL 1e-4
static double gemm_atol(long inner) { return 1e-5 * sqrt((double)(inner > 1 ? inner : 1)); }

/* ---------------------------------------------------------------- memory helpers */

static void test_memory(void)
{
    const size_t n = 1000;
    float *h = hrand(n, -1, 1), *d = nn_cuda_upload_floats(h, n), *d2 = nn_cuda_upload_floats(NULL, n);
    nn_cuda_memcpy_d2d(d2, d, n * sizeof *h);
    float *g = nn_cuda_download_floats(d2, n);
    CHECK(memcmp(g, h, n * sizeof *h) == 0, "memory: h2d -> d2d -> d2h round trip is exact");
    nn_cuda_memset(d2, 0, n * sizeof *h);
    free(g);
    g = nn_cuda_download_floats(d2, n);
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= g[i] == 0.0f;
    CHECK(zero, "memory: memset zeroes");
    CHECK(nn_cuda_malloc(0) == NULL, "memory: malloc(0) is NULL");
    nn_cuda_free(NULL);
    /* staged uploads (pinned ring, no stream sync): 40 uploads from ONE host buffer rewritten between them, and a
     * kernel-free d2d behind each, must each carry the values of their call */
    {
        enum { U = 40, L = 3000 };
        float *hb = mem_new(float, L), *dd = nn_cuda_malloc_floats((size_t)U * L);
        for (int u = 0; u < U; u++) {
            for (int i = 0; i < L; i++) hb[i] = (float)(u * L + i);
            nn_cuda_memcpy_h2d(dd + (size_t)u * L, hb, L * sizeof *hb);
        }
        float *back = nn_cuda_download_floats(dd, (size_t)U * L);
        int ok = 1;
        for (int e = 0; e < U * L; e++) ok &= back[e] == (float)e;
        CHECK(ok, "memory: staged uploads carry the host values at the time of each call (src reused at once)");
        free(hb), free(back);
        nn_cuda_free(dd);
    }
    nn_cuda_sync();
    free(g);
    free(h);
    nn_cuda_free(d);
    nn_cuda_free(d2);
}

/* ---------------------------------------------------------------- GEMM */

static void test_gemm_case(int tA, int tB, int M, int N, int K, float alpha, float beta, int pad)
{
    const int lda = (tA ? M : K) + pad, ldb = (tB ? K : N) + pad, ldc = N + pad;
    const size_t na = (size_t)(tA ? K : M) * lda, nb = (size_t)(tB ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = hrand(na, -1, 1), *B = hrand(nb, -1, 1), *C = hrand(nc, -1, 1);
    if (beta == 0.0f)
        for (size_t i = 0; i < nc; i++)
            if ((i % (size_t)ldc) < (size_t)N) C[i] = NAN;   /* beta 0 must overwrite garbage */
    float *Cref = hcopy(C, nc);
    float *dA = nn_cuda_upload_floats(A, na), *dB = nn_cuda_upload_floats(B, nb), *dC = nn_cuda_upload_floats(C, nc);
    nn_sgemm_ref(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, Cref, ldc);
    nn_sgemm_cuda(tA, tB, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, ldc);
    char name[160];
    snprintf(name, sizeof name, "sgemm %c%c M %d N %d K %d alpha %g beta %g pad %d", tA ? 'T' : 'N', tB ? 'T' : 'N',
             M, N, K, alpha, beta, pad);
    /* the padding columns of C must be untouched: compare the whole buffer */
    cmpd(name, dC, Cref, nc, gemm_atol(K) * fabsf(alpha) + 1e-6, GEMM_RTOL);
    free(A), free(B), free(C), free(Cref);
    nn_cuda_free(dA), nn_cuda_free(dB), nn_cuda_free(dC);
}

static void test_gemm(void)
{
    for (int tA = 0; tA < 2; tA++)
        for (int tB = 0; tB < 2; tB++) {
            test_gemm_case(tA, tB, 37, 53, 29, 1.0f, 0.0f, 0);
            test_gemm_case(tA, tB, 37, 53, 29, 0.7f, 1.3f, 3);
            test_gemm_case(tA, tB, 1, 7, 1, 1.0f, 0.0f, 1);
        }
    /* ScoreNet conv shapes at batch 8 (im2col forms: forward NN, weight gradient NT, input gradient TN) */
    test_gemm_case(0, 0, 64, 8 * 144, 288, 1.0f, 0.0f, 0);
    test_gemm_case(0, 1, 128, 576, 8 * 25, 1.0f, 1.0f, 0);
    test_gemm_case(1, 0, 1152, 8 * 4, 256, 1.0f, 0.0f, 0);
    test_gemm_case(0, 1, 8, 256, 256, 1.0f, 0.0f, 0);   /* linear 256 -> 256 at batch 8 */
}

/* ---------------------------------------------------------------- linear */

static void test_linear_case(int B, int IC, int OC, int bias, int null_grads)
{
    char name[160];
    float *in = hrand((size_t)B * IC, -1, 1), *W = hrand((size_t)OC * IC, -1, 1), *b = hrand(OC, -1, 1);
    float *dout = hrand((size_t)B * OC, -1, 1);
    float *din = hrand((size_t)B * IC, -1, 1), *dW = hrand((size_t)OC * IC, -1, 1), *db = hrand(OC, -1, 1);
    float *out = mem_new(float, (size_t)B * OC), *out2 = hrand((size_t)B * OC, -1, 1);
    float *d_in = nn_cuda_upload_floats(in, (size_t)B * IC), *d_W = nn_cuda_upload_floats(W, (size_t)OC * IC), *d_b = nn_cuda_upload_floats(b, OC);
    float *d_dout = nn_cuda_upload_floats(dout, (size_t)B * OC), *d_out = nn_cuda_upload_floats(NULL, (size_t)B * OC), *d_out2 = nn_cuda_upload_floats(out2, (size_t)B * OC);
    float *d_din = nn_cuda_upload_floats(din, (size_t)B * IC), *d_dW = nn_cuda_upload_floats(dW, (size_t)OC * IC), *d_db = nn_cuda_upload_floats(db, OC);
    const float *bb = bias ? b : NULL, *d_bb = bias ? d_b : NULL;

    nn_linear_forward(out, in, W, bb, B, IC, OC);
    nn_linear_forward_cuda(d_out, d_in, d_W, d_bb, B, IC, OC);
    snprintf(name, sizeof name, "linear forward B %d IC %d OC %d bias %d", B, IC, OC, bias);
    cmpd(name, d_out, out, (size_t)B * OC, gemm_atol(IC), GEMM_RTOL);

    nn_linear_forward_add(out2, in, W, bb, B, IC, OC);
    nn_linear_forward_add_cuda(d_out2, d_in, d_W, d_bb, B, IC, OC);
    snprintf(name, sizeof name, "linear forward_add (+=) B %d IC %d OC %d bias %d", B, IC, OC, bias);
    cmpd(name, d_out2, out2, (size_t)B * OC, gemm_atol(IC), GEMM_RTOL);

    /* null_grads: din and db NULL (dW only) */
    nn_linear_backward(null_grads ? NULL : din, dW, null_grads ? NULL : db, dout, in, W, B, IC, OC);
    nn_linear_backward_cuda(null_grads ? NULL : d_din, d_dW, null_grads ? NULL : d_db, d_dout, d_in, d_W, B, IC, OC);
    snprintf(name, sizeof name, "linear backward din (+=) B %d IC %d OC %d%s", B, IC, OC, null_grads ? " (NULL)" : "");
    cmpd(name, d_din, din, (size_t)B * IC, gemm_atol(OC), GEMM_RTOL);
    snprintf(name, sizeof name, "linear backward dW (+=) B %d IC %d OC %d", B, IC, OC);
    cmpd(name, d_dW, dW, (size_t)OC * IC, gemm_atol(B), GEMM_RTOL);
    snprintf(name, sizeof name, "linear backward db (+=) B %d OC %d%s", B, OC, null_grads ? " (NULL)" : "");
    cmpd(name, d_db, db, OC, 1e-5 * sqrt((double)B), 1e-5);

    free(in), free(W), free(b), free(dout), free(din), free(dW), free(db), free(out), free(out2);
    nn_cuda_free(d_in), nn_cuda_free(d_W), nn_cuda_free(d_b), nn_cuda_free(d_dout), nn_cuda_free(d_out);
    nn_cuda_free(d_out2), nn_cuda_free(d_din), nn_cuda_free(d_dW), nn_cuda_free(d_db);
}

static void test_linear(void)
{
    test_linear_case(37, 29, 53, 1, 0);
    test_linear_case(37, 29, 53, 0, 1);
    test_linear_case(1, 1, 1, 1, 0);
    test_linear_case(8, 256, 256, 1, 0);      /* ScoreNet embed.1: Linear(256, 256) */
    test_linear_case(8, 256, 32, 1, 0);       /* Dense(embed -> 32) .. (-> 256) */
    test_linear_case(8, 256, 128, 1, 0);
    test_linear_case(1000, 64, 33, 1, 0);     /* many rows: the bias column sum strides over r */
    test_linear_case(1024, 256, 32, 1, 0);    /* ScoreNet Dense at batch 1,024: 16 row slices, 1 column tile */
    test_linear_case(4099, 16, 300, 1, 0);    /* ragged last slice and last column tile */
    /* the two-stage bias sum is deterministic: the same bits twice from a zeroed db */
    {
        const int B = 4099, OC = 300;
        float *dout = hrand((size_t)B * OC, -1, 1);
        float *d_dout = nn_cuda_upload_floats(dout, (size_t)B * OC), *d_a = nn_cuda_upload_floats(NULL, OC),
              *d_b = nn_cuda_upload_floats(NULL, OC), *d_in = nn_cuda_upload_floats(NULL, (size_t)B);
        nn_linear_backward_cuda(NULL, NULL, d_a, d_dout, d_in, d_in, B, 1, OC);
        nn_linear_backward_cuda(NULL, NULL, d_b, d_dout, d_in, d_in, B, 1, OC);
        float *a = nn_cuda_download_floats(d_a, OC), *b = nn_cuda_download_floats(d_b, OC);
        CHECK(memcmp(a, b, OC * sizeof *a) == 0, "linear bias gradient (two-stage column sum) bitwise repeatable");
        free(dout), free(a), free(b);
        nn_cuda_free(d_dout), nn_cuda_free(d_a), nn_cuda_free(d_b), nn_cuda_free(d_in);
    }
}

/* ---------------------------------------------------------------- activations, Fourier */

static void test_act(void)
{
    const size_t n = 100003;
    float *x = hrand(n, -20, 20), *dout = hrand(n, -1, 1), *din = hrand(n, -1, 1), *out = mem_new(float, n);
    const float special[] = {0.0f, -0.0f, 100.0f, -100.0f, 88.5f, -88.5f, 1e-30f, -1.2784645f};
    memcpy(x, special, sizeof special);
    float *din_r = hcopy(din, n);
    float *d_x = nn_cuda_upload_floats(x, n), *d_dout = nn_cuda_upload_floats(dout, n), *d_din = nn_cuda_upload_floats(din, n), *d_out = nn_cuda_upload_floats(NULL, n);
    float *d_din_r = nn_cuda_upload_floats(din, n);

    nn_silu_forward(out, x, n);
    nn_silu_forward_cuda(d_out, d_x, n);
    cmpd("silu forward (n 100003, x in [-20, 20] + extremes)", d_out, out, n, 1e-6, 1e-5);
    nn_silu_backward(din, dout, x, n);
    nn_silu_backward_cuda(d_din, d_dout, d_x, n);
    cmpd("silu backward (+=)", d_din, din, n, 1e-6, 1e-5);

    nn_relu_forward(out, x, n);
    nn_relu_forward_cuda(d_out, d_x, n);
    cmpd("relu forward", d_out, out, n, 0, 0);
    nn_relu_backward(din_r, dout, x, n);
    nn_relu_backward_cuda(d_din_r, d_dout, d_x, n);
    cmpd("relu backward (+=)", d_din_r, din_r, n, 0, 0);

    free(x), free(dout), free(din), free(out), free(din_r);
    nn_cuda_free(d_x), nn_cuda_free(d_dout), nn_cuda_free(d_din), nn_cuda_free(d_out), nn_cuda_free(d_din_r);
}

static void test_fourier(void)
{
    const int F = 128;
    for (int pass = 0; pass < 2; pass++) {
        const int B = pass ? 37 : 8;
        const size_t stride = pass ? 0 : 1;
        float *W = mem_new(float, F), *t = hrand(B, 1e-5, 1.0), *out = mem_new(float, (size_t)B * 2 * F);
        nn_fourier_init(W, F, 30.0, R);   /* the ScoreNet's embed.0: W ~ N(0, 30^2) */
        float *d_W = nn_cuda_upload_floats(W, F), *d_t = nn_cuda_upload_floats(t, B), *d_out = nn_cuda_upload_floats(NULL, (size_t)B * 2 * F);
        nn_fourier_forward(out, t, stride, W, B, F);
        nn_fourier_forward_cuda(d_out, d_t, stride, d_W, B, F);
        char name[120];
        snprintf(name, sizeof name, "fourier forward B %d F %d t_stride %zu", B, F, stride);
        cmpd(name, d_out, out, (size_t)B * 2 * F, 1e-6, 0);
        free(W), free(t), free(out);
        nn_cuda_free(d_W), nn_cuda_free(d_t), nn_cuda_free(d_out);
    }
}

/* ---------------------------------------------------------------- conv2d / conv_transpose2d */

/* ws_mode: 0 one image per chunk, 1 two images, 2 the CPU's recommended size, 3 the whole batch */
static size_t ws_for(const nn_conv_geom *g, int transposed, int B, int ws_mode)
{
    const size_t mn = transposed ? nn_conv_transpose2d_ws_min(g) : nn_conv2d_ws_min(g);
    switch (ws_mode) {
    case 0: return mn;
    case 1: return 2 * mn + mn / 2;   /* floor(ws_n / ws_min) = 2 */
    case 2: return transposed ? nn_conv_transpose2d_ws_floats(g, B) : nn_conv2d_ws_floats(g, B);
    default: return mn * (size_t)B;
    }
}

static void test_conv_case(const char *label, const nn_conv_geom *g, int transposed, int B, int bias, int ws_mode,
                           int null_grads)
{
    const size_t nin = (size_t)B * g->IC * g->H * g->W, nout = (size_t)B * g->OC * g->OH * g->OW;
    const size_t nw = (size_t)g->OC * g->IC * g->KH * g->KW;
    const size_t cws = transposed ? nn_conv_transpose2d_ws_floats(g, B) : nn_conv2d_ws_floats(g, B);
    const size_t gws = ws_for(g, transposed, B, ws_mode);
    float *in = hrand(nin, -1, 1), *W = hrand(nw, -1, 1), *b = hrand(g->OC, -1, 1), *dout = hrand(nout, -1, 1);
    float *din = hrand(nin, -1, 1), *dW = hrand(nw, -1, 1), *db = hrand(g->OC, -1, 1);
    float *out = mem_new(float, nout), *ws = mem_new(float, cws);
    float *d_in = nn_cuda_upload_floats(in, nin), *d_W = nn_cuda_upload_floats(W, nw), *d_b = nn_cuda_upload_floats(b, g->OC), *d_dout = nn_cuda_upload_floats(dout, nout);
    float *d_din = nn_cuda_upload_floats(din, nin), *d_dW = nn_cuda_upload_floats(dW, nw), *d_db = nn_cuda_upload_floats(db, g->OC), *d_out = nn_cuda_upload_floats(NULL, nout);
    float *d_ws = nn_cuda_upload_floats(NULL, gws);
    const float *bb = bias ? b : NULL, *d_bb = bias ? d_b : NULL;
    /* inner (summed) dimension of each product, for the tolerance */
    const long kk = (long)g->KH * g->KW;
    const long inner_fwd = (long)g->IC * kk;
    const long inner_din = (long)g->OC * kk, inner_dw = (long)B * (transposed ? g->H * g->W : g->OH * g->OW);
    char name[200];
    const char *kind = transposed ? "conv_transpose2d" : "conv2d";

    if (transposed) {
        nn_conv_transpose2d_forward(out, in, W, bb, B, g, ws, cws);
        nn_conv_transpose2d_forward_cuda(d_out, d_in, d_W, d_bb, B, g, d_ws, gws);
    } else {
        nn_conv2d_forward(out, in, W, bb, B, g, ws, cws);
        nn_conv2d_forward_cuda(d_out, d_in, d_W, d_bb, B, g, d_ws, gws);
    }
    snprintf(name, sizeof name, "%s %s forward B %d bias %d ws_mode %d", kind, label, B, bias, ws_mode);
    cmpd(name, d_out, out, nout, gemm_atol(inner_fwd), GEMM_RTOL);

    float *gdin = null_grads ? NULL : din, *gdb = null_grads ? NULL : db;
    float *d_gdin = null_grads ? NULL : d_din, *d_gdb = null_grads ? NULL : d_db;
    if (transposed) {
        nn_conv_transpose2d_backward(gdin, dW, gdb, dout, in, W, B, g, ws, cws);
        nn_conv_transpose2d_backward_cuda(d_gdin, d_dW, d_gdb, d_dout, d_in, d_W, B, g, d_ws, gws);
    } else {
        nn_conv2d_backward(gdin, dW, gdb, dout, in, W, B, g, ws, cws);
        nn_conv2d_backward_cuda(d_gdin, d_dW, d_gdb, d_dout, d_in, d_W, B, g, d_ws, gws);
    }
    const char *nl = null_grads ? " (din, db NULL)" : "";
    snprintf(name, sizeof name, "%s %s backward din (+=) B %d ws_mode %d%s", kind, label, B, ws_mode, nl);
    cmpd(name, d_din, din, nin, gemm_atol(inner_din), GEMM_RTOL);
    snprintf(name, sizeof name, "%s %s backward dW (+=) B %d ws_mode %d%s", kind, label, B, ws_mode, nl);
    cmpd(name, d_dW, dW, nw, gemm_atol(inner_dw), GEMM_RTOL);
    snprintf(name, sizeof name, "%s %s backward db (+=) B %d%s", kind, label, B, nl);
    cmpd(name, d_db, db, g->OC, 1e-5 * sqrt((double)B * g->OH * g->OW), 1e-5);

    if (!null_grads && ws_mode == 3) {
        /* determinism: a second identical backward from the same start gives the same bits */
        nn_cuda_memcpy_h2d(d_dW, dW, nw * sizeof *dW);   /* any start value; both runs use it */
        nn_cuda_memcpy_h2d(d_din, din, nin * sizeof *din);
        if (transposed) nn_conv_transpose2d_backward_cuda(d_din, d_dW, NULL, d_dout, d_in, d_W, B, g, d_ws, gws);
        else nn_conv2d_backward_cuda(d_din, d_dW, NULL, d_dout, d_in, d_W, B, g, d_ws, gws);
        float *a1 = nn_cuda_download_floats(d_dW, nw), *a1i = nn_cuda_download_floats(d_din, nin);
        nn_cuda_memcpy_h2d(d_dW, dW, nw * sizeof *dW);
        nn_cuda_memcpy_h2d(d_din, din, nin * sizeof *din);
        if (transposed) nn_conv_transpose2d_backward_cuda(d_din, d_dW, NULL, d_dout, d_in, d_W, B, g, d_ws, gws);
        else nn_conv2d_backward_cuda(d_din, d_dW, NULL, d_dout, d_in, d_W, B, g, d_ws, gws);
        float *a2 = nn_cuda_download_floats(d_dW, nw), *a2i = nn_cuda_download_floats(d_din, nin);
        snprintf(name, sizeof name, "%s %s backward is bitwise repeatable", kind, label);
        CHECK(memcmp(a1, a2, nw * sizeof *a1) == 0 && memcmp(a1i, a2i, nin * sizeof *a1i) == 0, name);
        free(a1), free(a1i), free(a2), free(a2i);
    }

    free(in), free(W), free(b), free(dout), free(din), free(dW), free(db), free(out), free(ws);
    nn_cuda_free(d_in), nn_cuda_free(d_W), nn_cuda_free(d_b), nn_cuda_free(d_dout), nn_cuda_free(d_din);
    nn_cuda_free(d_dW), nn_cuda_free(d_db), nn_cuda_free(d_out), nn_cuda_free(d_ws);
}

static void test_conv(void)
{
    /* odd, asymmetric conv2d: K 3x2, stride 2x1, padding 1x0 */
    nn_conv_geom a = {3, 5, 11, 9, 3, 2, 2, 1, 1, 0, 0, 0, 0, 0};
    nn_conv2d_geom_finish(&a);
    for (int m = 0; m < 4; m++) test_conv_case("3->5 11x9 k3x2 s2x1 p1x0", &a, 0, 3, 1, m, 0);
    test_conv_case("3->5 11x9 k3x2 s2x1 p1x0", &a, 0, 3, 0, 2, 1);
    nn_conv_geom pw = nn_conv2d_geom(7, 4, 5, 6, 1, 1, 1, 0);   /* 1x1: the image is its own column matrix */
    test_conv_case("1x1 7->4 5x6", &pw, 0, 2, 1, 0, 0);
    test_conv_case("1x1 7->4 5x6", &pw, 0, 2, 1, 3, 0);

    /* odd transposed conv: output_padding 1, padding 1; and asymmetric strides */
    nn_conv_geom t = nn_conv_transpose2d_geom(4, 3, 5, 6, 3, 3, 2, 1, 1);
    for (int m = 0; m < 4; m++) test_conv_case("4->3 5x6 k3 s2 p1 op1", &t, 1, 3, 1, m, 0);
    test_conv_case("4->3 5x6 k3 s2 p1 op1", &t, 1, 3, 0, 2, 1);
    nn_conv_geom t2 = {2, 5, 4, 7, 2, 3, 3, 2, 0, 1, 2, 1, 0, 0};
    nn_conv_transpose2d_geom_finish(&t2);
    test_conv_case("2->5 4x7 k2x3 s3x2 p0x1 op2x1", &t2, 1, 2, 1, 1, 0);

    /* the ScoreNet (REFERENCE.md "Score network") at batch 8; convs without bias, tconv1 with */
    const int Bn = 8;
    nn_conv_geom c1 = nn_conv2d_geom(1, 32, 28, 28, 3, 3, 1, 0), c2 = nn_conv2d_geom(32, 64, 26, 26, 3, 3, 2, 0);
    nn_conv_geom c3 = nn_conv2d_geom(64, 128, 12, 12, 3, 3, 2, 0), c4 = nn_conv2d_geom(128, 256, 5, 5, 3, 3, 2, 0);
    test_conv_case("ScoreNet conv1 1->32 28->26", &c1, 0, Bn, 0, 2, 0);
    test_conv_case("ScoreNet conv1 1->32 28->26", &c1, 0, Bn, 0, 3, 0);
    test_conv_case("ScoreNet conv2 32->64 26->12", &c2, 0, Bn, 0, 3, 0);
    test_conv_case("ScoreNet conv3 64->128 12->5", &c3, 0, Bn, 0, 2, 0);
    test_conv_case("ScoreNet conv4 128->256 5->2", &c4, 0, Bn, 0, 3, 0);
    nn_conv_geom t4 = nn_conv_transpose2d_geom(256, 128, 2, 2, 3, 3, 2, 0, 0);
    nn_conv_geom t3 = nn_conv_transpose2d_geom(256, 64, 5, 5, 3, 3, 2, 0, 1);
    nn_conv_geom tt2 = nn_conv_transpose2d_geom(128, 32, 12, 12, 3, 3, 2, 0, 1);
    nn_conv_geom t1 = nn_conv_transpose2d_geom(64, 1, 26, 26, 3, 3, 1, 0, 0);
    test_conv_case("ScoreNet tconv4 256->128 2->5", &t4, 1, Bn, 0, 3, 0);
    test_conv_case("ScoreNet tconv3 256->64 5->12 op1", &t3, 1, Bn, 0, 2, 0);
    test_conv_case("ScoreNet tconv2 128->32 12->26 op1", &tt2, 1, Bn, 0, 3, 0);
    test_conv_case("ScoreNet tconv1 64->1 26->28 bias", &t1, 1, Bn, 1, 0, 0);
    test_conv_case("ScoreNet tconv1 64->1 26->28 bias", &t1, 1, Bn, 1, 3, 0);
}

/* ---------------------------------------------------------------- GroupNorm */

static void test_gn_case(const char *label, int B, int C, int HW, int G, int affine, int inplace)
{
    const size_t n = (size_t)B * C * HW;
    const float eps = 1e-5f;
    float *in = hrand(n, 2.0, 4.0);   /* mean ~3: the two-pass variance must not cancel */
    for (size_t i = 0; i < n; i += 7) in[i] *= -1.5f;
    float *gamma = hrand(C, 0.5, 1.5), *beta = hrand(C, -1, 1), *dout = hrand(n, -1, 1);
    float *din = hrand(n, -1, 1), *dg = hrand(C, -1, 1), *dbt = hrand(C, -1, 1);
    float *out = mem_new(float, n), *mean = mem_new(float, (size_t)B * G), *rstd = mem_new(float, (size_t)B * G);
    float *d_in = nn_cuda_upload_floats(in, n), *d_gamma = nn_cuda_upload_floats(gamma, C), *d_beta = nn_cuda_upload_floats(beta, C), *d_dout = nn_cuda_upload_floats(dout, n);
    float *d_din = nn_cuda_upload_floats(din, n), *d_dg = nn_cuda_upload_floats(dg, C), *d_db = nn_cuda_upload_floats(dbt, C), *d_out = inplace ? NULL : nn_cuda_upload_floats(NULL, n);
    float *d_mean = nn_cuda_upload_floats(NULL, (size_t)B * G), *d_rstd = nn_cuda_upload_floats(NULL, (size_t)B * G);
    const float *gm = affine ? gamma : NULL, *bt = affine ? beta : NULL;
    const float *d_gm = affine ? d_gamma : NULL, *d_bt = affine ? d_beta : NULL;
    char name[200];

    nn_groupnorm_forward(out, mean, rstd, in, gm, bt, B, C, HW, G, eps);
    if (inplace) {
        /* out == in on the GPU: the backward then needs the input again, so keep a second copy */
        float *d_x = nn_cuda_upload_floats(in, n);
        nn_groupnorm_forward_cuda(d_x, d_mean, d_rstd, d_x, d_gm, d_bt, B, C, HW, G, eps);
        snprintf(name, sizeof name, "groupnorm %s forward IN PLACE", label);
        cmpd(name, d_x, out, n, 1e-5, 1e-5);
        nn_cuda_free(d_x);
    } else {
        nn_groupnorm_forward_cuda(d_out, d_mean, d_rstd, d_in, d_gm, d_bt, B, C, HW, G, eps);
        snprintf(name, sizeof name, "groupnorm %s forward B %d C %d HW %d G %d affine %d", label, B, C, HW, G, affine);
        cmpd(name, d_out, out, n, 1e-5, 1e-5);
    }
    snprintf(name, sizeof name, "groupnorm %s mean", label);
    cmpd(name, d_mean, mean, (size_t)B * G, 1e-6, 1e-5);
    snprintf(name, sizeof name, "groupnorm %s rstd", label);
    cmpd(name, d_rstd, rstd, (size_t)B * G, 1e-6, 1e-5);

    /* backward from the CPU's saved statistics on both sides (isolates the backward kernels) */
    nn_cuda_memcpy_h2d(d_mean, mean, (size_t)B * G * sizeof *mean);
    nn_cuda_memcpy_h2d(d_rstd, rstd, (size_t)B * G * sizeof *rstd);
    nn_groupnorm_backward(din, affine ? dg : NULL, affine ? dbt : NULL, dout, in, mean, rstd, gm, B, C, HW, G);
    nn_groupnorm_backward_cuda(d_din, affine ? d_dg : NULL, affine ? d_db : NULL, d_dout, d_in, d_mean, d_rstd, d_gm,
                               B, C, HW, G);
    snprintf(name, sizeof name, "groupnorm %s backward din (+=)", label);
    cmpd(name, d_din, din, n, 2e-5, 1e-4);
    const double at = 1e-5 * sqrt((double)B * HW);
    snprintf(name, sizeof name, "groupnorm %s backward dgamma (+=)%s", label, affine ? "" : " (NULL)");
    cmpd(name, d_dg, dg, C, at, 1e-5);
    snprintf(name, sizeof name, "groupnorm %s backward dbeta (+=)%s", label, affine ? "" : " (NULL)");
    cmpd(name, d_db, dbt, C, at, 1e-5);

    /* determinism of the reductions */
    float *r1 = nn_cuda_download_floats(d_dg, C);
    nn_cuda_memcpy_h2d(d_dg, dg, C * sizeof *dg);
    nn_groupnorm_backward_cuda(NULL, d_dg, NULL, d_dout, d_in, d_mean, d_rstd, d_gm, B, C, HW, G);
    float *r2 = nn_cuda_download_floats(d_dg, C);
    nn_cuda_memcpy_h2d(d_dg, dg, C * sizeof *dg);
    nn_groupnorm_backward_cuda(NULL, d_dg, NULL, d_dout, d_in, d_mean, d_rstd, d_gm, B, C, HW, G);
    float *r3 = nn_cuda_download_floats(d_dg, C);
    snprintf(name, sizeof name, "groupnorm %s dgamma bitwise repeatable", label);
    CHECK(memcmp(r2, r3, C * sizeof *r2) == 0, name);
    free(r1), free(r2), free(r3);

    free(in), free(gamma), free(beta), free(dout), free(din), free(dg), free(dbt), free(out), free(mean), free(rstd);
    nn_cuda_free(d_in), nn_cuda_free(d_gamma), nn_cuda_free(d_beta), nn_cuda_free(d_dout), nn_cuda_free(d_din);
    nn_cuda_free(d_dg), nn_cuda_free(d_db), nn_cuda_free(d_out), nn_cuda_free(d_mean), nn_cuda_free(d_rstd);
}

static void test_groupnorm(void)
{
    test_gn_case("odd", 3, 12, 35, 4, 1, 0);
    test_gn_case("odd no-affine", 3, 12, 35, 4, 0, 0);
    test_gn_case("odd", 3, 12, 35, 4, 1, 1);
    test_gn_case("one group (LayerNorm)", 5, 33, 1, 1, 1, 0);
    test_gn_case("one element per group", 4, 8, 1, 8, 1, 0);
    test_gn_case("ScoreNet gnorm1 GN(4, 32) 26x26", 8, 32, 676, 4, 1, 0);
    test_gn_case("ScoreNet gnorm2 GN(32, 64) 12x12", 8, 64, 144, 32, 1, 0);
    test_gn_case("ScoreNet gnorm3 GN(32, 128) 5x5", 8, 128, 25, 32, 1, 0);
    test_gn_case("ScoreNet gnorm4 GN(32, 256) 2x2", 8, 256, 4, 32, 1, 0);
    test_gn_case("ScoreNet tgnorm2 GN(32, 32) 26x26", 8, 32, 676, 32, 1, 1);
}

/* ---------------------------------------------------------------- channel add, concat */

static void test_chan_add_case(int B, int C, int HW, int shared)
{
    const int vs = shared ? 0 : C;
    const size_t n = (size_t)B * C * HW, nv = shared ? (size_t)C : (size_t)B * C;
    float *x = hrand(n, -1, 1), *v = hrand(nv, -1, 1), *dv = hrand(nv, -1, 1), *dout = hrand(n, -1, 1);
    float *d_x = nn_cuda_upload_floats(x, n), *d_v = nn_cuda_upload_floats(v, nv), *d_dv = nn_cuda_upload_floats(dv, nv), *d_dout = nn_cuda_upload_floats(dout, n);
    char name[160];
    nn_chan_add_forward(x, v, B, C, HW, vs);
    nn_chan_add_forward_cuda(d_x, d_v, B, C, HW, vs);
    snprintf(name, sizeof name, "chan_add forward B %d C %d HW %d v_bstride %d", B, C, HW, vs);
    cmpd(name, d_x, x, n, 0, 0);
    nn_chan_add_backward(dv, dout, B, C, HW, vs);
    nn_chan_add_backward_cuda(d_dv, d_dout, B, C, HW, vs);
    snprintf(name, sizeof name, "chan_add backward dv (+=) B %d C %d HW %d v_bstride %d", B, C, HW, vs);
    cmpd(name, d_dv, dv, nv, 1e-5 * sqrt((double)HW * (shared ? B : 1)), 1e-5);
    nn_chan_add_backward_cuda(NULL, d_dout, B, C, HW, vs);   /* NULL: nothing (must not crash) */
    free(x), free(v), free(dv), free(dout);
    nn_cuda_free(d_x), nn_cuda_free(d_v), nn_cuda_free(d_dv), nn_cuda_free(d_dout);
}

/* per-row scaling: the CPU reference is the loop dst = v_i src + beta dst */
static void test_rowscale_case(int n, int d, float beta)
{
    const size_t len = (size_t)n * d;
    float *v = hrand((size_t)n, -2, 2), *src = hrand(len, -1, 1), *dst = hrand(len, -1, 1);
    float *d_v = nn_cuda_upload_floats(v, (size_t)n), *d_src = nn_cuda_upload_floats(src, len), *d_dst = nn_cuda_upload_floats(beta == 0.0f ? NULL : dst, len);
    if (beta == 0.0f) nn_cuda_memset(d_dst, 0xff, len * sizeof(float));   /* NaN: beta 0 must not read dst */
    for (size_t e = 0; e < len; e++) dst[e] = v[e / (size_t)d] * src[e] + (beta == 0.0f ? 0.0f : beta * dst[e]);
    nn_rowscale_cuda(d_dst, d_v, d_src, n, d, beta);
    char name[128];
    snprintf(name, sizeof name, "rowscale n %d d %d beta %g", n, d, beta);
    cmpd(name, d_dst, dst, len, 1e-6, 1e-6);
    free(v), free(src), free(dst);
    nn_cuda_free(d_v), nn_cuda_free(d_src), nn_cuda_free(d_dst);
}

/* nn_rowdiv_cuda / nn_scale_cuda against nn_rowdiv / nn_scale: IEEE division and multiplication, bitwise equal */
static void test_rowdiv_scale_case(int n, int d)
{
    const size_t len = (size_t)n * d;
    float *v = hrand((size_t)n, 0.5, 2), *src = hrand(len, -1, 1), *dst = mem_new(float, len);
    float *d_v = nn_cuda_upload_floats(v, (size_t)n), *d_src = nn_cuda_upload_floats(src, len);
    float *d_dst = nn_cuda_upload_floats(NULL, len);
    nn_rowdiv(dst, v, src, n, d);
    nn_rowdiv_cuda(d_dst, d_v, d_src, n, d);
    char name[128];
    snprintf(name, sizeof name, "rowdiv n %d d %d (bitwise)", n, d);
    cmpd(name, d_dst, dst, len, 0, 0);
    nn_scale(dst, 0.375f, len);
    nn_scale_cuda(d_dst, 0.375f, len);
    snprintf(name, sizeof name, "scale n %zu (bitwise)", len);
    cmpd(name, d_dst, dst, len, 0, 0);
    free(v), free(src), free(dst);
    nn_cuda_free(d_v), nn_cuda_free(d_src), nn_cuda_free(d_dst);
}

static void test_concat_case(int B, int C1, int C2, int HW, int null_a)
{
    const size_t na = (size_t)B * C1 * HW, nb = (size_t)B * C2 * HW, no = na + nb;
    float *a = hrand(na, -1, 1), *b = hrand(nb, -1, 1), *out = mem_new(float, no), *dout = hrand(no, -1, 1);
    float *da = hrand(na, -1, 1), *db = hrand(nb, -1, 1);
    float *d_a = nn_cuda_upload_floats(a, na), *d_b = nn_cuda_upload_floats(b, nb), *d_out = nn_cuda_upload_floats(NULL, no), *d_dout = nn_cuda_upload_floats(dout, no);
    float *d_da = nn_cuda_upload_floats(da, na), *d_db = nn_cuda_upload_floats(db, nb);
    char name[160];
    nn_concat_forward(out, a, b, B, C1, C2, HW);
    nn_concat_forward_cuda(d_out, d_a, d_b, B, C1, C2, HW);
    snprintf(name, sizeof name, "concat forward B %d C1 %d C2 %d HW %d", B, C1, C2, HW);
    cmpd(name, d_out, out, no, 0, 0);
    nn_concat_backward(null_a ? NULL : da, db, dout, B, C1, C2, HW);
    nn_concat_backward_cuda(null_a ? NULL : d_da, d_db, d_dout, B, C1, C2, HW);
    snprintf(name, sizeof name, "concat backward da (+=)%s", null_a ? " (NULL)" : "");
    cmpd(name, d_da, da, na, 0, 0);
    snprintf(name, sizeof name, "concat backward db (+=) B %d C1 %d C2 %d HW %d", B, C1, C2, HW);
    cmpd(name, d_db, db, nb, 0, 0);
    free(a), free(b), free(out), free(dout), free(da), free(db);
    nn_cuda_free(d_a), nn_cuda_free(d_b), nn_cuda_free(d_out), nn_cuda_free(d_dout), nn_cuda_free(d_da);
    nn_cuda_free(d_db);
}

static void test_tensor_ops(void)
{
    test_chan_add_case(3, 5, 7, 0);
    test_chan_add_case(3, 5, 7, 1);
    test_chan_add_case(8, 32, 676, 0);   /* ScoreNet: Dense(embed -> 32) added to conv1's output */
    test_chan_add_case(8, 256, 4, 0);
    test_chan_add_case(8, 1, 784, 1);    /* tconv1's bias as a shared per-channel add */
    test_concat_case(3, 5, 7, 11, 0);
    test_concat_case(3, 5, 7, 11, 1);
    test_concat_case(8, 128, 128, 25, 0);   /* ScoreNet cat(h, h3) before tconv3 */
    test_concat_case(8, 32, 32, 676, 0);    /* cat(h, h1) before tconv1 */
    test_rowscale_case(7, 13, 0.0f);
    test_rowscale_case(300, 784, 0.0f);     /* ScoreNet: score = out / std(t), one factor per image */
    test_rowscale_case(300, 784, 1.0f);     /* x_t = alpha x0 + std z: the second term accumulates */
    test_rowdiv_scale_case(7, 13);
    test_rowdiv_scale_case(300, 784);       /* ScoreNet: score = out / std(t) on every backend */
}

/* ---------------------------------------------------------------- Adam, EMA, DSM loss */

static void test_optim(void)
{
    const size_t n = 100003;
    float *p = hrand(n, -1, 1), *m = mem_new(float, n), *v = mem_new(float, n);
    float *d_p = nn_cuda_upload_floats(p, n), *d_m = nn_cuda_upload_floats(NULL, n), *d_v = nn_cuda_upload_floats(NULL, n), *d_g = nn_cuda_upload_floats(NULL, n);
    nn_adam a = nn_adam_default(), ag = nn_adam_default();
    for (int s = 0; s < 3; s++) {
        float *g = hrand(n, -1e-2, 1e-2);
        nn_cuda_memcpy_h2d(d_g, g, n * sizeof *g);
        nn_adam_step(&a, 1e-3, p, g, m, v, n);
        nn_adam_step_cuda(&ag, 1e-3, d_p, d_g, d_m, d_v, n);
        free(g);
    }
    CHECK(a.step == 3 && ag.step == 3, "adam: step counter advanced on the host struct");
    cmpd("adam 3 steps: parameters", d_p, p, n, 1e-8, 1e-6);
    cmpd("adam 3 steps: first moment", d_m, m, n, 1e-10, 1e-6);
    cmpd("adam 3 steps: second moment", d_v, v, n, 1e-14, 1e-6);

    float *sh = hcopy(p, n), *d_sh = nn_cuda_upload_floats(p, n);
    nn_ema e = nn_ema_init(0.999), eg = nn_ema_init(0.999);
    int same_decay = 1;
    for (int s = 0; s < 3; s++) {
        for (size_t i = 0; i < n; i++) p[i] += 0.01f * (float)(rng_uniform(R) - 0.5);
        nn_cuda_memcpy_h2d(d_p, p, n * sizeof *p);
        same_decay &= nn_ema_update(&e, sh, p, n) == nn_ema_update_cuda(&eg, d_sh, d_p, n);
    }
    CHECK(same_decay && eg.num_updates == 3, "ema: same decay sequence, counter advanced");
    cmpd("ema 3 updates: shadow", d_sh, sh, n, 1e-7, 1e-6);

    free(p), free(m), free(v), free(sh);
    nn_cuda_free(d_p), nn_cuda_free(d_m), nn_cuda_free(d_v), nn_cuda_free(d_g), nn_cuda_free(d_sh);
}

static void test_dsm(void)
{
    const size_t ns[2] = {37, 8}, dim = 784;
    for (int k = 0; k < 2; k++) {
        const size_t n = ns[k], N = n * dim;
        float *score = hrand(N, -3, 3), *z = mem_new(float, N), *std = hrand(n, 0.01, 5.0), *ds = mem_new(float, N);
        rng_gaussian_fill(R, z, N);
        float *d_score = nn_cuda_upload_floats(score, N), *d_z = nn_cuda_upload_floats(z, N), *d_std = nn_cuda_upload_floats(std, n), *d_ds = nn_cuda_upload_floats(NULL, N);
        const double L = dsm_loss(n, dim, score, std, z, ds);
        const double Lg = nn_dsm_loss_cuda(n, dim, d_score, d_std, d_z, d_ds);
        const double Lg2 = nn_dsm_loss_cuda(n, dim, d_score, d_std, d_z, NULL);
        char name[120];
        snprintf(name, sizeof name, "dsm loss n %zu dim %zu", n, dim);
        CHECK_CLOSE(Lg, L, 0, 1e-10, name);
        snprintf(name, sizeof name, "dsm loss n %zu without gradient, bitwise repeatable", n);
        CHECK(Lg2 == Lg, name);
        snprintf(name, sizeof name, "dsm gradient n %zu", n);
        cmpd(name, d_ds, ds, N, 1e-9, 1e-6);
        free(score), free(z), free(std), free(ds);
        nn_cuda_free(d_score), nn_cuda_free(d_z), nn_cuda_free(d_std), nn_cuda_free(d_ds);
    }
}

/* ---------------------------------------------------------------- the digit classifier's layers
 * (cuda_classify.cu): max-pool, ReLU mask, Philox dropout, cross-entropy. Pool argmax / out, the dropout mask and
 * output, and the pool / dropout backward are the same float operations in the same order: exact. Cross-entropy:
 * exp / log in double on both sides (libm vs CUDA, <= 2 ulp): logp rtol 1e-6, atol 1e-6; loss rtol 1e-9;
 * backward rtol 1e-5, atol 1e-7. */

static void cmpi(const char *name, const int32_t *d, const int32_t *cpu, size_t n)
{
    int32_t *g = mem_new(int32_t, n);
    nn_cuda_memcpy_d2h(g, d, n * sizeof *g);
    size_t bad = 0, first = 0;
    for (size_t i = n; i-- > 0;)
        if (g[i] != cpu[i]) bad++, first = i;
    char detail[160];
    snprintf(detail, sizeof detail, "%zu of %zu differ; first [%zu] gpu %d cpu %d", bad, n, first,
             bad ? g[first] : 0, bad ? cpu[first] : 0);
    test_report(bad == 0, name, detail);
    free(g);
}

static void test_pool_case(const char *label, int B, const nn_pool_geom *g)
{
    const size_t ni = (size_t)B * g->C * g->H * g->W, no = (size_t)B * g->C * g->OH * g->OW;
    float *x = hrand(ni, -1, 1), *out = mem_new(float, no), *dy = hrand(no, -1, 1), *dx = hrand(ni, -1, 1);
    for (size_t i = 0; i < ni; i += 97) x[i] = x[(i + 1) % ni];   /* ties: the first maximum must win */
    x[5] = NAN;                                                     /* a NaN wins its windows */
    int32_t *idx = mem_new(int32_t, no);
    float *d_x = nn_cuda_upload_floats(x, ni), *d_out = nn_cuda_upload_floats(NULL, no);
    float *d_dy = nn_cuda_upload_floats(dy, no), *d_dx = nn_cuda_upload_floats(dx, ni);
    int32_t *d_idx = nn_cuda_malloc(no * sizeof(int32_t));
    nn_maxpool2d_forward(out, idx, x, B, g);
    nn_maxpool2d_forward_cuda(d_out, d_idx, d_x, B, g);
    char name[160];
    snprintf(name, sizeof name, "maxpool forward %s: out", label);
    cmpd(name, d_out, out, no, 0, 0);
    snprintf(name, sizeof name, "maxpool forward %s: argmax", label);
    cmpi(name, d_idx, idx, no);
    nn_maxpool2d_backward(dx, dy, idx, B, g);
    nn_maxpool2d_backward_cuda(d_dx, d_dy, d_idx, B, g);
    snprintf(name, sizeof name, "maxpool backward %s (+=, overlapping windows summed in output order)", label);
    cmpd(name, d_dx, dx, ni, 0, 0);
    free(x), free(out), free(dy), free(dx), free(idx);
    nn_cuda_free(d_x), nn_cuda_free(d_out), nn_cuda_free(d_dy), nn_cuda_free(d_dx), nn_cuda_free(d_idx);
}

static void test_classify_layers(void)
{
    nn_pool_geom g1 = nn_maxpool2d_geom(32, 28, 28, 2, 2, 0);   /* digitnet features.2 */
    nn_pool_geom g2 = nn_maxpool2d_geom(5, 13, 11, 3, 2, 1);    /* overlapping, padded, odd */
    test_pool_case("2x2/2 on 32x28x28, B 8", 8, &g1);
    test_pool_case("3x3/2 pad 1 on 5x13x11, B 3", 3, &g2);

    /* ReLU forward keeps NaN and -0 (torch.relu); the mask from the output */
    const size_t n = 100003;
    float *x = hrand(n, -2, 2), *g = hrand(n, -1, 1), *y = mem_new(float, n);
    x[0] = NAN, x[1] = -0.0f, x[2] = 0.0f;
    float *d_x = nn_cuda_upload_floats(x, n), *d_g = nn_cuda_upload_floats(g, n), *d_y = nn_cuda_upload_floats(NULL, n);
    nn_relu_forward(y, x, n);
    nn_relu_forward_cuda(d_y, d_x, n);
    cmpd("relu forward, NaN and -0 kept", d_y, y, n, 0, 0);
    nn_relu_mask(g, y, n);
    nn_relu_mask_cuda(d_g, d_y, n);
    cmpd("relu mask from the output", d_g, g, n, 0, 0);

    /* dropout: the Philox mask bit for bit, inner 1 and 9, at an offset */
    const uint64_t seed = 0x1234abcdULL, stream = philox_stream(PHILOX_DROPOUT, 0);
    const size_t units[2] = {n, n / 9}, inner[2] = {1, 9};
    for (int k = 0; k < 2; k++) {
        const size_t U = units[k], len = U * inner[k];
        float *mask = mem_new(float, U), *d_mask = nn_cuda_upload_floats(NULL, U);
        float *din = hrand(len, -1, 1), *d_din = nn_cuda_upload_floats(din, len);
        nn_dropout_forward(y, mask, x, U, inner[k], 0.3f, 1, seed, stream, 777);
        nn_dropout_forward_cuda(d_y, d_mask, d_x, U, inner[k], 0.3f, 1, seed, stream, 777);
        char name[128];
        snprintf(name, sizeof name, "dropout mask (p 0.3, inner %zu, offset 777)", inner[k]);
        cmpd(name, d_mask, mask, U, 0, 0);
        snprintf(name, sizeof name, "dropout forward (inner %zu)", inner[k]);
        cmpd(name, d_y, y, len, 0, 0);
        nn_dropout_backward(din, g, mask, U, inner[k], 1);
        nn_dropout_backward_cuda(d_din, d_g, d_mask, U, inner[k], 1);
        snprintf(name, sizeof name, "dropout backward (+=, inner %zu)", inner[k]);
        cmpd(name, d_din, din, len, 0, 0);
        nn_dropout_backward(din, g, NULL, U, inner[k], 0);
        nn_dropout_backward_cuda(d_din, d_g, NULL, U, inner[k], 0);
        snprintf(name, sizeof name, "dropout eval backward (+=, inner %zu)", inner[k]);
        cmpd(name, d_din, din, len, 0, 0);
        free(mask), free(din);
        nn_cuda_free(d_mask), nn_cuda_free(d_din);
    }
    free(x), free(g), free(y);
    nn_cuda_free(d_x), nn_cuda_free(d_g), nn_cuda_free(d_y);

    /* cross-entropy, digitnet's K = 10 and an odd batch */
    const int B = 37, K = 10;
    float *lg = hrand((size_t)B * K, -8, 8), *lp = mem_new(float, (size_t)B * K), *dl = hrand((size_t)B * K, -1, 1);
    int *lab = mem_new(int, B);
    for (int b = 0; b < B; b++) lab[b] = (b * 7) % K;
    float *d_lg = nn_cuda_upload_floats(lg, (size_t)B * K), *d_lp = nn_cuda_upload_floats(NULL, (size_t)B * K);
    float *d_dl = nn_cuda_upload_floats(dl, (size_t)B * K);
    int *d_lab = nn_cuda_malloc((size_t)B * sizeof(int));
    nn_cuda_memcpy_h2d(d_lab, lab, (size_t)B * sizeof(int));
    const double L = nn_cross_entropy_forward(lp, lg, lab, B, K);
    const double Lg = nn_cross_entropy_forward_cuda(d_lp, d_lg, d_lab, B, K);
    CHECK_CLOSE(Lg, L, 0, 1e-9, "cross-entropy loss (B 37, K 10)");
    CHECK(nn_cross_entropy_forward_cuda(d_lp, d_lg, d_lab, B, K) == Lg, "cross-entropy loss bitwise repeatable");
    cmpd("cross-entropy log-softmax", d_lp, lp, (size_t)B * K, 1e-6, 1e-6);
    nn_cross_entropy_backward(dl, 0.75f, lp, lab, B, K);
    nn_cross_entropy_backward_cuda(d_dl, 0.75f, d_lp, d_lab, B, K);
    cmpd("cross-entropy backward (+=, dloss 0.75)", d_dl, dl, (size_t)B * K, 1e-7, 1e-5);
    free(lg), free(lp), free(dl), free(lab);
    nn_cuda_free(d_lg), nn_cuda_free(d_lp), nn_cuda_free(d_dl), nn_cuda_free(d_lab);

    /* the cpu nn_rowscale against the cuda twin (mlp1d's c_in x): the same float product */
    float *v = hrand(300, -2, 2), *src = hrand(300 * 3, -1, 1), *dst = mem_new(float, 300 * 3);
    float *d_v = nn_cuda_upload_floats(v, 300), *d_src = nn_cuda_upload_floats(src, 900), *d_dst = nn_cuda_upload_floats(NULL, 900);
    nn_rowscale(dst, v, src, 300, 3, 0.0f);
    nn_rowscale_cuda(d_dst, d_v, d_src, 300, 3, 0.0f);
    cmpd("rowscale: cpu nn_rowscale vs cuda", d_dst, dst, 900, 0, 0);
    free(v), free(src), free(dst);
    nn_cuda_free(d_v), nn_cuda_free(d_src), nn_cuda_free(d_dst);
}
#endif /* SF_HAVE_CUDA */

int main(void)
{
    char why[256] = "";
    if (device_cuda_count(why, sizeof why) == 0) {
        test_cuda_unavailable("test_cuda_layers", why);
        return test_finish();
    }
#ifdef SF_HAVE_CUDA
    char desc[300];
    device_describe(DEVICE_CUDA, desc, sizeof desc);
    fprintf(stderr, "test_cuda_layers: %s\n", desc);
    R = rng_alloc(20240611, 7);
    nn_cuda_init();
    test_memory();
    test_gemm();
    test_linear();
    test_act();
    test_fourier();
    test_conv();
    test_groupnorm();
    test_tensor_ops();
    test_optim();
    test_dsm();
    test_classify_layers();
    nn_cuda_sync();
    nn_cuda_shutdown();
    rng_free(R);
#endif
    return test_finish();
}
