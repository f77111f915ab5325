/* models/sdxl/sdxl_ops: CPU implementations of the SDXL networks' layer calls (see sdxl_ops.h). Linear layers
 * and convolutions with f32 / f16 weights go to the packed SGEMM (nn_sgemm, via nn_conv2d_forward for
 * convolutions) after exact widening; with bf16 weights to the bf16 GEMM (nn_gemm_bf16: the weights are used as
 * stored, the fp32 activations are rounded to bf16 while packed, products accumulate in fp32), convolutions
 * through an im2col here. Norms, activations and attention go to nn/norm, nn/act, nn/attention. The f16 -> f32
 * widening uses the F16C conversion instruction where the build has it (exact, like every f16 -> f32 conversion). */
#include "sdxl_ops.h"
#include "sdxl_cuda_backend.h"
#include "act.h"
#include "attention.h"
#include "gemm.h"
#include "gemm_amx.h"
#include "sdxl_ops_bf16.h"
#include "log.h"
#include "mem.h"
#include "norm.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__F16C__) && defined(__AVX2__)
#include <immintrin.h>
#define OPS_F16C 1
#else
#define OPS_F16C 0
#endif

/* On a CUDA context the call goes to sdxl_cuda_backend.c; in a CPU-only build there is no such context. */
#ifdef SF_HAVE_CUDA
#define ON_CUDA(o, call)                                                       \
    do {                                                                       \
        if ((o)->dev == DEVICE_CUDA) {                                         \
            call;                                                              \
            return;                                                            \
        }                                                                      \
    } while (0)
#else
#define ON_CUDA(o, call) ((void)(o))
#endif

void sdxl_ops_init(sdxl_ops *o) { memset(o, 0, sizeof *o); }

int sdxl_ops_set_device(sdxl_ops *o, device_kind d, char *err, size_t errlen)
{
    if (d == o->dev) return 0;
    if (d == DEVICE_CPU) {
        sdxl_ops_cuda_close(o);
        o->dev = DEVICE_CPU;
        return 0;
    }
    if (sdxl_ops_cuda_open(o, err, errlen)) return -1;
    o->dev = DEVICE_CUDA;
    return 0;
}

size_t sdxl_ops_device_weight_bytes(const sdxl_ops *o) { return sdxl_ops_cuda_weight_bytes(o); }
void sdxl_ops_drop_weights(sdxl_ops *o) { sdxl_ops_cuda_drop_weights(o); }

float *sdxl_ops_workspace(sdxl_ops *o, size_t n)
{
#ifdef SF_HAVE_CUDA
    if (o->dev == DEVICE_CUDA) return sdxl_ops_cuda_workspace(o, n);
#endif
    (void)o, (void)n;
    return NULL;
}

void sdxl_ops_upload(sdxl_ops *o, float *dst, const float *host_src, size_t n)
{
    ON_CUDA(o, sdxl_ops_cuda_upload(o, dst, host_src, n));
    if (dst != host_src) memcpy(dst, host_src, n * sizeof *dst);
}

void sdxl_ops_download(sdxl_ops *o, float *host_dst, const float *src, size_t n)
{
    ON_CUDA(o, sdxl_ops_cuda_download(o, host_dst, src, n));
    if (host_dst != src) memcpy(host_dst, src, n * sizeof *src);
}

void sdxl_ops_copy(sdxl_ops *o, float *dst, const float *src, size_t n)
{
    ON_CUDA(o, sdxl_ops_cuda_copy(dst, src, n));
    memcpy(dst, src, n * sizeof *dst);
}

size_t sdxl_ops_conv_ws_floats(const sdxl_ops *o, const nn_conv_geom *g, int B)
{
#ifdef SF_HAVE_CUDA
    if (o->dev == DEVICE_CUDA) return sdxl_ops_cuda_conv_ws_floats(g, B);
#endif
    (void)o;
    return nn_conv2d_ws_floats(g, B);
}

const char *sdxl_ops_kind_name(int kind)
{
    static const char *const names[SDXL_OPS_NKIND] = {"linear", "conv", "attention", "norm", "other"};
    return kind >= 0 && kind < SDXL_OPS_NKIND ? names[kind] : "?";
}

