/* theory_convexity: checks Prop. 1 (the vanilla-fusion objective F(lambda) = KL(nu || p_lambda) of eq. 9 / eq. 20
 * is convex on the simplex) and the Frank-Wolfe rate used for it (App. D.1.2, Algorithm 2; Remark 2 gradient).
 * Target nu = 0.6 N(-6, .8^2) + 0.4 N(6, .8^2); aux1 = 0.5 N(-3,1) + 0.5 N(10,1); aux2 = 0.7 N(-7,1) + 0.3 N(9,1)
 * (the paper's App. I, raw coordinates); for k = 3 a third auxiliary of our choice, aux3 = 0.4 N(-5, 1.2^2) +
 * 0.6 N(4, 1.2^2).
 *  - F on a lambda grid by quadrature (common/barycenter.h bary_kl): k = 2 a curve, k = 3 a triangle grid;
 *    discrete convexity = every second difference (along every edge direction of the grid) >= -tolerance,
 *    tolerance = 4 x the largest quadrature error estimate of F. The exact second derivative along the simplex
 *    is the variance of the log-likelihood ratio under p_lambda, Var_{p_lambda}(log p_1 - log p_2) >= 0 (the
 *    log-MGF argument of Prop. 1's proof); it is computed by quadrature and compared with the second differences.
 *  - Smoothness: the Hessian of F is Cov_{p_lambda}(log p_i, log p_j); L = max over the grid of the largest
 *    eigenvalue of that covariance restricted to the simplex's tangent space (measured, on the grid).
 *  - Frank-Wolfe (common/fw.h, exact gradient of Remark 2): primal gap f(lambda_t) - f* vs t for the open-loop
 *    step 2/(t+2) and the paper's step rule, against the bound 2 L diam^2 / (t + 2) (diam^2 = 2), plus the
 *    certified duality gap; f* by damped Newton on every face of the simplex (exact Hessian), certified by the
 *    Frank-Wolfe duality gap at the minimiser.
 * Outputs (in --out): convexity_k2.csv, convexity_k3.csv, convexity_fw.csv (+ .meta). */
#include "barycenter.h"
#include "fw.h"
#include "mixture.h"
#include "th_common.h"
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_matrix.h>

static const char *usage =
    "usage: theory_convexity [--out DIR] [--seed N] [--profile smoke|cpu|paper]\n"
    "Prop. 1: F(lambda) = KL(nu || p_lambda) (eq. 9) on the simplex for the paper's 1-D target and auxiliaries\n"
    "(k = 2 curve, k = 3 triangle grid): minimum second difference, the exact second derivative\n"
    "Var_{p_lambda}(log p_1 - log p_2), the measured smoothness L, and Frank-Wolfe primal / duality gaps vs the\n"
    "O(1/t) bound 2 L diam^2/(t+2). Writes convexity_k2.csv, convexity_k3.csv, convexity_fw.csv (+ .meta) in DIR.\n"
    "(No randomness: --seed is recorded only.)\n" TH_USAGE_FLAGS;

#define KMAX 3

typedef struct {
    const bary_family *f;
    const double *lam;
    double logZ;
    const double *mean;     /* E_{p_lambda}[log p_i] */
    int a, b;               /* covariance entry (a, b) */
} cov_ctx;

static double cov_integrand(double x, void *p)
{
    const cov_ctx *c = p;
    double lp = bary_logpdf(c->f, c->lam, c->logZ, x);
    if (!isfinite(lp)) return 0.0;
    double ha = bary_member_logpdf(c->f, (size_t)c->a, x) - c->mean[c->a];
    double hb = bary_member_logpdf(c->f, (size_t)c->b, x) - c->mean[c->b];
    return ha * hb * exp(lp);
}

