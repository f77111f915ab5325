/* nn/attention: tiled online-softmax attention on the CPU, and its naive reference (see attention.h).
 * Inner loops: scores S[QB, KB] = Q[QB, dh] Kt[dh, KB] with Kt the key block transposed once per block (so the
 * key index is the contiguous, vectorised one), and O[QB, dh] += P[QB, KB] V[KB, dh] vectorised over dh. Rows are
 * taken four at a time so each loaded key / value vector feeds four FMAs. */
#include "attention.h"
#include "act.h"
#include "gemm_amx.h"
#include "log.h"
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>

/* per thread: Kt[dh * KB] + S[QB * KB] + O[QB * dh] + m[QB] + l[QB], rounded up to 16 floats (64 B) */
static size_t thread_floats(int dh)
{
    size_t n = (size_t)dh * NN_ATTN_KB + (size_t)NN_ATTN_QB * NN_ATTN_KB + (size_t)NN_ATTN_QB * dh + 2 * NN_ATTN_QB;
    return (n + 15) / 16 * 16;
}

size_t nn_attention_ws_floats(int dh, int threads)
{
    return thread_floats(dh) * (size_t)(threads > 0 ? threads : 1) + 16;
}

/* One (b, h, query block): rows q[0..nq) of this head, keys / values k, v of this head (Tk rows). */
#define AVX512_TARGET __attribute__((target("avx512f")))

/* S[4][NN_ATTN_KB] = Q[4 rows, ldq][dh] Kt[dh][NN_ATTN_KB] over columns [0, nk64): 4 x 64 in 16 registers */
AVX512_TARGET static void scores4_avx512(float *S, const float *q, int ldq, const float *Kt, int nk64, int dh)
{
    for (int jc = 0; jc < nk64; jc += 64) {
        __m512 c[4][4];
        for (int r = 0; r < 4; r++)
            for (int v = 0; v < 4; v++) c[r][v] = _mm512_setzero_ps();
        for (int e = 0; e < dh; e++) {
            const float *kt = Kt + (size_t)e * NN_ATTN_KB + jc;
            const __m512 k0 = _mm512_loadu_ps(kt), k1 = _mm512_loadu_ps(kt + 16), k2 = _mm512_loadu_ps(kt + 32),
                         k3 = _mm512_loadu_ps(kt + 48);
            for (int r = 0; r < 4; r++) {
                const __m512 a = _mm512_set1_ps(q[(size_t)r * ldq + e]);
                c[r][0] = _mm512_fmadd_ps(a, k0, c[r][0]);
                c[r][1] = _mm512_fmadd_ps(a, k1, c[r][1]);
                c[r][2] = _mm512_fmadd_ps(a, k2, c[r][2]);
                c[r][3] = _mm512_fmadd_ps(a, k3, c[r][3]);
            }
        }
        for (int r = 0; r < 4; r++)
            for (int v = 0; v < 4; v++) _mm512_storeu_ps(S + (size_t)r * NN_ATTN_KB + jc + 16 * v, c[r][v]);
    }
}