#define TIMED(o, kind, body)                                                   \
    do {                                                                       \
        const double t0_ = omp_get_wtime();                                    \
        body;                                                                  \
        (o)->seconds[kind] += omp_get_wtime() - t0_;                           \
    } while (0)

void sdxl_ops_free(sdxl_ops *o)
{
    for (int i = 0; i < 3; i++) free(o->wbuf[i]);
    free(o->stats);
    free(o->attn_ws);
    free(o->lora_ws);
    free(o->pack);
    sdxl_ops_cuda_close(o);
    memset(o, 0, sizeof *o);
}

static float *grow(float **buf, size_t *cap, size_t n)
{
    if (n > *cap) {
        free(*buf);
        size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
        *buf = aligned_alloc(64, bytes);
        if (!*buf) LOG_FATAL("sdxl_ops: out of memory for %zu bytes", bytes);
        *cap = n;
    }
    return *buf;
}

void sdxl_ops_reserve(sdxl_ops *o, size_t numel) { grow(&o->wbuf[0], &o->wcap[0], numel); }

/* f16 / bf16 -> f32 over [lo, hi) */
static void widen_range(float *out, const nn_tensor *t, size_t lo, size_t hi)
{
    const uint16_t *h = t->data;   /* 2-byte alignment: safetensors offsets are multiples of the element size */
    size_t i = lo;
#if OPS_F16C
    if (t->dtype == NN_F16)
        for (; i + 8 <= hi; i += 8)
            _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    else
        for (; i + 8 <= hi; i += 8) {
            __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + i)));
            _mm256_storeu_si256((__m256i *)(out + i), _mm256_slli_epi32(w, 16));
        }
#endif
    if (t->dtype == NN_F16)
        for (; i < hi; i++) out[i] = nn_f16_to_f32(h[i]);
    else
        for (; i < hi; i++) out[i] = nn_bf16_to_f32(h[i]);
}

const float *sdxl_ops_f32(sdxl_ops *o, const nn_tensor *t, int slot)
{
    if (!t) return NULL;
    if (t->device != DEVICE_CPU) LOG_FATAL("sdxl_ops: a weight on %s (CPU only here)", device_name(t->device));
    if (t->dtype == NN_F32 && ((uintptr_t)t->data & 3u) == 0) return t->data;
    float *out = grow(&o->wbuf[slot], &o->wcap[slot], t->numel);
    if (t->dtype == NN_F32) {
        memcpy(out, t->data, t->numel * sizeof(float));
        return out;
    }
    if (((uintptr_t)t->data & 1u) != 0) {   /* a foreign file with odd offsets: the slow, byte-safe path */
        nn_tensor_to_f32(out, t);
        return out;
    }
    const size_t n = t->numel, chunk = 1 << 16;
    const long nch = (long)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (nch > 4)
    for (long c = 0; c < nch; c++) {
        size_t lo = (size_t)c * chunk, hi = lo + chunk < n ? lo + chunk : n;
        widen_range(out, t, lo, hi);
    }
    return out;
}

static void add_bias_rows(float *out, const float *b, int T, int OC)
{
#pragma omp parallel for schedule(static) if ((long)T * OC > (1L << 16))
    for (int r = 0; r < T; r++) {
        float *row = out + (size_t)r * OC;
#pragma omp simd
        for (int c = 0; c < OC; c++) row[c] += b[c];
    }
}

/* bf16 weights go to the bf16 GEMM as stored (2-byte aligned: safetensors offsets are multiples of 2) */
static int use_bf16(const nn_tensor *W) { return W->dtype == NN_BF16 && ((uintptr_t)W->data & 1u) == 0; }

/* run-time LoRA (lora.h) of weight W, when the table has it: out[T, OC] += sum_k s_k (in A_k^T) B_k^T. The
 * scratch grows once per size, then is reused: the first step allocates, later ones do not. */
static void lora_linear(sdxl_ops *o, float *out, const float *in, int T, int IC, int OC, const nn_tensor *W)
{
    const sdxl_lora_adapter *ad;
    size_t na = sdxl_lora_runtime_find(o->lora, W, &ad);
    if (na) sdxl_lora_linear_add(out, in, T, IC, OC, ad, na, grow(&o->lora_ws, &o->lora_cap, sdxl_lora_linear_ws(ad, na, T)));
}

