/* barycenter: 1-D KL barycenters p_lambda ∝ prod_i p_i^lambda_i (paper Thm 1), log Z and tilted means by GSL
 * adaptive quadrature (eq. 9 / eq. 20, Remark 2), KL to a target, CDF tables, Gaussian closed form (App. H.4).
 * See barycenter.h for the numerics and the choice of the integration interval. */
#include "barycenter.h"
#include "log.h"
#include "mem.h"
#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define QAG_LIMIT 256
#define QAG_EPSABS 1e-13
#define QAG_EPSREL 1e-11
#define SKIP_BELOW 100.0   /* panels whose log-weight stays below max - 100 are skipped */

struct bary_family {
    size_t k;
    bary_logpdf_fn *logp;
    void **ctx;
    double lo, hi;
    gsl_integration_workspace *ws;
    double *grid_lw;          /* [BARY_GRID] log-weight on the grid (workspace) */
    unsigned char *skip;      /* [BARY_PANELS] */
};

bary_family *bary_family_alloc(size_t k, const bary_logpdf_fn *logp, void *const *ctx, double lo, double hi)
{
    LOG_CHECK(k >= 1, "bary_family_alloc: k = 0");
    LOG_CHECK(isfinite(lo) && isfinite(hi) && lo < hi, "bary_family_alloc: bad interval [%g, %g]", lo, hi);
    bary_family *f = mem_calloc(1, sizeof *f);
    f->k = k;
    f->logp = mem_new(bary_logpdf_fn, k);
    f->ctx = mem_new(void *, k);
    for (size_t i = 0; i < k; i++) {
        LOG_CHECK(logp[i] != NULL, "bary_family_alloc: member %zu has no log-density", i);
        f->logp[i] = logp[i];
        f->ctx[i] = ctx ? ctx[i] : NULL;
    }
    f->lo = lo;
    f->hi = hi;
    f->ws = gsl_integration_workspace_alloc(QAG_LIMIT);
    if (!f->ws) LOG_FATAL("gsl_integration_workspace_alloc failed");
    f->grid_lw = mem_new(double, BARY_GRID);
    f->skip = mem_new(unsigned char, BARY_PANELS);
    return f;
}

void bary_family_free(bary_family *f)
{
    if (!f) return;
    gsl_integration_workspace_free(f->ws);
    free(f->logp);
    free(f->ctx);
    free(f->grid_lw);
    free(f->skip);
    free(f);
}

size_t bary_family_k(const bary_family *f) { return f->k; }

void bary_family_interval(const bary_family *f, double *lo, double *hi)
{
    *lo = f->lo;
    *hi = f->hi;
}

double bary_member_logpdf(const bary_family *f, size_t i, double x) { return f->logp[i](f->ctx[i], x); }

/* sum_i lambda_i log p_i(x), skipping lambda_i = 0 (so 0 * -inf never happens) */
static double weighted_log(const bary_family *f, const double *lambda, double x)
{
    double u = 0.0;
    for (size_t i = 0; i < f->k; i++)
        if (lambda[i] != 0.0) u += lambda[i] * f->logp[i](f->ctx[i], x);
    return u;
}

static int lambda_ok(const bary_family *f, const double *lambda)
{
    for (size_t i = 0; i < f->k; i++)
        if (!(lambda[i] >= 0.0) || !isfinite(lambda[i])) return 0;
    return 1;
}

/* ---- integrands ---------------------------------------------------------------------------------------- */

enum { W_BARY = 0, W_TARGET = 1 };            /* which log-weight: sum lambda_i log p_i, or log nu */
enum { G_ONE = 0, G_LOGP = 1, G_LOGNU = 2, G_KL = 3 };   /* what multiplies the weight */

typedef struct {
    const bary_family *f;
    const double *lambda;
    bary_logpdf_fn tl;
    void *tctx;
    double M;
    int wkind, gkind;
    size_t idx;
} igr;

