/* bench_cuda_scorenet: GPU throughput of the ScoreNet on the cuda backend table (common/models/scorenet.h; the paper's
 * image score network, §5.1, App. G), the GPU counterpart of bench_scorenet:
 *   train    one DSM training step through scorenet_train_step (the batch uploaded from the host, the times
 *            drawn on the host, the noise by Philox on the device, forward, DSM loss read back, backward, Adam,
 *            EMA) at batch 200 (the paper's) and 1024, images/s;
 *   train-resident  the same step as train_run takes it on a device (train.h resident-data path: data uploaded
 *            once, minibatches gathered there by index, the loss read one step late), batch 200 and 1024, images/s,
 *            with the share of wall time the host spent blocked reading losses (near 100% means the GPU is the
 *            bottleneck, as it should be; low means the host's launches are);
 *   sampler  Euler-Maruyama-like score evaluations at batch 1024: forward calls at a shared time t_k decreasing
 *            from 1 to 1e-3 over 1000 steps on a fixed device batch (the EM state update, one axpy, and the noise
 *            draw are not included); all 1000 calls unless they would take over --max-seconds, in which case the
 *            number run is printed and the 1000-step time is extrapolated linearly (each step is the same work);
 *   vjp      score + input gradient grad_x <s, e> (the NLL / Hutchinson cost unit) at batch 500, evaluations/s.
 * Each measurement: one warm-up call, then repeats until --seconds (default 3) have passed (at least 3 calls);
 * wall clock, and every entry point ends in a host-visible result or a d2h-free queue, so the clock stops after
 * nn_cuda_sync(). Weights: scorenet_alloc's initialisation (seed 1), VE(25) SDE.
 *   bench_cuda_scorenet [--seconds 3] [--max-seconds 60]
 * Without a GPU (or in a CPU-only build) prints one SKIP line and exits 0. */
#include "device.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SF_HAVE_CUDA
#include "log.h"
#include "mem.h"
#include "nn_cuda.h"
#include "rng.h"
#include "scorenet.h"
#include "sde.h"
#include "train.h"

static float *drand(rng *r, size_t n, double lo, double hi)   /* host buffer of U[lo, hi) */
{
    float *h = mem_new(float, n ? n : 1);
    for (size_t i = 0; i < n; i++) h[i] = (float)(lo + (hi - lo) * rng_uniform(r));
    return h;
}

/* the one ScoreNet on the cuda table, workspace for B */
static scorenet *gpu_model(const sde *s, size_t B)
{
    scorenet *g = scorenet_alloc(s, B, 1);
    scorenet_set_device(g, DEVICE_CUDA);
    return g;
}

typedef struct {
    scorenet *g;
    size_t n;
    float *x, *e, *out, *gx;
    float *t;   /* host [n] */
    rng *r;
    double loss;
} bctx;

static void f_train(void *p)
{
    bctx *c = p;
    c->loss = scorenet_train_step(c->g, c->n, c->x, 1e-5, 1.0, 1e-4, c->r);
}
static void f_vjp(void *p)
{
    bctx *c = p;
    scorenet_vjp(c->g, 0, c->n, c->t, 1, c->x, c->e, c->out, c->gx);
}

/* calls/s of fn (one warm-up call, then until `seconds` and >= 3 calls), synchronised */
static double timed_rate(double seconds, void (*fn)(void *), void *ctx, long *calls)
{
    fn(ctx);
    nn_cuda_sync();
    long n = 0;
    double t0 = log_now(), dt;
    do {
        fn(ctx);
        n++;
        nn_cuda_sync();
    } while ((dt = log_now() - t0) < seconds || n < 3);
    *calls = n;
    return (double)n / dt;
}

static void bench_train(const sde *sd, size_t B, double secs, rng *r)
{
    scorenet *g = gpu_model(sd, B);
    bctx c = {g, B, drand(r, B * SCORENET_DIM, 0.0, 1.0), NULL, NULL, NULL, NULL, r, 0.0};
    long calls;
    double rate = timed_rate(secs, f_train, &c, &calls);
    printf("train    batch %5zu  %10.1f images/s  %8.3f ms/step  (%ld steps, last loss %.4g; batch uploaded, loss "
           "waited for)\n",
           B, rate * (double)B, 1e3 / rate, calls, c.loss);
    fflush(stdout);
    free(c.x);
    scorenet_free(g);
}

/* The step train_run takes on a device (train.h resident-data path): the training set uploaded once (8 batches of
 * rows here, cycled), minibatches gathered on the device by index, the loss read one step late (step k + 1 is
 * queued before step k's loss is read), so the host never drains the stream inside the loop. The clock stops after
 * the last loss is read. */
