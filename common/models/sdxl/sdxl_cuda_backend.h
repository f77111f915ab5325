/* models/sdxl/sdxl_cuda_backend: the CUDA backend of sdxl_ops (sdxl_ops.h), for sdxl_ops.c only. Each function has the
 * arguments of the sdxl_ops_* call it serves; activations are device fp16 (see sdxl_ops.h), weights are looked up
 * in (or uploaded once to) the context's fp16 cache. Defined in every build; the layer calls are reached only in
 * a CUDA build (sdxl_ops_cuda_open fails elsewhere, so a context never gets dev == DEVICE_CUDA). */
#ifndef SF_SDXL_CUDA_BACKEND_H
#define SF_SDXL_CUDA_BACKEND_H
#include "sdxl_ops.h"

int sdxl_ops_cuda_open(sdxl_ops *o, char *err, size_t errlen);
void sdxl_ops_cuda_close(sdxl_ops *o);
void sdxl_ops_cuda_drop_weights(sdxl_ops *o);
size_t sdxl_ops_cuda_weight_bytes(const sdxl_ops *o);
float *sdxl_ops_cuda_workspace(sdxl_ops *o, size_t n);
void sdxl_ops_cuda_upload(sdxl_ops *o, float *dst, const float *host_src, size_t n);
void sdxl_ops_cuda_download(sdxl_ops *o, float *host_dst, const float *src, size_t n);
void sdxl_ops_cuda_copy(float *dst, const float *src, size_t n);
size_t sdxl_ops_cuda_conv_ws_floats(const nn_conv_geom *g, int B);
void sdxl_ops_cuda_linear(sdxl_ops *o, float *out, const float *in, int T, const nn_tensor *W, const nn_tensor *b,
                          int acc);
void sdxl_ops_cuda_conv2d(sdxl_ops *o, float *out, const float *in, int B, const nn_conv_geom *g, const nn_tensor *W,
                          const nn_tensor *b, float *ws, size_t ws_n);
void sdxl_ops_cuda_groupnorm(sdxl_ops *o, float *out, const float *in, int B, int C, int HW, int G, float eps,
                             const nn_tensor *gamma, const nn_tensor *beta, int silu);
void sdxl_ops_cuda_layernorm(sdxl_ops *o, float *out, const float *in, int N, int D, float eps,
                             const nn_tensor *gamma, const nn_tensor *beta);
void sdxl_ops_cuda_silu(float *out, const float *in, size_t n);
void sdxl_ops_cuda_geglu(float *out, const float *in, int T, int I);
void sdxl_ops_cuda_attention(float *out, const float *q, const float *k, const float *v, int B, int heads, int Tq,
                             int Tk, int dh);
void sdxl_ops_cuda_to_tokens(float *out, const float *in, int B, int C, int HW);
void sdxl_ops_cuda_from_tokens_add(float *out, const float *in, const float *res, int B, int C, int HW);
void sdxl_ops_cuda_add(float *out, const float *a, const float *b, size_t n);
void sdxl_ops_cuda_chan_add(float *x, const float *v, int B, int C, int HW);
void sdxl_ops_cuda_concat(float *out, const float *a, int C1, const float *b, int C2, int B, int HW);
void sdxl_ops_cuda_upsample2x(float *out, const float *in, int B, int C, int H, int W);

#endif
