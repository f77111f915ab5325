/* nn/gemm: single-precision GEMM for the CPU engine (see gemm.h for the BLAS semantics). It carries conv2d /
 * conv-transpose2d (im2col + GEMM) and the large linear layers of the paper's ScoreNet (§5.1, App. G), so the
 * engine needs no BLAS.
 *
 * Design (GotoBLAS / BLIS structure, sized for this machine: AVX-512 with two 512-bit FMA pipes per core,
 * 48 KiB L1d, 1 MiB L2 per core):
 *   - The output C[M, N] is cut into "tasks" (blocks of at most MC_MAX rows x NC_MAX columns, or, when C is
 *     small, the split chosen by a tiny cost-model search in gemm_grid); OpenMP threads take whole tasks
 *     (dynamic schedule). K is never split across threads.
 *   - Inside a task, for each K block of kc <= KC (balanced: ceil(K / ceil(K / KC))):
 *       pack the task's rows of op(A) into MR-row micro-panels (A block, L2-resident; 8x8 AVX transposes when A
 *       is row-major); then per sub-block of up to NBP x NR columns pack op(B) into NR-wide micro-panels
 *       (untransposed B read row by row in long runs, transposed B via 16x16 AVX-512 transposes) and sweep the
 *       A micro-panels over each B micro-panel (L1-resident) with the register-tiled micro-kernel. While a
 *       sub-block is computed, the source of the next one is software-prefetched (with small M the packing is
 *       memory-latency bound and this overlaps it with compute).
 *   - Micro-kernel (AVX-512): MR x NR = 8 x 48, 24 zmm accumulators; per k: 3 vector loads of B, 8 broadcasts
 *     of A, 24 FMAs. Column edges use narrower 8x32 / 8x16 variants and masked C loads/stores; row edges use
 *     zero-padded A panels and a tile buffer. Without AVX-512 (CPU, or SF_GEMM_KERNEL=generic) a portable
 *     vectorisable-C 8x16 kernel is used.
 *   - C update per K block: C = alpha * acc + beta' * C with beta' = beta for the first K block and 1 after;
 *     beta == 0 never reads C (so C may hold NaN). alpha == 0 or K == 0 just scales C by beta (BLAS: A and B
 *     are not referenced).
 * Determinism: every C element is computed by the same sequence of operations (fma-accumulate over its K block
 * in k order, then the same update formula whatever the tile shape or edge path), independent of how tasks are
 * cut and which thread runs them, so results are bitwise identical for any thread count.
 * Packing buffers are per thread and grown once (no malloc in the hot loops, no page faults per call); a C11
 * thread-specific key frees them when the thread exits (libgomp's pool threads keep theirs between calls).
 * Measured (bench/bench_gemm, 2 threads): 65-90 % of the measured FMA peak on the ScoreNet conv shapes except
 * K = 9 (memory bound). */
#include "gemm.h"
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

/* This file is compiled twice (issue 8 item 8: a portable binary with runtime dispatch): as itself, at the
 * baseline ISA, giving the portable kernel (gemm_generic), the reference and the dispatching nn_sgemm; and
 * through gemm_avx512.c, which defines GEMM_VARIANT_AVX512 and is the only object built with AVX-512 flags
 * (Makefile AVX512_OBJ), giving nn_sgemm_avx512_. Both variants do the same arithmetic in the same order, so
 * they return the same bits (tests/test_gemm_kernels.sh). */
