/* methods: the fusion methods of exp_gaussian and their evaluation.
 *   - ScoreFusion calibration (Algorithm 1, eq. 10): the paper code's softmax-logit SGD with momentum on
 *     minibatches with t ~ U[eps T~, T~], and the exact minimiser of the SAME empirical loss (every draw the SGD
 *     saw, pooled into one quadratic in lambda) on the simplex;
 *   - vanilla fusion (eq. 9, Remark 2): Frank-Wolfe (exact line search) with exact auxiliary densities and the
 *     sample-mean estimate of E_nu[log p_i] from the n target samples, to a certified duality gap;
 *   - evaluation: reverse-SDE samples (or exact inverse-CDF samples of p_lambda), mapped to data coordinates,
 *     W1 against fresh target draws (scipy's definition) and against the exact target CDF. */
#include "barycenter.h"
#include "calib.h"
#include "dsm.h"
#include "eg.h"
#include "fw.h"
#include "log.h"
#include "mem.h"
#include "rng.h"
#include "sampler.h"
#include "w1.h"
#include <gsl/gsl_errno.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void eg_calibrate(const eg_config *c, const score_model *const *aux, const float *y_train, size_t n,
                  uint64_t stream, eg_calib_result *res)
{
    const size_t k = c->k, batch = n < c->base_train.batch ? n : c->base_train.batch;
    sde ve = sde_ve(25.0);
    rng *r = rng_alloc(c->seed, stream);
    calib_sgd *sgd = calib_sgd_alloc(k, c->calib_lr, c->calib_momentum, r);
    calib_quad *qb = calib_quad_alloc(k), *qall = calib_quad_alloc(k);
    size_t *idx = mem_new(size_t, n);
    float *x0 = mem_new(float, batch), *t = mem_new(float, batch), *sd = mem_new(float, batch),
          *z = mem_new(float, batch), *xt = mem_new(float, batch), *s = mem_new(float, k * batch);
    const float *sp[EG_MAX_AUX];
    for (size_t i = 0; i < k; i++) sp[i] = s + i * batch;
    for (size_t i = 0; i < n; i++) idx[i] = i;
    double last = NAN;
    for (size_t e = 0; e < c->calib_epochs; e++) {
        rng_shuffle(r, idx, n);   /* DataLoader(shuffle=True) */
        for (size_t b0 = 0; b0 < n; b0 += batch) {
            size_t m = n - b0 < batch ? n - b0 : batch;
            for (size_t j = 0; j < m; j++) x0[j] = y_train[idx[b0 + j]];
            dsm_perturb(&ve, r, m, 1, x0, c->calib_t_lo, c->calib_t_hi, t, sd, z, xt);
            for (size_t i = 0; i < k; i++) score_eval(aux[i], m, t, 1, xt, s + i * batch);
            calib_quad_reset(qb);
            calib_quad_add(qb, m, 1, sp, sd, z);
            last = calib_sgd_step(sgd, qb);
            calib_quad_merge(qall, qb);
        }
    }
    memcpy(res->lambda_sgd, sgd->lambda, k * sizeof(double));
    res->sgd_final_loss = last;
    if (calib_qp_simplex(qall, res->lambda_exact, &res->qp_gap) != GSL_SUCCESS)
        log_info("warning: calibration QP did not certify its optimum (gap %.3g)", res->qp_gap);
    res->exact_loss = calib_quad_loss(qall, res->lambda_exact);
    free(idx);
    free(x0);
    free(t);
    free(sd);
    free(z);
    free(xt);
    free(s);
    calib_quad_free(qb);
    calib_quad_free(qall);
    calib_sgd_free(sgd);
    rng_free(r);
}

bary_family *eg_family(const eg_config *c, const mixture *aux_y)
{
    bary_logpdf_fn fn[EG_MAX_AUX];
    void *ctx[EG_MAX_AUX];
    const mixture *mp[EG_MAX_AUX];
    for (size_t i = 0; i < c->k; i++) {
        fn[i] = bary_mixture_logpdf;
        ctx[i] = (void *)&aux_y[i];
        mp[i] = &aux_y[i];
    }
    /* the target (in the same coordinates, via the family's users) must also lie inside: widen by its range */
    double lo, hi;
    bary_mixture_interval(c->k, mp, 12.0, &lo, &hi);
    lo -= 12.0;
    hi += 12.0;
    return bary_family_alloc(c->k, fn, ctx, lo, hi);
}

int eg_vanilla_fw(const eg_config *c, const mixture *aux_y, const double *hbar, double negent, double *lambda_out,
                  double *gap, io_csv *fw_csv, long n, const char *mode)
{
    bary_family *fam = eg_family(c, aux_y);
    fw_vanilla *obj = fw_vanilla_alloc(fam, hbar, negent);
    fw_state *s = fw_alloc(c->k);
    double l0[EG_MAX_AUX];
    for (size_t i = 0; i < c->k; i++) l0[i] = 1.0 / (double)c->k;
    /* exact line search: the open-loop step 2/(t+2) stopped paper mode at certified gaps of 4e-4..2e-3 after
     * 2,000 iterations (lambda off by ~4e-4); one evaluation of F costs a few quadratures, so searching the
     * segment exactly is cheap and converges linearly (a handful of iterations for two auxiliaries) */
    fw_set_step(s, FW_STEP_LINESEARCH);
    if (fw_init(s, fw_vanilla_fdf, obj, l0) != GSL_SUCCESS)
        log_die("%s n=%ld: Frank-Wolfe: the objective is not finite at the start", mode, n);
    int it = 0;
    const int max_iter = EG_FW_MAX_ITER;
    const double tol = EG_FW_TOL;
    for (; it < max_iter; it++) {
        int status = fw_iterate(s);
        if (fw_csv) {
            FILE *f = io_csv_stream(fw_csv);
            fprintf(f, "%ld,%s,%zu,%.12g,%.6g", n, mode, s->iter, s->f, s->gap);
            for (size_t i = 0; i < c->k; i++) fprintf(f, ",%.9f", s->lambda[i]);
            fputc('\n', f);
        }
        if (status != GSL_SUCCESS) {
            log_info("warning: Frank-Wolfe stopped on GSL status %d (%s)", status, gsl_strerror(status));
            break;
        }
        if (fw_test_gap(s, tol) == GSL_SUCCESS) break;
    }
    memcpy(lambda_out, s->lambda, c->k * sizeof(double));
    *gap = s->gap;
    fw_free(s);
    fw_vanilla_free(obj);
    bary_family_free(fam);
    return it + 1;
}