void sdxl_ops_linear(sdxl_ops *o, float *out, const float *in, int T, const nn_tensor *W, const nn_tensor *b, int acc)
{
    ON_CUDA(o, sdxl_ops_cuda_linear(o, out, in, T, W, b, acc));
    const int OC = (int)W->shape[0], IC = (int)(W->numel / (size_t)OC);   /* [OC, IC] or a 1x1 conv's [OC, IC, 1, 1] */
    TIMED(o, SDXL_OPS_LINEAR, {
        if (use_bf16(W) && nn_amx_ok(OC, IC) && nn_amx_available()) {
            void *pk = grow(&o->pack, &o->pack_cap, nn_amx_packed_bytes(IC, T) / sizeof(float) + 16);
            nn_amx_pack_rows(pk, in, IC, T, IC);
            nn_amx_gemm(OC, T, IC, W->data, IC, pk, acc ? 1.0f : 0.0f, out, OC, 1);
        } else if (use_bf16(W))
            sdxl_ops_bf16_linear(out, in, T, OC, IC, W->data, acc ? 1.0f : 0.0f);
        else
            nn_sgemm(0, 1, T, OC, IC, 1.0f, in, IC, sdxl_ops_f32(o, W, 0), IC, acc ? 1.0f : 0.0f, out, OC);
        if (b) add_bias_rows(out, sdxl_ops_f32(o, b, 1), T, OC);
        lora_linear(o, out, in, T, IC, OC, W);
    });
}

void sdxl_ops_linear_multi(sdxl_ops *o, float *const *out, const float *in, int T, const nn_tensor *const *W, int n)
{
    int amx = o->dev == DEVICE_CPU && nn_amx_available();
    for (int i = 0; i < n; i++) amx &= use_bf16(W[i]) && nn_amx_ok((int)W[i]->shape[0], (int)W[i]->shape[1]) &&
                                       W[i]->shape[1] == W[0]->shape[1];
    if (!amx) {
        for (int i = 0; i < n; i++) sdxl_ops_linear(o, out[i], in, T, W[i], NULL, 0);
        return;
    }
    const int IC = (int)W[0]->shape[1];
    TIMED(o, SDXL_OPS_LINEAR, {
        void *pk = grow(&o->pack, &o->pack_cap, nn_amx_packed_bytes(IC, T) / sizeof(float) + 16);
        nn_amx_pack_rows(pk, in, IC, T, IC);
        for (int i = 0; i < n; i++) {
            const int OC = (int)W[i]->shape[0];
            nn_amx_gemm(OC, T, IC, W[i]->data, IC, pk, 0.0f, out[i], OC, 1);
            lora_linear(o, out[i], in, T, IC, OC, W[i]);
        }
    });
}

/* col[IC KH KW, OH OW] of one image in[IC, H, W] (zero padding) */
static void im2col(float *col, const float *in, const nn_conv_geom *g)
{
    const int P = g->OH * g->OW;
    const long rows = (long)g->IC * g->KH * g->KW;
#pragma omp parallel for schedule(static) if (rows * P > (1L << 16))
    for (long r = 0; r < rows; r++) {
        const int c = (int)(r / (g->KH * g->KW)), ky = (int)(r / g->KW % g->KH), kx = (int)(r % g->KW);
        const float *src = in + (size_t)c * g->H * g->W;
        float *dst = col + (size_t)r * P;
        for (int oy = 0; oy < g->OH; oy++) {
            const int y = oy * g->SH - g->PH + ky;
            float *d = dst + (size_t)oy * g->OW;
            if (y < 0 || y >= g->H) {
                memset(d, 0, (size_t)g->OW * sizeof(float));
                continue;
            }
            const float *srow = src + (size_t)y * g->W;
            if (g->SW == 1) {
                const int x0 = kx - g->PW;   /* x = ox + x0 */
                for (int ox = 0; ox < g->OW; ox++) {
                    const int x = ox + x0;
                    d[ox] = x >= 0 && x < g->W ? srow[x] : 0.0f;
                }
            } else
                for (int ox = 0; ox < g->OW; ox++) {
                    const int x = ox * g->SW - g->PW + kx;
                    d[ox] = x >= 0 && x < g->W ? srow[x] : 0.0f;
                }
        }
    }
}

