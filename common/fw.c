/* fw: Frank-Wolfe on the simplex (paper App. D.1.2, Algorithm 2) and the vanilla-fusion objective of eq. 9 /
 * eq. 20 with Remark 2's gradient. See fw.h for step rules and certificates. */
#include "fw.h"
#include "log.h"
#include "mem.h"
#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

fw_state *fw_alloc(size_t k)
{
    LOG_CHECK(k >= 1, "fw_alloc: k = 0");
    fw_state *s = mem_calloc(1, sizeof *s);
    s->k = k;
    s->lambda = mem_new(double, k);
    s->grad = mem_new(double, k);
    s->vertex_dir = mem_new(double, k);
    s->trial = mem_new(double, k);
    s->trial_grad = mem_new(double, k);
    s->rule = FW_STEP_OPEN_LOOP;
    return s;
}

void fw_free(fw_state *s)
{
    if (!s) return;
    free(s->lambda);
    free(s->grad);
    free(s->vertex_dir);
    free(s->trial);
    free(s->trial_grad);
    free(s);
}

void fw_set_step(fw_state *s, fw_step_rule rule) { s->rule = rule; }

/* vertex, direction and gap at the current (lambda, grad) */
static void fw_linear_oracle(fw_state *s)
{
    size_t v = 0;
    double lg = 0.0;
    for (size_t i = 0; i < s->k; i++) {
        if (s->grad[i] < s->grad[v]) v = i;
        lg += s->grad[i] * s->lambda[i];
    }
    s->vertex = v;
    for (size_t i = 0; i < s->k; i++) s->vertex_dir[i] = (i == v ? 1.0 : 0.0) - s->lambda[i];
    s->gap = fmax(lg - s->grad[v], 0.0);
    if (s->gap < s->best_gap) s->best_gap = s->gap;
    double lower = s->f - s->gap;
    if (lower > s->f_lower) s->f_lower = lower;
}

