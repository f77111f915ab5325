/* test_cuda_scorenet: the ONE ScoreNet (common/models/scorenet.c; paper §5.1, App. G) on the cuda backend
 * table (scorenet_set_device) against the same network on the cpu table, with the same random weights
 * (DESIGN.md §5: "every CUDA kernel is checked against its CPU reference"). Weights: scorenet_alloc's torch-style initialisation, then the GroupNorm
 * affine parameters and tconv1.bias perturbed (so those gradients are not at the trivial gamma = 1, beta = 0
 * point); both the OU SDE (a = 1, s = sqrt 2, alpha(t) != 1: exercises the x_t and dL/dx0 scalings) and the
 * paper's VE(25). Batch 8, t spread over [1e-3 T, T], x0 ~ U[0, 1), z, e ~ N(0, I).
 * Metric "rel-to-max" of an array: max_i |gpu_i - cpu_i| / max_i |cpu_i| (both 0: 0). Checks:
 *   forward (per-sample t, shared t with t_stride 0, chunked: max_batch 3 for n = 8)        rel-to-max 1e-4
 *   DSM loss at given (t, z) (scorenet_loss_at), unchunked and chunked                     rel 1e-5
 *   every parameter gradient tensor (37 tensors), unchunked and chunked                    rel-to-max 1e-4
 *     except the dead tensors dense7.dense.{weight,bias}: tgnorm2 has one channel per group, so their exact
 *     gradient is 0 and both models return rounding noise: checked <= 1e-3 of the largest live dense gradient
 *   dL/dx0                                                                                  rel-to-max 1e-4
 *   vjp: score and input gradient J^T e                                                     rel-to-max 1e-4
 *   3 training steps (lr 1e-4, same rng seed: the same t / z draws), unchunked and chunked:
 *     each step's loss                                                                      rel 1e-5
 *     Adam moments m and v after 3 steps, per tensor (dead tensors as above)                rel-to-max 1e-3
 *     params and EMA after 3 steps: element i agrees if |gpu - cpu| <= 1e-6 |cpu| + 0.1 lr; at most 1% of the
 *       live elements may disagree (Adam's first steps are ~ lr sign(g) and depend on ratios of gradients: an
 *       element whose gradient is within ~10x fp32 noise of 0 may flip, costing up to ~2 lr; the dead tensors
 *       always do) and no element, dead ones included, by more than 10 lr; the plain rel-to-max is printed
 *     forward with the trained params and with the EMA                                      rel-to-max 1e-4
 *   scorenet_sync_to_host: a second download gives the same bits (the host record is the device's state).
 * Without a GPU (or in a CPU-only build) prints "SKIP ..." and "RESULT passed=0 failed=0", exit 0. */
#include "device.h"
#include "test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SF_HAVE_CUDA
#include "mem.h"
#include "nn_cuda.h"
#include "params.h"
#include "rng.h"
#include "scorenet.h"
#include "sde.h"

#define NB 8
#define D SCORENET_DIM
#define LR 1e-4

static double relmax(const float *got, const float *want, size_t n)
{
    double md = 0.0, mw = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= md)) md = d;   /* NaN propagates */
        if (fabs((double)want[i]) > mw) mw = fabs((double)want[i]);
    }
    if (mw == 0.0) return md == 0.0 ? 0.0 : INFINITY;
    return md / mw;
}

static void cmp_relmax(const char *name, const float *got, const float *want, size_t n, double tol)
{
    double r = relmax(got, want, n);
    char d[256];
    snprintf(d, sizeof d, "rel-to-max %.3g > %.3g", r, tol);
    test_report(r <= tol, name, d);
    if (r <= tol) fprintf(stderr, "  %s: rel-to-max %.3g\n", name, r);
}

static void cmp_rel(const char *name, double got, double want, double tol)
{
    CHECK_CLOSE(got, want, 0.0, tol, name);
}

/* Dead tensors: the stage-6 GroupNorm (tgnorm2) has one channel per group, so the per-channel constant
 * dense7(e) added before it is removed exactly and its gradient is exactly 0: both models return rounding noise
 * there (bench_scorenet --compare lists it as a "dead tensor" too). */
static int is_dead(const char *name) { return strncmp(name, "dense7.", 7) == 0; }

