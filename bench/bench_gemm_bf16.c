/* bench_gemm_bf16: GFLOP/s of the bf16 GEMM (common/nn/gemm_bf16.h) beside the fp32 nn_sgemm, on the GEMM shapes
 * of the paper's ScoreNet (§5.1, App. G; im2col at batch 256, as bench_gemm) and on SDXL-UNet-like shapes
 * (tokens x channels at 64x64 and 32x32 latents: attention projections, feed-forward, 3x3 conv via im2col), the
 * ones item 7 of issue 8 is for. Three columns per shape:
 *   fp32       nn_sgemm on fp32 operands
 *   bf16       nn_gemm_bf16, both operands stored bf16
 *   f32xbf16   nn_gemm_bf16 with op(A) fp32 (activations, rounded while packing) and B bf16 (weights)
 * and each one's share of its peak: fp32 against a register-only FMA loop, bf16 against a register-only
 * vdpbf16ps loop (16 lanes x 2 pairs x 2 flop per instruction), both timed on all threads at once, at the
 * clock the cores actually run. Threads: OMP_NUM_THREADS (default all cores). ~0.35 s per measurement. */
#include "gemm.h"
#include "gemm_bf16.h"
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_SECONDS 0.35

__attribute__((target("avx512f"))) static double fma_loop(long iters)
{
    __m512 a[16];
    const __m512 x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(1e-7f);
    for (int j = 0; j < 16; j++) a[j] = _mm512_set1_ps(1.0f + 0.001f * j);
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) a[j] = _mm512_fmadd_ps(a[j], x, y);
    __m512 s = a[0];
    for (int j = 1; j < 16; j++) s = _mm512_add_ps(s, a[j]);
    if (_mm512_reduce_add_ps(s) == 42.0f) printf(" ");   /* keep the chains alive (never true) */
    return 16.0 * 16.0 * 2.0 * (double)iters;
}

__attribute__((target("avx512f,avx512bf16"))) static double dpbf16_loop(long iters)
{
    __m512 a[16];
    const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3F803F80), y = (__m512bh)_mm512_set1_epi32(0x33003300);
    for (int j = 0; j < 16; j++) a[j] = _mm512_set1_ps(1.0f + 0.001f * j);
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) a[j] = _mm512_dpbf16_ps(a[j], x, y);
    __m512 s = a[0];
    for (int j = 1; j < 16; j++) s = _mm512_add_ps(s, a[j]);
    if (_mm512_reduce_add_ps(s) == 42.0f) printf(" ");
    return 16.0 * 16.0 * 2.0 * 2.0 * (double)iters;
}

static double peak(int bf16, int nth)
{
    for (long iters = 1000000;; iters *= 2) {
        double t0 = omp_get_wtime(), flop = 0;
#pragma omp parallel num_threads(nth) reduction(+ : flop)
        flop += bf16 ? dpbf16_loop(iters) : fma_loop(iters);
        const double t = omp_get_wtime() - t0;
        if (t > 0.3) return flop / t * 1e-9;
    }
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "%s:%d: out of memory\n", __FILE__, __LINE__);
        exit(1);
    }
    return p;
}

static float *randmat(size_t n, unsigned s)
{
    float *m = xmalloc(n * sizeof *m);
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        m[i] = (float)(s >> 8) * (1.0f / 16777216.0f) - 0.5f;
    }
    return m;
}

