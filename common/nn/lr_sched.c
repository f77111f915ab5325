/* nn/lr_sched: warm-up + constant or cosine learning-rate schedule around a train.h model (lr_sched.h). */
#include "lr_sched.h"
#include <math.h>

double nn_lr_sched_at(const nn_lr_sched *s, double lr, long step)
{
    if (s->warm > 0 && step < s->warm)
        return lr * (s->warm_from + (1 - s->warm_from) * (double)(step + 1) / (double)s->warm);
    if (!s->cosine || s->total <= s->warm) return lr;
    double u = (double)(step - s->warm) / (double)(s->total - s->warm);
    if (u > 1) u = 1;   /* a run longer than planned stays at the final rate */
    return lr * (s->end + (1 - s->end) * 0.5 * (1 + cos(M_PI * u)));
}

static double sched_train_step(void *ctx, size_t n, const float *x0, double t_lo, double t_hi, double lr, rng *r)
{
    nn_lr_sched_model *w = ctx;
    double l = w->inner.train_step(w->inner.ctx, n, x0, t_lo, t_hi, nn_lr_sched_at(&w->sched, lr, w->step), r);
    w->step++;
    return l;
}

static double sched_eval_loss(void *ctx, int use_ema, size_t n, const float *x0, double t_lo, double t_hi, rng *r)
{
    nn_lr_sched_model *w = ctx;
    return w->inner.eval_loss(w->inner.ctx, use_ema, n, x0, t_lo, t_hi, r);
}

static void sched_snapshot(void *ctx, int from_ema)
{
    nn_lr_sched_model *w = ctx;
    w->inner.snapshot(w->inner.ctx, from_ema);
}

static void sched_restore(void *ctx)
{
    nn_lr_sched_model *w = ctx;
    w->inner.restore(w->inner.ctx);
}

/* the resident-data entries (train.h), forwarded with the scheduled rate when the inner model has them */
static void sched_load(void *ctx, size_t n_train, const float *x_train, size_t n_val, const float *x_val)
{
    nn_lr_sched_model *w = ctx;
    w->inner.data_load(w->inner.ctx, n_train, x_train, n_val, x_val);
}

static void sched_order(void *ctx, int set, const size_t *idx, size_t n)
{
    nn_lr_sched_model *w = ctx;
    w->inner.data_order(w->inner.ctx, set, idx, n);
}

static void sched_rows(void *ctx, size_t b0, size_t n, double t_lo, double t_hi, double lr, rng *r)
{
    nn_lr_sched_model *w = ctx;
    w->inner.train_rows(w->inner.ctx, b0, n, t_lo, t_hi, nn_lr_sched_at(&w->sched, lr, w->step), r);
    w->step++;
}

static double sched_fetch(void *ctx)
{
    nn_lr_sched_model *w = ctx;
    return w->inner.train_fetch(w->inner.ctx);
}

static double sched_eval_rows(void *ctx, int use_ema, size_t v0, size_t n, double t_lo, double t_hi, rng *r)
{
    nn_lr_sched_model *w = ctx;
    return w->inner.eval_rows(w->inner.ctx, use_ema, v0, n, t_lo, t_hi, r);
}

static void sched_unload(void *ctx)
{
    nn_lr_sched_model *w = ctx;
    w->inner.data_unload(w->inner.ctx);
}

train_model nn_lr_sched_wrap(nn_lr_sched_model *w)
{
    train_model m = {.ctx = w,
                     .dim = w->inner.dim,
                     .train_step = sched_train_step,
                     .eval_loss = sched_eval_loss,
                     .snapshot = sched_snapshot,
                     .restore = sched_restore};
    if (w->inner.train_rows) {
        m.data_load = sched_load;
        m.data_order = sched_order;
        m.train_rows = sched_rows;
        m.train_fetch = sched_fetch;
        m.eval_rows = sched_eval_rows;
        m.data_unload = sched_unload;
    }
    return m;
}