static void conv2d(sdxl_ops *o, float *out, const float *in, int B, const nn_conv_geom *g, const nn_tensor *W,
                   const nn_tensor *b, float *ws, size_t ws_n)
{
    if (!use_bf16(W)) {
        nn_conv2d_forward(out, in, sdxl_ops_f32(o, W, 0), sdxl_ops_f32(o, b, 1), B, g, ws, ws_n);
        return;
    }
    const int K = g->IC * g->KH * g->KW, P = g->OH * g->OW;
    if (nn_amx_ok(g->OC, K) && g->SH == g->SW && g->PH == g->PW && nn_amx_available()) {
        /* im2col straight into the AMX packed layout, one image at a time */
        void *pk = grow(&o->pack, &o->pack_cap, nn_amx_packed_bytes(K, P) / sizeof(float) + 16);
        const float *bias = sdxl_ops_f32(o, b, 1);
        for (int n = 0; n < B; n++) {
            float *y = out + (size_t)n * g->OC * P;
            nn_amx_pack_im2col(pk, in + (size_t)n * g->IC * g->H * g->W, g->IC, g->H, g->W, g->KH, g->KW, g->SH,
                               g->PH, g->OH, g->OW);
            nn_amx_gemm(g->OC, P, K, W->data, K, pk, 0.0f, y, P, 0);
            if (bias)
#pragma omp parallel for schedule(static) if ((long)g->OC * P > (1L << 16))
                for (int c = 0; c < g->OC; c++) {
                    float *row = y + (size_t)c * P;
                    for (int i = 0; i < P; i++) row[i] += bias[c];
                }
        }
        return;
    }
    const int pointwise = g->KH == 1 && g->KW == 1 && g->SH == 1 && g->SW == 1 && g->PH == 0 && g->PW == 0;
    if (!pointwise && ws_n < (size_t)K * P)
        LOG_FATAL("sdxl_ops_conv2d: workspace %zu floats < %zu", ws_n, (size_t)K * P);
    const float *bias = sdxl_ops_f32(o, b, 1);
    for (int n = 0; n < B; n++) {
        const float *x = in + (size_t)n * g->IC * g->H * g->W;
        float *y = out + (size_t)n * g->OC * P;
        if (!pointwise) im2col(ws, x, g);
        sdxl_ops_bf16_wx(y, W->data, pointwise ? x : ws, g->OC, P, K);
        if (bias)
#pragma omp parallel for schedule(static) if ((long)g->OC * P > (1L << 16))
            for (int c = 0; c < g->OC; c++) {
                float *row = y + (size_t)c * P;
                for (int i = 0; i < P; i++) row[i] += bias[c];
            }
    }
}

void sdxl_ops_conv2d(sdxl_ops *o, float *out, const float *in, int B, const nn_conv_geom *g, const nn_tensor *W,
                     const nn_tensor *b, float *ws, size_t ws_n)
{
    ON_CUDA(o, sdxl_ops_cuda_conv2d(o, out, in, B, g, W, b, ws, ws_n));
    TIMED(o, SDXL_OPS_CONV, {
        conv2d(o, out, in, B, g, W, b, ws, ws_n);
        const sdxl_lora_adapter *ad;
        size_t na = sdxl_lora_runtime_find(o->lora, W, &ad);
        if (na)
            sdxl_lora_conv_add(out, in, B, g, ad, na, grow(&o->lora_ws, &o->lora_cap, sdxl_lora_conv_ws(ad, na, B, g)));
    });
}

void sdxl_ops_groupnorm(sdxl_ops *o, float *out, const float *in, int B, int C, int HW, int G, float eps,
                        const nn_tensor *gamma, const nn_tensor *beta, int silu)
{
    ON_CUDA(o, sdxl_ops_cuda_groupnorm(o, out, in, B, C, HW, G, eps, gamma, beta, silu));
    float *st = grow(&o->stats, &o->stats_cap, 2 * (size_t)B * G);
    TIMED(o, SDXL_OPS_NORM, {
        nn_groupnorm_forward(out, st, st + (size_t)B * G, in, sdxl_ops_f32(o, gamma, 1), sdxl_ops_f32(o, beta, 2), B,
                             C, HW, G, eps);
        if (silu) sdxl_ops_silu(o, out, out, (size_t)B * C * HW);
    });
}

