/* test_likelihood: the probability-flow ODE likelihood against the Gaussian known answer, the barycenter model,
 * dequantisation and the two bits/dim formulas (common/likelihood.h).
 *
 * Known answer. Data x0 ~ N(mu, diag(s0^2)) under dX = f X dt + g dW has p_t = N(m(t), diag(v(t))) with
 * m = alpha(t) mu, v = alpha(t)^2 s0^2 + std(t)^2, and exact score s = -(x - m) / v with diagonal Jacobian -1/v.
 * Along the PF-ODE z = (x - m) / sqrt(v) is constant (dz/dt = 0 using dm/dt = f m and dv/dt = 2 f v + g^2), so
 *   x(t1) = m(t1) + (x0 - m(t0)) sqrt(v(t1) / v(t0)),
 * and the exact divergence integral is log p_t0(x0) - log p_t1(x(t1)). The code's answer uses the prior
 * pi = N(0, prior_std^2) in place of p_t1, so with the exact divergence
 *   logp = log N(x0; m(t0), v(t0)) + [log pi(x(t1)) - log N(x(t1); m(t1), v(t1))],
 * the bracket being the prior-mismatch term (it vanishes only when p_t1 = pi). With the Rademacher probe,
 * <e, J^T e> = sum_j e_j^2 J_jj = tr J exactly; with the Gaussian probe the error of sample i is exactly
 *   sum_j (e_ij^2 - 1) K_j,   K_j = int_t0^t1 g^2 / (2 v_j) dt = 1/2 ln(v_j(t1) / v_j(t0)) (VE),
 * of mean 0 and variance 2 sum_j K_j^2. */
#include "likelihood.h"
#include "philox.h"
#include "mem.h"
#include "rng.h"
#include "sde.h"
#include "test.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- the exact Gaussian score model */
typedef struct {
    size_t dim;
    const sde *s;
    const double *mu;    /* [dim] */
    const double *s0sq;  /* [dim] data variances */
} gauss;

static void gauss_vjp(void *ctx, size_t n, float t, const float *x, const float *e, float *score, float *gx)
{
    const gauss *g = ctx;
    const double a = sde_alpha(g->s, t), sd = sde_std(g->s, t);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < g->dim; j++) {
            double v = a * a * g->s0sq[j] + sd * sd;
            size_t k = i * g->dim + j;
            score[k] = (float)(-((double)x[k] - a * g->mu[j]) / v);
            gx[k] = (float)(-(double)e[k] / v);   /* J = -I / v is symmetric */
        }
}

static lik_model gauss_model(gauss *g) { return (lik_model){g->dim, g, gauss_vjp, "gauss"}; }

static double log_normal(double x, double m, double v) { return -0.5 * log(2.0 * M_PI * v) - (x - m) * (x - m) / (2.0 * v); }

/* The exact PF-ODE answer for one sample (see the top comment); *mismatch gets the prior-mismatch term. */
static double exact_logp(const gauss *g, const float *x0, double t0, double t1, double *mismatch)
{
    const sde *s = g->s;
    const double a0 = sde_alpha(s, t0), a1 = sde_alpha(s, t1), sd0 = sde_std(s, t0), sd1 = sde_std(s, t1);
    const double pstd = sde_prior_std(s);
    double lp = 0.0, mm = 0.0;
    for (size_t j = 0; j < g->dim; j++) {
        double v0 = a0 * a0 * g->s0sq[j] + sd0 * sd0, v1 = a1 * a1 * g->s0sq[j] + sd1 * sd1;
        double m0 = a0 * g->mu[j], m1 = a1 * g->mu[j];
        double x1 = m1 + ((double)x0[j] - m0) * sqrt(v1 / v0);
        lp += log_normal(x0[j], m0, v0);
        mm += log_normal(x1, 0.0, pstd * pstd) - log_normal(x1, m1, v1);
    }
    if (mismatch) *mismatch = mm;
    return lp + mm;
}

/* x0[n*dim] ~ N(mu, s0sq) */
static void draw_data(const gauss *g, size_t n, rng *r, float *x0)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < g->dim; j++)
            x0[i * g->dim + j] = (float)(g->mu[j] + sqrt(g->s0sq[j]) * rng_gaussian(r));
}

