/* test_cuda_nets: the digit classifier (models/digitnet) and the 1-D score MLP (models/mlp1d), each written once
 * over the backend table, run on the cuda table against the same model on the cpu table (issue 8 item 3: "every
 * CUDA op its GPU-vs-CPU test", here for the whole networks). Equal seeds give equal weights; the dropout masks
 * are the same Philox bits on both tables, so train-mode losses and gradients compare directly. Tolerances
 * (fp32, TF32 off; cuBLAS vs the packed SGEMM, expf vs the CPU's exp): probabilities / scores rtol 1e-4, atol
 * 1e-5; losses rtol 1e-5; gradients atol 1e-4 max|grad| (sums of up to 3136 x batch products); losses after
 * Adam steps rtol 1e-3 (Adam's first steps turn rounding-level gradient differences into lr-sized moves).
 * Without a GPU prints SKIP (FAIL with SF_REQUIRE_CUDA=1). */
#include "device.h"
#include "test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SF_HAVE_CUDA
#include "digitnet.h"
#include "mem.h"
#include "mlp1d.h"
#include "params.h"
#include "rng.h"
#include "sde.h"

static void cmp(const char *name, const float *g, const float *c, size_t n, double atol, double rtol)
{
    size_t bad = 0, worst = 0;
    double wr = -1;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)g[i] - c[i]), lim = atol + rtol * fabs((double)c[i]);
        if (!(d <= lim)) bad++;
        const double r = lim > 0 ? d / lim : d;
        if (!(r <= wr)) wr = r, worst = i;
    }
    char detail[240];
    snprintf(detail, sizeof detail, "%zu of %zu outside; worst [%zu] gpu %.9g cpu %.9g", bad, n, worst,
             (double)g[worst], (double)c[worst]);
    test_report(bad == 0, name, detail);
}

static double maxabs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

static void test_digitnet(void)
{
    enum { N = 20, CAP = 16 };   /* two chunks */
    digitnet *c = digitnet_alloc(CAP, 3), *g = digitnet_alloc(CAP, 3);
    digitnet_set_device(g, DEVICE_CUDA);
    CHECK(digitnet_device(g) == DEVICE_CUDA, "digitnet moved to cuda");
    rng *r = rng_alloc(5, 0);
    float *x = mem_new(float, (size_t)N * DIGITNET_DIM);
    uint8_t y[N];
    for (size_t i = 0; i < (size_t)N * DIGITNET_DIM; i++) x[i] = (float)rng_gaussian(r);
    for (int i = 0; i < N; i++) y[i] = (uint8_t)((i * 3) % DIGITNET_CLASSES);
    float pc[N * DIGITNET_CLASSES], pg[N * DIGITNET_CLASSES];
    digitnet_probs(c, N, x, pc);
    digitnet_probs(g, N, x, pg);
    cmp("digitnet probs (eval, 2 chunks)", pg, pc, N * DIGITNET_CLASSES, 1e-5, 1e-4);
    /* argmax of rounding-close logits: at most one near-tie may flip */
    CHECK_CLOSE(digitnet_accuracy(g, N, x, y), digitnet_accuracy(c, N, x, y), 1.0 / N + 1e-12, 0,
                "digitnet accuracy equal (up to one near-tie)");
    /* train mode: equal rng streams -> the same Philox seed -> the same masks */
    nn_params *p = digitnet_params(c);
    nn_params_zero_grad(p);
    nn_params *q = digitnet_params(g);
    nn_params_zero_grad(q);
    digitnet_sync_to_device(g);
    rng *rc = rng_alloc(9, 1), *rg = rng_alloc(9, 1);
    const double lc = digitnet_loss(c, N, x, y, rc, 1), lg = digitnet_loss(g, N, x, y, rg, 1);
    CHECK_CLOSE(lg, lc, 0, 1e-5, "digitnet train-mode loss (same dropout masks)");
    q = digitnet_params(g);
    const double gm = maxabs(p->grad, p->total);
    cmp("digitnet gradient of the batch (train mode)", q->grad, p->grad, p->total, 1e-4 * gm, 1e-3);
    double sc = 0, sg = 0;
    for (int s = 0; s < 3; s++) {
        sc = digitnet_train_step(c, N, x, y, 1e-3, rc);
        sg = digitnet_train_step(g, N, x, y, 1e-3, rg);
    }
    CHECK_CLOSE(sg, sc, 0, 1e-3, "digitnet loss after 3 Adam steps");
    rng_free(r), rng_free(rc), rng_free(rg);
    free(x);
    digitnet_free(c);
    digitnet_free(g);
}

static void test_mlp1d(void)
{
    const sde s = sde_ve(25.0);
    const mlp1d_config cfg = mlp1d_config_default();
    mlp1d *c = mlp1d_alloc(&cfg, &s, 4), *g = mlp1d_alloc(&cfg, &s, 4);
    mlp1d_set_device(g, DEVICE_CUDA);
    enum { N = 300 };
    rng *r = rng_alloc(6, 0);
    float x[N], t[N], z[N], oc[N], og[N];
    for (int i = 0; i < N; i++) {
        x[i] = (float)(2.0 * rng_gaussian(r));
        t[i] = (float)(1e-3 + rng_uniform(r));
        z[i] = (float)rng_gaussian(r);
    }
    score_model mc = mlp1d_score_model(c, 0), mg = mlp1d_score_model(g, 0);
    score_eval(&mc, N, t, 1, x, oc);
    score_eval(&mg, N, t, 1, x, og);
    cmp("mlp1d score, per-sample t", og, oc, N, 1e-5, 1e-4);
    score_eval(&mc, N, t + 7, 0, x, oc);
    score_eval(&mg, N, t + 7, 0, x, og);
    cmp("mlp1d score, shared t", og, oc, N, 1e-5, 1e-4);
    nn_params *p = mlp1d_params(c);
    nn_params_zero_grad(p);
    nn_params *q = mlp1d_params(g);
    nn_params_zero_grad(q);
    mlp1d_sync_to_device(g);
    float dc[N], dg[N];
    const double lc = mlp1d_loss_at(c, 0, N, x, t, z, dc, 1), lg = mlp1d_loss_at(g, 0, N, x, t, z, dg, 1);
    CHECK_CLOSE(lg, lc, 0, 1e-5, "mlp1d DSM loss at given t, z");
    cmp("mlp1d dL/dx0", dg, dc, N, 1e-4 * maxabs(dc, N), 1e-3);
    q = mlp1d_params(g);
    cmp("mlp1d gradient", q->grad, p->grad, p->total, 1e-4 * maxabs(p->grad, p->total), 1e-3);
    rng *rc = rng_alloc(8, 2), *rg = rng_alloc(8, 2);
    double sc = 0, sg = 0;
    for (int k = 0; k < 3; k++) {
        sc = mlp1d_train_step(c, N, x, 1e-5, 1.0, 1e-3, rc);
        sg = mlp1d_train_step(g, N, x, 1e-5, 1.0, 1e-3, rg);
    }
    CHECK_CLOSE(sg, sc, 0, 1e-3, "mlp1d loss after 3 Adam + EMA steps (same draws)");
    rng_free(r), rng_free(rc), rng_free(rg);
    mlp1d_free(c);
    mlp1d_free(g);
}
#endif

int main(void)
{
    char why[256] = "";
    if (device_cuda_count(why, sizeof why) == 0) {
        test_cuda_unavailable("test_cuda_nets", why);
        return test_finish();
    }
#ifdef SF_HAVE_CUDA
    test_digitnet();
    test_mlp1d();
#endif
    return test_finish();
}