static double igr_eval(double x, void *p)
{
    const igr *c = p;
    double lw = c->wkind == W_BARY ? weighted_log(c->f, c->lambda, x) : c->tl(c->tctx, x);
    double w = exp(lw - c->M);
    if (w == 0.0 || !isfinite(lw)) return 0.0;
    switch (c->gkind) {
    case G_ONE: return w;
    case G_LOGP: return w * c->f->logp[c->idx](c->f->ctx[c->idx], x);
    case G_LOGNU: return w * lw;
    default: return w * (lw - weighted_log(c->f, c->lambda, x));
    }
}

/* Fill the grid with the log-weight, return its max, and mark the panels to skip. */
static double prepare(bary_family *f, igr *c)
{
    double M = -INFINITY;
    double h = (f->hi - f->lo) / (BARY_GRID - 1);
    for (size_t g = 0; g < BARY_GRID; g++) {
        double x = f->lo + h * (double)g;
        double lw = c->wkind == W_BARY ? weighted_log(f, c->lambda, x) : c->tl(c->tctx, x);
        if (isnan(lw)) lw = -INFINITY;
        f->grid_lw[g] = lw;
        if (lw > M) M = lw;
    }
    const size_t per = (BARY_GRID - 1) / BARY_PANELS;
    for (size_t p = 0; p < BARY_PANELS; p++) {
        size_t a = p * per, b = (p + 1) * per;
        a = a > 0 ? a - 1 : a;
        b = b + 1 < BARY_GRID ? b + 1 : b;
        double pm = -INFINITY;
        for (size_t g = a; g <= b; g++) pm = fmax(pm, f->grid_lw[g]);
        f->skip[p] = !(pm >= M - SKIP_BELOW);
    }
    c->M = isfinite(M) ? M : 0.0;
    return M;
}

/* Integrate igr over [lo, hi] panel by panel (skipped panels contribute 0). */
static int integrate(bary_family *f, igr *c, double *res, double *err)
{
    gsl_function F = {igr_eval, c};
    double h = (f->hi - f->lo) / BARY_PANELS, sum = 0.0, esum = 0.0;
    int status = GSL_SUCCESS;
    for (size_t p = 0; p < BARY_PANELS; p++) {
        if (f->skip[p]) continue;
        double a = f->lo + h * (double)p, b = p + 1 == BARY_PANELS ? f->hi : f->lo + h * (double)(p + 1);
        double r = 0.0, e = 0.0;
        int st = gsl_integration_qag(&F, a, b, QAG_EPSABS, QAG_EPSREL, QAG_LIMIT, GSL_INTEG_GAUSS61, f->ws, &r, &e);
        if (st && !status) status = st;
        sum += r;
        esum += e;
    }
    *res = sum;
    *err = esum;
    return status;
}

/* ---- public quadratures -------------------------------------------------------------------------------- */

int bary_log_normaliser(bary_family *f, const double *lambda, double *logZ, double *abserr)
{
    if (!lambda_ok(f, lambda)) {
        *logZ = NAN;
        if (abserr) *abserr = INFINITY;
        return GSL_EDOM;
    }
    igr c = {.f = f, .lambda = lambda, .wkind = W_BARY, .gkind = G_ONE};
    double M = prepare(f, &c);
    if (!isfinite(M)) {
        *logZ = -INFINITY;
        if (abserr) *abserr = INFINITY;
        return GSL_EUNDRFLW;
    }
    double D, e;
    int st = integrate(f, &c, &D, &e);
    *logZ = c.M + log(D);
    if (abserr) *abserr = e / D;
    return st;
}

/* The weighted means E_w[log p_i], i < k, for the weight c->wkind (prepared): D = integral of the weight, then
 * one ratio integral per member. emax bounds the error of every ratio (the D error propagated). */
