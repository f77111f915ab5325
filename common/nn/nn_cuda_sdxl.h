/* nn/nn_cuda_sdxl: the fp16 CUDA kernels behind the SDXL networks' layer calls (models/sdxl/sdxl_ops.h; issue 9
 * item 7 "Backends": fp16 weights and activations, fp32 accumulation, attention as one tiled online-softmax kernel
 * that never materialises a score matrix). Plain C, no CUDA type: every array is a DEVICE pointer to IEEE
 * binary16 values passed as void*, sizes and scalars are host values. The definitions (common/cuda/cuda_sdxl.cu)
 * exist only in a CUDA build (SF_HAVE_CUDA); callers sit under #ifdef SF_HAVE_CUDA.
 *
 * Each function has the semantics, argument order and layouts of the sdxl_ops_* CPU function it names (the CPU
 * path is the reference; tests/test_cuda_sdxl_ops.c compares them). Numerics:
 *   - GEMMs (linear, conv as im2col + GEMM) are cublasGemmEx / cublasGemmStridedBatchedEx with fp16 operands,
 *     CUBLAS_COMPUTE_32F (fp32 accumulation, tensor cores), the result rounded once to fp16;
 *   - GroupNorm / LayerNorm statistics are fp32 per thread, summed over the block in double, applied in fp32;
 *   - SiLU / GELU / GEGLU, adds, bias adds are computed in fp32 and rounded to fp16 once;
 *   - attention keeps q, the running max, the running sum and the output accumulator of each query in fp32
 *     registers; keys / values are staged through shared memory in fp32 tiles.
 * All work goes on the one stream of the nn_cuda context (nn_cuda.h); nothing waits for the GPU. */
#ifndef SF_NN_CUDA_SDXL_H
#define SF_NN_CUDA_SDXL_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "conv.h"

/* out[T, OC] = in[T, IC] W[OC, IC]^T + b[OC] (b may be NULL); acc != 0: out += (the same) */
void nn_h_linear_cuda(void *out, const void *in, const void *W, const void *b, int T, int IC, int OC, int acc);
/* halves of im2col workspace per image for geometry g (0 for a 1x1 stride-1 unpadded conv, which needs none) */
size_t nn_h_conv2d_ws_halves(const nn_conv_geom *g);
/* out[B, OC, OH, OW] = conv2d(in[B, IC, H, W], W[OC, IC, KH, KW]) + b[OC]; ws[ws_halves] device scratch of at
 * least nn_h_conv2d_ws_halves(g) (images are processed in chunks of ws_halves / that many) */
void nn_h_conv2d_cuda(void *out, const void *in, const void *W, const void *b, int B, const nn_conv_geom *g,
                      void *ws, size_t ws_halves);
/* out[B, C, HW] = GroupNorm_G(in) gamma + beta (gamma / beta NULL: 1 / 0), then SiLU when silu; out may be in */
void nn_h_groupnorm_cuda(void *out, const void *in, const void *gamma, const void *beta, int B, int C, int HW, int G,
                         float eps, int silu);
/* out[N, D] = LayerNorm(in[N, D]) gamma + beta; out may be in */
void nn_h_layernorm_cuda(void *out, const void *in, const void *gamma, const void *beta, int N, int D, float eps);
void nn_h_silu_cuda(void *out, const void *in, size_t n);                   /* out[n] = silu(in); may alias */
void nn_h_geglu_cuda(void *out, const void *in, int T, int I);              /* out[T, I] = in[:, :I] gelu(in[:, I:]) */
/* out[B*Tq, heads*dh] = softmax(q k^T / sqrt(dh)) v per (sample, head); q[B*Tq, heads*dh], k, v[B*Tk, heads*dh];
 * dh <= 128 */
void nn_h_attention_cuda(void *out, const void *q, const void *k, const void *v, int B, int heads, int Tq, int Tk,
                         int dh);
/* the same with the kernel named: 0 the CUDA-core online-softmax kernel (any dh <= 128), 1 the tensor-core (wmma)
 * tile kernel where nn_h_attention_mma_applies (dh 64, 16-byte aligned q, k, v), else kernel 0. nn_h_attention_cuda
 * uses kernel 0 unless SF_SDXL_ATTN=mma is set in the environment (read once). */
void nn_h_attention_cuda_kernel(void *out, const void *q, const void *k, const void *v, int B, int heads, int Tq,
                                int Tk, int dh, int kernel);
int nn_h_attention_mma_applies(const void *q, const void *k, const void *v, int heads, int dh);
void nn_h_to_tokens_cuda(void *out, const void *in, int B, int C, int HW);  /* out[B, HW, C] = in[B, C, HW]^T */
/* out[B, C, HW] = in[B, HW, C]^T + res[B, C, HW]; out may be res */
void nn_h_from_tokens_add_cuda(void *out, const void *in, const void *res, int B, int C, int HW);
void nn_h_add_cuda(void *out, const void *a, const void *b, size_t n);      /* out = a + b; may alias either */
/* out[B, C1 + C2, HW] = cat(a[B, C1, HW], b[B, C2, HW]) */
void nn_h_concat_cuda(void *out, const void *a, int C1, const void *b, int C2, int B, int HW);
void nn_h_upsample2x_cuda(void *out, const void *in, int B, int C, int H, int W);   /* nearest, [B, C, 2H, 2W] */
/* x[B, C, HW] += v[b * v_bstride + c] (v_bstride C: per sample (the ResNet time projection), 0: shared (a bias)) */
void nn_h_chan_add_cuda(void *x, const void *v, int B, int C, int HW, int v_bstride);

/* cudaMemGetInfo: free and total bytes of the device (for reports of memory in use) */
void nn_h_mem_info(size_t *free_bytes, size_t *total_bytes);

#ifdef __cplusplus
}
#endif
#endif
