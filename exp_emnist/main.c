/* exp_emnist: the 7-vs-9 calibration experiment of the paper (§5.1, App. G, Tables 1-4, Figures 4-6).
 * The work is a list of units (classifier, each network, each calibration, each evaluated model); every unit
 * leaves a file behind (a checkpoint under OUT/ckpt, a part under OUT/parts) and is skipped when that file
 * exists, so a run can be killed and started again, or split into calls of at most --budget seconds
 * (exit 75 = not finished, run the same command again). The tables are built from the parts at the end. */
#include "cli.h"
#include "ee.h"
#include "log.h"
#include "mem.h"
#include <gsl/gsl_errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double g_start;

/* Called after every unit: past the budget, stop cleanly (everything done so far is on disk). */
static void budget_check(const ee_config *c)
{
    if (c->budget > 0 && log_now() - g_start > c->budget) {
        log_info("budget of %.0f s reached after %.0f s: run the same command again to continue", c->budget,
                 log_now() - g_start);
        exit(EE_EXIT_BUDGET);
    }
}

static int stage_is(const ee_config *c, const char *s) { return !strcmp(c->stage, "all") || !strcmp(c->stage, s); }

/* The four auxiliaries, loaded once when a unit needs them. */
typedef struct {
    scorenet_dev *net[EE_K];
} aux_set;

static scorenet_dev *const *aux_get(const ee_config *c, aux_set *a)
{
    for (size_t i = 0; i < EE_K; i++)
        if (!a->net[i]) {
            if (!ee_model_done(c, EE_AUX, i))
                log_die("auxiliary %zu is not trained yet for this configuration (run --stage aux first)", i + 1);
            a->net[i] = ee_net_open(c, EE_AUX, i);
        }
    return a->net;
}

static void train_units(const ee_config *c, const ee_data *d, aux_set *a, const io_meta *meta)
{
    if (stage_is(c, "aux") && c->aux_init == EE_INIT_POOL) {
        /* the shared warm start, only while an auxiliary still needs it */
        int need = 0;
        for (size_t i = 0; i < EE_K; i++) need |= !ee_model_done(c, EE_AUX, i);
        if (need && !ee_model_done(c, EE_POOL, 0)) {
            ee_model_train(c, d, EE_POOL, 0, meta);
            budget_check(c);
        }
    }
    if (stage_is(c, "aux"))
        for (size_t i = 0; i < EE_K; i++) {
            if (ee_model_done(c, EE_AUX, i)) continue;
            ee_model_train(c, d, EE_AUX, i, meta);
            budget_check(c);
        }
    if (!stage_is(c, "n")) return;
    for (size_t j = 0; j < c->n_count; j++) {
        long n = c->n_list[j];
        if (!ee_model_done(c, EE_B1, (size_t)n)) {
            ee_model_train(c, d, EE_B1, (size_t)n, meta);
            budget_check(c);
        }
        if (!ee_model_done(c, EE_B2, (size_t)n)) {
            ee_model_train(c, d, EE_B2, (size_t)n, meta);
            budget_check(c);
        }
        if (!ee_fusion_done(c, n)) {
            ee_fusion_run(c, d, n, aux_get(c, a), meta);
            budget_check(c);
        }
    }
}

/* One evaluation unit of a single network (kind, index_or_n). */
static void eval_single(const ee_config *c, const ee_data *d, digitnet *clf, const char *model, long n, ee_kind kind,
                        size_t index_or_n, int with_nll, aux_set *a, const io_meta *meta)
{
    if (ee_eval_done(c, model, n)) return;
    scorenet_dev *own = NULL, *net;
    if (kind == EE_AUX) net = aux_get(c, a)[index_or_n];
    else net = own = ee_net_open(c, kind, index_or_n);
    double one = 1.0;
    ee_eval_run(c, d, clf, model, n, &net, &one, 1, with_nll, meta);
    ee_net_close(own);
    budget_check(c);
}

