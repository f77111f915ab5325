/* test_scorenet: the paper's image ScoreNet on the CPU (common/nn/scorenet.h; paper §5.1, App. G; REFERENCE.md).
 * Checks: exactly 1,115,297 trainable parameters under the PyTorch state_dict names and shapes; torch-style
 * initialisation bounds; the DSM-loss parameter gradient of EVERY tensor against central finite differences
 * (largest-gradient entry + random entries + a random direction over the whole tensor; batch 2, loss accumulated
 * in double); the input gradient (VJP grad_x <s, e>) and dL/dx0 against finite differences; VJP leaves the
 * parameter gradients alone; t_stride 0 == t_stride 1 with equal times; chunking (max_batch smaller than the
 * batch) gives the same scores and gradients; safetensors round trip bitwise (params and EMA); rejection of a
 * wrong-shape tensor, a missing tensor, a foreign format and a mismatched SDE with a one-line message; a
 * "module."-prefixed state_dict without EMA loads; training steps through the train.h vtable stay finite;
 * results bitwise independent of the thread count (1 vs 2). dense7 (before GroupNorm(32, 32): one channel per
 * group) must have a rounding-level gradient, its exact value being 0.
 * Run with OMP_NUM_THREADS=1 on shared machines. */
#include "log.h"
#include "mem.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "gemm_bf16.h"
#include "scorenet.h"
#include "sde.h"
#include "test.h"
#include "train.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define D SCORENET_DIM

static void fill_gauss(rng *r, float *x, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * rng_gaussian(r));
}

/* ---------------------------------------------------------------- layout and init */