#include "gemm_kernels.h"
#include "log.h"
#ifdef GEMM_VARIANT_AVX512
#include "gemm_epilogue.h"
#define GEMM_AVX512 1
#include <immintrin.h>
#define GEMM_NR 48
#define GEMM_ENTRY nn_sgemm_avx512_
#else
#define GEMM_AVX512 0
#define GEMM_NR 16
#define GEMM_ENTRY gemm_generic
static void gemm_generic(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc);
#endif
#define GEMM_MR 8
#ifndef GEMM_KC
#define GEMM_KC 256                 /* K block: B micro-panel KC x NR x 4 B = 48 KiB, A micro-panel 8 KiB */
#endif
#ifndef GEMM_MC_MAX
#define GEMM_MC_MAX 512             /* rows per task: A block <= 512 x 256 x 4 B = 512 KiB (L2) */
#endif
#ifndef GEMM_NC_MAX
#define GEMM_NC_MAX 1536            /* columns per task (task granularity; B is packed NBP micro-panels at a time) */
#endif
#ifndef GEMM_NBP
#define GEMM_NBP 8                  /* B micro-panels packed at once (kc x 384 floats = 384 KiB, L2) */
#endif
#define GEMM_PACK_COST 16.0         /* grid cost model: packing one float ~ 16 multiply-adds */
#define GEMM_PAR_MIN (1L << 18)     /* multiply-adds below which a call stays on one thread (measured break-even
                                     * on 2 cores ~2^17) */

#define GEMM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GEMM_INLINE static inline __attribute__((always_inline))

/* ------------------------------------------------------------------------------------------------ reference */
#ifndef GEMM_VARIANT_AVX512

void nn_sgemm_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                double a = transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = transB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
            }
            float *c = C + (size_t)i * ldc + j;
            double v = (double)alpha * s;
            if (beta != 0.0f) v += (double)beta * (double)*c;
            *c = (float)v;
        }
}
#endif

/* ------------------------------------------------------------------------------------------------- packing */

/* A block: rows [i0, i0+mc) and k in [k0, k0+kc) of op(A) into MR-row micro-panels,
 * Ap[p * kc + k * MR + r] = op(A)[i0 + p + r, k0 + k] for panel start p (multiple of MR); rows past mc are 0. */
