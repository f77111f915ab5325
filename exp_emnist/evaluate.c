/* evaluate: one model's row of Tables 1-3 (paper §5.1, App. G; REFERENCE.md "NLL bits/dim", "Class
 * proportions"). A model is one score network or the KL-barycenter score sum_i lambda_i s_i of the four
 * auxiliaries (Thm 2); both are sampled with the paper's Euler-Maruyama sampler, classified by the digit
 * classifier, drawn as a PNG grid (Figs 5-6) and, for the models of Table 1, scored by NLL in bits/dim with
 * the probability-flow ODE (common/likelihood.h). Class proportions are reported both ways: the mean predicted
 * distribution (what the code computes) and argmax counts (what the text describes). */
#include "ee.h"
#include "imgrid.h"
#include "likelihood.h"
#include "log.h"
#include "mem.h"
#include "rng.h"
#include "sampler.h"
#include <gsl/gsl_statistics_double.h>
#include "score.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *eval_path(const ee_config *c, const char *model, long n)
{
    return n ? ee_path(c, "parts/eval_%s_n%ld.csv", model, n) : ee_path(c, "parts/eval_%s.csv", model);
}

/* A part counts as done only when it verifies against its .meta and parses (issue 11: a truncated part used to
 * count as done and then dropped its rows from the tables). */
int ee_eval_done(const ee_config *c, const char *model, long n)
{
    ee_eval e;
    char err[1024];
    return ee_eval_read(c, model, n, &e, err, sizeof err) == 0;
}

/* Class proportions of the generated samples and their grid. */
static void sample_and_classify(const ee_config *c, digitnet *clf, const score_model *sm, const char *tag,
                                uint64_t stream, ee_eval *e)
{
    float *x = mem_new(float, c->n_gen * EE_DIM), *probs = mem_new(float, c->n_gen * 10);
    sampler_opts so = sampler_opts_paper();
    so.steps = c->sampler_steps;
    so.eps = c->sampler_eps;
    so.progress = c->quiet ? NULL : tag;
    sde ve = sde_ve(25.0);
    rng *r = rng_alloc(c->seed, stream);
    sampler_em(&ve, sm, c->n_gen, x, &so, r);
    rng_free(r);
    /* nothing is computed from samples that are not finite: an argmax over NaN probabilities is class 0 */
    for (size_t i = 0; i < c->n_gen * EE_DIM; i++)
        if (!isfinite(x[i]))
            log_die("%s: the sampler produced a non-finite value (sample %zu, pixel %zu): the network's weights "
                    "are damaged or training diverged",
                    tag, i / EE_DIM, i % EE_DIM);
    digitnet_probs(clf, c->n_gen, x, probs);
    for (size_t i = 0; i < c->n_gen * 10; i++)
        if (!isfinite(probs[i]))
            log_die("%s: the classifier gave a non-finite probability for sample %zu: its checkpoint is damaged",
                    tag, i / 10);
    for (size_t i = 0; i < c->n_gen; i++) {
        int best = 0;
        for (int k = 0; k < 10; k++) {
            e->probs[k] += probs[i * 10 + k] / (double)c->n_gen;
            if (probs[i * 10 + k] > probs[i * 10 + best]) best = k;
        }
        e->counts[best]++;
    }
    e->n_gen = c->n_gen;

    char *png = ee_path(c, "samples_%s.png", tag), err[1024];
    size_t g = c->grid_n < c->n_gen ? c->grid_n : c->n_gen;
    size_t cols = (size_t)ceil(sqrt((double)g));
    /* pixel value 0 and 1 in the normalised coordinates the networks generate in */
    float lo = (float)(-EE_NORM_MEAN / EE_NORM_STD), hi = (float)((1 - EE_NORM_MEAN) / EE_NORM_STD);
    if (imgrid_write_png(png, g, cols, 28, 28, x, lo, hi, 2, err, sizeof err) != 0) log_die("%s", err);
    free(png);
    free(x);
    free(probs);
}

/* mean and numpy's std (ddof 0), as the code reports its NLL: GSL's variance about a given mean divides by n */
static void mean_std(const double *v, size_t n, double *mean, double *std)
{
    *mean = gsl_stats_mean(v, 1, n);
    *std = sqrt(gsl_stats_variance_with_fixed_mean(v, 1, n, *mean));
}

