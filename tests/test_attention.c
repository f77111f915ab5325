/* test_attention: the tiled online-softmax attention (common/nn/attention) against the naive double-precision
 * reference, on shapes that leave partial query and key blocks (Tk = 77 as the CLIP context, Tq not a multiple of
 * NN_ATTN_QB), a single key, large scores (exp would overflow without the running max), strided token matrices
 * (heads side by side as the UNet stores them), and the same bits on 1 and 2 threads. Also the vectorised exp and
 * exact-GELU helpers of nn/act used by the SDXL networks. */
#include "act.h"
#include "attention.h"
#include "tensor.h"
#include "test.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs = 12345;
static double urand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) * 0x1.0p-53;
}

static void fill(float *x, size_t n, double amp)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(amp * (2 * urand() - 1));
}

/* tol: max |diff| / max(1, max |ref|). 2e-6 for scores of order 1; scores of order 1e3 carry an fp32 rounding of
 * ~1e-4 (ulp(2048) = 2.4e-4) in any fp32 implementation, so that case checks the online max (no overflow, no NaN)
 * at 3e-4. */
static void case_(int B, int heads, int Tq, int Tk, int dh, double amp, double tol, const char *name)
{
    const int C = heads * dh, ld = C + 3;   /* a row stride wider than the heads: strides are honoured */
    float *q = malloc(sizeof(float) * B * Tq * ld), *k = malloc(sizeof(float) * B * Tk * ld);
    float *v = malloc(sizeof(float) * B * Tk * ld), *o = malloc(sizeof(float) * B * Tq * ld);
    float *r = malloc(sizeof(float) * B * Tq * ld), *o1 = malloc(sizeof(float) * B * Tq * ld);
    fill(q, (size_t)B * Tq * ld, amp);
    fill(k, (size_t)B * Tk * ld, amp);
    fill(v, (size_t)B * Tk * ld, 1.0);
    for (size_t i = 0; i < (size_t)B * Tq * ld; i++) o[i] = o1[i] = r[i] = -7.0f;
    const float scale = 1.0f / sqrtf((float)dh);
    size_t wsn = nn_attention_ws_floats(dh, omp_get_max_threads());
    float *ws = malloc(wsn * sizeof(float));
    nn_attention_forward(o, ld, q, ld, k, ld, v, ld, B, heads, Tq, Tk, dh, scale, ws, wsn);
    nn_attention_ref(r, ld, q, ld, k, ld, v, ld, B, heads, Tq, Tk, dh, scale);
    double md = 0, mr = 0;
    int pad_ok = 1;
    for (int i = 0; i < B * Tq; i++)
        for (int c = 0; c < ld; c++) {
            const size_t at = (size_t)i * ld + c;
            if (c >= C) pad_ok &= o[at] == -7.0f;
            else {
                md = fmax(md, fabs(o[at] - r[at]));
                mr = fmax(mr, fabs(r[at]));
            }
        }
    char nm[256], d[256];
    snprintf(nm, sizeof nm, "attention %s (B %d, heads %d, Tq %d, Tk %d, dh %d): tiled == naive", name, B, heads, Tq,
             Tk, dh);
    snprintf(d, sizeof d, "max |diff| %.3g, max |ref| %.3g", md, mr);
    test_report(md <= tol * (mr > 1 ? mr : 1), nm, d);
    snprintf(nm, sizeof nm, "attention %s: columns outside the heads untouched", name);
    CHECK(pad_ok, nm);
    const int nth = omp_get_max_threads();
    omp_set_num_threads(1);
    nn_attention_forward(o1, ld, q, ld, k, ld, v, ld, B, heads, Tq, Tk, dh, scale, ws, wsn);
    omp_set_num_threads(nth);
    snprintf(nm, sizeof nm, "attention %s: 1 thread == %d threads bitwise", name, nth);
    CHECK(!memcmp(o, o1, sizeof(float) * B * Tq * ld), nm);
    free(q), free(k), free(v), free(o), free(r), free(o1), free(ws);
}

