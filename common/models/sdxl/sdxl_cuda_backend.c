/* models/sdxl/sdxl_cuda_backend: the CUDA backend of sdxl_ops (issue 9 item 7). The UNet is written once over
 * sdxl_ops; this is its GPU side, as nn/cuda_backend.c is the engine's. It holds the weight cache (each nn_tensor
 * uploaded once, on first use, as fp16: f16 bytes as stored, f32 / bf16 rounded to nearest even on the host),
 * the device workspace, host <-> device staging of fp32 data as fp16, and the layer calls forwarded to the fp16 kernels of
 * nn/nn_cuda_sdxl.h. Activation pointers are device fp16 stored in fp32-sized regions (sdxl_ops.h). In a build
 * without CUDA only sdxl_ops_cuda_open exists in useful form: it fails, so nothing else is ever reached. */
#include "sdxl_cuda_backend.h"
#include "log.h"
#include "mem.h"
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef SF_HAVE_CUDA
#include "nn_cuda.h"
#include "nn_cuda_sdxl.h"

struct sdxl_ops_cuda {
    const nn_tensor **key;   /* open addressing on the tensor's address; cap a power of two */
    void **val;              /* its fp16 device copy */
    size_t cap, n, bytes;
    uint16_t *hbuf;          /* host fp16 staging */
    size_t hcap;
    float *ws;               /* device workspace (float slots) */
    size_t ws_cap;
};

int sdxl_ops_cuda_open(sdxl_ops *o, char *err, size_t errlen)
{
    char why[256] = "";
    if (device_cuda_count(why, sizeof why) == 0) {
        snprintf(err, errlen, "sdxl_ops: --device cuda: no usable GPU (%s)", why);
        return -1;
    }
    nn_cuda_init();
    struct sdxl_ops_cuda *c = mem_new(struct sdxl_ops_cuda, 1);
    c->cap = 1024;
    c->key = mem_new(const nn_tensor *, c->cap);
    c->val = mem_new(void *, c->cap);
    o->cu = c;
    return 0;
}

void sdxl_ops_cuda_close(sdxl_ops *o)
{
    struct sdxl_ops_cuda *c = o->cu;
    if (!c) return;
    for (size_t i = 0; i < c->cap; i++) nn_cuda_free(c->val[i]);
    nn_cuda_free(c->ws);
    free(c->key), free(c->val), free(c->hbuf), free(c);
    o->cu = NULL;
}

size_t sdxl_ops_cuda_weight_bytes(const sdxl_ops *o) { return o->cu ? o->cu->bytes : 0; }

void sdxl_ops_cuda_drop_weights(sdxl_ops *o)
{
    struct sdxl_ops_cuda *c = o->cu;
    if (!c) return;
    nn_cuda_sync();   /* queued kernels may still read them */
    for (size_t i = 0; i < c->cap; i++) {
        nn_cuda_free(c->val[i]);
        c->key[i] = NULL;
        c->val[i] = NULL;
    }
    c->n = c->bytes = 0;
}

static uint16_t *hstage(struct sdxl_ops_cuda *c, size_t n)
{
    if (n > c->hcap) {
        free(c->hbuf);
        c->hbuf = mem_new(uint16_t, n);
        c->hcap = n;
    }
    return c->hbuf;
}

static size_t slot_of(const nn_tensor *t, size_t cap)
{
    uintptr_t h = (uintptr_t)t;
    h ^= h >> 17;
    h *= (uintptr_t)0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 7) & (cap - 1);
}

static void put(struct sdxl_ops_cuda *c, const nn_tensor *t, void *d)
{
    size_t i = slot_of(t, c->cap);
    while (c->key[i]) i = (i + 1) & (c->cap - 1);
    c->key[i] = t;
    c->val[i] = d;
}

/* the fp16 device copy of weight t, uploaded on first use */
static const void *weight(sdxl_ops *o, const nn_tensor *t)
{
    if (!t) return NULL;
    struct sdxl_ops_cuda *c = o->cu;
    for (size_t i = slot_of(t, c->cap); c->key[i]; i = (i + 1) & (c->cap - 1))
        if (c->key[i] == t) return c->val[i];
    if (t->device != DEVICE_CPU) LOG_FATAL("sdxl_ops: weight on %s, expected host memory", device_name(t->device));
    if (2 * (c->n + 1) > c->cap) {   /* keep the load below 1/2 */
        const nn_tensor **ok = c->key;
        void **ov = c->val;
        size_t ocap = c->cap;
        c->cap *= 2;
        c->key = mem_new(const nn_tensor *, c->cap);
        c->val = mem_new(void *, c->cap);
        for (size_t i = 0; i < ocap; i++)
            if (ok[i]) put(c, ok[i], ov[i]);
        free(ok), free(ov);
    }
    const size_t n = t->numel;
    void *d = nn_cuda_malloc(n * 2);
    if (t->dtype == NN_F16 && ((uintptr_t)t->data & 1u) == 0)
        nn_cuda_memcpy_h2d(d, t->data, n * 2);
    else {
        /* the host copy is staged before nn_cuda_memcpy_h2d returns (pageable memory), so hbuf is reusable */
        uint16_t *h = hstage(c, n);
        nn_f32_convert_to(h, NN_F16, sdxl_ops_f32(o, t, 0), n);
        nn_cuda_memcpy_h2d(d, h, n * 2);
    }
    put(c, t, d);
    c->n++;
    c->bytes += n * 2;
    return d;
}