static void pack_A(float *restrict Ap, const float *restrict A, int lda, int transA, int i0, int mc, int k0, int kc)
{
    for (int p = 0; p < mc; p += GEMM_MR) {
        const int mr = GEMM_MIN(GEMM_MR, mc - p);
        float *restrict d = Ap + (size_t)p * kc;
        if (!transA) {   /* op(A)[i, k] = A[i * lda + k]: rows contiguous in k */
            if (mr == GEMM_MR) {
                const float *s0 = A + (size_t)(i0 + p) * lda + k0;
                int k = 0;
#if GEMM_AVX512
                for (; k + 8 <= kc; k += 8) {   /* 8 x 8 in-register transposes (AVX) */
                    const size_t L = (size_t)lda;
                    __m256 r0 = _mm256_loadu_ps(s0 + k), r1 = _mm256_loadu_ps(s0 + L + k);
                    __m256 r2 = _mm256_loadu_ps(s0 + 2 * L + k), r3 = _mm256_loadu_ps(s0 + 3 * L + k);
                    __m256 r4 = _mm256_loadu_ps(s0 + 4 * L + k), r5 = _mm256_loadu_ps(s0 + 5 * L + k);
                    __m256 r6 = _mm256_loadu_ps(s0 + 6 * L + k), r7 = _mm256_loadu_ps(s0 + 7 * L + k);
                    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
                    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
                    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
                    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
                    r0 = _mm256_shuffle_ps(t0, t2, 0x44); r1 = _mm256_shuffle_ps(t0, t2, 0xEE);
                    r2 = _mm256_shuffle_ps(t1, t3, 0x44); r3 = _mm256_shuffle_ps(t1, t3, 0xEE);
                    r4 = _mm256_shuffle_ps(t4, t6, 0x44); r5 = _mm256_shuffle_ps(t4, t6, 0xEE);
                    r6 = _mm256_shuffle_ps(t5, t7, 0x44); r7 = _mm256_shuffle_ps(t5, t7, 0xEE);
                    float *dk = d + (size_t)k * GEMM_MR;
                    _mm256_storeu_ps(dk, _mm256_permute2f128_ps(r0, r4, 0x20));
                    _mm256_storeu_ps(dk + 8, _mm256_permute2f128_ps(r1, r5, 0x20));
                    _mm256_storeu_ps(dk + 16, _mm256_permute2f128_ps(r2, r6, 0x20));
                    _mm256_storeu_ps(dk + 24, _mm256_permute2f128_ps(r3, r7, 0x20));
                    _mm256_storeu_ps(dk + 32, _mm256_permute2f128_ps(r0, r4, 0x31));
                    _mm256_storeu_ps(dk + 40, _mm256_permute2f128_ps(r1, r5, 0x31));
                    _mm256_storeu_ps(dk + 48, _mm256_permute2f128_ps(r2, r6, 0x31));
                    _mm256_storeu_ps(dk + 56, _mm256_permute2f128_ps(r3, r7, 0x31));
                }
#endif
                for (; k < kc; k++)
                    for (int r = 0; r < GEMM_MR; r++) d[(size_t)k * GEMM_MR + r] = s0[(size_t)r * lda + k];
            } else {
                for (int r = 0; r < mr; r++) {
                    const float *s = A + (size_t)(i0 + p + r) * lda + k0;
                    for (int k = 0; k < kc; k++) d[(size_t)k * GEMM_MR + r] = s[k];
                }
                for (int r = mr; r < GEMM_MR; r++)
                    for (int k = 0; k < kc; k++) d[(size_t)k * GEMM_MR + r] = 0.0f;
            }
        } else {         /* op(A)[i, k] = A[k * lda + i]: contiguous in i */
            for (int k = 0; k < kc; k++) {
                const float *s = A + (size_t)(k0 + k) * lda + i0 + p;
                float *dk = d + (size_t)k * GEMM_MR;
                if (mr == GEMM_MR) {
                    for (int r = 0; r < GEMM_MR; r++) dk[r] = s[r];
                } else {
                    for (int r = 0; r < mr; r++) dk[r] = s[r];
                    for (int r = mr; r < GEMM_MR; r++) dk[r] = 0.0f;
                }
            }
        }
    }
}

/* B micro-panel: columns [j0, j0+nr) and k in [k0, k0+kc) of op(B), Bp[k * nrp + c] = op(B)[k0 + k, j0 + c];
 * columns nr..nrp-1 are 0 (nrp = the micro-kernel's width, a multiple of 16 with AVX-512). */
