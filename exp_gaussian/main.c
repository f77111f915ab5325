/* exp_gaussian: the paper's 1-D bimodal Gaussian-mixture experiment (App. I, Table 6, Figures 12-15).
 * Stages: aux (train the auxiliary score networks once per coordinate mode and save them; report the best
 * KL each fusion family can reach), n (for each target size n: baseline, ScoreFusion with learned and exact
 * auxiliary scores, vanilla fusion; rows to parts/), merge (tables + comparison with the paper). */
#include "cli.h"
#include "eg.h"
#include "fw.h"
#include "barycenter.h"
#include "log.h"
#include "mem.h"
#include "rng.h"
#include <gsl/gsl_errno.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The auxiliary laws in network coordinates: the exact law behind what each auxiliary network learned. */
static void aux_in_coords(const eg_config *c, const eg_coords *co, mixture *aux_y)
{
    for (size_t i = 0; i < c->k; i++) aux_y[i] = mixture_affine(&c->aux[i], co->aux[i].shift, co->aux[i].scale);
}

static eg_coords coords_for(const eg_config *c, eg_mode mode, const double *target_train, size_t n_target)
{
    double *tr[EG_MAX_AUX], *va[EG_MAX_AUX];
    for (size_t i = 0; i < c->k; i++) eg_aux_data(c, i, &tr[i], &va[i]);
    eg_coords co = eg_coords_make(mode, c->k, tr, c->aux_train.n_train, target_train, n_target);
    for (size_t i = 0; i < c->k; i++) {
        free(tr[i]);
        free(va[i]);
    }
    return co;
}

/* Best KL(nu || p_lambda) each family can reach, with its lambda: Frank-Wolfe with exact E_nu[log p_i]
 * (n = infinity) on the family given by the auxiliaries' coordinate maps co_aux, the target mapped by co_target. */
static void family_best_one(const eg_config *c, const eg_affine *co_aux, const eg_affine *co_target, double *lam,
                            double *kl, double *gap, int *it)
{
    mixture aux_y[EG_MAX_AUX];
    for (size_t i = 0; i < c->k; i++) aux_y[i] = mixture_affine(&c->aux[i], co_aux[i].shift, co_aux[i].scale);
    mixture ty = mixture_affine(&c->target, co_target->shift, co_target->scale);
    bary_logpdf_fn fn[EG_MAX_AUX];
    void *ctx[EG_MAX_AUX];
    const mixture *mp[EG_MAX_AUX + 1];
    for (size_t i = 0; i < c->k; i++) {
        fn[i] = bary_mixture_logpdf;
        ctx[i] = &aux_y[i];
        mp[i] = &aux_y[i];
    }
    mp[c->k] = &ty;
    double lo, hi, hbar[EG_MAX_AUX], err, negent;
    bary_mixture_interval(c->k + 1, mp, 12.0, &lo, &hi);
    bary_family *fam = bary_family_alloc(c->k, fn, ctx, lo, hi);
    bary_cross_means(fam, bary_mixture_logpdf, &ty, hbar, &negent, &err);
    bary_family_free(fam);
    *it = eg_vanilla_fw(c, aux_y, hbar, negent, lam, gap, NULL, 0, "family");
    *kl = eg_kl_bary(c, aux_y, lam, co_target);
}

/* The family's coordinate maps as the networks see them: from the auxiliary training draws of seed `seed`
 * (paper mode: each auxiliary's own sample moments; corrected: the pooled ones). The target map is the
 * target's population moments in paper mode (n = infinity), the common map in corrected mode. */
static eg_coords family_coords_sampled(const eg_config *c, eg_mode mode, uint64_t seed)
{
    eg_config cs = *c;
    cs.seed = seed;
    eg_coords co = coords_for(&cs, mode, NULL, 0);
    if (mode == EG_PAPER) co.target = (eg_affine){mixture_mean(&c->target), mixture_sd(&c->target)};
    return co;
}

/* The same maps from the mixtures' own (exact) moments: the limit of infinitely many auxiliary draws. In
 * corrected mode the pooled law is the equal-weight mixture of the auxiliaries. */
