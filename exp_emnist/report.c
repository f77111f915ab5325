/* report: Tables 1-4 of the image experiment (paper §5.1, App. G) from the parts the units left under
 * OUT/parts, and the ours-vs-paper comparison (results/paper/table{1,2,3,4}.csv are only ever compared against).
 * Ours and the paper's values sit in separate, labelled columns; a cell the paper does not have is empty. */
#include "ee.h"
#include "log.h"
#include "mem.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAPER_DIR "results/paper"

/* ---- the paper's tables: rows of comma-separated fields, looked up by their first fields */
typedef struct {
    size_t n;
    char **line;
} paper_table;

static void paper_load(const char *name, paper_table *t)
{
    memset(t, 0, sizeof *t);
    char path[256], buf[1024];
    snprintf(path, sizeof path, "%s/%s", PAPER_DIR, name);
    FILE *f = fopen(path, "r");
    if (!f) {
        log_info("%s: not found, the comparison with the paper is left out", path);
        return;
    }
    while (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\r\n")] = 0;
        t->line = mem_realloc(t->line, (t->n + 1) * sizeof *t->line);
        t->line[t->n++] = strdup(buf);
    }
    fclose(f);
}

static void paper_free(paper_table *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->line[i]);
    free(t->line);
}

/* Field `col` (0-based) of the first data row whose first fields are key (comma-joined); NAN if none. */
static double paper_get(const paper_table *t, const char *key, int col)
{
    size_t kl = strlen(key);
    for (size_t i = 1; i < t->n; i++) {
        if (strncmp(t->line[i], key, kl) != 0 || t->line[i][kl] != ',') continue;
        const char *p = t->line[i];
        for (int c = 0; c < col && p; c++) {
            p = strchr(p, ',');
            if (p) p++;
        }
        return p ? strtod(p, NULL) : NAN;
    }
    return NAN;
}

static void fmt_or_empty(char *buf, size_t len, double v, const char *fmt)
{
    if (isnan(v)) buf[0] = 0;
    else snprintf(buf, len, fmt, v);
}

/* ---- the parts: every part the configuration implies must be there and verify before any table is written;
 * a missing or damaged one stops the report with one line naming it, rather than a table without its rows */
static int part_optional(const ee_config *c, const char *model) { return !c->eval_text && !strcmp(model, "sf_text"); }

/* 1 with *e filled; 0 for an optional part (sf_text without --eval-text) that is absent; dies otherwise */
static int part_get(const ee_config *c, const char *model, long n, ee_eval *e)
{
    char err[1024];
    if (ee_eval_read(c, model, n, e, err, sizeof err) == 0) {
        if (!strcmp(model, "aux3") && !e->has_nll) log_die("report: the aux3 part has no NLL (frozen B2 of Table 1)");
        return 1;
    }
    if (part_optional(c, model)) {
        char *p = n ? ee_path(c, "parts/eval_%s_n%ld.csv", model, n) : ee_path(c, "parts/eval_%s.csv", model);
        int absent = access(p, F_OK) != 0;
        free(p);
        if (absent) return 0;
    }
    log_die("report: %s (delete it and run again to recompute it)", err);
}

static void parts_check(const ee_config *c)
{
    static const char *const per_n[] = {"b1", "b2", "sf_code", "sf_exact", "sf_text"};
    ee_eval e;
    for (size_t i = 0; i < EE_K; i++) {
        char model[16];
        snprintf(model, sizeof model, "aux%zu", i + 1);
        part_get(c, model, 0, &e);
    }
    for (size_t j = 0; j < c->n_count; j++) {
        for (size_t m = 0; m < sizeof per_n / sizeof per_n[0]; m++) part_get(c, per_n[m], c->n_list[j], &e);
        ee_fusion f;
        char err[1024];
        if (ee_fusion_read(c, c->n_list[j], &f, err, sizeof err) != 0)
            log_die("report: %s (delete it and run again to recompute it)", err);
    }
}