/* cov[k*k] = Cov_{p_lambda}(log p_i, log p_j) (the Hessian of log Z, hence of F). */
static void hessian(bary_family *f, const double *lam, double *cov)
{
    size_t k = bary_family_k(f);
    double mean[KMAX], logZ, lo, hi;
    bary_tilted_means(f, lam, mean, &logZ, NULL);
    bary_family_interval(f, &lo, &hi);
    for (size_t a = 0; a < k; a++)
        for (size_t b = a; b < k; b++) {
            cov_ctx c = {f, lam, logZ, mean, (int)a, (int)b};
            gsl_function F = {cov_integrand, &c};
            cov[a * k + b] = cov[b * k + a] = th_integrate(&F, lo, hi, NULL, 0, NULL);
        }
}

/* Largest eigenvalue of P H P, P = I - 11^T/k (the Hessian on the simplex's tangent space). */
static double tangent_lmax(size_t k, const double *H)
{
    gsl_matrix *M = gsl_matrix_alloc(k, k), *PH = gsl_matrix_alloc(k, k);
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < k; j++) {
            double s = 0;   /* (P H P)_ij */
            for (size_t a = 0; a < k; a++)
                for (size_t b = 0; b < k; b++) {
                    double pia = (i == a) - 1.0 / k, pbj = (b == j) - 1.0 / k;
                    s += pia * H[a * k + b] * pbj;
                }
            gsl_matrix_set(M, i, j, s);
        }
    gsl_vector *ev = gsl_vector_alloc(k);
    gsl_eigen_symm_workspace *w = gsl_eigen_symm_alloc(k);
    gsl_eigen_symm(M, ev, w);
    double mx = gsl_vector_max(ev);
    gsl_eigen_symm_free(w);
    gsl_vector_free(ev);
    gsl_matrix_free(M);
    gsl_matrix_free(PH);
    return mx;
}

static double target_logp(void *ctx, double x) { return mixture_logpdf((const mixture *)ctx, x); }

typedef struct {
    bary_family *fam;
    fw_vanilla *fv;
    double negent;
    double hbar[KMAX];
} problem;

static void problem_init(problem *p, size_t k, mixture *aux, mixture *target)
{
    bary_logpdf_fn fn[KMAX];
    void *ctx[KMAX];
    const mixture *mp[KMAX + 1];
    for (size_t i = 0; i < k; i++) {
        fn[i] = bary_mixture_logpdf;
        ctx[i] = &aux[i];
        mp[i] = &aux[i];
    }
    mp[k] = target;
    double lo, hi;
    bary_mixture_interval(k + 1, mp, 12.0, &lo, &hi);
    p->fam = bary_family_alloc(k, fn, ctx, lo, hi);
    int st = bary_cross_means(p->fam, target_logp, target, p->hbar, &p->negent, NULL);
    if (st) log_info("cross means: quadrature status %d", st);
    p->fv = fw_vanilla_alloc(p->fam, p->hbar, p->negent);
}

static void problem_free(problem *p)
{
    fw_vanilla_free(p->fv);
    bary_family_free(p->fam);
}

/* F(lambda) = KL(nu || p_lambda) and its quadrature error estimate. */
static double F_eval(problem *p, mixture *target, const double *lam, double *abserr)
{
    double kl, e;
    int st = bary_kl(p->fam, target_logp, target, lam, &kl, &e);
    if (st) log_info("KL: quadrature status %d", st);
    if (abserr) *abserr = e;
    return kl;
}

/* f* = min of F over the simplex, by damped Newton (exact gradient of Remark 2, exact Hessian Cov(log p_i, log p_j))
 * on the relative interior of every face (support set) of the simplex; steps that would leave the face are cut
 * back, and a face whose minimiser lies on its boundary is left to the smaller face that holds it. The answer is
 * certified by the Frank-Wolfe duality gap at the returned point (*cert >= f(lambda*) - f*). */