static int log_means(bary_family *f, igr *c, double *out, double *D, double *eD, double *emax)
{
    c->gkind = G_ONE;
    int status = integrate(f, c, D, eD);
    *emax = *eD / *D;
    c->gkind = G_LOGP;
    for (size_t i = 0; i < f->k; i++) {
        double N, eN;
        c->idx = i;
        int st = integrate(f, c, &N, &eN);
        if (st && !status) status = st;
        out[i] = N / *D;
        *emax = fmax(*emax, (eN + fabs(out[i]) * *eD) / *D);
    }
    return status;
}

int bary_tilted_means(bary_family *f, const double *lambda, double *Elogp, double *logZ, double *abserr)
{
    if (!lambda_ok(f, lambda)) {
        for (size_t i = 0; i < f->k; i++) Elogp[i] = NAN;
        if (logZ) *logZ = NAN;
        if (abserr) *abserr = INFINITY;
        return GSL_EDOM;
    }
    igr c = {.f = f, .lambda = lambda, .wkind = W_BARY, .gkind = G_ONE};
    double M = prepare(f, &c);
    if (!isfinite(M)) {
        for (size_t i = 0; i < f->k; i++) Elogp[i] = NAN;
        if (logZ) *logZ = -INFINITY;
        if (abserr) *abserr = INFINITY;
        return GSL_EUNDRFLW;
    }
    double D, eD, emax;
    int status = log_means(f, &c, Elogp, &D, &eD, &emax);
    if (logZ) *logZ = c.M + log(D);
    if (abserr) *abserr = emax;
    return status;
}

double bary_logpdf(const bary_family *f, const double *lambda, double logZ, double x)
{
    return weighted_log(f, lambda, x) - logZ;
}

double bary_density_logpdf(void *ctx, double x)
{
    const bary_density *d = ctx;
    return bary_logpdf(d->f, d->lambda, d->logZ, x);
}

int bary_cross_means(bary_family *f, bary_logpdf_fn target_logp, void *target_ctx, double *hbar, double *negent,
                     double *abserr)
{
    igr c = {.f = f, .tl = target_logp, .tctx = target_ctx, .wkind = W_TARGET, .gkind = G_ONE};
    double M = prepare(f, &c);
    if (!isfinite(M)) {
        for (size_t i = 0; i < f->k; i++) hbar[i] = NAN;
        if (negent) *negent = NAN;
        if (abserr) *abserr = INFINITY;
        return GSL_EUNDRFLW;
    }
    double D, eD, emax;
    int status = log_means(f, &c, hbar, &D, &eD, &emax);
    if (negent) {
        double N, eN;
        c.gkind = G_LOGNU;
        int st = integrate(f, &c, &N, &eN);
        if (st && !status) status = st;
        *negent = N / D;
        emax = fmax(emax, (eN + fabs(*negent) * eD) / D);
    }
    if (abserr) *abserr = emax;
    return status;
}

int bary_kl(bary_family *f, bary_logpdf_fn target_logp, void *target_ctx, const double *lambda, double *kl,
            double *abserr)
{
    double logZ, eZ;
    int status = bary_log_normaliser(f, lambda, &logZ, &eZ);
    if (status == GSL_EDOM) {
        *kl = NAN;
        if (abserr) *abserr = INFINITY;
        return status;
    }
    igr c = {.f = f, .lambda = lambda, .tl = target_logp, .tctx = target_ctx, .wkind = W_TARGET, .gkind = G_ONE};
    double M = prepare(f, &c);
    if (!isfinite(M)) {
        *kl = NAN;
        if (abserr) *abserr = INFINITY;
        return GSL_EUNDRFLW;
    }
    double D, eD, N, eN;
    int st = integrate(f, &c, &D, &eD);
    if (st && !status) status = st;
    c.gkind = G_KL;
    st = integrate(f, &c, &N, &eN);
    if (st && !status) status = st;
    *kl = N / D + logZ;
    if (abserr) *abserr = (eN + fabs(N / D) * eD) / D + eZ;
    return status;
}

/* ---- CDF table ----------------------------------------------------------------------------------------- */

