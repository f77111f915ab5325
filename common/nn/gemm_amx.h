/* nn/gemm_amx: the bf16 GEMM of a convolution on Intel AMX tiles (Sapphire Rapids and later: TMUL, 16x16 fp32 +=
 * 16x32 bf16 x 32x16 bf16 per instruction), for layers whose WEIGHTS are bf16 and whose activations are fp32:
 *
 *     C[M, N] = W[M, K] col[K, N]   W: bf16 row-major (lda), as stored
 *                                   col: the im2col columns of an fp32 image, rounded to bf16 (RNE) and packed
 *                                   once per call, straight from the image (no fp32 column matrix), into the
 *                                   pair-interleaved layout the "B" tiles need ("VNNI": element (k, n) at pair k/2,
 *                                   column n, slot k%2; panels of 32 columns)
 * The multiplication is nn_gemm_bf16's AMX driver (gemm_bf16_avx512.c) reading the packed operand in place: the
 * same micro-kernel, blocking and rounding as nn_gemm_bf16 under SF_GEMM_KERNEL=amx. A linear layer (bf16 weights,
 * fp32 tokens) calls nn_gemm_bf16 itself (gemm_bf16.h), which packs as it goes.
 * Products of bf16 values are exact in fp32 and each output is one running fp32 sum over k in order, so results do
 * not depend on the thread count or the blocking; the error against fp32 is the bf16 rounding of both operands.
 *
 * Shapes: M % 32 == 0 and K % 32 == 0 (nn_amx_ok); N is padded to a multiple of 32 inside the packed operand.
 * Availability: the CPU must have AMX-BF16 and AVX512-BF16 and Linux must grant the tile state (arch_prctl
 * ARCH_REQ_XCOMP_PERM, asked once per process); SF_GEMM_KERNEL=generic|avx512 turns it off. When unavailable the
 * caller uses another GEMM. */
#ifndef SF_NN_GEMM_AMX_H
#define SF_NN_GEMM_AMX_H
#include <stddef.h>
#include <stdint.h>

int nn_amx_available(void);
static inline int nn_amx_ok(int M, int K) { return M > 0 && K > 0 && M % 32 == 0 && K % 32 == 0; }

/* Bytes of the packed operand for K x N (N padded to 32). */
size_t nn_amx_packed_bytes(int K, int N);

/* Pack the im2col columns col[IC KH KW, OH OW] of one image img[IC, H, W] (zero padding pad, stride s). */
void nn_amx_pack_im2col(void *packed, const float *img, int IC, int H, int W, int KH, int KW, int s, int pad, int OH,
                        int OW);

/* C[M, N] = W[M, K] (bf16, lda elements) x B (packed K x N) + beta C (row stride ldc; beta 0: C is not read). */
void nn_amx_gemm(int M, int N, int K, const uint16_t *W, int lda, const void *packed, float beta, float *C, int ldc);

#endif
