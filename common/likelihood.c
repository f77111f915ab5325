/* likelihood: probability-flow ODE log-likelihood and bits/dim (see likelihood.h; paper §5.1, App. G, Table 1,
 * REFERENCE.md "Image experiment"). The integrator is common/ode_rk45 (scipy's RK45, as the authors' code). */
#include "likelihood.h"
#include "log.h"
#include "philox.h"
#include "mem.h"
#include "ode_rk45.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* elementwise loops over n * dim (392,000 for a batch of 500 images) are split over threads above this */
#define PAR_MIN 16384

/* ---------------------------------------------------------------------------------------------------------- */
/* the barycenter model */

struct lik_bary {
    size_t k, dim;
    const lik_model **models;
    double *lambda;
    float *ws, *wg;    /* one model's score and vjp for the current batch */
    size_t work_cap;
};

lik_bary *lik_bary_alloc(size_t k, const lik_model *const *models, const double *lambda)
{
    LOG_CHECK(k > 0, "lik_bary: barycenter of zero models");
    lik_bary *b = mem_calloc(1, sizeof *b);
    b->k = k;
    b->dim = models[0]->dim;
    b->models = mem_new(const lik_model *, k);
    b->lambda = mem_new(double, k);
    for (size_t i = 0; i < k; i++) {
        LOG_CHECK(models[i]->dim == b->dim, "lik_bary: models of different dimension");
        b->models[i] = models[i];
    }
    lik_bary_set_lambda(b, lambda);
    return b;
}

void lik_bary_set_lambda(lik_bary *b, const double *lambda) { memcpy(b->lambda, lambda, b->k * sizeof *lambda); }

/* score = sum_i lambda_i s_i and gx = sum_i lambda_i J_i^T e: the vjp of a linear combination is the same
 * linear combination of the vjps, so one probe serves every model. */
static void bary_vjp(void *ctx, size_t n, float t, const float *x, const float *e, float *score, float *gx)
{
    lik_bary *b = ctx;
    const size_t len = n * b->dim;
    if (len > b->work_cap) {   /* grows once to the largest batch, never in the steady state */
        b->ws = mem_realloc(b->ws, len * sizeof *b->ws);
        b->wg = mem_realloc(b->wg, len * sizeof *b->wg);
        b->work_cap = len;
    }
    memset(score, 0, len * sizeof *score);
    memset(gx, 0, len * sizeof *gx);
    for (size_t i = 0; i < b->k; i++) {
        if (b->lambda[i] == 0.0) continue;
        const lik_model *m = b->models[i];
        m->vjp(m->ctx, n, t, x, e, b->ws, b->wg);
        const float li = (float)b->lambda[i];
        const float *ws = b->ws, *wg = b->wg;
#pragma omp parallel for if (len >= PAR_MIN) schedule(static)
        for (size_t j = 0; j < len; j++) {
            score[j] += li * ws[j];
            gx[j] += li * wg[j];
        }
    }
}

lik_model lik_bary_model(lik_bary *b)
{
    return (lik_model){.dim = b->dim, .ctx = b, .vjp = bary_vjp, .name = "barycenter"};
}

