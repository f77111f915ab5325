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

/* The naive reference (full scores per row, double accumulation): tests only. */
void nn_attention_ref(float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                      int B, int heads, int Tq, int Tk, int dh, float scale);

#endif
