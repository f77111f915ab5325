/* nn/gemm_amx: bf16 GEMM on Intel AMX tiles (Sapphire Rapids and later: TMUL, 16x16 fp32 += 16x32 bf16 x 32x16
 * bf16 per instruction), for inference layers whose WEIGHTS are bf16 and whose activations are fp32:
 *
 *     C = W[M, K] op(X)        W: bf16 row-major (lda), used as stored (the AMX "A" tiles load it directly)
 *                              X: fp32 activations, rounded to bf16 (RNE) and packed once per call into the
 *                                 pair-interleaved layout the "B" tiles need ("VNNI": element (k, n) of the K x N
 *                                 operand at pair k/2, column n, slot k%2)
 * Two packers: rows of a token matrix (a linear layer: op(X) = X^T with X[N, K], so C^T[N, M] = X W^T is
 * out[tokens, OC]) and the im2col columns of an image (a convolution: op(X) = col[K, P], C[M, P] = out[OC, P]),
 * written straight into the packed layout without an fp32 column matrix.
 * The multiplication is nn_gemm_bf16's AMX driver (gemm_bf16_avx512.c: one micro-kernel, tile configuration and
 * packed layout for every AMX GEMM) with W read in place and the packed operand read as it is; nn_gemm_bf16 packs
 * the same layout as it goes (so a linear layer can also call nn_gemm_bf16(0, 1, ...) with the same bits; packing
 * here pays off when one input feeds several weights, or comes straight from an image).
 * Products of bf16 values are exact in fp32 and accumulate in fp32 over the whole K in k order (one running sum
 * per output), so results do not depend on the thread count; the error against fp32 is the bf16 rounding of both
 * operands.
 *
 * Shapes: M % 32 == 0 and K % 32 == 0 (nn_amx_ok); N is padded to a multiple of 32 inside the packed operand.
 * Availability: the CPU must have AMX-BF16 and AVX512-BF16 and Linux must grant the tile state (arch_prctl
 * ARCH_REQ_XCOMP_PERM, asked once per process); SF_GEMM_KERNEL=generic turns it off. When unavailable the caller
 * uses another GEMM. */
#ifndef SF_NN_GEMM_AMX_H
#define SF_NN_GEMM_AMX_H
#include <stddef.h>
#include <stdint.h>

int nn_amx_available(void);
static inline int nn_amx_ok(int M, int K) { return M > 0 && K > 0 && M % 32 == 0 && K % 32 == 0; }

/* Bytes of the packed operand for K x N (N padded to 32). */
size_t nn_amx_packed_bytes(int K, int N);

/* Pack op(X) = X^T of a token matrix X[N, K] (fp32, row stride ldx): the B operand of a linear layer. */
void nn_amx_pack_rows(void *packed, const float *X, int ldx, int N, int K);

/* Pack the im2col columns col[IC KH KW, OH OW] of one image img[IC, H, W] (zero padding pad, stride s). */
void nn_amx_pack_im2col(void *packed, const float *img, int IC, int H, int W, int KH, int KW, int s, int pad, int OH,
                        int OW);

/* C = W[M, K] (bf16, lda elements) x B (packed K x N) + beta C, beta 0 or 1.
 * trans_c = 0: C[M, N] with row stride ldc (a convolution's out[OC, P]);
 * trans_c = 1: C[N, M] with row stride ldc (a linear layer's out[tokens, OC]). */
void nn_amx_gemm(int M, int N, int K, const uint16_t *W, int lda, const void *packed, float beta, float *C, int ldc,
                 int trans_c);

#endif
