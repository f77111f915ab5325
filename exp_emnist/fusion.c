/* fusion: lambda for the image experiment by three calibrations of the same linear score regression (paper
 * eq. 10, Algorithm 1; Table 4; REFERENCE.md "Calibration"):
 *   code   the authors' image code: softmax logits ~ N(0,1), SGD lr 0.1 momentum 0.9, minibatches of the n
 *          target images, t ~ U[1e-5, 1] (the full-range loss, although the text says T~ << T);
 *   text   the same optimiser on t ~ U[1e-5, T~] with T~ small (--calib-text-t; the text gives no image value);
 *   exact  the exact minimiser on the simplex (calib_qp_simplex) of the empirical full-range loss over ALL the
 *          draws the code's run made, with its certified gap: what the code's SGD is estimating, without its noise.
 * Every minibatch loss is an exact quadratic in lambda (common/calib.h), so one pass of the four frozen
 * auxiliaries per draw gives the SGD step AND the exact problem's statistics. */
#include "calib.h"
#include "dsm.h"
#include "ee.h"
#include "log.h"
#include "mem.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *ee_cal_name(ee_cal m) { return m == EE_CAL_CODE ? "code" : m == EE_CAL_TEXT ? "text" : "exact"; }

static char *fusion_path(const ee_config *c, long n) { return ee_path(c, "parts/lambda_n%ld.csv", n); }
static const char *FUSION_HEADER = "n,method,lambda1,lambda2,lambda3,lambda4,loss,qp_gap,draws,seconds";

/* done only when the part verifies and parses (issue 11: a garbage part emptied Table 4's rows) */
int ee_fusion_done(const ee_config *c, long n)
{
    ee_fusion f;
    char err[1024];
    return ee_fusion_read(c, n, &f, err, sizeof err) == 0;
}

/* Workspace for one minibatch through the k auxiliaries. */
typedef struct {
    size_t cap;
    float *x0, *t, *std, *z, *xt, *s[EE_K];
} calib_ws;

static void ws_alloc(calib_ws *w, size_t cap)
{
    w->cap = cap;
    w->x0 = mem_new(float, cap * EE_DIM);
    w->z = mem_new(float, cap * EE_DIM);
    w->xt = mem_new(float, cap * EE_DIM);
    w->t = mem_new(float, cap);
    w->std = mem_new(float, cap);
    for (size_t i = 0; i < EE_K; i++) w->s[i] = mem_new(float, cap * EE_DIM);
}

static void ws_free(calib_ws *w)
{
    free(w->x0), free(w->z), free(w->xt), free(w->t), free(w->std);
    for (size_t i = 0; i < EE_K; i++) free(w->s[i]);
}

/* Draw t ~ U[lo, hi], z for the batch x0[b] and fill q with the batch's quadratic. */
static void batch_quad(calib_ws *w, size_t b, scorenet_dev *const *aux, double lo, double hi, rng *r, calib_quad *q)
{
    const sde *s = scorenet_sde(scorenet_dev_host(aux[0]));
    dsm_perturb(s, r, b, EE_DIM, w->x0, lo, hi, w->t, w->std, w->z, w->xt);
    for (size_t i = 0; i < EE_K; i++) scorenet_dev_forward(aux[i], 0, b, w->t, 1, w->xt, w->s[i]);
    calib_quad_reset(q);
    calib_quad_add(q, b, EE_DIM, (const float *const *)w->s, w->std, w->z);
}

