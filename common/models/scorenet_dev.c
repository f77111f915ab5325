/* models/scorenet_dev: the host-facing ScoreNet handle of the experiments (see scorenet_dev.h). The network is
 * written once (scorenet.c, over the backend table); this file only moves it to the chosen device and adapts it
 * to common/score.h, likelihood.h and train.h. */
#include "scorenet_dev.h"
#include "mem.h"
#include <stdlib.h>

struct scorenet_dev {
    scorenet *host;
};

scorenet_dev *scorenet_dev_attach(scorenet *host, device_kind dev)
{
    scorenet_dev *d = mem_new(scorenet_dev, 1);
    d->host = host;
    scorenet_set_device(host, dev);
    return d;
}

void scorenet_dev_free(scorenet_dev *d) { free(d); }
device_kind scorenet_dev_kind(const scorenet_dev *d) { return scorenet_device(d->host); }
scorenet *scorenet_dev_host(scorenet_dev *d) { return d->host; }
void scorenet_dev_sync_to_host(scorenet_dev *d) { scorenet_sync_to_host(d->host); }
void scorenet_dev_sync_to_device(scorenet_dev *d) { scorenet_sync_to_device(d->host); }

void scorenet_dev_forward(scorenet_dev *d, int use_ema, size_t n, const float *t, size_t t_stride, const float *x,
                          float *out)
{
    scorenet_forward(d->host, use_ema, n, t, t_stride, x, out);
}

void scorenet_dev_vjp(scorenet_dev *d, int use_ema, size_t n, const float *t, size_t t_stride, const float *x,
                      const float *e, float *score, float *gx)
{
    scorenet_vjp(d->host, use_ema, n, t, t_stride, x, e, score, gx);
}

score_model scorenet_dev_score_model(scorenet_dev *d, int use_ema) { return scorenet_score_model(d->host, use_ema); }
train_model scorenet_dev_train_model(scorenet_dev *d) { return scorenet_train_model(d->host); }

static void vjp_raw(void *ctx, size_t n, float t, const float *x, const float *e, float *score, float *gx)
{
    scorenet_vjp(ctx, 0, n, &t, 0, x, e, score, gx);
}
static void vjp_ema(void *ctx, size_t n, float t, const float *x, const float *e, float *score, float *gx)
{
    scorenet_vjp(ctx, 1, n, &t, 0, x, e, score, gx);
}

lik_model scorenet_dev_lik_model(scorenet_dev *d, int use_ema)
{
    lik_model l = {SCORENET_DIM, d->host, use_ema ? vjp_ema : vjp_raw, use_ema ? "scorenet-ema" : "scorenet"};
    return l;
}