bary_cdf_table *bary_cdf_tabulate(bary_family *f, const double *lambda, size_t n_grid)
{
    LOG_CHECK(n_grid >= 2, "bary_cdf_tabulate: n_grid = %zu < 2", n_grid);
    LOG_CHECK(lambda_ok(f, lambda), "bary_cdf_tabulate: lambda has a negative or non-finite entry");
    bary_cdf_table *t = mem_calloc(1, sizeof *t);
    size_t n = n_grid;
    t->n = n;
    t->x = mem_new(double, n);
    t->cdf = mem_new(double, n);
    t->dcdf = mem_new(double, n);
    double h = (f->hi - f->lo) / (double)(n - 1);
    double M = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        t->x[i] = i + 1 == n ? f->hi : f->lo + h * (double)i;
        double u = weighted_log(f, lambda, t->x[i]);
        t->dcdf[i] = u;   /* log-weight for now */
        if (u > M) M = u;
    }
    LOG_CHECK(isfinite(M), "bary_cdf_tabulate: the barycenter density vanishes on the whole grid");
    /* cell masses by 10-point Gauss-Legendre */
    gsl_integration_glfixed_table *gl = gsl_integration_glfixed_table_alloc(10);
    if (!gl) LOG_FATAL("gsl_integration_glfixed_table_alloc failed");
    double cum = 0.0;
    t->cdf[0] = 0.0;
    for (size_t i = 0; i + 1 < n; i++) {
        double a = t->x[i], b = t->x[i + 1], s = 0.0;
        if (fmax(t->dcdf[i], t->dcdf[i + 1]) > M - 2.0 * SKIP_BELOW) {
            for (size_t j = 0; j < 10; j++) {
                double xj, wj;
                gsl_integration_glfixed_point(a, b, j, &xj, &wj, gl);
                s += wj * exp(weighted_log(f, lambda, xj) - M);
            }
        }
        cum += s;
        t->cdf[i + 1] = cum;
    }
    gsl_integration_glfixed_table_free(gl);
    LOG_CHECK(cum > 0.0 && isfinite(cum), "bary_cdf_tabulate: total mass %g", cum);
    for (size_t i = 0; i < n; i++) {
        t->cdf[i] /= cum;
        t->dcdf[i] = exp(t->dcdf[i] - M) / cum;   /* normalised density = slope of the CDF */
    }
    t->cdf[n - 1] = 1.0;
    t->logZ = M + log(cum);
    t->status = GSL_SUCCESS;
    /* Fritsch-Carlson limiter: keeps the Hermite interpolant monotone on every cell */
    for (size_t i = 0; i + 1 < n; i++) {
        double hh = t->x[i + 1] - t->x[i];
        double d = (t->cdf[i + 1] - t->cdf[i]) / hh;
        if (d <= 0.0) {
            t->dcdf[i] = t->dcdf[i + 1] = 0.0;
            continue;
        }
        double a = t->dcdf[i] / d, b = t->dcdf[i + 1] / d, r = a * a + b * b;
        if (r > 9.0) {
            double tau = 3.0 / sqrt(r);
            t->dcdf[i] = tau * a * d;
            t->dcdf[i + 1] = tau * b * d;
        }
    }
    return t;
}

static double hermite(const bary_cdf_table *t, size_t i, double s)
{
    double h = t->x[i + 1] - t->x[i];
    double s2 = s * s, s3 = s2 * s;
    double v = (2 * s3 - 3 * s2 + 1) * t->cdf[i] + (s3 - 2 * s2 + s) * h * t->dcdf[i] +
               (-2 * s3 + 3 * s2) * t->cdf[i + 1] + (s3 - s2) * h * t->dcdf[i + 1];
    return fmin(fmax(v, t->cdf[i]), t->cdf[i + 1]);
}

static double hermite_d(const bary_cdf_table *t, size_t i, double s)   /* d/ds */
{
    double h = t->x[i + 1] - t->x[i];
    double s2 = s * s;
    return (6 * s2 - 6 * s) * t->cdf[i] + (3 * s2 - 4 * s + 1) * h * t->dcdf[i] + (-6 * s2 + 6 * s) * t->cdf[i + 1] +
           (3 * s2 - 2 * s) * h * t->dcdf[i + 1];
}

