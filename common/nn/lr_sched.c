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

train_model nn_lr_sched_wrap(nn_lr_sched_model *w)
{
    train_model m = {w, w->inner.dim, sched_train_step, sched_eval_loss, sched_snapshot, sched_restore};
    return m;
}
