/* nn/act_exp: the vectorisable single-precision exp of act.c (Cody-Waite reduction + degree-7 polynomial, see
 * act.h nn_act_expf) as a static inline, so kernels outside act.c that fuse SiLU (norm.c) vectorise it and get
 * the same bits as nn_silu_forward / nn_silu_backward. */
#ifndef SF_NN_ACT_EXP_H
#define SF_NN_ACT_EXP_H
#include <math.h>
#include <stdint.h>

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

/* SiLU and its derivative, written exactly as nn_silu_forward / nn_silu_backward evaluate them */
static inline float act_silu(float x) { return x / (1.0f + act_expf(-x)); }
static inline float act_silu_grad(float x)
{
    const float s = 1.0f / (1.0f + act_expf(-x));
    return s * (1.0f + x * (1.0f - s));
}

#endif
