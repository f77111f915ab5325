/* test_lr_sched: the learning-rate schedule (nn/lr_sched) at its joints, and the train.h wrapper that applies it:
 * the inner step sees the schedule's rate for the step count, the count survives a resume, eval and snapshot pass
 * through untouched. */
#include "lr_sched.h"
#include "test.h"
#include <math.h>
#include <stdio.h>

/* an inner model that records the rate of every step */
typedef struct {
    double lr[64];
    int steps, evals, snaps, restores;
} spy;

static double spy_step(void *ctx, size_t n, const float *x0, double lo, double hi, double lr, rng *r)
{
    (void)n, (void)x0, (void)lo, (void)hi, (void)r;
    spy *s = ctx;
    s->lr[s->steps++] = lr;
    return 1.0;
}
static double spy_eval(void *ctx, int use_ema, size_t n, const float *x0, double lo, double hi, rng *r)
{
    (void)use_ema, (void)n, (void)x0, (void)lo, (void)hi, (void)r;
    ((spy *)ctx)->evals++;
    return 2.0;
}
static void spy_snap(void *ctx, int from_ema) { (void)from_ema, ((spy *)ctx)->snaps++; }
static void spy_restore(void *ctx) { ((spy *)ctx)->restores++; }
static train_model spy_model(spy *s)
{
    train_model m = {.ctx = s, .dim = 3, .train_step = spy_step, .eval_loss = spy_eval, .snapshot = spy_snap,
                     .restore = spy_restore};
    return m;
}

int main(void)
{
    const double lr = 2e-3;
    /* warm-up from lr/10 over 4 steps, cosine to lr/50 at step 20 */
    nn_lr_sched s = {4, 0.1, 1, 0.02, 20};
    CHECK_CLOSE(nn_lr_sched_at(&s, lr, 0), lr * (0.1 + 0.9 / 4), 0, 1e-15, "warm-up: first step");
    CHECK_CLOSE(nn_lr_sched_at(&s, lr, 3), lr, 0, 1e-15, "warm-up: peak reached at its last step");
    CHECK_CLOSE(nn_lr_sched_at(&s, lr, 4), lr, 0, 1e-15, "cosine: starts at the peak");
    CHECK_CLOSE(nn_lr_sched_at(&s, lr, 12), lr * (0.02 + 0.98 * 0.5), 0, 1e-14, "cosine: half way, the mean");
    CHECK_CLOSE(nn_lr_sched_at(&s, lr, 20), lr * 0.02, 0, 1e-14, "cosine: the final fraction at step total");
    CHECK_CLOSE(nn_lr_sched_at(&s, lr, 500), lr * 0.02, 0, 1e-14, "past total: stays at the final rate");
    int mono = 1;
    for (long k = 5; k <= 20; k++) mono &= nn_lr_sched_at(&s, lr, k) < nn_lr_sched_at(&s, lr, k - 1);
    CHECK(mono, "cosine: strictly decreasing after the warm-up");
    nn_lr_sched flat = {0, 0.0, 0, 0.0, 20}, zero_warm = {5, 0.0, 0, 0.0, 20};
    CHECK(nn_lr_sched_at(&flat, lr, 0) == lr && nn_lr_sched_at(&flat, lr, 19) == lr, "no warm-up, constant: lr");
    CHECK_CLOSE(nn_lr_sched_at(&zero_warm, lr, 0), lr / 5, 0, 1e-15, "warm-up from zero: (k+1)/warm of lr");
    CHECK(nn_lr_sched_at(&zero_warm, lr, 7) == lr, "constant after the warm-up");

    /* the wrapper: 12 steps in one go equal 5 + a resumed 7 */
    spy a = {0}, b = {0};
    nn_lr_sched_model wa = {spy_model(&a), s, 0};
    train_model ma = nn_lr_sched_wrap(&wa);
    for (int k = 0; k < 12; k++) ma.train_step(ma.ctx, 1, NULL, 0, 1, lr, NULL);
    nn_lr_sched_model wb = {spy_model(&b), s, 0};
    train_model mb = nn_lr_sched_wrap(&wb);
    for (int k = 0; k < 5; k++) mb.train_step(mb.ctx, 1, NULL, 0, 1, lr, NULL);
    nn_lr_sched_model wc = {spy_model(&b), s, 5};   /* resumed at step 5 */
    train_model mc = nn_lr_sched_wrap(&wc);
    for (int k = 0; k < 7; k++) mc.train_step(mc.ctx, 1, NULL, 0, 1, lr, NULL);
    int same = a.steps == 12 && b.steps == 12 && wa.step == 12 && wc.step == 12;
    for (int k = 0; k < 12 && same; k++) same = a.lr[k] == b.lr[k] && a.lr[k] == nn_lr_sched_at(&s, lr, k);
    CHECK(same, "wrapper: the inner step gets the schedule's rate; a resume continues it exactly");
    CHECK(ma.dim == 3 && ma.eval_loss(ma.ctx, 1, 1, NULL, 0, 1, NULL) == 2.0 && a.evals == 1 && a.lr[11] != lr,
          "wrapper: eval passes through, dim kept");
    ma.snapshot(ma.ctx, 1), ma.restore(ma.ctx);
    CHECK(a.snaps == 1 && a.restores == 1 && a.steps == 12, "wrapper: snapshot and restore pass through");
    return test_finish();
}