static void pack_B(float *restrict Bp, const float *restrict B, int ldb, int transB, int j0, int nr, int nrp, int k0,
                   int kc)
{
    if (!transB) {       /* op(B)[k, j] = B[k * ldb + j]: contiguous in j */
        for (int k = 0; k < kc; k++) {
            const float *s = B + (size_t)(k0 + k) * ldb + j0;
            float *d = Bp + (size_t)k * nrp;
            if (nr == GEMM_NR && nrp == GEMM_NR) {
                for (int c = 0; c < GEMM_NR; c++) d[c] = s[c];
            } else {
                for (int c = 0; c < nr; c++) d[c] = s[c];
                for (int c = nr; c < nrp; c++) d[c] = 0.0f;
            }
        }
        return;
    }
    /* op(B)[k, j] = B[j * ldb + k]: contiguous in k */
#if GEMM_AVX512
    if (nr == nrp) {     /* 16 x 16 in-register transposes: 16 rows of B (columns j) x 16 k at a time */
        int k = 0;
        for (; k + 16 <= kc; k += 16)
            for (int c0 = 0; c0 < nr; c0 += 16) {
                __m512 r[16], t[16];
#pragma GCC unroll 16
                for (int q = 0; q < 16; q++) r[q] = _mm512_loadu_ps(B + (size_t)(j0 + c0 + q) * ldb + k0 + k);
                /* transpose: r[q] (lanes = 16 k values of column j0+c0+q) -> r[x] (lanes = 16 columns at k+x) */
#pragma GCC unroll 8
                for (int q = 0; q < 16; q += 2) {
                    t[q] = _mm512_unpacklo_ps(r[q], r[q + 1]);
                    t[q + 1] = _mm512_unpackhi_ps(r[q], r[q + 1]);
                }
#pragma GCC unroll 4
                for (int q = 0; q < 16; q += 4) {
                    r[q] = _mm512_shuffle_ps(t[q], t[q + 2], 0x44);
                    r[q + 1] = _mm512_shuffle_ps(t[q], t[q + 2], 0xEE);
                    r[q + 2] = _mm512_shuffle_ps(t[q + 1], t[q + 3], 0x44);
                    r[q + 3] = _mm512_shuffle_ps(t[q + 1], t[q + 3], 0xEE);
                }
#pragma GCC unroll 4
                for (int q = 0; q < 4; q++) {
                    t[q] = _mm512_shuffle_f32x4(r[q], r[q + 4], 0x88);
                    t[q + 4] = _mm512_shuffle_f32x4(r[q], r[q + 4], 0xDD);
                    t[q + 8] = _mm512_shuffle_f32x4(r[q + 8], r[q + 12], 0x88);
                    t[q + 12] = _mm512_shuffle_f32x4(r[q + 8], r[q + 12], 0xDD);
                }
#pragma GCC unroll 8
                for (int q = 0; q < 8; q++) {
                    r[q] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0x88);
                    r[q + 8] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0xDD);
                }
#pragma GCC unroll 16
                for (int q = 0; q < 16; q++) _mm512_storeu_ps(Bp + (size_t)(k + q) * nrp + c0, r[q]);
            }
        for (; k < kc; k++)
            for (int c = 0; c < nr; c++) Bp[(size_t)k * nrp + c] = B[(size_t)(j0 + c) * ldb + k0 + k];
        return;
    }
#endif
    for (int c = 0; c < nr; c++) {
        const float *s = B + (size_t)(j0 + c) * ldb + k0;
        for (int k = 0; k < kc; k++) Bp[(size_t)k * nrp + c] = s[k];
    }
    for (int k = 0; k < kc; k++)
        for (int c = nr; c < nrp; c++) Bp[(size_t)k * nrp + c] = 0.0f;
}

/* width of the micro-panel holding nr (<= NR) columns */
static inline int panel_width(int nr)
{
#if GEMM_AVX512
    return 16 * ((nr + 15) / 16);
#else
    (void)nr;
    return GEMM_NR;
#endif
}

/* Up to NBP micro-panels: columns [j0, j0+ncb) of op(B), panel q (columns j0 + q NR ...) at Bp + q NR kc.
 * Untransposed B is read row by row across all panels (long contiguous runs: friendly to the prefetcher). */
static void pack_B_block(float *restrict Bp, const float *restrict B, int ldb, int transB, int j0, int ncb, int k0,
                         int kc)
{
    if (transB) {
        for (int jr = 0; jr < ncb; jr += GEMM_NR) {
            const int nr = GEMM_MIN(GEMM_NR, ncb - jr);
            pack_B(Bp + (size_t)jr * kc, B, ldb, 1, j0 + jr, nr, panel_width(nr), k0, kc);
        }
        return;
    }
    const int nfull = ncb / GEMM_NR, rem = ncb - nfull * GEMM_NR, remw = panel_width(rem);
    for (int k = 0; k < kc; k++) {
        const float *s = B + (size_t)(k0 + k) * ldb + j0;
        for (int q = 0; q < nfull; q++) {
            float *d = Bp + (size_t)q * GEMM_NR * kc + (size_t)k * GEMM_NR;
#if GEMM_AVX512
            _mm512_storeu_ps(d, _mm512_loadu_ps(s + q * GEMM_NR));
            _mm512_storeu_ps(d + 16, _mm512_loadu_ps(s + q * GEMM_NR + 16));
            _mm512_storeu_ps(d + 32, _mm512_loadu_ps(s + q * GEMM_NR + 32));
#else
            for (int c = 0; c < GEMM_NR; c++) d[c] = s[q * GEMM_NR + c];
#endif
        }
        if (rem) {
            float *d = Bp + (size_t)nfull * GEMM_NR * kc + (size_t)k * remw;
            for (int c = 0; c < rem; c++) d[c] = s[nfull * GEMM_NR + c];
            for (int c = rem; c < remw; c++) d[c] = 0.0f;
        }
    }
}

