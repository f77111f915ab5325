/* nn/gemm_bf16_avx512: the AVX-512 BF16 and AMX-BF16 drivers of nn_gemm_bf16 (gemm_bf16.h; issue 8 item 7).
 * Built with AVX512_FLAGS (the Makefile's AVX512_OBJ; the AMX functions carry a target attribute) and called
 * only after nn_gemm_bf16 has checked the CPU.
 *
 * Structure of gemm.c (GotoBLAS / BLIS), in units of k PAIRS, because vdpbf16ps multiplies two bf16 pairs per
 * fp32 lane: acc[j] += a[2j] b[2j] + a[2j+1] b[2j+1]. A 32-bit word holds one pair (even k in the low half).
 *   - C is cut into tasks (<= MC_MAX rows x NC_MAX columns, split further until every thread has two);
 *     OpenMP threads take whole tasks; K is never split across threads.
 *   - Per task and K block (kc <= KC, balanced, even except possibly the last): op(A) is packed into 8-row
 *     micro-panels Ap[kk * 8 + r] = pair (A[r, 2kk], A[r, 2kk+1]); op(B), NBP micro-panels at a time, into
 *     Bp[kk * w + c] = pair (B[2kk, c], B[2kk+1, c]) (w = 16, 32 or 48). fp32 operands are rounded to bf16
 *     here (vcvtneps2bf16 / vcvtne2ps2bf16: round to nearest even); every load is masked, so edges (odd K,
 *     ragged rows / columns) are zero-padded without scalar code.
 *   - Micro-kernel 8 x 48: per k pair 3 loads of B, 8 broadcasts of an A pair, 24 vdpbf16ps into 24 zmm
 *     accumulators; narrower 8 x 32 / 8 x 16 variants and masked C access at the column edge, a tile buffer at
 *     the row edge. C update per K block: alpha acc + beta' C (beta' = beta on the first block, 1 after;
 *     beta == 0 never reads C), the same formula for every element, so results do not depend on the task
 *     split or the thread count.
 * Denormals: vcvtneps2bf16 and vdpbf16ps treat denormal inputs as zero (|x| < 1.2e-38), unlike the scalar
 * nn_f32_to_bf16 (tensor.h); no network value lives there. */
#include "gemm_kernels.h"
#include "gemm_epilogue.h"
#include <immintrin.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BF_MR 8
#define BF_NR 48
#ifndef BF_KC
#define BF_KC 384        /* k per block: B micro-panel 192 pairs x 48 x 4 B = 36 KiB (L1d 48 KiB) */
#endif
#define BF_MC_MAX 512    /* A block <= 512 x 384 x 2 B = 384 KiB (L2) */
#define BF_NC_MAX 1536
#define BF_NBP 8         /* B micro-panels packed at once: 192 pairs x 384 x 4 B = 288 KiB (L2) */
#define BF_PAR_MIN (1L << 18)

#define BF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define BF_MAX(a, b) ((a) > (b) ? (a) : (b))
#define BF_INLINE static inline __attribute__((always_inline))

typedef struct {
    const void *p;
    int bf16, ld, trans;
} operand;

static inline __mmask16 mask16(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u); }
static inline __mmask32 mask32(int n) { return n >= 32 ? (__mmask32)0xFFFFFFFFu : n <= 0 ? 0 : (__mmask32)((1u << n) - 1u); }

/* up to 16 consecutive elements from element offset o of x, as bf16 (lanes past n are 0) */
BF_INLINE __m256i ld16(const operand *x, size_t o, int n)
{
    const __mmask16 m = mask16(n);
    if (x->bf16) return _mm256_maskz_loadu_epi16(m, (const uint16_t *)x->p + o);
    return (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, (const float *)x->p + o));
}

/* up to 8 consecutive elements, as bf16 */
BF_INLINE __m128i ld8(const operand *x, size_t o, int n)
{
    const __mmask8 m = (__mmask8)mask16(n);
    if (x->bf16) return _mm_maskz_loadu_epi16(m, (const uint16_t *)x->p + o);
    return (__m128i)_mm256_cvtneps_pbh(_mm256_maskz_loadu_ps(m, (const float *)x->p + o));
}