double bary_cdf_eval(const bary_cdf_table *t, double x)
{
    size_t n = t->n;
    if (!(x > t->x[0])) return isnan(x) ? NAN : 0.0;
    if (x >= t->x[n - 1]) return 1.0;
    double h = (t->x[n - 1] - t->x[0]) / (double)(n - 1);
    size_t i = (size_t)((x - t->x[0]) / h);
    if (i > n - 2) i = n - 2;
    while (i > 0 && x < t->x[i]) i--;
    while (i < n - 2 && x >= t->x[i + 1]) i++;
    return hermite(t, i, (x - t->x[i]) / (t->x[i + 1] - t->x[i]));
}

double bary_cdf_quantile(const bary_cdf_table *t, double u)
{
    size_t n = t->n;
    if (isnan(u)) return NAN;
    if (u <= 0.0) return t->x[0];
    if (u >= 1.0) return t->x[n - 1];
    /* first cell i with cdf[i+1] >= u */
    size_t lo = 0, hi = n - 2;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t->cdf[mid + 1] >= u) hi = mid; else lo = mid + 1;
    }
    size_t i = lo;
    double a = 0.0, b = 1.0, s;
    double c0 = t->cdf[i], c1 = t->cdf[i + 1];
    s = c1 > c0 ? (u - c0) / (c1 - c0) : 0.5;   /* linear start */
    for (int it = 0; it < 100; it++) {
        double r = hermite(t, i, s) - u;
        if (r == 0.0) break;
        if (r > 0) b = s; else a = s;
        double d = hermite_d(t, i, s);
        double sn = d > 0 ? s - r / d : 0.5 * (a + b);
        if (!(sn > a && sn < b)) sn = 0.5 * (a + b);
        if (fabs(sn - s) < 1e-15 || b - a < 1e-15) {
            s = sn;
            break;
        }
        s = sn;
    }
    return t->x[i] + s * (t->x[i + 1] - t->x[i]);
}

void bary_cdf_table_free(bary_cdf_table *t)
{
    if (!t) return;
    free(t->x);
    free(t->cdf);
    free(t->dcdf);
    free(t);
}

/* ---- Gaussian closed form ------------------------------------------------------------------------------ */

void bary_gaussian(size_t k, const double *mu, const double *var, const double *lambda, double *mu_out,
                   double *var_out)
{
    double A = 0.0, B = 0.0;
    for (size_t i = 0; i < k; i++) {
        A += lambda[i] / var[i];
        B += lambda[i] * mu[i] / var[i];
    }
    *var_out = 1.0 / A;
    *mu_out = B / A;
}

double bary_gaussian_log_normaliser(size_t k, const double *mu, const double *var, const double *lambda)
{
    double m, v, s = 0.0;
    bary_gaussian(k, mu, var, lambda, &m, &v);
    for (size_t i = 0; i < k; i++) s += lambda[i] * (-0.5 * log(2.0 * M_PI * var[i]) - 0.5 * mu[i] * mu[i] / var[i]);
    return s + 0.5 * m * m / v + 0.5 * log(2.0 * M_PI * v);
}

/* ---- mixtures as members ------------------------------------------------------------------------------- */

double bary_mixture_logpdf(void *ctx, double x) { return mixture_logpdf((const mixture *)ctx, x); }

void bary_mixture_interval(size_t k, const mixture *const *m, double nsd, double *lo, double *hi)
{
    double a = INFINITY, b = -INFINITY;
    for (size_t i = 0; i < k; i++)
        for (int j = 0; j < m[i]->k; j++) {
            a = fmin(a, m[i]->mu[j] - nsd * m[i]->sd[j]);
            b = fmax(b, m[i]->mu[j] + nsd * m[i]->sd[j]);
        }
    *lo = a;
    *hi = b;
}
