/* test_attention: the tiled online-softmax attention (common/nn/attention) against the naive double-precision
 * reference, on shapes that leave partial query and key blocks (Tk = 77 as the CLIP context, Tq not a multiple of
 * NN_ATTN_QB), a single key, large scores (exp would overflow without the running max), strided token matrices
 * (heads side by side as the UNet stores them), and the same bits on 1 and 2 threads. Also the vectorised exp and
 * exact-GELU helpers of nn/act used by the SDXL networks. */
#include "act.h"
#include "attention.h"
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

int main(void)
{
    case_(2, 3, 70, 77, 24, 1.0, 2e-6, "cross (77 keys)");
    case_(1, 2, 300, 300, 64, 1.0, 2e-6, "self, partial blocks");
    case_(2, 1, 33, 1, 8, 1.0, 2e-6, "one key");
    case_(1, 2, 40, 260, 16, 40.0, 3e-4, "scores ~1e3 (online max)");
    case_(1, 5, 1024, 1024, 64, 0.5, 2e-6, "SDXL 32x32 level, 5 of 10 heads");

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