void sdxl_ops_layernorm(sdxl_ops *o, float *out, const float *in, int N, int D, float eps, const nn_tensor *gamma,
                        const nn_tensor *beta)
{
    ON_CUDA(o, sdxl_ops_cuda_layernorm(o, out, in, N, D, eps, gamma, beta));
    float *st = grow(&o->stats, &o->stats_cap, 2 * (size_t)N);
    TIMED(o, SDXL_OPS_NORM,
          nn_layernorm_forward(out, st, st + N, in, sdxl_ops_f32(o, gamma, 1), sdxl_ops_f32(o, beta, 2), N, D, eps));
}

void sdxl_ops_silu(sdxl_ops *o, float *out, const float *in, size_t n)
{
    ON_CUDA(o, sdxl_ops_cuda_silu(out, in, n));
    (void)o;
    const size_t chunk = 1 << 15;
    const long nch = (long)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (nch > 2)
    for (long c = 0; c < nch; c++) {
        size_t lo = (size_t)c * chunk, len = lo + chunk < n ? chunk : n - lo;
        nn_silu_forward(out + lo, in + lo, len);
    }
}

void sdxl_ops_geglu(sdxl_ops *ops, float *out, const float *in, int T, int I)
{
    ON_CUDA(ops, sdxl_ops_cuda_geglu(out, in, T, I));
    (void)ops;
#pragma omp parallel for schedule(static) if ((long)T * I > (1L << 15))
    for (int r = 0; r < T; r++) {
        float *o = out + (size_t)r * I;
        const float *a = in + (size_t)r * 2 * I;
        nn_gelu_forward(o, a + I, (size_t)I);
#pragma omp simd
        for (int c = 0; c < I; c++) o[c] *= a[c];
    }
}

void sdxl_ops_attention(sdxl_ops *o, float *out, const float *q, const float *k, const float *v, int B, int heads,
                        int Tq, int Tk, int dh)
{
    ON_CUDA(o, sdxl_ops_cuda_attention(out, q, k, v, B, heads, Tq, Tk, dh));
    const int C = heads * dh;
    const float scale = 1.0f / sqrtf((float)dh);
    if (o->attn_bf16) {
        const size_t need = nn_attention_bf16_ws_floats(B, heads, Tk, dh, omp_get_max_threads());
        float *ws = grow(&o->attn_ws, &o->attn_cap, need);
        TIMED(o, SDXL_OPS_ATTN,
              nn_attention_bf16_forward(out, C, q, C, k, C, v, C, B, heads, Tq, Tk, dh, scale, ws, need));
        return;
    }
    const size_t need = nn_attention_ws_floats(dh, omp_get_max_threads());
    float *ws = grow(&o->attn_ws, &o->attn_cap, need);
    TIMED(o, SDXL_OPS_ATTN, nn_attention_forward(out, C, q, C, k, C, v, C, B, heads, Tq, Tk, dh, scale, ws, need));
}

/* blocked transposes: 32 x 32 tiles keep both sides in cache */
void sdxl_ops_to_tokens(sdxl_ops *o, float *out, const float *in, int B, int C, int HW)
{
    ON_CUDA(o, sdxl_ops_cuda_to_tokens(out, in, B, C, HW));
    (void)o;
    const int TB = 32;
    const long ntile = (long)B * ((C + TB - 1) / TB);
#pragma omp parallel for schedule(static) if ((long)B * C * HW > (1L << 15))
    for (long tile = 0; tile < ntile; tile++) {
        const int b = (int)(tile / ((C + TB - 1) / TB)), c0 = (int)(tile % ((C + TB - 1) / TB)) * TB;
        const int c1 = c0 + TB < C ? c0 + TB : C;
        const float *src = in + (size_t)b * C * HW;
        float *dst = out + (size_t)b * C * HW;
        for (int p0 = 0; p0 < HW; p0 += TB) {
            const int p1 = p0 + TB < HW ? p0 + TB : HW;
            for (int c = c0; c < c1; c++)
                for (int p = p0; p < p1; p++) dst[(size_t)p * C + c] = src[(size_t)c * HW + p];
        }
    }
}

