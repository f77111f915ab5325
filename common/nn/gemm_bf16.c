/* nn/gemm_bf16: bf16 conversion, the reference bf16 GEMM, the portable path and the run-time dispatch (see
 * gemm_bf16.h). The AVX-512 BF16 driver is gemm_bf16_avx512.c (built with AVX-512 flags, reached only after the
 * CPU check). Portable path: for each K block of GENERIC_KB, round op(A)[:, kblock] and op(B)[kblock, :] to
 * bf16-valued fp32 buffers and call nn_sgemm (so a CPU with AVX-512 but no BF16 still gets the packed fp32
 * AVX-512 kernel); the products are the same exact bf16 x bf16 products, accumulated in fp32. */
#include "gemm_bf16.h"
#include "gemm.h"
#include "gemm_kernels.h"
#include "log.h"
#include "mem.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#define GENERIC_KB 256
#define CONV_PAR_MIN 65536   /* elements below which a conversion stays on one thread */

uint16_t nn_bf16_from_f32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u);   /* NaN: force quiet */
    u += 0x7FFFu + ((u >> 16) & 1u);                                               /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float nn_bf16_to_f32(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

void nn_bf16_from_f32_array(uint16_t *dst, const float *src, size_t n)
{
#pragma omp parallel for if (n >= CONV_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = nn_bf16_from_f32(src[i]);
}

void nn_bf16_to_f32_array(float *dst, const uint16_t *src, size_t n)
{
#pragma omp parallel for if (n >= CONV_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = nn_bf16_to_f32(src[i]);
}

/* element [r, c] of a matrix stored row-major with row stride ld, as its bf16 value in fp32 */
static inline float elem(const void *X, int bf16, int ld, int r, int c)
{
    const size_t o = (size_t)r * ld + c;
    return bf16 ? nn_bf16_to_f32(((const uint16_t *)X)[o]) : nn_bf16_to_f32(nn_bf16_from_f32(((const float *)X)[o]));
}

void nn_gemm_bf16_ref(int transA, int transB, int M, int N, int K, float alpha, const void *A, int a_bf16, int lda,
                      const void *B, int b_bf16, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                const double a = transA ? elem(A, a_bf16, lda, k, i) : elem(A, a_bf16, lda, i, k);
                const double b = transB ? elem(B, b_bf16, ldb, j, k) : elem(B, b_bf16, ldb, k, j);
                s += a * b;
            }
            float *c = C + (size_t)i * ldc + j;
            double v = (double)alpha * s;
            if (beta != 0.0f) v += (double)beta * (double)*c;
            *c = (float)v;
        }
}

static void gemm_bf16_generic(int transA, int transB, int M, int N, int K, float alpha, const void *A, int a_bf16,
                              int lda, const void *B, int b_bf16, int ldb, float beta, float *C, int ldc)
{
    const int kb_max = K < GENERIC_KB ? K : GENERIC_KB;
    float *Af = mem_new(float, (size_t)M * kb_max), *Bf = mem_new(float, (size_t)kb_max * N);
    for (int k0 = 0; k0 < K; k0 += GENERIC_KB) {
        const int kb = K - k0 < GENERIC_KB ? K - k0 : GENERIC_KB;
#pragma omp parallel for if ((long)M * kb >= CONV_PAR_MIN) schedule(static)
        for (int i = 0; i < M; i++)
            for (int k = 0; k < kb; k++)
                Af[(size_t)i * kb + k] = transA ? elem(A, a_bf16, lda, k0 + k, i) : elem(A, a_bf16, lda, i, k0 + k);
#pragma omp parallel for if ((long)N * kb >= CONV_PAR_MIN) schedule(static)
        for (int k = 0; k < kb; k++)
            for (int j = 0; j < N; j++)
                Bf[(size_t)k * N + j] = transB ? elem(B, b_bf16, ldb, j, k0 + k) : elem(B, b_bf16, ldb, k0 + k, j);
        nn_sgemm(0, 0, M, N, kb, alpha, Af, kb, Bf, N, k0 == 0 ? beta : 1.0f, C, ldc);
    }
    free(Af);
    free(Bf);
}

static once_flag bf16_once = ONCE_FLAG_INIT;
static int bf16_avx512;

static void bf16_choose(void)
{
    __builtin_cpu_init();
    bf16_avx512 = nn_gemm_use_avx512_() && __builtin_cpu_supports("avx512bf16");
    const char *env = getenv("SF_GEMM_KERNEL");
    if (env && strcmp(env, "avx512") == 0 && !bf16_avx512)
        log_die("SF_GEMM_KERNEL=avx512: this CPU lacks AVX-512 BF16 (nn_gemm_bf16)");
}

const char *nn_gemm_bf16_kernel(void)
{
    call_once(&bf16_once, bf16_choose);
    return bf16_avx512 ? "avx512bf16" : "generic";
}

void nn_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const void *A, int a_bf16, int lda,
                  const void *B, int b_bf16, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (alpha == 0.0f || K <= 0) {   /* C = beta * C; A and B are not referenced (BLAS) */
        for (int i = 0; i < M; i++) {
            float *ci = C + (size_t)i * ldc;
            if (beta == 0.0f) memset(ci, 0, (size_t)N * sizeof *ci);
            else if (beta != 1.0f)
                for (int j = 0; j < N; j++) ci[j] = beta * ci[j];
        }
        return;
    }
    call_once(&bf16_once, bf16_choose);
    if (bf16_avx512) nn_gemm_bf16_avx512_(transA, transB, M, N, K, alpha, A, a_bf16, lda, B, b_bf16, ldb, beta, C, ldc);
    else gemm_bf16_generic(transA, transB, M, N, K, alpha, A, a_bf16, lda, B, b_bf16, ldb, beta, C, ldc);
}
