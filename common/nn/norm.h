/* nn/norm: group normalisation (and layer normalisation as its special case) with explicit forward / backward
 * (DESIGN.md §4). GroupNorm is the normaliser of the paper's image ScoreNet (paper §5.1, App. G; REFERENCE.md:
 * GroupNorm(4, 32) after conv1, GroupNorm(32, C) elsewhere, eps 1e-5, affine), as torch.nn.GroupNorm:
 *     for each sample b and group g of C/G consecutive channels (n = (C/G) HW elements):
 *     mean = (1/n) sum x,  var = (1/n) sum (x - mean)^2 (biased),  rstd = 1 / sqrt(var + eps)
 *     out[b, c, p] = (x[b, c, p] - mean) rstd gamma[c] + beta[c]
 * Statistics are summed in double; mean / rstd [B, G] are saved for the backward pass (the "cache").
 * gamma / beta may be NULL (no affine: gamma = 1, beta = 0).
 * Backward (xhat = (x - mean) rstd, dxhat = dout gamma, means over the group):
 *     din   += rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
 *     dgamma[c] += sum_{b, p} dout xhat,   dbeta[c] += sum_{b, p} dout
 * Every gradient ACCUMULATES; din, dgamma, dbeta may each be NULL.
 * LayerNorm over the last dimension D of in[N, D] (torch.nn.LayerNorm(D)) is GroupNorm with B = N, C = D,
 * HW = 1, G = 1 (per-element affine = per-"channel" affine); nn_layernorm_* are those wrappers.
 * OpenMP over (sample, group) for the normalisation and over channels for dgamma / dbeta: results do not depend
 * on the thread count. */
#ifndef SF_NN_NORM_H
#define SF_NN_NORM_H
#include <stddef.h>

/* out[B, C, HW] = GroupNorm_G(in[B, C, HW]) gamma[C] + beta[C]; saves mean[B, G], rstd[B, G]. C % G == 0.
 * out may equal in (in place). */
void nn_groupnorm_forward(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                          const float *beta, int B, int C, int HW, int G, float eps);
/* din[B, C, HW] += dL/din; dgamma[C] += ...; dbeta[C] += ...; from dout[B, C, HW], the forward input
 * in[B, C, HW], mean[B, G], rstd[B, G], gamma[C] (NULL = 1). */
void nn_groupnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                           const float *mean, const float *rstd, const float *gamma, int B, int C, int HW, int G);

/* GroupNorm followed by SiLU (the ScoreNet's "GN then swish" stages), one pass:
 *     y = GroupNorm_G(in) gamma + beta (saved: the SiLU input),  h = silu(y) = y / (1 + e^-y)
 * mean / rstd as nn_groupnorm_forward. Same values as nn_groupnorm_forward + nn_silu_forward up to the order of
 * the statistic sums (vector reductions). */
void nn_groupnorm_silu_forward(float *y, float *h, float *mean, float *rstd, const float *in, const float *gamma,
                               const float *beta, int B, int C, int HW, int G, float eps);
/* Its backward from dh = dL/dh: dy = dh silu'(y), then GroupNorm's backward with dout = dy, except that din is
 * OVERWRITTEN (din may be dh: each group is read before it is written). Sample b of dh starts at dh + b
 * dh_bstride (C HW when dense; larger: dh is the first channels of a concatenation's gradient); dgamma / dbeta ACCUMULATE (each may
 * be NULL; din NULL: only them). ws: (C/G) HW floats of scratch. Single-threaded (it runs inside the ScoreNet's
 * batch slices); the sums of dgamma / dbeta over b go in b order in double. */
void nn_groupnorm_silu_backward(float *din, float *dgamma, float *dbeta, const float *dh, size_t dh_bstride,
                                const float *y, const float *in, const float *mean, const float *rstd, const float *gamma, int B,
                                int C, int HW, int G, float *ws);

/* out[N, D] = LayerNorm(in[N, D]) gamma[D] + beta[D]; saves mean[N], rstd[N] */
void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                          const float *beta, int N, int D, float eps);
/* din[N, D] += ...; dgamma[D] += ...; dbeta[D] += ...; from dout[N, D], in[N, D], mean[N], rstd[N], gamma[D] */
void nn_layernorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                           const float *mean, const float *rstd, const float *gamma, int N, int D);

#endif
