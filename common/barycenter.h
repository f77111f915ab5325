/* barycenter: 1-D distribution-level KL barycenters (paper Thm 1, §3.1) of k densities given by log-density
 * callbacks,
 *     p_lambda(x) = prod_i p_i(x)^lambda_i / Z(lambda),   Z(lambda) = int prod_i p_i^lambda_i dx,
 * with everything the vanilla fusion of eq. 9 / eq. 20 needs: log Z by GSL adaptive quadrature, the tilted
 * means E_{p_lambda}[log p_i] (the second term of Remark 2's gradient), cross means E_nu[log p_i] and
 * KL(nu || p_lambda) against a target log-density, a CDF table for exact inverse-CDF sampling and exact-CDF W1,
 * and the Gaussian closed form (App. H.4, generalised to k Gaussians).
 *
 * Choosing the integration interval [lo, hi]. All integrals are taken over [lo, hi] only. By the weighted
 * AM-GM inequality prod_i p_i^lambda_i <= sum_i lambda_i p_i, so for every lambda in the simplex
 *     Z(lambda) <= 1   and   p_lambda-mass outside [lo, hi] <= max_i P_i(outside [lo, hi]) / Z(lambda).
 * Choose [lo, hi] so that every auxiliary has negligible mass outside (for Gaussian mixtures,
 * bary_mixture_interval with nsd = 12 leaves < 4e-33 per component), and the truncation error of log Z and of
 * the tilted means is then negligible as long as Z(lambda) is not astronomically small (Z is the Bhattacharyya-
 * type overlap of the auxiliaries; log Z is returned, so a tiny Z is visible to the caller). For KL and cross
 * means the target nu must also have negligible mass outside [lo, hi].
 *
 * Numerics. The integrand exp(sum_i lambda_i log p_i(x) - M) is stabilised by M, the maximum of the exponent on
 * a uniform grid of BARY_GRID points; [lo, hi] is cut into BARY_PANELS equal panels, panels whose grid values all
 * lie below M - 100 are skipped (relative contribution < e^-100), and each remaining panel is integrated by
 * GSL QAG (Gauss-Kronrod 61) with epsabs = 1e-13, epsrel = 1e-11. abserr is the sum of QAG's (pessimistic)
 * error estimates, propagated to the returned quantity. A bary_family holds one QAG workspace: it is not
 * thread-safe (use one family per thread). */
#ifndef SF_BARYCENTER_H
#define SF_BARYCENTER_H
#include "mixture.h"
#include <stddef.h>

#define BARY_GRID 2049
#define BARY_PANELS 64

typedef double (*bary_logpdf_fn)(void *ctx, double x);
typedef struct bary_family bary_family;

/* k members log p_i = logp[i](ctx[i], x); the arrays are copied (the contexts themselves are not, and must
 * outlive the family). lo < hi: the integration interval (see above). */
bary_family *bary_family_alloc(size_t k, const bary_logpdf_fn *logp, void *const *ctx, double lo, double hi);
void bary_family_free(bary_family *f);
size_t bary_family_k(const bary_family *f);
void bary_family_interval(const bary_family *f, double *lo, double *hi);
double bary_member_logpdf(const bary_family *f, size_t i, double x);   /* log p_i(x) */

/* log Z(lambda). Returns the GSL status of the quadratures (GSL_SUCCESS, or the first failure, e.g. GSL_EROUND,
 * with the best estimate still written); *abserr (may be NULL) bounds |error of log Z|. */
int bary_log_normaliser(bary_family *f, const double *lambda, double *logZ, double *abserr);

/* Elogp[i] = E_{p_lambda}[log p_i] for every i (Remark 2's second term), and log Z. *abserr (may be NULL):
 * the largest error estimate among the Elogp[i] (log Z's included). */
int bary_tilted_means(bary_family *f, const double *lambda, double *Elogp, double *logZ, double *abserr);

/* log p_lambda(x) = sum_i lambda_i log p_i(x) - logZ (terms with lambda_i = 0 are not evaluated). */
double bary_logpdf(const bary_family *f, const double *lambda, double logZ, double x);

/* hbar[i] = E_nu[log p_i] (the first term of Remark 2, exact version) and, if negent != NULL,
 * E_nu[log nu] = -entropy(nu), by quadrature of the target density over [lo, hi]. */
int bary_cross_means(bary_family *f, bary_logpdf_fn target_logp, void *target_ctx, double *hbar, double *negent,
                     double *abserr);

/* KL(nu || p_lambda) = int nu log nu - sum_i lambda_i int nu log p_i + log Z (eq. 9 / eq. 20), by quadrature
 * (one integral of nu (log nu - sum lambda_i log p_i), plus log Z). */
int bary_kl(bary_family *f, bary_logpdf_fn target_logp, void *target_ctx, const double *lambda, double *kl,
            double *abserr);

/* CDF of p_lambda on a uniform grid of n_grid >= 2 points over [lo, hi]: cell masses by 10-point
 * Gauss-Legendre (cells are small, the integrand smooth), cumulated and normalised so cdf[n-1] = 1.
 * dcdf[] holds node slopes (the normalised density, limited by Fritsch-Carlson) so that bary_cdf_eval is a
 * monotone C^1 cubic Hermite interpolant; its error is O(h^4 max|p'''|), h = (hi - lo)/(n_grid - 1).
 * logZ: M + log(total mass) from the same composite rule (status is GSL_SUCCESS; errors are fatal). */
typedef struct {
    size_t n;
    double *x, *cdf, *dcdf;
    double logZ;
    int status;
} bary_cdf_table;

bary_cdf_table *bary_cdf_tabulate(bary_family *f, const double *lambda, size_t n_grid);
double bary_cdf_eval(const bary_cdf_table *t, double x);      /* 0 below x[0], 1 above x[n-1] */
double bary_cdf_quantile(const bary_cdf_table *t, double u);  /* inverse of bary_cdf_eval (bisection+Newton) */
void bary_cdf_table_free(bary_cdf_table *t);

/* Gaussian closed form (App. H.4 for k Gaussians): p_i = N(mu_i, var_i) gives p_lambda = N(mu_out, var_out),
 * 1/var_out = sum_i lambda_i / var_i, mu_out = var_out sum_i lambda_i mu_i / var_i. */
void bary_gaussian(size_t k, const double *mu, const double *var, const double *lambda, double *mu_out,
                   double *var_out);
/* log Z(lambda) = log int prod_i N(x; mu_i, var_i)^lambda_i dx, in closed form. */
double bary_gaussian_log_normaliser(size_t k, const double *mu, const double *var, const double *lambda);

/* Adapter: p_lambda itself as a bary_logpdf_fn, e.g. as the target of bary_kl / bary_cross_means (a planted
 * answer) or for moments by quadrature. ctx is a `bary_density *`; f and lambda must outlive it. */
typedef struct {
    const bary_family *f;
    const double *lambda;
    double logZ;
} bary_density;
double bary_density_logpdf(void *ctx, double x);

/* Adapter: a mixture (mixture.h) as a family member. ctx is a `const mixture *` (or `mixture *`). */
double bary_mixture_logpdf(void *ctx, double x);
/* [lo, hi] = [min_j mu_j - nsd sd_j, max_j mu_j + nsd sd_j] over all components of the k mixtures. */
void bary_mixture_interval(size_t k, const mixture *const *m, double nsd, double *lo, double *hi);

#endif
