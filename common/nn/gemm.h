/* nn/gemm: single-precision matrix multiply, the CPU workhorse of conv2d / conv-transpose2d / large linear
 * layers (im2col + GEMM), written here so the engine has no BLAS dependency (GSL's CBLAS is a slow reference).
 * Row-major, BLAS semantics:
 *     C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C[M, N]
 * op(X) = X or X^T (transA / transB non-zero). lda/ldb/ldc are row strides of the matrices AS STORED:
 *     A stored [M, K] (lda >= K) or, transposed, [K, M] (lda >= M); likewise B [K, N] or [N, K]; C [M, N].
 * beta == 0 overwrites C (C may hold NaN/garbage). OpenMP inside; results do not depend on the thread count. */
#ifndef SF_NN_GEMM_H
#define SF_NN_GEMM_H

void nn_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc);

/* Straightforward double-accumulating reference (tests and CPU-reference checks only: slow). */
void nn_sgemm_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc);

/* The kernel nn_sgemm runs: "avx512" (chosen at run time when the CPU has AVX-512 F/BW/DQ/VL) or "generic"
 * (portable C). SF_GEMM_KERNEL=generic|avx512|auto in the environment forces it (read once; avx512 on a CPU
 * without it, or another value, is a one-line error). Both give the same bits. */
const char *nn_gemm_kernel(void);

#endif
