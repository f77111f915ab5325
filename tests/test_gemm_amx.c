/* test_gemm_amx: the AMX bf16 GEMM (common/nn/gemm_amx) against a double-precision reference on the
 * bf16-rounded operands, for both packers (token rows of a linear layer, im2col columns of a convolution, stride 1
 * and 2, padding, column counts that are not multiples of 16 or 32, K over several of the driver's K blocks), beta
 * 0 and 1, the same bits on 1 and 2 threads; and, because it is nn_gemm_bf16's AMX driver reading a pre-packed
 * operand, the same bits as nn_gemm_bf16 on the unpacked operands (token matrix, explicit im2col matrix, and the
 * convolution in its transposed, linear-layer form).
 * Skips (cleanly, as a PASS-less SKIP line) on a CPU or kernel without AMX. */
#include "gemm_amx.h"
#include "gemm_bf16.h"
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
        /* one kernel: nn_gemm_bf16 on the unpacked tokens gives the same running sums */
        nn_gemm_bf16(0, 1, N, M, K, 1.0f, X, 0, K, W, 1, K, 0.0f, C1, M);
        snprintf(nm, sizeof nm, "AMX linear M %d N %d K %d: same bits as nn_gemm_bf16 (%s) on the token matrix", M, N,
                 K, nn_gemm_bf16_kernel());
        CHECK(!memcmp(C, C1, sizeof(float) * N * M), nm);
    }
    free(W), free(X), free(C), free(C1), free(C0), free(pk);
}

/* col[IC KH KH, OH OW] of img[IC, H, W], fp32 (the reference im2col) */
static float colv(const float *img, int IC, int H, int Wd, int KH, int s, int pad, int OW, int r, int p)
{
    (void)IC;
    const int c = r / (KH * KH), ky = r / KH % KH, kx = r % KH, y = p / OW * s - pad + ky, x = p % OW * s - pad + kx;
    return y >= 0 && y < H && x >= 0 && x < Wd ? img[((size_t)c * H + y) * Wd + x] : 0.0f;
}

/* conv: out[OC, OH OW] = W[OC, IC KH KW] col + beta out, col from img[IC, H, W] */
static void case_conv(int OC, int IC, int H, int Wd, int KH, int s, int pad, float beta)
{
    const int OH = (H + 2 * pad - KH) / s + 1, OW = (Wd + 2 * pad - KH) / s + 1, K = IC * KH * KH, P = OH * OW;
    uint16_t *W = malloc(sizeof(uint16_t) * OC * K);
    float *img = malloc(sizeof(float) * IC * H * Wd), *out = malloc(sizeof(float) * OC * P);
    float *out0 = malloc(sizeof(float) * OC * P), *col = malloc(sizeof(float) * K * P);
    float *colT = malloc(sizeof(float) * K * P), *o1 = malloc(sizeof(float) * OC * P);
    float *o2 = malloc(sizeof(float) * OC * P), *o3 = malloc(sizeof(float) * OC * P);
    for (int i = 0; i < OC * K; i++) W[i] = nn_f32_to_bf16(frand());
    for (int i = 0; i < IC * H * Wd; i++) img[i] = frand();
    for (int i = 0; i < OC * P; i++) out[i] = out0[i] = frand();
    for (int r = 0; r < K; r++)
        for (int p = 0; p < P; p++)
            col[(size_t)r * P + p] = colT[(size_t)p * K + r] = colv(img, IC, H, Wd, KH, s, pad, OW, r, p);
    void *pk = aligned_alloc(64, (nn_amx_packed_bytes(K, P) + 63) / 64 * 64);
    nn_amx_pack_im2col(pk, img, IC, H, Wd, KH, KH, s, pad, OH, OW);
    nn_amx_gemm(OC, P, K, W, K, pk, beta, out, P, 0);
    double md = 0;
    for (int o = 0; o < OC; o++)
        for (int p = 0; p < P; p++) {
            double sum = 0, a = 0;
            for (int r = 0; r < K; r++) {
                const double q = (double)nn_bf16_to_f32(W[(size_t)o * K + r]) * rb(col[(size_t)r * P + p]);
                sum += q;
                a += fabs(q);
            }
            const double want = sum + beta * out0[(size_t)o * P + p];
            md = fmax(md, fabs(out[(size_t)o * P + p] - want) / (a + fabs(beta * out0[(size_t)o * P + p]) + 1e-30));
        }
    char nm[200], d[200];
    snprintf(nm, sizeof nm, "AMX conv OC %d IC %d %dx%d k%d s%d p%d beta %g == double sums of the bf16 operands", OC,
             IC, H, Wd, KH, s, pad, beta);
    snprintf(d, sizeof d, "max |diff| / (sum |products| + |beta c|) = %.3g", md);
    test_report(md < (K + 4) * 0x1.0p-24, nm, d);
    if (beta == 0.0f) {
        /* one kernel: every output is the same running fp32 sum over k, whichever entry computes it */
        nn_gemm_bf16(0, 0, OC, P, K, 1.0f, W, 1, K, col, 0, P, 0.0f, o1, P);
        nn_gemm_bf16(0, 1, P, OC, K, 1.0f, colT, 0, K, W, 1, K, 0.0f, o2, OC);
        int same_t = 1;
        for (int o = 0; o < OC; o++)
            for (int p = 0; p < P; p++) same_t &= !memcmp(&o2[(size_t)p * OC + o], &out[(size_t)o * P + p], 4);
        const int nth = omp_get_max_threads();
        omp_set_num_threads(1);
        nn_amx_pack_im2col(pk, img, IC, H, Wd, KH, KH, s, pad, OH, OW);
        nn_amx_gemm(OC, P, K, W, K, pk, 0.0f, o3, P, 0);
        omp_set_num_threads(nth);
        snprintf(nm, sizeof nm, "AMX conv OC %d IC %d %dx%d k%d: same bits as nn_gemm_bf16 (%s) on the im2col matrix",
                 OC, IC, H, Wd, KH, nn_gemm_bf16_kernel());
        CHECK(!memcmp(o1, out, sizeof(float) * OC * P), nm);
        snprintf(nm, sizeof nm, "AMX conv OC %d IC %d %dx%d k%d: same bits as nn_gemm_bf16 on the linear-layer form "
                 "(cols^T W^T)", OC, IC, H, Wd, KH);
        CHECK(same_t, nm);
        snprintf(nm, sizeof nm, "AMX conv OC %d IC %d %dx%d k%d: 1 thread == %d threads bitwise", OC, IC, H, Wd, KH,
                 nth);
        CHECK(!memcmp(o3, out, sizeof(float) * OC * P), nm);
    }
    free(W), free(img), free(out), free(out0), free(col), free(colT), free(o1), free(o2), free(o3), free(pk);
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
    case_conv(32, 32, 7, 9, 3, 1, 1, 0.0f);
    case_conv(64, 32, 16, 16, 3, 2, 1, 0.0f);
    case_conv(32, 64, 5, 21, 1, 1, 0, 0.0f);
    case_conv(96, 64, 12, 12, 3, 1, 1, 0.0f);
    case_conv(64, 128, 10, 13, 3, 1, 1, 0.0f);   /* K 1152: three K blocks in nn_gemm_bf16, P 130: an edge panel */
    case_conv(32, 96, 9, 11, 3, 1, 1, 1.0f);
    return test_finish();
}