static void check_shape(nn_params *p, const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d,
                        int trainable)
{
    char label[160];
    snprintf(label, sizeof label, "layout %s", name);
    size_t i = nn_params_find(p, name);
    int64_t want[4] = {a, b, c, d};
    int ok = i != (size_t)-1 && p->t[i].ndim == ndim && p->t[i].trainable == trainable;
    for (int k = 0; ok && k < ndim; k++) ok = p->t[i].shape[k] == want[k];
    test_report(ok, label, "missing or wrong shape / trainable flag");
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

static void test_layout(scorenet *m)
{
    nn_params *p = scorenet_params(m);
    char d[96];
    snprintf(d, sizeof d, "%zu", scorenet_num_params(m));
    test_report(scorenet_num_params(m) == 1115297u, "1,115,297 trainable parameters", d);
    test_report(p->n == 40, "40 tensors in the state_dict (incl. embed.0.W)", "count");
    check_shape(p, "embed.0.W", 1, 128, 0, 0, 0, 0);
    check_shape(p, "embed.1.weight", 2, 256, 256, 0, 0, 1);
    check_shape(p, "embed.1.bias", 1, 256, 0, 0, 0, 1);
    check_shape(p, "conv1.weight", 4, 32, 1, 3, 3, 1);
    check_shape(p, "dense1.dense.weight", 2, 32, 256, 0, 0, 1);
    check_shape(p, "dense1.dense.bias", 1, 32, 0, 0, 0, 1);
    check_shape(p, "gnorm1.weight", 1, 32, 0, 0, 0, 1);
    check_shape(p, "conv4.weight", 4, 256, 128, 3, 3, 1);
    check_shape(p, "gnorm4.bias", 1, 256, 0, 0, 0, 1);
    check_shape(p, "tconv4.weight", 4, 256, 128, 3, 3, 1);
    check_shape(p, "dense5.dense.weight", 2, 128, 256, 0, 0, 1);
    check_shape(p, "tgnorm4.weight", 1, 128, 0, 0, 0, 1);
    check_shape(p, "tconv3.weight", 4, 256, 64, 3, 3, 1);
    check_shape(p, "tconv2.weight", 4, 128, 32, 3, 3, 1);
    check_shape(p, "tgnorm2.bias", 1, 32, 0, 0, 0, 1);
    check_shape(p, "tconv1.weight", 4, 64, 1, 3, 3, 1);
    check_shape(p, "tconv1.bias", 1, 1, 0, 0, 0, 1);
    /* init bounds: 1/sqrt(fan_in), fan_in = size(1) * 9 for (transposed) convolutions */
    struct { const char *name; double bound; } b[] = {
        {"conv1.weight", 1.0 / 3.0},          {"conv2.weight", 1.0 / sqrt(32 * 9.0)},
        {"tconv4.weight", 1.0 / sqrt(128 * 9.0)}, {"tconv1.weight", 1.0 / 3.0},
        {"tconv1.bias", 1.0 / 3.0},           {"embed.1.weight", 1.0 / 16.0},
        {"dense4.dense.bias", 1.0 / 16.0},
    };
    for (size_t k = 0; k < sizeof b / sizeof b[0]; k++) {
        const nn_params_tensor *t = &p->t[nn_params_find(p, b[k].name)];
        double mx = max_abs(p->data + t->offset, t->numel);
        snprintf(d, sizeof d, "max |w| %.4g, bound %.4g", mx, b[k].bound);
        char label[128];
        snprintf(label, sizeof label, "init %s within and near torch's bound", b[k].name);
        test_report(mx <= b[k].bound && (t->numel < 50 || mx > 0.9 * b[k].bound), label, d);
    }
    const nn_params_tensor *g = &p->t[nn_params_find(p, "tgnorm3.weight")];
    const nn_params_tensor *gb = &p->t[nn_params_find(p, "tgnorm3.bias")];
    int ok = 1;
    for (size_t i = 0; i < g->numel; i++) ok &= p->data[g->offset + i] == 1.0f && p->data[gb->offset + i] == 0.0f;
    test_report(ok, "init GroupNorm weight 1, bias 0", "values");
    const nn_params_tensor *fw = &p->t[nn_params_find(p, "embed.0.W")];
    double s2 = 0;
    for (size_t i = 0; i < fw->numel; i++) s2 += (double)p->data[fw->offset + i] * p->data[fw->offset + i];
    snprintf(d, sizeof d, "rms %.3g", sqrt(s2 / 128));
    test_report(sqrt(s2 / 128) > 22 && sqrt(s2 / 128) < 38, "init embed.0.W ~ 30 N(0,1)", d);
    test_report(memcmp(p->data, p->ema, p->total * sizeof(float)) == 0, "EMA starts as a copy", "differs");
}

/* ---------------------------------------------------------------- finite differences */

typedef struct {
    scorenet *m;
    size_t n;
    const float *x0, *t, *z;
} fd_ctx;

static double loss_of(const fd_ctx *c) { return scorenet_loss_at(c->m, 0, c->n, c->x0, c->t, c->z, NULL, 0); }

static void test_param_grads(scorenet *m, rng *r)
{
    const size_t n = 2;
    float *x0 = mem_new(float, n * D), *z = mem_new(float, n * D), t[2] = {0.07f, 0.55f};
    fill_gauss(r, x0, n * D, 1.0);
    fill_gauss(r, z, n * D, 1.0);
    fd_ctx c = {m, n, x0, t, z};
    nn_params *p = scorenet_params(m);
    nn_params_zero_grad(p);
    double L0 = scorenet_loss_at(m, 0, n, x0, t, z, NULL, 1);
    double L0b = loss_of(&c);
    char d[256];
    snprintf(d, sizeof d, "%.17g vs %.17g", L0, L0b);
    test_report(isfinite(L0) && L0 == L0b, "DSM loss finite and deterministic", d);
    float *g = mem_new(float, p->total);
    memcpy(g, p->grad, p->total * sizeof(float));
    int all_ok = 1;
    double worst = 0;
    char worst_name[128] = "";
    float *dir = mem_new(float, 300000);
    for (size_t ti = 0; ti < p->n; ti++) {
        const nn_params_tensor *T = &p->t[ti];
        if (!T->trainable) continue;
        float *w = p->data + T->offset;
        const float *gt = g + T->offset;
        double gmax = max_abs(gt, T->numel), wmax = max_abs(w, T->numel);
        if (!strncmp(T->name, "dense7.", 7)) {
            /* dense7 adds a per-channel constant just before tgnorm2 = GroupNorm(32 groups, 32 channels): one
             * channel per group, so the normalisation removes it and the exact gradient is 0 (an architectural
             * quirk of the paper's ScoreNet). The float gradient must be rounding-level. */
            char label[160];
            snprintf(label, sizeof label, "dL/d %s == 0 up to rounding (GroupNorm with 1 channel per group)",
                     T->name);
            snprintf(d, sizeof d, "max |g| %.3g vs global %.3g", gmax, max_abs(g, p->total));
            test_report(gmax <= 1e-5 * max_abs(g, p->total), label, d);
            continue;
        }
        size_t imax = 0;
        for (size_t i = 0; i < T->numel; i++)
            if (fabs(gt[i]) == gmax) { imax = i; break; }
        size_t idx[3] = {imax, rng_index(r, T->numel), rng_index(r, T->numel)};
        int ok = 1;
        double worst_t = 0;
        for (int k = 0; k < 3; k++) {
            /* 4-point central difference (truncation O(h^4)) with a largish step: the float forward's rounding
             * noise on a loss of ~1e3 is what limits the accuracy, and it shrinks as 1/h */
            const size_t i = idx[k];
            const float keep = w[i];
            const double h = 5e-2 * fmax(wmax, 0.05);
            double f[4];
            const double off[4] = {-2, -1, 1, 2};
            for (int q = 0; q < 4; q++) {
                w[i] = (float)(keep + off[q] * h);
                f[q] = loss_of(&c);
            }
            w[i] = keep;
            double fd = (8.0 * (f[2] - f[1]) - (f[3] - f[0])) / (12.0 * h);
            double err = fabs(fd - gt[i]), tol = 2e-3 * gmax + 1e-2 * fabs(gt[i]);
            if (!(err <= tol)) {
                ok = 0;
                snprintf(d, sizeof d, "%s[%zu]: fd %.6g analytic %.6g (tensor max |g| %.3g)", T->name, i, fd, gt[i],
                         gmax);
            }
            worst_t = fmax(worst_t, err);
            if (gmax > 0 && err / gmax > worst) {
                worst = err / gmax;
                snprintf(worst_name, sizeof worst_name, "%s[%zu]", T->name, i);
            }
        }
        /* directional derivative over the whole tensor (4-point stencil) */
        const double eps = 2e-2 * fmax(wmax, 0.05);
        double gd = 0, nd = 0;
        for (size_t i = 0; i < T->numel; i++) {
            dir[i] = (float)rng_gaussian(r);
            gd += (double)dir[i] * gt[i];
            nd += (double)dir[i] * dir[i];
        }
        float *keepw = mem_new(float, T->numel);
        memcpy(keepw, w, T->numel * sizeof(float));
        double f[4];
        const double off[4] = {-2, -1, 1, 2};
        for (int q = 0; q < 4; q++) {
            for (size_t i = 0; i < T->numel; i++) w[i] = (float)(keepw[i] + off[q] * eps * dir[i]);
            f[q] = loss_of(&c);
        }
        memcpy(w, keepw, T->numel * sizeof(float));
        free(keepw);
        double fd = (8.0 * (f[2] - f[1]) - (f[3] - f[0])) / (12.0 * eps);
        double gnorm = 0;
        for (size_t i = 0; i < T->numel; i++) gnorm += (double)gt[i] * gt[i];
        double tol = 1e-3 * sqrt(gnorm * nd) + 1e-2 * fabs(gd);
        if (getenv("SCORENET_FD_VERBOSE"))
            printf("# %-22s max|g| %.3e  entries worst %.2e  dir fd %.6e an %.6e (rel %.2e)\n", T->name, gmax,
                   worst_t / (gmax > 0 ? gmax : 1), fd, gd, fabs(fd - gd) / sqrt(gnorm * nd));
        if (!(fabs(fd - gd) <= tol)) {
            ok = 0;
            snprintf(d, sizeof d, "%s direction: fd %.6g analytic %.6g", T->name, fd, gd);
        }
        char label[160];
        snprintf(label, sizeof label, "dL/d %s vs finite differences", T->name);
        test_report(ok, label, d);
        all_ok &= ok;
    }
    printf("# worst entrywise |fd - g| / max|g| over tensors: %.3g at %s\n", worst, worst_name);
    (void)all_ok;
    free(dir);
    free(g);
    free(x0);
    free(z);
}

static double proj(scorenet *m, size_t n, const float *t, const float *x, const float *e, float *s)
{
    scorenet_forward(m, 0, n, t, 1, x, s);
    double a = 0;
    for (size_t i = 0; i < n * D; i++) a += (double)s[i] * e[i];
    return a;
}

static void test_input_grad(scorenet *m, rng *r)
{
    const size_t n = 2;
    float t[2] = {0.12f, 0.8f};
    float *x = mem_new(float, n * D), *e = mem_new(float, n * D), *s = mem_new(float, n * D);
    float *gx = mem_new(float, n * D), *s2 = mem_new(float, n * D);
    fill_gauss(r, x, n * D, 2.0);
    fill_gauss(r, e, n * D, 1.0);
    nn_params *p = scorenet_params(m);
    nn_params_zero_grad(p);
    scorenet_vjp(m, 0, n, t, 1, x, e, s, gx);
    test_report(max_abs(p->grad, p->total) == 0.0, "VJP leaves parameter gradients untouched", "grad changed");
    scorenet_forward(m, 0, n, t, 1, x, s2);
    test_report(memcmp(s, s2, n * D * sizeof(float)) == 0, "VJP score == forward score", "differs");
    double gmax = max_abs(gx, n * D);
    size_t imax = 0;
    for (size_t i = 0; i < n * D; i++)
        if (fabs(gx[i]) == gmax) { imax = i; break; }
    size_t idx[6] = {imax, rng_index(r, n * D), rng_index(r, n * D), D + rng_index(r, D), 0, n * D - 1};
    int ok = 1;
    char d[200] = "";
    double worst = 0;
    for (int k = 0; k < 6; k++) {
        size_t i = idx[k];
        float keep = x[i], h = 1e-2f;
        x[i] = keep + h;
        double lp = proj(m, n, t, x, e, s2);
        x[i] = keep - h;
        double lm = proj(m, n, t, x, e, s2);
        x[i] = keep;
        double fd = (lp - lm) / (2.0 * h), err = fabs(fd - gx[i]);
        worst = fmax(worst, err / gmax);
        if (!(err <= 3e-3 * gmax + 2e-2 * fabs(gx[i]))) {
            ok = 0;
            snprintf(d, sizeof d, "x[%zu]: fd %.6g analytic %.6g (max %.3g)", i, fd, gx[i], gmax);
        }
    }
    printf("# input gradient: worst |fd - g| / max|g| = %.3g\n", worst);
    test_report(ok, "input gradient grad_x <s, e> vs finite differences", d);

    /* dL/dx0 of the DSM loss */
    float *z = mem_new(float, n * D), *dx0 = mem_new(float, n * D);
    fill_gauss(r, z, n * D, 1.0);
    scorenet_loss_at(m, 0, n, x, t, z, dx0, 0);
    double dmax = max_abs(dx0, n * D);
    ok = 1;
    for (int k = 0; k < 4; k++) {
        size_t i = k == 0 ? 5 * 28 + 7 : rng_index(r, n * D);
        float keep = x[i], h = 1e-2f;
        x[i] = keep + h;
        double lp = scorenet_loss_at(m, 0, n, x, t, z, NULL, 0);
        x[i] = keep - h;
        double lm = scorenet_loss_at(m, 0, n, x, t, z, NULL, 0);
        x[i] = keep;
        double fd = (lp - lm) / (2.0 * h);
        if (!(fabs(fd - dx0[i]) <= 5e-3 * dmax + 2e-2 * fabs(dx0[i]))) {
            ok = 0;
            snprintf(d, sizeof d, "x0[%zu]: fd %.6g analytic %.6g (max %.3g)", i, fd, dx0[i], dmax);
        }
    }
    test_report(ok, "DSM dL/dx0 vs finite differences", d);
    free(x); free(e); free(s); free(gx); free(s2); free(z); free(dx0);
}

/* ---------------------------------------------------------------- strides, chunking */

static void test_stride_chunk(scorenet *m, rng *r)
{
    const size_t n = 5;
    float *x = mem_new(float, n * D), *a = mem_new(float, n * D), *b = mem_new(float, n * D);
    fill_gauss(r, x, n * D, 3.0);
    float t0 = 0.4f, tt[5] = {0.4f, 0.4f, 0.4f, 0.4f, 0.4f};
    scorenet_forward(m, 1, n, &t0, 0, x, a);
    scorenet_forward(m, 1, n, tt, 1, x, b);
    test_report(memcmp(a, b, n * D * sizeof(float)) == 0, "t_stride 0 == t_stride 1 (bitwise)", "differs");
    /* thread-count independence (the layers promise it; the model adds no reductions of its own) */
    float *g1 = mem_new(float, n * D), *g2 = mem_new(float, n * D), *e = mem_new(float, n * D);
    fill_gauss(r, e, n * D, 1.0);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    scorenet_vjp(m, 0, n, tt, 1, x, e, a, g1);
    omp_set_num_threads(2);
    scorenet_vjp(m, 0, n, tt, 1, x, e, b, g2);
    omp_set_num_threads(nt);
    test_report(memcmp(a, b, n * D * sizeof(float)) == 0 && memcmp(g1, g2, n * D * sizeof(float)) == 0,
                "score and VJP bitwise equal with 1 and 2 threads", "differs");
    free(g1); free(g2); free(e);
    scorenet_forward(m, 1, n, &t0, 0, x, a);
    score_model sm = scorenet_score_model(m, 1);
    score_eval(&sm, n, &t0, 0, x, b);
    test_report(sm.dim == D && memcmp(a, b, n * D * sizeof(float)) == 0, "score_model == scorenet_forward", "differs");

    /* the same weights in a model with max_batch 2: scores and gradients agree */
    sde s = sde_ve(25.0);
    scorenet *m2 = scorenet_alloc(&s, 2, 99);
    nn_params *p = scorenet_params(m), *p2 = scorenet_params(m2);
    memcpy(p2->data, p->data, p->total * sizeof(float));
    memcpy(p2->ema, p->ema, p->total * sizeof(float));
    float tv[5] = {0.01f, 0.2f, 0.5f, 0.7f, 1.0f};
    scorenet_forward(m, 0, n, tv, 1, x, a);
    scorenet_forward(m2, 0, n, tv, 1, x, b);
    double md = 0, mx = max_abs(a, n * D);
    for (size_t i = 0; i < n * D; i++) md = fmax(md, fabs((double)a[i] - b[i]));
    char d[128];
    snprintf(d, sizeof d, "max diff %.3g (max %.3g)", md, mx);
    test_report(md <= 1e-5 * mx, "chunked forward (max_batch 2, n 5) == unchunked", d);
    float *z = mem_new(float, n * D);
    fill_gauss(r, z, n * D, 1.0);
    nn_params_zero_grad(p);
    nn_params_zero_grad(p2);
    double l1 = scorenet_loss_at(m, 0, n, x, tv, z, NULL, 1), l2 = scorenet_loss_at(m2, 0, n, x, tv, z, NULL, 1);
    double gd = 0, gm = max_abs(p->grad, p->total);
    for (size_t i = 0; i < p->total; i++) gd = fmax(gd, fabs((double)p->grad[i] - p2->grad[i]));
    snprintf(d, sizeof d, "loss %.9g vs %.9g, grad max diff %.3g (max %.3g)", l1, l2, gd, gm);
    test_report(fabs(l1 - l2) <= 1e-5 * fabs(l1) && gd <= 1e-4 * gm, "chunked DSM loss and gradient == unchunked", d);
    scorenet_free(m2);
    free(x); free(a); free(b); free(z);
}

/* The cpu batch slices (scorenet.c SN_SLICES): a batch of 64 runs as 4 slices with per-slice gradient sums.
 * Scores, input gradients and parameter gradients are bitwise the same with 1 and 2 threads; against a model
 * with max_batch 8 (chunks too small to slice) scores and dL/dx0 are bitwise equal (per sample), the loss and
 * the parameter gradient agree up to the order of the sums. */
static void test_slices(rng *r)
{
    const size_t n = 64;
    sde s = sde_ve(25.0);
    scorenet *m = scorenet_alloc(&s, n, 5), *m8 = scorenet_alloc(&s, 8, 6);
    nn_params *p = scorenet_params(m), *p8 = scorenet_params(m8);
    memcpy(p8->data, p->data, p->total * sizeof(float));
    float *x = mem_new(float, n * D), *z = mem_new(float, n * D), *a = mem_new(float, n * D),
          *b = mem_new(float, n * D), *g1 = mem_new(float, n * D), *g2 = mem_new(float, n * D);
    float *grad1 = mem_new(float, p->total);
    float tv[64];
    fill_gauss(r, x, n * D, 2.0);
    fill_gauss(r, z, n * D, 1.0);
    for (size_t i = 0; i < n; i++) tv[i] = (float)(0.01 + 0.99 * rng_uniform(r));
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    nn_params_zero_grad(p);
    double l1 = scorenet_loss_at(m, 0, n, x, tv, z, g1, 1);
    memcpy(grad1, p->grad, p->total * sizeof(float));
    scorenet_forward(m, 0, n, tv, 1, x, a);
    omp_set_num_threads(2);
    nn_params_zero_grad(p);
    double l2 = scorenet_loss_at(m, 0, n, x, tv, z, g2, 1);
    scorenet_forward(m, 0, n, tv, 1, x, b);
    omp_set_num_threads(nt);
    test_report(l1 == l2 && memcmp(grad1, p->grad, p->total * sizeof(float)) == 0 &&
                    memcmp(g1, g2, n * D * sizeof(float)) == 0 && memcmp(a, b, n * D * sizeof(float)) == 0,
                "batch 64 (4 slices): loss, gradients, dL/dx0 and scores bitwise equal with 1 and 2 threads",
                "differs");
    nn_params_zero_grad(p8);
    double l8 = scorenet_loss_at(m8, 0, n, x, tv, z, g1, 1);
    scorenet_forward(m8, 0, n, tv, 1, x, a);
    double gd = 0, gm = max_abs(p->grad, p->total);
    for (size_t i = 0; i < p->total; i++) gd = fmax(gd, fabs((double)p->grad[i] - p8->grad[i]));
    char d[160];
    snprintf(d, sizeof d, "loss %.9g vs %.9g, grad max diff %.3g (max %.3g)", l2, l8, gd, gm);
    test_report(memcmp(a, b, n * D * sizeof(float)) == 0 && memcmp(g1, g2, n * D * sizeof(float)) == 0,
                "batch 64: scores and dL/dx0 sliced == chunks of 8 (bitwise)", "differs");
    test_report(fabs(l2 - l8) <= 1e-6 * fabs(l8) && gd <= 1e-5 * gm, "batch 64: loss and gradient sliced == chunks of 8",
                d);
    scorenet_free(m);
    scorenet_free(m8);
    free(x); free(z); free(a); free(b); free(g1); free(g2); free(grad1);
}

/* ---------------------------------------------------------------- bf16 convolution GEMMs (issue 8 item 7) */

/* scores, dL/dx0, the loss and its parameter gradient with every conv GEMM on bf16-rounded operands, against the
 * fp32 model (same weights, inputs, times and noise); then 20 Adam steps from one start on one data set. The
 * tolerances are about 3x what was measured here with each of the amx / avx512bf16 / generic kernels (scores
 * 4.6e-3, dL/dx0 7.0e-3 .. 7.9e-3, loss 3.5e-4 relative, parameter gradient 1.8e-3, training losses 1.3e-3):
 * bf16 keeps 8 significant bits per operand. */
static void test_bf16(rng *r)
{
    const size_t n = 32;
    sde s = sde_ve(25.0);
    scorenet *m = scorenet_alloc(&s, n, 21);
    nn_params *p = scorenet_params(m);
    float *x = mem_new(float, n * D), *z = mem_new(float, n * D), *sa = mem_new(float, n * D),
          *sb = mem_new(float, n * D), *ga = mem_new(float, n * D), *gb = mem_new(float, n * D);
    float *grad = mem_new(float, p->total), tv[32];
    for (size_t i = 0; i < n * D; i++) x[i] = (float)(2.0 * rng_uniform(r) - 0.4);
    fill_gauss(r, z, n * D, 1.0);
    for (size_t i = 0; i < n; i++) tv[i] = (float)(0.01 + 0.99 * rng_uniform(r));
    scorenet_forward(m, 0, n, tv, 1, x, sa);
    nn_params_zero_grad(p);
    double la = scorenet_loss_at(m, 0, n, x, tv, z, ga, 1);
    memcpy(grad, p->grad, p->total * sizeof(float));
    scorenet_set_gemm_bf16(m, 1);
    CHECK(scorenet_gemm_bf16(m), "bf16: scorenet_set_gemm_bf16(m, 1) takes the cpu-bf16 table");
    scorenet_forward(m, 0, n, tv, 1, x, sb);
    nn_params_zero_grad(p);
    double lb = scorenet_loss_at(m, 0, n, x, tv, z, gb, 1);
    const double es = test_rel_err(sb, sa, n * D), eg = test_rel_err(gb, ga, n * D), ep = test_rel_err(p->grad, grad, p->total);
    char d[200];
    snprintf(d, sizeof d, "scores %.3g, dL/dx0 %.3g, loss %.9g vs %.9g, param grads %.3g (kernel %s)", es, eg, lb, la,
             ep, nn_gemm_bf16_kernel());
    test_report(es > 0 && es <= 1.5e-2, "bf16: scores within 1.5e-2 max|fp32| of the fp32 model", d);
    test_report(eg > 0 && eg <= 2.5e-2, "bf16: dL/dx0 within 2.5e-2 max|fp32|", d);
    test_report(fabs(lb - la) <= 2e-3 * fabs(la), "bf16: DSM loss within 0.2% of fp32", d);
    test_report(ep > 0 && ep <= 6e-3, "bf16: parameter gradient within 6e-3 max|fp32|", d);
    scorenet_set_gemm_bf16(m, 0);
    scorenet_forward(m, 0, n, tv, 1, x, sb);
    CHECK(!scorenet_gemm_bf16(m) && memcmp(sa, sb, n * D * sizeof(float)) == 0,
          "bf16: switched back, scores are the fp32 ones bitwise");
    /* training: 20 Adam steps (lr 1e-3, batch 32, same draws) from the same start, fp32 and bf16 */
    float *w0 = mem_new(float, p->total);
    memcpy(w0, p->data, p->total * sizeof(float));
    double lf[20], lh[20], worst = 0;
    for (int pass = 0; pass < 2; pass++) {
        scorenet_set_gemm_bf16(m, pass);
        scorenet_reset_optimizer(m);
        memcpy(p->data, w0, p->total * sizeof(float));
        memcpy(p->ema, w0, p->total * sizeof(float));
        rng *rr = rng_alloc(77, 0);
        for (int k = 0; k < 20; k++) (pass ? lh : lf)[k] = scorenet_train_step(m, n, x, 1e-5, 1.0, 1e-3, rr);
        rng_free(rr);
    }
    for (int k = 0; k < 20; k++) worst = fmax(worst, fabs(lh[k] - lf[k]) / fabs(lf[k]));
    snprintf(d, sizeof d, "losses fp32 %.4g -> %.4g, bf16 %.4g -> %.4g, worst step rel diff %.3g", lf[0], lf[19],
             lh[0], lh[19], worst);
    test_report(worst <= 5e-3 && lh[19] < 0.5 * lh[0], "bf16: 20 Adam steps track fp32 (each loss within 0.5%) and learn",
                d);
    scorenet_free(m);
    free(x); free(z); free(sa); free(sb); free(ga); free(gb); free(grad); free(w0);
}

/* ---------------------------------------------------------------- checkpoints */

static void test_checkpoints(scorenet *m, rng *r)
{
    char path[64], bad[64], err[512];
    snprintf(path, sizeof path, "/tmp/test_scorenet_%d.safetensors", (int)getpid());
    snprintf(bad, sizeof bad, "/tmp/test_scorenet_bad_%d.safetensors", (int)getpid());
    sde s = sde_ve(25.0);
    nn_params *p = scorenet_params(m);
    /* make EMA differ from params so the round trip checks both */
    for (size_t i = 0; i < p->total; i++) p->ema[i] = p->data[i] * 0.5f;
    int rc = scorenet_save(m, path, err, sizeof err);
    test_report(rc == 0, "save checkpoint", err);
    scorenet *l = scorenet_load(path, &s, 3, err, sizeof err);
    test_report(l != NULL, "load checkpoint", err);
    if (l) {
        nn_params *q = scorenet_params(l);
        test_report(q->total == p->total && memcmp(q->data, p->data, p->total * sizeof(float)) == 0 &&
                        memcmp(q->ema, p->ema, p->total * sizeof(float)) == 0,
                    "round trip bitwise (params and EMA)", "differs");
        float x[2 * D], a[2 * D], b[2 * D], t[2] = {0.3f, 0.9f};
        fill_gauss(r, x, 2 * D, 1.0);
        scorenet_forward(m, 1, 2, t, 1, x, a);
        scorenet_forward(l, 1, 2, t, 1, x, b);
        test_report(memcmp(a, b, sizeof a) == 0, "loaded model gives identical scores", "differs");
        scorenet_free(l);
    }
    /* inference-only loads: one weight set, no trainer state, the same scores as the full model's */
    for (int ue = 0; ue < 2; ue++) {
        scorenet *li = scorenet_load_weights(path, &s, 3, ue, err, sizeof err);
        test_report(li != NULL, ue ? "load EMA weights only" : "load raw weights only", err);
        if (!li) continue;
        const nn_params *q = scorenet_params_const(li);
        float x[2 * D], a[2 * D], b[2 * D], t[2] = {0.3f, 0.9f};
        fill_gauss(r, x, 2 * D, 1.0);
        scorenet_forward(m, ue, 2, t, 1, x, a);
        scorenet_forward(li, 1 - ue, 2, t, 1, x, b);   /* either flag evaluates the loaded set */
        test_report(!nn_params_has_train(q) && memcmp(q->data, ue ? p->ema : p->data, p->total * sizeof(float)) == 0 &&
                        memcmp(a, b, sizeof a) == 0 && !nn_params_has_train(q),
                    ue ? "inference load: EMA weights, no grad/Adam/EMA buffers, same scores"
                       : "inference load: raw weights, no grad/Adam/EMA buffers, same scores",
                    "differs");
        scorenet_free(li);
    }
    memcpy(p->ema, p->data, p->total * sizeof(float));

    /* wrong shape: conv1.weight [32, 1, 3, 4] in an otherwise state_dict-like file */
    safetensors_writer *w = safetensors_writer_alloc();
    float *buf = mem_new(float, p->total + 64);
    int64_t badshape[4] = {32, 1, 3, 4};
    for (size_t i = 0; i < p->n; i++) {
        const nn_params_tensor *T = &p->t[i];
        if (!strcmp(T->name, "conv1.weight")) safetensors_writer_add_f32(w, T->name, 4, badshape, buf);
        else safetensors_writer_add_f32(w, T->name, T->ndim, T->shape, p->data + T->offset);
    }
    safetensors_writer_write(w, bad, err, sizeof err);
    safetensors_writer_free(w);
    err[0] = 0;
    l = scorenet_load(bad, &s, 1, err, sizeof err);
    test_report(!l && strstr(err, "conv1.weight") && !strchr(err, '\n'), "wrong-shape tensor rejected, one line",
                err);
    printf("# message: %s\n", err);
    scorenet_free(l);

    /* missing tensor */
    w = safetensors_writer_alloc();
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->t[i].name, "tgnorm2.bias"))
            safetensors_writer_add_f32(w, p->t[i].name, p->t[i].ndim, p->t[i].shape, p->data + p->t[i].offset);
    safetensors_writer_write(w, bad, err, sizeof err);
    safetensors_writer_free(w);
    l = scorenet_load(bad, &s, 1, err, sizeof err);
    test_report(!l && strstr(err, "tgnorm2.bias") && strstr(err, "missing"), "missing tensor rejected", err);
    scorenet_free(l);

    /* "module."-prefixed state_dict (nn.DataParallel) without EMA or metadata: loads, EMA = params */
    w = safetensors_writer_alloc();
    char (*names)[128] = mem_calloc(p->n, sizeof *names);
    for (size_t i = 0; i < p->n; i++) {
        snprintf(names[i], 128, "module.%s", p->t[i].name);
        safetensors_writer_add_f32(w, names[i], p->t[i].ndim, p->t[i].shape, p->data + p->t[i].offset);
    }
    safetensors_writer_write(w, bad, err, sizeof err);
    safetensors_writer_free(w);
    free(names);
    l = scorenet_load(bad, &s, 1, err, sizeof err);
    test_report(l != NULL, "module.-prefixed state_dict loads", err);
    if (l) {
        nn_params *q = scorenet_params(l);
        test_report(memcmp(q->data, p->data, p->total * sizeof(float)) == 0 &&
                        memcmp(q->ema, p->data, p->total * sizeof(float)) == 0,
                    "module.-prefixed: params match, EMA = params", "differs");
        scorenet_free(l);
    }

    /* foreign format, SDE mismatch, corrupt file */
    w = safetensors_writer_alloc();
    safetensors_writer_metadata(w, "format", "scorefusion-mlp1d");
    safetensors_writer_add_f32(w, "embed.0.W", 1, p->t[0].shape, p->data);
    safetensors_writer_write(w, bad, err, sizeof err);
    safetensors_writer_free(w);
    l = scorenet_load(bad, &s, 1, err, sizeof err);
    test_report(!l && strstr(err, "format"), "other format rejected", err);
    scorenet_free(l);
    sde s2 = sde_ve(10.0);
    l = scorenet_load(path, &s2, 1, err, sizeof err);
    test_report(!l && strstr(err, "SDE"), "SDE mismatch rejected", err);
    scorenet_free(l);
    FILE *f = fopen(bad, "wb");
    fputs("\x10\0\0\0\0\0\0\0{not json", f);
    fclose(f);
    l = scorenet_load(bad, &s, 1, err, sizeof err);
    test_report(!l && !strchr(err, '\n') && err[0], "corrupt file rejected, one line", err);
    scorenet_free(l);
    free(buf);
    unlink(path);
    unlink(bad);
}

