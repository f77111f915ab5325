/* philox_core: the arithmetic of the counter-based generator (philox.h), written once and compiled twice: by the
 * C compiler for the CPU (common/philox.c) and by nvcc for the GPU (common/cuda/cuda_philox.cu). Internal: only
 * those two files include it.
 *
 * Why a private float log / sincos instead of libm's: the CPU and the GPU must produce the SAME BITS for every
 * Gaussian, and glibc's logf/sinf and CUDA's differ in the last ulp now and then. Every function below uses
 * only IEEE-754 operations that are correctly rounded on both sides (+, -, *, /, sqrt, fma) and integer
 * bit manipulation, so the result is fully determined by the inputs. Two things keep it that way:
 *   - no contraction: on the device every multiply and add goes through __fmul_rn / __fadd_rn (which nvcc
 *     never fuses into an FMA); on the host the project compiles with -std=c11, where GCC does not contract
 *     (-ffp-contract=off); the few intended FMAs are explicit fmaf / __fmaf_rn;
 *   - no reassociation: no fast-math anywhere (DESIGN.md §4).
 * Accuracy (tests/test_philox.c): log within 2 ulp of the double-precision log, sin/cos within 2 ulp of
 * sin/cos(2 pi u) computed in double, over their whole input range.
 *
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
 * 4 x 32-bit counter and a 2 x 32-bit key, ten rounds of two 32x32->64 multiplies, the key bumped by the Weyl
 * constants between rounds. Output checked against Random123's published known-answer vectors. */
#ifndef SF_PHILOX_CORE_H
#define SF_PHILOX_CORE_H
#include <stdint.h>