void lik_bary_free(lik_bary *b)
{
    if (!b) return;
    free(b->models);
    free(b->lambda);
    free(b->ws);
    free(b->wg);
    free(b);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* the probability-flow ODE */

lik_opts lik_opts_paper(void)
{
    return (lik_opts){.t0 = 1e-5, .t1 = 1.0, .rtol = 1e-5, .atol = 1e-5, .probe = LIK_PROBE_GAUSSIAN, .max_nfe = 0};
}

const char *lik_status_name(int status)
{
    switch (status) {
    case LIK_OK: return "ok";
    case LIK_MAX_NFE: return "max_nfe reached";
    case LIK_NONFINITE: return "non-finite score, divergence or log-density";
    case LIK_STEP_TOO_SMALL: return "RK45 step size underflow";
    default: return "unknown status";
    }
}

/* Everything the right-hand side needs; all buffers are allocated before the integration starts. */
typedef struct {
    const sde *s;
    const lik_model *m;
    size_t n, dim;
    float *xf;       /* the state's positions cast to float32 for the model */
    float *e;        /* the probe, fixed over the ODE */
    float *score, *gx;
} pf_ctx;

/* y = [x (n*dim), delta (n)]; dy = [f x - 1/2 g^2 s(t, x),  f dim - 1/2 g^2 <e_i, J_i^T e_i>]. */
static void pf_rhs(void *ctx, double t, const double *y, double *dy)
{
    pf_ctx *c = ctx;
    const size_t n = c->n, dim = c->dim, nd = n * dim;
    float *xf = c->xf;
#pragma omp parallel for if (nd >= PAR_MIN) schedule(static)
    for (size_t i = 0; i < nd; i++) xf[i] = (float)y[i];
    c->m->vjp(c->m->ctx, n, (float)t, xf, c->e, c->score, c->gx);
    const double g = sde_g(c->s, t), hg2 = 0.5 * g * g, fc = sde_f_coef(c->s, t);
    const float *sc = c->score;
#pragma omp parallel for if (nd >= PAR_MIN) schedule(static)
    for (size_t i = 0; i < nd; i++) dy[i] = fc * y[i] - hg2 * (double)sc[i];
    /* one sample per iteration, summed serially: the divergence does not depend on the thread count */
    const float *e = c->e, *gx = c->gx;
#pragma omp parallel for if (nd >= PAR_MIN) schedule(static)
    for (size_t b = 0; b < n; b++) {
        double dot = 0.0;
        const float *eb = e + b * dim, *gb = gx + b * dim;
        for (size_t j = 0; j < dim; j++) dot += (double)eb[j] * (double)gb[j];
        dy[nd + b] = fc * (double)dim - hg2 * dot;
    }
}

/* The probe: Gaussian (the tutorial's torch.randn_like) or Rademacher, n*dim draws in sample-major order, from
 * Philox (PHILOX_HUTCHINSON; philox.h) under one seed drawn from r. */
static void draw_probe(rng *r, int probe, size_t count, float *e)
{
    LOG_CHECK(probe == LIK_PROBE_RADEMACHER || probe == LIK_PROBE_GAUSSIAN, "likelihood: unknown probe %d", probe);
    philox_probe(e, count, probe == LIK_PROBE_RADEMACHER, rng_u64(r), 0);
}

/* log N(z; 0, sd^2 I) for each of the n rows of z (the tutorial's prior_likelihood). */
static void prior_logp(size_t n, size_t dim, const double *z, double sd, double *out)
{
    const double c = -0.5 * (double)dim * log(2.0 * M_PI * sd * sd);
#pragma omp parallel for if (n * dim >= PAR_MIN) schedule(static)
    for (size_t b = 0; b < n; b++) {
        double ss = 0.0;
        const double *zb = z + b * dim;
        for (size_t j = 0; j < dim; j++) ss += zb[j] * zb[j];
        out[b] = c - ss / (2.0 * sd * sd);
    }
}

int lik_logp_batch(const sde *s, const lik_model *m, size_t n, const float *x0, const lik_opts *o, rng *r,
                   double *logp, lik_stats *st)
{
    LOG_CHECK(n > 0 && m->dim > 0, "likelihood: empty batch");
    LOG_CHECK(o->t1 != o->t0, "likelihood: empty time interval");
    const size_t dim = m->dim, nd = n * dim, len = nd + n;
    pf_ctx c = {.s = s, .m = m, .n = n, .dim = dim};
    c.xf = mem_new(float, nd);
    c.e = mem_new(float, nd);
    c.score = mem_new(float, nd);
    c.gx = mem_new(float, nd);
    double *y0 = mem_new(double, len);   /* calloc: delta starts at 0 */
    ode_rk45 *ode = ode_rk45_alloc(len);

    draw_probe(r, o->probe, nd, c.e);   /* once per batch, fixed over the whole ODE */
    for (size_t i = 0; i < nd; i++) y0[i] = (double)x0[i];

    int status = LIK_OK;
    int os = ode_rk45_init(ode, pf_rhs, &c, o->t0, y0, o->t1, o->rtol, o->atol);
    while (os == ODE_RK45_RUNNING) {
        if (o->max_nfe > 0 && ode_rk45_nfev(ode) >= o->max_nfe) {
            status = LIK_MAX_NFE;
            break;
        }
        os = ode_rk45_step(ode);
    }
    if (status == LIK_OK) {
        if (os == ODE_RK45_NONFINITE) status = LIK_NONFINITE;
        /* scipy rejects NaN trials until the step underflows; say which cause it was */
        else if (os == ODE_RK45_TOO_SMALL_STEP) status = ode_rk45_nnonfinite(ode) > 0 ? LIK_NONFINITE : LIK_STEP_TOO_SMALL;
    }

    if (status == LIK_OK) {
        const double *y = ode_rk45_y(ode);
        prior_logp(n, dim, y, sde_prior_std(s), logp);
        for (size_t b = 0; b < n; b++) {
            logp[b] += y[nd + b];
            if (!isfinite(logp[b])) status = LIK_NONFINITE;
        }
    }
    if (status != LIK_OK)
        for (size_t b = 0; b < n; b++) logp[b] = NAN;

    if (st) {
        st->nfe = ode_rk45_nfev(ode);
        st->steps = ode_rk45_nsteps(ode);
        st->rejected = ode_rk45_nrejected(ode);
        st->t_end = ode_rk45_t(ode);
        st->status = status;
    }
    ode_rk45_free(ode);
    free(y0);
    free(c.xf);
    free(c.e);
    free(c.score);
    free(c.gx);
    return status;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* dequantisation and bits/dim */

void lik_dequantise(size_t count, const uint8_t *bytes, double norm_mean, double norm_std, rng *r, float *x)
{
    for (size_t i = 0; i < count; i++) {
        double u = ((double)bytes[i] + rng_uniform(r)) / 256.0;   /* the tutorial's (x*255 + rand)/256 */
        x[i] = (float)((u - norm_mean) / norm_std);
    }
}

double lik_bpd_paper(double logp, size_t dim) { return -logp / ((double)dim * M_LN2) + 8.0; }

/* The model's density p_x is over the normalised x = (u - m) / s, u = (byte + U) / 256 in [0, 1)^D. Change of
 * variables: p_u(u) = p_x(x) |dx/du| = p_x(x) s^{-D}, so log p_u = log p_x - D ln s. With v = 256 u (pixel
 * units, unit bins) p_v = p_u 256^{-D}, and the bits/dim of the 8-bit image under uniform dequantisation is
 *   -log p_v / (D ln 2) = -log p_u / (D ln 2) + 8 = -log p_x / (D ln 2) + 8 + ln s / ln 2
 *                       = lik_bpd_paper - log2(1 / s).
 * The paper's figures are lik_bpd_paper (the code drops the -D ln s term): log2(1/0.3081) = 1.6985 too high. */
double lik_bpd_corrected(double logp, size_t dim, double norm_std)
{
    return lik_bpd_paper(logp, dim) + log2(norm_std);
}
