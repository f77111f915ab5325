/* theory_rates: numerical check of Thm 4 (ScoreFusion's sample complexity, TV(nu, nu_hat_P) <~ (sigma+1) eps_1 +
 * sigma sqrt(k) O(T~^{1/4}) + O(n^{-1/4}) + SE) and of the T~ trade-off discussed after it (§3.2, §4).
 * The auxiliary scores are EXACT (the analytic scores of the VE-diffused mixtures, sigma = 25, the paper code's
 * SDE), so SE's score term is zero and what is measured is the calibration itself: lambda_hat_n = the exact
 * minimiser on the simplex (common/calib.h calib_qp_simplex) of the empirical calibration loss (eq. 10 with the
 * paper code's weighting std(t)^2) built from n target samples, one (t, z) draw per sample, t ~ U[eps T~, T~],
 * eps = 1e-3. The fitted model is the distribution-level barycenter p_lambda_hat (the Lemma 6 idealisation;
 * theory_lemma6 measures how far the SDE output is from it), and its error is TV(nu, p_lambda_hat) and
 * KL(nu || p_lambda_hat) by GSL quadrature (common/barycenter.h).
 * Cases: "planted": nu = p_lambda0, lambda0 = (0.6, 0.4), a barycenter of the auxiliaries (so eps_1 -> 0 as
 * T~ -> 0); "mixture": the paper's target 0.6 N(-6,.8^2) + 0.4 N(6,.8^2) (App. I), raw coordinates.
 * aux1 = 0.5 N(-3,1) + 0.5 N(10,1), aux2 = 0.7 N(-7,1) + 0.3 N(9,1).
 * (1) rates: n = 2^4 ... 2^14, many repeats; the n = infinity value lambda_inf (the minimiser of the population
 *     loss at the same T~) is computed by deterministic quadrature over (x0, t, z) in double, with an error
 *     estimate from halving the x0 panels; log-log slopes of TV(p_lambda_hat, p_lambda_inf), of the excess TV and of |lambda_hat -
 *     lambda_inf| vs n are printed next to the -1/4 of Thm 4's bound.
 * (2) T~ trade-off: T~ from 1e-6 to 1 (half-decade grid), fixed n, lambda_hat's mean and variance over repeats,
 *     TV / KL to the target, lambda_inf(T~) (bias), in float32 (scores as a network produces them, x_t formed
 *     in float32 as common/dsm.c does) and float64 (the same draws, everything in double).
 * Outputs (in --out): rates_n.csv, rates_ttilde.csv (+ .meta). */
#include "barycenter.h"
#include "calib.h"
#include "mixture.h"
#include "rng.h"
#include "score.h"
#include "sde.h"
#include "th_common.h"

static const char *usage =
    "usage: theory_rates [--out DIR] [--seed N] [--profile smoke|cpu|paper]\n"
    "Thm 4: error of the ScoreFusion weights fitted on n target samples with exact auxiliary scores, TV and KL\n"
    "between the target and p_lambda_hat vs n (log-log slope vs the n^{-1/4} bound), for a planted barycenter\n"
    "target and the paper's 1-D mixture; and the T~ trade-off (T~ = 1e-6 ... 1) in float32 and float64.\n"
    "Writes rates_n.csv and rates_ttilde.csv (+ .meta) in DIR.\n" TH_USAGE_FLAGS;

#define EPS_T 1e-3

typedef struct {
    const char *name;
    int planted;
    mixture mix;                 /* target when !planted */
    double lam0[2], logZ0;       /* target when planted */
    bary_cdf_table *cdf;         /* planted: inverse-CDF sampler */
} tcase;

typedef struct {
    sde s;
    mixture aux[2];
    mixture_oracle orc[2];
    score_model sm[2];
    bary_family *fam;
    double lo, hi;
} setup;

static setup S;

