/* nn/gemm_epilogue: the 8-row AVX-512 micro-kernel's accumulators and epilogue, shared by the fp32 SGEMM
 * (gemm.c as compiled by gemm_avx512.c) and the bf16 driver (gemm_bf16_avx512.c): both keep an 8 x 16 NV tile in
 * registers c<i><v> (i = row 0..7, v = 16-column vector 0..NV-1) and end with the same C update,
 *     C[0:mr, 0:nr] = alpha acc + beta C      (beta == 0: C is not read)
 * one formula for every element whatever the tile shape, so a full tile and an edge tile round alike. Only for
 * objects built with AVX-512 flags (the Makefile's AVX512_OBJ). The macros expect in scope: NV (1..3), c, ldc,
 * mr, nr, alpha, beta; NN_GEMM_EPILOGUE returns from the enclosing kernel when the tile is full. */
#ifndef SF_NN_GEMM_EPILOGUE_H
#define SF_NN_GEMM_EPILOGUE_H
#include <immintrin.h>
#include <stddef.h>

/* c[0:16 masked by m] = alpha * acc + beta * c (beta0: beta == 0, c not read); `full`: unmasked ops */
static inline __attribute__((always_inline)) void nn_gemm_upd16(float *c, __m512 acc, int full, __mmask16 m,
                                                                __m512 va, __m512 vb, int beta0)
{
    __m512 r;
    if (beta0) {
        r = _mm512_mul_ps(va, acc);
    } else {
        __m512 old = full ? _mm512_loadu_ps(c) : _mm512_maskz_loadu_ps(m, c);
        r = _mm512_fmadd_ps(va, acc, _mm512_mul_ps(vb, old));
    }
    if (full) _mm512_storeu_ps(c, r);
    else _mm512_mask_storeu_ps(c, m, r);
}

#define NN_GEMM_DECL(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps(), c##i##2 = _mm512_setzero_ps()
#define NN_GEMM_DECL8() NN_GEMM_DECL(0); NN_GEMM_DECL(1); NN_GEMM_DECL(2); NN_GEMM_DECL(3); \
    NN_GEMM_DECL(4); NN_GEMM_DECL(5); NN_GEMM_DECL(6); NN_GEMM_DECL(7)

#define NN_GEMM_UPD_FULL(i)                                                                                    \
    do {                                                                                                       \
        float *ci = c + (size_t)(i) * ldc;                                                                     \
        nn_gemm_upd16(ci, c##i##0, 1, 0xFFFF, va, vb, beta0);                                                  \
        if (NV > 1) nn_gemm_upd16(ci + 16, c##i##1, 1, 0xFFFF, va, vb, beta0);                                 \
        if (NV > 2) nn_gemm_upd16(ci + 32, c##i##2, 1, 0xFFFF, va, vb, beta0);                                 \
    } while (0)

#define NN_GEMM_TILE(i, NR_)                                                                                   \
    do {                                                                                                       \
        _mm512_store_ps(tile + (i) * (NR_), c##i##0);                                                          \
        if (NV > 1) _mm512_store_ps(tile + (i) * (NR_) + 16, c##i##1);                                         \
        if (NV > 2) _mm512_store_ps(tile + (i) * (NR_) + 32, c##i##2);                                         \
    } while (0)

/* the C update of the 8 x 16 NV tile; an edge tile goes through a stack copy with masked stores. NR_: the
 * kernel's widest tile (48) */
#define NN_GEMM_EPILOGUE(NR_)                                                                                  \
    do {                                                                                                       \
        const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);                                    \
        const int beta0 = beta == 0.0f;                                                                        \
        if (mr == 8 && nr == 16 * NV) {                                                                        \
            NN_GEMM_UPD_FULL(0); NN_GEMM_UPD_FULL(1); NN_GEMM_UPD_FULL(2); NN_GEMM_UPD_FULL(3);                \
            NN_GEMM_UPD_FULL(4); NN_GEMM_UPD_FULL(5); NN_GEMM_UPD_FULL(6); NN_GEMM_UPD_FULL(7);                \
            return;                                                                                            \
        }                                                                                                      \
        float tile[8 * (NR_)] __attribute__((aligned(64)));                                                    \
        NN_GEMM_TILE(0, NR_); NN_GEMM_TILE(1, NR_); NN_GEMM_TILE(2, NR_); NN_GEMM_TILE(3, NR_);                \
        NN_GEMM_TILE(4, NR_); NN_GEMM_TILE(5, NR_); NN_GEMM_TILE(6, NR_); NN_GEMM_TILE(7, NR_);                \
        for (int i_ = 0; i_ < mr; i_++)                                                                        \
            for (int v_ = 0; v_ < NV && 16 * v_ < nr; v_++) {                                                  \
                const int cols_ = nr - 16 * v_ < 16 ? nr - 16 * v_ : 16;                                       \
                nn_gemm_upd16(c + (size_t)i_ * ldc + 16 * v_, _mm512_load_ps(tile + i_ * (NR_) + 16 * v_),     \
                              cols_ == 16, (__mmask16)((1u << cols_) - 1u), va, vb, beta0);                    \
            }                                                                                                  \
    } while (0)

#endif
