/* test_gemm: nn_sgemm (common/nn/gemm.c, the CPU GEMM behind conv/linear layers) against the double-accumulating
 * reference nn_sgemm_ref: all four transpose combinations; sizes drawn from {1,2,3,7,15,16,17,31,33,64,100,257}
 * (every micro-kernel edge: MR = 8, NR = 16/32/48, K blocks of 256), all pairs from {1,8,9,16,32,47,48,49},
 * plus multi-task / multi-K-block shapes;
 * leading dimensions wider than the matrices with NaN in the padding (never read) and sentinels in C's padding
 * (never written); alpha/beta variants including beta = 0 over a NaN-filled C, alpha = 0 and K = 0 (C = beta C);
 * bitwise thread-count independence (1, 2 and 3 OpenMP threads).
 * Tolerance, element-wise: |C - C_ref| <= (K + 4) * eps * (|alpha| sum_k |a_ik b_kj| + |beta c_ij|) + tiny,
 * eps = 2^-23. Justification: a float dot product accumulated sequentially with one rounding per FMA has
 * |err| <= K u sum|a b| + O(u^2) (u = eps / 2, Higham §3.1); the alpha/beta update adds <= 3 roundings and the
 * float-rounded reference 1/2 ulp; (K + 4) eps = (2K + 8) u leaves a factor ~2 margin over that bound while a
 * wrong index or a dropped term gives errors of order sum|a b| itself. */
#include "gemm.h"
#include "test.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)(rs >> 32);
}
static float frand(void) { return (float)((rnd() >> 8) * (1.0 / 16777216.0) * 2.0 - 1.0); }

/* stored matrix rows x cols with row stride ld >= cols; padding filled with NaN */
static float *mat_new(int rows, int cols, int ld)
{
    float *m = malloc(sizeof(float) * ((size_t)rows * ld + 1));
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < ld; j++) m[(size_t)i * ld + j] = j < cols ? frand() : NAN;
    return m;
}

/* One comparison. Returns 1 on success; on failure fills msg. */
static int check_case(int tA, int tB, int M, int N, int K, float alpha, float beta, int pad, int nan_c, char *msg,
                      size_t msz)
{
    const int ar = tA ? K : M, ac = tA ? M : K, br = tB ? N : K, bc = tB ? K : N;
    const int lda = ac + (pad ? (int)(rnd() % 5) : 0), ldb = bc + (pad ? (int)(rnd() % 5) : 0);
    const int ldc = N + (pad ? (int)(rnd() % 5) : 0);
    float *A = mat_new(ar, ac, lda), *B = mat_new(br, bc, ldb);
    float *C = malloc(sizeof(float) * ((size_t)M * ldc + 1)), *R = malloc(sizeof(float) * ((size_t)M * ldc + 1));
    float *absA = malloc(sizeof(float) * ((size_t)ar * lda + 1));
    float *absB = malloc(sizeof(float) * ((size_t)br * ldb + 1));
    float *S = malloc(sizeof(float) * ((size_t)M * N + 1)), *O = malloc(sizeof(float) * ((size_t)M * ldc + 1));
    for (size_t i = 0; i < (size_t)M * ldc; i++) {
        int j = (int)(i % ldc);
        C[i] = j < N ? (nan_c ? NAN : frand()) : 12345.0f;   /* 12345 = sentinel in C's padding */
        R[i] = O[i] = C[i];
    }
    for (size_t i = 0; i < (size_t)ar * lda; i++) absA[i] = (i % lda) < (size_t)ac ? fabsf(A[i]) : 0.0f;
    for (size_t i = 0; i < (size_t)br * ldb; i++) absB[i] = (i % ldb) < (size_t)bc ? fabsf(B[i]) : 0.0f;
    nn_sgemm_ref(tA, tB, M, N, K, 1.0f, absA, lda, absB, ldb, 0.0f, S, N);
    nn_sgemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    nn_sgemm_ref(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc);
    const double eps = 0x1p-23;
    int ok = 1;
    for (int i = 0; i < M && ok; i++)
        for (int j = 0; j < ldc; j++) {
            const size_t ix = (size_t)i * ldc + j;
            if (j >= N) {
                if (C[ix] != 12345.0f) {
                    snprintf(msg, msz, "padding of C written at (%d,%d)", i, j);
                    ok = 0;
                    break;
                }
                continue;
            }
            const double bc = beta == 0.0f ? 0.0 : fabs((double)beta * O[ix]);
            const double tol = (K + 4) * eps * (fabs((double)alpha) * S[(size_t)i * N + j] + bc) + 1e-30;
            const double e = fabs((double)C[ix] - (double)R[ix]);
            if (!(e <= tol)) {
                snprintf(msg, msz, "tA=%d tB=%d M=%d N=%d K=%d alpha=%g beta=%g: C(%d,%d)=%.9g ref %.9g tol %.3g", tA,
                         tB, M, N, K, alpha, beta, i, j, C[ix], R[ix], tol);
                ok = 0;
                break;
            }
        }
    free(A); free(B); free(C); free(R); free(absA); free(absB); free(S); free(O);
    return ok;
}