static eg_coords family_coords_exact(const eg_config *c, eg_mode mode)
{
    eg_coords co = {.mode = mode};
    if (mode == EG_PAPER) {
        for (size_t i = 0; i < c->k; i++) co.aux[i] = (eg_affine){mixture_mean(&c->aux[i]), mixture_sd(&c->aux[i])};
        co.target = (eg_affine){mixture_mean(&c->target), mixture_sd(&c->target)};
        return co;
    }
    double m1 = 0.0, m2 = 0.0;
    for (size_t i = 0; i < c->k; i++) {
        double mu = mixture_mean(&c->aux[i]), sd = mixture_sd(&c->aux[i]);
        m1 += mu / (double)c->k;
        m2 += (sd * sd + mu * mu) / (double)c->k;
    }
    eg_affine common = {m1, sqrt(m2 - m1 * m1)};
    for (size_t i = 0; i < c->k; i++) co.aux[i] = common;
    co.target = common;
    return co;
}

static void lambda_str(const double *lam, size_t k, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < k && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%.4f", i ? ";" : "", lam[i]);
}

/* family_best.csv: the best KL each family can reach. Paper mode's family depends on the sample moments of the
 * auxiliary training draws (a different draw moves lambda_1 by a few hundredths), so three rows per mode:
 *   exact    the mixtures' own moments (the family the method means; no draw involved);
 *   sampled  the draws of this run's seed (the family the trained networks actually live in);
 *   spread   mean and standard deviation over EG_FAMILY_SEEDS other seeds (seed+1 ...), max gap.
 * In corrected mode KL is invariant under the common map, so the three agree up to quadrature. */
#define EG_FAMILY_SEEDS 8
static void stage_family_best(const eg_config *c, const io_meta *meta)
{
    char *path = eg_path(c, "family_best.csv");
    io_csv *csv = io_csv_open(path, "mode,moments,seeds,lambda,kl_best,lambda1_sd,kl_sd,fw_gap,fw_iterations");
    for (int mode = 0; mode < EG_NMODES; mode++) {
        if (!c->mode_on[mode]) continue;
        const char *mname = eg_mode_name((eg_mode)mode);
        double lam[EG_MAX_AUX], kl, gap;
        int it;
        char ls[256];
        eg_coords co = family_coords_exact(c, (eg_mode)mode);
        family_best_one(c, co.aux, &co.target, lam, &kl, &gap, &it);
        lambda_str(lam, c->k, ls, sizeof ls);
        io_csv_row(csv, "%s,exact,-,%s,%.6g,,,%.3g,%d", mname, ls, kl, gap, it);
        printf("family %-9s exact moments  : best lambda [%s], KL(target || barycenter) = %.4g (FW gap %.2g)\n",
               mname, ls, kl, gap);

        co = family_coords_sampled(c, (eg_mode)mode, c->seed);
        family_best_one(c, co.aux, &co.target, lam, &kl, &gap, &it);
        lambda_str(lam, c->k, ls, sizeof ls);
        io_csv_row(csv, "%s,sampled,%llu,%s,%.6g,,,%.3g,%d", mname, (unsigned long long)c->seed, ls, kl, gap, it);
        printf("family %-9s seed %-10llu: best lambda [%s], KL(target || barycenter) = %.4g (FW gap %.2g)\n", mname,
               (unsigned long long)c->seed, ls, kl, gap);

        double lsum[EG_MAX_AUX] = {0}, l1[EG_FAMILY_SEEDS], kls[EG_FAMILY_SEEDS], gmax = 0.0;
        int itmax = 0;
        for (int j = 0; j < EG_FAMILY_SEEDS; j++) {
            co = family_coords_sampled(c, (eg_mode)mode, c->seed + 1 + (uint64_t)j);
            family_best_one(c, co.aux, &co.target, lam, &kls[j], &gap, &it);
            for (size_t i = 0; i < c->k; i++) lsum[i] += lam[i] / EG_FAMILY_SEEDS;
            l1[j] = lam[0];
            gmax = fmax(gmax, gap);
            itmax = it > itmax ? it : itmax;
        }
        lambda_str(lsum, c->k, ls, sizeof ls);
        double kl_mean = gsl_stats_mean(kls, 1, EG_FAMILY_SEEDS), kl_sd = gsl_stats_sd(kls, 1, EG_FAMILY_SEEDS),
               l1_sd = gsl_stats_sd(l1, 1, EG_FAMILY_SEEDS), l1_min = gsl_stats_min(l1, 1, EG_FAMILY_SEEDS),
               l1_max = gsl_stats_max(l1, 1, EG_FAMILY_SEEDS);
        io_csv_row(csv, "%s,spread,%llu-%llu,%s,%.6g,%.3g,%.3g,%.3g,%d", mname, (unsigned long long)c->seed + 1,
                   (unsigned long long)c->seed + EG_FAMILY_SEEDS, ls, kl_mean, l1_sd, kl_sd, gmax, itmax);
        printf("family %-9s %d other seeds: lambda_1 %.4f +- %.4f (range %.4f-%.4f), KL %.4g +- %.2g\n", mname,
               EG_FAMILY_SEEDS, gsl_stats_mean(l1, 1, EG_FAMILY_SEEDS), l1_sd, l1_min, l1_max, kl_mean, kl_sd);
    }
    io_csv_commit(csv, meta);
    free(path);
}

