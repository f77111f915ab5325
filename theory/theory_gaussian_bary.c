/* theory_gaussian_bary: checks Thm 1 (the distribution-level KL barycenter is p_lambda = prod p_i^lambda_i / Z)
 * in the Gaussian case of App. H.4, where p_lambda is Gaussian with 1/var = sum lambda_i / var_i and
 * mean = var sum lambda_i mu_i / var_i (common/barycenter.h: bary_gaussian, bary_gaussian_log_normaliser).
 * The closed form is compared with GSL quadrature of prod p_i^lambda_i (bary_log_normaliser, bary_logpdf;
 * mean and variance by quadrature of x p_lambda, KL between the two laws by bary_kl) for a sweep of lambda_1,
 * for equal variances, unequal variances and a k = 3 case; and Figure 11 (two unimodal Gaussians, the
 * barycenter PDF at lambda_1 = 0.5 and the lambda_1 = 1 and 0 curves) is re-drawn from a CSV of densities.
 * The paper does not state Figure 11's parameters; we use N(-3, 1) and N(3, 1) (the text's "origin = peak of
 * ambiguity" reading) and also draw the unequal-variance pair.
 * Outputs (in --out): gaussian_bary.csv (sweep), gaussian_bary_fig11.csv (densities) (+ .meta). */
#include "barycenter.h"
#include "mixture.h"
#include "th_common.h"

static const char *usage =
    "usage: theory_gaussian_bary [--out DIR] [--seed N] [--profile smoke|cpu|paper]\n"
    "Thm 1 / App. H.4: closed-form Gaussian KL barycenter vs GSL quadrature of prod p_i^lambda_i (log Z, mean,\n"
    "variance, KL between the two) over a lambda sweep; re-draws Figure 11 from gaussian_bary_fig11.csv.\n"
    "Writes gaussian_bary.csv and gaussian_bary_fig11.csv (+ .meta) in DIR. (No randomness: --seed is recorded\n"
    "only.)\n" TH_USAGE_FLAGS;

typedef struct {
    const char *name;
    int k;
    double mu[3], var[3];
} gcase;

typedef struct {
    double mu, var;
} gauss1;

static double gauss_log(void *ctx, double x)
{
    const gauss1 *g = ctx;
    double d = x - g->mu;
    return -0.5 * d * d / g->var - 0.5 * log(2.0 * M_PI * g->var);
}