static double target_logp(void *ctx, double x)
{
    const tcase *c = ctx;
    return c->planted ? bary_logpdf(S.fam, c->lam0, c->logZ0, x) : mixture_logpdf(&c->mix, x);
}

static void draw_target(const tcase *c, rng *r, size_t n, double *x)
{
    if (!c->planted) {
        mixture_sample(&c->mix, r, x, n);
        return;
    }
    for (size_t i = 0; i < n; i++) x[i] = bary_cdf_quantile(c->cdf, rng_uniform_pos(r));
}

typedef struct {
    size_t cap;
    double *x0, *t, *z;
    float *xf, *tf, *sf, *zf, *xtf, *s1, *s2;
} work;

static void work_init(work *w, size_t cap)
{
    w->cap = cap;
    w->x0 = malloc(cap * sizeof(double));
    w->t = malloc(cap * sizeof(double));
    w->z = malloc(cap * sizeof(double));
    w->xf = malloc(cap * sizeof(float));
    w->tf = malloc(cap * sizeof(float));
    w->sf = malloc(cap * sizeof(float));
    w->zf = malloc(cap * sizeof(float));
    w->xtf = malloc(cap * sizeof(float));
    w->s1 = malloc(cap * sizeof(float));
    w->s2 = malloc(cap * sizeof(float));
    if (!w->x0 || !w->t || !w->z || !w->xf || !w->tf || !w->sf || !w->zf || !w->xtf || !w->s1 || !w->s2)
        LOG_FATAL("out of memory");
}

static void work_free(work *w)
{
    free(w->x0); free(w->t); free(w->z); free(w->xf); free(w->tf); free(w->sf); free(w->zf); free(w->xtf);
    free(w->s1); free(w->s2);
}

/* Add n calibration draws (x0 ~ nu, t ~ U[eps T~, T~], z ~ N(0,1)) to q32 (float32 path: x_t, t, std, z and the
 * scores in float32 exactly as common/dsm.c + the score_model interface do it) and/or q64 (the same draws in
 * double, scores by mixture_score in double; the means are merged by the same rule as calib_quad_add). */
static void add_draws(const tcase *c, double ttilde, size_t n, rng *r, work *w, calib_quad *q32, calib_quad *q64)
{
    LOG_CHECK(n <= w->cap, "work too small");
    draw_target(c, r, n, w->x0);
    for (size_t i = 0; i < n; i++) {
        w->t[i] = EPS_T * ttilde + (ttilde - EPS_T * ttilde) * rng_uniform(r);
        w->z[i] = rng_gaussian(r);
    }
    if (q32) {
        for (size_t i = 0; i < n; i++) {
            w->xf[i] = (float)w->x0[i];
            w->tf[i] = (float)w->t[i];
            w->sf[i] = (float)sde_std(&S.s, w->t[i]);
            w->zf[i] = (float)w->z[i];
            w->xtf[i] = (float)sde_alpha(&S.s, w->t[i]) * w->xf[i] + w->sf[i] * w->zf[i];
        }
        score_eval(&S.sm[0], n, w->tf, 1, w->xtf, w->s1);
        score_eval(&S.sm[1], n, w->tf, 1, w->xtf, w->s2);
        const float *sp[2] = {w->s1, w->s2};
        calib_quad_add(q32, n, 1, sp, w->sf, w->zf);
    }
    if (q64) {
        double G[4] = {0}, b[2] = {0}, cc = 0;
        for (size_t i = 0; i < n; i++) {
            double sd = sde_std(&S.s, w->t[i]), xt = sde_alpha(&S.s, w->t[i]) * w->x0[i] + sd * w->z[i];
            double s[2];
            for (int a = 0; a < 2; a++) {
                mixture md = mixture_diffuse(&S.aux[a], &S.s, w->t[i]);
                s[a] = mixture_score(&md, xt);
            }
            cc += w->z[i] * w->z[i];
            for (int a = 0; a < 2; a++) {
                b[a] -= sd * s[a] * w->z[i];
                for (int bb = 0; bb < 2; bb++) G[a * 2 + bb] += sd * sd * s[a] * s[bb];
            }
        }
        /* merge (count-weighted means), the rule calib_quad_merge uses */
        double tot = q64->count + n, wo = q64->count / tot, wn = 1.0 / tot;
        for (int a = 0; a < 2; a++) {
            q64->b[a] = wo * q64->b[a] + wn * b[a];
            for (int bb = 0; bb < 2; bb++) q64->G[a * 2 + bb] = wo * q64->G[a * 2 + bb] + wn * G[a * 2 + bb];
        }
        q64->c = wo * q64->c + wn * cc;
        q64->count = tot;
    }
}

