/* test_gemm_amx: the AMX bf16 GEMM (common/nn/gemm_amx) against a double-precision reference on the
 * bf16-rounded operands, for both packers (token rows of a linear layer, im2col columns of a convolution, stride 1
 * and 2, padding, column counts that are not multiples of 16 or 32), beta 0 and 1, and the same bits on 1 and 2
 * threads. Skips (cleanly, as a PASS-less SKIP line) on a CPU or kernel without AMX. */
#include "gemm_amx.h"
#include "tensor.h"
#include "test.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs = 99;
static float frand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((double)(rs >> 11) * 0x1.0p-53 * 2 - 1);
}
static float rb(float x) { return nn_bf16_to_f32(nn_f32_to_bf16(x)); }

/* linear: C[N, M] (+)= X[N, K] W[M, K]^T */
static void case_linear(int M, int N, int K, float beta)
{
    uint16_t *W = malloc(sizeof(uint16_t) * M * K);
    float *X = malloc(sizeof(float) * N * K), *C = malloc(sizeof(float) * N * M), *C1 = malloc(sizeof(float) * N * M);
    for (int i = 0; i < M * K; i++) W[i] = nn_f32_to_bf16(frand());
    for (int i = 0; i < N * K; i++) X[i] = frand();
    for (int i = 0; i < N * M; i++) C[i] = C1[i] = frand();
    float *C0 = malloc(sizeof(float) * N * M);
    memcpy(C0, C, sizeof(float) * N * M);
    void *pk = aligned_alloc(64, (nn_amx_packed_bytes(K, N) + 63) / 64 * 64);
    nn_amx_pack_rows(pk, X, K, N, K);
    nn_amx_gemm(M, N, K, W, K, pk, beta, C, M, 1);
    double md = 0, bound = 0;
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            double s = 0, a = 0;
            for (int k = 0; k < K; k++) {
                const double p = (double)nn_bf16_to_f32(W[(size_t)m * K + k]) * rb(X[(size_t)n * K + k]);
                s += p;
                a += fabs(p);
            }
            const double want = s + beta * C0[(size_t)n * M + m];
            md = fmax(md, fabs(C[(size_t)n * M + m] - want) / (a + 1e-30));
            bound = fmax(bound, 0);
        }
    char nm[200], d[200];
    snprintf(nm, sizeof nm, "AMX linear M %d N %d K %d beta %g == double sums of the bf16 operands", M, N, K, beta);
    snprintf(d, sizeof d, "max |diff| / sum |products| = %.3g", md);
    test_report(md < (K + 4) * 0x1.0p-24, nm, d);
    const int nth = omp_get_max_threads();
    omp_set_num_threads(1);
    nn_amx_pack_rows(pk, X, K, N, K);
    nn_amx_gemm(M, N, K, W, K, pk, beta, C1, M, 1);
    omp_set_num_threads(nth);
    if (beta == 0.0f) {
        snprintf(nm, sizeof nm, "AMX linear M %d N %d K %d: 1 thread == %d threads bitwise", M, N, K, nth);
        CHECK(!memcmp(C, C1, sizeof(float) * N * M), nm);
    }
    free(W), free(X), free(C), free(C1), free(C0), free(pk);
}

/* conv: out[OC, OH OW] = W[OC, IC KH KW] col, col from img[IC, H, W] */
static void case_conv(int OC, int IC, int H, int Wd, int KH, int s, int pad)
{
    const int OH = (H + 2 * pad - KH) / s + 1, OW = (Wd + 2 * pad - KH) / s + 1, K = IC * KH * KH, P = OH * OW;
    uint16_t *W = malloc(sizeof(uint16_t) * OC * K);
    float *img = malloc(sizeof(float) * IC * H * Wd), *out = malloc(sizeof(float) * OC * P);
    for (int i = 0; i < OC * K; i++) W[i] = nn_f32_to_bf16(frand());
    for (int i = 0; i < IC * H * Wd; i++) img[i] = frand();
    void *pk = aligned_alloc(64, (nn_amx_packed_bytes(K, P) + 63) / 64 * 64);
    nn_amx_pack_im2col(pk, img, IC, H, Wd, KH, KH, s, pad, OH, OW);
    nn_amx_gemm(OC, P, K, W, K, pk, 0.0f, out, P, 0);
    double md = 0;
    for (int o = 0; o < OC; o++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                double sum = 0, a = 0;
                for (int c = 0; c < IC; c++)
                    for (int ky = 0; ky < KH; ky++)
                        for (int kx = 0; kx < KH; kx++) {
                            const int y = oy * s - pad + ky, x = ox * s - pad + kx;
                            const float v = y >= 0 && y < H && x >= 0 && x < Wd ? img[((size_t)c * H + y) * Wd + x] : 0;
                            const double p = (double)nn_bf16_to_f32(W[(size_t)o * K + (c * KH + ky) * KH + kx]) * rb(v);
                            sum += p;
                            a += fabs(p);
                        }
                md = fmax(md, fabs(out[(size_t)o * P + oy * OW + ox] - sum) / (a + 1e-30));
            }
    char nm[200], d[200];
    snprintf(nm, sizeof nm, "AMX conv OC %d IC %d %dx%d k%d s%d p%d == double sums of the bf16 operands", OC, IC, H, Wd,
             KH, s, pad);
    snprintf(d, sizeof d, "max |diff| / sum |products| = %.3g", md);
    test_report(md < (K + 4) * 0x1.0p-24, nm, d);
    free(W), free(img), free(out), free(pk);
}

int main(void)
{
    if (!nn_amx_available()) {
        printf("SKIP test_gemm_amx: no AMX-BF16 on this CPU/kernel (or SF_GEMM_KERNEL=generic)\n");
        return test_finish();
    }
    case_linear(32, 16, 32, 0.0f);
    case_linear(64, 77, 96, 0.0f);
    case_linear(320, 300, 640, 1.0f);
    case_linear(128, 1000, 2048, 0.0f);
    case_conv(32, 32, 7, 9, 3, 1, 1);
    case_conv(64, 32, 16, 16, 3, 2, 1);
    case_conv(32, 64, 5, 21, 1, 1, 0);
    case_conv(96, 64, 12, 12, 3, 1, 1);
    return test_finish();
}
