/* test_gemm_bf16: bf16 conversion and the bf16 GEMM (common/nn/gemm_bf16.h).
 * Conversion: round-to-nearest-even ties, NaN kept (signalling NaN quieted, never turned into Inf), overflow to
 * Inf, signed zero, exact round trip of every bf16 value.
 * GEMM against the double reference on the bf16-rounded operands, with the stated bound
 *     |C - C_ref| <= (K + 4) 2^-24 sum_k |alpha a_ik b_kj| + 2^-24 |beta c_ij|      (+ 1e-30 for exact zeros)
 * over odd sizes, all four transposes, bf16 and fp32 operands (converted while packing), padded strides,
 * alpha / beta cases, beta = 0 over a NaN-filled C, K = 0 and alpha = 0, a thread-count-independence check,
 * and the distance to the fp32 GEMM of the unrounded data (input rounding: ~2^-8 relative).
 * `test_gemm_bf16 --dump-sgemm FILE` writes nn_sgemm's results on a fixed problem set (tests/test_gemm_kernels.sh
 * compares them across SF_GEMM_KERNEL=generic / avx512, which must agree bit for bit). */
#include "gemm.h"
#include "gemm_bf16.h"
#include "test.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs = 88172645463325252ull;
static double urand(void)   /* xorshift64*, [0, 1) */
{
    rs ^= rs >> 12;
    rs ^= rs << 25;
    rs ^= rs >> 27;
    return (double)((rs * 2685821657736338717ull) >> 11) * 0x1p-53;
}