/* up to 32 consecutive elements, as bf16 */
BF_INLINE __m512i ld32(const operand *x, size_t o, int n)
{
    if (x->bf16) return _mm512_maskz_loadu_epi16(mask32(n), (const uint16_t *)x->p + o);
    const float *f = (const float *)x->p + o;
    const __m512 lo = _mm512_maskz_loadu_ps(mask16(n), f), hi = _mm512_maskz_loadu_ps(mask16(n - 16), f + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

/* 8 x 8 transpose of 32-bit words */
BF_INLINE void tr8(__m256i v[8])
{
    __m256 r[8], t[8];
    for (int q = 0; q < 8; q++) r[q] = _mm256_castsi256_ps(v[q]);
    for (int q = 0; q < 8; q += 2) {
        t[q] = _mm256_unpacklo_ps(r[q], r[q + 1]);
        t[q + 1] = _mm256_unpackhi_ps(r[q], r[q + 1]);
    }
    for (int q = 0; q < 8; q += 4) {
        r[q] = _mm256_shuffle_ps(t[q], t[q + 2], 0x44);
        r[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], 0xEE);
        r[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0x44);
        r[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0xEE);
    }
    for (int q = 0; q < 4; q++) {
        v[q] = _mm256_castps_si256(_mm256_permute2f128_ps(r[q], r[q + 4], 0x20));
        v[q + 4] = _mm256_castps_si256(_mm256_permute2f128_ps(r[q], r[q + 4], 0x31));
    }
}

/* 16 x 16 transpose of 32-bit words, in place. This sequence, called rather than inlined, made the AMX transposed
 * writes and the token-row packing up to 1.3x faster on SDXL linear shapes than the inlined in-lane-shuffle one
 * (measured on one thread, Sapphire Rapids). */
__attribute__((noinline)) static void tr16(__m512i v[16])
{
    __m512 a[16], b[16];
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(_mm512_castsi512_ps(v[2 * i]), _mm512_castsi512_ps(v[2 * i + 1]));
        a[2 * i + 1] = _mm512_unpackhi_ps(_mm512_castsi512_ps(v[2 * i]), _mm512_castsi512_ps(v[2 * i + 1]));
    }
    for (int i = 0; i < 4; i++) {
        const __m512d x0 = _mm512_castps_pd(a[4 * i]), x1 = _mm512_castps_pd(a[4 * i + 1]);
        const __m512d x2 = _mm512_castps_pd(a[4 * i + 2]), x3 = _mm512_castps_pd(a[4 * i + 3]);
        b[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(x0, x2));
        b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(x0, x2));
        b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(x1, x3));
        b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(x1, x3));
    }
    /* b[4 g + q], 128-bit lane l: column 4 l + q of rows 4 g .. 4 g + 3 */
    for (int q = 0; q < 4; q++) {
        const __m512 d0 = _mm512_shuffle_f32x4(b[q], b[4 + q], 0x88);
        const __m512 d1 = _mm512_shuffle_f32x4(b[8 + q], b[12 + q], 0x88);
        const __m512 d2 = _mm512_shuffle_f32x4(b[q], b[4 + q], 0xdd);
        const __m512 d3 = _mm512_shuffle_f32x4(b[8 + q], b[12 + q], 0xdd);
        v[q] = _mm512_castps_si512(_mm512_shuffle_f32x4(d0, d1, 0x88));
        v[4 + q] = _mm512_castps_si512(_mm512_shuffle_f32x4(d2, d3, 0x88));
        v[8 + q] = _mm512_castps_si512(_mm512_shuffle_f32x4(d0, d1, 0xdd));
        v[12 + q] = _mm512_castps_si512(_mm512_shuffle_f32x4(d2, d3, 0xdd));
    }
}

/* ------------------------------------------------------------------------------------------------- packing */

/* rows [i0, i0 + mc) (rows past mc are 0), k in [k0, k0 + kc) of op(A): panel at row p holds kp = ceil(kc/2)
 * pairs, Ap[p * kp + kk * 8 + r] */
static void pack_A(uint32_t *restrict Ap, const operand *a, int i0, int mc, int k0, int kc)
{
    const int kp = (kc + 1) / 2;
    for (int p = 0; p < mc; p += BF_MR) {
        const int mr = BF_MIN(BF_MR, mc - p);
        uint32_t *d = Ap + (size_t)p * kp;
        if (!a->trans) {   /* rows contiguous in k: 8 rows x 8 pairs, then an 8 x 8 transpose */
            for (int kk = 0; kk < kp; kk += 8) {
                __m256i v[8];
                for (int r = 0; r < BF_MR; r++)
                    v[r] = r < mr ? ld16(a, (size_t)(i0 + p + r) * a->ld + k0 + 2 * kk, kc - 2 * kk)
                                  : _mm256_setzero_si256();
                tr8(v);
                const int np = BF_MIN(8, kp - kk);
                for (int x = 0; x < np; x++) _mm256_storeu_si256((__m256i *)(d + (size_t)(kk + x) * BF_MR), v[x]);
            }
        } else {           /* A stored [K, M]: two k rows of 8 elements, interleaved into 8 pairs */
            for (int kk = 0; kk < kp; kk++) {
                const int k = k0 + 2 * kk;
                const __m128i r0 = ld8(a, (size_t)k * a->ld + i0 + p, mr);
                const __m128i r1 = 2 * kk + 1 < kc ? ld8(a, (size_t)(k + 1) * a->ld + i0 + p, mr) : _mm_setzero_si128();
                _mm_storeu_si128((__m128i *)(d + (size_t)kk * BF_MR), _mm_unpacklo_epi16(r0, r1));
                _mm_storeu_si128((__m128i *)(d + (size_t)kk * BF_MR + 4), _mm_unpackhi_epi16(r0, r1));
            }
        }
    }
}