static void eval_units(const ee_config *c, const ee_data *d, aux_set *a, const io_meta *meta)
{
    if (!stage_is(c, "eval")) return;
    digitnet *clf = NULL;
    /* Table 3: the auxiliaries' class proportions; the 70:30 one is also frozen B2 of Table 1 */
    for (size_t i = 0; i < EE_K; i++) {
        char model[16];
        snprintf(model, sizeof model, "aux%zu", i + 1);
        if (ee_eval_done(c, model, 0)) continue;
        if (!clf) clf = ee_clf_load(c);
        eval_single(c, d, clf, model, 0, EE_AUX, i, i == EE_B2_AUX, a, meta);
    }
    for (size_t j = 0; j < c->n_count; j++) {
        long n = c->n_list[j];
        static const char *const b_models[2] = {"b1", "b2"};
        for (int b = 0; b < 2; b++) {
            if (ee_eval_done(c, b_models[b], n)) continue;
            if (!clf) clf = ee_clf_load(c);
            eval_single(c, d, clf, b_models[b], n, b ? EE_B2 : EE_B1, (size_t)n, 1, a, meta);
        }
        ee_fusion f;
        char ferr[1024];
        int have_f = ee_fusion_read(c, n, &f, ferr, sizeof ferr) == 0;
        for (int m = 0; m < EE_NCAL; m++) {
            if (m == EE_CAL_TEXT && !c->eval_text) continue;
            char model[16];
            snprintf(model, sizeof model, "sf_%s", ee_cal_name((ee_cal)m));
            if (ee_eval_done(c, model, n)) continue;
            if (!have_f) log_die("n=%ld: no usable lambda: %s (run --stage n first)", n, ferr);
            if (!clf) clf = ee_clf_load(c);
            ee_eval_run(c, d, clf, model, n, aux_get(c, a), f.lambda[m], EE_K, 1, meta);
            budget_check(c);
        }
    }
    if (clf) digitnet_free(clf);
}

int main(int argc, char **argv)
{
    log_set_prog(argv[0]);
    gsl_set_error_handler_off();
    g_start = log_now();
    ee_config c;
    ee_config_parse(&c, argc, argv);
    io_meta meta;
    io_meta_init(&meta, argc, argv);
    ee_meta_fill(&c, &meta);
    char *ckpt = ee_path(&c, "ckpt"), *parts = ee_path(&c, "parts");
    cli_output_dir("--out", ckpt);
    cli_output_dir("--out", parts);
    /* temp files of runs that were killed mid-write (a .partial's is the size of a checkpoint) */
    io_remove_stale_tmp(c.out);
    io_remove_stale_tmp(ckpt);
    io_remove_stale_tmp(parts);
    free(ckpt);
    free(parts);

    int need_data = strcmp(c.stage, "report") != 0;
    ee_data d;
    memset(&d, 0, sizeof d);
    if (need_data) {
        ee_data_load(&c, &d);
        char buf[256];
        snprintf(buf, sizeof buf, "%zu+%zu per auxiliary, target test %zu, target pools %zu/%zu, pool %zu 7s %zu 9s",
                 d.aux_train[0].n, d.aux_val[0].n, d.target_test.n, d.target_train.n, d.target_val.n, d.pool7,
                 d.pool9);
        io_meta_set(&meta, "sizes", "%s", buf);
        if (stage_is(&c, "data")) ee_data_write_splits(&c, &d, &meta);
    }
    if (c.probe_aux >= 0) {   /* a measurement, not the experiment */
        ee_probe_run(&c, &d, &meta);
        ee_data_free(&d);
        io_meta_free(&meta);
        log_info("done in %.1f s", log_now() - g_start);
        return 0;
    }
    if (stage_is(&c, "classifier")) {
        ee_clf_train(&c, &d, &meta);
        budget_check(&c);
    }
    aux_set a;
    memset(&a, 0, sizeof a);
    if (need_data) {
        train_units(&c, &d, &a, &meta);
        eval_units(&c, &d, &a, &meta);
    }
    if (stage_is(&c, "report")) ee_report(&c, &meta);
    for (size_t i = 0; i < EE_K; i++)
        ee_net_close(a.net[i]);
    ee_data_free(&d);
    io_meta_free(&meta);
    log_info("done in %.1f s", log_now() - g_start);
    return 0;
}
