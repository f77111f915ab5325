/* models/sdxl/sdxl_ops_bf16: bf16-weight GEMMs for sdxl_ops (see sdxl_ops_bf16.h). */
#include "sdxl_ops_bf16.h"
#include "gemm_bf16.h"

void sdxl_ops_bf16_linear(float *out, const float *in, int T, int OC, int IC, const void *W, float beta)
{
    nn_gemm_bf16(0, 1, T, OC, IC, 1.0f, in, 0, IC, W, 1, IC, beta, out, OC);
}

void sdxl_ops_bf16_wx(float *Y, const void *W, const float *X, int M, int N, int K)
{
    nn_gemm_bf16(0, 0, M, N, K, 1.0f, W, 1, K, X, 0, N, 0.0f, Y, N);
}
