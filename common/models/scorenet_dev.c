/* nn/scorenet_dev: one host-facing ScoreNet API over the CPU and CUDA backends (see scorenet_dev.h). */
#include "scorenet_dev.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "rng.h"
#include "sde.h"
#include <stdlib.h>
#include <string.h>
#ifdef SF_HAVE_CUDA
#include "nn_cuda.h"
#include "scorenet_cuda.h"
#endif

struct scorenet_dev {
    scorenet *host;
    device_kind kind;
#ifdef SF_HAVE_CUDA
    scorenet_cuda *g;
    size_t cap;                 /* rows of the staging buffers */
    float *dx, *de, *dout, *dgx; /* device staging [cap, 784] each */
    float *dx0;                 /* device copy of a training batch [dx0_rows, 784] */
    size_t dx0_rows;
    float *ht, *hz;             /* host draws for the eval loss: [cap], [cap, 784] */
#endif
};

scorenet_dev *scorenet_dev_attach(scorenet *host, device_kind dev)
{
    scorenet_dev *d = mem_new(scorenet_dev, 1);
    d->host = host;
    d->kind = dev;
    if (dev == DEVICE_CUDA) {
#ifdef SF_HAVE_CUDA
        d->cap = scorenet_max_batch(host);
        d->g = scorenet_cuda_alloc_from(host, d->cap);
        d->dx = nn_cuda_malloc_floats(d->cap * SCORENET_DIM);
        d->de = nn_cuda_malloc_floats(d->cap * SCORENET_DIM);
        d->dout = nn_cuda_malloc_floats(d->cap * SCORENET_DIM);
        d->dgx = nn_cuda_malloc_floats(d->cap * SCORENET_DIM);
        d->ht = mem_new(float, d->cap);
        d->hz = mem_new(float, d->cap * SCORENET_DIM);
#else
        LOG_FATAL("scorenet_dev: DEVICE_CUDA asked of a CPU-only build");
#endif
    }
    return d;
}

void scorenet_dev_free(scorenet_dev *d)
{
    if (!d) return;
#ifdef SF_HAVE_CUDA
    if (d->g) {
        scorenet_cuda_free(d->g);
        nn_cuda_free(d->dx), nn_cuda_free(d->de), nn_cuda_free(d->dout), nn_cuda_free(d->dgx);
        nn_cuda_free(d->dx0);
        free(d->ht), free(d->hz);
    }
#endif
    free(d);
}

device_kind scorenet_dev_kind(const scorenet_dev *d) { return d->kind; }
scorenet *scorenet_dev_host(scorenet_dev *d) { return d->host; }

void scorenet_dev_sync_to_host(scorenet_dev *d)
{
#ifdef SF_HAVE_CUDA
    if (d->g) {
        scorenet_cuda_to_host(d->g, d->host);
        nn_params *p = scorenet_params(d->host);
        scorenet_cuda_buffer_to_host(d->g, SCORENET_CUDA_M, p->m);
        scorenet_cuda_buffer_to_host(d->g, SCORENET_CUDA_V, p->v);
        long a, e;
        scorenet_cuda_get_counters(d->g, &a, &e);
        scorenet_set_counters(d->host, a, e);
    }
#else
    (void)d;
#endif
}

void scorenet_dev_sync_to_device(scorenet_dev *d)
{
#ifdef SF_HAVE_CUDA
    if (d->g) {
        const nn_params *p = scorenet_params(d->host);
        scorenet_cuda_buffer_from_host(d->g, SCORENET_CUDA_DATA, p->data);
        scorenet_cuda_buffer_from_host(d->g, SCORENET_CUDA_EMA, p->ema);
        scorenet_cuda_buffer_from_host(d->g, SCORENET_CUDA_M, p->m);
        scorenet_cuda_buffer_from_host(d->g, SCORENET_CUDA_V, p->v);
        long a, e;
        scorenet_get_counters(d->host, &a, &e);
        scorenet_cuda_set_counters(d->g, a, e);
    }
#else
    (void)d;
#endif
}

void scorenet_dev_forward(scorenet_dev *d, int use_ema, size_t n, const float *t, size_t t_stride, const float *x,
                          float *out)
{
#ifdef SF_HAVE_CUDA
    if (d->g) {
        const size_t D = SCORENET_DIM;
        for (size_t i0 = 0; i0 < n; i0 += d->cap) {
            size_t nc = n - i0 < d->cap ? n - i0 : d->cap;
            nn_cuda_memcpy_h2d(d->dx, x + i0 * D, nc * D * sizeof(float));
            scorenet_cuda_forward(d->g, use_ema, nc, t + i0 * t_stride, t_stride, d->dx, d->dout);
            nn_cuda_memcpy_d2h(out + i0 * D, d->dout, nc * D * sizeof(float));
        }
        return;
    }
#endif
    scorenet_forward(d->host, use_ema, n, t, t_stride, x, out);
}

void scorenet_dev_vjp(scorenet_dev *d, int use_ema, size_t n, const float *t, size_t t_stride, const float *x,
                      const float *e, float *score, float *gx)
{
#ifdef SF_HAVE_CUDA
    if (d->g) {
        const size_t D = SCORENET_DIM;
        for (size_t i0 = 0; i0 < n; i0 += d->cap) {
            size_t nc = n - i0 < d->cap ? n - i0 : d->cap;
            nn_cuda_memcpy_h2d(d->dx, x + i0 * D, nc * D * sizeof(float));
            nn_cuda_memcpy_h2d(d->de, e + i0 * D, nc * D * sizeof(float));
            scorenet_cuda_vjp(d->g, use_ema, nc, t + i0 * t_stride, t_stride, d->dx, d->de, score ? d->dout : NULL,
                              d->dgx);
            if (score) nn_cuda_memcpy_d2h(score + i0 * D, d->dout, nc * D * sizeof(float));
            nn_cuda_memcpy_d2h(gx + i0 * D, d->dgx, nc * D * sizeof(float));
        }
        return;
    }
#endif
    scorenet_vjp(d->host, use_ema, n, t, t_stride, x, e, score, gx);
}