static inline int panel_width(int nr) { return 16 * ((nr + 15) / 16); }

/* one B micro-panel: columns [j0, j0 + nr), k in [k0, k0 + kc) of op(B): Bp[kk * w + c], w >= panel_width(nr)
 * (a multiple of 16; columns past nr are 0) */
static void pack_B(uint32_t *restrict Bp, const operand *b, int j0, int nr, int w, int k0, int kc)
{
    const int kp = (kc + 1) / 2;
    if (!b->trans) {   /* B stored [K, N]: rows 2kk and 2kk+1, 16 columns, interleaved by a word permute */
        const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                             22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        for (int kk = 0; kk < kp; kk++) {
            const int k = k0 + 2 * kk, second = 2 * kk + 1 < kc;
            for (int c = 0; c < w; c += 16) {
                const __m256i r0 = ld16(b, (size_t)k * b->ld + j0 + c, nr - c);
                const __m256i r1 = second ? ld16(b, (size_t)(k + 1) * b->ld + j0 + c, nr - c) : _mm256_setzero_si256();
                const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(r0), r1, 1);
                _mm512_storeu_si512(Bp + (size_t)kk * w + c, _mm512_permutexvar_epi16(idx, z));
            }
        }
        return;
    }
    /* B stored [N, K]: each column's pairs are contiguous; 16 columns x 16 pairs, then a 16 x 16 transpose */
    for (int c = 0; c < w; c += 16)
        for (int kk = 0; kk < kp; kk += 16) {
            __m512i v[16];
            if (!b->bf16 && c + 16 <= nr && kc - 2 * kk >= 32) {   /* a whole fp32 block: unmasked loads */
                const float *f = (const float *)b->p + (size_t)(j0 + c) * b->ld + k0 + 2 * kk;
                for (int q = 0; q < 16; q++, f += b->ld)
                    v[q] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(f + 16), _mm512_loadu_ps(f));
            } else
                for (int q = 0; q < 16; q++)
                    v[q] = c + q < nr ? ld32(b, (size_t)(j0 + c + q) * b->ld + k0 + 2 * kk, kc - 2 * kk)
                                      : _mm512_setzero_si512();
            tr16(v);
            const int np = BF_MIN(16, kp - kk);
            for (int x = 0; x < np; x++) _mm512_storeu_si512(Bp + (size_t)(kk + x) * w + c, v[x]);
        }
}

/* ----------------------------------------------------------------------------------------- micro-kernel */

#define BF_ROW(i)                                                                                              \
    do {                                                                                                       \
        const __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i]);                                            \
        c##i##0 = _mm512_dpbf16_ps(c##i##0, ai, b0);                                                           \
        if (NV > 1) c##i##1 = _mm512_dpbf16_ps(c##i##1, ai, b1);                                               \
        if (NV > 2) c##i##2 = _mm512_dpbf16_ps(c##i##2, ai, b2);                                               \
    } while (0)
/* C[0:mr, 0:nr] = alpha * Apanel[8, kp pairs] Bpanel[kp pairs, 16 NV] + beta * C */
BF_INLINE void ukr(const int NV, int kp, const uint32_t *restrict a, const uint32_t *restrict b, float *c, int ldc,
                   int mr, int nr, float alpha, float beta)
{
    for (int i = 0; i < BF_MR; i++)
        for (int v = 0; v < NV; v++) _mm_prefetch((const char *)(c + (size_t)i * ldc + 16 * v), _MM_HINT_T0);
    NN_GEMM_DECL8();
    for (int kk = 0; kk < kp; kk++) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
        const __m512bh b1 = NV > 1 ? (__m512bh)_mm512_loadu_si512(b + 16) : b0;
        const __m512bh b2 = NV > 2 ? (__m512bh)_mm512_loadu_si512(b + 32) : b0;
        BF_ROW(0); BF_ROW(1); BF_ROW(2); BF_ROW(3);
        BF_ROW(4); BF_ROW(5); BF_ROW(6); BF_ROW(7);
        a += BF_MR;
        b += 16 * NV;
    }
    NN_GEMM_EPILOGUE(BF_NR);
}