static void round_bf16(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = nn_bf16_to_f32(nn_f32_to_bf16(x[i]));
}

/* The bf16 kernel (nn_attention_bf16_forward) on the same shapes. Two references:
 *  - the naive double attention of the bf16-ROUNDED q, k, v: what is left is the bf16 rounding of P (relative
 *    2^-9 per weight, and l sums the rounded weights, so the output is a convex combination of v rows with
 *    weights off by <= 2^-9 relative: |diff| <= ~2^-8 max |v|) plus fp32 sums; checked at tol_r;
 *  - the fp32 kernel on the unrounded inputs (what the UNet's fp32 path computes): adds the rounding of q and k
 *    (scores move by ~2^-8 |scale q.k|) and of v; checked at tol_f, only for scores of order 1. */
static void case_bf16(int B, int heads, int Tq, int Tk, int dh, double amp, double tol_r, double tol_f,
                      const char *name)
{
    const int C = heads * dh, ld = C + 3;
    const size_t nq = (size_t)B * Tq * ld, nk = (size_t)B * Tk * ld;
    float *q = malloc(sizeof(float) * nq), *k = malloc(sizeof(float) * nk), *v = malloc(sizeof(float) * nk);
    float *o = malloc(sizeof(float) * nq), *o1 = malloc(sizeof(float) * nq), *rr = malloc(sizeof(float) * nq);
    float *rf = malloc(sizeof(float) * nq);
    fill(q, nq, amp);
    fill(k, nk, amp);
    fill(v, nk, 1.0);
    for (size_t i = 0; i < nq; i++) o[i] = o1[i] = rr[i] = rf[i] = -7.0f;
    const float scale = 1.0f / sqrtf((float)dh);
    const int nth = omp_get_max_threads();
    size_t wsn = nn_attention_bf16_ws_floats(B, heads, Tk, dh, nth), wsf = nn_attention_ws_floats(dh, nth);
    float *ws = malloc((wsn > wsf ? wsn : wsf) * sizeof(float));
    nn_attention_bf16_forward(o, ld, q, ld, k, ld, v, ld, B, heads, Tq, Tk, dh, scale, ws, wsn);
    nn_attention_forward(rf, ld, q, ld, k, ld, v, ld, B, heads, Tq, Tk, dh, scale, ws, wsf);
    omp_set_num_threads(1);
    nn_attention_bf16_forward(o1, ld, q, ld, k, ld, v, ld, B, heads, Tq, Tk, dh, scale, ws, wsn);
    omp_set_num_threads(nth);
    round_bf16(q, nq);
    round_bf16(k, nk);
    round_bf16(v, nk);
    nn_attention_ref(rr, ld, q, ld, k, ld, v, ld, B, heads, Tq, Tk, dh, scale);
    double dr = 0, df = 0, mr = 0;
    int pad_ok = 1, finite = 1;
    for (int i = 0; i < B * Tq; i++)
        for (int c = 0; c < ld; c++) {
            const size_t at = (size_t)i * ld + c;
            if (c >= C) pad_ok &= o[at] == -7.0f;
            else {
                finite &= isfinite(o[at]);
                dr = fmax(dr, fabs(o[at] - rr[at]));
                df = fmax(df, fabs(o[at] - rf[at]));
                mr = fmax(mr, fabs(rr[at]));
            }
        }
    const double den = mr > 1 ? mr : 1;
    printf("# bf16 %s: max |diff| vs bf16-input ref %.3g, vs fp32 kernel %.3g, max |ref| %.3g\n", name, dr, df, mr);
    char nm[256], d[256];
    const char *kern = nn_attention_bf16_uses_amx(dh) ? "amx" : "fp32 fallback";
    snprintf(nm, sizeof nm, "bf16 attention [%s] %s (B %d, heads %d, Tq %d, Tk %d, dh %d): == naive on bf16 inputs "
             "(|diff| <= %.0e max(1, |ref|))", kern, name, B, heads, Tq, Tk, dh, tol_r);
    snprintf(d, sizeof d, "max |diff| %.3g, max |ref| %.3g", dr, mr);
    test_report(finite && dr <= tol_r * den, nm, d);
    if (tol_f > 0) {
        snprintf(nm, sizeof nm, "bf16 attention %s: == fp32 kernel on fp32 inputs (|diff| <= %.0e max(1, |ref|))",
                 name, tol_f);
        snprintf(d, sizeof d, "max |diff| %.3g", df);
        test_report(df <= tol_f * den, nm, d);
    }
    snprintf(nm, sizeof nm, "bf16 attention %s: columns outside the heads untouched", name);
    CHECK(pad_ok, nm);
    snprintf(nm, sizeof nm, "bf16 attention %s: 1 thread == %d threads bitwise", name, nth);
    CHECK(!memcmp(o, o1, sizeof(float) * nq), nm);
    free(q), free(k), free(v), free(o), free(o1), free(rr), free(rf), free(ws);
}