/* Adam-robust comparison of a trained flat buffer (see the file comment); dead tensors only bounded */
static void cmp_trained(const char *name, const float *got, const float *want, const nn_params *p)
{
    size_t bad = 0, cnt = 0;
    double worst = 0.0;
    for (size_t k = 0; k < p->n; k++) {
        const nn_params_tensor *t = &p->t[k];
        const int dead = is_dead(t->name);
        for (size_t i = 0; i < t->numel; i++) {
            double g = got[t->offset + i], w = want[t->offset + i], d = fabs(g - w);
            if (!(d <= worst)) worst = d;
            if (dead) continue;
            cnt++;
            if (!(d <= 1e-6 * fabs(w) + 0.1 * LR)) bad++;
        }
    }
    char d[256];
    snprintf(d, sizeof d, "%zu of %zu live elements disagree (allowed %zu), worst |diff| %.3g (allowed %.3g)", bad,
             cnt, cnt / 100, worst, 10 * LR);
    int ok = bad <= cnt / 100 && worst <= 10 * LR;
    test_report(ok, name, d);
    fprintf(stderr, "  %s: %s; whole-buffer rel-to-max %.3g\n", name, d, relmax(got, want, p->total));
}

/* per-tensor comparison of a gradient-like buffer (want: the CPU's) at rel-to-max tol; dead tensors: both
 * models' values must be <= 1e-3 of the largest live dense-layer value (they are rounding noise) */
static void cmp_grads(const char *tag, const char *what, const float *got, const float *want, const nn_params *p,
                      double tol)
{
    char name[160];
    double scale = 0.0;
    for (size_t k = 0; k < p->n; k++)
        if (strncmp(p->t[k].name, "dense", 5) == 0 && !is_dead(p->t[k].name))
            for (size_t i = 0; i < p->t[k].numel; i++)
                if (fabs(want[p->t[k].offset + i]) > scale) scale = fabs(want[p->t[k].offset + i]);
    for (size_t k = 0; k < p->n; k++) {
        const nn_params_tensor *t = &p->t[k];
        snprintf(name, sizeof name, "%s %s %s", tag, what, t->name);
        if (is_dead(t->name)) {
            double mg = 0.0, mw = 0.0;
            for (size_t i = 0; i < t->numel; i++) {
                if (!(fabs(got[t->offset + i]) <= mg)) mg = fabs(got[t->offset + i]);
                if (fabs(want[t->offset + i]) > mw) mw = fabs(want[t->offset + i]);
            }
            char d[256];
            snprintf(d, sizeof d, "dead tensor: max|gpu| %.3g, max|cpu| %.3g, allowed %.3g", mg, mw, 1e-3 * scale);
            test_report(mg <= 1e-3 * scale && mw <= 1e-3 * scale, name, d);
            continue;
        }
        cmp_relmax(name, got + t->offset, want + t->offset, t->numel, tol);
    }
}

/* a copy of cpu (weights, EMA; zero gradient and moments) with workspace for max_batch, moved to the GPU */
static scorenet *gpu_copy(const sde *s, scorenet *cpu, size_t max_batch)
{
    scorenet *g = scorenet_alloc(s, max_batch, 1);
    nn_params *p = scorenet_params(cpu), *q = scorenet_params(g);
    memcpy(q->data, p->data, p->total * sizeof(float));
    memcpy(q->ema, p->ema, p->total * sizeof(float));
    scorenet_set_device(g, DEVICE_CUDA);
    return g;
}

/* the device model's buffer (which: 0 data, 1 grad, 2 m, 3 v, 4 ema) copied into dst[total] */
static void buffer_to_host(scorenet *g, int which, float *dst)
{
    scorenet_sync_to_host(g);
    nn_params *q = scorenet_params(g);
    const float *b[5] = {q->data, q->grad, q->m, q->v, q->ema};
    memcpy(dst, b[which], q->total * sizeof(float));
}