/* ----------------------------------------------------------------------------------------- micro-kernels */

#if GEMM_AVX512
#define GEMM_ROW(i)                                                                                              \
    do {                                                                                                         \
        const __m512 ai = _mm512_set1_ps(a[i]);                                                                  \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0);                                                              \
        if (NV > 1) c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);                                                  \
        if (NV > 2) c##i##2 = _mm512_fmadd_ps(ai, b2, c##i##2);                                                  \
    } while (0)

/* C[0:mr, 0:nr] (row stride ldc) = alpha * A_panel[8, kc] B_panel[kc, 16 NV] + beta * C, packed as above. */
GEMM_INLINE void ukr_avx512(const int NV, int kc, const float *restrict a, const float *restrict b, float *c, int ldc,
                            int mr, int nr, float alpha, float beta)
{
    /* C is usually far out of cache (N ~ 10^5 columns): start fetching the tile now, so it arrives while the
     * k loop runs (prefetches never fault, so rows past mr are harmless) */
    for (int i = 0; i < GEMM_MR; i++)
        for (int v = 0; v < NV; v++) _mm_prefetch((const char *)(c + (size_t)i * ldc + 16 * v), _MM_HINT_T0);
    NN_GEMM_DECL8();
    for (int k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_loadu_ps(b);
        const __m512 b1 = NV > 1 ? _mm512_loadu_ps(b + 16) : _mm512_setzero_ps();
        const __m512 b2 = NV > 2 ? _mm512_loadu_ps(b + 32) : _mm512_setzero_ps();
        GEMM_ROW(0); GEMM_ROW(1); GEMM_ROW(2); GEMM_ROW(3);
        GEMM_ROW(4); GEMM_ROW(5); GEMM_ROW(6); GEMM_ROW(7);
        a += GEMM_MR;
        b += 16 * NV;
    }
    NN_GEMM_EPILOGUE(GEMM_NR);
}

static void ukr_nv3(int kc, const float *a, const float *b, float *c, int ldc, int mr, int nr, float alpha,
                    float beta)
{
    ukr_avx512(3, kc, a, b, c, ldc, mr, nr, alpha, beta);
}
static void ukr_nv2(int kc, const float *a, const float *b, float *c, int ldc, int mr, int nr, float alpha,
                    float beta)
{
    ukr_avx512(2, kc, a, b, c, ldc, mr, nr, alpha, beta);
}
static void ukr_nv1(int kc, const float *a, const float *b, float *c, int ldc, int mr, int nr, float alpha,
                    float beta)
{
    ukr_avx512(1, kc, a, b, c, ldc, mr, nr, alpha, beta);
}
#else
/* Portable micro-kernel: MR x NR accumulator tile, inner loop over NR contiguous columns (vectorised by
 * `omp simd`; fmaf keeps one rounding per multiply-add as in the AVX-512 kernel). */