float *sdxl_ops_cuda_workspace(sdxl_ops *o, size_t n)
{
    struct sdxl_ops_cuda *c = o->cu;
    if (n > c->ws_cap) {
        nn_cuda_sync();   /* queued work may still use the old buffer */
        nn_cuda_free(c->ws);
        c->ws = nn_cuda_malloc_floats(n);
        c->ws_cap = n;
    }
    return c->ws;
}

void sdxl_ops_cuda_upload(sdxl_ops *o, float *dst, const float *host_src, size_t n)
{
    uint16_t *h = hstage(o->cu, n);
    nn_f32_convert_to(h, NN_F16, host_src, n);
    nn_cuda_memcpy_h2d(dst, h, n * 2);
}

void sdxl_ops_cuda_download(sdxl_ops *o, float *host_dst, const float *src, size_t n)
{
    uint16_t *h = hstage(o->cu, n);
    nn_cuda_memcpy_d2h(h, src, n * 2);
    for (size_t i = 0; i < n; i++) host_dst[i] = nn_f16_to_f32(h[i]);
}

void sdxl_ops_cuda_copy(float *dst, const float *src, size_t n) { nn_cuda_memcpy_d2d(dst, src, n * 2); }

size_t sdxl_ops_cuda_conv_ws_floats(const nn_conv_geom *g, int B)
{
    return (nn_h_conv2d_ws_halves(g) * (size_t)B + 1) / 2;   /* the whole batch in one strided GEMM */
}

static void no_lora(const sdxl_ops *o)
{
    if (o->lora)
        LOG_FATAL("sdxl_ops: run-time LoRA is CPU only; on CUDA merge the LoRA into the weights instead");
}

void sdxl_ops_cuda_linear(sdxl_ops *o, float *out, const float *in, int T, const nn_tensor *W, const nn_tensor *b,
                          int acc)
{
    no_lora(o);
    const int OC = (int)W->shape[0], IC = (int)(W->numel / (size_t)OC);
    nn_h_linear_cuda(out, in, weight(o, W), weight(o, b), T, IC, OC, acc);
}

void sdxl_ops_cuda_conv2d(sdxl_ops *o, float *out, const float *in, int B, const nn_conv_geom *g, const nn_tensor *W,
                          const nn_tensor *b, float *ws, size_t ws_n)
{
    no_lora(o);
    nn_h_conv2d_cuda(out, in, weight(o, W), weight(o, b), B, g, ws, 2 * ws_n);
}

void sdxl_ops_cuda_groupnorm(sdxl_ops *o, float *out, const float *in, int B, int C, int HW, int G, float eps,
                             const nn_tensor *gamma, const nn_tensor *beta, int silu)
{
    nn_h_groupnorm_cuda(out, in, weight(o, gamma), weight(o, beta), B, C, HW, G, eps, silu);
}

void sdxl_ops_cuda_layernorm(sdxl_ops *o, float *out, const float *in, int N, int D, float eps,
                             const nn_tensor *gamma, const nn_tensor *beta)
{
    nn_h_layernorm_cuda(out, in, weight(o, gamma), weight(o, beta), N, D, eps);
}

void sdxl_ops_cuda_silu(float *out, const float *in, size_t n) { nn_h_silu_cuda(out, in, n); }
void sdxl_ops_cuda_geglu(float *out, const float *in, int T, int I) { nn_h_geglu_cuda(out, in, T, I); }
void sdxl_ops_cuda_attention(float *out, const float *q, const float *k, const float *v, int B, int heads, int Tq,
                             int Tk, int dh)
{
    nn_h_attention_cuda(out, q, k, v, B, heads, Tq, Tk, dh);
}
void sdxl_ops_cuda_to_tokens(float *out, const float *in, int B, int C, int HW)
{
    nn_h_to_tokens_cuda(out, in, B, C, HW);
}
void sdxl_ops_cuda_from_tokens_add(float *out, const float *in, const float *res, int B, int C, int HW)
{
    nn_h_from_tokens_add_cuda(out, in, res, B, C, HW);
}
void sdxl_ops_cuda_add(float *out, const float *a, const float *b, size_t n) { nn_h_add_cuda(out, a, b, n); }
void sdxl_ops_cuda_chan_add(float *x, const float *v, int B, int C, int HW) { nn_h_chan_add_cuda(x, v, B, C, HW, C); }
void sdxl_ops_cuda_concat(float *out, const float *a, int C1, const float *b, int C2, int B, int HW)
{
    nn_h_concat_cuda(out, a, C1, b, C2, B, HW);
}
void sdxl_ops_cuda_upsample2x(float *out, const float *in, int B, int C, int H, int W)
{
    nn_h_upsample2x_cuda(out, in, B, C, H, W);
}

#else /* no CUDA in this build: a context can never be moved to the GPU */

int sdxl_ops_cuda_open(sdxl_ops *o, char *err, size_t errlen)
{
    (void)o;
    snprintf(err, errlen, "sdxl_ops: --device cuda: this build has no CUDA (rebuild with nvcc installed)");
    return -1;
}
void sdxl_ops_cuda_close(sdxl_ops *o) { (void)o; }
void sdxl_ops_cuda_drop_weights(sdxl_ops *o) { (void)o; }
size_t sdxl_ops_cuda_weight_bytes(const sdxl_ops *o)
{
    (void)o;
    return 0;
}

#endif