/* Runs the likelihood and returns max_i |logp_i - exact_i| / |exact_i|; prints the NFE and the mismatch. */
static double known_answer(const char *label, const gauss *g, size_t n, int probe, uint64_t seed, lik_stats *st)
{
    rng *rd = rng_alloc(seed, 1), *rp = rng_alloc(seed, 2);
    float *x0 = mem_new(float, n * g->dim);
    double *logp = mem_new(double, n);
    draw_data(g, n, rd, x0);
    lik_opts o = lik_opts_paper();
    o.probe = probe;
    lik_model m = gauss_model((gauss *)g);
    int rc = lik_logp_batch(g->s, &m, n, x0, &o, rp, logp, st);
    double maxrel = 0.0, maxmm = 0.0;
    for (size_t i = 0; i < n; i++) {
        double mm, ex = exact_logp(g, x0 + i * g->dim, o.t0, o.t1, &mm);
        maxrel = fmax(maxrel, fabs(logp[i] - ex) / fabs(ex));
        maxmm = fmax(maxmm, fabs(mm));
    }
    printf("  %s: D = %zu, n = %zu: nfe %ld (%ld steps, %ld rejected), max rel err %.2e, logp[0] %.6f, "
           "|prior mismatch| up to %.3g nats\n",
           label, g->dim, n, st->nfe, st->steps, st->rejected, maxrel, logp[0], maxmm);
    if (rc != LIK_OK) maxrel = INFINITY;
    rng_free(rd);
    rng_free(rp);
    free(x0);
    free(logp);
    return maxrel;
}

static void fill(double *a, size_t n, double v)
{
    for (size_t i = 0; i < n; i++) a[i] = v;
}

static void test_known_answer_rademacher(void)
{
    sde ve = sde_ve(25.0);
    lik_stats st;
    char name[200];
    {   /* D = 3, isotropic */
        double mu[3] = {0.5, -1.0, 2.0}, s0sq[3] = {1.0, 1.0, 1.0};
        gauss g = {3, &ve, mu, s0sq};
        double e = known_answer("VE D=3 isotropic, Rademacher", &g, 8, LIK_PROBE_RADEMACHER, 11, &st);
        snprintf(name, sizeof name, "lik: VE D=3 Rademacher matches the Gaussian known answer (rel %.2e, nfe %ld)", e, st.nfe);
        CHECK(e < 1e-4 && st.status == LIK_OK && st.t_end == 1.0, name);
        CHECK(st.nfe == 2 + 6 * (st.steps + st.rejected), "lik: nfe = model calls = scipy's nfev");
    }
    const size_t D = 784;
    double *mu = mem_new(double, D), *s0sq = mem_new(double, D);
    for (size_t j = 0; j < D; j++) mu[j] = 0.3 * sin((double)j);
    {   /* D = 784, isotropic */
        fill(s0sq, D, 1.0);
        gauss g = {D, &ve, mu, s0sq};
        double e = known_answer("VE D=784 isotropic, Rademacher", &g, 8, LIK_PROBE_RADEMACHER, 12, &st);
        snprintf(name, sizeof name, "lik: VE D=784 Rademacher matches the known answer (rel %.2e, nfe %ld)", e, st.nfe);
        CHECK(e < 1e-4 && st.status == LIK_OK, name);
    }
    {   /* D = 784, per-dimension variances from 0.3^2 to 1.5^2 */
        for (size_t j = 0; j < D; j++) s0sq[j] = pow(0.3 + 1.2 * (double)j / (double)(D - 1), 2.0);
        gauss g = {D, &ve, mu, s0sq};
        double e = known_answer("VE D=784 non-isotropic, Rademacher", &g, 8, LIK_PROBE_RADEMACHER, 13, &st);
        snprintf(name, sizeof name, "lik: VE D=784 non-isotropic Rademacher matches the known answer (rel %.2e, nfe %ld)", e,
                 st.nfe);
        CHECK(e < 1e-4 && st.status == LIK_OK, name);
    }
    {   /* OU (the f(t) x drift and its f dim divergence): a = 1, s = sqrt 2, prior N(0, 1) */
        sde ou = sde_ou(1.0, sqrt(2.0), 1.0);
        double mu3[3] = {0.5, -1.0, 2.0}, s3[3] = {0.25, 1.0, 4.0};
        gauss g = {3, &ou, mu3, s3};
        double e = known_answer("OU D=3 non-isotropic, Rademacher", &g, 8, LIK_PROBE_RADEMACHER, 14, &st);
        snprintf(name, sizeof name, "lik: OU D=3 Rademacher matches the known answer (rel %.2e, nfe %ld)", e, st.nfe);
        CHECK(e < 1e-4 && st.status == LIK_OK, name);
    }
    free(mu);
    free(s0sq);
}

