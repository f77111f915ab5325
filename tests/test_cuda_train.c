/* test_cuda_train: the GPU training step with no host round trip (issue 8 item 6; train.h resident-data path,
 * scorenet.h scorenet_train_model on a device) through train_run, against the CPU. Skipped without a GPU (FAIL
 * with SF_REQUIRE_CUDA=1). Two epochs of 600 training rows at batch 256 (two full steps and a short one of 88
 * rows per epoch), validation batch 256, workspace for 256 (the whole network at batch 256):
 *   - on a device scorenet_train_model carries the resident entries;
 *   - GPU resident vs GPU gathered (the same kernels fed by host uploads, each loss waited for): BITWISE equal
 *     per-epoch losses and weights (the gather, the on-device loss sum and the guards change no arithmetic);
 *   - GPU resident vs CPU gathered: the same draws (rng state afterwards equal), per-epoch losses within 1e-4
 *     relative (fp32, different summation orders, as test_cuda_scorenet_dev); weights and EMA: 99% of entries
 *     within 1e-5 + 1e-4 |w| and every entry within 2 lr per Adam step (Adam's first steps move a parameter by
 *     about lr times the sign of its gradient, and some gradients are zero up to rounding -- dense7 feeds a
 *     one-channel-per-group GroupNorm that removes it -- so their sign, and the step, differ between backends);
 *     Adam / EMA counters equal;
 *   - a NaN row: the GPU run stops at the same epoch and step record as the CPU, with equal counters. */
#include "device.h"
#include "mem.h"
#include "rng.h"
#include "scorenet.h"
#include "sde.h"
#include "test.h"
#include "train.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NT 600
#define NV 300
#define CAP 256
#define D SCORENET_DIM
#define LR 1e-4

static train_config config(void)
{
    train_config c = train_config_default();
    c.max_epochs = 2;
    c.batch = 256;
    c.val_batch = 256;
    c.lr = LR;
    c.keep = TRAIN_KEEP_BEST_EMA;
    return c;
}

static int same_bytes(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

static double max_rel(const double *a, const double *b, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]) / fmax(fabs(b[i]), 1e-30);
        if (!(d <= m)) m = d;   /* NaN propagates */
    }
    return m;
}

/* 0 when w (GPU) is within the stated tolerances of ref (CPU); prints the worst entries */
static int weights_close(const float *w, const float *ref, size_t n, long steps, const char *what)
{
    size_t far = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)w[i] - ref[i]);
        if (!(d <= 1e-5 + 1e-4 * fabs(ref[i]))) far++;
        if (!(d <= worst)) worst = d;
    }
    printf("# %s: %zu of %zu entries outside 1e-5 + 1e-4 |w|, max |diff| %.3g (bound %.3g)\n", what, far, n, worst,
           2.0 * LR * (double)steps);
    return far <= n / 100 && worst <= 2.0 * LR * (double)steps;
}

typedef struct {
    scorenet *m;
    rng *r;
    train_result res;
} run;

/* mode 0: cpu gathered; 1: cuda resident (scorenet_train_model); 2: cuda gathered */
static void run_one(run *o, int mode, const float *xt, const float *xv)
{
    sde ve = sde_ve(25.0);
    o->m = scorenet_alloc(&ve, CAP, 21);
    if (mode) scorenet_set_device(o->m, DEVICE_CUDA);
    o->r = rng_alloc(77, 3);
    train_model tm = scorenet_train_model(o->m);
    if (mode == 2) {   /* the same model without the resident entries: train_run gathers on the host */
        train_model plain = {.ctx = tm.ctx, .dim = tm.dim, .train_step = tm.train_step, .eval_loss = tm.eval_loss,
                             .snapshot = tm.snapshot, .restore = tm.restore};
        tm = plain;
    }
    train_config c = config();
    train_run(&tm, &c, NT, xt, NV, xv, o->r, &o->res);
    scorenet_sync_to_host(o->m);
}

static void run_free(run *o)
{
    train_result_free(&o->res);
    scorenet_free(o->m);
    rng_free(o->r);
}

static void compare_cpu(const run *g, const run *c, const char *tag)
{
    char name[160];
    const train_result *a = &g->res, *b = &c->res;
    snprintf(name, sizeof name, "%s: same status, epochs, best / kept epoch", tag);
    CHECK(a->status == b->status && a->epochs_run == b->epochs_run && a->bad_epoch == b->bad_epoch &&
              a->best_epoch == b->best_epoch && a->kept_epoch == b->kept_epoch,
          name);
    snprintf(name, sizeof name, "%s: the same rng draws as the cpu run", tag);
    CHECK(rng_state_size(g->r) == rng_state_size(c->r) &&
              same_bytes(rng_state_ptr(g->r), rng_state_ptr(c->r), rng_state_size(c->r)),
          name);
    long sa, ea, sb, eb;
    scorenet_get_counters(g->m, &sa, &ea);
    scorenet_get_counters(c->m, &sb, &eb);
    snprintf(name, sizeof name, "%s: Adam / EMA counters equal (%ld / %ld)", tag, sb, eb);
    CHECK(sa == sb && ea == eb, name);
}