int main(void)
{
    case_(2, 3, 70, 77, 24, 1.0, 2e-6, "cross (77 keys)");
    case_(1, 2, 300, 300, 64, 1.0, 2e-6, "self, partial blocks");
    case_(2, 1, 33, 1, 8, 1.0, 2e-6, "one key");
    case_(1, 2, 40, 260, 16, 40.0, 3e-4, "scores ~1e3 (online max)");
    case_(1, 5, 1024, 1024, 64, 0.5, 2e-6, "SDXL 32x32 level, 5 of 10 heads");

    /* bf16 kernel: head dim 64 (SDXL), the tiny UNet's 4 and 8, cross-attention on 77 keys, tokens and keys not
     * multiples of the 32-row / 64-key blocks, one key, large scores */
    case_bf16(2, 3, 70, 77, 64, 1.0, 4e-3, 1e-2, "cross (77 keys)");
    case_bf16(1, 2, 300, 300, 64, 1.0, 4e-3, 1e-2, "self, partial blocks");
    case_bf16(2, 2, 100, 77, 8, 1.0, 4e-3, 1e-2, "dh 8 (tiny UNet), 77 keys");
    case_bf16(1, 4, 65, 33, 4, 1.0, 4e-3, 1e-2, "dh 4");
    case_bf16(2, 1, 33, 1, 64, 1.0, 4e-3, 1e-2, "one key");
    case_bf16(1, 2, 40, 260, 96, 40.0, 4e-3, 0, "scores ~1e3 (online max), dh 96");
    case_bf16(1, 5, 1024, 1024, 64, 0.5, 4e-3, 1e-2, "SDXL 32x32 level, 5 of 10 heads");

    /* exp and GELU helpers over a wide range */
    enum { N = 20001 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = -87.0f + 175.0f * i / (N - 1);
    nn_exp_forward(y, x, N);
    double me = 0;
    for (int i = 0; i < N; i++) me = fmax(me, fabs(y[i] - exp((double)x[i])) / exp((double)x[i]));
    CHECK_CLOSE(me, 0, 1e-6, 0, "nn_exp_forward relative error < 1e-6 on [-87, 88]");
    for (int i = 0; i < N; i++) x[i] = -12.0f + 24.0f * i / (N - 1);
    nn_gelu_forward(y, x, N);
    double mg = 0;
    for (int i = 0; i < N; i++) {
        const double g = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
        mg = fmax(mg, fabs(y[i] - g) / (1.0 + fabs(x[i])));
    }
    CHECK_CLOSE(mg, 0, 3e-7, 0, "nn_gelu_forward (exact GELU): |error| < 3e-7 (1 + |x|) on [-12, 12]");
    return test_finish();
}
