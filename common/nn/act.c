/* nn/act: SiLU and ReLU forward/backward (see act.h).
 * exp: x = k ln2 + r with k = round(x / ln2), |r| <= ln2/2, r split against ln2 = hi + lo (Cody-Waite) so the
 * reduction is exact to float precision; e^r by the degree-7 Taylor polynomial (truncation < 6e-9 relative);
 * 2^k assembled in the exponent bits. Everything is branch-free so `omp simd` loops vectorise it. */
#include "act.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float act_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float shifter = 12582912.0f;           /* 1.5 * 2^23: adding it rounds to an integer */
    float kf = fmaf(x, 1.44269504088896341f, shifter) - shifter;
    float r = fmaf(kf, -0.693145751953125f, x);  /* ln2 hi (exact in float, 12 low bits zero) */
    r = fmaf(kf, -1.428606765330187045e-06f, r); /* ln2 lo */
    float p = 1.0f / 5040.0f;
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int32_t k = (int32_t)kf;
    union {
        uint32_t u;
        float f;
    } s;
    s.u = (uint32_t)(k + 127) << 23;
    return p * s.f;
}

float nn_act_expf(float x) { return act_expf(x); }

void nn_silu_forward(float *out, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = x[i] / (1.0f + act_expf(-x[i]));
}

void nn_silu_backward(float *din, const float *dout, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + act_expf(-x[i]));
        din[i] += dout[i] * (s * (1.0f + x[i] * (1.0f - s)));
    }
}

void nn_relu_forward(float *out, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void nn_relu_mask(float *g, const float *h, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) g[i] = h[i] > 0.0f ? g[i] : 0.0f;
}

void nn_relu_backward(float *din, const float *dout, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) din[i] += x[i] > 0.0f ? dout[i] : 0.0f;
}

void nn_exp_forward(float *out, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = act_expf(x[i]);
}

/* erf(z) = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^{-z^2}, t = 1 / (1 + p z), z >= 0 (A&S 7.1.26), odd. */
static inline float act_erff(float z)
{
    const float az = fabsf(z), t = 1.0f / fmaf(0.3275911f, az, 1.0f);
    float p = 1.061405429f;
    p = fmaf(p, t, -1.453152027f);
    p = fmaf(p, t, 1.421413741f);
    p = fmaf(p, t, -0.284496736f);
    p = fmaf(p, t, 0.254829592f);
    const float e = 1.0f - p * t * act_expf(-az * az);
    return z < 0.0f ? -e : e;
}

void nn_gelu_forward(float *out, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = 0.5f * x[i] * (1.0f + act_erff(x[i] * 0.70710678118654752f));
}
