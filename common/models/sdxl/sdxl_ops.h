/* models/sdxl/sdxl_ops: the few layer calls the SDXL networks make, in one place, so they can move onto the
 * engine's backend table (issue "common/nn v2") without touching the networks. CPU today: activations fp32,
 * weights as stored (nn_tensor f32 / f16 / bf16). An f16 weight (or an f32 one not 4-byte aligned in its file) is
 * widened exactly into a scratch buffer the context owns and reuses, one layer at a time, so a model never has a
 * whole fp32 copy; bf16 weights are used as stored by the AMX tile GEMM (nn/gemm_amx, when the CPU has it and the
 * sizes are multiples of 32) or the AVX-512 bf16 GEMM (nn/gemm_bf16), the activations rounded to bf16 as they are
 * packed.
 *
 * CUDA (sdxl_ops_set_device; models/sdxl/sdxl_cuda_backend.c over the fp16 kernels of nn/nn_cuda_sdxl.h): every
 * activation pointer below is then DEVICE memory holding fp16 values, and the same calls run there. Each weight is
 * uploaded once, on first use, as fp16 (f16 as stored; f32 / bf16 rounded to nearest) into a cache the context owns;
 * sums accumulate in fp32. Buffers keep their fp32 sizes: a region planned as n floats holds n fp16 values in its
 * first half, so the networks plan one workspace for both devices (it costs 2x the activation memory on the
 * GPU: ~2 GB for the SDXL UNet at 1024^2, batch 2). Host data enters and leaves through sdxl_ops_upload /
 * sdxl_ops_download. No timing per kind (the work is asynchronous), no run-time LoRA (merge it instead).
 *
 * Shapes: token matrices are row-major [T, D]; images NCHW [B, C, H, W]. Linear weights are torch's [OC, IC]. */
#ifndef SF_SDXL_OPS_H
#define SF_SDXL_OPS_H
#include "conv.h"
#include "device.h"
#include "lora.h"
#include "tensor.h"
#include <stddef.h>

/* time spent per kind of op (seconds, summed over calls): where a forward pass goes */
enum { SDXL_OPS_LINEAR, SDXL_OPS_CONV, SDXL_OPS_ATTN, SDXL_OPS_NORM, SDXL_OPS_OTHER, SDXL_OPS_NKIND };

typedef struct {
    double seconds[SDXL_OPS_NKIND];
    float *wbuf[3];      /* widening scratch: [0] the big weight, [1] bias / gamma, [2] beta */
    size_t wcap[3];
    float *stats;        /* GroupNorm / LayerNorm mean + rstd */
    size_t stats_cap;
    float *attn_ws;
    size_t attn_cap;
    /* run-time LoRA (models/sdxl/lora.h): linear and conv weights found in this table get
     * y += sum_k s_k B_k (A_k x) after the base op, on the unchanged shared weights; NULL: none */
    const sdxl_lora_runtime *lora;
    float *lora_ws;
    size_t lora_cap;
    float *pack;         /* AMX packed activations */
    size_t pack_cap;
    int attn_bf16;       /* CPU attention on bf16 inputs (nn_attention_bf16_forward: AMX tiles where the CPU has
                          * them); set by a network whose weights are bf16. 0: the fp32 kernel */
    device_kind dev;     /* where activations live and the ops run (DEVICE_CPU after init) */
    struct sdxl_ops_cuda *cu;   /* the CUDA state: weight cache, workspace, staging (sdxl_cuda_backend.c); else NULL */
} sdxl_ops;

void sdxl_ops_init(sdxl_ops *o);
const char *sdxl_ops_kind_name(int kind);   /* "linear", "conv", "attention", "norm", "other" */
void sdxl_ops_free(sdxl_ops *o);
/* Run this context's ops on device d from now on (call before any forward pass): 0, or -1 with a one-line reason in
 * err (a CPU-only build, no usable GPU). DEVICE_CPU is always accepted. */
int sdxl_ops_set_device(sdxl_ops *o, device_kind d, char *err, size_t errlen);
/* The device weight cache is keyed by the nn_tensor's address: a weight must stay alive and unchanged while the
 * context is on the device. After changing or freeing weights (an in-place LoRA merge, a new store), drop the
 * cache; the next call uploads again. */
void sdxl_ops_drop_weights(sdxl_ops *o);
/* Bytes of weights uploaded to the device so far (0 on the CPU). */
size_t sdxl_ops_device_weight_bytes(const sdxl_ops *o);
/* A workspace of n float slots on the context's device, owned by the context and grown (never shrunk) to the
 * largest n asked for; on the CPU NULL (the caller's host workspace is used). */
float *sdxl_ops_workspace(sdxl_ops *o, size_t n);
/* dst[n] (device) = host_src[n] (fp32 on the host; rounded to fp16 on CUDA). On the CPU a memcpy (none when the
 * two are the same). */