static void ukr_portable(int kc, const float *restrict a, const float *restrict b, float *c, int ldc, int mr, int nr,
                         float alpha, float beta)
{
    float acc[GEMM_MR][GEMM_NR];
    memset(acc, 0, sizeof acc);
    for (int k = 0; k < kc; k++) {
        for (int i = 0; i < GEMM_MR; i++) {
            const float ai = a[(size_t)k * GEMM_MR + i];
#pragma omp simd
            for (int j = 0; j < GEMM_NR; j++) acc[i][j] = fmaf(ai, b[(size_t)k * GEMM_NR + j], acc[i][j]);
        }
    }
    for (int i = 0; i < mr; i++) {
        float *ci = c + (size_t)i * ldc;
        if (beta == 0.0f)
            for (int j = 0; j < nr; j++) ci[j] = alpha * acc[i][j];
        else
            for (int j = 0; j < nr; j++) ci[j] = fmaf(alpha, acc[i][j], beta * ci[j]);
    }
}
#endif

/* ---------------------------------------------------------------------------------------- blocked driver */

typedef struct {
    int transA, transB, M, N, K;
    float alpha, beta;
    const float *A, *B;
    int lda, ldb, ldc;
    float *C;
    int kcb, nkb;    /* K block size (balanced) and count */
} gemm_args;

static int ceil_div(long a, long b) { return (int)((a + b - 1) / b); }

#ifndef GEMM_VARIANT_AVX512   /* one buffer per thread, shared by every GEMM variant (gemm_kernels.h) */
/* Per-thread packing buffers, grown once (64-byte aligned). Held through a C11 thread-specific key whose
 * destructor frees them when a (pool) thread exits, so nothing leaks. */
typedef struct {
    float *p;
    size_t cap;
} gemm_buf;
static once_flag gemm_once = ONCE_FLAG_INIT;
static tss_t gemm_key;

static void gemm_buf_free(void *v)
{
    gemm_buf *b = v;
    if (b) {
        free(b->p);
        free(b);
    }
}

static void gemm_key_init(void)
{
    if (tss_create(&gemm_key, gemm_buf_free) != thrd_success) {
        fprintf(stderr, "%s:%d: nn_sgemm: tss_create failed\n", __FILE__, __LINE__);
        exit(1);
    }
}

float *nn_gemm_buffer_(size_t nfloat)
{
    call_once(&gemm_once, gemm_key_init);
    gemm_buf *b = tss_get(gemm_key);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b || tss_set(gemm_key, b) != thrd_success) {
            fprintf(stderr, "%s:%d: nn_sgemm: out of memory\n", __FILE__, __LINE__);
            exit(1);
        }
    }
    if (b->cap < nfloat) {
        free(b->p);
        const size_t bytes = (nfloat * sizeof(float) + 63) & ~(size_t)63;
        b->p = aligned_alloc(64, bytes);
        if (!b->p) {
            fprintf(stderr, "%s:%d: nn_sgemm: out of memory (%zu bytes)\n", __FILE__, __LINE__, bytes);
            exit(1);
        }
        b->cap = nfloat;
    }
    return b->p;
}
#endif