static float f_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_conversion(void)
{
    CHECK(nn_bf16_from_f32(1.0f) == 0x3F80, "bf16: 1.0 -> 0x3F80");
    CHECK(nn_bf16_from_f32(1.0f + 0x1p-8f) == 0x3F80, "bf16: tie 1 + 2^-8 rounds to even (down)");
    CHECK(nn_bf16_from_f32(1.0f + 0x1p-7f + 0x1p-8f) == 0x3F82, "bf16: tie 1 + 3 2^-8 rounds to even (up)");
    CHECK(nn_bf16_from_f32(1.0f + 0x1p-8f + 0x1p-20f) == 0x3F81, "bf16: above the tie rounds up");
    CHECK(nn_bf16_from_f32(-0.0f) == 0x8000, "bf16: -0 keeps its sign");
    CHECK(nn_bf16_from_f32(INFINITY) == 0x7F80 && nn_bf16_from_f32(-INFINITY) == 0xFF80, "bf16: +-Inf");
    CHECK(nn_bf16_from_f32(3.4e38f) == 0x7F80, "bf16: FLT_MAX rounds to Inf");
    const uint16_t qn = nn_bf16_from_f32(f_of(0x7FC00001u)), sn = nn_bf16_from_f32(f_of(0x7F800001u));
    const uint16_t nn = nn_bf16_from_f32(f_of(0xFFFFFFFFu));
    CHECK(isnan(nn_bf16_to_f32(qn)) && isnan(nn_bf16_to_f32(sn)) && isnan(nn_bf16_to_f32(nn)) && (nn & 0x8000),
          "bf16: quiet, signalling (low payload) and negative NaN stay NaN");
    int rt = 1;
    for (uint32_t h = 0; h < 65536; h++) {
        const float x = nn_bf16_to_f32((uint16_t)h);
        if (isnan(x)) continue;
        rt &= nn_bf16_from_f32(x) == h;
    }
    CHECK(rt, "bf16: every non-NaN bf16 value round-trips exactly");
    /* arrays equal the scalar function, and the rounding error is <= 2^-8 relative */
    enum { N = 10007 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint16_t *h = malloc(N * sizeof *h);
    for (int i = 0; i < N; i++) x[i] = (float)((urand() - 0.5) * pow(2.0, 40.0 * urand() - 20.0));
    nn_bf16_from_f32_array(h, x, N);
    nn_bf16_to_f32_array(y, h, N);
    int same = 1, close = 1;
    for (int i = 0; i < N; i++) {
        same &= h[i] == nn_bf16_from_f32(x[i]);
        close &= fabs((double)y[i] - x[i]) <= 0x1p-8 * fabs((double)x[i]);
    }
    CHECK(same, "bf16 arrays: equal to the scalar conversion");
    CHECK(close, "bf16 arrays: |round(x) - x| <= 2^-8 |x| (unit roundoff of an 8-bit significand)");
    free(x), free(y), free(h);
}

/* op(X)[r, c] of a matrix stored with stride ld, rounded to bf16, as double */
static double el(const void *X, int bf16, int trans, int ld, int r, int c)
{
    const size_t o = trans ? (size_t)c * ld + r : (size_t)r * ld + c;
    return bf16 ? nn_bf16_to_f32(((const uint16_t *)X)[o]) : nn_bf16_to_f32(nn_bf16_from_f32(((const float *)X)[o]));
}

/* one case: returns the largest |err| / bound */
static double run_case(int tA, int tB, int M, int N, int K, int abf, int bbf, float alpha, float beta, int nan_c)
{
    const int lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 5, ldc = N + 2;
    const size_t na = (size_t)(tA ? K : M) * lda, nb = (size_t)(tB ? N : K) * ldb, nc = (size_t)M * ldc;
    float *Af = malloc((na + 1) * 4), *Bf = malloc((nb + 1) * 4), *C = malloc(nc * 4), *R = malloc(nc * 4), *C0 = malloc(nc * 4);
    uint16_t *Ah = malloc((na + 1) * 2), *Bh = malloc((nb + 1) * 2);
    for (size_t i = 0; i < na; i++) Af[i] = (float)(2.0 * urand() - 1.0);
    for (size_t i = 0; i < nb; i++) Bf[i] = (float)(2.0 * urand() - 1.0);
    nn_bf16_from_f32_array(Ah, Af, na);
    nn_bf16_from_f32_array(Bh, Bf, nb);
    for (size_t i = 0; i < nc; i++) C[i] = nan_c ? NAN : (float)(2.0 * urand() - 1.0);
    memcpy(R, C, nc * 4);
    memcpy(C0, C, nc * 4);
    const void *A = abf ? (const void *)Ah : (const void *)Af, *B = bbf ? (const void *)Bh : (const void *)Bf;
    nn_gemm_bf16(tA, tB, M, N, K, alpha, A, abf, lda, B, bbf, ldb, beta, C, ldc);
    nn_gemm_bf16_ref(tA, tB, M, N, K, alpha, A, abf, lda, B, bbf, ldb, beta, R, ldc);
    double worst = 0.0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) s += fabs(alpha * el(A, abf, tA, lda, i, k) * el(B, bbf, tB, ldb, k, j));
            const double cold = nan_c || beta == 0.0f ? 0.0 : fabs((double)beta * C0[(size_t)i * ldc + j]);
            const double bound = (K + 4) * 0x1p-24 * s + 0x1p-24 * cold * 2.0 + 1e-30;
            const double e = fabs((double)C[(size_t)i * ldc + j] - R[(size_t)i * ldc + j]);
            const double q = isfinite(C[(size_t)i * ldc + j]) ? e / bound : 1e30;
            if (q > worst) worst = q;
        }
    /* strides: the padding columns of C are untouched */
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++)
            if (memcmp(&C[(size_t)i * ldc + j], &R[(size_t)i * ldc + j], 4) && !(nan_c && isnan(C[(size_t)i * ldc + j])))
                worst = 1e30;
    free(Af), free(Bf), free(C), free(R), free(C0), free(Ah), free(Bh);
    return worst;
}

static void test_gemm(void)
{
    const int sizes[][3] = {{1, 1, 1},   {1, 17, 3},   {7, 5, 2},     {8, 48, 32},  {9, 49, 33},  {17, 33, 15},
                            {31, 95, 64}, {64, 16, 385}, {100, 129, 47}, {13, 300, 9}, {200, 64, 770}, {3, 1000, 31}};
    const float ab[][2] = {{1.0f, 0.0f}, {0.5f, -1.5f}, {-2.0f, 1.0f}};
    double worst = 0.0;
    char where[200] = "";
    int cases = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int t = 0; t < 4; t++)
            for (int ty = 0; ty < 4; ty++) {
                const int q = (int)(s + t + ty) % 3;
                const double w = run_case(t >> 1, t & 1, sizes[s][0], sizes[s][1], sizes[s][2], ty >> 1, ty & 1,
                                          ab[q][0], ab[q][1], 0);
                cases++;
                if (w > worst) {
                    worst = w;
                    snprintf(where, sizeof where, "M=%d N=%d K=%d tA=%d tB=%d a_bf16=%d b_bf16=%d alpha=%g beta=%g",
                             sizes[s][0], sizes[s][1], sizes[s][2], t >> 1, t & 1, ty >> 1, ty & 1, ab[q][0],
                             ab[q][1]);
                }
            }
    char name[400];
    snprintf(name, sizeof name, "gemm_bf16 (%s kernel): %d cases (odd sizes, 4 transposes, bf16/fp32 operands, "
             "strides, alpha/beta) within the bound; worst err/bound %.3f at %s", nn_gemm_bf16_kernel(), cases, worst,
             where);
    CHECK(worst <= 1.0, name);
    CHECK(run_case(0, 1, 33, 50, 70, 0, 1, 1.0f, 0.0f, 1) <= 1.0, "gemm_bf16: beta 0 never reads C (C full of NaN)");
    CHECK(run_case(1, 0, 20, 70, 0, 1, 1, 1.0f, 0.5f, 0) <= 1.0, "gemm_bf16: K = 0 gives C = beta C");
    CHECK(run_case(0, 0, 20, 70, 9, 1, 1, 0.0f, 2.0f, 0) <= 1.0, "gemm_bf16: alpha = 0 gives C = beta C");
}