void ee_fusion_run(const ee_config *c, const ee_data *d, long n, scorenet_dev *const *aux, const io_meta *meta)
{
    ee_fusion old;
    char why[1024];
    if (ee_fusion_read(c, n, &old, why, sizeof why) == 0) return;
    char *part = fusion_path(c, n);
    if (access(part, F_OK) == 0) log_info("%s; computing it again", why);
    free(part);
    double t0 = log_now();
    float *x = ee_set_normalised(&d->target_train, (size_t)n);
    size_t b = c->calib_batch < (size_t)n ? c->calib_batch : (size_t)n;
    calib_ws w;
    ws_alloc(&w, b);
    rng *r = rng_alloc(c->seed, rng_stream_id(EE_RNG_CALIB, (uint64_t)n));
    calib_sgd *sgd[2] = {calib_sgd_alloc(EE_K, c->calib_lr, c->calib_momentum, r),
                         calib_sgd_alloc(EE_K, c->calib_lr, c->calib_momentum, r)};
    calib_quad *qb = calib_quad_alloc(EE_K), *q_all = calib_quad_alloc(EE_K), *q_text = calib_quad_alloc(EE_K);
    size_t *perm = mem_new(size_t, (size_t)n);
    for (size_t i = 0; i < (size_t)n; i++) perm[i] = i;

    char *traj_path = ee_path(c, "calib_n%ld.csv", n);
    io_csv *traj = io_csv_open(traj_path, "epoch,method,loss,lambda1,lambda2,lambda3,lambda4");
    char label[64];
    snprintf(label, sizeof label, "calibrate n=%ld", n);
    log_progress prog;
    if (!c->quiet) log_progress_begin(&prog, label, (size_t)c->calib_epochs);
    for (int e = 0; e < c->calib_epochs; e++) {
        rng_shuffle(r, perm, (size_t)n);
        double sum[2] = {0, 0};
        size_t batches = 0;
        for (size_t off = 0; off < (size_t)n; off += b, batches++) {
            size_t m = (size_t)n - off < b ? (size_t)n - off : b;
            for (size_t i = 0; i < m; i++) memcpy(w.x0 + i * EE_DIM, x + perm[off + i] * EE_DIM, EE_DIM * sizeof(float));
            batch_quad(&w, m, aux, c->calib_full_lo, c->calib_full_hi, r, qb);
            sum[0] += calib_sgd_step(sgd[0], qb);
            calib_quad_merge(q_all, qb);
            batch_quad(&w, m, aux, c->calib_text_lo, c->calib_text_hi, r, qb);
            sum[1] += calib_sgd_step(sgd[1], qb);
            calib_quad_merge(q_text, qb);
        }
        for (int k = 0; k < 2; k++) {
            const double *l = sgd[k]->lambda;
            io_csv_row(traj, "%d,%s,%.6g,%.6f,%.6f,%.6f,%.6f", e, ee_cal_name((ee_cal)k), sum[k] / (double)batches,
                       l[0], l[1], l[2], l[3]);
        }
        if (!c->quiet) log_progress_step(&prog, 1);
    }
    if (!c->quiet) log_progress_end(&prog);
    io_csv_commit(traj, meta);

    ee_fusion f;
    memset(&f, 0, sizeof f);
    memcpy(f.lambda[EE_CAL_CODE], sgd[0]->lambda, sizeof f.lambda[0]);
    memcpy(f.lambda[EE_CAL_TEXT], sgd[1]->lambda, sizeof f.lambda[0]);
    if (calib_qp_simplex(q_all, f.lambda[EE_CAL_EXACT], &f.qp_gap) != 0)
        log_info("calibrate n=%ld: exact QP not converged (gap %.3g)", n, f.qp_gap);
    f.loss[EE_CAL_CODE] = calib_quad_loss(q_all, f.lambda[EE_CAL_CODE]);
    f.loss[EE_CAL_TEXT] = calib_quad_loss(q_text, f.lambda[EE_CAL_TEXT]);
    f.loss[EE_CAL_EXACT] = calib_quad_loss(q_all, f.lambda[EE_CAL_EXACT]);
    f.seconds = log_now() - t0;

    char *path = fusion_path(c, n);
    io_csv *csv = io_csv_open(path, FUSION_HEADER);
    for (int k = 0; k < EE_NCAL; k++) {
        const double *l = f.lambda[k];
        io_csv_row(csv, "%ld,%s,%.9f,%.9f,%.9f,%.9f,%.9g,%.3g,%.0f,%.1f", n, ee_cal_name((ee_cal)k), l[0], l[1], l[2],
                   l[3], f.loss[k], k == EE_CAL_EXACT ? f.qp_gap : 0.0, k == EE_CAL_TEXT ? q_text->count : q_all->count,
                   f.seconds);
    }
    ee_part_commit(c, csv, meta, NULL, n);
    log_info("calibrate n=%ld: code [%.3f %.3f %.3f %.3f], text [%.3f %.3f %.3f %.3f], exact [%.3f %.3f %.3f %.3f] "
             "(gap %.2g) in %.1f s",
             n, f.lambda[0][0], f.lambda[0][1], f.lambda[0][2], f.lambda[0][3], f.lambda[1][0], f.lambda[1][1],
             f.lambda[1][2], f.lambda[1][3], f.lambda[2][0], f.lambda[2][1], f.lambda[2][2], f.lambda[2][3], f.qp_gap,
             f.seconds);
    free(path);
    free(traj_path);
    free(perm);
    calib_quad_free(qb);
    calib_quad_free(q_all);
    calib_quad_free(q_text);
    calib_sgd_free(sgd[0]);
    calib_sgd_free(sgd[1]);
    rng_free(r);
    ws_free(&w);
    free(x);
}