/* ---------------------------------------------------------------- training */

static void test_training(void)
{
    sde s = sde_ve(25.0);
    scorenet *m = scorenet_alloc(&s, 4, 5);
    rng *r = rng_alloc(11, 0);
    const size_t n = 6;
    float *x = mem_new(float, n * D);
    for (size_t i = 0; i < n * D; i++) x[i] = (float)(((i % D) / 28 > 10 && (i % D) % 28 > 10) ? 1.5 : -0.4);
    nn_params *p = scorenet_params(m);
    float *w0 = mem_new(float, p->total);
    memcpy(w0, p->data, p->total * sizeof(float));
    double l = 0;
    int finite = 1;
    for (int k = 0; k < 3; k++) {
        l = scorenet_train_step(m, n, x, 1e-5, 1.0, 1e-3, r);
        finite &= isfinite(l);
    }
    double moved = 0, emoved = 0;
    for (size_t i = 0; i < p->total; i++) {
        moved = fmax(moved, fabs((double)p->data[i] - w0[i]));
        emoved = fmax(emoved, fabs((double)p->ema[i] - w0[i]));
    }
    char d[160];
    snprintf(d, sizeof d, "loss %.4g, max |dw| %.3g, max |d ema| %.3g", l, moved, emoved);
    test_report(finite && moved > 1e-4 && moved < 1e-2 && emoved > 0 && emoved < moved,
                "3 Adam steps (n 6 in chunks of 4): finite, params and EMA move", d);
    /* the train.h vtable: two epochs */
    train_model tm = scorenet_train_model(m);
    train_config c = train_config_default();
    c.max_epochs = 2;
    c.batch = 4;
    c.val_batch = 2;
    c.progress = 0;
    train_result res;
    train_status st = train_run(&tm, &c, n, x, 2, x, r, &res);
    snprintf(d, sizeof d, "status %d epochs %d", (int)st, res.epochs_run);
    test_report(tm.dim == D && st == TRAIN_OK && res.epochs_run == 2 && isfinite(res.ema_val_loss[1]),
                "train_run through the vtable (2 epochs)", d);
    train_result_free(&res);
    free(x);
    free(w0);
    rng_free(r);
    scorenet_free(m);
}

int main(int argc, char **argv)
{
    (void)argc;
    log_set_prog(argv[0]);
    log_set_quiet(1);
    sde s = sde_ve(25.0);
    scorenet *m = scorenet_alloc(&s, 4, 1);
    rng *r = rng_alloc(7, 0);
    test_layout(m);
    test_param_grads(m, r);
    test_input_grad(m, r);
    test_stride_chunk(m, r);
    test_slices(r);
    test_bf16(r);
    test_checkpoints(m, r);
    test_training();
    rng_free(r);
    scorenet_free(m);
    return test_finish();
}
