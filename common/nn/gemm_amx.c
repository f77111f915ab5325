/* nn/gemm_amx: AMX bf16 GEMM and its packers (see gemm_amx.h).
 *
 * Tiles: C blocks of 32 (rows of W) x 32 (columns of op(X)) in four 16x16 fp32 accumulator tiles (tmm0-3); per 32
 * of K two W tiles (tmm4-5, 16 rows x 32 bf16, loaded straight from the row-major weights) and two packed-operand
 * tiles (tmm6-7, 16 pairs x 16 columns) feed four TDPBF16PS. Work is cut into tasks of one column chunk
 * (AMX_NC columns: its packed operand, K x AMX_NC bf16, stays in L2 while the weight panels of the task stream
 * past) x a group of row panels; OpenMP threads take whole tasks. Everything vector here is compiled for
 * AMX + AVX-512 (this object is built with AVX512_FLAGS and -mamx-*, like the other AVX-512 kernels: clang does not
 * carry function target attributes into OpenMP-outlined regions) and reached only after nn_amx_available() said
 * yes, so the rest of the library keeps the portable baseline. */
#include "gemm_amx.h"
#include "gemm_bf16.h"
#include "log.h"
#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AMX_NC 256          /* columns per task: packed chunk K x 256 bf16 (K = 2880: 1.4 MiB) */
#define AMX_MG 128          /* rows of W per task (4 panels of 32) */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))

/* One decision for every AMX user: the bf16 GEMM's dispatcher (common/nn/gemm_bf16.c) checks the CPU, asks Linux
 * for the tile state and honours SF_GEMM_KERNEL; this file only runs where it chose AMX. */
int nn_amx_available(void) { return strcmp(nn_gemm_bf16_kernel(), "amx") == 0; }

static int npad32(int N) { return (N + 31) / 32 * 32; }

size_t nn_amx_packed_bytes(int K, int N) { return (size_t)(K / 2) * npad32(N) * 4; }

/* 16 fp32 pairs (a[i], b[i]) -> 16 32-bit slots holding bf16(a[i]) low, bf16(b[i]) high, RNE */
AMX_TARGET static inline __m512i pair16(__m512 a, __m512 b)
{
    const __m512i c = (__m512i)_mm512_cvtne2ps_pbh(b, a);   /* bf16: a0..a15 in the low half, b0..b15 high */
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(idx, c);
}

AMX_TARGET static inline void tr16(const __m512 r[16], __m512 out[16]);

/* Packed layout: panels of 32 columns, each [K/2 pairs][32 columns] of 32-bit pairs, so the 16 rows of a B tile
 * are 128 bytes apart (a row stride of the full width, e.g. 32 KiB, would put every row of a tile in the same L1
 * set). Index of (pair kp, column n): */
static inline size_t at(int KP, int kp, int n) { return (size_t)(n / 32) * KP * 32 + (size_t)kp * 32 + n % 32; }

/* lanes [0, n) of v -> columns p0 .. p0+n-1 of pair row kp (may straddle two panels) */
AMX_TARGET static inline void store_pairs(uint32_t *P, int KP, int kp, int p0, int n, __m512i v)
{
    const int first = 32 - p0 % 32 < n ? 32 - p0 % 32 : n;
    _mm512_mask_storeu_epi32(P + at(KP, kp, p0), (__mmask16)((1u << first) - 1u), v);
    if (first < n) {
        const __m512i rest = _mm512_maskz_compress_epi32((__mmask16)(((1u << n) - 1u) & ~((1u << first) - 1u)), v);
        _mm512_mask_storeu_epi32(P + at(KP, kp, p0 + first), (__mmask16)((1u << (n - first)) - 1u), rest);
    }
}

