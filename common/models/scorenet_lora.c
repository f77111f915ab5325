/* models/scorenet_lora: LoRA fine-tuning of the ScoreNet and the merged weight sets of the digits experiment
 * (see scorenet_lora.h; paper §5.2 / App. H, issue 10 item 3). */
#include "scorenet_lora.h"
#include "adam.h"
#include "dsm.h"
#include "ema.h"
#include "io.h"
#include "log.h"
#include "mem.h"
#include "safetensors.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LORA_FORMAT "scorefusion-scorenet-lora"

struct scorenet_lora {
    lora_adapter *ad;
    scorenet *net;          /* working network: its weights are the materialised W */
    float *w0;              /* [total] frozen base weights */
    float *delta;           /* [total] scratch */
    nn_adam adam;
    nn_ema ema;
    size_t cap;             /* DSM scratch rows */
    float *t, *std, *z, *xt;
};

scorenet_lora *scorenet_lora_alloc(const scorenet *base, size_t rank, double alpha, size_t max_batch,
                                   uint64_t seed)
{
    scorenet_lora *l = mem_new(scorenet_lora, 1);
    const nn_params *bp = scorenet_params_const(base);
    l->net = scorenet_alloc(scorenet_sde(base), max_batch, seed);
    nn_params *np = scorenet_params(l->net);
    LOG_CHECK(np->total == bp->total, "LoRA: base and working network differ in layout");
    l->w0 = mem_new(float, bp->total);
    memcpy(l->w0, nn_params_weights(bp, 0), bp->total * sizeof(float));
    memcpy(np->data, l->w0, bp->total * sizeof(float));
    l->delta = mem_new(float, bp->total);
    l->ad = lora_adapter_alloc(np, rank, alpha, seed);
    nn_params_train(l->ad->p);
    l->adam = nn_adam_default();
    l->ema = nn_ema_init(0.999);
    return l;
}

void scorenet_lora_free(scorenet_lora *l)
{
    if (!l) return;
    lora_adapter_free(l->ad);
    scorenet_free(l->net);
    free(l->w0);
    free(l->delta);
    free(l->t);
    free(l->std);
    free(l->z);
    free(l->xt);
    free(l);
}

lora_adapter *scorenet_lora_adapter(scorenet_lora *l) { return l->ad; }
const float *scorenet_lora_base_weights(const scorenet_lora *l) { return l->w0; }

void scorenet_lora_set_weights(scorenet *dst, const float *W0, size_t k, const float *const *deltas,
                               const double *w)
{
    nn_params *p = scorenet_params(dst);
    lora_adapter_merge(p->total, W0, k, deltas, w, p->data);
    scorenet_sync_to_device(dst);
}

void scorenet_lora_delta(const scorenet_lora *l, int use_ema, double scale, float *delta)
{
    lora_adapter_full_delta(l->ad, nn_params_weights(l->ad->p, use_ema), scale, delta);
}

/* the working network's weights = W0 + c B A of the adapter weights ab (scale 1: training) */
static void materialise(scorenet_lora *l, const float *ab)
{
    lora_adapter_full_delta(l->ad, ab, 1.0, l->delta);
    const float *d = l->delta;
    double one = 1.0;
    scorenet_lora_set_weights(l->net, l->w0, 1, &d, &one);
}

static void scratch(scorenet_lora *l, size_t n)
{
    if (n <= l->cap) return;
    free(l->t);
    free(l->std);
    free(l->z);
    free(l->xt);
    l->t = mem_new(float, n);
    l->std = mem_new(float, n);
    l->z = mem_new(float, n * SCORENET_DIM);
    l->xt = mem_new(float, n * SCORENET_DIM);
    l->cap = n;
}

static double lora_step(void *ctx, size_t n, const float *x0, double t_lo, double t_hi, double lr, rng *r)
{
    scorenet_lora *l = ctx;
    nn_params *ap = l->ad->p;
    materialise(l, ap->data);
    scratch(l, n);
    dsm_perturb(scorenet_sde(l->net), r, n, SCORENET_DIM, x0, t_lo, t_hi, l->t, l->std, l->z, l->xt);
    scorenet_zero_grad(l->net);
    double loss = scorenet_loss_at(l->net, 0, n, x0, l->t, l->z, NULL, 1);
    if (!isfinite(loss)) return loss;
    memset(ap->grad, 0, ap->total * sizeof(float));
    lora_adapter_full_grad(l->ad, ap->data, 1.0, scorenet_params(l->net)->grad, ap->grad);
    nn_adam_step(&l->adam, lr, ap->data, ap->grad, ap->m, ap->v, ap->total);
    nn_ema_update(&l->ema, ap->ema, ap->data, ap->total);
    return loss;
}