static double fstar(problem *p, size_t k, double *cert, double *lam_star)
{
    double best = INFINITY;
    for (unsigned mask = 1; mask < (1u << k); mask++) {
        size_t S[KMAX], m = 0;
        for (size_t i = 0; i < k; i++)
            if (mask & (1u << i)) S[m++] = i;
        double lam[KMAX] = {0}, g[KMAX], H[KMAX * KMAX], f;
        for (size_t a = 0; a < m; a++) lam[S[a]] = 1.0 / m;
        fw_vanilla_fdf(p->fv, lam, &f, g);
        int interior = 1;
        for (int it = 0; it < 60 && m > 1; it++) {
            hessian(p->fam, lam, H);
            /* reduced coordinates u_a, a < m-1, direction e_{S_a} - e_{S_{m-1}} */
            size_t r = m - 1, z = S[m - 1];
            double gr[KMAX], Hr[KMAX * KMAX], du[KMAX];
            for (size_t a = 0; a < r; a++) {
                gr[a] = g[S[a]] - g[z];
                for (size_t b = 0; b < r; b++)
                    Hr[a * r + b] = H[S[a] * k + S[b]] - H[S[a] * k + z] - H[z * k + S[b]] + H[z * k + z];
            }
            if (r == 1) {
                du[0] = -gr[0] / Hr[0];
            } else {   /* r == 2 */
                double det = Hr[0] * Hr[3] - Hr[1] * Hr[2];
                du[0] = -(Hr[3] * gr[0] - Hr[1] * gr[1]) / det;
                du[1] = -(-Hr[2] * gr[0] + Hr[0] * gr[1]) / det;
            }
            double d[KMAX] = {0};
            for (size_t a = 0; a < r; a++) {
                d[S[a]] += du[a];
                d[z] -= du[a];
            }
            /* largest feasible step, then backtracking on f */
            double tmax = 1.0;
            for (size_t a = 0; a < m; a++)
                if (d[S[a]] < 0) tmax = fmin(tmax, -lam[S[a]] / d[S[a]]);
            double step = tmax, fn = f, trial[KMAX], gn[KMAX];
            int ok = 0;
            for (int bt = 0; bt < 40; bt++) {
                for (size_t i = 0; i < k; i++) trial[i] = fmax(lam[i] + step * d[i], 0.0);
                fw_vanilla_fdf(p->fv, trial, &fn, gn);
                if (fn <= f) {
                    ok = 1;
                    break;
                }
                step *= 0.5;
            }
            if (!ok) break;
            double moved = 0;
            for (size_t i = 0; i < k; i++) moved = fmax(moved, fabs(trial[i] - lam[i]));
            memcpy(lam, trial, sizeof lam);
            memcpy(g, gn, sizeof g);
            f = fn;
            if (moved < 1e-15) break;
        }
        for (size_t a = 0; a < m; a++)
            if (lam[S[a]] <= 1e-12 && m > 1) interior = 0;
        if (interior && f < best) {
            best = f;
            memcpy(lam_star, lam, k * sizeof *lam_star);
        }
    }
    fw_state *s = fw_alloc(k);
    fw_init(s, fw_vanilla_fdf, p->fv, lam_star);
    *cert = s->gap;
    fw_free(s);
    return best;
}

