/* test_train_resident: train.h's resident-data path (data_load / data_order / train_rows / train_fetch /
 * eval_rows; issue 8 item 6) against the gathered path, on the CPU, where both must agree BITWISE:
 *   - train_run over scorenet_train_model_resident equals train_run over scorenet_train_model (per-epoch losses,
 *     kept / best epochs, weights, EMA, Adam moments and counters, the rng afterwards), with a step larger than
 *     the workspace (chunks inside a step) and a short last batch; the same through nn_lr_sched_wrap;
 *   - a NaN row in the training set: both paths stop at the same step with the same record, the same weights and
 *     counters (the resident step's update is skipped by the guard and its counters rolled back), the resident
 *     run having drawn exactly one more seed (train.h);
 *   - a resumed run (checkpoint after epoch 1, resume) equals the uninterrupted resident run.
 * The GPU side of the same path is tests/test_cuda_train.c. */
#include "lr_sched.h"
#include "mem.h"
#include "rng.h"
#include "safetensors.h"
#include "scorenet.h"
#include "sde.h"
#include "test.h"
#include "train.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CAP 4
#define NT 10
#define NV 6
#define D SCORENET_DIM

static train_config config(void)
{
    train_config c = train_config_default();
    c.max_epochs = 3;
    c.batch = 6;       /* > CAP: two chunks per full step; the epoch's second step has 4 rows */
    c.val_batch = 4;   /* 6 val rows: the order is reshuffled at epoch 2 */
    c.lr = 1e-3;
    c.patience = 1;
    c.countdown = 5;
    c.keep = TRAIN_KEEP_PAPER;
    return c;
}

static void data(float *xt, float *xv)
{
    rng *r = rng_alloc(5, 9);
    for (size_t i = 0; i < NT * D; i++) xt[i] = (float)rng_uniform(r);
    for (size_t i = 0; i < NV * D; i++) xv[i] = (float)rng_uniform(r);
    rng_free(r);
}