/* ---- score_model */
static void eval_raw(void *ctx, size_t n, const float *t, size_t ts, const float *x, float *out)
{
    scorenet_dev_forward(ctx, 0, n, t, ts, x, out);
}
static void eval_ema(void *ctx, size_t n, const float *t, size_t ts, const float *x, float *out)
{
    scorenet_dev_forward(ctx, 1, n, t, ts, x, out);
}

score_model scorenet_dev_score_model(scorenet_dev *d, int use_ema)
{
    score_model s = {SCORENET_DIM, d, use_ema ? eval_ema : eval_raw, use_ema ? "scorenet-ema" : "scorenet"};
    return s;
}

/* ---- lik_model */
static void vjp_raw(void *ctx, size_t n, float t, const float *x, const float *e, float *score, float *gx)
{
    scorenet_dev_vjp(ctx, 0, n, &t, 0, x, e, score, gx);
}
static void vjp_ema(void *ctx, size_t n, float t, const float *x, const float *e, float *score, float *gx)
{
    scorenet_dev_vjp(ctx, 1, n, &t, 0, x, e, score, gx);
}

lik_model scorenet_dev_lik_model(scorenet_dev *d, int use_ema)
{
    lik_model l = {SCORENET_DIM, d, use_ema ? vjp_ema : vjp_raw, use_ema ? "scorenet-ema" : "scorenet"};
    return l;
}

/* ---- train.h vtable */
#ifdef SF_HAVE_CUDA
/* x0[n, 784] host -> the device batch buffer (grown as needed) */
static const float *stage_batch(scorenet_dev *d, size_t n, const float *x0)
{
    if (n > d->dx0_rows) {
        nn_cuda_free(d->dx0);
        d->dx0 = nn_cuda_malloc_floats(n * SCORENET_DIM);
        d->dx0_rows = n;
    }
    nn_cuda_memcpy_h2d(d->dx0, x0, n * SCORENET_DIM * sizeof(float));
    return d->dx0;
}
#endif

static double tm_step(void *ctx, size_t n, const float *x0, double lo, double hi, double lr, rng *r)
{
    scorenet_dev *d = ctx;
#ifdef SF_HAVE_CUDA
    if (d->g) return scorenet_cuda_train_step(d->g, n, stage_batch(d, n, x0), lo, hi, lr, r);
#endif
    return scorenet_train_step(d->host, n, x0, lo, hi, lr, r);
}

static double tm_eval(void *ctx, int use_ema, size_t n, const float *x0, double lo, double hi, rng *r)
{
    scorenet_dev *d = ctx;
#ifdef SF_HAVE_CUDA
    if (d->g) {
        /* the CPU's draws in dsm_perturb's order (per sample: t, then its 784 Gaussians), chunk by chunk */
        const size_t D = SCORENET_DIM;
        double loss = 0.0;
        for (size_t i0 = 0; i0 < n; i0 += d->cap) {
            size_t nc = n - i0 < d->cap ? n - i0 : d->cap;
            for (size_t i = 0; i < nc; i++) {
                d->ht[i] = (float)(lo + (hi - lo) * rng_uniform(r));
                rng_gaussian_fill(r, d->hz + i * D, D);
            }
            nn_cuda_memcpy_h2d(d->dx, x0 + i0 * D, nc * D * sizeof(float));
            nn_cuda_memcpy_h2d(d->de, d->hz, nc * D * sizeof(float));
            loss += scorenet_cuda_loss_at(d->g, use_ema, nc, d->dx, d->ht, d->de, NULL, 0) * (double)nc;
        }
        return loss / (double)n;
    }
#endif
    return scorenet_eval_loss(d->host, use_ema, n, x0, lo, hi, r);
}

static void tm_snap(void *ctx, int from_ema)
{
    scorenet_dev *d = ctx;
#ifdef SF_HAVE_CUDA
    if (d->g) {
        nn_params *p = scorenet_params(d->host);
        scorenet_cuda_buffer_to_host(d->g, from_ema ? SCORENET_CUDA_EMA : SCORENET_CUDA_DATA, p->keep);
        p->have_keep = 1;
        return;
    }
#endif
    scorenet_snapshot(d->host, from_ema);
}

static void tm_restore(void *ctx)
{
    scorenet_dev *d = ctx;
#ifdef SF_HAVE_CUDA
    if (d->g) {
        nn_params *p = scorenet_params(d->host);
        if (!p->have_keep) return;
        scorenet_cuda_buffer_from_host(d->g, SCORENET_CUDA_DATA, p->keep);
        scorenet_cuda_buffer_from_host(d->g, SCORENET_CUDA_EMA, p->keep);
        return;
    }
#endif
    scorenet_restore_snapshot(d->host);
}

train_model scorenet_dev_train_model(scorenet_dev *d)
{
    train_model m = {d, SCORENET_DIM, tm_step, tm_eval, tm_snap, tm_restore};
    return m;
}
