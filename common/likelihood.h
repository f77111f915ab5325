/* likelihood: negative log-likelihood in bits/dim by the probability-flow ODE (paper §5.1, App. G, Table 1;
 * REFERENCE.md "Image experiment", NLL bullet).
 *
 * What is computed, as the authors' code does it (Song's score-SDE MNIST tutorial, ode_likelihood):
 *   - probability-flow ODE of the forward SDE dX = f(t) X dt + g(t) dW (common/sde.h):
 *       dx/dt     = f(t) x - 1/2 g(t)^2 s(t, x)                    (VE: f = 0, g = sigma^t)
 *       d delta/dt = div_x of that drift = f(t) dim - 1/2 g(t)^2 div_x s(t, x),
 *     integrated from t0 = 1e-5 to t1 = 1, so that log p_t0(x0) = log pi(x(t1)) + delta(t1) (instantaneous
 *     change of variables), pi = N(0, sde_prior_std^2 I) (VE: std(1) = 9.8452, the code's sigma_max prior);
 *   - div s by Skilling-Hutchinson: <e, J^T e> with J = ds/dx from one vector-Jacobian product; ONE probe
 *     vector per batch, drawn once and held fixed over the ODE (the tutorial's torch.randn_like(x)); Gaussian
 *     in the paper, Rademacher available (lower variance; exact for diagonal Jacobians);
 *   - the whole batch (n * dim positions + n log-densities) is ONE ODE system for scipy's solve_ivp RK45 with
 *     rtol = atol = 1e-5 (common/ode_rk45.h), so the step sizes and NFE are shared by the batch and the error
 *     norm is the RMS over every component of every image;
 *   - the state is float64, the model is evaluated in float32 (x and t cast to float, as the tutorial does);
 *   - bits/dim = -(log prior + delta) / (dim ln 2) + 8, after uniform dequantisation of the 8-bit pixels
 *     ((byte + U[0,1)) / 256, the tutorial's (x*255 + rand)/256) and the (0.1307, 0.3081) normalisation.
 * Choices that follow the code rather than the text:
 *   - the bits/dim omit the Jacobian of the normalisation (x - 0.1307) / 0.3081: lik_bpd_paper() reproduces
 *     that figure, lik_bpd_corrected() gives the true bits/dim of the 8-bit images (log2(1/0.3081) = 1.6985 lower);
 *   - the prior at t1 is N(0, std(1)^2) although p_1 = p_data * N(0, std(1)^2) is wider, so even an exact score
 *     gives log p_t0 up to log pi(x1) - log p_1(x1) (tests/test_likelihood.c carries that term exactly);
 *   - t0 = 1e-5: the result is log p_t0 of the data blurred by N(0, std(t0)^2), std(1e-5)^2 ~ 1e-5.
 * Differences from the tutorial that do not change the estimator: the score and the vjp come from one
 * forward-backward (the tutorial runs the network twice per evaluation), and <e, J^T e> is summed in double
 * (the tutorial sums in float32). */
#ifndef SF_LIKELIHOOD_H
#define SF_LIKELIHOOD_H
#include "rng.h"
#include "sde.h"
#include <stddef.h>
#include <stdint.h>

/* A score model that also gives vector-Jacobian products at one time t shared by the batch:
 * score[n*dim] = s(t, x_i), gx[n*dim] = J_i^T e_i with J_i = ds(t, x_i)/dx_i. */
typedef struct {
    size_t dim;
    void *ctx;
    void (*vjp)(void *ctx, size_t n, float t, const float *x, const float *e, float *score, float *gx);
    const char *name;
} lik_model;

/* The KL-barycenter score sum_i lambda_i s_i (paper Thm 2) of k lik_models of equal dimension; its vjp is
 * sum_i lambda_i J_i^T e. Holds pointers to the models (not copies); workspace grows to the largest batch. */
typedef struct lik_bary lik_bary;
lik_bary *lik_bary_alloc(size_t k, const lik_model *const *models, const double *lambda);
void lik_bary_set_lambda(lik_bary *b, const double *lambda);
lik_model lik_bary_model(lik_bary *b);
void lik_bary_free(lik_bary *b);

enum { LIK_PROBE_GAUSSIAN = 0, LIK_PROBE_RADEMACHER = 1 };

typedef struct {
    double t0, t1;      /* integration interval: 1e-5 -> 1 */
    double rtol, atol;  /* RK45 tolerances: 1e-5 both */
    int probe;          /* LIK_PROBE_GAUSSIAN (the paper) or LIK_PROBE_RADEMACHER */
    long max_nfe;       /* stop with LIK_MAX_NFE after this many model calls; <= 0: no limit (the paper) */
} lik_opts;

lik_opts lik_opts_paper(void);

typedef enum {
    LIK_OK = 0,
    LIK_MAX_NFE = 1,        /* max_nfe reached before t1 */
    LIK_NONFINITE = 2,      /* the model or the result produced NaN / inf */
    LIK_STEP_TOO_SMALL = 3, /* the RK45 step underflowed (scipy's failure) */
} lik_status;

typedef struct {
    long nfe;        /* model calls (vjp evaluations) = the ODE's nfev */
    long steps;      /* accepted RK45 steps */
    long rejected;   /* rejected RK45 attempts */
    double t_end;    /* where the integration stopped (t1 when ok) */
    int status;      /* lik_status */
} lik_stats;

const char *lik_status_name(int status);

/* log p_t0(x0_i) for a batch x0[n*dim] (model coordinates), into logp[n]. The probe is
 * philox_probe(e, n*dim, rademacher, rng_u64(r), 0) (philox.h: one seed from r, stream PHILOX_HUTCHINSON,
 * sample-major; the same bits on a GPU), so a caller can reproduce it. Returns 0 (LIK_OK) or the failing lik_status; st (may be NULL) gets the counts. On failure
 * logp is filled with NaN. */
int lik_logp_batch(const sde *s, const lik_model *m, size_t n, const float *x0, const lik_opts *o, rng *r,
                   double *logp, lik_stats *st);

/* Uniform dequantisation: x = ((byte + U[0,1)) / 256 - norm_mean) / norm_std, count values (paper: 0.1307,
 * 0.3081). Draws count uniforms from r in order. */
void lik_dequantise(size_t count, const uint8_t *bytes, double norm_mean, double norm_std, rng *r, float *x);

/* The code's figure: -logp / (dim ln 2) + 8, with logp the density of the normalised x (no Jacobian). */
double lik_bpd_paper(double logp, size_t dim);
/* True bits/dim of the 8-bit image: lik_bpd_paper - log2(1 / norm_std) (derivation in likelihood.c). */
double lik_bpd_corrected(double logp, size_t dim, double norm_std);

#endif
