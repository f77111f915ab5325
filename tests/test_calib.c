/* test_calib: the ScoreFusion calibration loss (paper eq. 10, Algorithm 1) as a quadratic in lambda, its exact
 * simplex QP (against brute-force grids, singular and nearly singular G, faces and vertices), the paper code's
 * softmax + SGD-momentum calibration, and planted answers: with EXACT auxiliary scores and a target that IS the
 * KL barycenter p_lambda0 of the auxiliaries, the QP on many DSM draws recovers lambda0 (Thm 1-2). */
#include "barycenter.h"
#include "calib.h"
#include "dsm.h"
#include "mixture.h"
#include "rng.h"
#include "sde.h"
#include "test.h"
#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* random Gram problem: G = A A' / dim, b = A y / dim for random A [k x dim], y */
static void random_quad(calib_quad *q, rng *r, size_t dim, double shift)
{
    size_t k = q->k;
    double A[16 * 8], y[8];
    for (size_t i = 0; i < k * dim; i++) A[i] = rng_gaussian(r);
    for (size_t d = 0; d < dim; d++) y[d] = rng_gaussian(r) + shift;
    for (size_t i = 0; i < k; i++) {
        double s = 0.0;
        for (size_t d = 0; d < dim; d++) s += A[i * dim + d] * y[d];
        q->b[i] = s / (double)dim;
        for (size_t j = 0; j < k; j++) {
            double g = 0.0;
            for (size_t d = 0; d < dim; d++) g += A[i * dim + d] * A[j * dim + d];
            q->G[i * k + j] = g / (double)dim;
        }
    }
    q->c = 1.0;
    q->count = 1.0;
}

static double grid_min(const calib_quad *q, size_t N, double *arg)
{
    double best = INFINITY, l[3];
    if (q->k == 2) {
        for (size_t i = 0; i <= N; i++) {
            l[0] = (double)i / (double)N;
            l[1] = 1.0 - l[0];
            double v = calib_quad_loss(q, l);
            if (v < best) best = v, memcpy(arg, l, 2 * sizeof *l);
        }
    } else {
        for (size_t i = 0; i <= N; i++)
            for (size_t j = 0; i + j <= N; j++) {
                l[0] = (double)i / (double)N;
                l[1] = (double)j / (double)N;
                l[2] = (double)(N - i - j) / (double)N;
                double v = calib_quad_loss(q, l);
                if (v < best) best = v, memcpy(arg, l, 3 * sizeof *l);
            }
    }
    return best;
}

/* plain projected gradient (reference for k > 3), many iterations */
static void pgd_reference(const calib_quad *q, double *l)
{
    size_t k = q->k;
    double g[16], v[16], w[16], L = 0.0;
    for (size_t i = 0; i < k; i++) L += 2.0 * q->G[i * k + i], l[i] = 1.0 / (double)k;
    for (int it = 0; it < 200000; it++) {
        calib_quad_grad(q, l, g);
        for (size_t i = 0; i < k; i++) v[i] = l[i] - g[i] / L;
        /* bisection for the simplex projection threshold */
        double a = -1e3, b = 1e3;
        for (int r = 0; r < 200; r++) {
            double tau = 0.5 * (a + b), s = 0.0;
            for (size_t i = 0; i < k; i++) s += fmax(v[i] - tau, 0.0);
            if (s > 1.0) a = tau; else b = tau;
        }
        for (size_t i = 0; i < k; i++) w[i] = fmax(v[i] - 0.5 * (a + b), 0.0);
        memcpy(l, w, k * sizeof *l);
    }
}

/* Gaussian N(mu, v I) in dim d: exact score of its VE-diffused law */
static void gauss_score(size_t n, size_t dim, const double *mu, double v, const float *std, const float *xt,
                        float *out)
{
    for (size_t m = 0; m < n; m++) {
        double vv = v + (double)std[m] * std[m];
        for (size_t d = 0; d < dim; d++) out[m * dim + d] = (float)(-(xt[m * dim + d] - mu[d]) / vv);
    }
}

/* Accumulate B batches of n draws; returns the QP lambda of the merged quadratic, and the standard error of
 * lambda from the spread of the per-batch QP solutions (se = sd_b / sqrt(B)). */
typedef void (*draw_fn)(void *ctx, rng *r, size_t n, float *x0);
typedef void (*scores_fn)(void *ctx, size_t n, const float *t, const float *std, const float *xt, float *const *s);

