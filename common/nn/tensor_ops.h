/* nn/tensor_ops: the small glue operations of the image networks, each with explicit forward / backward
 * (DESIGN.md §4; NCHW float32, gradients ACCUMULATE, every gradient pointer may be NULL):
 *   - per-channel broadcast add: the ScoreNet's "+ Dense(embed)" (paper §5.1 / App. G, REFERENCE.md: added to the
 *     conv output BEFORE each GroupNorm), and a plain per-channel bias;
 *   - channel concatenation: the U-Net skips torch.cat([h, skip], dim=1) (decoder first, skip second);
 *   - log-softmax and the fused log-softmax + cross-entropy (mean over the batch) of the classifier that
 *     measures class proportions (paper §5.1, Table 2);
 *   - dropout (torch.nn.Dropout / Dropout2d semantics: train = Bernoulli(1 - p) mask scaled by 1/(1 - p),
 *     eval = identity), masks from a Philox stream (common/philox.h): unit u of a call uses element
 *     offset + u of (seed, stream), so the CPU and the GPU (nn_cuda.h) draw the same mask, any slice alone.
 * SiLU over NCHW tensors is nn_silu_forward / nn_silu_backward from act.h on B*C*H*W elements.
 * OpenMP where the loops are large; every output element is computed in a fixed order (thread-count free). */
#ifndef SF_NN_TENSOR_OPS_H
#define SF_NN_TENSOR_OPS_H
#include <stddef.h>
#include <stdint.h>

/* x[B, C, HW] += v[b * v_bstride + c] for every (b, c): v is [B, C] with v_bstride = C (a per-sample vector,
 * e.g. Dense(embed)), or [C] with v_bstride = 0 (a bias shared by the batch). In place. */
void nn_chan_add_forward(float *x, const float *v, int B, int C, int HW, int v_bstride);
/* dst[n, d] = src[n, d] / v[n] (per-sample factors, e.g. the score's 1/std(t)); dst may equal src */
void nn_rowdiv(float *dst, const float *v, const float *src, int n, int d);
void nn_scale(float *x, float a, size_t n);   /* x[n] *= a */
/* dst[n, d] = v[n] src[n, d] + beta dst (beta == 0: dst is not read; dst may be src): per-sample factors such as
 * the input scaling c_in(t) of the 1-D score network */
void nn_rowscale(float *dst, const float *v, const float *src, int n, int d, float beta);
/* dv[b * v_bstride + c] += sum_p dout[b, c, p]  (dout [B, C, HW]; with v_bstride = 0 summed over b too).
 * The gradient w.r.t. x is dout itself (identity), nothing to do. */
void nn_chan_add_backward(float *dv, const float *dout, int B, int C, int HW, int v_bstride);

/* out[B, C1 + C2, HW] = cat(a[B, C1, HW], b[B, C2, HW]) along channels (a first) */
void nn_concat_forward(float *out, const float *a, const float *b, int B, int C1, int C2, int HW);
/* da[B, C1, HW] += dout[:, :C1];  db[B, C2, HW] += dout[:, C1:]  (dout [B, C1 + C2, HW]; da / db may be NULL) */
void nn_concat_backward(float *da, float *db, const float *dout, int B, int C1, int C2, int HW);
/* the same split, OVERWRITING da [B, C1, HW] and db [B, C2, HW] (each may be NULL) */
void nn_concat_split(float *da, float *db, const float *dout, int B, int C1, int C2, int HW);

/* out[B, K] = log_softmax(in[B, K]) over the last dim (max-shifted, sums in double) */
void nn_log_softmax_forward(float *out, const float *in, int B, int K);
/* din[B, K] += dout - softmax * rowsum(dout), from dout[B, K] and the forward OUTPUT out[B, K] */
void nn_log_softmax_backward(float *din, const float *dout, const float *out, int B, int K);

/* Cross-entropy with integer labels, mean over the batch (torch.nn.functional.cross_entropy): returns
 * L = -(1/B) sum_b logp[b, label[b]] and saves logp[B, K] = log_softmax(logits[B, K]); labels[B] in [0, K). */
double nn_cross_entropy_forward(float *logp, const float *logits, const int *labels, int B, int K);
/* dlogits[B, K] += dloss (softmax - onehot(label)) / B, from the saved logp[B, K] and labels[B] */
void nn_cross_entropy_backward(float *dlogits, float dloss, const float *logp, const int *labels, int B, int K);

/* Dropout on in[n_units * inner] (one mask value per unit of `inner` consecutive elements: inner = 1 is
 * nn.Dropout, inner = H*W on NCHW is nn.Dropout2d). train != 0: mask[n_units] = (u >= p) / (1 - p) with
 * u = philox_uniform_at(seed, stream, offset + unit) (p >= 1: all zero), out = in mask. train == 0: out = in
 * (mask unused, may be NULL). out may equal in. */
void nn_dropout_forward(float *out, float *mask, const float *in, size_t n_units, size_t inner, float p, int train,
                        uint64_t seed, uint64_t stream, uint64_t offset);
/* din[n_units * inner] += dout mask (train) or dout (eval), from dout[n_units * inner] and mask[n_units] */
void nn_dropout_backward(float *din, const float *dout, const float *mask, size_t n_units, size_t inner, int train);

#endif
