/* theory_lemma6: measures (does not assume) the claim of Thm 2 / Lemma 6 (paper App. D.1.3, eq. 17) that the
 * reverse SDE driven by the barycenter score sum_i lambda_i grad log p_t^i (exact auxiliary scores) ends at the
 * distribution-level KL barycenter p_lambda = prod p_i^lambda_i / Z of Thm 1.
 *
 * (a) Gaussian auxiliaries, under the VE SDE (sigma = 25, the paper code's) and the OU SDE (the theory's,
 *     dX = -X dt + sqrt(2) dW on [0, 10]). p_t^i = N(alpha m_i, alpha^2 v_i + std^2), so the barycenter score is
 *     affine in x, -(A(t) x - B(t)), and the reverse SDE is linear: its terminal mean m and variance P solve
 *         dm/dtau = (-f - g^2 A) m + g^2 B,   dP/dtau = 2 (-f - g^2 A) P + g^2,   tau = T - t,
 *     integrated with gsl_odeiv2 (rk8pd, tolerance 1e-13) from (i) gamma_T, the barycenter of the diffused laws
 *     at T (Lemma 6's setting, eq. 17) and (ii) the sampler's prior N(0, prior_std^2) (eq. 8). The same linear
 *     map discretised exactly as common/sampler.c does it (1000 Euler-Maruyama steps, float t for the score,
 *     final step = mean) gives the EM law in closed form; Euler-Maruyama SAMPLES (common/sampler.h with
 *     mixture_oracle_model + score_bary) check that recursion, and hence the ODE, by z-scores.
 *     Compared with p_lambda's closed form by KL(p_lambda || terminal law), for lambda_1 = 0, 0.1, ..., 1.
 *     Equal variances: the diffused barycenter IS the barycenter of the diffused laws, so the gap must vanish;
 *     unequal variances: it does not, and the size of the gap is what this program reports.
 * (b) the paper's 1-D mixtures (App. I, REFERENCE.md): aux1 = 0.5 N(-3,1) + 0.5 N(10,1), aux2 = 0.7 N(-7,1) +
 *     0.3 N(9,1), VE(25), the paper's sampler (1000 EM steps, eps 1e-3, last step = mean) driven by the
 *     lambda-weighted exact scores (mixture_oracle_model + score_bary); the terminal samples are compared with
 *     p_lambda (common/barycenter.h, quadrature) by W1 against p_lambda's exact CDF (common/w1.h w1_exact_cdf),
 *     for lambda_1 = 0, 0.1, ..., 1. Two references separate the lemma's gap from everything else: the W1 of
 *     n EXACT samples of p_lambda (inverse CDF) against the same CDF (the Monte-Carlo floor), and the endpoints
 *     lambda_1 in {0, 1}, where the SDE must reproduce the auxiliary itself (discretisation + prior error). The
 *     SDE is run from the sampler's prior N(0, std(1)^2) (eq. 8) and from gamma_T, the barycenter of the diffused
 *     auxiliaries at T (Lemma 6's eq. 17, exact inverse-CDF draws), which removes the prior mismatch.
 * Outputs (in --out): lemma6_gauss.csv, lemma6_mixture.csv (+ .meta). */
#include "barycenter.h"
#include "mixture.h"
#include "rng.h"
#include "sampler.h"
#include "score.h"
#include "sde.h"
#include "th_common.h"
#include "w1.h"
#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>

static const char *usage =
    "usage: theory_lemma6 [--out DIR] [--seed N] [--profile smoke|cpu|paper]\n"
    "Checks Lemma 6 / Thm 2: does the reverse SDE with the lambda-weighted exact auxiliary scores end at the\n"
    "KL barycenter p_lambda? (a) Gaussian auxiliaries under VE(sigma=25) and OU: exact linear moment ODEs\n"
    "(gsl_odeiv2), the exact Euler-Maruyama recursion and EM samples vs p_lambda's closed form;\n"
    "(b) the paper's 1-D mixtures: EM samples vs p_lambda by W1 against its exact CDF.\n"
    "Writes lemma6_gauss.csv and lemma6_mixture.csv (+ .meta) in DIR.\n" TH_USAGE_FLAGS;

/* ---------- (a) Gaussian auxiliaries ---------- */

typedef struct {
    const char *name;
    double m[2], v[2];
} gpair;