static void solve(const calib_quad *q, double *lam)
{
    double gap;
    int st = calib_qp_simplex(q, lam, &gap);
    if (st) log_info("calib_qp_simplex status %d (gap %.3g)", st, gap);
}

typedef struct {
    double lam[2], logZ;
} bary_at;

static double bary_at_logp(void *ctx, double x)
{
    const bary_at *b = ctx;
    return bary_logpdf(S.fam, b->lam, b->logZ, x);
}

/* TV(nu, p_lam), KL(nu || p_lam), and (if ref) TV(p_lam, p_ref). */
static void errors(tcase *c, const double *lam, const bary_at *ref, double *tv, double *kl, double *tv_ref)
{
    bary_at b = {{lam[0], lam[1]}, 0};
    bary_log_normaliser(S.fam, lam, &b.logZ, NULL);
    *tv = th_tv(target_logp, c, bary_at_logp, &b, S.lo, S.hi, NULL, 0);
    double e;
    bary_kl(S.fam, target_logp, c, lam, kl, &e);
    if (ref) *tv_ref = th_tv(bary_at_logp, (void *)ref, bary_at_logp, &b, S.lo, S.hi, NULL, 0);
}

/* The population loss at T~ (n = infinity) by deterministic quadrature: x0 on a composite 16-point Gauss-Legendre
 * rule over P equal panels of [lo, hi] weighted by the target density, t at 24 Gauss-Legendre nodes on
 * [eps T~, T~], z at 24 Gauss-Hermite nodes; G_ij = E[std^2 s_i s_j], b_i = -E[std s_i z], c = E[z^2], in double. */
static void population_quad(const tcase *c, double ttilde, size_t P, calib_quad *q)
{
    const size_t nt = 24, nz = 24, nx = 16, N = P * nx;
    double lo = EPS_T * ttilde, hi = ttilde;
    gsl_integration_fixed_workspace *gl = gsl_integration_fixed_alloc(gsl_integration_fixed_legendre, nt, lo, hi, 0, 0);
    gsl_integration_fixed_workspace *gh = gsl_integration_fixed_alloc(gsl_integration_fixed_hermite, nz, 0, 1, 0, 0);
    gsl_integration_fixed_workspace *gx = gsl_integration_fixed_alloc(gsl_integration_fixed_legendre, nx, 0, 1, 0, 0);
    const double *tn = gsl_integration_fixed_nodes(gl), *tw = gsl_integration_fixed_weights(gl);
    const double *zn = gsl_integration_fixed_nodes(gh), *zw = gsl_integration_fixed_weights(gh);
    const double *xn = gsl_integration_fixed_nodes(gx), *xw = gsl_integration_fixed_weights(gx);
    double G[4] = {0}, b[2] = {0}, cc = 0;
    double *x0 = malloc(N * sizeof *x0), *wx = malloc(N * sizeof *wx);
    const double h = (S.hi - S.lo) / P;
    for (size_t p = 0; p < P; p++)
        for (size_t j = 0; j < nx; j++) {
            double x = S.lo + h * (p + xn[j]);
            x0[p * nx + j] = x;
            wx[p * nx + j] = h * xw[j] * exp(target_logp((void *)c, x));
        }
    for (size_t a = 0; a < nt; a++) {
        double t = tn[a], wt = tw[a] / (hi - lo), sd = sde_std(&S.s, t), al = sde_alpha(&S.s, t);
        mixture md[2] = {mixture_diffuse(&S.aux[0], &S.s, t), mixture_diffuse(&S.aux[1], &S.s, t)};
        for (size_t j = 0; j < nz; j++) {
            double z = M_SQRT2 * zn[j], wtz = wt * zw[j] / sqrt(M_PI);
            cc += wtz * z * z;
            for (size_t i = 0; i < N; i++) {
                double w = wtz * wx[i];
                double xt = al * x0[i] + sd * z, s0 = mixture_score(&md[0], xt), s1 = mixture_score(&md[1], xt);
                b[0] -= w * sd * s0 * z;
                b[1] -= w * sd * s1 * z;
                G[0] += w * sd * sd * s0 * s0;
                G[1] += w * sd * sd * s0 * s1;
                G[3] += w * sd * sd * s1 * s1;
            }
        }
    }
    G[2] = G[1];
    calib_quad_reset(q);
    memcpy(q->G, G, sizeof G);
    memcpy(q->b, b, sizeof b);
    q->c = cc;
    q->count = INFINITY;
    free(x0);
    free(wx);
    gsl_integration_fixed_free(gx);
    gsl_integration_fixed_free(gl);
    gsl_integration_fixed_free(gh);
}

