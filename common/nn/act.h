/* nn/act: elementwise activations with explicit forward/backward (DESIGN.md §4).
 * SiLU / swish  y = x sigmoid(x)  (the paper's ScoreNet `act`), and ReLU.
 * Backward takes the forward INPUT x (the pre-activation) and accumulates: din[i] += dout[i] y'(x[i]).
 * SiLU uses nn_act_expf, a vectorisable exp (Cody-Waite reduction + degree-7 polynomial, max relative error
 * ~2 ulp, checked against expf in tests/test_nn.c): libm's expf does not vectorise without fast-math and would
 * otherwise dominate the cost of a 32-wide network. */
#ifndef SF_NN_ACT_H
#define SF_NN_ACT_H
#include <stddef.h>

/* exp(x) for x in float range; saturates to 0 below -87.3 and to FLT_MAX-ish above 88.7 */
float nn_act_expf(float x);

void nn_silu_forward(float *out, const float *x, size_t n);                    /* out[n] = x sigmoid(x), x[n] */
void nn_silu_backward(float *din, const float *dout, const float *x, size_t n); /* din[n] += dout[n] silu'(x[n]) */
/* out[n] = x < 0 ? 0 : x (a NaN stays NaN and -0 stays -0, as torch.relu); out may equal x */
void nn_relu_forward(float *out, const float *x, size_t n);
void nn_relu_backward(float *din, const float *dout, const float *x, size_t n); /* din[n] += dout[n] [x > 0] */
/* g[n] = h > 0 ? g : 0 in place, from the ReLU OUTPUT h (h > 0 iff the input was): the backward without a second
 * buffer, for nets that keep only the output */
void nn_relu_mask(float *g, const float *h, size_t n);

/* Inference-only helpers of the SDXL networks (vectorised; nn_act_expf accuracy):
 * out[n] = exp(x[n]) (out may equal x), and the exact (erf) GELU of torch's F.gelu(approximate="none"):
 * out[n] = 0.5 x (1 + erf(x / sqrt 2)) with erf from Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7). */
void nn_exp_forward(float *out, const float *x, size_t n);
void nn_gelu_forward(float *out, const float *x, size_t n);

#endif