AMX_TARGET void nn_amx_pack_rows(void *packed, const float *X, int ldx, int N, int K)
{
    uint32_t *P = packed;
    const int Np = npad32(N), KP = K / 2;
    /* blocks of 16 columns (tokens) x 16 pairs: convert 16 rows of 32 values, transpose through a small buffer */
    const long nblk = (long)(Np / 16) * (KP / 16);
#pragma omp parallel for schedule(static) if ((long)N * K > (1L << 15))
    for (long blk = 0; blk < nblk; blk++) {
        const int n0 = (int)(blk / (KP / 16)) * 16, kp0 = (int)(blk % (KP / 16)) * 16;
        __m512 rows[16], cols[16];
        for (int i = 0; i < 16; i++) {
            const int n = n0 + i;
            __m512i v = _mm512_setzero_si512();
            if (n < N) {
                /* pairs kp0..kp0+15 = floats 2 kp0 .. 2 kp0 + 31; cvtne2ps(hi, lo) keeps the in-row order, so
                 * each 32-bit slot is already (x[2k], x[2k+1]) */
                const float *x = X + (size_t)n * ldx + 2 * kp0;
                v = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x));
            }
            rows[i] = _mm512_castsi512_ps(v);
        }
        tr16(rows, cols);
        uint32_t *panel = P + (size_t)(n0 / 32) * KP * 32 + (n0 % 32);
        for (int j = 0; j < 16; j++) _mm512_storeu_ps(panel + (size_t)(kp0 + j) * 32, cols[j]);
    }
}

AMX_TARGET void nn_amx_pack_im2col(void *packed, const float *img, int IC, int H, int W, int KH, int KW, int s,
                                   int pad, int OH, int OW)
{
    uint32_t *P = packed;
    const int K = IC * KH * KW, KP = K / 2, Npos = OH * OW, Np = npad32(Npos);
#pragma omp parallel for schedule(static) if ((long)K * Npos > (1L << 15))
    for (int kp = 0; kp < KP; kp++) {
        int cc[2], ky[2], kx[2];
        for (int j = 0; j < 2; j++) {
            const int r = 2 * kp + j;
            cc[j] = r / (KH * KW);
            ky[j] = r / KW % KH;
            kx[j] = r % KW;
        }
        for (int oy = 0; oy < OH; oy++) {
            const float *row[2];
            for (int j = 0; j < 2; j++) {
                const int y = oy * s - pad + ky[j];
                row[j] = y >= 0 && y < H ? img + ((size_t)cc[j] * H + y) * W : NULL;
            }
            const int prow = oy * OW;
            if (s == 1) {
                /* x = ox + kx - pad: masked loads zero the padding columns */
                for (int ox0 = 0; ox0 < OW; ox0 += 16) {
                    const int n = OW - ox0 < 16 ? OW - ox0 : 16;
                    __m512 v[2];
                    for (int j = 0; j < 2; j++) {
                        v[j] = _mm512_setzero_ps();
                        if (!row[j]) continue;
                        const int x0 = ox0 + kx[j] - pad;
                        /* valid lanes i: 0 <= x0 + i < W and i < n */
                        int lo = x0 < 0 ? -x0 : 0, hi = W - x0 < n ? W - x0 : n;
                        if (hi <= lo) continue;
                        const __mmask16 m = (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
                        v[j] = _mm512_maskz_loadu_ps(m, row[j] + x0);
                    }
                    store_pairs(P, KP, kp, prow + ox0, n, pair16(v[0], v[1]));
                }
            } else {
                for (int ox = 0; ox < OW; ox++) {
                    float a[2];
                    for (int j = 0; j < 2; j++) {
                        const int x = ox * s - pad + kx[j];
                        a[j] = row[j] && x >= 0 && x < W ? row[j][x] : 0.0f;
                    }
                    const __m512i pr = pair16(_mm512_set1_ps(a[0]), _mm512_set1_ps(a[1]));
                    P[at(KP, kp, prow + ox)] = (uint32_t)_mm_cvtsi128_si32(_mm512_castsi512_si128(pr));
                }
            }
        }
        for (int n = Npos; n < Np; n++) P[at(KP, kp, n)] = 0;
    }
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;

AMX_TARGET static void amx_config(void)
{
    amx_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) {
        c.rows[i] = 16;
        c.colsb[i] = 64;
    }
    _tile_loadconfig(&c);
}

/* out[j] = column j of the 16 x 16 matrix whose rows are r[0..15] (32-bit elements) */
AMX_TARGET static inline void tr16(const __m512 r[16], __m512 out[16])
{
    __m512 a[16], b[16];
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
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
        out[q] = _mm512_shuffle_f32x4(d0, d1, 0x88);
        out[4 + q] = _mm512_shuffle_f32x4(d2, d3, 0x88);
        out[8 + q] = _mm512_shuffle_f32x4(d0, d1, 0xdd);
        out[12 + q] = _mm512_shuffle_f32x4(d2, d3, 0xdd);
    }
}

