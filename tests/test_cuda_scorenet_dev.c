/* test_cuda_scorenet_dev: the device-neutral ScoreNet handle (nn/scorenet_dev.h).
 * CPU: every call equals the host scorenet's own (bitwise), including a training run through the train.h vtable
 * and snapshot / restore. CUDA (skipped without a GPU): the same calls on DEVICE_CUDA match DEVICE_CPU on the
 * same weights and the same rng draws -- forward, vjp, eval loss, three training steps, then sync_to_host --
 * at rel-to-max 1e-4 (fp32, different summation orders), with chunking exercised (n = 6 > max_batch = 4). */
#include "device.h"
#include "mem.h"
#include "rng.h"
#include "scorenet.h"
#include "scorenet_dev.h"
#include "sde.h"
#include "test.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N 6
#define CAP 4
#define D SCORENET_DIM

static double rel_to_max(const float *a, const float *b, size_t n)
{
    double mx = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(b[i]) > mx) mx = fabs(b[i]);
        if (fabs((double)a[i] - b[i]) > md) md = fabs((double)a[i] - b[i]);
    }
    return md / (mx > 0 ? mx : 1);
}

static void fill_inputs(float *x, float *e, float *t)
{
    rng *r = rng_alloc(7, 1);
    rng_gaussian_fill(r, x, N * D);
    rng_gaussian_fill(r, e, N * D);
    for (int i = 0; i < N; i++) t[i] = (float)(0.05 + 0.15 * i);
    rng_free(r);
}

static void test_cpu(void)
{
    sde ve = sde_ve(25.0);
    scorenet *a = scorenet_alloc(&ve, CAP, 3), *b = scorenet_alloc(&ve, CAP, 3);
    scorenet_dev *d = scorenet_dev_attach(b, DEVICE_CPU);
    CHECK(scorenet_dev_kind(d) == DEVICE_CPU && scorenet_dev_host(d) == b, "cpu handle wraps its host model");
    float *x = mem_new(float, N * D), *e = mem_new(float, N * D), t[N];
    float *o1 = mem_new(float, N * D), *o2 = mem_new(float, N * D), *g1 = mem_new(float, N * D),
          *g2 = mem_new(float, N * D);
    fill_inputs(x, e, t);
    scorenet_forward(a, 0, N, t, 1, x, o1);
    scorenet_dev_forward(d, 0, N, t, 1, x, o2);
    CHECK(memcmp(o1, o2, N * D * sizeof(float)) == 0, "cpu forward identical to scorenet_forward");
    scorenet_vjp(a, 0, N, t, 1, x, e, o1, g1);
    scorenet_dev_vjp(d, 0, N, t, 1, x, e, o2, g2);
    CHECK(memcmp(g1, g2, N * D * sizeof(float)) == 0 && memcmp(o1, o2, N * D * sizeof(float)) == 0,
          "cpu vjp identical to scorenet_vjp");
    score_model sm = scorenet_dev_score_model(d, 0);
    score_eval(&sm, N, t, 0, x, o2);
    scorenet_forward(a, 0, N, t, 0, x, o1);
    CHECK(memcmp(o1, o2, N * D * sizeof(float)) == 0, "cpu score_model (shared t) identical");
    lik_model lm = scorenet_dev_lik_model(d, 0);
    lm.vjp(lm.ctx, N, t[2], x, e, o2, g2);
    scorenet_vjp(a, 0, N, &t[2], 0, x, e, o1, g1);
    CHECK(lm.dim == D && memcmp(o1, o2, N * D * sizeof(float)) == 0 && memcmp(g1, g2, N * D * sizeof(float)) == 0,
          "cpu lik_model (shared t) identical to scorenet_vjp");

    /* two training steps through the vtable vs directly, same rng */
    train_model tm = scorenet_dev_train_model(d);
    rng *r1 = rng_alloc(11, 2), *r2 = rng_alloc(11, 2);
    for (int s = 0; s < 2; s++) {
        double l1 = scorenet_train_step(a, N, x, 1e-5, 1, 1e-3, r1);
        double l2 = tm.train_step(tm.ctx, N, x, 1e-5, 1, 1e-3, r2);
        CHECK(l1 == l2, "cpu train step: same loss");
    }
    const nn_params *pa = scorenet_params_const(a), *pb = scorenet_params_const(b);
    CHECK(memcmp(pa->data, pb->data, pa->total * sizeof(float)) == 0 &&
              memcmp(pa->ema, pb->ema, pa->total * sizeof(float)) == 0,
          "cpu train steps: identical weights and EMA");
    double v1 = scorenet_eval_loss(a, 1, N, x, 1e-5, 1, r1), v2 = tm.eval_loss(tm.ctx, 1, N, x, 1e-5, 1, r2);
    CHECK(v1 == v2, "cpu eval loss identical");
    tm.snapshot(tm.ctx, 1);
    float keep0 = pb->ema[0];
    tm.train_step(tm.ctx, N, x, 1e-5, 1, 1e-2, r2);
    tm.restore(tm.ctx);
    CHECK(pb->data[0] == keep0 && pb->ema[0] == keep0, "cpu snapshot/restore brings the EMA back");
    rng_free(r1), rng_free(r2);
    scorenet_dev_free(d);
    scorenet_free(a), scorenet_free(b);
    free(x), free(e), free(o1), free(o2), free(g1), free(g2);
}