static void run_case(const sde *s, const char *tag, rng *R)
{
    char name[160];
    scorenet *cpu = scorenet_alloc(s, NB, 1234);
    nn_params *p = scorenet_params(cpu);
    for (size_t k = 0; k < p->n; k++) {
        const nn_params_tensor *t = &p->t[k];
        float *w = p->data + t->offset;
        int gn = strstr(t->name, "gnorm") != NULL, isw = strstr(t->name, ".weight") != NULL;
        if (gn && isw)
            for (size_t i = 0; i < t->numel; i++) w[i] = (float)(1.0 + 0.4 * (rng_uniform(R) - 0.5));
        else if (gn || strcmp(t->name, "tconv1.bias") == 0)
            for (size_t i = 0; i < t->numel; i++) w[i] = (float)(0.2 * (rng_uniform(R) - 0.5));
    }
    memcpy(p->ema, p->data, p->total * sizeof(float));
    nn_params_zero_grad(p);
    scorenet *gpu = gpu_copy(s, cpu, NB);
    scorenet *gpu3 = gpu_copy(s, cpu, 3);

    /* inputs */
    float *x0 = mem_new(float, NB * D), *z = mem_new(float, NB * D), *e = mem_new(float, NB * D), *x = mem_new(float, NB * D), t[NB];
    for (size_t i = 0; i < NB * D; i++) x0[i] = (float)rng_uniform(R);
    rng_gaussian_fill(R, z, NB * D);
    rng_gaussian_fill(R, e, NB * D);
    for (int i = 0; i < NB; i++) {
        t[i] = (float)(s->T * (1e-3 + (1.0 - 1e-3) * i / (NB - 1.0)));
        float a = (float)sde_alpha(s, t[i]), sd = (float)sde_std(s, t[i]);
        for (int d = 0; d < D; d++) x[i * D + d] = a * x0[i * D + d] + sd * z[i * D + d];
    }
    float *oc = mem_new(float, NB * D), *oc2 = mem_new(float, NB * D), *og = mem_new(float, NB * D);
    float *og2 = mem_new(float, NB * D);

    /* forward: per-sample t, chunked, shared t */
    scorenet_forward(cpu, 0, NB, t, 1, x, oc);
    scorenet_forward(gpu, 0, NB, t, 1, x, og);
    snprintf(name, sizeof name, "%s forward", tag);
    cmp_relmax(name, og, oc, NB * D, 1e-4);
    scorenet_forward(gpu3, 0, NB, t, 1, x, og);
    snprintf(name, sizeof name, "%s forward chunked (max_batch 3)", tag);
    cmp_relmax(name, og, oc, NB * D, 1e-4);
    scorenet_forward(cpu, 0, NB, t + 3, 0, x, oc);
    scorenet_forward(gpu, 0, NB, t + 3, 0, x, og);
    snprintf(name, sizeof name, "%s forward shared t", tag);
    cmp_relmax(name, og, oc, NB * D, 1e-4);

    /* DSM loss, parameter gradients, dL/dx0 */
    float *gg = mem_new(float, p->total);
    nn_params_zero_grad(p);
    double lc = scorenet_loss_at(cpu, 0, NB, x0, t, z, oc, 1);
    scorenet_zero_grad(gpu);
    double lg = scorenet_loss_at(gpu, 0, NB, x0, t, z, og, 1);
    snprintf(name, sizeof name, "%s dsm loss", tag);
    cmp_rel(name, lg, lc, 1e-5);
    buffer_to_host(gpu, 1, gg);
    cmp_grads(tag, "grad", gg, p->grad, p, 1e-4);
    snprintf(name, sizeof name, "%s dL/dx0", tag);
    cmp_relmax(name, og, oc, NB * D, 1e-4);
    /* chunked: gradients accumulated over chunks of 3, 3, 2 with the chunk weights */
    scorenet_zero_grad(gpu3);
    lg = scorenet_loss_at(gpu3, 0, NB, x0, t, z, og, 1);
    snprintf(name, sizeof name, "%s dsm loss chunked", tag);
    cmp_rel(name, lg, lc, 1e-5);
    buffer_to_host(gpu3, 1, gg);
    snprintf(name, sizeof name, "%s chunked", tag);
    cmp_grads(name, "grad", gg, p->grad, p, 1e-4);
    snprintf(name, sizeof name, "%s dL/dx0 chunked", tag);
    cmp_relmax(name, og, oc, NB * D, 1e-4);
    /* loss without gradients leaves the gradient buffer alone */
    scorenet_zero_grad(gpu);
    lg = scorenet_loss_at(gpu, 0, NB, x0, t, z, NULL, 0);
    snprintf(name, sizeof name, "%s dsm loss (no grads)", tag);
    cmp_rel(name, lg, lc, 1e-5);
    buffer_to_host(gpu, 1, gg);
    int allzero = 1;
    for (size_t i = 0; i < p->total; i++) allzero &= gg[i] == 0.0f;
    snprintf(name, sizeof name, "%s loss_at(accumulate 0) leaves grad zero", tag);
    CHECK(allzero, name);
    nn_params_zero_grad(p);

    /* vjp: score and J^T e */
    scorenet_vjp(cpu, 0, NB, t, 1, x, e, oc2, oc);
    scorenet_vjp(gpu, 0, NB, t, 1, x, e, og2, og);
    snprintf(name, sizeof name, "%s vjp score", tag);
    cmp_relmax(name, og2, oc2, NB * D, 1e-4);
    snprintf(name, sizeof name, "%s vjp input gradient", tag);
    cmp_relmax(name, og, oc, NB * D, 1e-4);
    scorenet_vjp(gpu3, 0, NB, t, 1, x, e, NULL, og);
    snprintf(name, sizeof name, "%s vjp input gradient chunked", tag);
    cmp_relmax(name, og, oc, NB * D, 1e-4);

    /* 3 training steps, same draws */
    rng *r1 = rng_alloc(77, 3), *r2 = rng_alloc(77, 3), *r3 = rng_alloc(77, 3);
    const double tlo = 1e-3 * s->T, thi = s->T;
    for (int st = 0; st < 3; st++) {
        double l1 = scorenet_train_step(cpu, NB, x0, tlo, thi, LR, r1);
        double l2 = scorenet_train_step(gpu, NB, x0, tlo, thi, LR, r2);
        double l3 = scorenet_train_step(gpu3, NB, x0, tlo, thi, LR, r3);
        snprintf(name, sizeof name, "%s train step %d loss", tag, st + 1);
        cmp_rel(name, l2, l1, 1e-5);
        snprintf(name, sizeof name, "%s train step %d loss chunked", tag, st + 1);
        cmp_rel(name, l3, l1, 1e-5);
    }
    long as = 0, eu = 0;
    scorenet_get_counters(gpu, &as, &eu);
    snprintf(name, sizeof name, "%s counters after 3 steps", tag);
    CHECK(as == 3 && eu == 3, name);
    scorenet *models[2] = {gpu, gpu3};
    const char *mtag[2] = {"", " chunked"};
    for (int mi = 0; mi < 2; mi++) {
        buffer_to_host(models[mi], 0, gg);
        snprintf(name, sizeof name, "%s params after 3 steps%s", tag, mtag[mi]);
        cmp_trained(name, gg, p->data, p);
        buffer_to_host(models[mi], 4, gg);
        snprintf(name, sizeof name, "%s EMA after 3 steps%s", tag, mtag[mi]);
        cmp_trained(name, gg, p->ema, p);
        buffer_to_host(models[mi], 2, gg);
        snprintf(name, sizeof name, "%s%s after 3 steps:", tag, mtag[mi]);
        cmp_grads(name, "adam m", gg, p->m, p, 1e-3);
        buffer_to_host(models[mi], 3, gg);
        cmp_grads(name, "adam v", gg, p->v, p, 1e-3);
    }
    for (int ue = 0; ue < 2; ue++) {
        scorenet_forward(cpu, ue, NB, t, 1, x, oc);
        scorenet_forward(gpu, ue, NB, t, 1, x, og);
            snprintf(name, sizeof name, "%s forward after training (%s)", tag, ue ? "EMA" : "params");
        cmp_relmax(name, og, oc, NB * D, 1e-4);
        }

    /* sync_to_host: the host record is the device state (a second download changes nothing) */
    float *gg2 = mem_new(float, p->total);
    buffer_to_host(gpu, 0, gg);
    buffer_to_host(gpu, 0, gg2);
    int same = memcmp(gg, gg2, p->total * sizeof(float)) == 0;
    snprintf(name, sizeof name, "%s sync_to_host is stable", tag);
    CHECK(same, name);
    free(gg2);

    rng_free(r1), rng_free(r2), rng_free(r3);
    free(gg), free(x0), free(z), free(e), free(x), free(oc), free(oc2), free(og), free(og2);
    scorenet_free(gpu);
    scorenet_free(gpu3);
    scorenet_free(cpu);
}
#endif /* SF_HAVE_CUDA */

int main(void)
{
    char why[256] = "";
    if (device_cuda_count(why, sizeof why) == 0) {
        test_cuda_unavailable("test_cuda_scorenet", why);
        return test_finish();
    }
#ifdef SF_HAVE_CUDA
    char desc[300];
    device_describe(DEVICE_CUDA, desc, sizeof desc);
    fprintf(stderr, "test_cuda_scorenet: %s\n", desc);
    rng *R = rng_alloc(20261123, 5);
    nn_cuda_init();
    sde ou = sde_ou(1.0, sqrt(2.0), 1.0), ve = sde_ve(25.0);
    run_case(&ou, "OU", R);
    run_case(&ve, "VE", R);
    nn_cuda_sync();
    nn_cuda_shutdown();
    rng_free(R);
#endif
    return test_finish();
}