void sdxl_ops_upload(sdxl_ops *o, float *dst, const float *host_src, size_t n);
/* host_dst[n] = src[n] (widened to fp32 on CUDA; waits for the device). */
void sdxl_ops_download(sdxl_ops *o, float *host_dst, const float *src, size_t n);
/* dst[n] = src[n] on the context's device */
void sdxl_ops_copy(sdxl_ops *o, float *dst, const float *src, size_t n);
/* Floats of conv workspace sdxl_ops_conv2d needs for B images of geometry g on the context's device. */
size_t sdxl_ops_conv_ws_floats(const sdxl_ops *o, const nn_conv_geom *g, int B);
/* Grow the weight scratch so a tensor of `numel` elements can be widened (call once at model creation with the
 * largest non-f32 weight, so nothing is allocated during a forward pass). */
void sdxl_ops_reserve(sdxl_ops *o, size_t numel);

/* fp32 data of t: t's own data when it is f32 and aligned, else t widened into scratch slot (0..2). */
const float *sdxl_ops_f32(sdxl_ops *o, const nn_tensor *t, int slot);

/* out[T, OC] = in[T, IC] W[OC, IC]^T + b[OC] (b may be NULL). With acc != 0: out += (the same), for residuals. */
void sdxl_ops_linear(sdxl_ops *o, float *out, const float *in, int T, const nn_tensor *W, const nn_tensor *b, int acc);
/* n linear layers without bias on the same input (attention's to_q / to_k / to_v): out[i][T, OC_i] = in W_i^T;
 * the input is converted / packed once for all of them */
void sdxl_ops_linear_multi(sdxl_ops *o, float *const *out, const float *in, int T, const nn_tensor *const *W, int n);
/* out[B, OC, OH, OW] = conv2d(in[B, IC, H, W]) + b, geometry g; ws[ws_n] im2col scratch */
void sdxl_ops_conv2d(sdxl_ops *o, float *out, const float *in, int B, const nn_conv_geom *g, const nn_tensor *W,
                     const nn_tensor *b, float *ws, size_t ws_n);
/* out[B, C, HW] = GroupNorm_G(in) gamma + beta, then SiLU when silu != 0 (out may equal in) */
void sdxl_ops_groupnorm(sdxl_ops *o, float *out, const float *in, int B, int C, int HW, int G, float eps,
                        const nn_tensor *gamma, const nn_tensor *beta, int silu);
/* out[N, D] = LayerNorm(in[N, D]) gamma + beta */
void sdxl_ops_layernorm(sdxl_ops *o, float *out, const float *in, int N, int D, float eps, const nn_tensor *gamma,
                        const nn_tensor *beta);
/* out[n] = silu(in[n]) (out may equal in) */
void sdxl_ops_silu(sdxl_ops *o, float *out, const float *in, size_t n);
/* out[T, I] = in[T, :I] * gelu(in[T, I:2I]) (diffusers GEGLU, exact GELU) */
void sdxl_ops_geglu(sdxl_ops *o, float *out, const float *in, int T, int I);
/* multi-head attention over token matrices q[B*Tq, heads*dh], k, v[B*Tk, heads*dh] -> out[B*Tq, heads*dh],
 * scale 1/sqrt(dh); with attn_bf16 set, q, k, v and the softmax weights are rounded to bf16 (nn/attention.h) */
void sdxl_ops_attention(sdxl_ops *o, float *out, const float *q, const float *k, const float *v, int B, int heads,
                        int Tq, int Tk, int dh);
/* out[B, HW, C] = in[B, C, HW]^T per sample */
void sdxl_ops_to_tokens(sdxl_ops *o, float *out, const float *in, int B, int C, int HW);
/* out[B, C, HW] = in[B, HW, C]^T + res[B, C, HW] per sample */
void sdxl_ops_from_tokens_add(sdxl_ops *o, float *out, const float *in, const float *res, int B, int C, int HW);
/* out[n] = a[n] + b[n] (out may alias either) */
void sdxl_ops_add(sdxl_ops *o, float *out, const float *a, const float *b, size_t n);
/* x[B, C, HW] += v[B, C] (one value per sample and channel: the ResNet's time projection) */
void sdxl_ops_chan_add(sdxl_ops *o, float *x, const float *v, int B, int C, int HW);
/* out[B, C1 + C2, HW] = concat(a[B, C1, HW], b[B, C2, HW]) along channels */
void sdxl_ops_concat(sdxl_ops *o, float *out, const float *a, int C1, const float *b, int C2, int B, int HW);
/* out[B, C, 2H, 2W] = nearest 2x upsampling of in[B, C, H, W] */
void sdxl_ops_upsample2x(sdxl_ops *o, float *out, const float *in, int B, int C, int H, int W);
/* (host only, on both devices: the caller uploads it) out[B, dim] = sinusoidal embedding of t[B] as diffusers' get_timestep_embedding (max period 10,000), in fp32
 * as torch computes it: exponent -ln(1e4) i / (dim/2 - shift), then [sin, cos] or [cos, sin] when flip. */
void sdxl_ops_timestep_embedding(float *out, const float *t, int B, int dim, int flip_sin_to_cos, float shift);

#endif