static void test_threads_and_fp32(void)
{
    const int M = 301, N = 517, K = 1031;
    float *A = malloc((size_t)M * K * 4), *B = malloc((size_t)K * N * 4);
    float *C1 = malloc((size_t)M * N * 4), *C2 = malloc((size_t)M * N * 4), *C3 = malloc((size_t)M * N * 4);
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)(2.0 * urand() - 1.0);
    for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)(2.0 * urand() - 1.0);
    const int nth = omp_get_max_threads();
    omp_set_num_threads(1);
    nn_gemm_bf16(0, 1, M, N, K, 1.0f, A, 0, K, B, 0, K, 0.0f, C1, N);
    omp_set_num_threads(nth > 1 ? nth : 2);
    nn_gemm_bf16(0, 1, M, N, K, 1.0f, A, 0, K, B, 0, K, 0.0f, C2, N);
    omp_set_num_threads(nth);
    CHECK(memcmp(C1, C2, (size_t)M * N * 4) == 0, "gemm_bf16: 1 thread == several threads (bits)");
    /* against fp32 on the unrounded data: |diff| <= 2^-6 sqrt(K) (input rounding 2^-8 per operand, |a|,|b| <= 1) */
    nn_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C3, N);
    double d = 0.0;
    for (size_t i = 0; i < (size_t)M * N; i++) d = fmax(d, fabs((double)C2[i] - C3[i]));
    char name[200];
    snprintf(name, sizeof name, "gemm_bf16 vs fp32 sgemm on unrounded data: max |diff| %.4f <= 2^-6 sqrt(K) = %.4f",
             d, 0x1p-6 * sqrt((double)K));
    CHECK(d <= 0x1p-6 * sqrt((double)K), name);
    free(A), free(B), free(C1), free(C2), free(C3);
}

/* nn_sgemm on a fixed problem set, results written to path (raw floats) */
static int dump_sgemm(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "test_gemm_bf16: cannot write %s\n", path);
        return 2;
    }
    const int sizes[][3] = {{1, 1, 1}, {9, 49, 33}, {64, 300, 9}, {100, 129, 600}, {257, 1000, 300}, {33, 7, 2000}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int t = 0; t < 4; t++) {
            const int M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
            float *A = malloc((size_t)M * K * 4), *B = malloc((size_t)K * N * 4), *C = malloc((size_t)M * N * 4);
            for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)(2.0 * urand() - 1.0);
            for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)(2.0 * urand() - 1.0);
            for (size_t i = 0; i < (size_t)M * N; i++) C[i] = (float)(2.0 * urand() - 1.0);
            const int tA = t >> 1, tB = t & 1;
            nn_sgemm(tA, tB, M, N, K, 0.75f, A, tA ? M : K, B, tB ? K : N, t == 2 ? 0.0f : -0.5f, C, N);
            fwrite(C, 4, (size_t)M * N, f);
            free(A), free(B), free(C);
        }
    return fclose(f) == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--dump-sgemm") == 0) return dump_sgemm(argv[2]);
    printf("# kernels: nn_sgemm %s, nn_gemm_bf16 %s\n", nn_gemm_kernel(), nn_gemm_bf16_kernel());
    test_conversion();
    test_gemm();
    test_threads_and_fp32();
    return test_finish();
}