/* lambda_inf(T~): minimiser of the population loss; *err = |lambda_1(P panels) - lambda_1(P/2)| (quadrature error). */
static void lambda_inf(const tcase *c, double ttilde, size_t N, double *lam, double *err)
{
    calib_quad *q = calib_quad_alloc(2);
    double half[2];
    population_quad(c, ttilde, N / 2, q);
    solve(q, half);
    population_quad(c, ttilde, N, q);
    solve(q, lam);
    *err = fabs(lam[0] - half[0]);
    calib_quad_free(q);
}

int main(int argc, char **argv)
{
    th_opts o;
    th_parse(argc, argv, &o, usage);
    gsl_set_error_handler_off();
    char err[256];
    S.s = sde_ve(25.0);
    if (mixture_parse("0.5:-3:1,0.5:10:1", &S.aux[0], err, sizeof err) ||
        mixture_parse("0.7:-7:1,0.3:9:1", &S.aux[1], err, sizeof err))
        LOG_FATAL("mixture spec: %s", err);
    tcase cases[2] = {{.name = "planted", .planted = 1, .lam0 = {0.6, 0.4}}, {.name = "mixture", .planted = 0}};
    if (mixture_parse("0.6:-6:0.8,0.4:6:0.8", &cases[1].mix, err, sizeof err)) LOG_FATAL("mixture spec: %s", err);
    for (int i = 0; i < 2; i++) {
        S.orc[i] = (mixture_oracle){S.aux[i], S.s};
        S.sm[i] = mixture_oracle_model(&S.orc[i], i ? "aux2" : "aux1");
    }
    {
        bary_logpdf_fn fn[2] = {bary_mixture_logpdf, bary_mixture_logpdf};
        void *ctx[2] = {&S.aux[0], &S.aux[1]};
        const mixture *mp[3] = {&S.aux[0], &S.aux[1], &cases[1].mix};
        bary_mixture_interval(3, mp, 12.0, &S.lo, &S.hi);
        S.fam = bary_family_alloc(2, fn, ctx, S.lo, S.hi);
    }
    bary_log_normaliser(S.fam, cases[0].lam0, &cases[0].logZ0, NULL);
    cases[0].cdf = bary_cdf_tabulate(S.fam, cases[0].lam0, 40001);

    const int smoke = o.profile == TH_SMOKE, paper = o.profile == TH_PAPER;
    const int log2n_max = smoke ? 8 : 14;
    const int reps = smoke ? 12 : paper ? 200 : 100;
    const size_t n_inf = smoke ? 64 : 128;   /* population quadrature: x0 panels (16 nodes each) */
    const double rates_tt[2] = {1e-4, 1e-1};   /* the paper code's 1-D T~ (t in [1e-7, 1e-4]), and a larger one */
    const int n_tt = smoke ? 5 : 13;           /* T~ = 10^-6 ... 10^0 */
    const size_t n_sweep = smoke ? 256 : 1024;
    const int reps_tt = smoke ? 8 : paper ? 100 : 50;
    work w;
    work_init(&w, 1u << 16);
    double t0 = log_now();

    /* ---------------- (1) rates in n ---------------- */
    io_meta mr;
    th_meta(&mr, argc, argv, &o);
    io_meta_set(&mr, "sde", "%s", sde_name(&S.s));
    io_meta_set(&mr, "aux", "0.5:-3:1,0.5:10:1 ; 0.7:-7:1,0.3:9:1 (exact scores, float32 via score_model)");
    io_meta_set(&mr, "targets", "planted: p_lambda0, lambda0 = (0.6, 0.4); mixture: 0.6:-6:0.8,0.4:6:0.8");
    io_meta_set(&mr, "calibration", "t ~ U[1e-3 T~, T~], one (t, z) draw per target sample, weighting std(t)^2, "
                                    "exact simplex minimiser (calib_qp_simplex); float32 scores, double sums");
    io_meta_set(&mr, "repeats", "%d", reps);
    io_meta_set(&mr, "lambda_inf", "population loss by quadrature in double: %zu panels x 16 Gauss-Legendre x0 "
                                   "(target density) x 24 Gauss-Legendre t x 24 Gauss-Hermite z; error = change "
                                   "from %zu panels", n_inf,
                n_inf / 2);
    io_csv *cr = io_csv_open(th_path(&o, "rates_n.csv"),
                             "case,ttilde,n,repeats,lambda1_mean,lambda1_sd,lambda1_inf,lambda1_inf_err,abs_dlambda_mean,"
                             "tv_mean,tv_sd,tv_inf,excess_tv,tv_to_inf_mean,kl_mean,kl_inf,bound_n_quarter,precision");
    printf("# Thm 4: calibration with exact auxiliary scores, lambda_hat_n = exact simplex minimiser, %d repeats\n",
           reps);
    printf("%-8s %8s %6s %10s %10s %11s %11s %11s %11s\n", "case", "T~", "n", "lam1_mean", "lam1_sd", "TV(nu,p)",
           "excessTV", "TV(p,p_inf)", "KL(nu||p)");
    int nn = log2n_max - 4 + 1;
    for (int ci = 0; ci < 2; ci++) {
        tcase *c = &cases[ci];
        for (int ti = 0; ti < 2; ti++) {
            double tt = rates_tt[ti], li[2], se;
            lambda_inf(c, tt, n_inf, li, &se);
            bary_at ref = {{li[0], li[1]}, 0};
            bary_log_normaliser(S.fam, li, &ref.logZ, NULL);
            double tv_inf, kl_inf, dummy;
            errors(c, li, NULL, &tv_inf, &kl_inf, &dummy);
            double ns[16], y_ref[16], y_ex[16], y_dl[16], first_ref = NAN;
            for (int e = 4; e <= log2n_max; e++) {
                size_t n = (size_t)1 << e;
                double sl = 0, sl2 = 0, stv = 0, stv2 = 0, skl = 0, sref = 0, sdl = 0;
                for (int rep = 0; rep < reps; rep++) {
                    rng *r = rng_alloc(o.seed, rng_stream_id(0x72617465ull + 1 + ci * 4 + ti,
                                                             (uint64_t)e * 100000u + (uint64_t)rep));
                    calib_quad *q = calib_quad_alloc(2);
                    add_draws(c, tt, n, r, &w, q, NULL);
                    double lam[2], tv, kl, tvr;
                    solve(q, lam);
                    errors(c, lam, &ref, &tv, &kl, &tvr);
                    sl += lam[0];
                    sl2 += lam[0] * lam[0];
                    stv += tv;
                    stv2 += tv * tv;
                    skl += kl;
                    sref += tvr;
                    sdl += fabs(lam[0] - li[0]);
                    calib_quad_free(q);
                    rng_free(r);
                }
                double lm = sl / reps, lsd = sqrt(fmax(sl2 / reps - lm * lm, 0) * reps / (reps - 1.0));
                double tvm = stv / reps, tvsd = sqrt(fmax(stv2 / reps - tvm * tvm, 0) * reps / (reps - 1.0));
                double refm = sref / reps;
                if (e == 4) first_ref = refm;
                /* the n^{-1/4} bound's shape, anchored at the first point */
                double bound = first_ref * pow((double)n / 16.0, -0.25);
                int j = e - 4;
                ns[j] = (double)n;
                y_ref[j] = refm;
                y_ex[j] = tvm - tv_inf;
                y_dl[j] = sdl / reps;
                io_csv_row(cr, "%s,%.3g,%zu,%d,%.8f,%.8f,%.8f,%.2e,%.6e,%.6e,%.6e,%.6e,%.6e,%.6e,%.6e,%.6e,%.6e,float32",
                           c->name, tt, n, reps, lm, lsd, li[0], se, sdl / reps, tvm, tvsd, tv_inf, tvm - tv_inf, refm,
                           skl / reps, kl_inf, bound);
                printf("%-8s %8.0e %6zu %10.5f %10.5f %11.4e %11.4e %11.4e %11.4e\n", c->name, tt, n, lm, lsd, tvm,
                       tvm - tv_inf, refm, skl / reps);
            }
            double s_ref = th_loglog_slope(ns, y_ref, nn), s_ex = th_loglog_slope(ns, y_ex, nn),
                   s_dl = th_loglog_slope(ns, y_dl, nn);
            printf("rates: %s T~=%.0e: lambda_inf = (%.5f, %.5f) +- %.1e, TV(nu, p_inf) = %.4e, KL = %.4e; slopes vs n: "
                   "TV(p_hat, p_inf) %.3f, excess TV %.3f, |dlambda| %.3f (Thm 4 bound: -0.25)\n",
                   c->name, tt, li[0], li[1], se, tv_inf, kl_inf, s_ref, s_ex, s_dl);
            char key[96];
            snprintf(key, sizeof key, "slope_tv_to_inf_%s_T%.0e", c->name, tt);
            io_meta_set(&mr, key, "%.4f", s_ref);
            snprintf(key, sizeof key, "slope_excess_tv_%s_T%.0e", c->name, tt);
            io_meta_set(&mr, key, "%.4f", s_ex);
            snprintf(key, sizeof key, "slope_abs_dlambda_%s_T%.0e", c->name, tt);
            io_meta_set(&mr, key, "%.4f", s_dl);
        }
    }
    io_meta_set(&mr, "bound_slope", "-0.25");
    io_csv_commit(cr, &mr);
    io_meta_free(&mr);
    log_info("rates done in %.1f s", log_now() - t0);

    /* ---------------- (2) T~ trade-off ---------------- */
    io_meta mt;
    th_meta(&mt, argc, argv, &o);
    io_meta_set(&mt, "sde", "%s", sde_name(&S.s));
    io_meta_set(&mt, "n", "%zu", n_sweep);
    io_meta_set(&mt, "repeats", "%d", reps_tt);
    io_meta_set(&mt, "precision", "float32: x_t, t, std, z and the scores in float32 (as common/dsm.c and the "
                                  "score_model interface), sums in double; float64: the same draws in double");
    io_csv *ct = io_csv_open(th_path(&o, "rates_ttilde.csv"),
                             "case,precision,ttilde,n,repeats,lambda1_mean,lambda1_var,tv_mean,kl_mean,lambda1_inf,"
                             "lambda1_inf_err,tv_inf,kl_inf,lambda0_1,max_abs_dlambda_prec");
    printf("# T~ trade-off: n = %zu, %d repeats, t ~ U[1e-3 T~, T~]\n", n_sweep, reps_tt);
    double max_prec = 0;
    printf("%-8s %8s %9s %10s %11s %11s %11s %10s %11s %10s\n", "case", "prec", "T~", "lam1_mean", "lam1_var", "TV(nu,p)",
           "KL(nu||p)", "lam1_inf", "TV(nu,pinf)", "|d32-64|");
    for (int ci = 0; ci < 2; ci++) {
        tcase *c = &cases[ci];
        for (int ti = 0; ti < n_tt; ti++) {
            double tt = pow(10.0, -6.0 + 6.0 * ti / (n_tt - 1)), li[2], se, tv_inf, kl_inf, dummy;
            lambda_inf(c, tt, n_inf, li, &se);
            errors(c, li, NULL, &tv_inf, &kl_inf, &dummy);
            /* both precisions from the same draws in every repeat (paired), so their difference is precision only */
            double sl[2] = {0}, sl2[2] = {0}, stv[2] = {0}, skl[2] = {0}, maxd = 0;
            for (int rep = 0; rep < reps_tt; rep++) {
                rng *r = rng_alloc(o.seed, rng_stream_id(0x74746c65ull + ci, (uint64_t)ti * 100000u + rep));
                calib_quad *q[2] = {calib_quad_alloc(2), calib_quad_alloc(2)};
                add_draws(c, tt, n_sweep, r, &w, q[0], q[1]);
                double lam[2][2];
                for (int prec = 0; prec < 2; prec++) {
                    double tv, kl;
                    solve(q[prec], lam[prec]);
                    errors(c, lam[prec], NULL, &tv, &kl, &dummy);
                    sl[prec] += lam[prec][0];
                    sl2[prec] += lam[prec][0] * lam[prec][0];
                    stv[prec] += tv;
                    skl[prec] += kl;
                    calib_quad_free(q[prec]);
                }
                maxd = fmax(maxd, fabs(lam[0][0] - lam[1][0]));
                rng_free(r);
            }
            for (int prec = 0; prec < 2; prec++) {
                double lm = sl[prec] / reps_tt, lv = fmax(sl2[prec] / reps_tt - lm * lm, 0) * reps_tt / (reps_tt - 1.0);
                io_csv_row(ct, "%s,%s,%.6e,%zu,%d,%.8f,%.6e,%.6e,%.6e,%.8f,%.2e,%.6e,%.6e,%.3f,%.3e", c->name,
                           prec ? "float64" : "float32", tt, n_sweep, reps_tt, lm, lv, stv[prec] / reps_tt,
                           skl[prec] / reps_tt, li[0], se, tv_inf, kl_inf, c->planted ? c->lam0[0] : NAN, maxd);
                printf("%-8s %8s %9.2e %10.5f %11.4e %11.4e %11.4e %10.5f %11.4e %10.2e\n", c->name,
                       prec ? "float64" : "float32", tt, lm, lv, stv[prec] / reps_tt, skl[prec] / reps_tt, li[0], tv_inf,
                       maxd);
            }
            max_prec = fmax(max_prec, maxd);
        }
    }
    printf("rates_ttilde: max |lambda_hat(float32) - lambda_hat(float64)| over all T~ and repeats: %.3e\n", max_prec);
    io_meta_set(&mt, "max_abs_dlambda_float32_vs_float64", "%.3e", max_prec);
    io_csv_commit(ct, &mt);
    io_meta_free(&mt);
    log_info("done in %.1f s", log_now() - t0);
    work_free(&w);
    bary_cdf_table_free(cases[0].cdf);
    bary_family_free(S.fam);
    return 0;
}
