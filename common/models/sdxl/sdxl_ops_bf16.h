/* models/sdxl/sdxl_ops_bf16: the bf16-weight GEMM calls of sdxl_ops, in their own translation unit because
 * nn/tensor.h (static inline nn_bf16_to_f32) and nn/gemm_bf16.h (extern nn_bf16_to_f32) cannot be included
 * together until the two declarations are merged into one. Raw pointers only; see sdxl_ops.h. */
#ifndef SF_SDXL_OPS_BF16_H
#define SF_SDXL_OPS_BF16_H

/* out[T, OC] = in[T, IC] W[OC, IC]^T + beta out (W bf16, in fp32 rounded to bf16 while packed) */
void sdxl_ops_bf16_linear(float *out, const float *in, int T, int OC, int IC, const void *W, float beta);
/* Y[M, N] = W[M, K] X[K, N] (W bf16, X fp32) */
void sdxl_ops_bf16_wx(float *Y, const void *W, const float *X, int M, int N, int K);

#endif
