/* mixture: 1-D Gaussian mixtures -- the data of the paper's App. I experiment -- with everything exact:
 * density, CDF, quantile, sampling, affine standardisation, the law after the forward SDE, and its score.
 * Under a linear SDE a mixture stays a mixture: component j becomes N(alpha mu_j, alpha^2 sd_j^2 + std(t)^2),
 * so the exact score of the diffused data is analytic (used as an oracle auxiliary and in theory checks).
 * Spec strings: "w:mean:std,w:mean:std,...", e.g. "0.6:-6:0.8,0.4:6:0.8". */
#ifndef SF_MIXTURE_H
#define SF_MIXTURE_H
#include "rng.h"
#include "score.h"
#include "sde.h"
#include <stddef.h>

#define MIXTURE_MAX 16

typedef struct {
    int k;
    double w[MIXTURE_MAX], mu[MIXTURE_MAX], sd[MIXTURE_MAX];
} mixture;

/* Parse a spec; on error returns -1 and writes a one-line reason to err (weights must be positive and sum
 * to 1 within 1e-6, std > 0, at most MIXTURE_MAX components). */
int mixture_parse(const char *spec, mixture *out, char *err, size_t errlen);
void mixture_format(const mixture *m, char *buf, size_t len);   /* inverse of parse, %.17g */

double mixture_pdf(const mixture *m, double x);
double mixture_logpdf(const mixture *m, double x);      /* log-sum-exp: finite far in the tails */
double mixture_cdf(const mixture *m, double x);
double mixture_quantile(const mixture *m, double u);    /* bisection + Newton, |F(x)-u| < 1e-13 */
double mixture_score(const mixture *m, double x);       /* d/dx log p(x), stable in the tails */
double mixture_mean(const mixture *m);
double mixture_sd(const mixture *m);
void mixture_sample(const mixture *m, rng *r, double *x, size_t n);

/* Law of (X - shift) / scale for X ~ m (the paper code's standardisation). */
mixture mixture_affine(const mixture *m, double shift, double scale);
/* Law of X_t = alpha(t) X_0 + std(t) Z for X_0 ~ m. */
mixture mixture_diffuse(const mixture *m, const sde *s, double t);

/* Exact score of the diffused mixture as a score_model (dim 1). The oracle holds copies of m and s. */
typedef struct {
    mixture m;
    sde s;
} mixture_oracle;

score_model mixture_oracle_model(mixture_oracle *o, const char *name);

#endif