#if defined(__CUDACC__)
#define PHX_FN static __device__ __forceinline__
#define PHX_ADD(a, b) __fadd_rn((a), (b))
#define PHX_SUB(a, b) __fsub_rn((a), (b))
#define PHX_MUL(a, b) __fmul_rn((a), (b))
#define PHX_DIV(a, b) __fdiv_rn((a), (b))
#define PHX_FMA(a, b, c) __fmaf_rn((a), (b), (c))
#define PHX_SQRT(a) __fsqrt_rn(a)
#define PHX_DADD(a, b) __dadd_rn((a), (b))
#define PHX_DSUB(a, b) __dsub_rn((a), (b))
#define PHX_DMUL(a, b) __dmul_rn((a), (b))
#define PHX_AS_FLOAT(u) __uint_as_float(u)
#define PHX_AS_UINT(f) __float_as_uint(f)
#define PHX_MULHI(a, b) __umulhi((a), (b))
#else
#include <math.h>
#include <string.h>
#define PHX_FN static inline
#define PHX_ADD(a, b) ((a) + (b))
#define PHX_SUB(a, b) ((a) - (b))
#define PHX_MUL(a, b) ((a) * (b))
#define PHX_DIV(a, b) ((a) / (b))
#define PHX_FMA(a, b, c) fmaf((a), (b), (c))
#define PHX_SQRT(a) sqrtf(a)
#define PHX_DADD(a, b) ((a) + (b))
#define PHX_DSUB(a, b) ((a) - (b))
#define PHX_DMUL(a, b) ((a) * (b))
#define PHX_MULHI(a, b) ((uint32_t)(((uint64_t)(a) * (uint64_t)(b)) >> 32))
PHX_FN float phx_as_float_(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
PHX_FN uint32_t phx_as_uint_(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
#define PHX_AS_FLOAT(u) phx_as_float_(u)
#define PHX_AS_UINT(f) phx_as_uint_(f)
#endif

#define PHX_M0 0xD2511F53u
#define PHX_M1 0xCD9E8D57u
#define PHX_W0 0x9E3779B9u   /* golden ratio */
#define PHX_W1 0xBB67AE85u   /* sqrt(3) - 1 */

typedef struct {
    uint32_t v[4];
} phx_u4;

/* Philox4x32 with `rounds` rounds (10 is the generator; 7 only for the known-answer test of the schedule). */
PHX_FN phx_u4 phx_philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1, int rounds)
{
    for (int r = 0; r < rounds; r++) {
        if (r > 0) {
            k0 += PHX_W0;
            k1 += PHX_W1;
        }
        const uint32_t hi0 = PHX_MULHI(PHX_M0, c0), lo0 = PHX_M0 * c0;
        const uint32_t hi1 = PHX_MULHI(PHX_M1, c2), lo1 = PHX_M1 * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    phx_u4 o = {{c0, c1, c2, c3}};
    return o;
}

/* The block holding element e of a stream: counter = (e / 4 as 64 bits, stream as 64 bits), key = seed. */
PHX_FN phx_u4 phx_block(uint64_t seed, uint64_t stream, uint64_t block)
{
    return phx_philox((uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream, (uint32_t)(stream >> 32),
                      (uint32_t)seed, (uint32_t)(seed >> 32), 10);
}

/* [0, 1): the top 24 bits times 2^-24 (every value exact in float) */
PHX_FN float phx_u01(uint32_t x) { return (float)(x >> 8) * 0x1p-24f; }
/* (0, 1]: for the logarithm of Box-Muller */
PHX_FN float phx_u01_pos(uint32_t x) { return (float)((x >> 8) + 1u) * 0x1p-24f; }

/* ln(u) for u in (0, 1] normal (u >= 2^-24 here). u = m 2^e with m in [sqrt(1/2), sqrt(2)); with f = m - 1
 * (exact) and s = f / (2 + f), ln m = 2 atanh(s) = f - f^2/2 + s (f^2/2 + R(s^2)) (fdlibm's arrangement, which
 * keeps the leading terms exact); e ln 2 is added in two pieces (ln2_hi has 16 bits, so e ln2_hi is exact). */
PHX_FN float phx_logf(float u)
{
    const uint32_t b = PHX_AS_UINT(u);
    int e = (int)(b >> 23) - 127;
    float m = PHX_AS_FLOAT((b & 0x007FFFFFu) | 0x3F800000u);   /* [1, 2) */
    if (m > 1.41421356f) {
        m = PHX_MUL(m, 0.5f);
        e += 1;
    }
    const float f = PHX_SUB(m, 1.0f);
    const float s = PHX_DIV(f, PHX_ADD(2.0f, f));
    const float z = PHX_MUL(s, s);
    /* R(z) = 2 (z/3 + z^2/5 + z^3/7 + z^4/9), |s| < 0.1716: truncation < 1e-9 relative */
    float R = PHX_FMA(z, 0.22222222f, 0.28571429f);
    R = PHX_FMA(z, R, 0.4f);
    R = PHX_FMA(z, R, 0.66666667f);
    R = PHX_MUL(z, R);
    const float hfsq = PHX_MUL(PHX_MUL(0.5f, f), f);
    const float lnm = PHX_SUB(f, PHX_SUB(hfsq, PHX_MUL(s, PHX_ADD(hfsq, R))));
    const float fe = (float)e;
    return PHX_ADD(PHX_MUL(fe, 0.693145752f), PHX_FMA(fe, 1.42860677e-06f, lnm));
}

/* sin and cos of 2 pi u for u in [0, 1): u = q/4 + r with q = round(4u) and |r| <= 1/8 (exact: both on the
 * 2^-24 grid), then Taylor polynomials of sin / cos (2 pi r) (|2 pi r| <= pi/4: the first omitted terms are
 * < 2e-9 relative) and the quadrant rotation. */
PHX_FN void phx_sincos2pi(float u, float *sn, float *cs)
{
    const int q = (int)PHX_ADD(PHX_MUL(u, 4.0f), 0.5f);   /* 0..4 */
    const float r = PHX_SUB(u, PHX_MUL((float)q, 0.25f));
    const float x = PHX_MUL(r, 6.28318531f);
    const float x2 = PHX_MUL(x, x);
    float ps = PHX_FMA(x2, 2.75573192e-06f, -1.98412698e-04f);   /* x^9/9!, x^7/7! */
    ps = PHX_FMA(x2, ps, 8.33333333e-03f);
    ps = PHX_FMA(x2, ps, -1.66666667e-01f);
    const float s = PHX_FMA(PHX_MUL(x, x2), ps, x);
    float pc = PHX_FMA(x2, -2.75573192e-07f, 2.48015873e-05f);   /* x^10/10!, x^8/8! */
    pc = PHX_FMA(x2, pc, -1.38888889e-03f);
    pc = PHX_FMA(x2, pc, 4.16666667e-02f);
    pc = PHX_FMA(x2, pc, -0.5f);
    const float c = PHX_FMA(x2, pc, 1.0f);
    switch (q & 3) {
    case 0: *sn = s; *cs = c; break;
    case 1: *sn = c; *cs = -s; break;
    case 2: *sn = -s; *cs = -c; break;
    default: *sn = -c; *cs = s; break;
    }
}

/* Box-Muller on one pair of words: N(0,1) pair (r cos, r sin), r = sqrt(-2 ln u1), u1 in (0, 1], u2 in [0, 1).
 * |z| <= sqrt(2 * 24 ln 2) = 5.77 (the 24-bit u1); the tails beyond are lost, as in curand's Box-Muller. */
PHX_FN void phx_box_muller(uint32_t a, uint32_t b, float *z0, float *z1)
{
    const float r = PHX_SQRT(PHX_MUL(-2.0f, phx_logf(phx_u01_pos(a))));
    float s, c;
    phx_sincos2pi(phx_u01(b), &s, &c);
    *z0 = PHX_MUL(r, c);
    *z1 = PHX_MUL(r, s);
}

/* Element e of the uniform stream and of the Gaussian stream. Lanes (0,1) and (2,3) of a block are the two
 * Box-Muller pairs: Gaussian element 4k+j uses block k; j = 0,1 -> cos/sin of pair (v0, v1), 2,3 of (v2, v3). */
PHX_FN float phx_uniform_at(uint64_t seed, uint64_t stream, uint64_t e)
{
    const phx_u4 o = phx_block(seed, stream, e >> 2);
    return phx_u01(o.v[e & 3]);
}

PHX_FN float phx_gaussian_at(uint64_t seed, uint64_t stream, uint64_t e)
{
    const phx_u4 o = phx_block(seed, stream, e >> 2);
    const int p = (int)(e & 2);
    float z0, z1;
    phx_box_muller(o.v[p], o.v[p + 1], &z0, &z1);
    return (e & 1) ? z1 : z0;
}

/* DSM time: t = t_lo + (t_hi - t_lo) u in double (as dsm_perturb), rounded to float. */
PHX_FN float phx_time(double t_lo, double t_hi, float u)
{
    return (float)PHX_DADD(t_lo, PHX_DMUL(PHX_DSUB(t_hi, t_lo), (double)u));
}

#endif