static void test_cuda(void)
{
    sde ve = sde_ve(25.0);
    scorenet *hc = scorenet_alloc(&ve, CAP, 5), *hg = scorenet_alloc(&ve, CAP, 5);
    scorenet_dev *c = scorenet_dev_attach(hc, DEVICE_CPU), *g = scorenet_dev_attach(hg, DEVICE_CUDA);
    float *x = mem_new(float, N * D), *e = mem_new(float, N * D), t[N];
    float *o1 = mem_new(float, N * D), *o2 = mem_new(float, N * D), *g1 = mem_new(float, N * D),
          *g2 = mem_new(float, N * D);
    fill_inputs(x, e, t);
    scorenet_dev_forward(c, 0, N, t, 1, x, o1);
    scorenet_dev_forward(g, 0, N, t, 1, x, o2);
    CHECK(rel_to_max(o2, o1, N * D) < 1e-4, "cuda forward matches cpu (n > max_batch)");
    scorenet_dev_vjp(c, 0, N, t, 0, x, e, o1, g1);
    scorenet_dev_vjp(g, 0, N, t, 0, x, e, o2, g2);
    CHECK(rel_to_max(o2, o1, N * D) < 1e-4 && rel_to_max(g2, g1, N * D) < 1e-4, "cuda vjp matches cpu");
    train_model tc = scorenet_dev_train_model(c), tg = scorenet_dev_train_model(g);
    rng *r1 = rng_alloc(13, 2), *r2 = rng_alloc(13, 2);
    for (int s = 0; s < 3; s++) {
        double l1 = tc.train_step(tc.ctx, N, x, 1e-5, 1, 1e-3, r1);
        double l2 = tg.train_step(tg.ctx, N, x, 1e-5, 1, 1e-3, r2);
        CHECK_CLOSE(l2, l1, 0, 1e-4, "cuda train step loss matches cpu");
    }
    double v1 = tc.eval_loss(tc.ctx, 1, N, x, 1e-5, 1, r1), v2 = tg.eval_loss(tg.ctx, 1, N, x, 1e-5, 1, r2);
    CHECK_CLOSE(v2, v1, 0, 1e-4, "cuda eval loss (EMA) matches cpu");
    tg.snapshot(tg.ctx, 1);
    tc.snapshot(tc.ctx, 1);
    tg.train_step(tg.ctx, N, x, 1e-5, 1, 1e-2, r2);
    tg.restore(tg.ctx);
    tc.restore(tc.ctx);
    scorenet_dev_sync_to_host(g);
    const nn_params *pc = scorenet_params_const(hc), *pg = scorenet_params_const(hg);
    CHECK(rel_to_max(pg->data, pc->data, pc->total) < 1e-4 && rel_to_max(pg->ema, pc->ema, pc->total) < 1e-4,
          "cuda weights after train + snapshot/restore + sync match cpu");
    long a1, e1, a2, e2;
    scorenet_get_counters(hc, &a1, &e1);
    scorenet_get_counters(hg, &a2, &e2);
    CHECK(a1 + 1 == a2 && e1 + 1 == e2, "sync_to_host carries the Adam and EMA counters");
    rng_free(r1), rng_free(r2);
    scorenet_dev_free(c), scorenet_dev_free(g);
    scorenet_free(hc), scorenet_free(hg);
    free(x), free(e), free(o1), free(o2), free(g1), free(g2);
}

int main(void)
{
    test_cpu();
    char why[256];
    if (device_cuda_count(why, sizeof why) == 0) test_cuda_unavailable("test_cuda_scorenet_dev cuda part", why);
    else test_cuda();
    return test_finish();
}
