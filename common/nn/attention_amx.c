/* nn/attention_amx: the AMX-BF16 kernel of nn_attention_bf16_forward (see attention.h), tiled attention with an
 * online softmax (Dao et al. 2022) on Intel AMX tiles.
 *
 * Per call, K and V of every (batch, head) are rounded to bf16 (RNE) once and packed into the layouts the AMX "B"
 * operand wants (pairs of consecutive k in one 32-bit slot), zero-padded to whole tiles: dh to dhp (a multiple of
 * 32) and Tk to Tkp (a multiple of 32), so any head size and key count work (padding adds exact zeros to the dot
 * products; padded keys are masked out of the softmax). Then each task, one (batch, head, block of AT_QB = 32 query
 * rows), walks the keys in blocks of AT_KB = 128:
 *     S[32, KB]  = Q K^T              four 16x16 fp32 tiles per 32 keys (2x2 blocking: one tile load per TDPBF16PS)
 *     m, l, P    online softmax in fp32 AVX-512 (exp2 with the scale * log2(e) folded in); P rounded to bf16,
 *                and l sums the ROUNDED P, so the weights applied to V are exactly the ones normalised
 *     O[32, dhp] = O * e^{m_old - m} + P V     O lives in memory (the rescale is a vector pass); its tiles are
 *                loaded, accumulated over the block's keys and stored back
 * and writes out = O / l for its real rows and head columns. The [Tq x Tk] score matrix never exists beyond one
 * 32 x AT_KB block per thread. Products of bf16 values are exact in fp32 and sums are fp32; the error against the
 * fp32 kernel is the bf16 rounding of q, k, v and P (~2^-9 relative each).
 *
 * Compiled with AVX512_FLAGS and -mamx-* (Makefile), reached only after nn_amx_available() (attention.c). The
 * work split (pack chunks, then tasks) fixes every sum's order, so results do not depend on the thread count. */
#include "attention.h"
#include "gemm_kernels.h"
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#define AT_QB 32
#ifndef AT_KB
#define AT_KB 128
#endif
#define AT_LAZY 8.0f   /* log2 units the running max may lag behind (see the softmax in attn_task) */

static inline int pad32(int n) { return (n + 31) / 32 * 32; }
static inline size_t up16(size_t n) { return (n + 15) / 16 * 16; }

/* per thread, in floats: Q bf16 [32][dhp], S fp32 [32][KB], P bf16 [32][KB], O fp32 [32][dhp], m[32], l[32] */
static size_t thread_floats(int dhp)
{
    return up16((size_t)AT_QB * dhp / 2) + up16((size_t)AT_QB * AT_KB) + up16((size_t)AT_QB * AT_KB / 2) +
           up16((size_t)AT_QB * dhp) + 2 * AT_QB;
}

size_t nn_attention_amx_ws_floats_(int B, int heads, int Tk, int dh, int threads)
{
    const int dhp = pad32(dh), Tkp = pad32(Tk);
    /* packed K and V: one bf16 each per (b, h, key, column) = one float slot per element for the pair */
    const size_t kv = up16((size_t)B * heads * Tkp * dhp / 2) * 2;
    return kv + thread_floats(dhp) * (size_t)(threads > 0 ? threads : 1) + 16;
}

/* The 32 x 32 fp32 block in tiles 0-3 (rows 0-15 / 16-31 by columns 0-15 / 16-31) and its update by the two
 * 16-row A tiles a0, a1 (row stride sa bytes) times the two 16-column B tiles b0, b1 (stride sb): the one tile
 * step of both products, S = Q K^T and O += P V. */
static inline __attribute__((always_inline)) void tiles_dp_2x2(const void *a0, const void *a1, int sa, const void *b0,
                                                               const void *b1, int sb)
{
    _tile_loadd(4, a0, sa);
    _tile_loadd(5, a1, sa);
    _tile_loadd(6, b0, sb);
    _tile_loadd(7, b1, sb);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
}
static inline __attribute__((always_inline)) void tiles_load_2x2(const float *c, int ldc)
{
    _tile_loadd(0, c, ldc * 4);
    _tile_loadd(1, c + 16, ldc * 4);
    _tile_loadd(2, c + (size_t)16 * ldc, ldc * 4);
    _tile_loadd(3, c + (size_t)16 * ldc + 16, ldc * 4);
}
static inline __attribute__((always_inline)) void tiles_store_2x2(float *c, int ldc)
{
    _tile_stored(0, c, ldc * 4);
    _tile_stored(1, c + 16, ldc * 4);
    _tile_stored(2, c + (size_t)16 * ldc, ldc * 4);
    _tile_stored(3, c + (size_t)16 * ldc + 16, ldc * 4);
}

static inline __mmask16 mask16(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u); }

/* 16 fp32 of x[0..n) (0 past n) rounded to bf16 */
static inline __m256i bf16x16(const float *x, int n)
{
    return (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask16(n), x));
}

/* 2^x for x <= AT_LAZY (x = -inf gives ~2^-126, the caller masks those lanes): 2^n 2^f, f in [-1/2, 1/2], degree-5
 * Taylor polynomial (relative error < 3e-6, far below the bf16 rounding of P that follows) */