static double lora_eval(void *ctx, int use_ema, size_t n, const float *x0, double t_lo, double t_hi, rng *r)
{
    scorenet_lora *l = ctx;
    materialise(l, nn_params_weights(l->ad->p, use_ema));
    scratch(l, n);
    dsm_perturb(scorenet_sde(l->net), r, n, SCORENET_DIM, x0, t_lo, t_hi, l->t, l->std, l->z, l->xt);
    return scorenet_loss_at(l->net, 0, n, x0, l->t, l->z, NULL, 0);
}

static void lora_snap(void *ctx, int from_ema) { nn_params_snapshot(((scorenet_lora *)ctx)->ad->p, from_ema); }
static void lora_restore(void *ctx) { nn_params_restore(((scorenet_lora *)ctx)->ad->p); }

train_model scorenet_lora_train_model(scorenet_lora *l)
{
    train_model t = {.ctx = l, .dim = SCORENET_DIM, .train_step = lora_step, .eval_loss = lora_eval, .snapshot = lora_snap,
                     .restore = lora_restore};
    return t;
}

int scorenet_lora_save(const scorenet_lora *l, const train_progress *p, const char *path, char *err, size_t errlen)
{
    /* the writer keeps pointers to the metadata strings until the write */
    char rank[32], alpha[40], astep[32], eupd[32];
    snprintf(rank, sizeof rank, "%zu", l->ad->rank);
    snprintf(alpha, sizeof alpha, "%.17g", l->ad->alpha);
    snprintf(astep, sizeof astep, "%ld", l->adam.step);
    snprintf(eupd, sizeof eupd, "%ld", l->ema.num_updates);
    safetensors_writer *w = safetensors_writer_alloc();
    safetensors_writer_metadata(w, "format", LORA_FORMAT);
    safetensors_writer_metadata(w, "base", "ScoreNet(channels=[32,64,128,256], embed_dim=256)");
    safetensors_writer_metadata(w, "rank", rank);
    safetensors_writer_metadata(w, "alpha", alpha);
    safetensors_writer_metadata(w, "adam_step", astep);
    safetensors_writer_metadata(w, "ema_updates", eupd);
    safetensors_writer_metadata(w, "git_commit", io_git_commit());
    nn_params_write(l->ad->p, w);
    if (p) {
        nn_params_write_optim(l->ad->p, w);
        train_progress_write(p, w);
    }
    int rc = safetensors_writer_write(w, path, err, errlen);
    safetensors_writer_free(w);
    return rc;
}

int scorenet_lora_read(scorenet_lora *l, const safetensors *st, const char *path, int with_optim, char *err,
                       size_t errlen)
{
    const char *fmt = safetensors_metadata_get(st, "format");
    if (!fmt || strcmp(fmt, LORA_FORMAT) != 0) {
        snprintf(err, errlen, "%s: not a ScoreNet LoRA checkpoint (__metadata__ format '%s', expected '%s')", path,
                 fmt ? fmt : "(none)", LORA_FORMAT);
        return -1;
    }
    long rank;
    double alpha;
    if (safetensors_metadata_long(st, "rank", 1, 1L << 20, &rank) || (size_t)rank != l->ad->rank ||
        safetensors_metadata_double(st, "alpha", &alpha) || alpha != l->ad->alpha) {
        snprintf(err, errlen, "%s: LoRA rank/alpha in __metadata__ differ from this run's (rank %zu, alpha %g)", path,
                 l->ad->rank, l->ad->alpha);
        return -1;
    }
    if (nn_params_read(l->ad->p, st, path, 1, err, errlen)) return -1;
    long v;
    l->adam = nn_adam_default();
    l->ema = nn_ema_init(0.999);
    if (with_optim) {
        if (nn_params_read_optim(l->ad->p, st, path, err, errlen)) return -1;
        if (!safetensors_metadata_long(st, "adam_step", 0, __LONG_MAX__, &v)) l->adam.step = v;
        if (!safetensors_metadata_long(st, "ema_updates", 0, __LONG_MAX__, &v)) l->ema.num_updates = v;
    }
    return 0;
}