/* Gaussian probe: per-sample error against the known answer; its mean must be 0 within 4 standard errors of
 * the analytic variance 2 sum_j K_j^2, its sample variance must match that variance, and, replaying the probe
 * (the first n*dim Gaussian draws of the stream, likelihood.h), each error must be sum_j (e_ij^2 - 1) K_j. */
static void test_known_answer_gaussian(void)
{
    sde ve = sde_ve(25.0);
    const size_t D = 784, n = 1000;
    const double t0 = 1e-5, t1 = 1.0;
    double *mu = mem_new(double, D), *s0sq = mem_new(double, D), *K = mem_new(double, D);
    for (size_t j = 0; j < D; j++) {
        mu[j] = 0.3 * sin((double)j);
        s0sq[j] = pow(0.5 + 0.5 * (double)(j % 5), 2.0);
        double v0 = s0sq[j] + pow(sde_std(&ve, t0), 2), v1 = s0sq[j] + pow(sde_std(&ve, t1), 2);
        K[j] = 0.5 * log(v1 / v0);
    }
    gauss g = {D, &ve, mu, s0sq};
    lik_model m = gauss_model(&g);
    rng *rd = rng_alloc(21, 1), *rp = rng_alloc(21, 2), *replay = rng_alloc(21, 2);
    float *x0 = mem_new(float, n * D), *e = mem_new(float, n * D);
    double *logp = mem_new(double, n);
    draw_data(&g, n, rd, x0);
    lik_opts o = lik_opts_paper();   /* the Gaussian probe */
    lik_stats st;
    int rc = lik_logp_batch(&ve, &m, n, x0, &o, rp, logp, &st);
    philox_probe(e, n * D, 0, rng_u64(replay), 0);   /* the probe lik_logp_batch drew (likelihood.h) */

    double var = 0.0;
    for (size_t j = 0; j < D; j++) var += 2.0 * K[j] * K[j];
    double sum = 0.0, sum2 = 0.0, max_resid = 0.0;
    for (size_t i = 0; i < n; i++) {
        double err = logp[i] - exact_logp(&g, x0 + i * D, t0, t1, NULL);
        double hutch = 0.0;
        for (size_t j = 0; j < D; j++) hutch += ((double)e[i * D + j] * e[i * D + j] - 1.0) * K[j];
        max_resid = fmax(max_resid, fabs(err - hutch) / fabs(logp[i]));
        sum += err;
        sum2 += err * err;
    }
    double mean = sum / (double)n, svar = (sum2 - (double)n * mean * mean) / (double)(n - 1), se = sqrt(var / (double)n);
    printf("  VE D=784 Gaussian probe, n = %zu: nfe %ld (%ld steps, %ld rejected); error mean %.4f (SE %.4f), "
           "sd %.4f (analytic %.4f); after removing the replayed probe's exact error: max rel %.2e\n",
           n, st.nfe, st.steps, st.rejected, mean, se, sqrt(svar), sqrt(var), max_resid);
    char name[200];
    CHECK(rc == LIK_OK, "lik: Gaussian probe run ok");
    snprintf(name, sizeof name, "lik: Gaussian probe error has mean 0 (%.4f, within 4 SE = %.4f)", mean, 4 * se);
    CHECK(fabs(mean) < 4.0 * se, name);
    /* the sample variance of n = 1000 near-Gaussian errors has relative sd sqrt(2 / n) = 0.045 */
    snprintf(name, sizeof name, "lik: Gaussian probe error variance matches 2 sum K^2 (ratio %.3f)", svar / var);
    CHECK(fabs(svar / var - 1.0) < 0.25, name);
    snprintf(name, sizeof name, "lik: replayed probe explains the error exactly (residual rel %.2e)", max_resid);
    CHECK(max_resid < 1e-4, name);
    /* the state (784,000 doubles) takes the OpenMP paths: one thread must give bitwise the same numbers */
    double *logp1 = mem_new(double, n);
    rng *rp1 = rng_alloc(21, 2);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    lik_logp_batch(&ve, &m, n, x0, &o, rp1, logp1, &st);
    omp_set_num_threads(nt);
    CHECK(memcmp(logp, logp1, n * sizeof *logp) == 0, "lik: 1 thread and the default thread count agree bitwise");
    rng_free(rp1);
    free(logp1);
    rng_free(rd);
    rng_free(rp);
    rng_free(replay);
    free(mu), free(s0sq), free(K), free(x0), free(e), free(logp);
}