/* O[4][64] += P[4 rows of NN_ATTN_KB][nk] V[nk rows, ldv][64]: the four output rows live in 16 registers */
AVX512_TARGET static void pv4_avx512(float *O, const float *P, const float *V, int ldv, int nk)
{
    __m512 c[4][4];
    for (int r = 0; r < 4; r++)
        for (int v = 0; v < 4; v++) c[r][v] = _mm512_loadu_ps(O + (size_t)r * 64 + 16 * v);
    for (int j = 0; j < nk; j++) {
        const float *vr = V + (size_t)j * ldv;
        const __m512 v0 = _mm512_loadu_ps(vr), v1 = _mm512_loadu_ps(vr + 16), v2 = _mm512_loadu_ps(vr + 32),
                     v3 = _mm512_loadu_ps(vr + 48);
        for (int r = 0; r < 4; r++) {
            const __m512 p = _mm512_set1_ps(P[(size_t)r * NN_ATTN_KB + j]);
            c[r][0] = _mm512_fmadd_ps(p, v0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(p, v1, c[r][1]);
            c[r][2] = _mm512_fmadd_ps(p, v2, c[r][2]);
            c[r][3] = _mm512_fmadd_ps(p, v3, c[r][3]);
        }
    }
    for (int r = 0; r < 4; r++)
        for (int v = 0; v < 4; v++) _mm512_storeu_ps(O + (size_t)r * 64 + 16 * v, c[r][v]);
}

/* The vector loops of the portable path are cloned for AVX-512 too (the build's baseline is x86-64-v3); the
 * register-tiled AVX-512 kernels above take the four-row blocks when the CPU has AVX-512 (avx512 != 0). */
__attribute__((target_clones("avx512f", "default")))
static void attn_block(float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                       int nq, int Tk, int dh, float scale, float *tw, int avx512)
{
    float *Kt = tw, *S = Kt + (size_t)dh * NN_ATTN_KB, *O = S + (size_t)NN_ATTN_QB * NN_ATTN_KB;
    float *m = O + (size_t)NN_ATTN_QB * dh, *l = m + NN_ATTN_QB;
    for (int i = 0; i < nq; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    memset(O, 0, (size_t)nq * dh * sizeof *O);
    for (int j0 = 0; j0 < Tk; j0 += NN_ATTN_KB) {
        const int nk = Tk - j0 < NN_ATTN_KB ? Tk - j0 : NN_ATTN_KB;
        /* Kt[e][j] = k[j0 + j][e], pre-scaled so S needs no extra pass */
        for (int j = 0; j < nk; j++) {
            const float *kr = k + (size_t)(j0 + j) * ldk;
            for (int e = 0; e < dh; e++) Kt[(size_t)e * NN_ATTN_KB + j] = kr[e] * scale;
        }
        const int nk64 = (nk + 63) / 64 * 64;   /* zero columns up to a multiple of 64 for the AVX-512 tiles */
        for (int e = 0; e < dh && nk64 > nk; e++)
            memset(Kt + (size_t)e * NN_ATTN_KB + nk, 0, (size_t)(nk64 - nk) * sizeof(float));
        /* S[i][j] = sum_e q[i][e] Kt[e][j], four rows at a time */
        int i = 0;
        if (avx512)
            for (; i + 4 <= nq; i += 4)
                scores4_avx512(S + (size_t)i * NN_ATTN_KB, q + (size_t)i * ldq, ldq, Kt, nk64, dh);
        for (; i + 4 <= nq; i += 4) {
            float *s0 = S + (size_t)i * NN_ATTN_KB, *s1 = s0 + NN_ATTN_KB, *s2 = s1 + NN_ATTN_KB, *s3 = s2 + NN_ATTN_KB;
            const float *q0 = q + (size_t)i * ldq, *q1 = q0 + ldq, *q2 = q1 + ldq, *q3 = q2 + ldq;
            for (int j = 0; j < nk; j++) s0[j] = s1[j] = s2[j] = s3[j] = 0.0f;
            for (int e = 0; e < dh; e++) {
                const float *kt = Kt + (size_t)e * NN_ATTN_KB;
                const float a0 = q0[e], a1 = q1[e], a2 = q2[e], a3 = q3[e];
#pragma omp simd
                for (int j = 0; j < nk; j++) {
                    s0[j] = fmaf(a0, kt[j], s0[j]);
                    s1[j] = fmaf(a1, kt[j], s1[j]);
                    s2[j] = fmaf(a2, kt[j], s2[j]);
                    s3[j] = fmaf(a3, kt[j], s3[j]);
                }
            }
        }
        for (; i < nq; i++) {
            float *s0 = S + (size_t)i * NN_ATTN_KB;
            const float *q0 = q + (size_t)i * ldq;
            for (int j = 0; j < nk; j++) s0[j] = 0.0f;
            for (int e = 0; e < dh; e++) {
                const float *kt = Kt + (size_t)e * NN_ATTN_KB;
                const float a0 = q0[e];
#pragma omp simd
                for (int j = 0; j < nk; j++) s0[j] = fmaf(a0, kt[j], s0[j]);
            }
        }
        /* online softmax: new running max, rescale the running sum and output, P = e^{S - m} */
        for (i = 0; i < nq; i++) {
            float *s = S + (size_t)i * NN_ATTN_KB;
            float mx = m[i];
#pragma omp simd reduction(max : mx)
            for (int j = 0; j < nk; j++) mx = s[j] > mx ? s[j] : mx;
#pragma omp simd
            for (int j = 0; j < nk; j++) s[j] -= mx;
            nn_exp_forward(s, s, (size_t)nk);
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int j = 0; j < nk; j++) sum += s[j];
            const float corr = m[i] == -INFINITY ? 0.0f : nn_act_expf(m[i] - mx);
            l[i] = l[i] * corr + sum;
            m[i] = mx;
            if (corr != 1.0f) {
                float *o = O + (size_t)i * dh;
#pragma omp simd
                for (int e = 0; e < dh; e++) o[e] *= corr;
            }
        }
        /* O[i][e] += sum_j P[i][j] v[j][e], four rows at a time */
        i = 0;
        if (avx512 && dh == 64)
            for (; i + 4 <= nq; i += 4)
                pv4_avx512(O + (size_t)i * dh, S + (size_t)i * NN_ATTN_KB, v + (size_t)j0 * ldv, ldv, nk);
        for (; i + 4 <= nq; i += 4) {
            float *o0 = O + (size_t)i * dh, *o1 = o0 + dh, *o2 = o1 + dh, *o3 = o2 + dh;
            const float *p0 = S + (size_t)i * NN_ATTN_KB, *p1 = p0 + NN_ATTN_KB, *p2 = p1 + NN_ATTN_KB,
                        *p3 = p2 + NN_ATTN_KB;
            for (int j = 0; j < nk; j++) {
                const float *vr = v + (size_t)(j0 + j) * ldv;
                const float b0 = p0[j], b1 = p1[j], b2 = p2[j], b3 = p3[j];
#pragma omp simd
                for (int e = 0; e < dh; e++) {
                    o0[e] = fmaf(b0, vr[e], o0[e]);
                    o1[e] = fmaf(b1, vr[e], o1[e]);
                    o2[e] = fmaf(b2, vr[e], o2[e]);
                    o3[e] = fmaf(b3, vr[e], o3[e]);
                }
            }
        }
        for (; i < nq; i++) {
            float *o0 = O + (size_t)i * dh;
            const float *p0 = S + (size_t)i * NN_ATTN_KB;
            for (int j = 0; j < nk; j++) {
                const float *vr = v + (size_t)(j0 + j) * ldv;
                const float b0 = p0[j];
#pragma omp simd
                for (int e = 0; e < dh; e++) o0[e] = fmaf(b0, vr[e], o0[e]);
            }
        }
    }
    for (int i = 0; i < nq; i++) {
        const float inv = 1.0f / l[i];
        float *dst = out + (size_t)i * ldo;
        const float *o = O + (size_t)i * dh;
        for (int e = 0; e < dh; e++) dst[e] = o[e] * inv;
    }
}

void nn_attention_forward(float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v,
                          int ldv, int B, int heads, int Tq, int Tk, int dh, float scale, float *ws, size_t ws_n)
{
    if (B <= 0 || heads <= 0 || Tq <= 0) return;
    if (Tk <= 0 || dh <= 0) LOG_FATAL("nn_attention_forward: Tk %d, dh %d", Tk, dh);
    const int nth = omp_get_max_threads();
    const size_t tf = thread_floats(dh);
    if (ws_n < nn_attention_ws_floats(dh, nth))
        LOG_FATAL("nn_attention_forward: workspace %zu floats < %zu", ws_n, nn_attention_ws_floats(dh, nth));
    /* 64-byte align the per-thread areas */
    float *base = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    const int nqb = (Tq + NN_ATTN_QB - 1) / NN_ATTN_QB;
    const char *kern = getenv("SF_GEMM_KERNEL");   /* "generic" keeps the portable path (as for the GEMMs) */
    const int avx512 = __builtin_cpu_supports("avx512f") && !(kern && !strcmp(kern, "generic"));
    const long ntask = (long)B * heads * nqb;
#pragma omp parallel for schedule(dynamic, 1) if (ntask > 1)
    for (long task = 0; task < ntask; task++) {
        const int qb = (int)(task % nqb), h = (int)(task / nqb % heads), b = (int)(task / nqb / heads);
        const int i0 = qb * NN_ATTN_QB, nq = Tq - i0 < NN_ATTN_QB ? Tq - i0 : NN_ATTN_QB;
        float *tw = base + tf * (size_t)omp_get_thread_num();
        attn_block(out + ((size_t)b * Tq + i0) * ldo + (size_t)h * dh, ldo,
                   q + ((size_t)b * Tq + i0) * ldq + (size_t)h * dh, ldq, k + (size_t)b * Tk * ldk + (size_t)h * dh,
                   ldk, v + (size_t)b * Tk * ldv + (size_t)h * dh, ldv, nq, Tk, dh, scale, tw, avx512);
    }
}

int nn_attention_bf16_uses_amx(int dh) { return dh > 0 && dh <= 512 && nn_amx_available(); }

size_t nn_attention_bf16_ws_floats(int B, int heads, int Tk, int dh, int threads)
{
    const size_t f32 = nn_attention_ws_floats(dh, threads);
    if (!nn_attention_bf16_uses_amx(dh)) return f32;
    const size_t amx = nn_attention_amx_ws_floats_(B, heads, Tk, dh, threads);
    return amx > f32 ? amx : f32;
}

void nn_attention_bf16_forward(float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v,
                               int ldv, int B, int heads, int Tq, int Tk, int dh, float scale, float *ws, size_t ws_n)
{
    if (!nn_attention_bf16_uses_amx(dh)) {
        nn_attention_forward(out, ldo, q, ldq, k, ldk, v, ldv, B, heads, Tq, Tk, dh, scale, ws, ws_n);
        return;
    }
    if (B <= 0 || heads <= 0 || Tq <= 0) return;
    if (Tk <= 0) LOG_FATAL("nn_attention_bf16_forward: Tk %d", Tk);
    const size_t need = nn_attention_amx_ws_floats_(B, heads, Tk, dh, omp_get_max_threads());
    if (ws_n < need) LOG_FATAL("nn_attention_bf16_forward: workspace %zu floats < %zu", ws_n, need);
    nn_attention_amx_(out, ldo, q, ldq, k, ldk, v, ldv, B, heads, Tq, Tk, dh, scale, ws);
}

void nn_attention_ref(float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                      int B, int heads, int Tq, int Tk, int dh, float scale)
{
    double s[Tk > 0 ? Tk : 1];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < Tq; i++) {
                const float *qi = q + ((size_t)b * Tq + i) * ldq + (size_t)h * dh;
                double mx = -DBL_MAX, sum = 0.0;
                for (int j = 0; j < Tk; j++) {
                    const float *kj = k + ((size_t)b * Tk + j) * ldk + (size_t)h * dh;
                    double d = 0.0;
                    for (int e = 0; e < dh; e++) d += (double)qi[e] * kj[e];
                    s[j] = d * scale;
                    if (s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < Tk; j++) sum += (s[j] = exp(s[j] - mx));
                for (int e = 0; e < dh; e++) {
                    double o = 0.0;
                    for (int j = 0; j < Tk; j++) o += s[j] * v[((size_t)b * Tk + j) * ldv + (size_t)h * dh + e];
                    out[((size_t)b * Tq + i) * ldo + (size_t)h * dh + e] = (float)(o / sum);
                }
            }
}
