/* nn/gemm_bf16: bfloat16 on the CPU (issue 8 item 7): fp32 <-> bf16 conversion and a bf16 x bf16 -> fp32 GEMM
 * with the BLAS semantics of nn_sgemm (gemm.h):
 *     C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C[M, N]      (row-major; lda/ldb/ldc as stored)
 * Each operand is stored either as bf16 (uint16_t, a_bf16 / b_bf16 = 1) or as fp32 (0), in which case it is
 * rounded to bf16 (round-to-nearest-even) while it is packed: a layer with bf16 weights and fp32 activations
 * needs no separate conversion pass. Products of two bf16 values are exact in fp32; they are accumulated in
 * fp32, so the result differs from the double dot product of the bf16-rounded operands by at most about
 * (K + 4) 2^-24 sum_k |alpha a_ik b_kj| + 2^-24 |beta c_ij| (tests/test_gemm_bf16.c checks that bound).
 * The error against the fp32 GEMM of the UNROUNDED operands is dominated by the input rounding (2^-8 relative
 * per operand): ~2^-8 sqrt(K) relative for random data. beta == 0 overwrites C (C may hold NaN).
 *
 * Kernels: on CPUs with AVX-512 BF16 (vdpbf16ps: two bf16 products per fp32 lane per instruction) a packed,
 * cache-blocked driver in gemm_bf16_avx512.c (the structure of gemm.c: tasks over C, K blocks, packed A/B
 * micro-panels of k pairs, an 8 x 48 register tile). Elsewhere, or with SF_GEMM_KERNEL=generic, the operands
 * are rounded to bf16 in fp32 blocks and multiplied by nn_sgemm (same exact products, fp32 accumulation).
 * OpenMP inside; results do not depend on the thread count. */
#ifndef SF_NN_GEMM_BF16_H
#define SF_NN_GEMM_BF16_H
#include <stddef.h>
#include <stdint.h>

/* fp32 -> bf16, round to nearest even; NaN stays NaN (quiet, sign and top payload bits kept); +-Inf stay; values
 * that round past the largest bf16 become +-Inf; subnormal fp32 inputs round like any other value. */
uint16_t nn_bf16_from_f32(float x);
float nn_bf16_to_f32(uint16_t h);   /* exact */
void nn_bf16_from_f32_array(uint16_t *dst, const float *src, size_t n);
void nn_bf16_to_f32_array(float *dst, const uint16_t *src, size_t n);

void nn_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const void *A, int a_bf16, int lda,
                  const void *B, int b_bf16, int ldb, float beta, float *C, int ldc);

/* Reference: double sums of the bf16-rounded operands (tests only: slow). */
void nn_gemm_bf16_ref(int transA, int transB, int M, int N, int K, float alpha, const void *A, int a_bf16, int lda,
                      const void *B, int b_bf16, int ldb, float beta, float *C, int ldc);

/* The kernel nn_gemm_bf16 runs: "avx512bf16" or "generic" (SF_GEMM_KERNEL as for nn_sgemm; avx512 forced on a
 * CPU without AVX-512 BF16 is a one-line error at the first call). */
const char *nn_gemm_bf16_kernel(void);

#endif
