/* test_barycenter: KL barycenters of 1-D densities (paper Thm 1; Gaussian closed form of App. H.4 generalised to
 * k Gaussians; log Z and the tilted means of eq. 20 / Remark 2; KL of eq. 9; CDF table for inverse-CDF sampling). */
#include "barycenter.h"
#include "mixture.h"
#include "test.h"
#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdio.h>

typedef struct {
    double mu, var;
} gauss;

static double gauss_logpdf(void *ctx, double x)
{
    const gauss *g = ctx;
    double d = x - g->mu;
    return -0.5 * log(2.0 * M_PI * g->var) - 0.5 * d * d / g->var;
}
static double moment1(void *ctx, double x) { (void)ctx; return x; }
static double moment2(void *ctx, double x) { (void)ctx; return x * x; }

/* Gaussian barycenter vs quadrature: log Z, mean, variance, E[log p_i], KL and cross means. */
static void check_gaussian(const char *tag, size_t k, const double *mu, const double *var, const double *lambda)
{
    gauss g[8];
    bary_logpdf_fn fn[8];
    void *ctx[8];
    double lam[8];
    for (size_t i = 0; i < k; i++) {
        g[i] = (gauss){mu[i], var[i]};
        fn[i] = gauss_logpdf;
        ctx[i] = &g[i];
        lam[i] = lambda[i];
    }
    /* two extra "members" with weight 0 turn the tilted means into the first two moments of p_lambda */
    fn[k] = moment1;
    fn[k + 1] = moment2;
    ctx[k] = ctx[k + 1] = NULL;
    lam[k] = lam[k + 1] = 0.0;
    bary_family *f = bary_family_alloc(k + 2, fn, ctx, -40.0, 40.0);
    double m, v, E[8], logZ, err;
    bary_gaussian(k, mu, var, lambda, &m, &v);
    double logZ_cf = bary_gaussian_log_normaliser(k, mu, var, lambda);
    int st = bary_tilted_means(f, lam, E, &logZ, &err);
    char name[160];
    snprintf(name, sizeof name, "%s: quadrature status GSL_SUCCESS", tag);
    CHECK(st == GSL_SUCCESS, name);
    snprintf(name, sizeof name, "%s: log Z quadrature = closed form (1e-9)", tag);
    CHECK_CLOSE(logZ, logZ_cf, 1e-9, 0, name);
    snprintf(name, sizeof name, "%s: mean quadrature = precision-weighted mean (1e-9)", tag);
    CHECK_CLOSE(E[k], m, 1e-9, 0, name);
    snprintf(name, sizeof name, "%s: variance quadrature = 1/sum(lambda/var) (1e-9)", tag);
    CHECK_CLOSE(E[k + 1] - E[k] * E[k], v, 1e-9, 0, name);
    double worst = 0.0;
    for (size_t i = 0; i < k; i++) {
        double want = -0.5 * log(2 * M_PI * var[i]) - ((m - mu[i]) * (m - mu[i]) + v) / (2 * var[i]);
        worst = fmax(worst, fabs(E[i] - want));
    }
    snprintf(name, sizeof name, "%s: tilted means E_{p_lambda}[log p_i] = closed form (max diff %.2e <= 1e-9)", tag,
             worst);
    CHECK(worst <= 1e-9, name);
    snprintf(name, sizeof name, "%s: error estimate finite and <= 1e-8 (%.2e)", tag, err);
    CHECK(isfinite(err) && err <= 1e-8, name);
    double lz2, e2;
    bary_log_normaliser(f, lam, &lz2, &e2);
    snprintf(name, sizeof name, "%s: bary_log_normaliser = bary_tilted_means' log Z", tag);
    CHECK_CLOSE(lz2, logZ, 1e-13, 0, name);

    /* KL(nu || p_lambda) for a Gaussian target, and the cross means */
    gauss nu = {0.7 * m + 0.3, 1.3 * v};
    double kl, klerr;
    st = bary_kl(f, gauss_logpdf, &nu, lam, &kl, &klerr);
    double kl_cf = 0.5 * (log(v / nu.var) + (nu.var + (nu.mu - m) * (nu.mu - m)) / v - 1.0);
    snprintf(name, sizeof name, "%s: KL(N || p_lambda) quadrature = closed form (1e-9)", tag);
    CHECK(st == GSL_SUCCESS && fabs(kl - kl_cf) <= 1e-9, name);
    double hbar[8], negent, herr;
    st = bary_cross_means(f, gauss_logpdf, &nu, hbar, &negent, &herr);
    worst = fabs(negent + 0.5 * log(2 * M_PI * M_E * nu.var));
    for (size_t i = 0; i < k; i++) {
        double want = -0.5 * log(2 * M_PI * var[i]) - ((nu.mu - mu[i]) * (nu.mu - mu[i]) + nu.var) / (2 * var[i]);
        worst = fmax(worst, fabs(hbar[i] - want));
    }
    snprintf(name, sizeof name, "%s: cross means E_nu[log p_i] and E_nu[log nu] = closed form (%.2e <= 1e-9)", tag,
             worst);
    CHECK(st == GSL_SUCCESS && worst <= 1e-9, name);
    bary_family_free(f);

    /* CDF table of the k-member family vs the Gaussian CDF */
    bary_family *f2 = bary_family_alloc(k, fn, ctx, -40.0, 40.0);
    bary_cdf_table *t = bary_cdf_tabulate(f2, lambda, 20001);
    double cerr = 0.0, qerr = 0.0;
    for (int j = -400; j <= 400; j++) {
        double x = m + 0.01 * j * sqrt(v) + 1e-3 * sqrt(2.0);
        double want = 0.5 * erfc(-(x - m) / sqrt(2 * v));
        cerr = fmax(cerr, fabs(bary_cdf_eval(t, x) - want));
    }
    for (int j = 1; j < 1000; j++) {
        double u = j / 1000.0;
        qerr = fmax(qerr, fabs(bary_cdf_eval(t, bary_cdf_quantile(t, u)) - u));
    }
    snprintf(name, sizeof name, "%s: CDF table (20001 nodes) vs Gaussian CDF, max err %.2e <= 1e-10", tag, cerr);
    CHECK(cerr <= 1e-10, name);
    snprintf(name, sizeof name, "%s: F(F^-1(u)) = u, max err %.2e <= 1e-13", tag, qerr);
    CHECK(qerr <= 1e-13, name);
    snprintf(name, sizeof name, "%s: CDF table log Z (composite rule) = closed form (1e-9)", tag);
    CHECK_CLOSE(t->logZ, logZ_cf, 1e-9, 0, name);
    int mono = 1;
    for (size_t i = 0; i + 1 < t->n; i++) mono &= t->cdf[i] <= t->cdf[i + 1];
    for (int j = 0; j < 20000; j++) {
        double x0 = -40 + 80.0 * j / 20000.0, x1 = x0 + 80.0 / 20000.0 / 3.0;
        mono &= bary_cdf_eval(t, x0) <= bary_cdf_eval(t, x1);
    }
    snprintf(name, sizeof name, "%s: CDF table monotone, ends at 0 and 1", tag);
    CHECK(mono && t->cdf[0] == 0.0 && t->cdf[t->n - 1] == 1.0, name);
    bary_cdf_table_free(t);
    bary_family_free(f2);
}