/* The barycenter of two exact Gaussian score models with equal variances and different means: sum lambda_i s_i
 * = -(x - sum lambda_i m_i) / v, the score of N(sum lambda_i m_i, v), so logp must match that known answer. */
static void test_bary(void)
{
    sde ve = sde_ve(25.0);
    const size_t D = 784, n = 6;
    double *m1 = mem_new(double, D), *m2 = mem_new(double, D), *mb = mem_new(double, D), *s0sq = mem_new(double, D);
    const double lambda[2] = {0.3, 0.7};
    for (size_t j = 0; j < D; j++) {
        m1[j] = -1.0 + 0.2 * sin((double)j);
        m2[j] = 1.5 + 0.2 * cos((double)j);
        mb[j] = lambda[0] * m1[j] + lambda[1] * m2[j];
        s0sq[j] = 0.8;
    }
    gauss g1 = {D, &ve, m1, s0sq}, g2 = {D, &ve, m2, s0sq}, gb = {D, &ve, mb, s0sq};
    lik_model l1 = gauss_model(&g1), l2 = gauss_model(&g2), lb_exact = gauss_model(&gb);
    const lik_model *ls[2] = {&l1, &l2};
    lik_bary *b = lik_bary_alloc(2, ls, lambda);
    lik_model lb = lik_bary_model(b);

    /* the vjp itself, at one (t, x, e) */
    rng *r = rng_alloc(31, 1);
    float *x = mem_new(float, n * D), *e = mem_new(float, n * D);
    float *s_a = mem_new(float, n * D), *g_a = mem_new(float, n * D), *s_b = mem_new(float, n * D), *g_b = mem_new(float, n * D);
    draw_data(&gb, n, r, x);
    rng_gaussian_fill(r, e, n * D);
    lb.vjp(lb.ctx, n, 0.37f, x, e, s_a, g_a);
    lb_exact.vjp(lb_exact.ctx, n, 0.37f, x, e, s_b, g_b);
    double ds = 0, dg = 0, ms = 0, mg = 0;
    for (size_t k = 0; k < n * D; k++) {
        ds = fmax(ds, fabs(s_a[k] - s_b[k]));
        dg = fmax(dg, fabs(g_a[k] - g_b[k]));
        ms = fmax(ms, fabs(s_b[k]));
        mg = fmax(mg, fabs(g_b[k]));
    }
    CHECK(ds <= 1e-6 * ms && dg <= 1e-6 * mg, "lik_bary: score and vjp are lambda-weighted sums (1e-6 of max)");

    lik_stats st;
    double e_b = known_answer("barycenter of N(m1, v), N(m2, v), lambda (0.3, 0.7)", &gb, n, LIK_PROBE_RADEMACHER, 32, &st);
    (void)e_b;   /* that ran the exact barycenter Gaussian; now the same data through lik_bary */
    rng *rd = rng_alloc(32, 1), *rp = rng_alloc(32, 2);
    double *logp = mem_new(double, n);
    draw_data(&gb, n, rd, x);
    lik_opts o = lik_opts_paper();
    o.probe = LIK_PROBE_RADEMACHER;
    int rc = lik_logp_batch(&ve, &lb, n, x, &o, rp, logp, &st);
    double maxrel = 0;
    for (size_t i = 0; i < n; i++) {
        double ex = exact_logp(&gb, x + i * D, o.t0, o.t1, NULL);
        maxrel = fmax(maxrel, fabs(logp[i] - ex) / fabs(ex));
    }
    char name[200];
    snprintf(name, sizeof name,
             "lik_bary: PF-ODE logp of the barycenter score = Gaussian N(sum lambda_i m_i, v) known answer (rel %.2e, nfe %ld)",
             maxrel, st.nfe);
    CHECK(rc == LIK_OK && maxrel < 1e-4, name);
    lik_bary_free(b);
    rng_free(r), rng_free(rd), rng_free(rp);
    free(m1), free(m2), free(mb), free(s0sq), free(x), free(e), free(s_a), free(g_a), free(s_b), free(g_b), free(logp);
}