/* one 16 x 16 fp32 tile t[16][16] (rows: W rows m0.., columns: n0..) into C; the transposed case (a linear layer's
 * out[tokens, OC]) goes through an AVX-512 16 x 16 transpose instead of 256 scalar moves */
AMX_TARGET static void put_tile(const float t[16][16], int m0, int n0, int N, float beta, float *C, int ldc,
                                int trans_c)
{
    const int nn = N - n0 < 16 ? N - n0 : 16;
    if (nn <= 0) return;
    if (!trans_c) {
        for (int i = 0; i < 16; i++) {
            float *c = C + (size_t)(m0 + i) * ldc + n0;
            if (beta == 0.0f) memcpy(c, t[i], (size_t)nn * sizeof(float));
            else
                for (int j = 0; j < nn; j++) c[j] += t[i][j];
        }
        return;
    }
    __m512 r[16], col[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_load_ps(t[i]);
    tr16(r, col);
    for (int j = 0; j < nn; j++) {
        float *c = C + (size_t)(n0 + j) * ldc + m0;
        _mm512_storeu_ps(c, beta == 0.0f ? col[j] : _mm512_add_ps(_mm512_loadu_ps(c), col[j]));
    }
}

AMX_TARGET static void amx_task(int m0, int m1, int n0, int n1, int N, int K, const uint16_t *W, int lda,
                                const uint32_t *P, int Np, float beta, float *C, int ldc, int trans_c)
{
    float t[4][16][16] __attribute__((aligned(64)));
    const size_t wstride = (size_t)lda * 2, pstride = 128;
    const int KP = K / 2;
    (void)Np;
    for (int m = m0; m < m1; m += 32)
        for (int n = n0; n < n1; n += 32) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            const uint16_t *w0 = W + (size_t)m * lda, *w1 = w0 + (size_t)16 * lda;
            for (int k = 0; k < K; k += 32) {
                const uint32_t *p = P + at(KP, k / 2, n);
                _tile_loadd(4, w0 + k, wstride);
                _tile_loadd(5, w1 + k, wstride);
                _tile_loadd(6, p, pstride);
                _tile_loadd(7, p + 16, pstride);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            _tile_stored(0, t[0], 64);
            _tile_stored(1, t[1], 64);
            _tile_stored(2, t[2], 64);
            _tile_stored(3, t[3], 64);
            put_tile(t[0], m, n, N, beta, C, ldc, trans_c);
            put_tile(t[1], m, n + 16, N, beta, C, ldc, trans_c);
            put_tile(t[2], m + 16, n, N, beta, C, ldc, trans_c);
            put_tile(t[3], m + 16, n + 16, N, beta, C, ldc, trans_c);
        }
}

AMX_TARGET void nn_amx_gemm(int M, int N, int K, const uint16_t *W, int lda, const void *packed, float beta, float *C,
                            int ldc, int trans_c)
{
    if (!nn_amx_ok(M, K)) LOG_FATAL("nn_amx_gemm: M %d and K %d must be multiples of 32", M, K);
    if (!nn_amx_available()) LOG_FATAL("nn_amx_gemm: AMX is not available on this machine");
    if (N <= 0) return;
    const int Np = npad32(N), nnc = (Np + AMX_NC - 1) / AMX_NC, nmg = (M + AMX_MG - 1) / AMX_MG;
    const long ntask = (long)nnc * nmg;
#pragma omp parallel if (ntask > 1 && (double)M * N * K > 1e7)
    {
        amx_config();
#pragma omp for schedule(dynamic, 1)
        for (long task = 0; task < ntask; task++) {
            const int nc = (int)(task / nmg), mg = (int)(task % nmg);
            const int n0 = nc * AMX_NC, n1 = n0 + AMX_NC < Np ? n0 + AMX_NC : Np;
            const int m0 = mg * AMX_MG, m1 = m0 + AMX_MG < M ? m0 + AMX_MG : M;
            amx_task(m0, m1, n0, n1, N, K, W, lda, packed, Np, beta, C, ldc, trans_c);
        }
        _tile_release();
    }
}
