/* nn/attention: multi-head scaled dot-product attention for inference, tiled with an online softmax
 * (the "flash attention" recurrence, Dao et al. 2022, on the CPU), so the [Tq x Tk] score matrix of a head is
 * never materialised: each thread holds one block of NN_ATTN_QB query rows x NN_ATTN_KB keys at a time.
 * Used by the SDXL UNet's self- and cross-attention (issue 9 item 3).
 *
 *     out[b, i, h*dh + e] = sum_j softmax_j(scale * <q[b, i, h*dh + .], k[b, j, h*dh + .]>) v[b, j, h*dh + e]
 *
 * q, k, v, out are row-major token matrices with row strides ldq, ldk, ldv, ldo (floats): head h occupies columns
 * [h dh, (h+1) dh). This is the layout a linear projection writes ([B*T, heads*dh]), so no transposes are needed.
 * Per block of keys: m' = max(m, max_j s_j), l' = l e^{m - m'} + sum_j e^{s_j - m'}, o' = o e^{m - m'} + P V;
 * at the end o / l. Work is split over (batch, head, query block) with OpenMP; the result does not depend on the
 * thread count. Workspace: ws[ws_n] floats, ws_n >= nn_attention_ws_floats(dh, threads). */
#ifndef SF_NN_ATTENTION_H
#define SF_NN_ATTENTION_H
#include <stddef.h>

#define NN_ATTN_QB 128   /* query rows per block (the transposed key block is rebuilt once per query block) */
#define NN_ATTN_KB 128   /* keys per block */

/* Floats of workspace for up to `threads` OpenMP threads (pass omp_get_max_threads()). */
size_t nn_attention_ws_floats(int dh, int threads);

void nn_attention_forward(float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v,
                          int ldv, int B, int heads, int Tq, int Tk, int dh, float scale, float *ws, size_t ws_n);

/* bf16 attention (issue 9 speed goal): the same contract as nn_attention_forward, with q, k, v rounded to bf16
 * (round to nearest even) and the softmax weights P rounded to bf16 before P V; scores, the online softmax and all
 * sums are fp32. Runs the AMX tile kernel (nn/attention_amx.c) when the bf16 GEMM runs on AMX (nn_amx_available:
 * the CPU has AMX-BF16 and Linux grants the tile state; SF_GEMM_KERNEL=generic|avx512 turns it off) and dh <= 512;
 * otherwise it IS nn_attention_forward (fp32; then ws must be sized for it too: the ws function below takes the
 * larger). Any Tq, Tk, dh (padded to whole tiles inside). Error against the fp32 kernel: the input rounding,
 * ~2^-8 relative per operand (tests/test_attention.c states the bound it checks). Result independent of the
 * thread count. Workspace: ws[ws_n] floats, ws_n >= nn_attention_bf16_ws_floats(B, heads, Tk, dh, threads)
 * (the packed bf16 K and V of every head, B heads Tk dh floats, plus ~12 KiB per thread for dh 64). */
int nn_attention_bf16_uses_amx(int dh);
size_t nn_attention_bf16_ws_floats(int B, int heads, int Tk, int dh, int threads);
void nn_attention_bf16_forward(float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v,
                               int ldv, int B, int heads, int Tq, int Tk, int dh, float scale, float *ws, size_t ws_n);

/* internal (attention_amx.c, AVX-512 + AMX object): reached only through nn_attention_bf16_forward */
size_t nn_attention_amx_ws_floats_(int B, int heads, int Tk, int dh, int threads);
void nn_attention_amx_(float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                       int B, int heads, int Tq, int Tk, int dh, float scale, float *ws);

/* The naive reference (full scores per row, double accumulation): tests only. */
void nn_attention_ref(float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                      int B, int heads, int Tq, int Tk, int dh, float scale);

#endif
