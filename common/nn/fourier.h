/* nn/fourier: Gaussian Fourier time embedding (Tancik et al. 2020; Song's score-SDE tutorial, the paper's
 * ScoreNet `embed.0`): fixed frequencies W[F] ~ N(0, scale^2), drawn once at initialisation and never trained,
 *     emb(t) = [ sin(2 pi t W_0 .. W_{F-1}), cos(2 pi t W_0 .. W_{F-1}) ]   (2F features; sin block first).
 * No backward: W is fixed and the networks here do not differentiate w.r.t. t. */
#ifndef SF_NN_FOURIER_H
#define SF_NN_FOURIER_H
#include "rng.h"
#include <stddef.h>

/* W[F] = scale * N(0, 1) draws from r */
void nn_fourier_init(float *W, int F, double scale, rng *r);

/* out[B, 2F] = [sin(2 pi t_b W), cos(2 pi t_b W)] with t_b = t[b * t_stride] (t_stride 0 shares t[0]); W[F].
 * The phase 2 pi t W is formed in double, then sin/cos in double, rounded to float. */
void nn_fourier_forward(float *out, const float *t, size_t t_stride, const float *W, int B, int F);

#endif