static void ukr3(int kp, const uint32_t *a, const uint32_t *b, float *c, int ldc, int mr, int nr, float al, float be)
{
    ukr(3, kp, a, b, c, ldc, mr, nr, al, be);
}
static void ukr2(int kp, const uint32_t *a, const uint32_t *b, float *c, int ldc, int mr, int nr, float al, float be)
{
    ukr(2, kp, a, b, c, ldc, mr, nr, al, be);
}
static void ukr1(int kp, const uint32_t *a, const uint32_t *b, float *c, int ldc, int mr, int nr, float al, float be)
{
    ukr(1, kp, a, b, c, ldc, mr, nr, al, be);
}

/* ---------------------------------------------------------------------------------------- blocked driver */

typedef struct {
    operand a, b;
    int M, N, K, ldc, kcb, nkb;
    float alpha, beta;
    float *C;
    /* AMX only: */
    const uint32_t *bpre;   /* op(B) already packed for the whole K (nn_gemm_bf16_amx_packed_), or NULL */
    int a_direct;           /* op(A) bf16 row-major, K % 32 == 0: the tiles read its whole 32-row panels in place */
    int trans_c;            /* C is written transposed: element (i, j) at C[j * ldc + i] */
    int mcb;                /* rows of A a B panel meets in one sweep (a_direct: <= AMX_A_BYTES, in L2) */
} bf_args;

static void task(const bf_args *g, int i0, int mc, int j0, int nc, uint32_t *Ap, uint32_t *Bp)
{
    const int SB = BF_NR * BF_NBP;
    for (int kb = 0; kb < g->nkb; kb++) {
        const int k0 = kb * g->kcb, kc = BF_MIN(g->kcb, g->K - k0), kp = (kc + 1) / 2;
        const float beta = kb == 0 ? g->beta : 1.0f;
        pack_A(Ap, &g->a, i0, mc, k0, kc);
        for (int jb = 0; jb < nc; jb += SB) {
            const int ncb = BF_MIN(SB, nc - jb);
            for (int jr = 0; jr < ncb; jr += BF_NR)
                pack_B(Bp + (size_t)jr * kp, &g->b, j0 + jb + jr, BF_MIN(BF_NR, ncb - jr), panel_width(BF_MIN(BF_NR, ncb - jr)),
                       k0, kc);
            for (int jr = 0; jr < ncb; jr += BF_NR) {
                const int nr = BF_MIN(BF_NR, ncb - jr);
                const uint32_t *bp = Bp + (size_t)jr * kp;
                for (int ir = 0; ir < mc; ir += BF_MR) {
                    const int mr = BF_MIN(BF_MR, mc - ir);
                    float *cp = g->C + (size_t)(i0 + ir) * g->ldc + j0 + jb + jr;
                    const uint32_t *ap = Ap + (size_t)ir * kp;
                    if (nr > 32) ukr3(kp, ap, bp, cp, g->ldc, mr, nr, g->alpha, beta);
                    else if (nr > 16) ukr2(kp, ap, bp, cp, g->ldc, mr, nr, g->alpha, beta);
                    else ukr1(kp, ap, bp, cp, g->ldc, mr, nr, g->alpha, beta);
                }
            }
        }
    }
}

static int ceil_div(long a, long b) { return (int)((a + b - 1) / b); }