int main(void)
{
    gsl_set_error_handler_off();

    /* equal and unequal variances, k = 2 and k = 3 */
    {
        double mu[] = {-2.0, 3.0}, var[] = {1.0, 1.0}, lam[] = {0.3, 0.7};
        check_gaussian("k=2 equal var", 2, mu, var, lam);
    }
    {
        double mu[] = {-2.0, 3.0}, var[] = {0.25, 4.0}, lam[] = {0.6, 0.4};
        check_gaussian("k=2 unequal var", 2, mu, var, lam);
    }
    {
        double mu[] = {-5.0, 1.0, 6.0}, var[] = {0.5, 2.0, 1.0}, lam[] = {0.2, 0.5, 0.3};
        check_gaussian("k=3 unequal var", 3, mu, var, lam);
    }
    {
        double mu[] = {-1.0, 0.5, 2.0}, var[] = {0.09, 0.09, 0.09}, lam[] = {0.25, 0.25, 0.5};
        check_gaussian("k=3 equal narrow var", 3, mu, var, lam);
    }
    {
        double mu[] = {-3.0, 4.0}, var[] = {1.0, 2.0}, lam[] = {1.0, 0.0};
        check_gaussian("k=2 vertex lambda", 2, mu, var, lam);
    }

    /* mixtures as members (App. I auxiliaries) */
    {
        char err[128];
        mixture a1, a2, tg;
        mixture_parse("0.5:-3:1,0.5:10:1", &a1, err, sizeof err);
        mixture_parse("0.7:-7:1,0.3:9:1", &a2, err, sizeof err);
        mixture_parse("0.6:-6:0.8,0.4:6:0.8", &tg, err, sizeof err);
        const mixture *ms[] = {&a1, &a2, &tg};
        double lo, hi;
        bary_mixture_interval(3, ms, 12.0, &lo, &hi);
        bary_logpdf_fn fn[] = {bary_mixture_logpdf, bary_mixture_logpdf};
        void *ctx[] = {&a1, &a2};
        bary_family *f = bary_family_alloc(2, fn, ctx, lo, hi);
        CHECK(bary_family_k(f) == 2, "mixture family: k");
        CHECK_CLOSE(bary_member_logpdf(f, 1, 0.3), mixture_logpdf(&a2, 0.3), 0, 0, "mixture adapter = mixture_logpdf");
        double e1[] = {1.0, 0.0}, logZ, zerr;
        int st = bary_log_normaliser(f, e1, &logZ, &zerr);
        CHECK(st == GSL_SUCCESS && fabs(logZ) <= 1e-11, "mixture family: log Z(e_1) = 0 (p_1 normalised)");
        double E[2], hbar[2], negent;
        bary_tilted_means(f, e1, E, &logZ, &zerr);
        bary_cross_means(f, bary_mixture_logpdf, &a1, hbar, &negent, &zerr);
        CHECK_CLOSE(E[0], negent, 1e-10, 0, "mixture family: E_{p_e1}[log p_1] = E_{p_1}[log p_1] (cross means)");
        CHECK_CLOSE(E[1], hbar[1], 1e-10, 0, "mixture family: E_{p_e1}[log p_2] = cross mean of p_2 under p_1");
        int below = 1, convex = 1;
        double prev = 0.0, prev2 = 0.0;
        for (int j = 0; j <= 20; j++) {
            double l[2] = {j / 20.0, 1.0 - j / 20.0}, lz;
            bary_log_normaliser(f, l, &lz, NULL);
            below &= lz <= 1e-12;
            if (j >= 2) convex &= lz - 2 * prev + prev2 >= -1e-10;
            prev2 = prev;
            prev = lz;
        }
        CHECK(below, "mixture family: Z(lambda) <= 1 on the simplex (weighted AM-GM)");
        CHECK(convex, "mixture family: log Z convex along the simplex (Prop. 1)");
        double l[2] = {0.6, 0.4}, kl, klerr;
        st = bary_kl(f, bary_mixture_logpdf, &tg, l, &kl, &klerr);
        CHECK(st == GSL_SUCCESS && kl > 0 && isfinite(klerr), "mixture family: KL(nu || p_lambda) > 0 with status");
        double bad[2] = {-0.1, 1.1};
        CHECK(bary_log_normaliser(f, bad, &logZ, &zerr) == GSL_EDOM, "negative lambda -> GSL_EDOM");
        /* the CDF table integrates the density: E[x] by table vs by tilted means */
        bary_cdf_table *t = bary_cdf_tabulate(f, l, 40001);
        double s = 0.0;   /* E[X] = hi - int F over [lo, hi] */
        for (size_t i = 0; i + 1 < t->n; i++) {
            double a = t->x[i], b = t->x[i + 1];
            s += (b - a) / 6.0 * (t->cdf[i] + 4 * bary_cdf_eval(t, 0.5 * (a + b)) + t->cdf[i + 1]);
        }
        bary_logpdf_fn fm[] = {bary_mixture_logpdf, bary_mixture_logpdf, moment1};
        void *cm[] = {&a1, &a2, NULL};
        bary_family *fx = bary_family_alloc(3, fm, cm, lo, hi);
        double l3[] = {0.6, 0.4, 0.0}, E3[3];
        bary_tilted_means(fx, l3, E3, &logZ, &zerr);
        CHECK_CLOSE(hi - s, E3[2], 1e-8, 0, "mixture barycenter: mean from CDF table = mean by quadrature");
        double lz_q;
        bary_log_normaliser(f, l, &lz_q, NULL);
        CHECK_CLOSE(t->logZ, lz_q, 1e-9, 0, "mixture barycenter: log Z table = log Z QAG");
        CHECK_CLOSE(bary_logpdf(f, l, lz_q, 1.0), 0.6 * mixture_logpdf(&a1, 1.0) + 0.4 * mixture_logpdf(&a2, 1.0) - lz_q,
                    1e-14, 0, "bary_logpdf = sum lambda_i log p_i - log Z");
        bary_cdf_table_free(t);
        bary_family_free(fx);
        bary_family_free(f);
    }
    return test_finish();
}