int main(void)
{
    char why[256];
    if (device_cuda_count(why, sizeof why) == 0) {
        test_cuda_unavailable("test_cuda_train", why);
        return test_finish();
    }
    float *xt = mem_new(float, NT * D), *xv = mem_new(float, NV * D);
    rng *dr = rng_alloc(3, 8);
    for (size_t i = 0; i < NT * D; i++) xt[i] = (float)rng_uniform(dr);
    for (size_t i = 0; i < NV * D; i++) xv[i] = (float)rng_uniform(dr);
    rng_free(dr);

    {
        sde ve = sde_ve(25.0);
        scorenet *m = scorenet_alloc(&ve, 4, 1);
        CHECK(scorenet_train_model(m).train_rows == NULL, "cpu scorenet_train_model: the gathered path");
        scorenet_set_device(m, DEVICE_CUDA);
        train_model t = scorenet_train_model(m);
        CHECK(t.train_rows && t.data_load && t.train_fetch && t.eval_rows, "cuda scorenet_train_model: resident");
        scorenet_free(m);
    }

    run c, g, h;
    run_one(&c, 0, xt, xv);
    run_one(&g, 1, xt, xv);
    run_one(&h, 2, xt, xv);
    const int E = c.res.epochs_run;
    CHECK(c.res.status == TRAIN_OK && E == 2, "cpu reference run: 2 epochs");
    const size_t k = (size_t)g.res.epochs_run * sizeof(double);
    const nn_params *pc = scorenet_params_const(c.m), *pg = scorenet_params_const(g.m),
                    *ph = scorenet_params_const(h.m);
    const size_t T = pc->total;
    CHECK(g.res.epochs_run == h.res.epochs_run && same_bytes(g.res.train_loss, h.res.train_loss, k) &&
              same_bytes(g.res.train_loss_last, h.res.train_loss_last, k) &&
              same_bytes(g.res.val_loss, h.res.val_loss, k) && same_bytes(g.res.ema_val_loss, h.res.ema_val_loss, k),
          "cuda resident vs cuda gathered: per-epoch losses bitwise equal");
    CHECK(same_bytes(pg->data, ph->data, T * sizeof(float)) && same_bytes(pg->ema, ph->ema, T * sizeof(float)),
          "cuda resident vs cuda gathered: weights and EMA bitwise equal");
    compare_cpu(&g, &c, "cuda resident vs cpu");
    if (g.res.epochs_run == E) {
        double r1 = max_rel(g.res.train_loss, c.res.train_loss, E);
        double r2 = max_rel(g.res.train_loss_last, c.res.train_loss_last, E);
        double r3 = max_rel(g.res.val_loss, c.res.val_loss, E);
        double r4 = max_rel(g.res.ema_val_loss, c.res.ema_val_loss, E);
        printf("# loss rel diff: train %.3g, last %.3g, val %.3g, ema val %.3g\n", r1, r2, r3, r4);
        CHECK(r1 < 1e-4 && r2 < 1e-4 && r3 < 1e-4 && r4 < 1e-4, "cuda resident vs cpu: per-epoch losses within 1e-4");
    }
    long steps;
    scorenet_get_counters(c.m, &steps, NULL);
    CHECK(weights_close(pg->data, pc->data, T, steps, "weights") && weights_close(pg->ema, pc->ema, T, steps, "ema"),
          "cuda resident vs cpu: weights and EMA within the stated tolerances");
    run_free(&c), run_free(&g), run_free(&h);

    /* a NaN row: every path stops on the step that draws it */
    xt[123 * D + 400] = NAN;
    run_one(&c, 0, xt, xv);
    run_one(&g, 1, xt, xv);
    CHECK(c.res.status == TRAIN_NONFINITE && g.res.status == TRAIN_NONFINITE && strcmp(g.res.what, c.res.what) == 0,
          "NaN row: both runs stop on a non-finite train loss");
    long sa, ea, sb, eb;
    scorenet_get_counters(g.m, &sa, &ea);
    scorenet_get_counters(c.m, &sb, &eb);
    CHECK(g.res.bad_epoch == c.res.bad_epoch && sa == sb && ea == eb,
          "NaN row: the same epoch and the same counters (no update from the bad step)");
    run_free(&c), run_free(&g);
    free(xt);
    free(xv);
    return test_finish();
}
