/* fw: Frank-Wolfe on the probability simplex (paper App. D.1.2, Algorithm 2), GSL-style init/iterate/test so
 * that the caller owns the loop and logs every iteration, and the vanilla-fusion objective (eq. 9 / eq. 20) with
 * its gradient (Remark 2) as an objective for it (convex by Prop. 1).
 *
 * One iteration at lambda_t: vertex v = argmin_i grad_i (the linear minimisation oracle over the simplex),
 * direction d = e_v - lambda_t, duality gap g_t = <grad, lambda_t - e_v> >= f(lambda_t) - f* (a certified bound
 * for convex f), then lambda_{t+1} = lambda_t + gamma_t d.
 * Step rules (fw_set_step):
 *   FW_STEP_OPEN_LOOP (default): gamma_t = 2/(t+2), t = 0, 1, ... (Jaggi 2013): gamma_0 = 1 jumps to the
 *       first vertex; for L-smooth convex f, f(lambda_t) - f* <= 2 C_f/(t+2) with C_f <= L diam^2 = 2L on the
 *       simplex (Euclidean diameter sqrt 2), i.e. f(lambda_t) - f* <= 4L/(t+2).
 *   FW_STEP_PAPER: the paper's Algorithm 2, gamma = 1 at its first step (tau = 1), then 2/(tau+3) for
 *       tau = 2, 3, ... (2/5, 2/6, ...), tau = t + 1 -- the same O(1/t) schedule, shifted (steps slightly smaller).
 *   FW_STEP_LINESEARCH: exact line search, gamma = argmin_{[0,1]} f(lambda + gamma d), by a safeguarded
 *       secant/bisection on the directional derivative <grad f(lambda + gamma d), d> (monotone for convex f);
 *       each iteration costs several fdf evaluations. Converges linearly when the optimum is interior and f is
 *       strongly convex (Guelat-Marcotte).
 * Certificates: gap (at the current iterate), best_gap (smallest seen), f_lower = max_t (f_t - g_t) <= f*, so
 * f - f_lower is also a certified bound on the current primal gap. */
#ifndef SF_FW_H
#define SF_FW_H
#include "barycenter.h"
#include <stddef.h>

/* f(lambda) and grad f(lambda) [k]; returns 0 (GSL_SUCCESS) or a GSL status (the iteration then stops with it) */
typedef int (*fw_fdf)(void *ctx, const double *lambda, double *f, double *grad);

typedef enum { FW_STEP_OPEN_LOOP = 0, FW_STEP_PAPER = 1, FW_STEP_LINESEARCH = 2 } fw_step_rule;

typedef struct {
    size_t k, iter;        /* iter: iterations done */
    double *lambda;        /* [k] current iterate (on the simplex) */
    double *grad;          /* [k] gradient at lambda */
    double *vertex_dir;    /* [k] d = e_vertex - lambda, the next FW direction */
    size_t vertex;         /* argmin_i grad_i */
    double f, gap, best_gap, f_lower, step;   /* step: the gamma used by the last iteration */
    int nevals;            /* fdf evaluations so far */
    /* private */
    fw_fdf fdf;
    void *ctx;
    fw_step_rule rule;
    double *trial, *trial_grad;
} fw_state;

fw_state *fw_alloc(size_t k);
void fw_free(fw_state *s);
void fw_set_step(fw_state *s, fw_step_rule rule);   /* before or between iterations */
/* lambda0 must lie on the simplex (entries >= 0 summing to 1 within 1e-12; it is renormalised), else GSL_EDOM.
 * Evaluates f, grad and the gap at lambda0. */
int fw_init(fw_state *s, fw_fdf fdf, void *ctx, const double *lambda0);
int fw_iterate(fw_state *s);
int fw_test_gap(const fw_state *s, double tol);   /* GSL_SUCCESS when gap <= tol, else GSL_CONTINUE */

/* ---- vanilla fusion (eq. 9) in 1-D ----------------------------------------------------------------------
 * F(lambda) = negent - sum_i lambda_i hbar_i + log Z(lambda),  grad_i = -hbar_i + E_{p_lambda}[log p_i],
 * where hbar_i = E_nu[log p_i] is exact (bary_cross_means) or the sample mean over target draws
 * (fw_vanilla_hbar_samples; Remark 2's "sample mean estimators"), and negent = E_nu[log nu] if known (then
 * F = KL(nu || p_lambda)), else 0 (F = KL - const). log Z and the tilted means come from
 * bary_tilted_means; their quadrature status and error are kept in last_status / last_abserr. fw_vanilla_fdf
 * returns the quadrature status only when the results are not finite (a GSL_EROUND with finite results is
 * recorded in last_status and the iteration goes on). */
typedef struct {
    bary_family *fam;      /* not owned */
    size_t k;
    double *hbar;          /* [k] */
    double negent;
    double *Elogp;         /* [k] workspace */
    double last_logZ, last_abserr;
    int last_status;
} fw_vanilla;

fw_vanilla *fw_vanilla_alloc(bary_family *fam, const double *hbar, double negent);
void fw_vanilla_free(fw_vanilla *v);
int fw_vanilla_fdf(void *ctx /* fw_vanilla * */, const double *lambda, double *f, double *grad);
/* hbar[i] = (1/n) sum_j log p_i(x_j) */
void fw_vanilla_hbar_samples(const bary_family *fam, const double *x, size_t n, double *hbar);

#endif