/* One task: C[i0 : i0+mc, j0 : j0+nc]. Ap holds >= round_up(mc, MR) * kcb floats, Bp >= kcb * NR * NBP. */
static void gemm_task(const gemm_args *g, int i0, int mc, int j0, int nc, float *Ap, float *Bp)
{
    const int SB = GEMM_NR * GEMM_NBP;
    for (int kb = 0; kb < g->nkb; kb++) {
        const int k0 = kb * g->kcb, kc = GEMM_MIN(g->kcb, g->K - k0);
        const float beta = kb == 0 ? g->beta : 1.0f;
        pack_A(Ap, g->A, g->lda, g->transA, i0, mc, k0, kc);
        for (int jb = 0; jb < nc; jb += SB) {
            const int ncb = GEMM_MIN(SB, nc - jb);
            pack_B_block(Bp, g->B, g->ldb, g->transB, j0 + jb, ncb, k0, kc);
            /* Software prefetch of the NEXT sub-block of B (the next columns, or the next K block), spread over
             * this sub-block's micro-kernel calls: with small M the packing is bound by memory latency, and this
             * overlaps it with compute. Region = `rows` runs of `len` bytes, stride ldb floats. */
            int jn = jb + SB, kn = k0;
            if (jn >= nc) {
                jn = 0;
                kn = k0 + kc;
            }
            const char *pf = NULL;
            long rows = 0, lines_per_row = 0, cursor = 0, per_call = 0;
            if (kn < g->K) {
                const int ncn = GEMM_MIN(SB, nc - jn), kcn = GEMM_MIN(g->kcb, g->K - kn);
                const float *start = g->transB ? g->B + (size_t)(j0 + jn) * g->ldb + kn
                                               : g->B + (size_t)kn * g->ldb + j0 + jn;
                rows = g->transB ? ncn : kcn;
                lines_per_row = ((long)(g->transB ? kcn : ncn) * 4 + 63) / 64 + 1;
                pf = (const char *)start;
                const long calls = (long)((ncb + GEMM_NR - 1) / GEMM_NR) * ((mc + GEMM_MR - 1) / GEMM_MR);
                per_call = (rows * lines_per_row + calls - 1) / calls;
            }
            for (int jr = 0; jr < ncb; jr += GEMM_NR) {
                const int nr = GEMM_MIN(GEMM_NR, ncb - jr);
                const float *bp = Bp + (size_t)jr * kc;
                for (int ir = 0; ir < mc; ir += GEMM_MR) {
                    const int mr = GEMM_MIN(GEMM_MR, mc - ir);
                    float *cp = g->C + (size_t)(i0 + ir) * g->ldc + j0 + jb + jr;
                    const float *ap = Ap + (size_t)ir * kc;
                    for (long q = 0; q < per_call && cursor < rows * lines_per_row; q++, cursor++) {
                        const long r = cursor / lines_per_row, l = cursor - r * lines_per_row;
                        __builtin_prefetch(pf + (size_t)r * g->ldb * sizeof(float) + 64 * l, 0, 1);
                    }
#if GEMM_AVX512
                    if (nr > 32) ukr_nv3(kc, ap, bp, cp, g->ldc, mr, nr, g->alpha, beta);
                    else if (nr > 16) ukr_nv2(kc, ap, bp, cp, g->ldc, mr, nr, g->alpha, beta);
                    else ukr_nv1(kc, ap, bp, cp, g->ldc, mr, nr, g->alpha, beta);
#else
                    ukr_portable(kc, ap, bp, cp, g->ldc, mr, nr, g->alpha, beta);
#endif
                }
            }
        }
    }
}



/* Task grid. With many blocks of the maximal size (large N) they are used as they are and the dynamic schedule
 * balances them. Otherwise (small C, e.g. weight gradients with huge K) a tiny search picks the split of M and N
 * into micro-panel multiples minimising the estimated time: ceil(tasks / threads) x (multiply-adds of one task +
 * GEMM_PACK_COST x floats it packs). The grid only decides who computes which block, never the arithmetic. */
static void gemm_grid(int M, int N, int K, int nth, int *mc_out, int *nc_out)
{
    const int pm = ceil_div(M, GEMM_MR), pn = ceil_div(N, GEMM_NR);   /* micro-panels */
    const int mb0 = ceil_div(M, GEMM_MC_MAX), nb0 = ceil_div(N, GEMM_NC_MAX);
    int best_mcp = ceil_div(pm, mb0), best_ncp = ceil_div(pn, nb0);
    if (nth > 1 && (long)mb0 * nb0 < 8L * nth) {
        double best = -1;
        const int lim = 8 * nth;
        for (int mb = mb0; mb <= GEMM_MIN(pm, lim); mb++)
            for (int nb = nb0; nb <= GEMM_MIN(pn, lim); nb++) {
                const int mcp = ceil_div(pm, mb), ncp = ceil_div(pn, nb);
                const long T = (long)ceil_div(pm, mcp) * ceil_div(pn, ncp);
                const double mr = (double)mcp * GEMM_MR, nr = (double)ncp * GEMM_NR;
                const double cost = (double)ceil_div(T, nth) * (mr * nr + GEMM_PACK_COST * (mr + nr)) * K;
                if (best < 0 || cost < best) {
                    best = cost;
                    best_mcp = mcp;
                    best_ncp = ncp;
                }
            }
    }
    *mc_out = best_mcp * GEMM_MR;
    *nc_out = best_ncp * GEMM_NR;
}