/* Barycenter of N(m_i, v_i) with weights lam (App. H.4): precision-weighted. */
static void gauss_bary2(const double *m, const double *v, const double *lam, double *mo, double *vo)
{
    double A = 0, B = 0;
    for (int i = 0; i < 2; i++) {
        A += lam[i] / v[i];
        B += lam[i] * m[i] / v[i];
    }
    *vo = 1.0 / A;
    *mo = B / A;
}

typedef struct {
    const sde *s;
    const gpair *g;
    const double *lam;
} ode_ctx;

/* Barycenter score at time t: s(t, x) = -(A x - B). */
static void bary_AB(const sde *s, const gpair *g, const double *lam, double t, double *A, double *B)
{
    double al = sde_alpha(s, t), sd = sde_std(s, t);
    *A = 0;
    *B = 0;
    for (int i = 0; i < 2; i++) {
        double V = al * al * g->v[i] + sd * sd;
        *A += lam[i] / V;
        *B += lam[i] * al * g->m[i] / V;
    }
}

static int moment_rhs(double tau, const double y[], double dydt[], void *p)
{
    const ode_ctx *c = p;
    double t = c->s->T - tau, A, B;
    if (t < 0) t = 0;
    bary_AB(c->s, c->g, c->lam, t, &A, &B);
    double g = sde_g(c->s, t), f = sde_f_coef(c->s, t);
    double k = -f - g * g * A;
    dydt[0] = k * y[0] + g * g * B;
    dydt[1] = 2.0 * k * y[1] + g * g;
    return GSL_SUCCESS;
}

/* Integrate the moment ODE from tau = 0 (t = T) to tau = T (t = 0); y = (mean, var) in/out. */
static int moment_ode(const sde *s, const gpair *g, const double *lam, double y[2])
{
    ode_ctx c = {s, g, lam};
    gsl_odeiv2_system sys = {moment_rhs, NULL, 2, &c};
    gsl_odeiv2_driver *d = gsl_odeiv2_driver_alloc_y_new(&sys, gsl_odeiv2_step_rk8pd, 1e-6, 1e-13, 1e-13);
    double tau = 0.0;
    int st = gsl_odeiv2_driver_apply(d, &tau, s->T, y);
    gsl_odeiv2_driver_free(d);
    return st;
}

/* The exact law of common/sampler.c's Euler-Maruyama chain for this linear score, started at the prior:
 * same time grid, score evaluated at float(t), last step returns the mean. */
static void em_recursion(const sde *s, const gpair *g, const double *lam, const sampler_opts *o, double *mo,
                         double *vo)
{
    double m = 0.0, P = sde_prior_std(s) * sde_prior_std(s);
    const double dt = (s->T - o->eps) / (o->steps - 1);
    for (int k = 0; k < o->steps; k++) {
        const double t = (k == o->steps - 1) ? o->eps : s->T - k * dt;
        const double tf = (double)(float)t;
        double A, B;
        bary_AB(s, g, lam, tf, &A, &B);
        const double gg = sde_g(s, t), fc = sde_f_coef(s, t);
        const double a = gg * gg * dt, b = -fc * dt, c = sqrt(dt) * gg;
        const double mult = 1.0 - a * A + b;
        m = mult * m + a * B;
        P = mult * mult * P;
        if (!(k == o->steps - 1 && o->final_mean)) P += c * c;
    }
    *mo = m;
    *vo = P;
}