static void stage_aux(const eg_config *c, const io_meta *meta)
{
    for (int mode = 0; mode < EG_NMODES; mode++) {
        if (!c->mode_on[mode]) continue;
        eg_coords co = coords_for(c, (eg_mode)mode, NULL, 0);
        for (size_t i = 0; i < c->k; i++) mlp1d_free(eg_aux_net_load_or_train(c, (eg_mode)mode, i, &co, meta));
    }
    stage_family_best(c, meta);
}

static void row_lambda(eg_row *r, const double *lam, size_t k)
{
    r->k = k;
    memcpy(r->lambda, lam, k * sizeof(double));
}

static void lambda_row(io_csv *csv, long n, const char *mode, const char *method, const double *lam, size_t k,
                       double loss, double gap)
{
    FILE *f = io_csv_stream(csv);
    fprintf(f, "%ld,%s,%s", n, mode, method);
    for (size_t i = 0; i < k; i++) fprintf(f, ",%.6f", lam[i]);
    fprintf(f, ",%.6g,%.3g\n", loss, gap);
}

/* Everything for one target size n. */
static void stage_one_n(const eg_config *c, long n, const io_meta *meta)
{
    const size_t k = c->k, ns = c->n_samples;
    double *tr, *va;
    eg_target_data(c, n, &tr, &va);
    char *p_rows = eg_path(c, "parts/table6_n%05ld.csv", n), *p_lam = eg_path(c, "parts/lambda_n%05ld.csv", n),
         *p_fw = eg_path(c, "parts/fw_n%05ld.csv", n);
    io_csv *rows = io_csv_open(p_rows, eg_row_header());
    char lh[512] = "n,mode,method";
    for (size_t i = 0; i < k; i++) snprintf(lh + strlen(lh), sizeof lh - strlen(lh), ",lambda%zu", i + 1);
    strncat(lh, ",loss,certificate", sizeof lh - strlen(lh) - 1);
    io_csv *lam_csv = io_csv_open(p_lam, lh);
    char fh[512] = "n,mode,iteration,objective,certified_gap";
    for (size_t i = 0; i < k; i++) snprintf(fh + strlen(fh), sizeof fh - strlen(fh), ",lambda%zu", i + 1);
    io_csv *fw_csv = io_csv_open(p_fw, fh);

    double *hist[8];
    char hist_label[8][48];
    const char *hist_names[8];
    size_t nh = 0;
    char label[128];

    /* Baseline: a diffusion model trained from scratch on the n target samples, in the target's own
     * standardised coordinates (the paper code's setting; the same model serves both modes). */
    eg_affine tmap;
    eg_sample_moments(tr, (size_t)n, &tmap);
    char *loss_path = eg_path(c, "loss_baseline_n%ld.csv", n);
    snprintf(label, sizeof label, "baseline n=%ld", n);
    eg_train_params bp = c->base_train;
    bp.n_train = (size_t)n;
    bp.n_val = (size_t)n / 4;
    bp.batch = (size_t)n < c->base_train.batch ? (size_t)n : c->base_train.batch;
    mlp1d *base = eg_train_net(c, &bp, eg_keep_for(EG_PAPER, 0), tr, va, &tmap,
                               rng_stream_id(EG_RNG_TRAIN, 1000 + (uint64_t)n), label, loss_path, meta);
    free(loss_path);
    score_model bm = mlp1d_score_model(base, 1);
    eg_row row = {.n = n, .mode = "shared", .method = "baseline", .calibration = "-", .scores = "learned",
                  .sampler = "sde", .kl = NAN};
    hist[nh] = mem_new(double, ns);
    hist_names[nh++] = "baseline";
    eg_eval_sde(c, &bm, &tmap, n, rng_stream_id(EG_RNG_SAMPLE, (uint64_t)n * 100 + 0), label, &row, hist[nh - 1]);
    eg_row_write(rows, &row);
    printf("n=%-5ld %-9s %-11s %-10s %-7s W1 %.4f +- %.4f\n", n, row.mode, row.method, row.calibration, row.scores,
           row.w1_mean, row.w1_std);
    mlp1d_free(base);

    for (int mode = 0; mode < EG_NMODES; mode++) {
        if (!c->mode_on[mode]) continue;
        const char *mname = eg_mode_name((eg_mode)mode);
        eg_coords co = coords_for(c, (eg_mode)mode, tr, (size_t)n);
        mixture aux_y[EG_MAX_AUX];
        aux_in_coords(c, &co, aux_y);
        float *y = mem_new(float, (size_t)n);
        eg_affine_apply(&co.target, tr, y, (size_t)n);

        /* learned and exact auxiliary score models, in network coordinates */
        mlp1d *nets[EG_MAX_AUX];
        score_model learned[EG_MAX_AUX], exact[EG_MAX_AUX];
        mixture_oracle orc[EG_MAX_AUX];
        const score_model *lp[EG_MAX_AUX], *ep[EG_MAX_AUX];
        for (size_t i = 0; i < k; i++) {
            nets[i] = eg_aux_net_load_or_train(c, (eg_mode)mode, i, &co, meta);
            learned[i] = mlp1d_score_model(nets[i], 1);
            orc[i] = (mixture_oracle){aux_y[i], sde_ve(25.0)};
            exact[i] = mixture_oracle_model(&orc[i], "exact");
            lp[i] = &learned[i];
            ep[i] = &exact[i];
        }
        uint64_t cs = rng_stream_id(EG_RNG_CALIB, (uint64_t)n * 10 + (uint64_t)mode);
        eg_calib_result cl, ce;
        eg_calibrate(c, lp, y, (size_t)n, cs, &cl);
        eg_calibrate(c, ep, y, (size_t)n, cs, &ce);   /* same draws: differences come from the scores only */
        lambda_row(lam_csv, n, mname, "scorefusion-sgd-learned", cl.lambda_sgd, k, cl.sgd_final_loss, NAN);
        lambda_row(lam_csv, n, mname, "scorefusion-exact-learned", cl.lambda_exact, k, cl.exact_loss, cl.qp_gap);
        lambda_row(lam_csv, n, mname, "scorefusion-sgd-exact", ce.lambda_sgd, k, ce.sgd_final_loss, NAN);
        lambda_row(lam_csv, n, mname, "scorefusion-exact-exact", ce.lambda_exact, k, ce.exact_loss, ce.qp_gap);

        /* vanilla fusion: exact auxiliary densities, E_nu[log p_i] by the sample mean over the n samples */
        double hbar[EG_MAX_AUX], lfw[EG_MAX_AUX], gap, negent, err, hex[EG_MAX_AUX];
        double *yd = mem_new(double, (size_t)n);
        for (long j = 0; j < n; j++) yd[j] = (double)y[j];
        bary_family *fam = eg_family(c, aux_y);
        fw_vanilla_hbar_samples(fam, yd, (size_t)n, hbar);
        mixture ty = mixture_affine(&c->target, co.target.shift, co.target.scale);
        bary_cross_means(fam, bary_mixture_logpdf, &ty, hex, &negent, &err);   /* only E_nu log nu is used */
        bary_family_free(fam);
        free(yd);
        eg_vanilla_fw(c, aux_y, hbar, negent, lfw, &gap, fw_csv, n, mname);   /* iterations are in fw_csv */
        lambda_row(lam_csv, n, mname, "vanilla-frank-wolfe", lfw, k, NAN, gap);

        score_bary *bl = score_bary_alloc(k, lp, cl.lambda_sgd), *be = score_bary_alloc(k, ep, ce.lambda_exact);
        score_model sbl = score_bary_model(bl), sbe = score_bary_model(be);
        struct {
            const char *method, *calib, *scores, *sampler;
            const double *lam;
            score_model *m;
            score_bary *b;
        } runs[] = {
            {"scorefusion", "sgd", "learned", "sde", cl.lambda_sgd, &sbl, NULL},
            {"scorefusion", "exact-qp", "learned", "sde", cl.lambda_exact, &sbl, bl},
            {"scorefusion", "exact-qp", "exact", "sde", ce.lambda_exact, &sbe, NULL},
            {"vanilla", "frank-wolfe", "exact", "inverse-cdf", lfw, NULL, NULL},
            {"vanilla", "frank-wolfe", "exact", "sde", lfw, &sbe, be},
        };
        for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
            eg_row rw = {.n = n, .mode = mname, .method = runs[r].method, .calibration = runs[r].calib,
                         .scores = runs[r].scores, .sampler = runs[r].sampler};
            row_lambda(&rw, runs[r].lam, k);
            rw.kl = eg_kl_bary(c, aux_y, runs[r].lam, &co.target);
            if (runs[r].b) score_bary_set_lambda(runs[r].b, runs[r].lam);
            uint64_t ss = rng_stream_id(EG_RNG_SAMPLE, (uint64_t)n * 100 + 10 * (uint64_t)mode + r + 1);
            double *keep = NULL;
            if (r == 0 || r == 3) {   /* histograms: the paper's method and the exact barycenter */
                keep = hist[nh] = mem_new(double, ns);
                snprintf(hist_label[nh], sizeof hist_label[nh], "%s_%s", r == 0 ? "scorefusion" : "vanilla_exact", mname);
                hist_names[nh] = hist_label[nh];
                nh++;
            }
            snprintf(label, sizeof label, "%s %s %s n=%ld", mname, runs[r].method, runs[r].calib, n);
            if (runs[r].m)
                eg_eval_sde(c, runs[r].m, &co.target, n, ss, label, &rw, keep);
            else
                eg_eval_exact_bary(c, aux_y, runs[r].lam, &co.target, n, ss, &rw, keep);
            eg_row_write(rows, &rw);
            printf("n=%-5ld %-9s %-11s %-11s %-7s %-11s lambda[0]=%.3f W1 %.4f +- %.4f  KL %.4g\n", n, mname,
                   rw.method, rw.calibration, rw.scores, rw.sampler, rw.lambda[0], rw.w1_mean, rw.w1_std, rw.kl);
            fflush(stdout);
        }
        score_bary_free(bl);
        score_bary_free(be);
        for (size_t i = 0; i < k; i++) mlp1d_free(nets[i]);
        free(y);
    }
    io_csv_commit(rows, meta);
    io_csv_commit(lam_csv, meta);
    io_csv_commit(fw_csv, meta);
    eg_hist_write(c, n, hist, hist_names, nh, meta);
    for (size_t j = 0; j < nh; j++) free(hist[j]);
    free(p_rows);
    free(p_lam);
    free(p_fw);
    free(tr);
    free(va);
}

int main(int argc, char **argv)
{
    log_set_prog(argv[0]);
    gsl_set_error_handler_off();
    eg_config c;
    eg_config_parse(&c, argc, argv);
    io_meta meta;
    io_meta_init(&meta, argc, argv);
    eg_meta_fill(&c, &meta);
    char *parts = eg_path(&c, "parts"), *ckpt = eg_path(&c, "ckpt");
    cli_output_dir("--out", parts);
    cli_output_dir("--out", ckpt);
    /* temp files of runs that were killed mid-write */
    io_remove_stale_tmp(c.out);
    io_remove_stale_tmp(parts);
    io_remove_stale_tmp(ckpt);
    free(parts);
    free(ckpt);
    log_info("profile %s, device %s, output %s", c.profile, c.device_desc, c.out);
    int all = !strcmp(c.stage, "all");
    if (all || !strcmp(c.stage, "aux")) stage_aux(&c, &meta);
    if (all || !strcmp(c.stage, "n"))
        for (size_t i = 0; i < c.n_count; i++) stage_one_n(&c, c.n_list[i], &meta);
    if (all || !strcmp(c.stage, "merge")) eg_merge(&c, &meta);
    io_meta_free(&meta);
    return 0;
}