/* ---- the tables */
static void table1(const ee_config *c, const paper_table *p1, io_csv *cmp, const io_meta *meta)
{
    char *path = ee_path(c, "table1_nll.csv");
    io_csv *csv = io_csv_open(path, "model,n,bpd_paper_compatible,std,bpd_true,bpd_true_std,nfe,images,"
                                    "paper_bpd,paper_std");
    printf("\nTable 1: NLL, bits/dim (ours: paper-compatible figure and the true 8-bit figure; mean +- std)\n");
    printf("  %-10s %6s  %16s  %16s  %8s  %6s\n", "model", "n", "ours (paper-c.)", "ours (true)", "paper", "NFE");
    static const char *models[] = {"b2_frozen", "b1", "b2", "sf_code", "sf_exact", "sf_text"};
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++)
        for (size_t j = 0; j < (m == 0 ? 1 : c->n_count); j++) {
            long n = m == 0 ? 0 : c->n_list[j];
            ee_eval e;
            const char *part = m == 0 ? "aux3" : models[m];
            if (!part_get(c, part, n, &e)) continue;
            char key[64], pv[32], ps[32];
            snprintf(key, sizeof key, "%s,%ld", models[m], n);
            double pb = paper_get(p1, key, 2), pstd = paper_get(p1, key, 3);
            fmt_or_empty(pv, sizeof pv, pb, "%.3f");
            fmt_or_empty(ps, sizeof ps, pstd, "%.3f");
            io_csv_row(csv, "%s,%ld,%.4f,%.4f,%.4f,%.4f,%.1f,%zu,%s,%s", models[m], n, e.bpd_paper, e.bpd_paper_std,
                       e.bpd_true, e.bpd_true_std, e.nfe, e.nll_images, pv, ps);
            printf("  %-10s %6ld  %7.3f +- %5.3f  %7.3f +- %5.3f  %8s  %6.0f\n", models[m], n, e.bpd_paper,
                   e.bpd_paper_std, e.bpd_true, e.bpd_true_std, pv[0] ? pv : "-", e.nfe);
            if (!isnan(pb))
                io_csv_row(cmp, "table1,%s,%ld,bpd,%.4f,%.4f,%.4f", models[m], n,
                           e.bpd_paper, pb, e.bpd_paper - pb);
        }
    io_csv_commit(csv, meta);
    free(path);
}

static void table2(const ee_config *c, const paper_table *p2, io_csv *cmp, const io_meta *meta)
{
    char *path = ee_path(c, "table2_proportions.csv");
    io_csv *csv = io_csv_open(path, "model,n,p7,p9,p_other,argmax7,argmax9,argmax_other,samples,"
                                    "paper_p7,paper_p9,paper_other");
    printf("\nTable 2: class proportions of generated samples, %% (7 / 9 / other; mean predicted distribution)\n");
    printf("  %-10s %6s  %20s  %20s  %20s\n", "model", "n", "ours (mean prob.)", "ours (argmax)", "paper");
    static const char *models[] = {"b1", "b2", "sf_code", "sf_exact", "sf_text"};
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++)
        for (size_t j = 0; j < c->n_count; j++) {
            long n = c->n_list[j];
            ee_eval e;
            if (!part_get(c, models[m], n, &e)) continue;
            double p7 = 100 * e.probs[7], p9 = 100 * e.probs[9], po = 100 - p7 - p9;
            double tot = (double)e.n_gen;
            double a7 = 100 * (double)e.counts[7] / tot, a9 = 100 * (double)e.counts[9] / tot, ao = 100 - a7 - a9;
            char key[64], q[3][32];
            snprintf(key, sizeof key, "%s,%ld", models[m], n);
            double pp[3];
            for (int k = 0; k < 3; k++) {
                pp[k] = paper_get(p2, key, 2 + k);
                fmt_or_empty(q[k], sizeof q[k], pp[k], "%.1f");
            }
            io_csv_row(csv, "%s,%ld,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%zu,%s,%s,%s", models[m], n, p7, p9, po, a7, a9, ao,
                       e.n_gen, q[0], q[1], q[2]);
            printf("  %-10s %6ld  %5.1f / %5.1f / %5.1f  %5.1f / %5.1f / %5.1f  %s\n", models[m], n, p7, p9, po, a7,
                   a9, ao, isnan(pp[0]) ? "-" : "");
            if (!isnan(pp[0])) {
                printf("  %-10s %6s  %62s%5.1f / %5.1f / %5.1f\n", "", "", "", pp[0], pp[1], pp[2]);
                static const char *col[3] = {"p7", "p9", "p_other"};
                double ours[3] = {p7, p9, po};
                for (int k = 0; k < 3; k++)
                    io_csv_row(cmp, "table2,%s,%ld,%s,%.2f,%.2f,%.2f", models[m], n, col[k], ours[k], pp[k],
                               ours[k] - pp[k]);
            }
        }
    io_csv_commit(csv, meta);
    free(path);
}

