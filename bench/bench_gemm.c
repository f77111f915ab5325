/* bench_gemm: GFLOP/s of nn_sgemm (common/nn/gemm.c) on the GEMM shapes of the paper's ScoreNet on 28x28 images
 * (§5.1, App. G; conv layers 1->32->64->128->256 channels, 3x3 kernels, via im2col at batch 256) in the three
 * forms training uses — forward Y = W cols (NN), weight gradient dW = dY cols^T (NT), input gradient
 * dcols = W^T dY (TN, also the conv-transpose forward) — plus 256x256 linear layers (batch 1024) and square
 * 512 / 1024 products, and the share of this machine's fp32 peak each reaches.
 * Peak estimate: a register-only loop of independent FMAs (16 accumulators, 16-wide AVX-512 when nn_sgemm runs its
 * AVX-512 kernel, else 8-wide AVX2),
 * timed on 1 thread and on all threads at once; peak = measured FMA lanes/s x 2 flop. This measures what the
 * cores sustain at the clock they actually run (turbo included), not the datasheet figure.
 * Thread count: OMP_NUM_THREADS (default: all cores). Each measurement runs ~0.35 s; the whole bench < 20 s. */
#include "gemm.h"
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_SECONDS 0.35

/* AVX-512 FMA throughput (the library's AVX-512 kernels are chosen at run time, so is this loop; the rest of the
 * program is built for the portable baseline) */
__attribute__((target("avx512f"))) static double fma_loop_avx512(long iters)
{
    double sink = 0;
    __m512 x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(1e-7f);
    /* distinct starting values, so the compiler cannot merge identical chains */
#define A_(i) __m512 a##i = _mm512_set1_ps(1.0f + 0.001f * (i))
    A_(0); A_(1); A_(2); A_(3); A_(4); A_(5); A_(6); A_(7);
    A_(8); A_(9); A_(10); A_(11); A_(12); A_(13); A_(14); A_(15);
#undef A_
    for (long i = 0; i < iters; i++) {
        a0 = _mm512_fmadd_ps(a0, x, y); a1 = _mm512_fmadd_ps(a1, x, y); a2 = _mm512_fmadd_ps(a2, x, y);
        a3 = _mm512_fmadd_ps(a3, x, y); a4 = _mm512_fmadd_ps(a4, x, y); a5 = _mm512_fmadd_ps(a5, x, y);
        a6 = _mm512_fmadd_ps(a6, x, y); a7 = _mm512_fmadd_ps(a7, x, y); a8 = _mm512_fmadd_ps(a8, x, y);
        a9 = _mm512_fmadd_ps(a9, x, y); a10 = _mm512_fmadd_ps(a10, x, y); a11 = _mm512_fmadd_ps(a11, x, y);
        a12 = _mm512_fmadd_ps(a12, x, y); a13 = _mm512_fmadd_ps(a13, x, y); a14 = _mm512_fmadd_ps(a14, x, y);
        a15 = _mm512_fmadd_ps(a15, x, y);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                                       _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15))));
    sink = _mm512_reduce_add_ps(s);
    const double lanes = 16;
    if (sink == 42.0) printf(" ");   /* keep the accumulators alive (never true) */
    return 16.0 * lanes * 2.0 * (double)iters;
}

/* FMA throughput: returns flop/s per thread-team (all threads in the current team run the loop). */
static double fma_loop(long iters)
{
    if (strcmp(nn_gemm_kernel(), "avx512") == 0) return fma_loop_avx512(iters);
    double sink = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 x = _mm256_set1_ps(1.0000001f), y = _mm256_set1_ps(1e-7f);
#define A_(i) __m256 a##i = _mm256_set1_ps(1.0f + 0.001f * (i))
    A_(0); A_(1); A_(2); A_(3); A_(4); A_(5); A_(6); A_(7); A_(8); A_(9); A_(10); A_(11);
#undef A_
    for (long i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, x, y); a1 = _mm256_fmadd_ps(a1, x, y); a2 = _mm256_fmadd_ps(a2, x, y);
        a3 = _mm256_fmadd_ps(a3, x, y); a4 = _mm256_fmadd_ps(a4, x, y); a5 = _mm256_fmadd_ps(a5, x, y);
        a6 = _mm256_fmadd_ps(a6, x, y); a7 = _mm256_fmadd_ps(a7, x, y); a8 = _mm256_fmadd_ps(a8, x, y);
        a9 = _mm256_fmadd_ps(a9, x, y); a10 = _mm256_fmadd_ps(a10, x, y); a11 = _mm256_fmadd_ps(a11, x, y);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float t[8];
    _mm256_storeu_ps(t, s);
    for (int i = 0; i < 8; i++) sink += t[i];
    const double lanes = 8 * 12.0 / 16.0;   /* 12 FMAs x 8 lanes per iteration, counted below as 16 x lanes */
#else
    float a[16];
    for (int j = 0; j < 16; j++) a[j] = 1.0f + 0.001f * j;
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < 16; j++) a[j] = fmaf(a[j], 1.0000001f, 1e-7f);
    for (int j = 0; j < 16; j++) sink += a[j];
    const double lanes = 1;
