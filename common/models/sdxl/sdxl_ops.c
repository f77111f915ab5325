/* models/sdxl/sdxl_ops: CPU implementations of the SDXL networks' layer calls (see sdxl_ops.h). Linear layers
 * and convolutions go to the packed AVX-512 SGEMM (nn_sgemm, via nn_conv2d_forward for convolutions); norms,
 * activations and attention to nn/norm, nn/act, nn/attention. The f16 -> f32 widening uses the F16C conversion
 * instruction where the build has it (exact, like every f16 -> f32 conversion). */
#include "sdxl_ops.h"
#include "act.h"
#include "attention.h"
#include "gemm.h"
#include "log.h"
#include "mem.h"
#include "norm.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

void sdxl_ops_init(sdxl_ops *o) { memset(o, 0, sizeof *o); }

void sdxl_ops_free(sdxl_ops *o)
{
    for (int i = 0; i < 3; i++) free(o->wbuf[i]);
    free(o->stats);
    free(o->attn_ws);
    free(o->lora_ws);
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
#if defined(__AVX512F__)
    if (t->dtype == NN_F16)
        for (; i + 16 <= hi; i += 16)
            _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))));
    else
        for (; i + 16 <= hi; i += 16) {
            __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(h + i)));
            _mm512_storeu_si512(out + i, _mm512_slli_epi32(w, 16));
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

void sdxl_ops_linear(sdxl_ops *o, float *out, const float *in, int T, const nn_tensor *W, const nn_tensor *b, int acc)
{
    const int OC = (int)W->shape[0], IC = (int)(W->numel / (size_t)OC);   /* [OC, IC] or a 1x1 conv's [OC, IC, 1, 1] */
    const float *w = sdxl_ops_f32(o, W, 0);
    nn_sgemm(0, 1, T, OC, IC, 1.0f, in, IC, w, IC, acc ? 1.0f : 0.0f, out, OC);
    if (b) add_bias_rows(out, sdxl_ops_f32(o, b, 1), T, OC);
    const sdxl_lora_adapter *ad;
    size_t na = sdxl_lora_runtime_find(o->lora, W, &ad);
    if (na) {
        /* grows once per size, then reused: the first step allocates, later ones do not */
        float *ws = grow(&o->lora_ws, &o->lora_cap, sdxl_lora_linear_ws(ad, na, T));
        sdxl_lora_linear_add(out, in, T, IC, OC, ad, na, ws);
    }
}

void sdxl_ops_conv2d(sdxl_ops *o, float *out, const float *in, int B, const nn_conv_geom *g, const nn_tensor *W,
                     const nn_tensor *b, float *ws, size_t ws_n)
{
    nn_conv2d_forward(out, in, sdxl_ops_f32(o, W, 0), sdxl_ops_f32(o, b, 1), B, g, ws, ws_n);
    const sdxl_lora_adapter *ad;
    size_t na = sdxl_lora_runtime_find(o->lora, W, &ad);
    if (na) sdxl_lora_conv_add(out, in, B, g, ad, na, grow(&o->lora_ws, &o->lora_cap, sdxl_lora_conv_ws(ad, na, B, g)));
}

void sdxl_ops_groupnorm(sdxl_ops *o, float *out, const float *in, int B, int C, int HW, int G, float eps,
                        const nn_tensor *gamma, const nn_tensor *beta, int silu)
{
    float *st = grow(&o->stats, &o->stats_cap, 2 * (size_t)B * G);
    nn_groupnorm_forward(out, st, st + (size_t)B * G, in, sdxl_ops_f32(o, gamma, 1), sdxl_ops_f32(o, beta, 2), B, C,
                         HW, G, eps);
    if (silu) sdxl_ops_silu(out, out, (size_t)B * C * HW);
}

void sdxl_ops_layernorm(sdxl_ops *o, float *out, const float *in, int N, int D, float eps, const nn_tensor *gamma,
                        const nn_tensor *beta)
{
    float *st = grow(&o->stats, &o->stats_cap, 2 * (size_t)N);
    nn_layernorm_forward(out, st, st + N, in, sdxl_ops_f32(o, gamma, 1), sdxl_ops_f32(o, beta, 2), N, D, eps);
}

void sdxl_ops_silu(float *out, const float *in, size_t n)
{
    const size_t chunk = 1 << 15;
    const long nch = (long)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (nch > 2)
    for (long c = 0; c < nch; c++) {
        size_t lo = (size_t)c * chunk, len = lo + chunk < n ? chunk : n - lo;
        nn_silu_forward(out + lo, in + lo, len);
    }
}

void sdxl_ops_geglu(float *out, const float *in, int T, int I)
{
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
    const size_t need = nn_attention_ws_floats(dh, omp_get_max_threads());
    float *ws = grow(&o->attn_ws, &o->attn_cap, need);
    const int C = heads * dh;
    nn_attention_forward(out, C, q, C, k, C, v, C, B, heads, Tq, Tk, dh, 1.0f / sqrtf((float)dh), ws, need);
}

/* blocked transposes: 32 x 32 tiles keep both sides in cache */
void sdxl_ops_to_tokens(float *out, const float *in, int B, int C, int HW)
{
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

void sdxl_ops_from_tokens_add(float *out, const float *in, const float *res, int B, int C, int HW)
{
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

void sdxl_ops_add(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > (1u << 16))
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void sdxl_ops_concat(float *out, const float *a, int C1, const float *b, int C2, int B, int HW)
{
    for (int n = 0; n < B; n++) {
        memcpy(out + (size_t)n * (C1 + C2) * HW, a + (size_t)n * C1 * HW, (size_t)C1 * HW * sizeof(float));
        memcpy(out + ((size_t)n * (C1 + C2) + C1) * HW, b + (size_t)n * C2 * HW, (size_t)C2 * HW * sizeof(float));
    }
}

void sdxl_ops_upsample2x(float *out, const float *in, int B, int C, int H, int W)
{
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