int main(int argc, char **argv)
{
    th_opts o;
    th_parse(argc, argv, &o, usage);
    gsl_set_error_handler_off();
    const gcase cases[3] = {{"equal_var", 2, {-3.0, 3.0, 0}, {1.0, 1.0, 0}},
                            {"unequal_var", 2, {-2.0, 3.0, 0}, {0.25, 4.0, 0}},
                            {"k3", 3, {-4.0, 0.0, 5.0}, {0.25, 4.0, 1.0}}};
    const int nlam = o.profile == TH_SMOKE ? 5 : 21;

    io_meta meta;
    th_meta(&meta, argc, argv, &o);
    io_meta_set(&meta, "cases", "equal_var N(-3,1),N(3,1); unequal_var N(-2,0.25),N(3,4); k3 N(-4,0.25),N(0,4),"
                                "N(5,1) with lambda_2 = lambda_3 = (1-lambda_1)/2 (mean, variance)");
    io_meta_set(&meta, "quadrature", "barycenter.h (GSL QAG per panel, epsabs 1e-13, epsrel 1e-11) on "
                                     "[min mu - 12 sd, max mu + 12 sd]; moments by GSL QAGP");
    io_csv *csv = io_csv_open(th_path(&o, "gaussian_bary.csv"),
                              "case,k,lambda1,lambda2,lambda3,mu_closed,var_closed,logZ_closed,mu_quad,var_quad,"
                              "logZ_quad,logZ_abserr,err_mu,relerr_var,err_logZ,kl_closed_vs_quad,kl_abserr,"
                              "kl_gauss_moments");
    double max_mu = 0, max_var = 0, max_logZ = 0, max_kl = 0;
    printf("# Thm 1 / App. H.4: closed-form Gaussian barycenter vs quadrature of prod p_i^lambda_i\n");
    printf("%-12s %6s %12s %12s %12s %12s %12s\n", "case", "lam1", "mu", "var", "|dmu|", "|dvar|/var", "KL");
    for (int ci = 0; ci < 3; ci++) {
        const gcase *c = &cases[ci];
        mixture mx[3];
        const mixture *mp[3];
        bary_logpdf_fn fn[3];
        void *ctx[3];
        for (int i = 0; i < c->k; i++) {
            mx[i] = (mixture){.k = 1, .w = {1.0}, .mu = {c->mu[i]}, .sd = {sqrt(c->var[i])}};
            mp[i] = &mx[i];
            fn[i] = bary_mixture_logpdf;
            ctx[i] = &mx[i];
        }
        double lo, hi;
        bary_mixture_interval((size_t)c->k, mp, 12.0, &lo, &hi);
        bary_family *f = bary_family_alloc((size_t)c->k, fn, ctx, lo, hi);
        for (int li = 0; li < nlam; li++) {
            double l1 = li / (double)(nlam - 1);
            double lam[3] = {l1, 1.0 - l1, 0.0};
            if (c->k == 3) lam[1] = lam[2] = 0.5 * (1.0 - l1);
            double mu_c, var_c, mu_q, var_q, logZ_q, logZ_err, kl, kl_err;
            bary_gaussian((size_t)c->k, c->mu, c->var, lam, &mu_c, &var_c);
            double logZ_c = bary_gaussian_log_normaliser((size_t)c->k, c->mu, c->var, lam);
            int st = bary_log_normaliser(f, lam, &logZ_q, &logZ_err);
            if (st) log_info("%s lambda1=%g: log Z quadrature status %d", c->name, l1, st);
            bary_density pc = {f, lam, logZ_q};
            double bp[3] = {mu_c - 8 * sqrt(var_c), mu_c, mu_c + 8 * sqrt(var_c)};
            th_moments(bary_density_logpdf, &pc, lo, hi, bp, 3, &mu_q, &var_q);
            gauss1 g = {mu_c, var_c};
            st = bary_kl(f, gauss_log, &g, lam, &kl, &kl_err);
            if (st) log_info("%s lambda1=%g: KL quadrature status %d", c->name, l1, st);
            double kl_m = th_kl_gauss(mu_c, var_c, mu_q, var_q);
            double e_mu = fabs(mu_q - mu_c), e_var = fabs(var_q - var_c) / var_c, e_lz = fabs(logZ_q - logZ_c);
            io_csv_row(csv, "%s,%d,%.4f,%.4f,%.4f,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.3e,%.3e,%.3e,%.3e,%.3e,%.3e,%.3e",
                       c->name, c->k, lam[0], lam[1], lam[2], mu_c, var_c, logZ_c, mu_q, var_q, logZ_q, logZ_err, e_mu,
                       e_var, e_lz, kl, kl_err, kl_m);
            printf("%-12s %6.3f %12.6f %12.6f %12.3e %12.3e %12.3e\n", c->name, l1, mu_c, var_c, e_mu, e_var, kl);
            max_mu = fmax(max_mu, e_mu);
            max_var = fmax(max_var, e_var);
            max_logZ = fmax(max_logZ, e_lz);
            max_kl = fmax(max_kl, fabs(kl));
        }
        bary_family_free(f);
    }
    double max_err = fmax(fmax(max_mu, max_var), fmax(max_logZ, max_kl));
    printf("gaussian_bary: max |mean err| %.3e, max rel var err %.3e, max |logZ err| %.3e, max |KL| %.3e\n", max_mu,
           max_var, max_logZ, max_kl);
    printf("gaussian_bary: max error %.3e\n", max_err);
    io_meta_set(&meta, "max_err_mean", "%.3e", max_mu);
    io_meta_set(&meta, "max_relerr_var", "%.3e", max_var);
    io_meta_set(&meta, "max_err_logZ", "%.3e", max_logZ);
    io_meta_set(&meta, "max_abs_kl", "%.3e", max_kl);
    io_meta_set(&meta, "max_err", "%.3e", max_err);
    io_csv_commit(csv, &meta);
    io_meta_free(&meta);

    /* Figure 11: densities on a grid; the lambda_1 = 0.5 barycenter both in closed form and by quadrature */
    io_meta fm;
    th_meta(&fm, argc, argv, &o);
    io_meta_set(&fm, "figure", "paper Figure 11 (App. H.4); parameters not given in the paper: equal_var pair "
                               "N(-3,1), N(3,1); unequal pair N(-2,0.25), N(3,4)");
    io_csv *fc = io_csv_open(th_path(&o, "gaussian_bary_fig11.csv"),
                             "x,eq_p_lam1_1,eq_p_lam1_0,eq_bary_0.5_closed,eq_bary_0.5_quad,uneq_p_lam1_1,uneq_p_lam1_0,"
                             "uneq_bary_0.5_closed,uneq_bary_0.5_quad");
    const int ngrid = o.profile == TH_SMOKE ? 161 : 801;
    double fig_max = 0;
    bary_family *fam[2];
    mixture fmx[2][2];
    double flogZ[2];
    double half[2] = {0.5, 0.5};
    double fmu[2], fvar[2];
    for (int ci = 0; ci < 2; ci++) {
        const gcase *c = &cases[ci];
        bary_logpdf_fn fn[2] = {bary_mixture_logpdf, bary_mixture_logpdf};
        void *ctx[2];
        const mixture *mp[2];
        for (int i = 0; i < 2; i++) {
            fmx[ci][i] = (mixture){.k = 1, .w = {1.0}, .mu = {c->mu[i]}, .sd = {sqrt(c->var[i])}};
            ctx[i] = &fmx[ci][i];
            mp[i] = &fmx[ci][i];
        }
        double lo, hi;
        bary_mixture_interval(2, mp, 12.0, &lo, &hi);
        fam[ci] = bary_family_alloc(2, fn, ctx, lo, hi);
        bary_log_normaliser(fam[ci], half, &flogZ[ci], NULL);
        bary_gaussian(2, c->mu, c->var, half, &fmu[ci], &fvar[ci]);
    }
    for (int j = 0; j < ngrid; j++) {
        double x = -8.0 + 16.0 * j / (ngrid - 1);
        double v[8];
        for (int ci = 0; ci < 2; ci++) {
            gauss1 g = {fmu[ci], fvar[ci]};
            v[4 * ci + 0] = mixture_pdf(&fmx[ci][0], x);
            v[4 * ci + 1] = mixture_pdf(&fmx[ci][1], x);
            v[4 * ci + 2] = exp(gauss_log(&g, x));
            v[4 * ci + 3] = exp(bary_logpdf(fam[ci], half, flogZ[ci], x));
            fig_max = fmax(fig_max, fabs(v[4 * ci + 2] - v[4 * ci + 3]));
        }
        io_csv_row(fc, "%.6f,%.10e,%.10e,%.10e,%.10e,%.10e,%.10e,%.10e,%.10e", x, v[0], v[1], v[2], v[3], v[4], v[5],
                   v[6], v[7]);
    }
    for (int ci = 0; ci < 2; ci++) bary_family_free(fam[ci]);
    printf("gaussian_bary_fig11: lambda_1 = 0.5 barycenter N(%.4f, %.4f) (equal var), N(%.4f, %.4f) (unequal var); "
           "max |closed - quadrature| density on the grid %.3e\n",
           fmu[0], fvar[0], fmu[1], fvar[1], fig_max);
    io_meta_set(&fm, "max_abs_density_diff", "%.3e", fig_max);
    io_csv_commit(fc, &fm);
    io_meta_free(&fm);
    return 0;
}
