/* w1: 1-D Wasserstein-1 between samples (scipy.stats.wasserstein_distance semantics) and against an exact CDF,
 * the metric of the paper's App. I (Table 6). See w1.h. */
#include "w1.h"
#include "log.h"
#include "mem.h"
#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double x, w;
} xw;

static int cmp_xw(const void *a, const void *b)
{
    double x = ((const xw *)a)->x, y = ((const xw *)b)->x;
    return (x > y) - (x < y);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double w1_samples_sorted(const double *u, size_t nu, const double *uw, const double *v, size_t nv, const double *vw)
{
    if (nu == 0 || nv == 0) return NAN;
    double su = 0.0, sv = 0.0;
    for (size_t i = 0; i < nu; i++) {
        double w = uw ? uw[i] : 1.0;
        if (!(w >= 0.0) || !isfinite(w)) return NAN;
        su += w;
    }
    for (size_t i = 0; i < nv; i++) {
        double w = vw ? vw[i] : 1.0;
        if (!(w >= 0.0) || !isfinite(w)) return NAN;
        sv += w;
    }
    if (!(su > 0.0) || !(sv > 0.0)) return NAN;
    /* sweep the merged sorted values; between consecutive values both empirical CDFs are constant */
    size_t i = 0, j = 0;
    double cu = 0.0, cv = 0.0, area = 0.0;
    double cur = fmin(u[0], v[0]);
    while (i < nu || j < nv) {
        for (; i < nu && u[i] <= cur; i++) cu += uw ? uw[i] : 1.0;
        for (; j < nv && v[j] <= cur; j++) cv += vw ? vw[j] : 1.0;
        if (i == nu && j == nv) break;
        double next = i < nu ? u[i] : INFINITY;
        if (j < nv && v[j] < next) next = v[j];
        /* scipy: u_cdf = cumweight / total (indices / size when unweighted) */
        area += fabs(cu / su - cv / sv) * (next - cur);
        cur = next;
    }
    return area;
}

/* sorted copy of (x, w); w_out NULL when w is NULL */
static void sorted_copy(const double *x, const double *w, size_t n, double *x_out, double *w_out)
{
    if (!w) {
        memcpy(x_out, x, n * sizeof *x);
        qsort(x_out, n, sizeof *x_out, cmp_d);
        return;
    }
    xw *p = mem_new(xw, n);
    for (size_t i = 0; i < n; i++) p[i] = (xw){x[i], w[i]};
    qsort(p, n, sizeof *p, cmp_xw);
    for (size_t i = 0; i < n; i++) x_out[i] = p[i].x, w_out[i] = p[i].w;
    free(p);
}

double w1_samples(const double *u, size_t nu, const double *uw, const double *v, size_t nv, const double *vw)
{
    if (nu == 0 || nv == 0) return NAN;
    double *us = mem_new(double, nu), *vs = mem_new(double, nv);
    double *uws = uw ? mem_new(double, nu) : NULL, *vws = vw ? mem_new(double, nv) : NULL;
    sorted_copy(u, uw, nu, us, uws);
    sorted_copy(v, vw, nv, vs, vws);
    double r = w1_samples_sorted(us, nu, uws, vs, nv, vws);
    free(us), free(vs), free(uws), free(vws);
    return r;
}

/* ---- against an exact CDF ------------------------------------------------------------------------------ */

typedef struct {
    w1_cdf_fn cdf;
    void *ctx;
    double c, sign;   /* integrand sign * (c - F(x)) >= 0 */
} piece;

static double piece_eval(double x, void *p)
{
    const piece *q = p;
    return fmax(q->sign * (q->c - q->cdf(q->ctx, x)), 0.0);
}

static double integrate_piece(gsl_integration_workspace *ws, piece *p, double a, double b, double *err, int *status)
{
    if (!(b > a)) return 0.0;
    gsl_function F = {piece_eval, p};
    double r = 0.0, e = 0.0;
    int st = gsl_integration_qag(&F, a, b, 1e-15, 1e-12, 200, GSL_INTEG_GAUSS21, ws, &r, &e);
    if (st && !*status) *status = st;
    *err += e;
    return r;
}

/* int_a^b |c - F(x)| dx with at most one crossing */
static double abs_piece(gsl_integration_workspace *ws, w1_cdf_fn cdf, void *ctx, double c, double a, double b,
                        double *err, int *status)
{
    double Fa = cdf(ctx, a), Fb = cdf(ctx, b);
    piece p = {cdf, ctx, c, 1.0};
    if (Fb <= c) return integrate_piece(ws, &p, a, b, err, status);   /* c - F >= 0 throughout */
    p.sign = -1.0;
    if (Fa >= c) return integrate_piece(ws, &p, a, b, err, status);   /* F - c >= 0 throughout */
    double lo = a, hi = b;   /* F(lo) < c < F(hi) */
    for (int it = 0; it < 200 && hi - lo > 1e-15 * (fabs(lo) + fabs(hi)) + 1e-300; it++) {
        double m = 0.5 * (lo + hi);
        if (m <= lo || m >= hi) break;
        if (cdf(ctx, m) < c) lo = m; else hi = m;
    }
    double xs = 0.5 * (lo + hi);
    p.sign = 1.0;
    double r = integrate_piece(ws, &p, a, xs, err, status);
    p.sign = -1.0;
    return r + integrate_piece(ws, &p, xs, b, err, status);
}

double w1_exact_cdf(const double *u, size_t n, w1_cdf_fn cdf, void *ctx, double lo, double hi)
{
    return w1_exact_cdf_err(u, n, cdf, ctx, lo, hi, NULL, NULL);
}

double w1_exact_cdf_err(const double *u, size_t n, w1_cdf_fn cdf, void *ctx, double lo, double hi, double *abserr,
                        int *status)
{
    int st = GSL_SUCCESS;
    double err = 0.0;
    if (n == 0) {
        if (abserr) *abserr = INFINITY;
        if (status) *status = GSL_EINVAL;
        return NAN;
    }
    double *x = mem_new(double, n);
    memcpy(x, u, n * sizeof *u);
    qsort(x, n, sizeof *x, cmp_d);
    lo = fmin(lo, x[0]);
    hi = fmax(hi, x[n - 1]);
    gsl_integration_workspace *ws = gsl_integration_workspace_alloc(200);
    if (!ws) LOG_FATAL("gsl_integration_workspace_alloc failed");
    double total = abs_piece(ws, cdf, ctx, 0.0, lo, x[0], &err, &st);   /* tail: F_n = 0 */
    for (size_t i = 0; i + 1 < n; i++) {
        if (x[i + 1] > x[i]) total += abs_piece(ws, cdf, ctx, (double)(i + 1) / (double)n, x[i], x[i + 1], &err, &st);
    }
    total += abs_piece(ws, cdf, ctx, 1.0, x[n - 1], hi, &err, &st);      /* tail: F_n = 1 */
    gsl_integration_workspace_free(ws);
    free(x);
    if (abserr) *abserr = err;
    if (status) *status = st;
    return total;
}
