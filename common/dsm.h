/* dsm: denoising score matching (paper eq. 5; REFERENCE.md "Denoising score-matching loss").
 * With x_t = alpha(t) x_0 + std(t) z, the conditional score is -z / std(t); weighting gamma(t) = std(t)^2 gives
 * the paper code's loss  L = mean_i sum_d (s(t_i, x_t,i) std(t_i) + z_i)^2 .
 * The ScoreFusion calibration loss (eq. 10) is the same loss with s = sum_j lambda_j s_j and t in
 * [eps T~, T~]; see calib.h for its quadratic form in lambda. */
#ifndef SF_DSM_H
#define SF_DSM_H
#include "rng.h"
#include "sde.h"
#include <stddef.h>
#include <stdint.h>

/* Draw t_i ~ U[t_lo, t_hi], z_i ~ N(0, I) and form x_t. Arrays: x0, z, xt [n*dim]; t, std [n].
 * The paper's training range is [1e-5, 1]; its 1-D calibration range is [1e-7, 1e-4].
 * The draws are Philox (philox.h): one seed from r (rng_u64), t_i from (PHILOX_DSM_TIME, 0), z_i from
 * (PHILOX_DSM_NOISE, 0); std_i = std(t_i) of the float time. */
void dsm_perturb(const sde *s, rng *r, size_t n, size_t dim, const float *x0, double t_lo, double t_hi, float *t,
                 float *std, float *z, float *xt);
/* The same for samples [first, first + n) of a batch drawn under Philox seed `seed` (a chunk of a batch draws
 * its slice of the batch's streams). x0, t, std, z, xt point at the chunk. */
void dsm_perturb_at(const sde *s, uint64_t seed, size_t first, size_t n, size_t dim, const float *x0, double t_lo,
                    double t_hi, float *t, float *std, float *z, float *xt);

/* Loss value (accumulated in double); if dscore != NULL writes dL/dscore [n*dim]. */
double dsm_loss(size_t n, size_t dim, const float *score, const float *std, const float *z, float *dscore);

#endif
