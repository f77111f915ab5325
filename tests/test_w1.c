/* test_w1: 1-D Wasserstein-1 (the metric of the paper's App. I, Table 6): scipy.stats.wasserstein_distance's
 * documented examples, input preservation, and W1 against an exact CDF (closed forms; n^{-1/2} decay). */
#include "rng.h"
#include "test.h"
#include "w1.h"
#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double norm_cdf(void *ctx, double x) { (void)ctx; return 0.5 * erfc(-x / M_SQRT2); }
static double unif_cdf(void *ctx, double x) { (void)ctx; return x <= 0 ? 0.0 : x >= 1 ? 1.0 : x; }
static double sqrt_fq(double x, void *p) { (void)p; double F = norm_cdf(NULL, x); return sqrt(F * (1.0 - F)); }

int main(void)
{
    gsl_set_error_handler_off();
    char name[200];
    {
        double u[] = {0, 1, 3}, v[] = {5, 6, 8};
        CHECK_CLOSE(w1_samples(u, 3, NULL, v, 3, NULL), 5.0, 1e-15, 0, "scipy: wasserstein_distance([0,1,3],[5,6,8]) = 5");
    }
    {
        double u[] = {0, 1}, v[] = {0, 1}, uw[] = {3, 1}, vw[] = {2, 2};
        CHECK_CLOSE(w1_samples(u, 2, uw, v, 2, vw), 0.25, 1e-15, 0, "scipy: weighted ([0,1],[0,1],[3,1],[2,2]) = 0.25");
    }
    {
        double u[] = {3.4, 3.9, 7.5, 7.8}, v[] = {4.5, 1.4}, uw[] = {1.4, 0.9, 3.1, 7.2}, vw[] = {3.2, 3.5};
        double u0[4], v0[2], uw0[4], vw0[2];
        memcpy(u0, u, sizeof u), memcpy(v0, v, sizeof v), memcpy(uw0, uw, sizeof uw), memcpy(vw0, vw, sizeof vw);
        double d = w1_samples(u, 4, uw, v, 2, vw);
        CHECK_CLOSE(d, 4.0781331438047861, 1e-14, 0, "scipy: weighted unsorted example = 4.0781331438047861");
        CHECK(!memcmp(u, u0, sizeof u) && !memcmp(v, v0, sizeof v) && !memcmp(uw, uw0, sizeof uw) &&
                  !memcmp(vw, vw0, sizeof vw),
              "w1_samples leaves its inputs unmodified");
        CHECK_CLOSE(w1_samples(v, 2, vw, u, 4, uw), d, 1e-15, 0, "w1_samples symmetric");
    }
    {
        double u[] = {1, 2, 2, 5}, v[] = {2, 2, 1, 5};
        CHECK(w1_samples(u, 4, NULL, v, 4, NULL) == 0.0, "same multiset with ties -> 0");
        double v2[] = {2, 3, 3, 6};   /* shift by 1 */
        CHECK_CLOSE(w1_samples(u, 4, NULL, v2, 4, NULL), 1.0, 1e-15, 0, "shift by 1 -> 1");
        double bad[] = {1, -1, 1, 1};
        CHECK(isnan(w1_samples(u, 4, bad, v, 4, NULL)) && isnan(w1_samples(u, 0, NULL, v, 4, NULL)),
              "negative weights / empty sample -> NaN");
        /* unequal sizes: equal to mean |sorted diff| after replication */
        double a[] = {0.5, 2.0}, b[] = {0.5, 0.5, 2.0, 2.0};
        CHECK_CLOSE(w1_samples(a, 2, NULL, b, 4, NULL), 0.0, 1e-15, 0, "replicated sample -> 0");
    }
    /* ---- exact CDF ---- */
    {
        double worst = 0.0;
        for (double a = -3.0; a <= 3.01; a += 0.75) {
            double err;
            int st;
            double got = w1_exact_cdf_err(&a, 1, norm_cdf, NULL, -40.0, 40.0, &err, &st);
            double want = 2.0 * exp(-0.5 * a * a) / sqrt(2 * M_PI) + a * (2.0 * norm_cdf(NULL, a) - 1.0);
            worst = fmax(worst, fabs(got - want));
        }
        snprintf(name, sizeof name, "point mass a vs N(0,1): W1 = E|Z - a| = 2 phi(a) + a(2 Phi(a) - 1), max err %.1e <= 1e-8",
                 worst);
        CHECK(worst <= 1e-8, name);
        double u[] = {0.75, 0.25}, err;
        int st;
        CHECK_CLOSE(w1_exact_cdf_err(u, 2, unif_cdf, NULL, -1.0, 2.0, &err, &st), 0.125, 1e-12, 0,
                    "{0.25, 0.75} vs U(0,1): W1 = 1/8 (kinked CDF, crossings)");
        CHECK(u[0] == 0.75 && u[1] == 0.25, "w1_exact_cdf leaves its input unmodified");
        double one = 0.3;
        /* [lo, hi] = [0.5, 2] is widened to [0.3, 2]: int_{0.3}^{1} (1 - x) dx = 0.245 (the part of the full
         * W1 = 0.29 below lo = 0.3, int_0^0.3 x dx, is the caller's truncation) */
        CHECK_CLOSE(w1_exact_cdf(&one, 1, unif_cdf, NULL, 0.5, 2.0), 0.245, 1e-12, 0,
                    "interval widened to include the samples");
    }
    {
        /* sample vs its own CDF: E W1 ~ c / sqrt(n), c = sqrt(2/pi) int sqrt(F(1-F)) dx (Brownian bridge) */
        gsl_integration_workspace *ws = gsl_integration_workspace_alloc(200);
        gsl_function F = {sqrt_fq, NULL};
        double I, e;
        gsl_integration_qag(&F, -40, 40, 1e-13, 1e-12, 200, GSL_INTEG_GAUSS61, ws, &I, &e);
        gsl_integration_workspace_free(ws);
        double c = sqrt(2.0 / M_PI) * I;
        rng *r = rng_alloc(3, 9);
        size_t ns[3] = {100, 1000, 10000};
        double mean[3];
        int reps = 20, st_ok = 1;
        double maxerr = 0.0;
        for (int s = 0; s < 3; s++) {
            double *x = malloc(ns[s] * sizeof *x), acc = 0.0;
            for (int rep = 0; rep < reps; rep++) {
                rng_gaussian_fill_d(r, x, ns[s]);
                double err;
                int st;
                acc += w1_exact_cdf_err(x, ns[s], norm_cdf, NULL, -40, 40, &err, &st);
                st_ok &= st == GSL_SUCCESS;
                maxerr = fmax(maxerr, err);
            }
            mean[s] = acc / reps;
            free(x);
        }
        rng_free(r);
        double slope = (log(mean[2]) - log(mean[0])) / (log(1e4) - log(1e2));
        snprintf(name, sizeof name, "sample vs own CDF: log-log slope of E W1 over n = 1e2..1e4 is %.3f (-0.5 +- 0.08)",
                 slope);
        CHECK(fabs(slope + 0.5) <= 0.08, name);
        snprintf(name, sizeof name, "sample vs own CDF: sqrt(n) E W1 = %.3f at n = 1e4 vs c = %.3f (15%%)",
                 sqrt(1e4) * mean[2], c);
        CHECK_CLOSE(sqrt(1e4) * mean[2], c, 0, 0.15, name);
        snprintf(name, sizeof name, "quadrature status success, error estimate %.1e <= 1e-9", maxerr);
        CHECK(st_ok && maxerr <= 1e-9, name);
    }
    {
        /* exact-CDF W1 of a large sample vs W1 to another large sample from the same law: both small, close */
        rng *r = rng_alloc(4, 1);
        size_t n = 4000;
        double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        rng_gaussian_fill_d(r, x, n);
        for (size_t i = 0; i < n; i++) y[i] = x[i] + 0.5;   /* shift: W1(x, x + 0.5) = 0.5 exactly */
        CHECK_CLOSE(w1_samples(x, n, NULL, y, n, NULL), 0.5, 1e-12, 0, "W1(x, x + 0.5) = 0.5 for n = 4000");
        free(x), free(y);
        rng_free(r);
    }
    return test_finish();
}