static int same_bytes(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

static int same_result(const train_result *a, const train_result *b)
{
    if (a->status != b->status || a->epochs_run != b->epochs_run || a->best_epoch != b->best_epoch ||
        a->kept_epoch != b->kept_epoch || a->trigger_epoch != b->trigger_epoch || a->bad_epoch != b->bad_epoch ||
        strcmp(a->what, b->what) != 0)
        return 0;
    const size_t k = (size_t)a->epochs_run * sizeof(double);
    /* NaN records compare by bytes (the same NaN from the same arithmetic) */
    return same_bytes(a->train_loss, b->train_loss, k) && same_bytes(a->train_loss_last, b->train_loss_last, k) &&
           same_bytes(a->val_loss, b->val_loss, k) && same_bytes(a->ema_val_loss, b->ema_val_loss, k);
}

static int same_model(scorenet *a, scorenet *b)
{
    const nn_params *pa = scorenet_params(a), *pb = scorenet_params(b);
    const size_t T = pa->total * sizeof(float);
    long sa, ea, sb, eb;
    scorenet_get_counters(a, &sa, &ea);
    scorenet_get_counters(b, &sb, &eb);
    return sa == sb && ea == eb && same_bytes(pa->data, pb->data, T) && same_bytes(pa->ema, pb->ema, T) &&
           same_bytes(pa->m, pb->m, T) && same_bytes(pa->v, pb->v, T);
}

static int same_rng(const rng *a, const rng *b)
{
    return rng_state_size(a) == rng_state_size(b) && same_bytes(rng_state_ptr(a), rng_state_ptr(b), rng_state_size(a));
}

/* one run of each path from the same seeds; returns via the out arguments */
static void run_pair(const float *xt, const float *xv, const train_config *c, int sched, train_result *ra,
                     train_result *rb, scorenet **ma, scorenet **mb, rng **ga, rng **gb)
{
    sde ve = sde_ve(25.0);
    *ma = scorenet_alloc(&ve, CAP, 3);
    *mb = scorenet_alloc(&ve, CAP, 3);
    *ga = rng_alloc(17, 4);
    *gb = rng_alloc(17, 4);
    train_model ta = scorenet_train_model(*ma), tb = scorenet_train_model_resident(*mb);
    nn_lr_sched s = {3, 0.1, 1, 0.05, 6};
    nn_lr_sched_model wa = {ta, s, 0}, wb = {tb, s, 0};
    if (sched) {
        ta = nn_lr_sched_wrap(&wa);
        tb = nn_lr_sched_wrap(&wb);
    }
    train_run(&ta, c, NT, xt, NV, xv, *ga, ra);
    train_run(&tb, c, NT, xt, NV, xv, *gb, rb);
}

static void done_pair(train_result *ra, train_result *rb, scorenet *ma, scorenet *mb, rng *ga, rng *gb)
{
    train_result_free(ra);
    train_result_free(rb);
    scorenet_free(ma);
    scorenet_free(mb);
    rng_free(ga);
    rng_free(gb);
}

/* checkpoint callback: keep a copy of the model and the loop state after epoch 1 */
typedef struct {
    scorenet *m;
    char path[256];
    int saved;
} ck_ctx;

static void ck_save(void *ctx, const train_progress *p)
{
    ck_ctx *k = ctx;
    if (k->saved) return;
    char err[256];
    if (scorenet_save_training(k->m, p, k->path, err, sizeof err) == 0) k->saved = 1;
    else printf("# checkpoint: %s\n", err);
}

int main(void)
{
    float *xt = mem_new(float, NT * D), *xv = mem_new(float, NV * D);
    data(xt, xv);
    train_config c = config();
    train_result ra, rb;
    scorenet *ma, *mb;
    rng *ga, *gb;

    run_pair(xt, xv, &c, 0, &ra, &rb, &ma, &mb, &ga, &gb);
    CHECK(ra.status == TRAIN_OK && ra.epochs_run == 3, "gathered run: 3 epochs");
    CHECK(same_result(&ra, &rb), "resident run: the same per-epoch losses and choices, bitwise");
    CHECK(same_model(ma, mb), "resident run: the same weights, EMA, Adam moments and counters, bitwise");
    CHECK(same_rng(ga, gb), "resident run: the same draws from the rng");
    done_pair(&ra, &rb, ma, mb, ga, gb);

    run_pair(xt, xv, &c, 1, &ra, &rb, &ma, &mb, &ga, &gb);
    CHECK(same_result(&ra, &rb) && same_model(ma, mb) && same_rng(ga, gb),
          "through nn_lr_sched_wrap: resident equals gathered, bitwise");
    done_pair(&ra, &rb, ma, mb, ga, gb);

    /* a NaN in the row of training example 7: whichever step draws it is non-finite */
    xt[7 * D + 100] = NAN;
    run_pair(xt, xv, &c, 0, &ra, &rb, &ma, &mb, &ga, &gb);
    CHECK(ra.status == TRAIN_NONFINITE && strcmp(ra.what, "train loss") == 0 && ra.bad_epoch == 0,
          "gathered run with a NaN row: stops at epoch 0 on the train loss");
    CHECK(same_result(&ra, &rb), "resident run with a NaN row: the same record");
    CHECK(same_model(ma, mb), "resident run with a NaN row: the same weights and counters (the update was skipped)");
    (void)rng_u64(ga);   /* the resident loop queued one more step before it read the bad loss */
    CHECK(same_rng(ga, gb), "resident run with a NaN row: exactly one more seed drawn");
    done_pair(&ra, &rb, ma, mb, ga, gb);
    xt[7 * D + 100] = 0.5f;

    /* the resident entries called directly (not through train_run): a non-finite step's counters are rolled back
     * even when its loss is never read before data_unload, and steps queued after a non-finite loss was read
     * (skipped on the table: the guard's flag is sticky) move neither weights nor counters */
    {
        sde ve = sde_ve(25.0);
        scorenet *m = scorenet_alloc(&ve, CAP, 3), *ref = scorenet_alloc(&ve, CAP, 3);
        train_model t = scorenet_train_model_resident(m);
        rng *g = rng_alloc(17, 4);
        size_t idx[NT];
        for (size_t i = 0; i < NT; i++) idx[i] = i;
        const size_t T = scorenet_params(ref)->total * sizeof(float);
        long s, e;
        const float keep = xt[2 * D + 50];
        xt[2 * D + 50] = NAN;   /* in rows [0, 6) */
        t.data_load(t.ctx, NT, xt, NV, xv);
        t.data_order(t.ctx, 0, idx, NT);
        t.train_rows(t.ctx, 0, 6, c.t_lo, c.t_hi, c.lr, g);
        t.train_rows(t.ctx, 6, 4, c.t_lo, c.t_hi, c.lr, g);
        t.data_unload(t.ctx);
        scorenet_get_counters(m, &s, &e);
        CHECK(s == 0 && e == 0 && same_bytes(scorenet_params(m)->data, scorenet_params(ref)->data, T),
              "resident: a non-finite step never read before data_unload: no update, counters rolled back");
        t.data_load(t.ctx, NT, xt, NV, xv);
        t.data_order(t.ctx, 0, idx, NT);
        t.train_rows(t.ctx, 6, 4, c.t_lo, c.t_hi, c.lr, g);
        const double l0 = t.train_fetch(t.ctx);
        t.train_rows(t.ctx, 0, 6, c.t_lo, c.t_hi, c.lr, g);
        t.train_rows(t.ctx, 6, 4, c.t_lo, c.t_hi, c.lr, g);
        const double l1 = t.train_fetch(t.ctx), l2 = t.train_fetch(t.ctx);
        float *w1 = mem_new(float, T / sizeof(float));
        memcpy(w1, scorenet_params(m)->data, T);
        long s1, e1;
        scorenet_get_counters(m, &s1, &e1);
        t.train_rows(t.ctx, 6, 4, c.t_lo, c.t_hi, c.lr, g);
        const double l3 = t.train_fetch(t.ctx);
        t.data_unload(t.ctx);
        scorenet_get_counters(m, &s, &e);
        CHECK(isfinite(l0) && !isfinite(l1) && isfinite(l2) && isfinite(l3) && s1 == 1 && e1 == 1 && s == 1 &&
                  e == 1 && same_bytes(scorenet_params(m)->data, w1, T),
              "resident: after a non-finite loss is read, later steps update nothing and leave the counters");
        free(w1);
        xt[2 * D + 50] = keep;
        rng_free(g);
        scorenet_free(m);
        scorenet_free(ref);
    }

    /* resume: 3 epochs straight vs a checkpoint after epoch 1 continued in a fresh model, both resident */
    {
        sde ve = sde_ve(25.0);
        scorenet *m1 = scorenet_alloc(&ve, CAP, 3), *m2 = scorenet_alloc(&ve, CAP, 3);
        rng *g1 = rng_alloc(17, 4), *g2 = rng_alloc(17, 4);
        train_model t1 = scorenet_train_model_resident(m1), t2 = scorenet_train_model_resident(m2);
        train_result r1, r2, rr;
        train_run(&t1, &c, NT, xt, NV, xv, g1, &r1);
        ck_ctx k = {m2, "", 0};
        snprintf(k.path, sizeof k.path, "/tmp/test_train_resident_%d.safetensors", (int)getpid());
        train_config c2 = c;
        c2.checkpoint = ck_save;
        c2.checkpoint_ctx = &k;
        c2.checkpoint_every = 0;
        train_run(&t2, &c2, NT, xt, NV, xv, g2, &r2);
        CHECK(k.saved, "resident run: a checkpoint was written after epoch 1");
        char err[256];
        scorenet *m3 = k.saved ? scorenet_load(k.path, &ve, CAP, err, sizeof err) : NULL;
        int ok = 0;
        if (m3) {
            safetensors *st = safetensors_open(k.path, err, sizeof err);
            train_progress p;
            if (st && scorenet_read_optim(m3, st, k.path, err, sizeof err) == 0 &&
                train_progress_read(&p, st, &c, NT, NV, k.path, err, sizeof err) == 0) {
                rng *g3 = rng_alloc(0, 0);
                train_config c3 = c;
                c3.resume = &p;
                train_model t3 = scorenet_train_model_resident(m3);
                train_run(&t3, &c3, NT, xt, NV, xv, g3, &rr);
                ok = same_result(&r1, &rr) && same_model(m1, m3) && same_rng(g1, g3);
                train_result_free(&rr);
                train_progress_free(&p);
                rng_free(g3);
            } else {
                printf("# resume: %s\n", err);
            }
            safetensors_close(st);
            scorenet_free(m3);
        }
        CHECK(ok, "resident run resumed after epoch 1 equals the uninterrupted run, bitwise");
        unlink(k.path);
        train_result_free(&r1);
        train_result_free(&r2);
        scorenet_free(m1);
        scorenet_free(m2);
        rng_free(g1);
        rng_free(g2);
    }
    free(xt);
    free(xv);
    return test_finish();
}