typedef struct {
    const mixture *m;
} cdf_ctx;

static double target_cdf(void *ctx, double x) { return mixture_cdf(((cdf_ctx *)ctx)->m, x); }

/* W1 of one repeat: against fresh target draws and against the exact target CDF */
static void w1_pair(const eg_config *c, const double *x, size_t m, long n, size_t rep, double *w1, double *w1cdf)
{
    double *ref = mem_new(double, m);
    rng *rt = rng_alloc(c->seed, rng_stream_id(EG_RNG_TEST, (uint64_t)n * 1000 + rep));
    mixture_sample(&c->target, rt, ref, m);
    *w1 = w1_samples(x, m, NULL, ref, m, NULL);
    cdf_ctx cc = {&c->target};
    double lo = mixture_quantile(&c->target, 1e-15), hi = mixture_quantile(&c->target, 1 - 1e-15);
    *w1cdf = w1_exact_cdf(x, m, target_cdf, &cc, lo, hi);
    rng_free(rt);
    free(ref);
}

/* mean and torch.std's default (unbiased) sd: the notebook reports wd.mean(), wd.std() */
static void mean_std(const double *v, size_t r, double *mean, double *sd)
{
    *mean = gsl_stats_mean(v, 1, r);
    *sd = r > 1 ? gsl_stats_sd_m(v, 1, r, *mean) : 0.0;
}

void eg_eval_sde(const eg_config *c, const score_model *m, const eg_affine *target_map, long n, uint64_t stream,
                 const char *label, eg_row *row, double *keep)
{
    const size_t ns = c->n_samples, R = c->repeats;
    float *y = mem_new(float, ns);
    double *x = mem_new(double, ns), *w = mem_new(double, R), *wc = mem_new(double, R);
    sampler_opts so = {c->sampler_steps, c->sampler_eps, 1, c->quiet ? NULL : label};
    sde ve = sde_ve(25.0);
    double t0 = log_now();
    for (size_t r = 0; r < R; r++) {
        rng *rs = rng_alloc(c->seed, rng_stream_id(stream, r));
        sampler_em(&ve, m, ns, y, &so, rs);
        rng_free(rs);
        eg_affine_invert(target_map, y, x, ns);
        int finite = 1;
        for (size_t i = 0; i < ns; i++) finite &= isfinite(x[i]);
        if (!finite) log_die("%s: sampler produced non-finite values (n=%ld)", label, n);
        if (r == 0 && keep) memcpy(keep, x, ns * sizeof(double));
        w1_pair(c, x, ns, n, r, &w[r], &wc[r]);
    }
    mean_std(w, R, &row->w1_mean, &row->w1_std);
    mean_std(wc, R, &row->w1cdf_mean, &row->w1cdf_std);
    row->seconds = log_now() - t0;
    free(y);
    free(x);
    free(w);
    free(wc);
}

void eg_eval_exact_bary(const eg_config *c, const mixture *aux_y, const double *lambda, const eg_affine *target_map,
                        long n, uint64_t stream, eg_row *row, double *keep)
{
    const size_t ns = c->n_samples, R = c->repeats;
    bary_family *fam = eg_family(c, aux_y);
    bary_cdf_table *tab = bary_cdf_tabulate(fam, lambda, 1 << 14);
    float *y = mem_new(float, ns);
    double *x = mem_new(double, ns), *w = mem_new(double, R), *wc = mem_new(double, R);
    double t0 = log_now();
    for (size_t r = 0; r < R; r++) {
        rng *rs = rng_alloc(c->seed, rng_stream_id(stream, r));
        for (size_t i = 0; i < ns; i++) x[i] = bary_cdf_quantile(tab, rng_uniform_pos(rs));
        rng_free(rs);
        for (size_t i = 0; i < ns; i++) y[i] = (float)x[i];
        eg_affine_invert(target_map, y, x, ns);
        if (r == 0 && keep) memcpy(keep, x, ns * sizeof(double));
        w1_pair(c, x, ns, n, r, &w[r], &wc[r]);
    }
    mean_std(w, R, &row->w1_mean, &row->w1_std);
    mean_std(wc, R, &row->w1cdf_mean, &row->w1cdf_std);
    row->seconds = log_now() - t0;
    bary_cdf_table_free(tab);
    bary_family_free(fam);
    free(y);
    free(x);
    free(w);
    free(wc);
}

double eg_kl_bary(const eg_config *c, const mixture *aux_y, const double *lambda, const eg_affine *target_map)
{
    bary_family *fam = eg_family(c, aux_y);
    mixture ty = mixture_affine(&c->target, target_map->shift, target_map->scale);
    double kl = NAN, err = 0;
    int st = bary_kl(fam, bary_mixture_logpdf, &ty, lambda, &kl, &err);
    if (st != GSL_SUCCESS) log_info("warning: KL quadrature status %d (%s), error %.2g", st, gsl_strerror(st), err);
    bary_family_free(fam);
    return kl;
}
