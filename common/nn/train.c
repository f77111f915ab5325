/* nn/train: epochs, minibatches, one EMA validation batch per epoch, early stopping and checkpoint choice as in
 * the paper's code (see train.h for the exact rules and where they come from). */
#include "train.h"
#include "log.h"
#include "mem.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *train_keep_name(train_keep k)
{
    switch (k) {
    case TRAIN_KEEP_PAPER: return "paper-generic";
    case TRAIN_KEEP_BEST_EMA: return "best-ema";
    case TRAIN_KEEP_PAPER_EXP: return "paper-exp";
    }
    return "?";
}

train_config train_config_default(void)
{
    train_config c;
    memset(&c, 0, sizeof c);
    c.max_epochs = 1024;
    c.batch = 4096;
    c.val_batch = 4096;
    c.lr = 1e-4;
    c.t_lo = 1e-5;
    c.t_hi = 1.0;
    c.patience = 50;
    c.max_fraction = 0.5;
    c.countdown = 100;
    c.keep = TRAIN_KEEP_PAPER;
    c.label = "train";
    return c;
}

void train_stopper_init(train_stopper *s, int patience, double max_fraction, int countdown, const int *decay_points,
                        int n_decay_points)
{
    s->patience = patience;
    s->max_fraction = max_fraction;
    s->best = INFINITY;
    s->counter = 0;
    s->triggered = 0;
    s->countdown = countdown;
    s->decay_points = decay_points;
    s->n_decay_points = n_decay_points;
}

train_stop_event train_stopper_epoch(train_stopper *s, int epoch, double val)
{
    train_stop_event ev = {0, 0, 0};
    if (s->triggered) s->countdown--;   /* the paper decrements at the top of every epoch after the trigger */
    for (int k = 0; k < s->n_decay_points; k++)
        if (s->decay_points[k] == epoch) s->max_fraction *= 0.5;
    if (val < s->best) {
        s->best = val;
        s->counter = 0;
        ev.better = 1;
    } else if (val > s->best * (1.0 + s->max_fraction)) {
        s->counter++;
        if (s->counter >= s->patience) ev.do_stop = 1;
    }
    if (ev.do_stop && !s->triggered) s->triggered = 1;
    ev.finish = s->triggered && s->countdown == 0;
    return ev;
}

void train_result_free(train_result *res)
{
    free(res->train_loss);
    free(res->train_loss_last);
    free(res->val_loss);
    free(res->ema_val_loss);
    memset(res, 0, sizeof *res);
}

static void gather(float *dst, const float *src, const size_t *idx, size_t n, size_t dim)
{
    for (size_t i = 0; i < n; i++) memcpy(dst + i * dim, src + idx[i] * dim, dim * sizeof *dst);
}

train_status train_run(const train_model *m, const train_config *c, size_t n_train, const float *x_train,
                       size_t n_val, const float *x_val, rng *r, train_result *res)
{
    LOG_CHECK(n_train > 0 && n_val > 0 && c->batch > 0 && c->val_batch > 0 && c->max_epochs > 0,
              "train_run: empty data set or zero batch size");
    memset(res, 0, sizeof *res);
    const int E = c->max_epochs;
    res->train_loss = mem_new(double, (size_t)E);
    res->train_loss_last = mem_new(double, (size_t)E);
    res->val_loss = mem_new(double, (size_t)E);
    res->ema_val_loss = mem_new(double, (size_t)E);
    res->best_epoch = res->kept_epoch = res->trigger_epoch = res->bad_epoch = -1;
    res->best_val = INFINITY;

    const size_t dim = m->dim;
    const size_t bmax = c->batch > c->val_batch ? c->batch : c->val_batch;
    float *xb = mem_new(float, bmax * dim);
    size_t *tidx = mem_new(size_t, n_train), *vidx = mem_new(size_t, n_val);
    for (size_t i = 0; i < n_train; i++) tidx[i] = i;
    for (size_t i = 0; i < n_val; i++) vidx[i] = i;
    rng_shuffle(r, vidx, n_val);
    size_t vpos = 0;

    train_stopper st;
    train_stopper_init(&st, c->patience, c->max_fraction, c->countdown, c->decay_points, c->n_decay_points);
    log_progress prog;
    if (c->progress) log_progress_begin(&prog, c->label ? c->label : "train", (size_t)E);

    int have_kept = 0;
    for (int e = 0; e < E; e++) {
        rng_shuffle(r, tidx, n_train);
        double sum = 0.0, last = 0.0;
        size_t nb = 0;
        for (size_t b0 = 0; b0 < n_train; b0 += c->batch) {
            size_t nbat = n_train - b0 < c->batch ? n_train - b0 : c->batch;
            gather(xb, x_train, tidx + b0, nbat, dim);
            last = m->train_step(m->ctx, nbat, xb, c->t_lo, c->t_hi, c->lr, r);
            if (!isfinite(last)) {
                res->status = TRAIN_NONFINITE;
                res->bad_epoch = e;
                snprintf(res->what, sizeof res->what, "train loss");
                break;
            }
            sum += last;
            nb++;
        }
        res->train_loss[e] = nb ? sum / (double)nb : NAN;
        res->train_loss_last[e] = last;
        res->epochs_run = e + 1;
        if (res->status != TRAIN_OK) break;

        if (vpos >= n_val) {
            rng_shuffle(r, vidx, n_val);
            vpos = 0;
        }
        size_t nv = n_val - vpos < c->val_batch ? n_val - vpos : c->val_batch;
        gather(xb, x_val, vidx + vpos, nv, dim);
        vpos += nv;
        double ema_val = m->eval_loss(m->ctx, 1, nv, xb, c->t_lo, c->t_hi, r);
        double raw_val = m->eval_loss(m->ctx, 0, nv, xb, c->t_lo, c->t_hi, r);
        res->ema_val_loss[e] = ema_val;
        res->val_loss[e] = raw_val;
        if (!isfinite(ema_val) || !isfinite(raw_val)) {
            res->status = TRAIN_NONFINITE;
            res->bad_epoch = e;
            snprintf(res->what, sizeof res->what, "%s", isfinite(ema_val) ? "val loss" : "EMA val loss");
            break;
        }
        train_stop_event ev = train_stopper_epoch(&st, e, ema_val);
        if (ev.better) {
            res->best_epoch = e;
            res->best_val = ema_val;
        }
        if (ev.do_stop && res->trigger_epoch < 0) res->trigger_epoch = e;
        if ((c->keep == TRAIN_KEEP_PAPER && !ev.do_stop) || (c->keep == TRAIN_KEEP_BEST_EMA && ev.better)) {
            m->snapshot(m->ctx, 1);
            res->kept_epoch = e;
            have_kept = 1;
        }
        if (c->progress) log_progress_step(&prog, 1);
        if (ev.finish) break;
        if (c->keep == TRAIN_KEEP_PAPER_EXP) {
            m->snapshot(m->ctx, 0);
            res->kept_epoch = e;
            have_kept = 1;
        }
    }
    if (c->progress) log_progress_end(&prog);
    if (have_kept) m->restore(m->ctx);
    free(xb);
    free(tidx);
    free(vidx);
    return res->status;
}