static const int sizes[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 64, 100, 257};
enum { NSIZES = sizeof sizes / sizeof sizes[0] };

static void test_random_sizes(void)
{
    for (int tA = 0; tA < 2; tA++)
        for (int tB = 0; tB < 2; tB++) {
            int nok = 0, ntot = 0;
            char msg[512] = "", first[512] = "";
            /* every M and every N several times, K varied: 6 passes of NSIZES shuffled triples */
            for (int pass = 0; pass < 6; pass++)
                for (int s = 0; s < NSIZES; s++) {
                    int M = sizes[s], N = sizes[(s * 5 + pass * 3 + 1) % NSIZES], K = sizes[rnd() % NSIZES];
                    if ((long)M * N * K > 4000000) K = sizes[rnd() % 6];   /* keep the double reference quick */
                    const float alphas[] = {1.0f, -0.75f, 2.5f}, betas[] = {0.0f, 1.0f, -0.5f};
                    float alpha = alphas[rnd() % 3], beta = betas[rnd() % 3];
                    ntot++;
                    if (check_case(tA, tB, M, N, K, alpha, beta, (int)(rnd() & 1), 0, msg, sizeof msg)) nok++;
                    else if (!first[0]) memcpy(first, msg, sizeof first);
                }
            char name[96];
            snprintf(name, sizeof name, "sgemm tA=%d tB=%d: %d random edge-size cases vs reference", tA, tB, ntot);
            test_report(nok == ntot, name, first);
        }
}

static void test_corners(void)
{
    char msg[512] = "";
    for (int tA = 0; tA < 2; tA++)
        for (int tB = 0; tB < 2; tB++) {
            char name[128];
            int ok = 1;
            /* every combination of 1 and the micro-kernel edges */
            const int e[] = {1, 8, 9, 16, 32, 47, 48, 49};
            for (int a = 0; a < 8 && ok; a++)
                for (int b = 0; b < 8 && ok; b++)
                    ok = check_case(tA, tB, e[a], e[b], e[(a + b) % 8], 1.0f, 0.0f, 1, 0, msg, sizeof msg);
            snprintf(name, sizeof name, "sgemm tA=%d tB=%d: tile-edge sizes {1,8,9,16,32,47,48,49}^2", tA, tB);
            test_report(ok, name, msg);
            ok = check_case(tA, tB, 33, 100, 257, -1.5f, 0.0f, 1, 1, msg, sizeof msg);
            snprintf(name, sizeof name, "sgemm tA=%d tB=%d: beta=0 ignores a NaN-filled C, padded ld", tA, tB);
            test_report(ok, name, msg);
            ok = check_case(tA, tB, 70, 200, 600, 0.5f, 2.0f, 1, 0, msg, sizeof msg);   /* 3 K blocks */
            snprintf(name, sizeof name, "sgemm tA=%d tB=%d: M=70 N=200 K=600 (3 K blocks) alpha=.5 beta=2", tA, tB);
            test_report(ok, name, msg);
            ok = check_case(tA, tB, 300, 1700, 40, 1.0f, 1.0f, 0, 0, msg, sizeof msg);   /* several tasks */
            snprintf(name, sizeof name, "sgemm tA=%d tB=%d: M=300 N=1700 K=40 (multi-task) beta=1", tA, tB);
            test_report(ok, name, msg);
        }
    /* larger, multi-task and multi-K-block at once (the conv-like shapes, reduced) */
    int ok = check_case(0, 0, 64, 3000, 288, 1.0f, 0.0f, 0, 1, msg, sizeof msg);
    test_report(ok, "sgemm conv-forward-like M=64 N=3000 K=288", msg);
    ok = check_case(0, 1, 32, 9, 20000, 1.0f, 1.0f, 0, 0, msg, sizeof msg);
    test_report(ok, "sgemm dW-like (tB) M=32 N=9 K=20000", msg);
    ok = check_case(1, 0, 576, 500, 64, 1.0f, 0.0f, 0, 0, msg, sizeof msg);
    test_report(ok, "sgemm dcols-like (tA) M=576 N=500 K=64", msg);
}