static void table3(const ee_config *c, const paper_table *p3, io_csv *cmp, const io_meta *meta)
{
    char *path = ee_path(c, "table3_aux_proportions.csv");
    io_csv *csv = io_csv_open(path, "model,source,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9,samples");
    printf("\nTable 3: the auxiliaries' class proportions, %% (classes 0-9; ours: mean predicted distribution and argmax)\n");
    for (size_t i = 0; i < EE_K; i++) {
        char model[16];
        snprintf(model, sizeof model, "aux%zu", i + 1);
        ee_eval e;
        if (!part_get(c, model, 0, &e)) continue;
        FILE *f = io_csv_stream(csv);
        fprintf(f, "%s,ours", model);
        printf("  %-5s ours  ", model);
        for (int k = 0; k < 10; k++) {
            fprintf(f, ",%.2f", 100 * e.probs[k]);
            printf(" %5.1f", 100 * e.probs[k]);
        }
        fprintf(f, ",%zu\n%s,ours_argmax", e.n_gen, model);
        printf("\n  %-5s argmax", model);
        for (int k = 0; k < 10; k++) {
            double pa = 100.0 * (double)e.counts[k] / (double)e.n_gen;
            fprintf(f, ",%.2f", pa);
            printf(" %5.1f", pa);
        }
        fprintf(f, ",%zu\n", e.n_gen);
        printf("\n");
        if (isnan(paper_get(p3, model, 1))) continue;
        fprintf(f, "%s,paper", model);
        printf("  %-5s paper ", model);
        for (int k = 0; k < 10; k++) {
            double pv = paper_get(p3, model, 1 + k);
            fprintf(f, ",%.2f", pv);
            printf(" %5.1f", pv);
            char colname[16];   /* room for any int: -Wformat-truncation cannot bound k under -fsanitize */
            snprintf(colname, sizeof colname, "p%d", k);
            io_csv_row(cmp, "table3,%s,0,%s,%.2f,%.2f,%.2f", model, colname, 100 * e.probs[k], pv, 100 * e.probs[k] - pv);
        }
        fprintf(f, ",1024\n");
        printf("\n");
    }
    io_csv_commit(csv, meta);
    free(path);
}

static void table4(const ee_config *c, const paper_table *p4, io_csv *cmp, const io_meta *meta)
{
    char *path = ee_path(c, "table4_lambda.csv");
    io_csv *csv = io_csv_open(path, "n,method,lambda1,lambda2,lambda3,lambda4,loss,qp_gap");
    printf("\nTable 4: lambda* (auxiliaries P(7) = 10, 30, 70, 90%%)\n");
    for (size_t j = 0; j < c->n_count; j++) {
        long n = c->n_list[j];
        ee_fusion f;
        char err[1024];
        if (ee_fusion_read(c, n, &f, err, sizeof err) != 0) log_die("report: %s", err);
        for (int m = 0; m < EE_NCAL; m++) {
            const double *l = f.lambda[m];
            io_csv_row(csv, "%ld,%s,%.4f,%.4f,%.4f,%.4f,%.6g,%.3g", n, ee_cal_name((ee_cal)m), l[0], l[1], l[2], l[3],
                       f.loss[m], m == EE_CAL_EXACT ? f.qp_gap : 0.0);
            printf("  n=%-6ld %-6s [%.3f %.3f %.3f %.3f]\n", n, ee_cal_name((ee_cal)m), l[0], l[1], l[2], l[3]);
        }
        char key[32];
        snprintf(key, sizeof key, "%ld", n);
        if (isnan(paper_get(p4, key, 1))) continue;
        double pl[EE_K];
        for (int i = 0; i < EE_K; i++) pl[i] = paper_get(p4, key, 1 + i);
        io_csv_row(csv, "%ld,paper,%.4f,%.4f,%.4f,%.4f,,", n, pl[0], pl[1], pl[2], pl[3]);
        printf("  n=%-6ld %-6s [%.3f %.3f %.3f %.3f]\n", n, "paper", pl[0], pl[1], pl[2], pl[3]);
        for (int i = 0; i < EE_K; i++) {
            char col[24];   /* room for any int (see colname in table3) */
            snprintf(col, sizeof col, "lambda%d", i + 1);
            io_csv_row(cmp, "table4,sf_code,%ld,%s,%.4f,%.4f,%.4f", n, col, f.lambda[EE_CAL_CODE][i], pl[i],
                       f.lambda[EE_CAL_CODE][i] - pl[i]);
        }
    }
    io_csv_commit(csv, meta);
    free(path);
}

void ee_report(const ee_config *c, const io_meta *meta)
{
    paper_table p1, p2, p3, p4;
    paper_load("table1.csv", &p1);
    paper_load("table2.csv", &p2);
    paper_load("table3.csv", &p3);
    paper_load("table4.csv", &p4);
    parts_check(c);
    char *cmp_path = ee_path(c, "compare_paper.csv");
    io_csv *cmp = io_csv_open(cmp_path, "table,model,n,quantity,ours,paper,ours_minus_paper");
    printf("exp_emnist (%s profile, %s): ours vs the paper (paper: EMNIST, its sizes)\n", c->profile, c->dataset);
    table1(c, &p1, cmp, meta);
    table2(c, &p2, cmp, meta);
    table3(c, &p3, cmp, meta);
    table4(c, &p4, cmp, meta);
    io_csv_commit(cmp, meta);
    free(cmp_path);
    paper_free(&p1);
    paper_free(&p2);
    paper_free(&p3);
    paper_free(&p4);
}