static inline __m512 exp2_neg(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-126.0f));
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.3333558e-3f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504109e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022651e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* Pack keys [j0, j0 + 32) of one head. Kp: chunks of 16 keys, each [dhp/2 pairs][16 keys] of 32-bit pairs
 * (a B tile of Q K^T: 16 pairs of the head dimension x 16 keys, rows 64 B apart). Vp: [Tkp/2 key pairs][dhp]
 * (a B tile of P V: 16 key pairs x 16 head columns, rows dhp * 4 B apart). Keys >= Tk are zero. */
static void pack_kv(uint32_t *Kp, uint32_t *Vp, const float *k, int ldk, const float *v, int ldv, int j0, int Tk,
                    int dh, int dhp)
{
    uint16_t row[2][512 + 32] __attribute__((aligned(64)));
    for (int j = j0; j < j0 + 32; j++) {
        uint16_t *r = row[0];
        for (int e = 0; e < dhp; e += 16)
            _mm256_store_si256((__m256i *)(r + e), j < Tk ? bf16x16(k + (size_t)j * ldk + e, dh - e)
                                                          : _mm256_setzero_si256());
        const uint32_t *w = (const uint32_t *)r;
        uint32_t *dst = Kp + (size_t)(j / 16) * (dhp / 2) * 16 + j % 16;
        for (int p = 0; p < dhp / 2; p++) dst[(size_t)p * 16] = w[p];
    }
    /* interleave two key rows: slot (jp, e) = v[2 jp][e] low, v[2 jp + 1][e] high */
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int j = j0; j < j0 + 32; j += 2) {
        uint32_t *dst = Vp + (size_t)(j / 2) * dhp;
        for (int e = 0; e < dhp; e += 16) {
            const __mmask16 m = mask16(dh - e);
            const __m512 a = j < Tk ? _mm512_maskz_loadu_ps(m, v + (size_t)j * ldv + e) : _mm512_setzero_ps();
            const __m512 b = j + 1 < Tk ? _mm512_maskz_loadu_ps(m, v + (size_t)(j + 1) * ldv + e) : _mm512_setzero_ps();
            const __m512i c = (__m512i)_mm512_cvtne2ps_pbh(b, a);
            _mm512_storeu_si512(dst + e, _mm512_permutexvar_epi16(idx, c));
        }
    }
}