/* NLL in bits/dim over passes x batches of the target test set; mean and std of the batch means. */
static void nll(const ee_config *c, const ee_data *d, const lik_model *lm, const char *tag, uint64_t stream,
                ee_eval *e)
{
    size_t nb = (size_t)c->nll_passes * (size_t)c->nll_batches, bs = c->nll_batch;
    if ((size_t)c->nll_batches * bs > d->target_test.n)
        log_die("--nll-batches x --nll-batch = %zu images, the target test set holds %zu",
                (size_t)c->nll_batches * bs, d->target_test.n);
    double *bp = mem_new(double, nb), *bt = mem_new(double, nb), *logp = mem_new(double, bs), nfe = 0;
    float *x = mem_new(float, bs * EE_DIM);
    lik_opts o = lik_opts_paper();
    o.rtol = c->nll_rtol;
    o.atol = c->nll_atol;
    sde ve = sde_ve(25.0);
    rng *r = rng_alloc(c->seed, stream);
    log_progress prog;
    if (!c->quiet) log_progress_begin(&prog, tag, nb);
    for (size_t p = 0; p < (size_t)c->nll_passes; p++)
        for (size_t j = 0; j < (size_t)c->nll_batches; j++) {
            size_t ib = p * (size_t)c->nll_batches + j;
            lik_dequantise(bs * EE_DIM, d->target_test.bytes + j * bs * EE_DIM, EE_NORM_MEAN, EE_NORM_STD, r, x);
            lik_stats st;
            if (lik_logp_batch(&ve, lm, bs, x, &o, r, logp, &st) != 0)
                log_die("%s: the probability-flow ODE failed on batch %zu (%s)", tag, ib, lik_status_name(st.status));
            double sp = 0, stru = 0;
            for (size_t i = 0; i < bs; i++) {
                sp += lik_bpd_paper(logp[i], EE_DIM);
                stru += lik_bpd_corrected(logp[i], EE_DIM, EE_NORM_STD);
            }
            bp[ib] = sp / (double)bs;
            bt[ib] = stru / (double)bs;
            nfe += (double)st.nfe;
            if (!c->quiet) log_progress_step(&prog, 1);
        }
    if (!c->quiet) log_progress_end(&prog);
    for (size_t i = 0; i < nb; i++)
        if (!isfinite(bp[i]) || !isfinite(bt[i]))
            log_die("%s: non-finite NLL on batch %zu: the network's weights are damaged or training diverged", tag, i);
    mean_std(bp, nb, &e->bpd_paper, &e->bpd_paper_std);
    mean_std(bt, nb, &e->bpd_true, &e->bpd_true_std);
    e->nfe = nfe / (double)nb;
    e->nll_images = nb * bs;
    e->has_nll = 1;
    rng_free(r);
    free(bp), free(bt), free(logp), free(x);
}

static const char *EVAL_HEADER = "model,n,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9,c0,c1,c2,c3,c4,c5,c6,c7,c8,c9,samples,"
                                 "bpd_paper,bpd_paper_std,bpd_true,bpd_true_std,nfe,nll_images,seconds";

void ee_eval_run(const ee_config *c, const ee_data *d, digitnet *clf, const char *model, long n,
                 scorenet_dev *const *nets, const double *lambda, size_t k, int with_nll, const io_meta *meta)
{
    ee_eval old;
    char why[1024];
    if (ee_eval_read(c, model, n, &old, why, sizeof why) == 0) return;
    char *p = eval_path(c, model, n);
    if (access(p, F_OK) == 0) log_info("%s; computing it again", why);
    free(p);
    double t0 = log_now();
    ee_eval e;
    memset(&e, 0, sizeof e);
    snprintf(e.model, sizeof e.model, "%s", model);
    e.n = n;
    char tag[64];
    if (n) snprintf(tag, sizeof tag, "%s_n%ld", model, n);
    else snprintf(tag, sizeof tag, "%s", model);

    score_model sm[EE_K];
    lik_model lm[EE_K];
    const score_model *smp[EE_K];
    const lik_model *lmp[EE_K];
    for (size_t i = 0; i < k; i++) {
        sm[i] = scorenet_dev_score_model(nets[i], 0);
        lm[i] = scorenet_dev_lik_model(nets[i], 0);
        smp[i] = &sm[i];
        lmp[i] = &lm[i];
    }
    score_bary *sb = k > 1 ? score_bary_alloc(k, smp, lambda) : NULL;
    lik_bary *lb = k > 1 ? lik_bary_alloc(k, lmp, lambda) : NULL;
    score_model s_use = sb ? score_bary_model(sb) : sm[0];
    lik_model l_use = lb ? lik_bary_model(lb) : lm[0];
    /* common random numbers: every model at one n starts from the same prior draws and sees the same
     * sampler noise, dequantisation and Hutchinson probes, so differences between rows are the models' */
    sample_and_classify(c, clf, &s_use, tag, rng_stream_id(EE_RNG_SAMPLE, (uint64_t)n), &e);
    if (with_nll) nll(c, d, &l_use, tag, rng_stream_id(EE_RNG_NLL, (uint64_t)n), &e);
    e.seconds = log_now() - t0;
    if (sb) score_bary_free(sb);
    if (lb) lik_bary_free(lb);

    char *path = eval_path(c, model, n);
    io_csv *csv = io_csv_open(path, EVAL_HEADER);
    FILE *f = io_csv_stream(csv);
    fprintf(f, "%s,%ld", e.model, e.n);
    for (int i = 0; i < 10; i++) fprintf(f, ",%.6f", e.probs[i]);
    for (int i = 0; i < 10; i++) fprintf(f, ",%ld", e.counts[i]);
    fprintf(f, ",%zu,%.6f,%.6f,%.6f,%.6f,%.1f,%zu,%.1f\n", e.n_gen, e.has_nll ? e.bpd_paper : NAN,
            e.has_nll ? e.bpd_paper_std : NAN, e.has_nll ? e.bpd_true : NAN, e.has_nll ? e.bpd_true_std : NAN,
            e.has_nll ? e.nfe : NAN, e.nll_images, e.seconds);
    ee_part_commit(c, csv, meta, model, n);
    free(path);
    log_info("%s: P(7) %.3f P(9) %.3f other %.3f%s in %.1f s", tag, e.probs[7], e.probs[9],
             1 - e.probs[7] - e.probs[9], e.has_nll ? "" : " (no NLL)", e.seconds);
    if (e.has_nll)
        log_info("%s: NLL %.3f +- %.3f bits/dim (paper-compatible), %.3f +- %.3f (true 8-bit), NFE %.0f", tag,
                 e.bpd_paper, e.bpd_paper_std, e.bpd_true, e.bpd_true_std, e.nfe);
}