static int finite_all(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

int fw_init(fw_state *s, fw_fdf fdf, void *ctx, const double *lambda0)
{
    double sum = 0.0;
    for (size_t i = 0; i < s->k; i++) {
        if (!(lambda0[i] >= 0.0) || !isfinite(lambda0[i])) return GSL_EDOM;
        sum += lambda0[i];
    }
    if (fabs(sum - 1.0) > 1e-12) return GSL_EDOM;
    for (size_t i = 0; i < s->k; i++) s->lambda[i] = lambda0[i] / sum;
    s->fdf = fdf;
    s->ctx = ctx;
    s->iter = 0;
    s->step = 0.0;
    s->nevals = 1;
    s->best_gap = INFINITY;
    s->f_lower = -INFINITY;
    int st = fdf(ctx, s->lambda, &s->f, s->grad);
    if (st) return st;
    if (!isfinite(s->f) || !finite_all(s->grad, s->k)) return GSL_EBADFUNC;
    fw_linear_oracle(s);
    return GSL_SUCCESS;
}

/* trial = lambda + gamma d, evaluated into (*ft, trial_grad); returns the directional derivative in *dphi */
static int fw_eval_along(fw_state *s, double gamma, double *ft, double *dphi)
{
    for (size_t i = 0; i < s->k; i++) {
        double x = s->lambda[i] + gamma * s->vertex_dir[i];
        s->trial[i] = x < 0.0 ? 0.0 : x;
    }
    if (gamma == 1.0)
        for (size_t i = 0; i < s->k; i++) s->trial[i] = i == s->vertex ? 1.0 : 0.0;
    s->nevals++;
    int st = s->fdf(s->ctx, s->trial, ft, s->trial_grad);
    if (st) return st;
    if (!isfinite(*ft) || !finite_all(s->trial_grad, s->k)) return GSL_EBADFUNC;
    double d = 0.0;
    for (size_t i = 0; i < s->k; i++) d += s->trial_grad[i] * s->vertex_dir[i];
    *dphi = d;
    return GSL_SUCCESS;
}

int fw_iterate(fw_state *s)
{
    if (!s->fdf) return GSL_EINVAL;
    if (s->gap <= 0.0) {   /* lambda is optimal: nothing to do */
        s->step = 0.0;
        s->iter++;
        return GSL_SUCCESS;
    }
    double ft = 0.0, dphi = 0.0, gamma;
    int st;
    switch (s->rule) {
    case FW_STEP_PAPER:
        gamma = s->iter == 0 ? 1.0 : 2.0 / ((double)(s->iter + 1) + 3.0);
        st = fw_eval_along(s, gamma, &ft, &dphi);
        if (st) return st;
        break;
    case FW_STEP_LINESEARCH: {
        /* phi'(0) = -gap < 0; phi' is nondecreasing (convexity) */
        double a = 0.0, da = -s->gap, b = 1.0, db;
        st = fw_eval_along(s, 1.0, &ft, &db);
        if (st) return st;
        gamma = 1.0;
        if (db > 0.0) {
            int side = 0;
            for (int it = 0; it < 60; it++) {
                double g = (a * db - b * da) / (db - da);   /* false position (Illinois) */
                if (!(g > a && g < b)) g = 0.5 * (a + b);
                st = fw_eval_along(s, g, &ft, &dphi);
                if (st) return st;
                gamma = g;
                if (dphi == 0.0 || b - a < 1e-13 || fabs(dphi) <= 1e-13 * s->gap) break;
                if (dphi < 0.0) {
                    a = g;
                    da = dphi;
                    if (side == -1) db *= 0.5;
                    side = -1;
                } else {
                    b = g;
                    db = dphi;
                    if (side == 1) da *= 0.5;
                    side = 1;
                }
            }
        }
        break;
    }
    default:
        gamma = 2.0 / ((double)s->iter + 2.0);
        st = fw_eval_along(s, gamma, &ft, &dphi);
        if (st) return st;
        break;
    }
    memcpy(s->lambda, s->trial, s->k * sizeof *s->lambda);
    memcpy(s->grad, s->trial_grad, s->k * sizeof *s->grad);
    s->f = ft;
    s->step = gamma;
    s->iter++;
    fw_linear_oracle(s);
    return GSL_SUCCESS;
}

int fw_test_gap(const fw_state *s, double tol) { return s->gap <= tol ? GSL_SUCCESS : GSL_CONTINUE; }

/* ---- vanilla fusion -------------------------------------------------------------------------------------- */

fw_vanilla *fw_vanilla_alloc(bary_family *fam, const double *hbar, double negent)
{
    fw_vanilla *v = mem_calloc(1, sizeof *v);
    v->fam = fam;
    v->k = bary_family_k(fam);
    v->hbar = mem_new(double, v->k);
    v->Elogp = mem_new(double, v->k);
    memcpy(v->hbar, hbar, v->k * sizeof *hbar);
    v->negent = negent;
    return v;
}

void fw_vanilla_free(fw_vanilla *v)
{
    if (!v) return;
    free(v->hbar);
    free(v->Elogp);
    free(v);
}

int fw_vanilla_fdf(void *ctx, const double *lambda, double *f, double *grad)
{
    fw_vanilla *v = ctx;
    double logZ, err;
    int st = bary_tilted_means(v->fam, lambda, v->Elogp, &logZ, &err);
    v->last_status = st;
    v->last_logZ = logZ;
    v->last_abserr = err;
    double F = v->negent + logZ;
    for (size_t i = 0; i < v->k; i++) {
        F -= lambda[i] * v->hbar[i];
        grad[i] = -v->hbar[i] + v->Elogp[i];
    }
    *f = F;
    if (!isfinite(F) || !finite_all(grad, v->k)) return st ? st : GSL_EBADFUNC;
    return GSL_SUCCESS;
}

void fw_vanilla_hbar_samples(const bary_family *fam, const double *x, size_t n, double *hbar)
{
    size_t k = bary_family_k(fam);
    for (size_t i = 0; i < k; i++) {
        double s = 0.0;
        for (size_t j = 0; j < n; j++) s += bary_member_logpdf(fam, i, x[j]);
        hbar[i] = n ? s / (double)n : NAN;
    }
}