static void part_a(const th_opts *o, int argc, char **argv)
{
    const sde sdes[2] = {sde_ve(25.0), sde_ou(1.0, sqrt(2.0), 10.0)};
    const gpair pairs[2] = {{"equal_var", {-2.0, 3.0}, {1.0, 1.0}}, {"unequal_var", {-2.0, 3.0}, {0.25, 4.0}}};
    const int nlam = 11;
    const size_t nsamp = o->profile == TH_SMOKE ? 4000 : o->profile == TH_CPU ? 20000 : 30000;
    const int em_every = o->profile == TH_SMOKE ? 5 : 1;   /* smoke: EM samples at lambda_1 = 0, .5, 1 only */
    sampler_opts so = sampler_opts_paper();

    io_meta meta;
    th_meta(&meta, argc, argv, o);
    io_meta_set(&meta, "sdes", "%s; %s", sde_name(&sdes[0]), sde_name(&sdes[1]));
    io_meta_set(&meta, "pairs", "equal_var: N(-2,1), N(3,1); unequal_var: N(-2,0.25), N(3,4) (mean, variance)");
    io_meta_set(&meta, "ode", "gsl_odeiv2 rk8pd, epsabs = epsrel = 1e-13, t from T to 0");
    io_meta_set(&meta, "sampler", "Euler-Maruyama, %d steps, eps %g, final step mean; %zu samples, float32", so.steps,
                so.eps, nsamp);
    io_meta_set(&meta, "kl", "KL(p_lambda || terminal law), both Gaussian");
    io_csv *csv = io_csv_open(th_path(o, "lemma6_gauss.csv"),
                              "sde,case,lambda1,m_bary,v_bary,m_ode_gammaT,v_ode_gammaT,kl_ode_gammaT,m_ode_prior,"
                              "v_ode_prior,kl_ode_prior,m_em,v_em,kl_em,kl_ode_prior_vs_em,kl_ode_prior_vs_em_fine,n_samples,m_samp,v_samp,"
                              "z_mean,z_var,kl_samp");
    double max_gap[2][2] = {{0}}, max_ctrl = 0, max_z = 0, max_fine = 0, max_odeem = 0;
    printf("# Lemma 6 (a): Gaussian auxiliaries; gap = KL(p_lambda || law of the reverse SDE at t=0)\n");
    printf("%-22s %-12s %6s %12s %12s %12s %12s %8s\n", "sde", "case", "lam1", "KL_ode(gT)", "KL_ode(prior)",
           "KL_EM", "KL_samples", "max|z|");
    for (int si = 0; si < 2; si++) {
        const sde *s = &sdes[si];
        for (int pi = 0; pi < 2; pi++) {
            const gpair *g = &pairs[pi];
            mixture mx[2];
            mixture_oracle orc[2];
            score_model sm[2];
            const score_model *smp[2] = {&sm[0], &sm[1]};
            for (int i = 0; i < 2; i++) {
                mx[i] = (mixture){.k = 1, .w = {1.0}, .mu = {g->m[i]}, .sd = {sqrt(g->v[i])}};
                orc[i] = (mixture_oracle){mx[i], *s};
                sm[i] = mixture_oracle_model(&orc[i], i ? "aux2" : "aux1");
            }
            double lam0[2] = {0.5, 0.5};
            score_bary *sb = score_bary_alloc(2, smp, lam0);
            score_model bm = score_bary_model(sb);
            float *x = malloc(nsamp * sizeof *x);
            for (int li = 0; li < nlam; li++) {
                double lam[2] = {li / (double)(nlam - 1), 1.0 - li / (double)(nlam - 1)};
                double mb, vb;
                gauss_bary2(g->m, g->v, lam, &mb, &vb);
                /* (i) start at gamma_T = barycenter of the diffused laws at T */
                double aT = sde_alpha(s, s->T), sT = sde_std(s, s->T), mT[2], vT[2], y[2];
                for (int i = 0; i < 2; i++) {
                    mT[i] = aT * g->m[i];
                    vT[i] = aT * aT * g->v[i] + sT * sT;
                }
                gauss_bary2(mT, vT, lam, &y[0], &y[1]);
                if (moment_ode(s, g, lam, y) != GSL_SUCCESS) LOG_FATAL("moment ODE failed");
                double kl_g = th_kl_gauss(mb, vb, y[0], y[1]);
                /* (ii) start at the prior */
                double yp[2] = {0.0, sde_prior_std(s) * sde_prior_std(s)};
                if (moment_ode(s, g, lam, yp) != GSL_SUCCESS) LOG_FATAL("moment ODE failed");
                double kl_p = th_kl_gauss(mb, vb, yp[0], yp[1]);
                double me, ve;
                em_recursion(s, g, lam, &so, &me, &ve);
                double kl_e = th_kl_gauss(mb, vb, me, ve), kl_pe = th_kl_gauss(yp[0], yp[1], me, ve);
                /* the EM law with 100x more steps must approach the ODE's (first order): checks the ODE
                 * independently of gsl_odeiv2 */
                sampler_opts fine = so;
                fine.steps = 100 * (so.steps - 1) + 1;
                fine.eps = 1e-6;
                double mf, vf;
                em_recursion(s, g, lam, &fine, &mf, &vf);
                double kl_pf = th_kl_gauss(yp[0], yp[1], mf, vf);
                if (kl_pf > max_fine) max_fine = kl_pf;
                if (kl_pe > max_odeem) max_odeem = kl_pe;
                /* EM samples */
                double ms = NAN, vs = NAN, zm = NAN, zv = NAN, kl_s = NAN;
                size_t ns = 0;
                if (li % em_every == 0) {
                    ns = nsamp;
                    score_bary_set_lambda(sb, lam);
                    rng *r = rng_alloc(o->seed, rng_stream_id(0x6c656d61ull, (uint64_t)(si * 100 + pi * 20 + li)));
                    sampler_em(s, &bm, ns, x, &so, r);
                    rng_free(r);
                    double acc = 0, acc2 = 0;
                    for (size_t j = 0; j < ns; j++) acc += x[j];
                    ms = acc / ns;
                    for (size_t j = 0; j < ns; j++) acc2 += (x[j] - ms) * (x[j] - ms);
                    vs = acc2 / (ns - 1);
                    /* z-scores against the exact EM law: se(mean) = sqrt(v/n), se(var) = v sqrt(2/(n-1)) */
                    zm = (ms - me) / sqrt(ve / ns);
                    zv = (vs - ve) / (ve * sqrt(2.0 / (ns - 1)));
                    kl_s = th_kl_gauss(mb, vb, ms, vs);
                    if (fabs(zm) > max_z) max_z = fabs(zm);
                    if (fabs(zv) > max_z) max_z = fabs(zv);
                }
                io_csv_row(csv, "%s,%s,%.2f,%.17g,%.17g,%.17g,%.17g,%.6e,%.17g,%.17g,%.6e,%.17g,%.17g,%.6e,%.6e,%.6e,%zu,%.10g,"
                                "%.10g,%.4f,%.4f,%.6e",
                           si ? "OU" : "VE", g->name, lam[0], mb, vb, y[0], y[1], kl_g, yp[0], yp[1], kl_p, me, ve,
                           kl_e, kl_pe, kl_pf, ns, ms, vs, zm, zv, kl_s);
                if (kl_g > max_gap[si][pi]) max_gap[si][pi] = kl_g;
                if ((li == 0 || li == nlam - 1) && kl_g > max_ctrl) max_ctrl = kl_g;
                char zbuf[16] = "-";
                if (ns) snprintf(zbuf, sizeof zbuf, "%.2f", fmax(fabs(zm), fabs(zv)));
                printf("%-22s %-12s %6.2f %12.4e %12.4e %12.4e %12.4e %8s\n", sde_name(s), g->name, lam[0], kl_g, kl_p,
                       kl_e, kl_s, zbuf);
            }
            free(x);
            score_bary_free(sb);
        }
    }
    printf("lemma6_gauss: max KL gap (ODE from gamma_T): VE equal_var %.3e, VE unequal_var %.3e, OU equal_var %.3e, "
           "OU unequal_var %.3e\n",
           max_gap[0][0], max_gap[0][1], max_gap[1][0], max_gap[1][1]);
    printf("lemma6_gauss: control lambda_1 in {0,1} (must be 0 up to ODE error): max KL %.3e\n", max_ctrl);
    printf("lemma6_gauss: EM samples vs exact EM law: max |z| = %.2f\n", max_z);
    printf("lemma6_gauss: ODE vs EM law: max KL %.3e at %d steps, %.3e at %d steps (ODE check)\n", max_odeem,
           so.steps, max_fine, 100 * (so.steps - 1) + 1);
    io_meta_set(&meta, "max_kl_gap_ve_equal", "%.6e", max_gap[0][0]);
    io_meta_set(&meta, "max_kl_gap_ve_unequal", "%.6e", max_gap[0][1]);
    io_meta_set(&meta, "max_kl_gap_ou_equal", "%.6e", max_gap[1][0]);
    io_meta_set(&meta, "max_kl_gap_ou_unequal", "%.6e", max_gap[1][1]);
    io_meta_set(&meta, "max_kl_control", "%.6e", max_ctrl);
    io_meta_set(&meta, "max_abs_z", "%.3f", max_z);
    io_meta_set(&meta, "max_kl_ode_vs_em", "%.6e", max_odeem);
    io_meta_set(&meta, "max_kl_ode_vs_em_fine", "%.6e", max_fine);
    io_csv_commit(csv, &meta);
    io_meta_free(&meta);
}