/* One task: query rows q[0..nq) (nq <= 32) of one head against its packed keys / values. */
static void attn_task(float *out, int ldo, const float *q, int ldq, const uint32_t *Kp, const uint32_t *Vp, int nq,
                      int Tk, int dh, int dhp, float scale, float *tw)
{
    const int Tkp = pad32(Tk);
    uint16_t *Q = (uint16_t *)tw;
    float *S = tw + up16((size_t)AT_QB * dhp / 2);
    uint16_t *P = (uint16_t *)(S + up16((size_t)AT_QB * AT_KB));
    float *O = (float *)P + up16((size_t)AT_QB * AT_KB / 2);
    float *m = O + up16((size_t)AT_QB * dhp), *l = m + AT_QB;
    for (int i = 0; i < AT_QB; i++)
        for (int e = 0; e < dhp; e += 16)
            _mm256_storeu_si256((__m256i *)(Q + (size_t)i * dhp + e),
                                i < nq ? bf16x16(q + (size_t)i * ldq + e, dh - e) : _mm256_setzero_si256());
    memset(O, 0, sizeof(float) * AT_QB * dhp);
    for (int i = 0; i < AT_QB; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    const float c2 = scale * 1.44269504088896341f;   /* e^{scale s} = 2^{c2 s} */
    const size_t kchunk = (size_t)(dhp / 2) * 16;    /* 32-bit slots per 16 packed keys */
    for (int j0 = 0; j0 < Tkp; j0 += AT_KB) {
        const int nk = Tkp - j0 < AT_KB ? Tkp - j0 : AT_KB;   /* a multiple of 32 */
        const int valid = Tk - j0;                            /* keys of this block that exist (may be < nk) */
        __asm__ volatile("" ::: "memory");
        for (int cc = 0; cc < nk; cc += 32) {
            const uint32_t *kb = Kp + (size_t)((j0 + cc) / 16) * kchunk;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int kk = 0; kk < dhp; kk += 32)
                tiles_dp_2x2(Q + kk, Q + (size_t)16 * dhp + kk, dhp * 2, kb + (size_t)(kk / 2) * 16,
                             kb + kchunk + (size_t)(kk / 2) * 16, 64);
            tiles_store_2x2(S + cc, AT_KB);
        }
        __asm__ volatile("" ::: "memory");
        /* online softmax per row, in base 2: t = c2 s, P = 2^{t - m} rounded to bf16. The running max m is moved
         * only when the block's max exceeds it by more than AT_LAZY (then O and l are rescaled by 2^{m_old - m}):
         * P <= 2^AT_LAZY meanwhile, harmless in fp32 and bf16 (8-bit exponent), and O / l is the same quotient,
         * while most blocks after the first skip the rescale */
        const __m512 vc2 = _mm512_set1_ps(c2);
        const int full = valid >= nk;
        for (int i = 0; i < AT_QB; i++) {
            const float *s = S + (size_t)i * AT_KB;
            __m512 vmx = _mm512_loadu_ps(s);
            if (full)
                for (int j = 16; j < nk; j += 16) vmx = _mm512_max_ps(vmx, _mm512_loadu_ps(s + j));
            else
                for (int j = 16; j < nk; j += 16)
                    vmx = _mm512_mask_max_ps(vmx, mask16(valid - j), vmx, _mm512_loadu_ps(s + j));
            if (valid < 16) vmx = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), mask16(valid), vmx);
            const float mx = _mm512_reduce_max_ps(vmx) * c2;
            if (mx > m[i] + AT_LAZY) {
                if (m[i] != -INFINITY) {
                    const float corr = exp2f(m[i] - mx);
                    l[i] *= corr;
                    float *o = O + (size_t)i * dhp;
                    const __m512 vc = _mm512_set1_ps(corr);
                    for (int e = 0; e < dhp; e += 16)
                        _mm512_storeu_ps(o + e, _mm512_mul_ps(_mm512_loadu_ps(o + e), vc));
                }
                m[i] = mx;
            }
            const __m512 vm = _mm512_set1_ps(m[i]);
            __m512 vsum = _mm512_setzero_ps();
            uint16_t *p = P + (size_t)i * AT_KB;
            for (int j = 0; j < nk; j += 16) {
                __m512 e = exp2_neg(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), vc2, vm));
                if (!full) e = _mm512_maskz_mov_ps(mask16(valid - j), e);
                const __m256i pb = (__m256i)_mm512_cvtneps_pbh(e);
                _mm256_storeu_si256((__m256i *)(p + j), pb);
                vsum = _mm512_add_ps(vsum, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(pb), 16)));
            }
            l[i] += _mm512_reduce_add_ps(vsum);
        }
        /* O += P V over this block's keys, 32 head columns at a time */
        const uint32_t *vb = Vp + (size_t)(j0 / 2) * dhp;
        for (int ec = 0; ec < dhp; ec += 32) {
            tiles_load_2x2(O + ec, dhp);
            for (int kk = 0; kk < nk; kk += 32)
                tiles_dp_2x2(P + kk, P + (size_t)16 * AT_KB + kk, AT_KB * 2, vb + (size_t)(kk / 2) * dhp + ec,
                             vb + (size_t)(kk / 2) * dhp + ec + 16, dhp * 4);
            tiles_store_2x2(O + ec, dhp);
        }
        __asm__ volatile("" ::: "memory");
    }
    for (int i = 0; i < nq; i++) {
        const __m512 inv = _mm512_set1_ps(1.0f / l[i]);
        const float *o = O + (size_t)i * dhp;
        float *dst = out + (size_t)i * ldo;
        for (int e = 0; e < dh; e += 16)
            _mm512_mask_storeu_ps(dst + e, mask16(dh - e), _mm512_mul_ps(_mm512_loadu_ps(o + e), inv));
    }
}

void nn_attention_amx_(float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                       int B, int heads, int Tq, int Tk, int dh, float scale, float *ws)
{
    const int dhp = pad32(dh), Tkp = pad32(Tk);
    const size_t head_slots = (size_t)Tkp * dhp / 2;   /* 32-bit slots of one head's packed K (and of its V) */
    float *base = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    uint32_t *Kp = (uint32_t *)base, *Vp = Kp + (size_t)B * heads * head_slots;
    float *tws = base + up16((size_t)B * heads * head_slots) * 2;
    const size_t tf = thread_floats(dhp);
    const long npack = (long)B * heads * (Tkp / 32);
    const int nqb = (Tq + AT_QB - 1) / AT_QB;
    const long ntask = (long)B * heads * nqb;
#pragma omp parallel if (ntask > 1)
    {
#pragma omp for schedule(static)
        for (long t = 0; t < npack; t++) {
            const int jc = (int)(t % (Tkp / 32)), bh = (int)(t / (Tkp / 32)), h = bh % heads, b = bh / heads;
            pack_kv(Kp + (size_t)bh * head_slots, Vp + (size_t)bh * head_slots, k + (size_t)b * Tk * ldk + (size_t)h * dh,
                    ldk, v + (size_t)b * Tk * ldv + (size_t)h * dh, ldv, jc * 32, Tk, dh, dhp);
        }
        nn_amx_tiles_on_();
        float *tw = tws + tf * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
        for (long task = 0; task < ntask; task++) {
            const int qb = (int)(task % nqb), bh = (int)(task / nqb), h = bh % heads, b = bh / heads;
            const int i0 = qb * AT_QB, nq = Tq - i0 < AT_QB ? Tq - i0 : AT_QB;
            attn_task(out + ((size_t)b * Tq + i0) * ldo + (size_t)h * dh, ldo,
                      q + ((size_t)b * Tq + i0) * ldq + (size_t)h * dh, ldq, Kp + (size_t)bh * head_slots,
                      Vp + (size_t)bh * head_slots, nq, Tk, dh, dhp, scale, tw);
        }
        _tile_release();
    }
}