void sdxl_ops_from_tokens_add(sdxl_ops *o, float *out, const float *in, const float *res, int B, int C, int HW)
{
    ON_CUDA(o, sdxl_ops_cuda_from_tokens_add(out, in, res, B, C, HW));
    (void)o;
    const int TB = 32;
    const long ntile = (long)B * ((C + TB - 1) / TB);
#pragma omp parallel for schedule(static) if ((long)B * C * HW > (1L << 15))
    for (long tile = 0; tile < ntile; tile++) {
        const int b = (int)(tile / ((C + TB - 1) / TB)), c0 = (int)(tile % ((C + TB - 1) / TB)) * TB;
        const int c1 = c0 + TB < C ? c0 + TB : C;
        const float *src = in + (size_t)b * C * HW, *r = res + (size_t)b * C * HW;
        float *dst = out + (size_t)b * C * HW;
        for (int p0 = 0; p0 < HW; p0 += TB) {
            const int p1 = p0 + TB < HW ? p0 + TB : HW;
            for (int c = c0; c < c1; c++)
                for (int p = p0; p < p1; p++)
                    dst[(size_t)c * HW + p] = src[(size_t)p * C + c] + r[(size_t)c * HW + p];
        }
    }
}

void sdxl_ops_chan_add(sdxl_ops *o, float *x, const float *v, int B, int C, int HW)
{
    ON_CUDA(o, sdxl_ops_cuda_chan_add(x, v, B, C, HW));
    (void)o;
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < C; ch++) {
            float *p = x + ((size_t)b * C + ch) * HW;
            const float a = v[b * C + ch];
            for (int i = 0; i < HW; i++) p[i] += a;
        }
}

void sdxl_ops_add(sdxl_ops *o, float *out, const float *a, const float *b, size_t n)
{
    ON_CUDA(o, sdxl_ops_cuda_add(out, a, b, n));
    (void)o;
#pragma omp parallel for simd schedule(static) if (n > (1u << 16))
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void sdxl_ops_concat(sdxl_ops *o, float *out, const float *a, int C1, const float *b, int C2, int B, int HW)
{
    ON_CUDA(o, sdxl_ops_cuda_concat(out, a, C1, b, C2, B, HW));
    (void)o;
    for (int n = 0; n < B; n++) {
        memcpy(out + (size_t)n * (C1 + C2) * HW, a + (size_t)n * C1 * HW, (size_t)C1 * HW * sizeof(float));
        memcpy(out + ((size_t)n * (C1 + C2) + C1) * HW, b + (size_t)n * C2 * HW, (size_t)C2 * HW * sizeof(float));
    }
}

void sdxl_ops_upsample2x(sdxl_ops *o, float *out, const float *in, int B, int C, int H, int W)
{
    ON_CUDA(o, sdxl_ops_cuda_upsample2x(out, in, B, C, H, W));
    (void)o;
    const long planes = (long)B * C;
#pragma omp parallel for schedule(static) if (planes * H * W > (1L << 15))
    for (long pl = 0; pl < planes; pl++) {
        const float *src = in + (size_t)pl * H * W;
        float *dst = out + (size_t)pl * 4 * H * W;
        for (int y = 0; y < H; y++) {
            float *r0 = dst + (size_t)(2 * y) * 2 * W, *r1 = r0 + 2 * W;
            for (int x = 0; x < W; x++) r0[2 * x] = r0[2 * x + 1] = src[(size_t)y * W + x];
            memcpy(r1, r0, (size_t)2 * W * sizeof(float));
        }
    }
}

void sdxl_ops_timestep_embedding(float *out, const float *t, int B, int dim, int flip_sin_to_cos, float shift)
{
    const int half = dim / 2;
    const float lnmax = (float)-log(10000.0), den = (float)half - shift;
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * dim;
        for (int i = 0; i < half; i++) {
            const float arg = t[b] * expf(lnmax * (float)i / den);
            const float s = sinf(arg), c = cosf(arg);
            o[i] = flip_sin_to_cos ? c : s;
            o[half + i] = flip_sin_to_cos ? s : c;
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
}