/* Strict: verified against its .meta, the header, then exactly one row per calibration for this n, each lambda
 * finite and on the simplex. */
int ee_fusion_read(const ee_config *c, long n, ee_fusion *f, char *err, size_t errlen)
{
    char *path = fusion_path(c, n);
    int rc = -1, got = 0, rows = 0;
    FILE *fp = NULL;
    if (io_csv_verify(path, err, errlen) != 0 || ee_part_inputs_check(c, path, NULL, n, err, errlen) != 0) goto out;
    fp = fopen(path, "r");
    if (!fp) {
        log_errf(err, errlen, path, "cannot read");
        goto out;
    }
    memset(f, 0, sizeof *f);
    char line[1024];
    if (!fgets(line, sizeof line, fp) || (line[strcspn(line, "\n")] = 0, strcmp(line, FUSION_HEADER) != 0)) {
        log_errf(err, errlen, path, "unexpected header (written by another version?)");
        goto out;
    }
    while (fgets(line, sizeof line, fp)) {
        long nn;
        char method[16];
        double l[EE_K], loss, gap, draws, secs;
        int used = 0;
        rows++;
        if (sscanf(line, "%ld,%15[^,],%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf%n", &nn, method, &l[0], &l[1], &l[2], &l[3], &loss,
                   &gap, &draws, &secs, &used) != 10 ||
            (line[used] != '\n' && line[used] != '\0') || nn != n) {
            log_errf(err, errlen, path, "row %d is not a lambda row for n=%ld", rows, n);
            goto out;
        }
        double sum = 0;
        int ok = isfinite(loss);
        for (int i = 0; i < EE_K; i++) {
            ok &= isfinite(l[i]) && l[i] >= -1e-9 && l[i] <= 1 + 1e-9;
            sum += l[i];
        }
        if (!ok || fabs(sum - 1) > 1e-6) {
            log_errf(err, errlen, path, "row %d: lambda is not on the simplex or the loss is not finite", rows);
            goto out;
        }
        int k = 0;
        while (k < EE_NCAL && strcmp(method, ee_cal_name((ee_cal)k)) != 0) k++;
        if (k == EE_NCAL || (got & (1 << k))) {
            log_errf(err, errlen, path, "row %d: unknown or repeated method '%s'", rows, method);
            goto out;
        }
        memcpy(f->lambda[k], l, sizeof l);
        f->loss[k] = loss;
        if (k == EE_CAL_EXACT) f->qp_gap = gap;
        f->seconds = secs;
        got |= 1 << k;
    }
    if (got != (1 << EE_NCAL) - 1) {
        log_errf(err, errlen, path, "expected one row for each of the %d calibrations, found %d rows", EE_NCAL, rows);
        goto out;
    }
    rc = 0;
out:
    if (fp) fclose(fp);
    free(path);
    return rc;
}