void nn_gemm_bf16_avx512_(int transA, int transB, int M, int N, int K, float alpha, const void *A, int a_bf16,
                          int lda, const void *B, int b_bf16, int ldb, float beta, float *C, int ldc)
{
    bf_args g = {{A, a_bf16, lda, transA}, {B, b_bf16, ldb, transB}, M, N, K, ldc, 0, 0, alpha, beta, C,
                 NULL, 0, 0, 0};
    g.nkb = ceil_div(K, BF_KC);
    g.kcb = ceil_div(K, g.nkb);
    g.kcb += g.kcb & 1;   /* even: only the last block may end on half a pair */
    g.nkb = ceil_div(K, g.kcb);

    int nth = ((long)M * N * K >= BF_PAR_MIN && !omp_in_parallel()) ? omp_get_max_threads() : 1;
    /* task grid: the largest blocks, halved (the longer side first) until each thread has two */
    int mc = BF_MIN(BF_MC_MAX, ceil_div(M, BF_MR) * BF_MR), nc = BF_MIN(BF_NC_MAX, ceil_div(N, BF_NR) * BF_NR);
    while ((long)ceil_div(M, mc) * ceil_div(N, nc) < 2L * nth) {
        if (nc >= 2 * BF_NR && (nc >= mc || mc < 2 * BF_MR)) nc = ceil_div(nc / 2, BF_NR) * BF_NR;
        else if (mc >= 2 * BF_MR) mc = ceil_div(mc / 2, BF_MR) * BF_MR;
        else break;
    }
    const int mb = ceil_div(M, mc), nb = ceil_div(N, nc), ntask = mb * nb;
    if (nth > ntask) nth = ntask;
    const int kpmax = (g.kcb + 1) / 2;
    const size_t a_sz = (size_t)mc * kpmax, b_sz = (size_t)kpmax * BF_NR * BF_NBP + 16;

#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        uint32_t *Ap = (uint32_t *)nn_gemm_buffer_(a_sz + b_sz);
        uint32_t *Bp = Ap + ((a_sz + 15) & ~(size_t)15);
#pragma omp for schedule(dynamic, 1)
        for (int t = 0; t < ntask; t++) {
            const int ib = t / nb, jb = t % nb, i0 = ib * mc, j0 = jb * nc;
            task(&g, i0, BF_MIN(mc, M - i0), j0, BF_MIN(nc, N - j0), Ap, Bp);
        }
    }
}

/* ================================================================================================ AMX
 * The AMX-BF16 driver, the only AMX GEMM (nn_gemm_bf16 under SF_GEMM_KERNEL=amx, and gemm_amx.h's nn_amx_gemm,
 * which hands it an operand packed straight from an image). Sapphire Rapids and later: 8 tile registers of 16 rows
 * x 64 bytes; TDPBF16PS multiplies a 16 x 32 bf16 tile by a 32 x 16 bf16 tile (stored as 16 rows of k pairs,
 * exactly pack_B's layout) into a 16 x 16 fp32 tile: 16 K multiply-adds per cycle and lane where vdpbf16ps does 2.
 * Same task / packing structure as above, with a 32 x 32 C block per micro-kernel: tiles 0-3 accumulate C, 4-5
 * hold two A tiles (rows 0-15, 16-31), 6-7 two B tiles (columns 0-15, 16-31). B is always in 32-column panels of
 * k-pair rows (packed per task and K block, or pre-packed for the whole K by the caller). A is either read in
 * place (bf16, row-major, K % 32 == 0: whole 32-row panels are loaded from the operand, one pass over K) or packed
 * row-major, 32 rows x kcp (kc rounded up to 32, zero-padded) per K block. A B operand stored [N, K] in bf16 (a
 * linear layer's weights) makes the driver compute C^T = B op(A)^T instead, so the weights are the in-place tile
 * rows and C is written transposed. */
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AMX_MR 32
#define AMX_NR 32
#ifndef AMX_KC
#define AMX_KC 512
#endif
#ifndef AMX_MC_MAX
#define AMX_MC_MAX 512
#endif
#define AMX_NC_MAX 1536
#define AMX_NBP 8
#define AMX_MC_DIRECT 4096
#ifndef AMX_TASKS_PRE
#define AMX_TASKS_PRE 8L
#endif
#ifndef AMX_A_BYTES
#define AMX_A_BYTES (1 << 20)   /* rows of an in-place A swept per B panel: <= 1 MiB (L2 2 MiB) */
#endif
#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;

int nn_gemm_amx_available_(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!((d >> 22) & 1) || !((d >> 24) & 1)) return 0;   /* AMX-BF16, AMX-TILE */
    /* the kernel must agree to save the 8 KiB tile state of this process (Linux >= 5.16) */
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
}

/* A block for AMX: rows [i0, i0 + mc) of op(A) (rows past mc up to a multiple of 32 are 0), k in [k0, k0 + kc)
 * (zero up to kcp): Ap[r * kcp + k] */
static void pack_A_amx(uint16_t *restrict Ap, const operand *a, int i0, int mc, int k0, int kc, int kcp)
{
    const int mrows = (mc + AMX_MR - 1) / AMX_MR * AMX_MR;
    if (!a->trans) {
        for (int r = 0; r < mrows; r++)
            for (int k = 0; k < kcp; k += 32) {
                const __m512i v = r < mc ? ld32(a, (size_t)(i0 + r) * a->ld + k0 + k, kc - k) : _mm512_setzero_si512();
                _mm512_storeu_si512(Ap + (size_t)r * kcp + k, v);
            }
        return;
    }
    /* A stored [K, M]: 32 rows of one k at a time, scattered down the column k */
    for (int r = 0; r < mrows; r++) memset(Ap + (size_t)r * kcp + kc, 0, (size_t)(kcp - kc) * 2);
    for (int p = 0; p < mrows; p += 32) {
        const int n = BF_MIN(32, mc - p);
        for (int k = 0; k < kc; k++) {
            uint16_t t[32] __attribute__((aligned(64)));
            _mm512_store_si512(t, n > 0 ? ld32(a, (size_t)(k0 + k) * a->ld + i0 + p, n) : _mm512_setzero_si512());
            for (int r = 0; r < 32; r++) Ap[(size_t)(p + r) * kcp + k] = t[r];
        }
    }
}

