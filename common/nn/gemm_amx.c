/* nn/gemm_amx: the AMX GEMM over a pre-packed operand (see gemm_amx.h): the im2col packer, writing an image's
 * columns straight into the layout of the AMX "B" tiles, and thin entries over nn_gemm_bf16's AMX driver
 * (gemm_bf16_avx512.c: the one micro-kernel, tile configuration and packed layout, and the token-row packer). The
 * packer is AVX-512 (this object is built with AVX512_FLAGS, like the other kernels, and reached only after
 * nn_amx_available() said yes), so the rest of the library keeps the portable baseline. */
#include "gemm_amx.h"
#include "gemm_bf16.h"
#include "gemm_kernels.h"
#include "log.h"
#include <immintrin.h>
#include <string.h>

/* One decision for every AMX user: the bf16 GEMM's dispatcher (common/nn/gemm_bf16.c) checks the CPU, asks Linux
 * for the tile state and honours SF_GEMM_KERNEL; this file only runs where it chose AMX. */
int nn_amx_available(void) { return strcmp(nn_gemm_bf16_kernel(), "amx") == 0; }

static int npad32(int N) { return (N + 31) / 32 * 32; }

size_t nn_amx_packed_bytes(int K, int N) { return (size_t)(K / 2) * npad32(N) * 4; }

/* 16 fp32 pairs (a[i], b[i]) -> 16 32-bit slots holding bf16(a[i]) low, bf16(b[i]) high, RNE */
static inline __m512i pair16(__m512 a, __m512 b)
{
    const __m512i c = (__m512i)_mm512_cvtne2ps_pbh(b, a);   /* bf16: a0..a15 in the low half, b0..b15 high */
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(idx, c);
}

/* Packed layout: panels of 32 columns, each [K/2 pairs][32 columns] of 32-bit pairs, so the 16 rows of a B tile
 * are 128 bytes apart (a row stride of the full width, e.g. 32 KiB, would put every row of a tile in the same L1
 * set). Index of (pair kp, column n): */
static inline size_t at(int KP, int kp, int n) { return (size_t)(n / 32) * KP * 32 + (size_t)kp * 32 + n % 32; }

/* lanes [0, n) of v -> columns p0 .. p0+n-1 of pair row kp (may straddle two panels) */
static inline void store_pairs(uint32_t *P, int KP, int kp, int p0, int n, __m512i v)
{
    const int first = 32 - p0 % 32 < n ? 32 - p0 % 32 : n;
    _mm512_mask_storeu_epi32(P + at(KP, kp, p0), (__mmask16)((1u << first) - 1u), v);
    if (first < n) {
        const __m512i rest = _mm512_maskz_compress_epi32((__mmask16)(((1u << n) - 1u) & ~((1u << first) - 1u)), v);
        _mm512_mask_storeu_epi32(P + at(KP, kp, p0 + first), (__mmask16)((1u << (n - first)) - 1u), rest);
    }
}

void nn_amx_pack_im2col(void *packed, const float *img, int IC, int H, int W, int KH, int KW, int s, int pad,
                        int OH, int OW)
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

void nn_amx_pack_rows(void *packed, const float *X, int ldx, int N, int K)
{
    nn_gemm_bf16_amx_pack_rows_(packed, X, ldx, N, K);
}

void nn_amx_gemm(int M, int N, int K, const uint16_t *W, int lda, const void *packed, float beta, float *C, int ldc,
                 int trans_c)
{
    if (!nn_amx_ok(M, K)) LOG_FATAL("nn_amx_gemm: M %d and K %d must be multiples of 32", M, K);
    if (!nn_amx_available()) LOG_FATAL("nn_amx_gemm: AMX is not available on this machine");
    if (N > 0) nn_gemm_bf16_amx_packed_(M, N, K, W, lda, packed, beta, C, ldc, trans_c);
}
