/* sampler: Euler-Maruyama for the reverse-time SDE (paper eq. 3/8, App. B.2; REFERENCE.md "Sampler").
 * The paper's code: times = linspace(T, eps, steps), dt = times[0] - times[1]; at each time t
 *   mean = x + (g(t)^2 s(t, x) - f(t, x)) dt,   x = mean + sqrt(dt) g(t) z,
 * and the final step returns the mean (no noise). Noise is Philox (philox.h): one seed per call drawn from r
 * (rng_u64), the prior draw from (PHILOX_SAMPLER_INIT, 0), step k's noise from (PHILOX_SAMPLER_NOISE, k), so a
 * run is reproducible whatever the thread count and a GPU sampler can draw the same numbers. */
#ifndef SF_SAMPLER_H
#define SF_SAMPLER_H
#include "rng.h"
#include "score.h"
#include "sde.h"
#include <stddef.h>

typedef struct {
    int steps;              /* paper: 1000 */
    double eps;             /* last time, paper: 1e-3 */
    int final_mean;         /* 1: return the noise-free mean at the last step (paper) */
    const char *progress;   /* progress-bar label, or NULL */
} sampler_opts;

sampler_opts sampler_opts_paper(void);

/* x[n*dim]: output samples. Starts from the prior N(0, sde_prior_std^2 I). */
void sampler_em(const sde *s, const score_model *m, size_t n, float *x, const sampler_opts *o, rng *r);

/* Same, from a given initial state x (in/out), e.g. to share the prior draw between two samplers. */
void sampler_em_from(const sde *s, const score_model *m, size_t n, float *x, const sampler_opts *o, rng *r);

#endif