static void test_alpha0_k0(void)
{
    const int M = 5, N = 37, ldc = 40;
    float C[5 * 40], A[4] = {NAN, NAN, NAN, NAN}, B[4] = {NAN, NAN, NAN, NAN};
    for (int i = 0; i < M * ldc; i++) C[i] = (float)i;
    nn_sgemm(0, 0, M, N, 1, 0.0f, A, 1, B, N, 2.0f, C, ldc);   /* alpha = 0: A, B not referenced */
    int ok = 1;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) ok &= C[i * ldc + j] == (j < N ? 2.0f : 1.0f) * (float)(i * ldc + j);
    test_report(ok, "sgemm alpha=0: C = beta C, A/B (NaN) not read, padding untouched", "wrong values");
    for (int i = 0; i < M * ldc; i++) C[i] = NAN;
    nn_sgemm(1, 1, M, N, 0, 1.0f, A, 1, B, 1, 0.0f, C, ldc);   /* K = 0, beta = 0: zeros even over NaN */
    ok = 1;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) ok &= C[i * ldc + j] == 0.0f;
    test_report(ok, "sgemm K=0 beta=0: C = 0 over NaN", "not zero");
    for (int i = 0; i < M * ldc; i++) C[i] = 3.0f;
    nn_sgemm(0, 0, 0, N, 5, 1.0f, A, 1, B, 1, 0.0f, C, ldc);   /* M = 0: nothing */
    nn_sgemm(0, 0, M, 0, 5, 1.0f, A, 1, B, 1, 0.0f, C, ldc);   /* N = 0: nothing */
    ok = 1;
    for (int i = 0; i < M * ldc; i++) ok &= C[i] == 3.0f;
    test_report(ok, "sgemm M=0 / N=0: C untouched", "C changed");
}

static void test_threads(void)
{
    const int shapes[][5] = {
        /* tA tB M N K */
        {0, 0, 64, 5000, 288}, {0, 1, 64, 288, 6000}, {1, 0, 288, 3000, 64}, {1, 1, 100, 700, 300},
        {0, 1, 32, 9, 30000},  {0, 0, 257, 1001, 513},
    };
    const int maxth = omp_get_max_threads();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int tA = shapes[s][0], tB = shapes[s][1], M = shapes[s][2], N = shapes[s][3], K = shapes[s][4];
        const int lda = tA ? M : K, ldb = tB ? K : N;
        float *A = mat_new(tA ? K : M, lda, lda), *B = mat_new(tB ? N : K, ldb, ldb);
        float *C0 = mat_new(M, N, N), *C1 = malloc(sizeof(float) * (size_t)M * N),
              *C2 = malloc(sizeof(float) * (size_t)M * N), *C3 = malloc(sizeof(float) * (size_t)M * N);
        memcpy(C1, C0, sizeof(float) * (size_t)M * N);
        memcpy(C2, C0, sizeof(float) * (size_t)M * N);
        memcpy(C3, C0, sizeof(float) * (size_t)M * N);
        omp_set_num_threads(1);
        nn_sgemm(tA, tB, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C1, N);
        omp_set_num_threads(2);
        nn_sgemm(tA, tB, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C2, N);
        omp_set_num_threads(3);
        nn_sgemm(tA, tB, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C3, N);
        omp_set_num_threads(maxth);
        char name[128];
        snprintf(name, sizeof name, "sgemm tA=%d tB=%d M=%d N=%d K=%d: bitwise equal with 1, 2, 3 threads", tA, tB, M,
                 N, K);
        const size_t bytes = sizeof(float) * (size_t)M * N;
        test_report(!memcmp(C1, C2, bytes) && !memcmp(C1, C3, bytes), name, "results differ");
        free(A); free(B); free(C0); free(C1); free(C2); free(C3);
    }
}

int main(void)
{
    test_random_sizes();
    test_corners();
    test_alpha0_k0();
    test_threads();
    return test_finish();
}
