/* test_fw: Frank-Wolfe on the simplex (paper App. D.1.2, Algorithm 2) and vanilla fusion (eq. 9 / eq. 20,
 * gradient of Remark 2, convexity of Prop. 1): O(1/t) rate with a stated constant, the duality-gap certificate,
 * and planted answers (the target IS a KL barycenter of the auxiliaries) recovered from exact and from
 * sample-mean cross means. */
#include "barycenter.h"
#include "fw.h"
#include "mixture.h"
#include "rng.h"
#include "test.h"
#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* f(lambda) = 1/2 (lambda - c)' H (lambda - c) */
typedef struct {
    size_t k;
    const double *H, *c;
} quad;

static int quad_fdf(void *ctx, const double *l, double *f, double *g)
{
    const quad *q = ctx;
    double s = 0.0;
    for (size_t i = 0; i < q->k; i++) {
        double gi = 0.0;
        for (size_t j = 0; j < q->k; j++) gi += q->H[i * q->k + j] * (l[j] - q->c[j]);
        g[i] = gi;
        s += 0.5 * gi * (l[i] - q->c[i]);
    }
    *f = s;
    return 0;
}

/* Run the open-loop rule for T iterations: checks f_t - f* <= 4L/(t+2) and gap_t >= f_t - f* for all t. */
static void rate_check(const char *tag, const quad *q, double fstar, fw_step_rule rule, size_t T)
{
    size_t k = q->k;
    double L = 0.0;   /* Gershgorin bound on the largest eigenvalue of H: an upper bound on the smoothness */
    for (size_t i = 0; i < k; i++) {
        double r = 0.0;
        for (size_t j = 0; j < k; j++) r += fabs(q->H[i * k + j]);
        L = fmax(L, r);
    }
    fw_state *s = fw_alloc(k);
    fw_set_step(s, rule);
    double l0[8] = {0};
    l0[k - 1] = 1.0;
    int st = fw_init(s, quad_fdf, (void *)q, l0);
    int rate_ok = 1, cert_ok = 1, lower_ok = 1;
    double worst_ratio = 0.0;
    cert_ok &= s->gap >= s->f - fstar - 1e-15;
    for (size_t t = 1; t <= T && st == GSL_SUCCESS; t++) {
        st = fw_iterate(s);
        double h = s->f - fstar;
        if (h > 4.0 * L / (double)(t + 2)) rate_ok = 0;
        worst_ratio = fmax(worst_ratio, h * (double)(t + 2) / (4.0 * L));
        if (s->gap < h - 1e-15) cert_ok = 0;
        if (s->f_lower > fstar + 1e-15) lower_ok = 0;
    }
    char name[200];
    snprintf(name, sizeof name, "%s: f_t - f* <= C/(t+2), C = 4L = %.3g, t = 1..%zu (max ratio %.3f)", tag, 4 * L, T,
             worst_ratio);
    CHECK(st == GSL_SUCCESS && rate_ok, name);
    snprintf(name, sizeof name, "%s: duality gap >= true primal gap at every iteration", tag);
    CHECK(cert_ok, name);
    snprintf(name, sizeof name, "%s: f_lower = max(f_t - gap_t) <= f* at every iteration", tag);
    CHECK(lower_ok, name);
    fw_free(s);
}

static double gauss_logpdf(void *ctx, double x)
{
    const double *g = ctx;   /* {mu, var} */
    double d = x - g[0];
    return -0.5 * log(2.0 * M_PI * g[1]) - 0.5 * d * d / g[1];
}

/* Line-search FW to tolerance; returns iterations used; checks the certificate against fstar = 0. */
static size_t solve_ls(fw_state *s, fw_fdf fdf, void *ctx, const double *l0, double tol, size_t maxit, int *cert_ok)
{
    fw_set_step(s, FW_STEP_LINESEARCH);
    fw_init(s, fdf, ctx, l0);
    *cert_ok = s->gap >= s->f - 1e-12;
    size_t t = 0;
    while (t < maxit && fw_test_gap(s, tol) == GSL_CONTINUE) {
        if (fw_iterate(s) != GSL_SUCCESS) break;
        if (s->gap < s->f - 1e-12) *cert_ok = 0;   /* f* = 0 for a planted KL */
        t++;
    }
    return t;
}

