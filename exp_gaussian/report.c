/* report: exp_gaussian's tables. Each n writes its rows to parts/ (so n values can run in parallel, in any
 * order, on one machine or as a Slurm array); merge concatenates them into table6.csv, lambda.csv and
 * frank_wolfe.csv and prints ours beside the paper's Table 6 (results/paper/table6.csv), cell by cell. */
#include "eg.h"
#include "log.h"
#include "mem.h"
#include <glob.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *eg_row_header(void)
{
    return "n,mode,method,calibration,scores,sampler,lambda,w1_mean,w1_std,w1_exact_cdf_mean,w1_exact_cdf_std,"
           "kl_target_bary,seconds";
}

void eg_row_write(io_csv *csv, const eg_row *r)
{
    char lam[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < r->k; i++)
        used += (size_t)snprintf(lam + used, sizeof lam - used, "%s%.4f", i ? ";" : "", r->lambda[i]);
    if (r->k == 0) snprintf(lam, sizeof lam, "-");
    io_csv_row(csv, "%ld,%s,%s,%s,%s,%s,%s,%.6g,%.6g,%.6g,%.6g,%.6g,%.2f", r->n, r->mode, r->method, r->calibration,
               r->scores, r->sampler, lam, r->w1_mean, r->w1_std, r->w1cdf_mean, r->w1cdf_std, r->kl, r->seconds);
}

void eg_hist_write(const eg_config *c, long n, double *const *samples, const char *const *names, size_t m,
                   const io_meta *meta)
{
    /* Figures 12-15 plot densities on [-15, 15]; we bin there and give the exact target density beside */
    enum { BINS = 150 };
    const double lo = -15.0, hi = 15.0, h = (hi - lo) / BINS;
    char *path = eg_path(c, "hist_n%ld.csv", n);
    char header[1024] = "x,target_pdf";
    for (size_t j = 0; j < m; j++) {
        strncat(header, ",", sizeof header - strlen(header) - 1);
        strncat(header, names[j], sizeof header - strlen(header) - 1);
    }
    double *count = mem_new(double, BINS * m);
    for (size_t j = 0; j < m; j++)
        for (size_t i = 0; i < c->n_samples; i++) {
            double x = samples[j][i];
            if (x < lo || x >= hi) continue;
            count[j * BINS + (size_t)((x - lo) / h)] += 1.0;
        }
    io_csv *csv = io_csv_open(path, header);
    FILE *f = io_csv_stream(csv);
    for (int b = 0; b < BINS; b++) {
        double x = lo + (b + 0.5) * h;
        fprintf(f, "%.4f,%.6g", x, mixture_pdf(&c->target, x));
        /* density normalised by ALL samples, so mass outside the window shows as missing area */
        for (size_t j = 0; j < m; j++) fprintf(f, ",%.6g", count[j * BINS + b] / ((double)c->n_samples * h));
        fputc('\n', f);
    }
    io_csv_commit(csv, meta);
    free(count);
    free(path);
}

/* Concatenate parts/<prefix>_n*.csv (sorted by n thanks to zero-padded names) into <name>.csv. */
static size_t concat_parts(const eg_config *c, const char *prefix, const char *name, const io_meta *meta)
{
    char *pattern = eg_path(c, "parts/%s_n*.csv", prefix), *out = eg_path(c, "%s.csv", name);
    glob_t g;
    size_t rows = 0;
    if (glob(pattern, 0, NULL, &g) != 0) {
        log_info("no parts match %s (run the n stage first)", pattern);
        free(pattern);
        free(out);
        return 0;
    }
    io_csv *csv = NULL;
    char line[4096];
    /* every part verifies against its .meta before any is merged: a damaged one is an error naming it, not a
     * table with missing rows (issue 11) */
    for (size_t p = 0; p < g.gl_pathc; p++) {
        char err[1024];
        if (io_csv_verify(g.gl_pathv[p], err, sizeof err) != 0)
            log_die("%s (delete it and run --stage n for its n again)", err);
    }
    for (size_t p = 0; p < g.gl_pathc; p++) {
        FILE *f = fopen(g.gl_pathv[p], "r");
        if (!f) log_die("cannot read '%s'", g.gl_pathv[p]);
        if (!fgets(line, sizeof line, f)) log_die("'%s' is empty", g.gl_pathv[p]);
        line[strcspn(line, "\n")] = 0;
        if (!csv) csv = io_csv_open(out, line);
        while (fgets(line, sizeof line, f)) {
            fputs(line, io_csv_stream(csv));
            rows++;
        }
        fclose(f);
    }
    io_csv_commit(csv, meta);
    globfree(&g);
    free(pattern);
    free(out);
    return rows;
}

/* A row of table6.csv as read back for the comparison. */
typedef struct {
    long n;
    char mode[32], method[32], calibration[32], scores[32], sampler[32], lambda[128];
    double w1, w1sd;
} row_in;