static void bench_train_resident(const sde *sd, size_t B, double secs, rng *r)
{
    scorenet *g = gpu_model(sd, B);
    const size_t nb = 8, ntr = nb * B;
    float *x = drand(r, ntr * SCORENET_DIM, 0.0, 1.0), *xv = drand(r, B * SCORENET_DIM, 0.0, 1.0);
    train_model tm = scorenet_train_model(g);
    LOG_CHECK(tm.train_rows, "bench_cuda_scorenet: the cuda ScoreNet has no resident-data path");
    tm.data_load(tm.ctx, ntr, x, B, xv);
    size_t *idx = mem_new(size_t, ntr);
    for (size_t i = 0; i < ntr; i++) idx[i] = i;
    rng_shuffle(r, idx, ntr);
    tm.data_order(tm.ctx, 0, idx, ntr);
    tm.train_rows(tm.ctx, 0, B, 1e-5, 1.0, 1e-4, r);   /* warm-up */
    double last = tm.train_fetch(tm.ctx), wait = 0.0;
    long n = 0;
    const double t0 = log_now();
    do {
        tm.train_rows(tm.ctx, (size_t)(n % (long)nb) * B, B, 1e-5, 1.0, 1e-4, r);
        if (n > 0) {
            const double w0 = log_now();
            last = tm.train_fetch(tm.ctx);
            wait += log_now() - w0;
        }
        n++;
    } while (log_now() - t0 < secs || n < 3);
    last = tm.train_fetch(tm.ctx);
    const double dt = log_now() - t0, rate = (double)n / dt;
    printf("train-resident batch %5zu  %10.1f images/s  %8.3f ms/step  (%ld steps, last loss %.4g; data on the "
           "device, loss read one step late; host blocked in the loss read %.0f%% of the time)\n",
           B, rate * (double)B, 1e3 / rate, n, last, 100.0 * wait / dt);
    fflush(stdout);
    tm.data_unload(tm.ctx);
    free(idx);
    free(x);
    free(xv);
    scorenet_free(g);
}

int main(int argc, char **argv)
{
    char why[256] = "";
    if (device_cuda_count(why, sizeof why) == 0) {
        printf("SKIP bench_cuda_scorenet: %s\n", why);
        return 0;
    }
    double secs = 3.0, max_secs = 60.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) secs = atof(argv[++i]);
        else if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc) max_secs = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--seconds 3] [--max-seconds 60]\n", argv[0]);
            return 2;
        }
    }
    char desc[300];
    device_describe(DEVICE_CUDA, desc, sizeof desc);
    nn_cuda_init();
    sde s = sde_ve(25.0);
    rng *r = rng_alloc(2026, 11);
    printf("bench_cuda_scorenet: %s; ScoreNet %u params, fp32 (TF32 off); DSM times drawn on the host, noise "
           "on the device (Philox)\n",
           desc, SCORENET_NUM_PARAMS);
    fflush(stdout);

    bench_train(&s, 200, secs, r);
    bench_train(&s, 1024, secs, r);
    bench_train_resident(&s, 200, secs, r);
    bench_train_resident(&s, 1024, secs, r);

    /* sampler: 1000 forward calls at batch 1024, shared decreasing t */
    {
        const size_t B = 1024;
        const int K = 1000;
        scorenet *g = gpu_model(&s, B);
        float *x = drand(r, B * SCORENET_DIM, -3.0, 3.0), *out = mem_new(float, B * SCORENET_DIM);
        float t0f = 1.0f;
        scorenet_forward(g, 1, B, &t0f, 0, x, out);   /* warm-up */
        nn_cuda_sync();
        double t0 = log_now(), dt = 0.0;
        int k;
        for (k = 0; k < K; k++) {
            float tk = (float)(1.0 - (1.0 - 1e-3) * k / (K - 1.0));
            scorenet_forward(g, 1, B, &tk, 0, x, out);
            if ((k & 15) == 15) {
                nn_cuda_sync();
                if ((dt = log_now() - t0) > max_secs) {
                    k++;
                    break;
                }
            }
        }
        nn_cuda_sync();
        dt = log_now() - t0;
        double per = dt / k;
        printf("sampler  batch %5zu  %10.1f images/s  %8.3f ms/eval  %d-step sampler %.2f s (%s, %d calls run)\n", B,
               (double)B / per, 1e3 * per, K, per * K, k == K ? "measured" : "EXTRAPOLATED linearly", k);
        fflush(stdout);
        free(x), free(out);
        scorenet_free(g);
    }

    /* vjp at batch 500 */
    {
        const size_t B = 500;
        scorenet *g = gpu_model(&s, B);
        float *th = malloc(B * sizeof *th);
        LOG_CHECK(th, "out of memory");
        for (size_t i = 0; i < B; i++) th[i] = (float)(1e-3 + (1.0 - 1e-3) * rng_uniform(r));
        bctx c = {g,    B,    drand(r, B * SCORENET_DIM, -3.0, 3.0), drand(r, B * SCORENET_DIM, -1.0, 1.0),
                  mem_new(float, B * SCORENET_DIM), mem_new(float, B * SCORENET_DIM), th, r, 0.0};
        long calls;
        double rate = timed_rate(secs, f_vjp, &c, &calls);
        printf("vjp      batch %5zu  %10.1f evals/s   %8.3f ms/call  (score + input gradient, %ld calls)\n", B,
               rate * (double)B, 1e3 / rate, calls);
        fflush(stdout);
        free(c.x), free(c.e), free(c.out), free(c.gx);
        free(th);
        scorenet_free(g);
    }

    rng_free(r);
    nn_cuda_shutdown();
    return 0;
}
#else
int main(void)
{
    printf("SKIP bench_cuda_scorenet: CPU-only build (no nvcc)\n");
    return 0;
}
#endif