#endif
    if (sink == 42.0) printf(" ");   /* keep the accumulators alive (never true) */
    return 16.0 * lanes * 2.0 * (double)iters;   /* flop performed by this thread */
}

static double peak_gflops(int nth)
{
    long iters = 1000000;
    for (;;) {
        double t0 = omp_get_wtime(), flop = 0;
#pragma omp parallel num_threads(nth) reduction(+ : flop)
        flop += fma_loop(iters);
        double t = omp_get_wtime() - t0;
        if (t > 0.3) return flop / t * 1e-9;
        iters *= 2;
    }
}

static float *randmat(size_t n)
{
    float *m = malloc(n * sizeof *m);
    if (!m) {
        fprintf(stderr, "%s:%d: out of memory\n", __FILE__, __LINE__);
        exit(1);
    }
    unsigned s = 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        m[i] = (float)(s >> 8) * (1.0f / 16777216.0f) - 0.5f;
    }
    return m;
}

static double bench_one(int tA, int tB, int M, int N, int K)
{
    const int lda = tA ? M : K, ldb = tB ? K : N;
    float *A = randmat((size_t)M * K), *B = randmat((size_t)K * N), *C = randmat((size_t)M * N);
    nn_sgemm(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);   /* warm-up (buffers, page faults) */
    long reps = 0;
    double t0 = omp_get_wtime(), t;
    do {
        nn_sgemm(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
        reps++;
    } while ((t = omp_get_wtime() - t0) < BENCH_SECONDS || reps < 2);
    free(A);
    free(B);
    free(C);
    return 2.0 * M * N * (double)K * reps / t * 1e-9;
}

int main(void)
{
    const int nth = omp_get_max_threads();
    const double p1 = peak_gflops(1), pn = nth > 1 ? peak_gflops(nth) : p1;
    printf("bench_gemm: %d OpenMP threads, %s kernel (SF_GEMM_KERNEL)\n", nth, nn_gemm_kernel());
    printf("fp32 peak estimate (register-only FMA loop): %.1f GFLOP/s on 1 thread, %.1f GFLOP/s on %d threads\n", p1,
           pn, nth);
    const int Bt = 256;   /* batch */
    struct { const char *name; int tA, tB, M, N, K; } s[] = {
        {"conv1 fwd  W*cols   (32x9 . 9xB*676)", 0, 0, 32, Bt * 676, 9},
        {"conv2 fwd  W*cols   (64x288)", 0, 0, 64, Bt * 144, 288},
        {"conv3 fwd  W*cols   (128x576)", 0, 0, 128, Bt * 25, 576},
        {"conv4 fwd  W*cols   (256x1152)", 0, 0, 256, Bt * 4, 1152},
        {"conv  fwd  K=2304   (128x2304)", 0, 0, 128, Bt * 25, 2304},
        {"conv2 dW   dY*cols^T", 0, 1, 64, 288, Bt * 144},
        {"conv3 dW   dY*cols^T", 0, 1, 128, 576, Bt * 25},
        {"conv4 dW   dY*cols^T", 0, 1, 256, 1152, Bt * 4},
        {"conv2 dcols W^T*dY  (tconv2 fwd)", 1, 0, 288, Bt * 144, 64},
        {"conv3 dcols W^T*dY  (tconv3 fwd)", 1, 0, 576, Bt * 25, 128},
        {"conv4 dcols W^T*dY", 1, 0, 1152, Bt * 4, 256},
        {"linear 256x256 NN, batch 1024 as N", 0, 0, 256, 1024, 256},
        {"linear 256x256 NT, in*W^T, batch 1024", 0, 1, 1024, 256, 256},
        {"linear 256x256 TN, dW = dout^T in", 1, 0, 256, 256, 1024},
        {"square 512 NN", 0, 0, 512, 512, 512},
        {"square 1024 NN", 0, 0, 1024, 1024, 1024},
        {"square 1024 TT", 1, 1, 1024, 1024, 1024},
    };
    printf("%-40s %2s %6s %7s %6s %9s %7s\n", "shape", "op", "M", "N", "K", "GFLOP/s", "%peak");
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        double gf = bench_one(s[i].tA, s[i].tB, s[i].M, s[i].N, s[i].K);
        printf("%-40s %c%c %6d %7d %6d %9.1f %6.1f%%\n", s[i].name, s[i].tA ? 'T' : 'N', s[i].tB ? 'T' : 'N', s[i].M,
               s[i].N, s[i].K, gf, 100.0 * gf / pn);
        fflush(stdout);
    }
    return 0;
}
