/* nn/act: SiLU and ReLU forward/backward (see act.h).
 * exp: x = k ln2 + r with k = round(x / ln2), |r| <= ln2/2, r split against ln2 = hi + lo (Cody-Waite) so the
 * reduction is exact to float precision; e^r by the degree-7 Taylor polynomial (truncation < 6e-9 relative);
 * 2^k assembled in the exponent bits. Everything is branch-free so `omp simd` loops vectorise it. */
#include "act.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "act_exp.h"

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