int main(int argc, char **argv)
{
    th_opts o;
    th_parse(argc, argv, &o, usage);
    gsl_set_error_handler_off();
    char err[256];
    mixture target, aux[KMAX];
    if (mixture_parse("0.6:-6:0.8,0.4:6:0.8", &target, err, sizeof err) ||
        mixture_parse("0.5:-3:1,0.5:10:1", &aux[0], err, sizeof err) ||
        mixture_parse("0.7:-7:1,0.3:9:1", &aux[1], err, sizeof err) ||
        mixture_parse("0.4:-5:1.2,0.6:4:1.2", &aux[2], err, sizeof err))
        LOG_FATAL("mixture spec: %s", err);
    const int n2 = o.profile == TH_SMOKE ? 21 : 401;          /* k = 2 grid points */
    const int m3 = o.profile == TH_SMOKE ? 6 : o.profile == TH_CPU ? 40 : 60;   /* k = 3 grid: step 1/m3 */
    const int fw_iters = o.profile == TH_SMOKE ? 50 : 2000;

    /* ---------------- k = 2 curve ---------------- */
    problem p2;
    problem_init(&p2, 2, aux, &target);
    io_meta m2;
    th_meta(&m2, argc, argv, &o);
    io_meta_set(&m2, "target", "0.6:-6:0.8,0.4:6:0.8");
    io_meta_set(&m2, "aux", "0.5:-3:1,0.5:10:1 ; 0.7:-7:1,0.3:9:1 (raw coordinates)");
    io_csv *c2 = io_csv_open(th_path(&o, "convexity_k2.csv"),
                             "lambda1,F,F_abserr,second_diff,second_diff_over_h2,exact_F2,Lproj");
    double *F = malloc(n2 * sizeof *F), *Fe = malloc(n2 * sizeof *Fe), *F2 = malloc(n2 * sizeof *F2),
           *Lp = malloc(n2 * sizeof *Lp);
    const double h = 1.0 / (n2 - 1);
    double max_abserr = 0, L2 = 0;
    for (int j = 0; j < n2; j++) {
        double lam[2] = {j * h, 1.0 - j * h}, H[4];
        F[j] = F_eval(&p2, &target, lam, &Fe[j]);
        max_abserr = fmax(max_abserr, Fe[j]);
        hessian(p2.fam, lam, H);
        F2[j] = H[0] - 2 * H[1] + H[3];    /* d^2/dlambda_1^2 F along (1,-1) = Var(log p_1 - log p_2) */
        Lp[j] = tangent_lmax(2, H);
        L2 = fmax(L2, Lp[j]);
    }
    double tol2 = 4.0 * max_abserr, min_d2 = INFINITY, max_rel = 0;
    int at_min = -1;
    for (int j = 0; j < n2; j++) {
        double d2 = NAN;
        if (j > 0 && j < n2 - 1) {
            d2 = F[j + 1] - 2 * F[j] + F[j - 1];
            if (d2 < min_d2) {
                min_d2 = d2;
                at_min = j;
            }
            /* second difference / h^2 vs the exact F'' (agree to O(h^2)) */
            max_rel = fmax(max_rel, fabs(d2 / (h * h) - F2[j]) / fmax(F2[j], 1e-300));
        }
        io_csv_row(c2, "%.6f,%.15g,%.3e,%.6e,%.10g,%.10g,%.10g", j * h, F[j], Fe[j], d2, d2 / (h * h), F2[j], Lp[j]);
    }
    int jmin = 0;
    for (int j = 1; j < n2; j++)
        if (F[j] < F[jmin]) jmin = j;
    printf("# Prop. 1: F(lambda) = KL(nu || p_lambda), k = 2, %d grid points (h = %.4g)\n", n2, h);
    printf("convexity_k2: min second difference %.4e at lambda1 = %.4f (tolerance -%.1e) -> %s\n", min_d2, at_min * h,
           tol2, min_d2 >= -tol2 ? "convex" : "NOT CONVEX");
    printf("convexity_k2: max |second diff / h^2 - Var(log p1 - log p2)| / Var = %.3e; min Var = %.4e\n", max_rel,
           F2[0] < F2[n2 - 1] ? F2[0] : F2[n2 - 1]);
    printf("convexity_k2: grid minimum F = %.8f at lambda1 = %.4f; F(0) = %.6f, F(1) = %.6f; L = %.6g\n", F[jmin],
           jmin * h, F[0], F[n2 - 1], L2);
    io_meta_set(&m2, "min_second_diff", "%.6e", min_d2);
    io_meta_set(&m2, "tolerance", "%.3e", tol2);
    io_meta_set(&m2, "L_measured", "%.10g", L2);
    io_meta_set(&m2, "max_rel_err_second_diff_vs_exact", "%.3e", max_rel);
    io_csv_commit(c2, &m2);
    io_meta_free(&m2);

    /* ---------------- k = 3 triangle ---------------- */
    problem p3;
    problem_init(&p3, 3, aux, &target);
    io_meta m3m;
    th_meta(&m3m, argc, argv, &o);
    io_meta_set(&m3m, "aux", "0.5:-3:1,0.5:10:1 ; 0.7:-7:1,0.3:9:1 ; 0.4:-5:1.2,0.6:4:1.2 (raw coordinates)");
    const int np3 = (m3 + 1) * (m3 + 2) / 2;
    double *G = malloc((size_t)(m3 + 1) * (m3 + 1) * sizeof *G), *Ge = malloc((size_t)(m3 + 1) * (m3 + 1) * sizeof *Ge);
    double *L3g = malloc((size_t)(m3 + 1) * (m3 + 1) * sizeof *L3g);
#define IDX(i, j) ((i) * (m3 + 1) + (j))
    double max_e3 = 0, L3 = 0;
    for (int i = 0; i <= m3; i++)
        for (int j = 0; i + j <= m3; j++) {
            double lam[3] = {(double)i / m3, (double)j / m3, (double)(m3 - i - j) / m3}, H[9];
            G[IDX(i, j)] = F_eval(&p3, &target, lam, &Ge[IDX(i, j)]);
            max_e3 = fmax(max_e3, Ge[IDX(i, j)]);
            hessian(p3.fam, lam, H);
            L3g[IDX(i, j)] = tangent_lmax(3, H);
            L3 = fmax(L3, L3g[IDX(i, j)]);
        }
    io_csv *c3 = io_csv_open(th_path(&o, "convexity_k3.csv"),
                             "lambda1,lambda2,lambda3,F,F_abserr,d2_12,d2_13,d2_23,Lproj");
    double tol3 = 4.0 * max_e3, min3 = INFINITY;
    int bi = 0, bj = 0;
    for (int i = 0; i <= m3; i++) {
        for (int j = 0; i + j <= m3; j++) {
            int kk = m3 - i - j;
            /* directions e1-e2: (i+-1, j-+1); e1-e3: (i+-1, j); e2-e3: (i, j+-1) -- all keep the sum */
            double d12 = NAN, d13 = NAN, d23 = NAN, c = G[IDX(i, j)];
            if (i > 0 && j > 0) d12 = G[IDX(i + 1, j - 1)] + G[IDX(i - 1, j + 1)] - 2 * c;
            if (i > 0 && kk > 0) d13 = G[IDX(i + 1, j)] + G[IDX(i - 1, j)] - 2 * c;
            if (j > 0 && kk > 0) d23 = G[IDX(i, j + 1)] + G[IDX(i, j - 1)] - 2 * c;
            double dd[3] = {d12, d13, d23};
            for (int q = 0; q < 3; q++)
                if (isfinite(dd[q]) && dd[q] < min3) min3 = dd[q];
            if (c < G[IDX(bi, bj)]) {
                bi = i;
                bj = j;
            }
            io_csv_row(c3, "%.6f,%.6f,%.6f,%.15g,%.3e,%.6e,%.6e,%.6e,%.10g", (double)i / m3, (double)j / m3,
                       (double)kk / m3, c, Ge[IDX(i, j)], d12, d13, d23, L3g[IDX(i, j)]);
        }
        io_csv_row(c3, "%s", "");   /* blank line between rows: gnuplot pm3d/splot reads the triangle as a grid */
    }
    printf("convexity_k3: %d grid points (step 1/%d); min second difference %.4e (tolerance -%.1e) -> %s; L = %.6g\n",
           np3, m3, min3, tol3, min3 >= -tol3 ? "convex" : "NOT CONVEX", L3);
    printf("convexity_k3: grid minimum F = %.8f at lambda = (%.3f, %.3f, %.3f)\n", G[IDX(bi, bj)], (double)bi / m3,
           (double)bj / m3, (double)(m3 - bi - bj) / m3);
    io_meta_set(&m3m, "min_second_diff", "%.6e", min3);
    io_meta_set(&m3m, "tolerance", "%.3e", tol3);
    io_meta_set(&m3m, "L_measured", "%.10g", L3);
    io_csv_commit(c3, &m3m);
    io_meta_free(&m3m);

    /* ---------------- Frank-Wolfe ---------------- */
    io_meta mf;
    th_meta(&mf, argc, argv, &o);
    io_csv *cf = io_csv_open(th_path(&o, "convexity_fw.csv"),
                             "k,rule,iter,lambda1,lambda2,lambda3,f,primal_gap,dual_gap,f_lower,bound,fstar,"
                             "fstar_certified_gap,quad_abserr");
    problem *ps[2] = {&p2, &p3};
    const char *rule_name[2] = {"open_loop", "paper"};
    for (int pk = 0; pk < 2; pk++) {
        problem *p = ps[pk];
        size_t k = (size_t)(pk + 2);
        double L = pk ? L3 : L2, cert, lstar[KMAX] = {0};
        double fs = fstar(p, k, &cert, lstar);
        printf("convexity_fw: k = %zu: f* = %.12f at lambda* = (%.6f, %.6f, %.6f), certified f(lambda*) - f* <= %.3e (duality gap)\n",
               k, fs, lstar[0], lstar[1], k > 2 ? lstar[2] : 0.0, cert);
        io_meta_set(&mf, pk ? "fstar_k3" : "fstar_k2", "%.15g", fs);
        io_meta_set(&mf, pk ? "lambda_star_k3" : "lambda_star_k2", "%.8f %.8f %.8f", lstar[0], lstar[1], lstar[2]);
        io_meta_set(&mf, pk ? "L_k3" : "L_k2", "%.10g", L);
        for (int r = 0; r < 2; r++) {
            fw_state *s = fw_alloc(k);
            fw_set_step(s, r ? FW_STEP_PAPER : FW_STEP_OPEN_LOOP);
            double l0[KMAX] = {1.0 / k, 1.0 / k, 1.0 / k};
            fw_init(s, fw_vanilla_fdf, p->fv, l0);
            int viol = 0;
            double last_ratio = NAN;
            for (int t = 0; t <= fw_iters; t++) {
                double pg = s->f - fs, bound = 2.0 * L * 2.0 / (t + 2.0);
                /* the bound holds from t >= 1 (after the first, full step); log it at every t */
                if (t >= 1 && pg > bound) viol++;
                if (t > 0) last_ratio = pg * (t + 2.0);
                io_csv_row(cf, "%zu,%s,%d,%.12f,%.12f,%.12f,%.15g,%.6e,%.6e,%.15g,%.6e,%.15g,%.3e,%.3e", k, rule_name[r],
                           t, s->lambda[0], s->lambda[1], k > 2 ? s->lambda[2] : 0.0, s->f, pg, s->gap, s->f_lower,
                           bound, fs, cert, p->fv->last_abserr);
                if (t == fw_iters) break;
                int st = fw_iterate(s);
                if (st != GSL_SUCCESS) {
                    log_info("fw_iterate: status %d at t = %d", st, t);
                    break;
                }
            }
            printf("convexity_fw: k = %zu, %-9s step: after %d iterations primal gap %.3e, duality gap %.3e, "
                   "bound %.3e; (t+2) x primal gap = %.3g; bound violated at %d iterations\n",
                   k, rule_name[r], fw_iters, s->f - fs, s->gap, 4.0 * L / (fw_iters + 2.0), last_ratio, viol);
            char key[64];
            snprintf(key, sizeof key, "k%zu_%s_final_primal_gap", k, rule_name[r]);
            io_meta_set(&mf, key, "%.6e", s->f - fs);
            snprintf(key, sizeof key, "k%zu_%s_final_dual_gap", k, rule_name[r]);
            io_meta_set(&mf, key, "%.6e", s->gap);
            snprintf(key, sizeof key, "k%zu_%s_bound_violations", k, rule_name[r]);
            io_meta_set(&mf, key, "%d", viol);
            fw_free(s);
        }
    }
    io_csv_commit(cf, &mf);
    io_meta_free(&mf);
    problem_free(&p2);
    problem_free(&p3);
    free(F);
    free(Fe);
    free(F2);
    free(Lp);
    free(G);
    free(Ge);
    free(L3g);
    return 0;
}
