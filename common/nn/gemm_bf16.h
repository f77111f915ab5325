/* nn/gemm_bf16: bfloat16 on the CPU (issue 8 item 7): a bf16 x bf16 -> fp32 GEMM (conversions: tensor.h) with
 * the BLAS semantics of nn_sgemm (gemm.h):
 *     C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C[M, N]      (row-major; lda/ldb/ldc as stored)
 * Each operand is stored either as bf16 (uint16_t, a_bf16 / b_bf16 = 1) or as fp32 (0), in which case it is
 * rounded to bf16 (round-to-nearest-even, as tensor.h's nn_f32_to_bf16) while it is packed: a layer with bf16 weights and fp32 activations
 * needs no separate conversion pass. Products of two bf16 values are exact in fp32; they are accumulated in
 * fp32, so the result differs from the double dot product of the bf16-rounded operands by at most about
 * (K + 4) 2^-24 sum_k |alpha a_ik b_kj| + 2^-24 |beta c_ij| (tests/test_gemm_bf16.c checks that bound).
 * The error against the fp32 GEMM of the UNROUNDED operands is dominated by the input rounding (2^-8 relative
 * per operand): ~2^-8 sqrt(K) relative for random data. beta == 0 overwrites C (C may hold NaN).
 *
 * Kernels (gemm_bf16_avx512.c; chosen at run time, SF_GEMM_KERNEL=amx|avx512|generic forces one):
 *   amx        AMX-BF16 tiles (Sapphire Rapids and later, when Linux grants the tile state): 32 x 32 C blocks of
 *              four 16 x 16 tiles, TDPBF16PS; measured here ~16x the fp32 FMA peak in a register-only loop; the
 *              one AMX GEMM of the library (gemm_amx.h's nn_amx_gemm runs it on operands it packed itself);
 *   avx512bf16 vdpbf16ps (two bf16 products per fp32 lane per instruction), the structure of gemm.c: tasks over
 *              C, K blocks, packed micro-panels of k pairs, an 8 x 48 register tile. NOTE: on this machine
 *              vdpbf16ps sustains only ~half the fp32 FMA flop rate, so this path saves memory, not time;
 *   generic    the operands rounded to bf16 in fp32 blocks and multiplied by nn_sgemm (same exact products,
 *              fp32 accumulation).
 * All three meet the error bound above; their sums are ordered differently, so they differ in the last bits.
 * OpenMP inside; results do not depend on the thread count. */
#ifndef SF_NN_GEMM_BF16_H
#define SF_NN_GEMM_BF16_H
#include <stddef.h>
#include <stdint.h>

void nn_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const void *A, int a_bf16, int lda,
                  const void *B, int b_bf16, int ldb, float beta, float *C, int ldc);

/* Reference: double sums of the bf16-rounded operands (tests only: slow). */
void nn_gemm_bf16_ref(int transA, int transB, int M, int N, int K, float alpha, const void *A, int a_bf16, int lda,
                      const void *B, int b_bf16, int ldb, float beta, float *C, int ldc);

/* The kernel nn_gemm_bf16 runs: "amx", "avx512bf16" or "generic" (SF_GEMM_KERNEL=amx|avx512|generic|auto; a
 * forced kernel the CPU lacks is a one-line error at the first call). */
const char *nn_gemm_bf16_kernel(void);

#endif