static void nan_vjp(void *ctx, size_t n, float t, const float *x, const float *e, float *score, float *gx)
{
    (void)ctx, (void)t, (void)x, (void)e;
    for (size_t k = 0; k < n * 2; k++) score[k] = gx[k] = NAN;
}

static void test_failures(void)
{
    sde ve = sde_ve(25.0);
    double mu[2] = {0, 0}, s0sq[2] = {1, 1};
    gauss g = {2, &ve, mu, s0sq};
    lik_model m = gauss_model(&g), mn = {2, NULL, nan_vjp, "nan"};
    float x[4] = {0.1f, 0.2f, -0.3f, 0.4f};
    double logp[2];
    lik_stats st;
    rng *r = rng_alloc(41, 1);
    lik_opts o = lik_opts_paper();
    o.max_nfe = 20;
    int rc = lik_logp_batch(&ve, &m, 2, x, &o, r, logp, &st);
    /* the check runs between ode_rk45_step calls; the last call started below 20 evaluations and attempts 6 per
     * trial, a rejected trial included (this probe's last step rejects one: 14 -> 26) */
    CHECK(rc == LIK_MAX_NFE && st.status == LIK_MAX_NFE && st.nfe >= 20 && st.nfe < 20 + 12 && isnan(logp[0]),
          "lik: max_nfe stops the integration (overshoot below one step of at most two trials)");
    o.max_nfe = 0;
    rc = lik_logp_batch(&ve, &mn, 2, x, &o, r, logp, &st);
    CHECK(rc == LIK_NONFINITE && st.nfe == 1, "lik: a NaN score is reported at once");
    CHECK(strcmp(lik_status_name(LIK_OK), "ok") == 0, "lik: status names");
    rng_free(r);
}

static void test_dequantise_bpd(void)
{
    const size_t N = 256 * 400;
    const double nm = 0.1307, ns = 0.3081;
    uint8_t *b = mem_new(uint8_t, N);
    float *x = mem_new(float, N);
    for (size_t i = 0; i < N; i++) b[i] = (uint8_t)(i % 256);
    rng *r = rng_alloc(51, 1);
    lik_dequantise(N, b, nm, ns, r, x);
    int in_bin = 1;
    double s = 0.0;
    for (size_t i = 0; i < N; i++) {
        double u = (double)x[i] * ns + nm;   /* back to [0, 1) */
        in_bin &= u >= b[i] / 256.0 - 1e-6 && u < (b[i] + 1) / 256.0 + 1e-6;
        s += u * 256.0 - b[i] - 0.5;   /* the uniform's offset, mean 0, sd 1/sqrt(12) */
    }
    CHECK(in_bin, "lik: dequantised pixels stay in their byte's bin [b/256, (b+1)/256) after un-normalising");
    CHECK_CLOSE(s / (double)N, 0.0, 5.0 / sqrt(12.0 * (double)N), 0, "lik: dequantisation noise has mean 1/2 bin");
    CHECK_CLOSE(x[0] * ns + nm, 0.0, 1.0 / 256.0, 0, "lik: byte 0 maps near (0 - 0.1307) / 0.3081");

    CHECK_CLOSE(lik_bpd_paper(-784.0 * M_LN2 * 2.0, 784), 10.0, 1e-12, 0, "lik: bpd_paper(-2 D ln 2) = 2 + 8");
    double d = lik_bpd_paper(-1234.5, 784) - lik_bpd_corrected(-1234.5, 784, ns);
    char name[128];
    snprintf(name, sizeof name, "lik: bpd_paper - bpd_corrected = log2(1/0.3081) = %.6f", d);
    CHECK_CLOSE(d, 1.6985, 1e-4, 0, name);
    CHECK_CLOSE(d, -log(0.3081) / M_LN2, 1e-12, 0, "lik: the offset is exactly log2(1/norm_std)");
    rng_free(r);
    free(b);
    free(x);
}

int main(void)
{
    test_known_answer_rademacher();
    test_known_answer_gaussian();
    test_bary();
    test_failures();
    test_dequantise_bpd();
    return test_finish();
}