#ifndef GEMM_VARIANT_AVX512
static
#endif
void GEMM_ENTRY(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (alpha == 0.0f || K <= 0) {   /* C = beta * C; A and B are not referenced */
        for (int i = 0; i < M; i++) {
            float *ci = C + (size_t)i * ldc;
            if (beta == 0.0f) memset(ci, 0, (size_t)N * sizeof *ci);
            else if (beta != 1.0f)
                for (int j = 0; j < N; j++) ci[j] = beta * ci[j];
        }
        return;
    }
    gemm_args g = {transA, transB, M, N, K, alpha, beta, A, B, lda, ldb, ldc, C, 0, 0};
    g.nkb = ceil_div(K, GEMM_KC);
    g.kcb = ceil_div(K, g.nkb);

    /* task grid: mb x nb blocks of mc x nc (mc multiple of MR, nc multiple of NR) */
    const long macs = (long)M * N * K;
    int nth = (macs >= GEMM_PAR_MIN && !omp_in_parallel()) ? omp_get_max_threads() : 1;
    int mc, nc;
    gemm_grid(M, N, K, nth, &mc, &nc);
    const int mb = ceil_div(M, mc), nb = ceil_div(N, nc), ntask = mb * nb;
    if (nth > ntask) nth = ntask;
    const size_t a_sz = (size_t)mc * g.kcb, b_sz = (size_t)g.kcb * GEMM_NR * GEMM_NBP + 16;

#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        float *Ap = nn_gemm_buffer_(a_sz + b_sz);
        float *Bp = Ap + ((a_sz + 15) & ~(size_t)15);
#pragma omp for schedule(dynamic, 1)
        for (int t = 0; t < ntask; t++) {
            const int ib = t / nb, jb = t % nb;
            const int i0 = ib * mc, j0 = jb * nc;
            gemm_task(&g, i0, GEMM_MIN(mc, M - i0), j0, GEMM_MIN(nc, N - j0), Ap, Bp);
        }
    }
}

/* ------------------------------------------------------------------------------------------- dispatch */
#ifndef GEMM_VARIANT_AVX512
static once_flag gemm_choice_once = ONCE_FLAG_INIT;
static int gemm_choice;   /* 1: AVX-512 kernels */

static void gemm_choose(void)
{
    __builtin_cpu_init();
    const int have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    const char *env = getenv("SF_GEMM_KERNEL");
    if (!env || !*env || strcmp(env, "auto") == 0) gemm_choice = have;
    else if (strcmp(env, "generic") == 0) gemm_choice = 0;
    else if (strcmp(env, "avx512") == 0 || strcmp(env, "amx") == 0) {   /* amx: for nn_gemm_bf16; fp32 runs avx512 */
        if (!have) log_die("SF_GEMM_KERNEL=%s: this CPU lacks AVX-512 (F, BW, DQ, VL)", env);
        gemm_choice = 1;
    } else {
        log_die("SF_GEMM_KERNEL=%s: expected generic, avx512, amx or auto", env);
    }
}

int nn_gemm_use_avx512_(void)
{
    call_once(&gemm_choice_once, gemm_choose);
    return gemm_choice;
}

const char *nn_gemm_kernel(void) { return nn_gemm_use_avx512_() ? "avx512" : "generic"; }

void nn_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc)
{
    if (nn_gemm_use_avx512_()) nn_sgemm_avx512_(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else gemm_generic(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
#endif