/* ---------- (b) the paper's 1-D mixtures ---------- */

static double cdf_eval_cb(void *ctx, double x) { return bary_cdf_eval((const bary_cdf_table *)ctx, x); }

static void part_b(const th_opts *o, int argc, char **argv)
{
    const sde s = sde_ve(25.0);
    char err[256];
    mixture aux[2];
    if (mixture_parse("0.5:-3:1,0.5:10:1", &aux[0], err, sizeof err) ||
        mixture_parse("0.7:-7:1,0.3:9:1", &aux[1], err, sizeof err))
        LOG_FATAL("mixture spec: %s", err);
    const size_t n = o->profile == TH_SMOKE ? 2000 : o->profile == TH_CPU ? 10000 : 15000;
    const int nlam = 11, every = o->profile == TH_SMOKE ? 5 : 1;
    sampler_opts so = sampler_opts_paper();
    mixture_oracle orc[2] = {{aux[0], s}, {aux[1], s}};
    score_model sm[2] = {mixture_oracle_model(&orc[0], "aux1"), mixture_oracle_model(&orc[1], "aux2")};
    const score_model *smp[2] = {&sm[0], &sm[1]};
    double l0[2] = {0.5, 0.5};
    score_bary *sb = score_bary_alloc(2, smp, l0);
    score_model bm = score_bary_model(sb);
    bary_logpdf_fn fn[2] = {bary_mixture_logpdf, bary_mixture_logpdf};
    void *ctx[2] = {&aux[0], &aux[1]};
    const mixture *mp[2] = {&aux[0], &aux[1]};
    double lo, hi;
    bary_mixture_interval(2, mp, 12.0, &lo, &hi);
    bary_family *fam = bary_family_alloc(2, fn, ctx, lo, hi);
    /* gamma_T: the barycenter of the diffused auxiliaries at t = T, Lemma 6's initial law (eq. 17) */
    mixture auxT[2] = {mixture_diffuse(&aux[0], &s, s.T), mixture_diffuse(&aux[1], &s, s.T)};
    void *ctxT[2] = {&auxT[0], &auxT[1]};
    const mixture *mpT[2] = {&auxT[0], &auxT[1]};
    double loT, hiT;
    bary_mixture_interval(2, mpT, 12.0, &loT, &hiT);
    bary_family *famT = bary_family_alloc(2, fn, ctxT, loT, hiT);

    io_meta meta;
    th_meta(&meta, argc, argv, o);
    io_meta_set(&meta, "sde", "%s", sde_name(&s));
    io_meta_set(&meta, "aux", "0.5:-3:1,0.5:10:1 ; 0.7:-7:1,0.3:9:1 (exact scores, raw coordinates)");
    io_meta_set(&meta, "sampler", "Euler-Maruyama %d steps, eps %g, final step mean, float32; %zu samples", so.steps,
                so.eps, n);
    io_meta_set(&meta, "reference", "p_lambda by quadrature (barycenter.h), CDF table 20001 points; W1 by w1_exact_cdf");
    io_csv *csv = io_csv_open(th_path(o, "lemma6_mixture.csv"),
                              "lambda1,n,w1_sde,w1_sde_gammaT,w1_exact_floor,w1_gap,w1_gap_gammaT,mean_samples,"
                              "mean_samples_gammaT,mean_bary,sd_samples,sd_samples_gammaT,sd_bary,logZ");
    float *xf = malloc(n * sizeof *xf);
    double *x = malloc(n * sizeof *x);
    double ctrl = 0, ctrl_g = 0, max_gap = 0, max_floor = 0, lam_at = NAN;
    printf("# Lemma 6 (b): paper 1-D mixtures, VE(25), %d EM steps, %zu samples; W1 to p_lambda's exact CDF\n",
           so.steps, n);
    printf("%6s %12s %12s %12s %10s %10s %10s %10s %10s\n", "lam1", "W1(prior)", "W1(gammaT)", "W1 floor", "mean_prior",
           "mean_gT", "mean_p", "sd_prior", "sd_p");
    for (int li = 0; li < nlam; li += every) {
        double lam[2] = {li / (double)(nlam - 1), 1.0 - li / (double)(nlam - 1)};
        bary_cdf_table *tab = bary_cdf_tabulate(fam, lam, 20001);
        score_bary_set_lambda(sb, lam);
        rng *r = rng_alloc(o->seed, rng_stream_id(0x6c656d62ull, (uint64_t)li));
        sampler_em(&s, &bm, n, xf, &so, r);
        rng_free(r);
        double ms = 0, vs = 0;
        for (size_t j = 0; j < n; j++) {
            x[j] = xf[j];
            ms += x[j] / n;
        }
        for (size_t j = 0; j < n; j++) vs += (x[j] - ms) * (x[j] - ms) / (n - 1);
        double w1s = w1_exact_cdf(x, n, cdf_eval_cb, tab, lo, hi);
        /* the same SDE started from gamma_T (exact inverse-CDF draws) instead of the prior N(0, std(T)^2) */
        bary_cdf_table *tabT = bary_cdf_tabulate(famT, lam, 20001);
        rng *r3 = rng_alloc(o->seed, rng_stream_id(0x6c656d64ull, (uint64_t)li));
        for (size_t j = 0; j < n; j++) xf[j] = (float)bary_cdf_quantile(tabT, rng_uniform_pos(r3));
        sampler_em_from(&s, &bm, n, xf, &so, r3);
        rng_free(r3);
        bary_cdf_table_free(tabT);
        double mg = 0, vg = 0;
        for (size_t j = 0; j < n; j++) {
            x[j] = xf[j];
            mg += x[j] / n;
        }
        for (size_t j = 0; j < n; j++) vg += (x[j] - mg) * (x[j] - mg) / (n - 1);
        double w1g = w1_exact_cdf(x, n, cdf_eval_cb, tab, lo, hi);
        /* Monte-Carlo floor: n exact draws of p_lambda */
        rng *r2 = rng_alloc(o->seed, rng_stream_id(0x6c656d63ull, (uint64_t)li));
        for (size_t j = 0; j < n; j++) x[j] = bary_cdf_quantile(tab, rng_uniform_pos(r2));
        rng_free(r2);
        double w1f = w1_exact_cdf(x, n, cdf_eval_cb, tab, lo, hi);
        bary_density bp = {fam, lam, tab->logZ};
        double mb, vb;
        th_moments(bary_density_logpdf, &bp, lo, hi, NULL, 0, &mb, &vb);
        io_csv_row(csv, "%.2f,%zu,%.6e,%.6e,%.6e,%.6e,%.6e,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.10g", lam[0], n, w1s, w1g, w1f,
                   w1s - w1f, w1g - w1f, ms, mg, mb, sqrt(vs), sqrt(vg), sqrt(vb), tab->logZ);
        printf("%6.2f %12.4e %12.4e %12.4e %10.4f %10.4f %10.4f %10.4f %10.4f\n", lam[0], w1s, w1g, w1f, ms, mg, mb,
               sqrt(vs), sqrt(vb));
        if (li == 0 || li == nlam - 1) {
            ctrl = fmax(ctrl, w1s);
            ctrl_g = fmax(ctrl_g, w1g);
        } else if (w1g > max_gap) {
            max_gap = w1g;
            lam_at = lam[0];
        }
        max_floor = fmax(max_floor, w1f);
        bary_cdf_table_free(tab);
    }
    printf("lemma6_mixture: W1(SDE output, p_lambda): endpoint controls (lambda_1 in {0,1}) max %.4f from the prior, "
           "%.4f from gamma_T; interior max %.4f (from gamma_T) at lambda_1 = %.1f; Monte-Carlo floor max %.4f\n",
           ctrl, ctrl_g, max_gap, lam_at, max_floor);
    io_meta_set(&meta, "w1_control_gammaT_max", "%.6e", ctrl_g);
    io_meta_set(&meta, "w1_control_max", "%.6e", ctrl);
    io_meta_set(&meta, "w1_interior_max", "%.6e", max_gap);
    io_meta_set(&meta, "w1_floor_max", "%.6e", max_floor);
    io_csv_commit(csv, &meta);
    io_meta_free(&meta);
    free(x);
    free(xf);
    bary_family_free(fam);
    bary_family_free(famT);
    score_bary_free(sb);
}

int main(int argc, char **argv)
{
    th_opts o;
    th_parse(argc, argv, &o, usage);
    gsl_set_error_handler_off();
    double t0 = log_now();
    part_a(&o, argc, argv);
    part_b(&o, argc, argv);
    log_info("done in %.1f s", log_now() - t0);
    return 0;
}