static size_t read_rows(const char *path, row_in *rows, size_t max)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[4096];
    size_t n = 0;
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return 0;
    }
    while (n < max && fgets(line, sizeof line, f)) {
        row_in *r = &rows[n];
        if (sscanf(line, "%ld,%31[^,],%31[^,],%31[^,],%31[^,],%31[^,],%127[^,],%lf,%lf", &r->n, r->mode, r->method,
                   r->calibration, r->scores, r->sampler, r->lambda, &r->w1, &r->w1sd) == 9)
            n++;
    }
    fclose(f);
    return n;
}

static const row_in *find_row(const row_in *rows, size_t m, long n, const char *mode, const char *method,
                              const char *calib, const char *scores, const char *sampler)
{
    for (size_t i = 0; i < m; i++)
        if (rows[i].n == n && !strcmp(rows[i].mode, mode) && !strcmp(rows[i].method, method) &&
            !strcmp(rows[i].calibration, calib) && !strcmp(rows[i].scores, scores) && !strcmp(rows[i].sampler, sampler))
            return &rows[i];
    return NULL;
}

/* results/paper/table6.csv: n,baseline_w1,baseline_w1_std,scorefusion_w1,scorefusion_w1_std,lambda1,lambda2 */
static void compare_with_paper(const eg_config *c, const io_meta *meta)
{
    const char *paper = "results/paper/table6.csv";
    FILE *f = fopen(paper, "r");
    if (!f) {
        log_info("no %s: skipping the comparison with the paper", paper);
        return;
    }
    char *ours_path = eg_path(c, "table6.csv"), *cmp_path = eg_path(c, "compare_table6.csv");
    row_in *rows = mem_new(row_in, 4096);
    size_t m = read_rows(ours_path, rows, 4096);
    io_csv *csv = io_csv_open(cmp_path, "n,quantity,paper,ours,ours_std,ours_row");
    char line[1024];
    if (!fgets(line, sizeof line, f)) log_die("'%s' is empty", paper);
    printf("\nTable 6 (W1 to the target; paper vs ours; ours = mean +- std over %zu repeats, profile %s)\n",
           c->repeats, c->profile);
    printf("%6s | %-22s %-22s | %-22s %-22s %-22s | %-13s %-13s %-13s\n", "n", "baseline paper", "baseline ours",
           "ScoreFusion paper", "SF ours (paper mode)", "SF ours (corrected)", "lambda paper", "lambda ours(p)",
           "lambda ours(c)");
    while (fgets(line, sizeof line, f)) {
        long n;
        double bw, bs, sw, ss, l1, l2;
        if (sscanf(line, "%ld,%lf,%lf,%lf,%lf,%lf,%lf", &n, &bw, &bs, &sw, &ss, &l1, &l2) != 7) continue;
        const row_in *b = find_row(rows, m, n, "shared", "baseline", "-", "learned", "sde");
        const row_in *sp = find_row(rows, m, n, "paper", "scorefusion", "sgd", "learned", "sde");
        const row_in *sc = find_row(rows, m, n, "corrected", "scorefusion", "sgd", "learned", "sde");
        char cb[32] = "not run", cp[32] = "not run", cc[32] = "not run", pl[32];
        if (b) snprintf(cb, sizeof cb, "%.2f +- %.2f", b->w1, b->w1sd);
        if (sp) snprintf(cp, sizeof cp, "%.2f +- %.2f", sp->w1, sp->w1sd);
        if (sc) snprintf(cc, sizeof cc, "%.2f +- %.2f", sc->w1, sc->w1sd);
        snprintf(pl, sizeof pl, "[%.2f,%.2f]", l1, l2);
        char bpaper[32], spaper[32];
        snprintf(bpaper, sizeof bpaper, "%.2f +- %.2f", bw, bs);
        snprintf(spaper, sizeof spaper, "%.2f +- %.2f", sw, ss);
        printf("%6ld | %-22s %-22s | %-22s %-22s %-22s | %-13s %-13s %-13s\n", n, bpaper, cb, spaper, cp, cc, pl,
               sp ? sp->lambda : "-", sc ? sc->lambda : "-");
        if (b) io_csv_row(csv, "%ld,baseline_w1,%g,%g,%g,shared/baseline", n, bw, b->w1, b->w1sd);
        if (sp) io_csv_row(csv, "%ld,scorefusion_w1,%g,%g,%g,paper/scorefusion/sgd", n, sw, sp->w1, sp->w1sd);
        if (sc) io_csv_row(csv, "%ld,scorefusion_w1,%g,%g,%g,corrected/scorefusion/sgd", n, sw, sc->w1, sc->w1sd);
        if (sp) {
            double a1 = NAN;
            sscanf(sp->lambda, "%lf", &a1);
            io_csv_row(csv, "%ld,lambda1,%g,%g,,paper/scorefusion/sgd", n, l1, a1);
        }
    }
    fclose(f);
    io_csv_commit(csv, meta);
    free(rows);
    free(ours_path);
    free(cmp_path);
}

void eg_merge(const eg_config *c, const io_meta *meta)
{
    size_t r = concat_parts(c, "table6", "table6", meta);
    concat_parts(c, "lambda", "lambda", meta);
    concat_parts(c, "fw", "frank_wolfe", meta);
    log_info("merged %zu rows into %s/table6.csv", r, c->out);
    if (r) compare_with_paper(c, meta);
}