static void planted_run(size_t k, size_t dim, draw_fn draw, scores_fn scores, void *ctx, double t_lo, double t_hi,
                        size_t B, size_t n, double *lam, double *se, double *gap)
{
    sde ve = sde_ve(25.0);
    rng *r = rng_alloc(11, 3);
    float *x0 = malloc(n * dim * sizeof *x0), *z = malloc(n * dim * sizeof *z), *xt = malloc(n * dim * sizeof *xt);
    float *t = malloc(n * sizeof *t), *std = malloc(n * sizeof *std), *sbuf = malloc(k * n * dim * sizeof *sbuf);
    float *s[8];
    for (size_t i = 0; i < k; i++) s[i] = sbuf + i * n * dim;
    calib_quad *all = calib_quad_alloc(k), *one = calib_quad_alloc(k);
    double m1[8] = {0}, m2[8] = {0}, lb[8], g;
    for (size_t bi = 0; bi < B; bi++) {
        draw(ctx, r, n, x0);
        dsm_perturb(&ve, r, n, dim, x0, t_lo, t_hi, t, std, z, xt);
        scores(ctx, n, t, std, xt, s);
        calib_quad_reset(one);
        calib_quad_add(one, n, dim, (const float *const *)s, std, z);
        calib_quad_merge(all, one);
        calib_qp_simplex(one, lb, &g);
        for (size_t i = 0; i < k; i++) m1[i] += lb[i], m2[i] += lb[i] * lb[i];
    }
    calib_qp_simplex(all, lam, gap);
    *se = 0.0;
    for (size_t i = 0; i < k; i++) {
        double mean = m1[i] / (double)B, var = (m2[i] / (double)B - mean * mean) * (double)B / (double)(B - 1);
        *se = fmax(*se, sqrt(fmax(var, 0.0) / (double)B));
    }
    calib_quad_free(all);
    calib_quad_free(one);
    free(x0), free(z), free(xt), free(t), free(std), free(sbuf);
    rng_free(r);
}

/* case A: 1-D equal-variance Gaussians N(mu_i, v) through mixture_oracle_model; target N(sum lambda0_i mu_i, v)
 * is p_lambda0 and, equal variances, stays the barycenter of the diffused auxiliaries at every t (unbiased). */
typedef struct {
    mixture target;
    mixture_oracle aux[3];
    size_t k;
} case_mix;

static void draw_mix(void *ctx, rng *r, size_t n, float *x0)
{
    case_mix *c = ctx;
    double *tmp = malloc(n * sizeof *tmp);
    mixture_sample(&c->target, r, tmp, n);
    for (size_t i = 0; i < n; i++) x0[i] = (float)tmp[i];
    free(tmp);
}

static void scores_mix(void *ctx, size_t n, const float *t, const float *std, const float *xt, float *const *s)
{
    (void)std;
    case_mix *c = ctx;
    for (size_t i = 0; i < c->k; i++) {
        score_model m = mixture_oracle_model(&c->aux[i], "aux");
        score_eval(&m, n, t, 1, xt, s[i]);
    }
}

/* case B: 2-D isotropic Gaussians, k = 3, affinely independent means: lambda0 identifiable, unbiased */
typedef struct {
    double mu[3][2], v, mu0[2];
} case_2d;

static void draw_2d(void *ctx, rng *r, size_t n, float *x0)
{
    case_2d *c = ctx;
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < 2; d++) x0[i * 2 + d] = (float)(c->mu0[d] + sqrt(c->v) * rng_gaussian(r));
}

static void scores_2d(void *ctx, size_t n, const float *t, const float *std, const float *xt, float *const *s)
{
    (void)t;
    case_2d *c = ctx;
    for (int i = 0; i < 3; i++) gauss_score(n, 2, c->mu[i], c->v, std, xt, s[i]);
}

/* case C: mixtures, target := p_lambda0 (not a mixture) sampled by inverse CDF; small t: bias O(std^2) */
typedef struct {
    bary_cdf_table *tab;
    mixture_oracle aux[2];
    size_t k;
} case_bary;

static void draw_bary(void *ctx, rng *r, size_t n, float *x0)
{
    case_bary *c = ctx;
    for (size_t i = 0; i < n; i++) x0[i] = (float)bary_cdf_quantile(c->tab, rng_uniform_pos(r));
}