/* Reads a part back strictly: it must verify against its .meta, hold EVAL_HEADER and exactly one row of 30
 * fields for this model and n, with class probabilities that form a distribution and argmax counts that sum to
 * the number of samples. */
int ee_eval_read(const ee_config *c, const char *model, long n, ee_eval *e, char *err, size_t errlen)
{
    char *path = eval_path(c, model, n);
    int rc = -1;
    FILE *fp = NULL;
    if (io_csv_verify(path, err, errlen) != 0 || ee_part_inputs_check(c, path, model, n, err, errlen) != 0) goto out;
    fp = fopen(path, "r");
    if (!fp) {
        log_errf(err, errlen, path, "cannot read");
        goto out;
    }
    memset(e, 0, sizeof *e);
    char hdr[4096], line[4096], extra[16];
    if (!fgets(hdr, sizeof hdr, fp) || !fgets(line, sizeof line, fp) || fgets(extra, sizeof extra, fp)) {
        log_errf(err, errlen, path, "expected a header and exactly one row");
        goto out;
    }
    hdr[strcspn(hdr, "\n")] = 0;
    if (strcmp(hdr, EVAL_HEADER) != 0) {
        log_errf(err, errlen, path, "unexpected header (written by another version?)");
        goto out;
    }
    char *save = NULL, *tok = strtok_r(line, ",\n", &save);
    if (!tok || strcmp(tok, model) != 0) {
        log_errf(err, errlen, path, "row is not for model '%s'", model);
        goto out;
    }
    snprintf(e->model, sizeof e->model, "%s", tok);
    double v[40];
    int k = 0;
    while (k < 40 && (tok = strtok_r(NULL, ",\n", &save))) {
        char *end;
        v[k] = strtod(tok, &end);
        if (end == tok || *end) {
            log_errf(err, errlen, path, "field %d ('%s') is not a number", k + 2, tok);
            goto out;
        }
        k++;
    }
    if (k != 29) {
        log_errf(err, errlen, path, "row has %d fields, expected 30", k + 1);
        goto out;
    }
    /* integer fields must be finite, whole and in range BEFORE the casts (a cast of NaN or 1e308 to an integer
     * type is undefined behaviour; the fuzzer found it) */
    static const int int_fields[] = {0, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 27};
    for (size_t i = 0; i < sizeof int_fields / sizeof int_fields[0]; i++) {
        double x = v[int_fields[i]];
        if (!(x >= 0 && x <= 1e15 && x == floor(x))) {
            log_errf(err, errlen, path, "field %d is not a count (%g)", int_fields[i] + 2, x);
            goto out;
        }
    }
    e->n = (long)v[0];
    for (int i = 0; i < 10; i++) e->probs[i] = v[1 + i];
    for (int i = 0; i < 10; i++) e->counts[i] = (long)v[11 + i];
    e->n_gen = (size_t)v[21];
    e->bpd_paper = v[22];
    e->bpd_paper_std = v[23];
    e->bpd_true = v[24];
    e->bpd_true_std = v[25];
    e->nfe = v[26];
    e->nll_images = (size_t)v[27];
    e->has_nll = e->nll_images > 0;
    e->seconds = v[28];
    double psum = 0;
    long csum = 0;
    int ok = v[0] == (double)n && v[21] >= 1 && v[27] >= 0;
    for (int i = 0; i < 10; i++) {
        ok &= isfinite(v[1 + i]) && v[1 + i] >= 0 && v[1 + i] <= 1 && v[11 + i] >= 0;
        psum += v[1 + i];
        csum += e->counts[i];
    }
    ok &= fabs(psum - 1) < 1e-3 && csum == (long)e->n_gen;
    if (e->has_nll)
        ok &= isfinite(e->bpd_paper) && isfinite(e->bpd_paper_std) && isfinite(e->bpd_true) && isfinite(e->bpd_true_std);
    if (!ok) {
        log_errf(err, errlen, path, "values out of range (n, class proportions, counts or NLL)");
        goto out;
    }
    rc = 0;
out:
    if (fp) fclose(fp);
    free(path);
    return rc;
}
