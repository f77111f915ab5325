/* w1: 1-D Wasserstein-1, the metric of the paper's App. I experiment (Table 6).
 *   w1_samples: exactly scipy.stats.wasserstein_distance: integral of |F_u - F_v| dx with the (optionally
 *       weighted) empirical CDFs (right-continuous), summed over the gaps of the merged sorted values.
 *   w1_exact_cdf: integral over [lo, hi] of |F_n - F| for an empirical CDF F_n of n samples against an exact
 *       CDF F (no reference-sample noise). On each gap between consecutive sorted samples F_n is a constant c;
 *       the crossing F(x*) = c (at most one, F nondecreasing) is located by bisection to ~1e-15 relative, and
 *       |c - F| is integrated on either side by GSL QAG (Gauss-Kronrod 21, epsabs 1e-15 per piece, epsrel 1e-12);
 *       the two tails [lo, x_(1)] (integrand F) and [x_(n), hi] (integrand 1 - F) likewise. Accuracy: the sum of
 *       QAG's error estimates is returned in *abserr (typically 1e-13 for n = 10^4); the truncation to [lo, hi]
 *       adds E(lo - X)+ + E(X - hi)+ under F, which the caller makes negligible (e.g. 12 sd beyond every
 *       mixture component). lo/hi are widened to include every sample. */
#ifndef SF_W1_H
#define SF_W1_H
#include <stddef.h>

/* u [nu] with weights uw [nu] (NULL: equal weights), v [nv] with vw [nv]. Inputs are not modified (sorted copies).
 * Returns NaN for an empty sample or weights that are negative or sum to 0 (scipy raises there). */
double w1_samples(const double *u, size_t nu, const double *uw, const double *v, size_t nv, const double *vw);
/* The same for inputs already sorted ascending (no copies). */
double w1_samples_sorted(const double *u, size_t nu, const double *uw, const double *v, size_t nv, const double *vw);

typedef double (*w1_cdf_fn)(void *ctx, double x);
/* Returns the W1 estimate (NaN for n = 0). Inputs are not modified. */
double w1_exact_cdf(const double *u, size_t n, w1_cdf_fn cdf, void *ctx, double lo, double hi);
/* The same with the outcome: *abserr (may be NULL) the quadrature error estimate; *status (may be NULL) the first
 * non-success GSL status of the quadratures (GSL_SUCCESS otherwise; GSL_EINVAL for n = 0). */
double w1_exact_cdf_err(const double *u, size_t n, w1_cdf_fn cdf, void *ctx, double lo, double hi, double *abserr,
                        int *status);

#endif