static void scores_bary(void *ctx, size_t n, const float *t, const float *std, const float *xt, float *const *s)
{
    (void)std;
    case_bary *c = ctx;
    for (size_t i = 0; i < c->k; i++) {
        score_model m = mixture_oracle_model(&c->aux[i], "aux");
        score_eval(&m, n, t, 1, xt, s[i]);
    }
}

int main(void)
{
    gsl_set_error_handler_off();
    rng *r = rng_alloc(5, 0);
    char name[256];

    /* ---- the quadratic equals the DSM loss of the fused score; merging = one big set ---- */
    {
        const size_t k = 3, n = 500, dim = 4;
        float *s[3], *z = malloc(n * dim * sizeof *z), *std = malloc(n * sizeof *std), *fused = malloc(n * dim * 4);
        for (size_t i = 0; i < k; i++) {
            s[i] = malloc(n * dim * sizeof *s[i]);
            rng_gaussian_fill(r, s[i], n * dim);
        }
        rng_gaussian_fill(r, z, n * dim);
        for (size_t m = 0; m < n; m++) std[m] = (float)(0.01 + rng_uniform(r));
        double lam[3] = {0.2, 0.3, 0.5};
        for (size_t j = 0; j < n * dim; j++) fused[j] = (float)(lam[0] * s[0][j] + lam[1] * s[1][j] + lam[2] * s[2][j]);
        calib_quad *q = calib_quad_alloc(k), *h1 = calib_quad_alloc(k), *h2 = calib_quad_alloc(k);
        calib_quad_add(q, n, dim, (const float *const *)s, std, z);
        CHECK_CLOSE(calib_quad_loss(q, lam), dsm_loss(n, dim, fused, std, z, NULL), 0, 1e-5,
                    "quadratic form = dsm_loss of sum_j lambda_j s_j (float rounding)");
        const float *sa[3] = {s[0], s[1], s[2]}, *sb[3] = {s[0] + 200 * dim, s[1] + 200 * dim, s[2] + 200 * dim};
        calib_quad_add(h1, 200, dim, sa, std, z);
        calib_quad_add(h2, 300, dim, sb, std + 200, z + 200 * dim);
        calib_quad_merge(h1, h2);
        double d = fabs(h1->c - q->c);
        for (size_t i = 0; i < k * k; i++) d = fmax(d, fabs(h1->G[i] - q->G[i]));
        for (size_t i = 0; i < k; i++) d = fmax(d, fabs(h1->b[i] - q->b[i]));
        snprintf(name, sizeof name, "merge(200 + 300 draws) = one set of 500 (max diff %.1e), count 500", d);
        CHECK(d <= 1e-12 && h1->count == 500.0, name);
        calib_quad_reset(h1);
        CHECK(h1->count == 0.0 && h1->c == 0.0 && h1->G[0] == 0.0, "calib_quad_reset zeroes the means");
        calib_quad_free(q), calib_quad_free(h1), calib_quad_free(h2);
        for (size_t i = 0; i < k; i++) free(s[i]);
        free(z), free(std), free(fused);
    }

    /* ---- QP vs brute-force grid, k = 2 and 3 ---- */
    for (size_t k = 2; k <= 3; k++) {
        int ok_loss = 1, ok_arg = 1, ok_gap = 1, n_face = 0;
        double worst = 0.0;
        size_t N = k == 2 ? 100000 : 600;
        for (int rep = 0; rep < 12; rep++) {
            calib_quad *q = calib_quad_alloc(k);
            random_quad(q, r, rep % 3 == 0 ? 1 : 6, rep % 4 == 1 ? 2.0 : 0.0);
            double l[3], lg[3], gap;
            calib_qp_simplex(q, l, &gap);
            double fq = calib_quad_loss(q, l), fg = grid_min(q, N, lg);
            ok_loss &= fq <= fg + 1e-12;
            ok_gap &= gap <= 1e-10;
            if (rep % 3 != 0)
                for (size_t i = 0; i < k; i++) worst = fmax(worst, fabs(l[i] - lg[i]));
            for (size_t i = 0; i < k; i++) n_face += l[i] == 0.0;
            /* the grid argmin is within a few grid steps unless the minimiser is non-unique (rank-1 G) */
            if (rep % 3 != 0) ok_arg &= fabs(l[0] - lg[0]) <= 3.0 / (double)N + 1e-3 * (k == 3);
            calib_quad_free(q);
        }
        snprintf(name, sizeof name, "QP k=%zu: loss <= brute-force grid min (12 random problems, %d zero coords)", k,
                 n_face);
        CHECK(ok_loss, name);
        snprintf(name, sizeof name, "QP k=%zu: argmin agrees with the grid where unique (G full rank; max |diff| %.1e)", k, worst);
        CHECK(ok_arg, name);
        snprintf(name, sizeof name, "QP k=%zu: certified gap <= 1e-10", k);
        CHECK(ok_gap, name);
    }

    /* ---- vertex and face solutions ---- */
    {
        calib_quad *q = calib_quad_alloc(3);
        double I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
        memcpy(q->G, I, sizeof I);
        q->b[0] = 2.0, q->b[1] = 0.0, q->b[2] = 0.0;   /* min |l|^2 - 4 l_1: vertex e_1 */
        double l[3], gap;
        calib_qp_simplex(q, l, &gap);
        CHECK(l[0] == 1.0 && l[1] == 0.0 && l[2] == 0.0 && gap <= 1e-14, "QP: solution at a vertex (exactly e_1)");
        q->b[0] = 0.8, q->b[1] = 0.6, q->b[2] = -0.3;   /* projection of b onto the simplex: (0.6, 0.4, 0) */
        calib_qp_simplex(q, l, &gap);
        snprintf(name, sizeof name, "QP: solution on an edge (0.6, 0.4, 0): got (%.15g, %.15g, %.3g)", l[0], l[1], l[2]);
        CHECK(fabs(l[0] - 0.6) <= 1e-13 && fabs(l[1] - 0.4) <= 1e-13 && l[2] == 0.0 && gap <= 1e-13, name);
        calib_quad_free(q);
    }

    /* ---- singular G: a duplicated auxiliary, and a nearly collinear one ---- */
    {
        calib_quad *q3 = calib_quad_alloc(3), *q2 = calib_quad_alloc(2);
        random_quad(q2, r, 6, 0.0);
        /* auxiliary 3 duplicates auxiliary 1 */
        int map[3] = {0, 1, 0};
        for (int i = 0; i < 3; i++) {
            q3->b[i] = q2->b[map[i]];
            for (int j = 0; j < 3; j++) q3->G[i * 3 + j] = q2->G[map[i] * 2 + map[j]];
        }
        q3->c = q2->c;
        double l3[3], l2[2], g3, g2;
        int st = calib_qp_simplex(q3, l3, &g3);
        calib_qp_simplex(q2, l2, &g2);
        snprintf(name, sizeof name, "QP singular G (duplicate aux): loss = reduced problem's, l1+l3 = %.12f vs %.12f",
                 l3[0] + l3[2], l2[0]);
        CHECK(st == GSL_SUCCESS && fabs(calib_quad_loss(q3, l3) - calib_quad_loss(q2, l2)) <= 1e-13 &&
                  fabs(l3[0] + l3[2] - l2[0]) <= 1e-9 && g3 <= 1e-12,
              name);
        /* nearly collinear: aux 3 = aux 1 + 1e-6 perturbation (G has a ~1e-12 eigenvalue) */
        const size_t n = 2000, dim = 2;
        float *s[3], *z = malloc(n * dim * sizeof *z), *std = malloc(n * sizeof *std);
        for (int i = 0; i < 3; i++) s[i] = malloc(n * dim * sizeof *s[i]);
        rng_gaussian_fill(r, s[0], n * dim);
        rng_gaussian_fill(r, s[1], n * dim);
        rng_gaussian_fill(r, z, n * dim);
        for (size_t j = 0; j < n * dim; j++) s[2][j] = s[0][j] + 1e-6f * (float)rng_gaussian(r);
        for (size_t m = 0; m < n; m++) std[m] = 1.0f;
        calib_quad_reset(q3);
        calib_quad_add(q3, n, dim, (const float *const *)s, std, z);
        double lg[3];
        st = calib_qp_simplex(q3, l3, &g3);
        double fg = grid_min(q3, 600, lg);
        snprintf(name, sizeof name, "QP nearly collinear aux: status ok, loss <= grid min, gap %.1e <= 1e-10", g3);
        CHECK(st == GSL_SUCCESS && calib_quad_loss(q3, l3) <= fg + 1e-12 && g3 <= 1e-10, name);
        for (int i = 0; i < 3; i++) free(s[i]);
        free(z), free(std);
        calib_quad_free(q3), calib_quad_free(q2);
    }

    /* ---- larger k: enumeration (k = 8) vs projected gradient, and the FISTA path (k = 14) ---- */
    {
        calib_quad *q = calib_quad_alloc(8);
        random_quad(q, r, 5, 0.3);   /* rank 5 < k = 8: singular */
        double l[8], lr[8], gap;
        calib_qp_simplex(q, l, &gap);
        pgd_reference(q, lr);
        snprintf(name, sizeof name, "QP k=8 rank 5: loss = projected-gradient reference (diff %.1e), gap %.1e",
                 calib_quad_loss(q, l) - calib_quad_loss(q, lr), gap);
        CHECK(calib_quad_loss(q, l) <= calib_quad_loss(q, lr) + 1e-12 && gap <= 1e-10, name);
        calib_quad_free(q);
        calib_quad *q14 = calib_quad_alloc(14);
        random_quad(q14, r, 8, 0.2);
        double l14[14], r14[14];
        int st = calib_qp_simplex(q14, l14, &gap);
        pgd_reference(q14, r14);
        snprintf(name, sizeof name, "QP k=14 (FISTA): converged, gap %.1e <= 1e-10, loss <= reference + 1e-12", gap);
        CHECK(st == GSL_SUCCESS && gap <= 1e-10 && calib_quad_loss(q14, l14) <= calib_quad_loss(q14, r14) + 1e-12,
              name);
        calib_quad_free(q14);
    }

    /* ---- SGD calibration (paper code): converges to the QP solution ---- */
    {
        calib_quad *q = calib_quad_alloc(3);
        double G[9] = {1.0, 0.2, 0.1, 0.2, 0.8, 0.3, 0.1, 0.3, 1.2};
        memcpy(q->G, G, sizeof G);
        double target[3] = {0.25, 0.45, 0.30};   /* interior optimum: b = G target + mu 1 (mu arbitrary) */
        for (int i = 0; i < 3; i++) q->b[i] = G[i * 3] * target[0] + G[i * 3 + 1] * target[1] + G[i * 3 + 2] * target[2] + 0.7;
        q->c = 3.0;
        double lq[3], gap;
        calib_qp_simplex(q, lq, &gap);
        CHECK(fabs(lq[0] - 0.25) + fabs(lq[1] - 0.45) + fabs(lq[2] - 0.30) <= 1e-12, "QP: planted interior optimum");
        calib_sgd *s = calib_sgd_alloc(3, 0.1, 0.9, r);
        double first = calib_sgd_step(s, q), last = first;
        for (int it = 1; it < 3000; it++) last = calib_sgd_step(s, q);
        double e = 0.0;
        for (int i = 0; i < 3; i++) e = fmax(e, fabs(s->lambda[i] - lq[i]));
        snprintf(name, sizeof name, "SGD lr 0.1 mom 0.9, full batch, 3000 steps: |lambda - QP| = %.1e <= 1e-6", e);
        CHECK(e <= 1e-6 && last <= first, name);
        /* minibatch noise: per-step quadratics perturbed by N(0, 0.05^2) entries; Polyak average of lambda */
        calib_quad *qb = calib_quad_alloc(3);
        double avg[3] = {0};
        int cnt = 0;
        for (int it = 0; it < 20000; it++) {
            memcpy(qb->G, q->G, sizeof G);
            for (int i = 0; i < 3; i++) qb->b[i] = q->b[i] + 0.05 * rng_gaussian(r);
            qb->c = q->c;
            calib_sgd_step(s, qb);
            if (it >= 10000) {
                for (int i = 0; i < 3; i++) avg[i] += s->lambda[i];
                cnt++;
            }
        }
        e = 0.0;
        for (int i = 0; i < 3; i++) e = fmax(e, fabs(avg[i] / cnt - lq[i]));
        snprintf(name, sizeof name, "SGD with noisy minibatch quadratics: averaged lambda within %.1e <= 5e-3 of QP", e);
        CHECK(e <= 5e-3, name);
        double sum = s->lambda[0] + s->lambda[1] + s->lambda[2];
        CHECK(fabs(sum - 1.0) <= 1e-14 && s->steps == 23000, "SGD: lambda = softmax(logits) on the simplex, steps counted");
        calib_sgd_free(s);
        calib_quad_free(qb);
        calib_quad_free(q);
    }

    /* ---- planted answers from EXACT scores (dsm_perturb draws) ---- */
    {
        char err[128];
        case_mix c = {.k = 2};
        double lam0 = 0.3, mus[2] = {-2.0, 3.0};
        for (int i = 0; i < 2; i++) {
            char spec[64];
            snprintf(spec, sizeof spec, "1:%g:1", mus[i]);
            mixture_parse(spec, &c.aux[i].m, err, sizeof err);
            c.aux[i].s = sde_ve(25.0);
        }
        char spec[64];
        snprintf(spec, sizeof spec, "1:%.17g:1", lam0 * mus[0] + (1 - lam0) * mus[1]);
        mixture_parse(spec, &c.target, err, sizeof err);
        double lam[3], se, gap;
        planted_run(2, 1, draw_mix, scores_mix, &c, 1e-3, 0.3, 20, 20000, lam, &se, &gap);
        snprintf(name, sizeof name,
                 "planted 1-D Gaussians (oracle scores, 4e5 draws, t in [1e-3, .3]): |lambda1 - 0.3| = %.4f <= 4 se = %.4f",
                 fabs(lam[0] - lam0), 4 * se);
        CHECK(fabs(lam[0] - lam0) <= 4 * se + 1e-4 && gap <= 1e-10, name);

        case_2d c2 = {.mu = {{-2.0, 0.0}, {2.0, -1.0}, {0.0, 3.0}}, .v = 1.0};
        double l0[3] = {0.2, 0.5, 0.3};
        for (int d = 0; d < 2; d++) c2.mu0[d] = l0[0] * c2.mu[0][d] + l0[1] * c2.mu[1][d] + l0[2] * c2.mu[2][d];
        planted_run(3, 2, draw_2d, scores_2d, &c2, 1e-3, 0.3, 20, 20000, lam, &se, &gap);
        double e = 0.0;
        for (int i = 0; i < 3; i++) e = fmax(e, fabs(lam[i] - l0[i]));
        snprintf(name, sizeof name,
                 "planted 2-D Gaussians k=3 (exact scores, 4e5 draws): max |lambda - lambda0| = %.4f <= 4 se = %.4f", e,
                 4 * se);
        CHECK(e <= 4 * se + 1e-4 && gap <= 1e-10, name);

        /* mixtures: target p_lambda0 of two App. I-like auxiliaries, exact oracle scores, small t */
        case_bary cb = {.k = 2};
        mixture_parse("0.5:-3:1,0.5:5:1", &cb.aux[0].m, err, sizeof err);
        mixture_parse("0.7:-5:1,0.3:4:1", &cb.aux[1].m, err, sizeof err);
        cb.aux[0].s = cb.aux[1].s = sde_ve(25.0);
        const mixture *am[2] = {&cb.aux[0].m, &cb.aux[1].m};
        double lo, hi, lb0[2] = {0.4, 0.6};
        bary_mixture_interval(2, am, 12.0, &lo, &hi);
        bary_logpdf_fn fn[2] = {bary_mixture_logpdf, bary_mixture_logpdf};
        void *ctx[2] = {&cb.aux[0].m, &cb.aux[1].m};
        bary_family *f = bary_family_alloc(2, fn, ctx, lo, hi);
        cb.tab = bary_cdf_tabulate(f, lb0, 20001);
        planted_run(2, 1, draw_bary, scores_bary, &cb, 1e-3, 1e-2, 20, 20000, lam, &se, &gap);
        /* bias: the barycenter of the diffused auxiliaries differs from the diffused barycenter by O(std^2),
         * std^2 <= 0.01 here; allowance 0.02 on top of the sampling noise */
        snprintf(name, sizeof name,
                 "planted mixture barycenter (oracle scores, t in [1e-3, 1e-2]): |lambda1 - 0.4| = %.4f <= 4 se + 0.02 = %.4f",
                 fabs(lam[0] - lb0[0]), 4 * se + 0.02);
        CHECK(fabs(lam[0] - lb0[0]) <= 4 * se + 0.02, name);
        bary_cdf_table_free(cb.tab);
        bary_family_free(f);
    }
    rng_free(r);
    return test_finish();
}