int main(void)
{
    gsl_set_error_handler_off();

    /* ---- smooth convex quadratics: rate and certificate ---- */
    {
        const double H[16] = {3.0, 0.5, 0.2, 0.0, 0.5, 2.0, 0.3, 0.1, 0.2, 0.3, 1.5, 0.4, 0.0, 0.1, 0.4, 1.0};
        const double c[4] = {0.1, 0.4, 0.3, 0.2};
        quad q = {4, H, c};
        rate_check("quadratic, interior optimum, step 2/(t+2)", &q, 0.0, FW_STEP_OPEN_LOOP, 2000);
        rate_check("quadratic, interior optimum, paper step", &q, 0.0, FW_STEP_PAPER, 2000);
        const double I[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
        const double c2[4] = {1.2, -0.2, 0.0, 0.0};   /* projection onto the simplex: e_1, f* = 0.04 */
        quad q2 = {4, I, c2};
        rate_check("quadratic, optimum at a vertex, step 2/(t+2)", &q2, 0.04, FW_STEP_OPEN_LOOP, 2000);
        const double c3[4] = {0.8, 0.6, -0.3, -0.1};   /* projection: (0.6, 0.4, 0, 0) on an edge, f* = 0.09 */
        quad q3 = {4, I, c3};
        rate_check("quadratic, optimum on an edge, step 2/(t+2)", &q3, 0.09, FW_STEP_OPEN_LOOP, 2000);

        fw_state *s = fw_alloc(4);
        int cert;
        double l0[4] = {0.25, 0.25, 0.25, 0.25};
        size_t it = solve_ls(s, quad_fdf, &q, l0, 1e-12, 500, &cert);
        double err = 0.0;
        for (int i = 0; i < 4; i++) err = fmax(err, fabs(s->lambda[i] - c[i]));
        char name[160];
        snprintf(name, sizeof name, "line search: gap <= 1e-12 in %zu iterations, |lambda - c| = %.2e <= 1e-5", it, err);
        CHECK(fw_test_gap(s, 1e-12) == GSL_SUCCESS && err <= 1e-5, name);
        CHECK(cert, "line search: gap >= primal gap at every iteration");
        double bad[4] = {0.5, 0.5, 0.5, -0.5};
        CHECK(fw_init(s, quad_fdf, &q, bad) == GSL_EDOM, "fw_init: lambda0 off the simplex -> GSL_EDOM");
        fw_free(s);
    }

    /* ---- vanilla fusion, Gaussian planted answer (k = 3, unequal variances: identifiable) ---- */
    {
        double g[3][2] = {{-4.0, 1.0}, {0.5, 2.5}, {5.0, 0.5}};
        double mu[3] = {g[0][0], g[1][0], g[2][0]}, var[3] = {g[0][1], g[1][1], g[2][1]};
        double lam0[3] = {0.2, 0.5, 0.3}, tgt[2];
        bary_gaussian(3, mu, var, lam0, &tgt[0], &tgt[1]);
        bary_logpdf_fn fn[3] = {gauss_logpdf, gauss_logpdf, gauss_logpdf};
        void *ctx[3] = {g[0], g[1], g[2]};
        bary_family *f = bary_family_alloc(3, fn, ctx, -40.0, 40.0);
        double hbar[3], negent, err;
        int st = bary_cross_means(f, gauss_logpdf, tgt, hbar, &negent, &err);
        CHECK(st == GSL_SUCCESS, "gaussian planted: exact cross means by quadrature");
        fw_vanilla *v = fw_vanilla_alloc(f, hbar, negent);
        fw_state *s = fw_alloc(3);
        int cert;
        double l0[3] = {1.0 / 3, 1.0 / 3, 1.0 / 3};
        size_t it = solve_ls(s, fw_vanilla_fdf, v, l0, 1e-11, 300, &cert);
        double e = 0.0;
        for (int i = 0; i < 3; i++) e = fmax(e, fabs(s->lambda[i] - lam0[i]));
        char name[200];
        snprintf(name, sizeof name,
                 "gaussian planted k=3: line-search FW recovers lambda0 (|err| %.2e <= 1e-4, gap %.1e <= 1e-11, %zu it)",
                 e, s->gap, it);
        CHECK(e <= 1e-4 && s->gap <= 1e-11, name);
        CHECK(cert, "gaussian planted k=3: gap >= F - F* = KL at every iteration");
        double kl;
        bary_kl(f, gauss_logpdf, tgt, s->lambda, &kl, &err);
        CHECK_CLOSE(s->f, kl, 1e-10, 0, "gaussian planted k=3: F(lambda) = KL(nu || p_lambda) by bary_kl");
        CHECK(v->last_status == GSL_SUCCESS, "gaussian planted k=3: quadrature status recorded (success)");

        /* open loop from a vertex: O(1/t) with certified gap */
        fw_set_step(s, FW_STEP_OPEN_LOOP);
        double l1[3] = {1, 0, 0};
        fw_init(s, fw_vanilla_fdf, v, l1);
        int ok = 1;
        double early = 0.0, late = 0.0;   /* max of (t+2) KL_t over t in [10, 150) and [150, 600] */
        for (size_t t = 1; t <= 600; t++) {
            fw_iterate(s);
            ok &= s->gap >= s->f - 1e-12;
            double r = (double)(t + 2) * s->f;
            if (t >= 10 && t < 150) early = fmax(early, r);
            if (t >= 150) late = fmax(late, r);
        }
        snprintf(name, sizeof name,
                 "gaussian planted k=3: open-loop FW is O(1/t): max (t+2) KL_t on [150,600] = %.3g <= on [10,150) = %.3g",
                 late, early);
        CHECK(late <= early, name);
        snprintf(name, sizeof name, "gaussian planted k=3: open-loop FW, 600 it: gap certified every iteration, KL %.2e",
                 s->f);
        CHECK(ok && s->f < 2e-3, name);
        fw_free(s);
        fw_vanilla_free(v);
        bary_family_free(f);
    }

    /* ---- vanilla fusion, mixture planted answer: target := p_lambda0 of the family itself ---- */
    {
        char err[128];
        mixture a[3];
        mixture_parse("0.5:-3:1,0.5:10:1", &a[0], err, sizeof err);
        mixture_parse("0.7:-7:1,0.3:9:1", &a[1], err, sizeof err);
        mixture_parse("0.5:0:2,0.5:4:1", &a[2], err, sizeof err);
        const mixture *am[3] = {&a[0], &a[1], &a[2]};
        double lo, hi;
        bary_mixture_interval(3, am, 12.0, &lo, &hi);
        bary_logpdf_fn fn[3] = {bary_mixture_logpdf, bary_mixture_logpdf, bary_mixture_logpdf};
        void *ctx[3] = {&a[0], &a[1], &a[2]};
        for (size_t k = 2; k <= 3; k++) {
            bary_family *f = bary_family_alloc(k, fn, ctx, lo, hi);
            double lam0[3] = {0.35, 0.65, 0.0};
            if (k == 3) lam0[0] = 0.2, lam0[1] = 0.5, lam0[2] = 0.3;
            bary_density p = {f, lam0, 0.0};
            bary_log_normaliser(f, lam0, &p.logZ, NULL);
            double hbar[3], negent, e;
            bary_cross_means(f, bary_density_logpdf, &p, hbar, &negent, &e);
            fw_vanilla *v = fw_vanilla_alloc(f, hbar, negent);
            fw_state *s = fw_alloc(k);
            double l0[3] = {1.0 / (double)k, 1.0 / (double)k, 1.0 / (double)k};
            int cert;
            size_t it = solve_ls(s, fw_vanilla_fdf, v, l0, 1e-11, 300, &cert);
            double d = 0.0;
            for (size_t i = 0; i < k; i++) d = fmax(d, fabs(s->lambda[i] - lam0[i]));
            char name[200];
            snprintf(name, sizeof name,
                     "mixture planted k=%zu: FW recovers lambda0 with exact cross means (|err| %.2e <= 1e-4, gap %.1e, %zu it)",
                     k, d, s->gap, it);
            CHECK(d <= 1e-4 && s->gap <= 1e-11, name);
            snprintf(name, sizeof name, "mixture planted k=%zu: certificate >= KL at every iteration", k);
            CHECK(cert, name);

            /* sample-mean cross means (Remark 2): n draws of the target by inverse CDF */
            if (k == 2) {
                const size_t n = 20000;
                bary_cdf_table *t = bary_cdf_tabulate(f, lam0, 20001);
                rng *r = rng_alloc(7, 1);
                double *x = malloc(n * sizeof *x), m = 0.0, m2 = 0.0;
                for (size_t j = 0; j < n; j++) {
                    x[j] = bary_cdf_quantile(t, rng_uniform_pos(r));
                    double dl = bary_member_logpdf(f, 0, x[j]) - bary_member_logpdf(f, 1, x[j]);
                    m += dl;
                    m2 += dl * dl;
                }
                m /= (double)n;
                double sd = sqrt(m2 / (double)n - m * m);
                /* delta-method: lambda_1 - lambda0_1 ~ (noise of hbar_1 - hbar_2) / F'', F'' = Var(log p1 - log p2)
                 * under p_lambda0 = nu, so its sd is 1 / (sd sqrt n) */
                double se = 1.0 / (sd * sqrt((double)n));
                double hs[2];
                fw_vanilla_hbar_samples(f, x, n, hs);
                fw_vanilla *vs = fw_vanilla_alloc(f, hs, 0.0);
                fw_state *s2 = fw_alloc(2);
                double lh[2] = {0.5, 0.5};
                solve_ls(s2, fw_vanilla_fdf, vs, lh, 1e-12, 300, &cert);
                double dd = fabs(s2->lambda[0] - lam0[0]);
                snprintf(name, sizeof name,
                         "mixture planted k=2: FW with sample-mean cross means (n=%zu): |err| %.4f <= 4 se = %.4f", n, dd,
                         4 * se);
                CHECK(dd <= 4 * se && s2->gap <= 1e-12, name);
                fw_free(s2);
                fw_vanilla_free(vs);
                free(x);
                rng_free(r);
                bary_cdf_table_free(t);
            }
            fw_free(s);
            fw_vanilla_free(v);
            bary_family_free(f);
        }
    }
    /* ---- vanilla fusion in exp_gaussian's paper mode: each auxiliary standardised by its own moments, the
     * target (standardised too) outside the family, so F* > 0 and the optimum is interior. The open-loop
     * step stops short here (issue 11: certified gaps 4e-4..2e-3 after 2,000 iterations); the exact line search
     * certifies the optimum, which must match an independent 1-D minimiser of F (golden section on lambda_1). */
    {
        char err[128];
        mixture a[2], t;
        mixture_parse("0.5:-3:1,0.5:10:1", &a[0], err, sizeof err);
        mixture_parse("0.7:-7:1,0.3:9:1", &a[1], err, sizeof err);
        mixture_parse("0.6:-6:0.8,0.4:6:0.8", &t, err, sizeof err);
        mixture ay[2], ty = mixture_affine(&t, mixture_mean(&t), mixture_sd(&t));
        for (int i = 0; i < 2; i++) ay[i] = mixture_affine(&a[i], mixture_mean(&a[i]), mixture_sd(&a[i]));
        const mixture *am[3] = {&ay[0], &ay[1], &ty};
        double lo, hi;
        bary_mixture_interval(3, am, 12.0, &lo, &hi);
        bary_logpdf_fn fn[2] = {bary_mixture_logpdf, bary_mixture_logpdf};
        void *ctx[2] = {&ay[0], &ay[1]};
        bary_family *f = bary_family_alloc(2, fn, ctx, lo, hi);
        double hbar[2], negent, e;
        bary_cross_means(f, bary_mixture_logpdf, &ty, hbar, &negent, &e);
        fw_vanilla *v = fw_vanilla_alloc(f, hbar, negent);
        double l0[2] = {0.5, 0.5};

        fw_state *so = fw_alloc(2);   /* the old rule: open loop, 2,000 iterations */
        fw_init(so, fw_vanilla_fdf, v, l0);
        for (int it = 0; it < 2000 && fw_test_gap(so, 1e-7) == GSL_CONTINUE; it++)
            if (fw_iterate(so) != GSL_SUCCESS) break;

        fw_state *s = fw_alloc(2);
        int cert;
        size_t it = solve_ls(s, fw_vanilla_fdf, v, l0, 1e-10, 50, &cert);

        /* golden section on phi(x) = F(x, 1 - x), convex on [0, 1] */
        double ga = 0.0, gb = 1.0, r = 0.5 * (sqrt(5.0) - 1.0), g[2], fx;
        for (int k = 0; k < 200 && gb - ga > 1e-12; k++) {
            double x1 = gb - r * (gb - ga), x2 = ga + r * (gb - ga), f1, f2;
            double p1[2] = {x1, 1 - x1}, p2[2] = {x2, 1 - x2};
            fw_vanilla_fdf(v, p1, &f1, g);
            fw_vanilla_fdf(v, p2, &f2, g);
            if (f1 < f2) gb = x2;
            else ga = x1;
        }
        double xs = 0.5 * (ga + gb), ps[2] = {xs, 1 - xs};
        fw_vanilla_fdf(v, ps, &fx, g);
        char name[256];
        snprintf(name, sizeof name,
                 "paper-mode family: open-loop FW stops short (gap %.1e after %zu it > 1e-6, |lambda_1 err| %.1e)",
                 so->gap, so->iter, fabs(so->lambda[0] - xs));
        CHECK(so->gap > 1e-6, name);
        snprintf(name, sizeof name,
                 "paper-mode family: line-search FW certifies gap %.1e <= 1e-10 in %zu it, lambda_1 %.6f = golden "
                 "section %.6f (|d| %.1e <= 1e-6)",
                 s->gap, it, s->lambda[0], xs, fabs(s->lambda[0] - xs));
        CHECK(s->gap <= 1e-10 && it <= 10 && fabs(s->lambda[0] - xs) <= 1e-6 && s->lambda[0] > 0.01 &&
                  s->lambda[0] < 0.99,
              name);
        snprintf(name, sizeof name, "paper-mode family: F at the FW optimum %.12g <= F at golden section %.12g + 1e-12",
                 s->f, fx);
        CHECK(s->f <= fx + 1e-12 && s->f_lower <= s->f && s->f - s->f_lower <= s->gap + 1e-15, name);
        fw_free(so);
        fw_free(s);
        fw_vanilla_free(v);
        bary_family_free(f);
    }
    return test_finish();
}