/* mode 0: fp32 sgemm; 1: bf16 x bf16; 2: fp32 A x bf16 B */
static double bench_one(int mode, int tA, int tB, int M, int N, int K)
{
    const int lda = tA ? M : K, ldb = tB ? K : N;
    float *A = randmat((size_t)M * K, 1), *B = randmat((size_t)K * N, 2), *C = randmat((size_t)M * N, 3);
    uint16_t *Ah = xmalloc((size_t)M * K * 2), *Bh = xmalloc((size_t)K * N * 2);
    nn_bf16_from_f32_array(Ah, A, (size_t)M * K);
    nn_bf16_from_f32_array(Bh, B, (size_t)K * N);
    long reps = 0;
    double t0 = 0, t = 0;
    for (int warm = 1;; warm = 0) {
        if (mode == 0) nn_sgemm(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
        else if (mode == 1) nn_gemm_bf16(tA, tB, M, N, K, 1.0f, Ah, 1, lda, Bh, 1, ldb, 0.0f, C, N);
        else nn_gemm_bf16(tA, tB, M, N, K, 1.0f, A, 0, lda, Bh, 1, ldb, 0.0f, C, N);
        if (warm) {
            t0 = omp_get_wtime();
            continue;
        }
        reps++;
        if ((t = omp_get_wtime() - t0) >= BENCH_SECONDS && reps >= 2) break;
    }
    free(A), free(B), free(C), free(Ah), free(Bh);
    return 2.0 * M * N * (double)K * reps / t * 1e-9;
}

int main(void)
{
    const int nth = omp_get_max_threads();
    __builtin_cpu_init();
    const int have512 = __builtin_cpu_supports("avx512f"), havebf16 = have512 && __builtin_cpu_supports("avx512bf16");
    const double pf = have512 ? peak(0, nth) : 0.0, pb = havebf16 ? peak(1, nth) : 0.0;
    printf("bench_gemm_bf16: %d OpenMP threads; kernels: nn_sgemm %s, nn_gemm_bf16 %s (SF_GEMM_KERNEL)\n", nth,
           nn_gemm_kernel(), nn_gemm_bf16_kernel());
    printf("peak estimates on %d threads (register-only loops): fp32 FMA %.1f GFLOP/s, bf16 vdpbf16ps %.1f GFLOP/s%s\n",
           nth, pf, pb, havebf16 ? "" : " (no AVX-512 BF16 on this CPU: no bf16 peak)");
    const int Bt = 256;
    struct {
        const char *name;
        int tA, tB, M, N, K;
    } s[] = {
        {"scorenet conv2 fwd W*cols", 0, 0, 64, Bt * 144, 288},
        {"scorenet conv3 fwd W*cols", 0, 0, 128, Bt * 25, 576},
        {"scorenet conv4 fwd W*cols", 0, 0, 256, Bt * 4, 1152},
        {"scorenet conv3 dW dY*cols^T", 0, 1, 128, 576, Bt * 25},
        {"scorenet conv3 dcols W^T*dY", 1, 0, 576, Bt * 25, 128},
        {"scorenet linear in*W^T b1024", 0, 1, 1024, 256, 256},
        {"sdxl 64x64 attn proj x*W^T", 0, 1, 4096, 640, 640},
        {"sdxl 32x32 ff down x*W^T", 0, 1, 1024, 1280, 5120},
        {"sdxl 32x32 ff up x*W^T", 0, 1, 1024, 5120, 1280},
        {"sdxl 64x64 conv3x3 W*cols", 0, 0, 320, 4096, 2880},
        {"sdxl 64x64 attn q*k^T (head 64)", 0, 1, 4096, 4096, 64},
        {"square 2048 NN", 0, 0, 2048, 2048, 2048},
    };
    printf("%-34s %2s %5s %6s %5s | %8s %6s | %8s %6s | %8s %6s | %5s\n", "shape", "op", "M", "N", "K", "fp32", "%pk",
           "bf16", "%pk", "f32xbf16", "%pk", "x");
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        double g[3];
        for (int m = 0; m < 3; m++) g[m] = bench_one(m, s[i].tA, s[i].tB, s[i].M, s[i].N, s[i].K);
        printf("%-34s %c%c %5d %6d %5d | %8.1f %5.1f%% | %8.1f %5.1f%% | %8.1f %5.1f%% | %5.2f\n", s[i].name,
               s[i].tA ? 'T' : 'N', s[i].tB ? 'T' : 'N', s[i].M, s[i].N, s[i].K, g[0], pf > 0 ? 100 * g[0] / pf : 0,
               g[1], pb > 0 ? 100 * g[1] / pb : 0, g[2], pb > 0 ? 100 * g[2] / pb : 0, g[1] / g[0]);
        fflush(stdout);
    }
    printf("(x = bf16 / fp32 GFLOP/s)\n");
    return 0;
}