/* C[0:mr, 0:nr] = alpha * A[32 rows, kcp] B[kcp, 32] + beta * C, A rows lda elements apart. `partial`: C holds
 * this GEMM's own partial sums from earlier K blocks (beta is then 1). With alpha 1 the tiles CARRY the sum across K
 * blocks: a first block with beta 0 starts from zero, a partial-sum block starts from C, and both store back, so
 * every element is one running fp32 sum over the whole K in k order, the same bits as a single pass (full blocks
 * go straight between the tiles and C, edge blocks through the 32 x 32 buffer). Otherwise (alpha != 1, a caller's
 * beta != 0 on the first block, or C transposed: always one block) the block's sum goes through the buffer into
 * the masked alpha/beta update, transposed 16 x 16 at a time for trans_c. */
AMX_TARGET static void ukr_amx(int kcp, const uint16_t *a, size_t lda, const uint32_t *b, float *c, int ldc, int mr,
                               int nr, float alpha, float beta, int partial, int trans_c)
{
    float buf[AMX_MR * AMX_NR] __attribute__((aligned(64)));
    const int carry = !trans_c && alpha == 1.0f && (beta == 0.0f || partial), full = mr == AMX_MR && nr == AMX_NR;
    /* tile q (0-3) holds block rows 16 (q / 2).., columns 16 (q % 2)..; it loads / stores at t + o[q], rows ts
     * bytes apart: C itself, the buffer as a 32 x 32 copy of C (carry at an edge), or the buffer as four 16 x 16
     * tiles (the alpha / beta update reads those) */
    float *t = carry && full ? c : buf;
    const size_t tl = carry ? (full ? (size_t)ldc : AMX_NR) : 16, ts = tl * 4;
    const size_t o1 = carry ? 16 : 256, o2 = carry ? 16 * tl : 512, o3 = carry ? 16 * tl + 16 : 768;
    if (carry && partial && !full)
        for (int i = 0; i < mr; i++) memcpy(buf + i * AMX_NR, c + (size_t)i * ldc, (size_t)nr * 4);
    __asm__ volatile("" ::: "memory");   /* earlier stores to C / buf are visible to the tile loads below */
    if (carry && partial) {
        _tile_loadd(0, t, ts);
        _tile_loadd(1, t + o1, ts);
        _tile_loadd(2, t + o2, ts);
        _tile_loadd(3, t + o3, ts);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    const uint16_t *a1 = a + 16 * lda;
    for (int k = 0; k < kcp; k += 32) {
        _tile_loadd(4, a + k, lda * 2);
        _tile_loadd(5, a1 + k, lda * 2);
        _tile_loadd(6, b + (size_t)(k / 2) * AMX_NR, AMX_NR * 4);
        _tile_loadd(7, b + (size_t)(k / 2) * AMX_NR + 16, AMX_NR * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, t, ts);
    _tile_stored(1, t + o1, ts);
    _tile_stored(2, t + o2, ts);
    _tile_stored(3, t + o3, ts);
    __asm__ volatile("" ::: "memory");   /* GCC's tile intrinsics are asm without memory operands: make the
                                          * compiler see that C / buf was written */
    if (carry) {
        if (!full)
            for (int i = 0; i < mr; i++) memcpy(c + (size_t)i * ldc, buf + i * AMX_NR, (size_t)nr * 4);
        return;
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const int beta0 = beta == 0.0f;
    for (int q = 0; q < 4; q++) {
        const int qi = q / 2 * 16, qj = q % 2 * 16;
        if (qi >= mr || qj >= nr) continue;
        const float *tq = buf + 256 * q;
        if (!trans_c) {
            const int cols = BF_MIN(16, nr - qj);
            for (int r = 0; r < 16 && qi + r < mr; r++)
                nn_gemm_upd16(c + (size_t)(qi + r) * ldc + qj, _mm512_load_ps(tq + 16 * r), cols == 16, mask16(cols),
                              va, vb, beta0);
            continue;
        }
        __m512i v[16];   /* C^T: tile columns become rows of C */
        for (int r = 0; r < 16; r++) v[r] = _mm512_load_si512(tq + 16 * r);
        tr16(v);
        const int cols = BF_MIN(16, mr - qi);
        for (int r = 0; r < 16 && qj + r < nr; r++)
            nn_gemm_upd16(c + (size_t)(qj + r) * ldc + qi, _mm512_castsi512_ps(v[r]), cols == 16, mask16(cols), va,
                          vb, beta0);
    }
}

static void task_amx(const bf_args *g, int i0, int mc, int j0, int nc, uint16_t *Ap, uint32_t *Bp)
{
    const int SB = AMX_NR * AMX_NBP;
    const int mfull = g->a_direct ? mc / AMX_MR * AMX_MR : 0;   /* rows read in place; the rest is packed */
    for (int kb = 0; kb < g->nkb; kb++) {
        const int k0 = kb * g->kcb, kc = BF_MIN(g->kcb, g->K - k0), kcp = (kc + 31) / 32 * 32;
        const float beta = kb == 0 ? g->beta : 1.0f;
        if (mfull < mc) pack_A_amx(Ap, &g->a, i0 + mfull, mc - mfull, k0, kc, kcp);
        for (int jb = 0; jb < nc; jb += SB) {
            const int ncb = BF_MIN(SB, nc - jb);
            for (int jr = 0; jr < ncb && !g->bpre; jr += AMX_NR) {
                uint32_t *bp = Bp + (size_t)jr * (kcp / 2);
                pack_B(bp, &g->b, j0 + jb + jr, BF_MIN(AMX_NR, ncb - jr), AMX_NR, k0, kc);
                const int kp = (kc + 1) / 2;
                memset(bp + (size_t)kp * AMX_NR, 0, (size_t)(kcp / 2 - kp) * AMX_NR * 4);
            }
            /* a B panel (32 columns x kc) stays in L1 while the A rows of the sweep (in L2) pass it */
            for (int m0 = 0; m0 < mc; m0 += g->mcb)
                for (int jr = 0; jr < ncb; jr += AMX_NR) {
                    const int j = j0 + jb + jr;
                    /* a pre-packed panel holds all K / 2 pair rows: this K block's rows start at k0 / 2 */
                    const uint32_t *bp = g->bpre ? g->bpre + ((size_t)j / AMX_NR * (g->K / 2) + k0 / 2) * AMX_NR
                                                 : Bp + (size_t)jr * (kcp / 2);
                    for (int ir = m0; ir < BF_MIN(mc, m0 + g->mcb); ir += AMX_MR) {
                        const int i = i0 + ir;
                        const uint16_t *ap = ir < mfull ? (const uint16_t *)g->a.p + (size_t)i * g->a.ld + k0
                                                        : Ap + (size_t)(ir - mfull) * kcp;
                        float *cp = g->trans_c ? g->C + (size_t)j * g->ldc + i : g->C + (size_t)i * g->ldc + j;
                        ukr_amx(kcp, ap, ir < mfull ? (size_t)g->a.ld : (size_t)kcp, bp, cp, g->ldc,
                                BF_MIN(AMX_MR, mc - ir), BF_MIN(AMX_NR, ncb - jr), g->alpha, beta, kb > 0,
                                g->trans_c);
                    }
                }
        }
    }
}

AMX_TARGET void nn_amx_tiles_on_(void)
{
    amx_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    __asm__ volatile("" : : "r"(&cfg) : "memory");   /* keep the stores above (see ukr_amx) */
    _tile_loadconfig(&cfg);
}

AMX_TARGET static void amx_release(void) { _tile_release(); }

static void amx_run(bf_args *g)
{
    const int M = g->M, N = g->N, K = g->K;
    int mc_max = AMX_MC_MAX;
    g->mcb = M;
    if (g->a_direct) {
        /* one pass over K: A is read in place, so tasks may span many rows (B, packed per task, is then packed
         * few times) */
        g->nkb = 1;
        g->kcb = K;
        mc_max = AMX_MC_DIRECT;
        g->mcb = BF_MAX(AMX_MR, (int)(AMX_A_BYTES / ((size_t)2 * K)) / AMX_MR * AMX_MR);
    } else {
        g->nkb = ceil_div(K, AMX_KC);
        g->kcb = ceil_div(K, g->nkb);
        g->kcb = (g->kcb + 31) / 32 * 32;   /* whole tiles: only the last block is zero-padded */
        g->nkb = ceil_div(K, g->kcb);
    }

    int nth = ((long)M * N * K >= BF_PAR_MIN && !omp_in_parallel()) ? omp_get_max_threads() : 1;
    int mc = BF_MIN(mc_max, ceil_div(M, AMX_MR) * AMX_MR), nc = BF_MIN(AMX_NC_MAX, ceil_div(N, AMX_NR) * AMX_NR);
    /* halve the longer side until each thread has two tasks (AMX_TASKS_PRE with B pre-packed: nothing is packed
     * per task, and more, smaller tasks balance the threads); with A in place, columns first (each task packs its
     * own B) while whole chunks of AMX_NBP panels remain */
    const long want = (g->bpre && nth > 1 ? AMX_TASKS_PRE : 2L) * nth;
    while ((long)ceil_div(M, mc) * ceil_div(N, nc) < want) {
        if (nc >= 2 * AMX_NR && (nc >= mc || mc < 2 * AMX_MR || (g->a_direct && nc >= 2 * AMX_NR * AMX_NBP)))
            nc = ceil_div(nc / 2, AMX_NR) * AMX_NR;
        else if (mc >= 2 * AMX_MR) mc = ceil_div(mc / 2, AMX_MR) * AMX_MR;
        else break;
    }
    const int mb = ceil_div(M, mc), nb = ceil_div(N, nc), ntask = mb * nb;
    if (nth > ntask) nth = ntask;
    /* in 4-byte units: packed A rows (one ragged panel when A is read in place), packed B panels */
    const size_t a_sz = (size_t)(g->a_direct ? AMX_MR : ceil_div(mc, AMX_MR) * AMX_MR) * ((g->kcb + 31) / 32 * 16);
    const size_t b_sz = g->bpre ? 0 : (size_t)((g->kcb + 31) / 32 * 16) * AMX_NR * AMX_NBP;

#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        float *buf = nn_gemm_buffer_(a_sz + b_sz + 32);
        uint16_t *Ap = (uint16_t *)(((uintptr_t)buf + 63) & ~(uintptr_t)63);
        uint32_t *Bp = (uint32_t *)Ap + ((a_sz + 15) & ~(size_t)15);
        nn_amx_tiles_on_();
#pragma omp for schedule(dynamic, 1)
        for (int t = 0; t < ntask; t++) {
            const int ib = t / nb, jb = t % nb, i0 = ib * mc, j0 = jb * nc;
            task_amx(g, i0, BF_MIN(mc, M - i0), j0, BF_MIN(nc, N - j0), Ap, Bp);
        }
        amx_release();
    }
}

void nn_gemm_bf16_amx_(int transA, int transB, int M, int N, int K, float alpha, const void *A, int a_bf16, int lda,
                       const void *B, int b_bf16, int ldb, float beta, float *C, int ldc)
{
    const int k32 = K % 32 == 0;
    if (transB && b_bf16 && k32 && (long)K * ceil_div(M, AMX_MC_MAX) >= 2L * M) {
        /* B stored [N, K] in bf16 (a linear layer's weights): C^T = B op(A)^T with B read in place as the tile
         * rows and op(A)^T packed, C written transposed. Worth it when the packed path would pack B many times
         * (once per AMX_MC_MAX rows of op(A)) compared with the transposed writes of C (measured here: ff layers,
         * K >= 1280, 1.1-1.6x faster; attention projections, K = 640, and K = 256 slower, so they stay packed) */
        bf_args g = {{B, 1, ldb, 0}, {A, a_bf16, lda, !transA}, N, M, K, ldc, 0, 0, alpha, beta, C, NULL, 1, 1, 0};
        amx_run(&g);
        return;
    }
    /* otherwise both operands are packed per K block (measured faster here than A in place for W * cols) */
    bf_args g = {{A, a_bf16, lda, transA}, {B, b_bf16, ldb, transB}, M, N, K, ldc, 0, 0, alpha, beta, C, NULL, 0, 0, 0};
    amx_run(&g);
}

void nn_gemm_bf16_amx_packed_(int M, int N, int K, const uint16_t *A, int lda, const void *Bpacked, float beta,
                              float *C, int ldc, int trans_c)
{
    bf_args g = {{A, 1, lda, 0}, {NULL, 1, 0, 0}, M, N, K, ldc, 0, 0, 1.0f, beta, C, Bpacked, 1, trans_c, 0};
    amx_run(&g);
}

void nn_gemm_bf16_amx_pack_rows_(void *packed, const float *X, int ldx, int N, int K)
{
    const operand x = {X, 0, ldx, 1};   /* op(B) = X^T: B stored [N, K] */
    const int np = (N + AMX_NR - 1) / AMX_NR;
#pragma omp parallel for schedule(static) if ((long)N * K > (1L << 15))
    for (int p = 0; p < np; p++)
        pack_B((uint32_t *)packed + (size_t)p * (K / 2) * AMX_NR, &x, p * AMX_NR, BF_MIN(AMX_NR, N - p * AMX_NR),
               AMX_NR, 0, K);
}
