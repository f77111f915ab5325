/* models: data draws and the score networks of exp_gaussian (REFERENCE.md 1-D section).
 * Auxiliary networks are trained once per (auxiliary, mode) and cached as safetensors under OUT/ckpt/, keyed by
 * a hash of everything that determines them, so a stale checkpoint is never reused silently. */
#include "eg.h"
#include "log.h"
#include "mem.h"
#include "rng.h"
#include "train.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *eg_path(const eg_config *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = io_vpath(c->out, fmt, ap);
    va_end(ap);
    return p;
}

void eg_aux_data(const eg_config *c, size_t i, double **train, double **val)
{
    rng *r = rng_alloc(c->seed, rng_stream_id(EG_RNG_AUX_DATA, i));
    *train = mem_new(double, c->aux_train.n_train);
    *val = mem_new(double, c->aux_train.n_val);
    mixture_sample(&c->aux[i], r, *train, c->aux_train.n_train);
    mixture_sample(&c->aux[i], r, *val, c->aux_train.n_val);
    rng_free(r);
}

void eg_target_data(const eg_config *c, long n, double **train, double **val)
{
    /* an independent draw per n, as each notebook run drew its own TRAIN_SIZE samples */
    rng *r = rng_alloc(c->seed, rng_stream_id(EG_RNG_TARGET_DATA, (uint64_t)n));
    size_t nv = (size_t)n / 4 ? (size_t)n / 4 : 1;
    *train = mem_new(double, (size_t)n);
    *val = mem_new(double, nv);
    mixture_sample(&c->target, r, *train, (size_t)n);
    mixture_sample(&c->target, r, *val, nv);
    rng_free(r);
}

/* Which weights a training run keeps: the paper's code paths in paper mode (the notebook's exp_train for the
 * 1-D auxiliaries, generic_train for the baselines; see nn/train.h), the best-validation EMA weights in
 * corrected mode. */
train_keep eg_keep_for(eg_mode mode, int is_aux)
{
    if (mode == EG_CORRECTED) return TRAIN_KEEP_BEST_EMA;
    return is_aux ? TRAIN_KEEP_PAPER_EXP : TRAIN_KEEP_PAPER;
}

mlp1d *eg_train_net(const eg_config *c, const eg_train_params *p, train_keep keep, const double *train,
                    const double *val, const eg_affine *a, uint64_t stream, const char *name, const char *loss_csv,
                    const io_meta *meta)
{
    sde ve = sde_ve(25.0);
    mlp1d *m = mlp1d_alloc(&c->net, &ve, c->seed ^ stream);
    float *tr = mem_new(float, p->n_train), *va = mem_new(float, p->n_val);
    eg_affine_apply(a, train, tr, p->n_train);
    eg_affine_apply(a, val, va, p->n_val);
    train_config tc = train_config_default();
    tc.max_epochs = (int)p->epochs;
    tc.batch = p->batch;
    tc.val_batch = p->n_val < p->batch ? p->n_val : p->batch;
    tc.lr = p->lr;
    tc.t_lo = c->train_t_lo;
    tc.t_hi = 1.0;
    tc.patience = (int)p->patience;
    tc.max_fraction = p->max_fraction;
    tc.keep = keep;
    tc.progress = !c->quiet;
    tc.label = name;
    train_model tm = mlp1d_train_model(m);
    train_result res;
    rng *r = rng_alloc(c->seed, stream);
    double t0 = log_now();
    if (train_run(&tm, &tc, p->n_train, tr, p->n_val, va, r, &res) != TRAIN_OK)
        log_die("%s: non-finite %s loss at epoch %d (try a smaller learning rate)", name, res.what, res.bad_epoch);
    log_info("%s: %d epochs in %.1f s, best EMA val loss %.4f at epoch %d, kept epoch %d (%s)", name,
             res.epochs_run, log_now() - t0, res.best_val, res.best_epoch, res.kept_epoch, train_keep_name(keep));
    if (loss_csv) train_result_write_csv(&res, loss_csv, meta);
    train_result_free(&res);
    rng_free(r);
    free(tr);
    free(va);
    return m;
}

mlp1d *eg_aux_net_load_or_train(const eg_config *c, eg_mode mode, size_t i, const eg_coords *co,
                                const io_meta *meta)
{
    char spec[1024], recipe[2048];
    mixture_format(&c->aux[i], spec, sizeof spec);
    const eg_train_params *p = &c->aux_train;
    snprintf(recipe, sizeof recipe,
             "aux=%s mode=%s seed=%llu n=%zu val=%zu batch=%zu epochs=%zu patience=%zu lr=%.9g frac=%.9g tlo=%.9g "
             "net=%d/%d/%d/%.9g/%.9g keep=%d shift=%.17g scale=%.17g",
             spec, eg_mode_name(mode), (unsigned long long)c->seed, p->n_train, p->n_val, p->batch, p->epochs,
             p->patience, p->lr, p->max_fraction, c->train_t_lo, c->net.width, c->net.depth, c->net.n_freq,
             c->net.fourier_scale, c->net.data_scale, (int)eg_keep_for(mode, 1), co->aux[i].shift, co->aux[i].scale);
    char *path = eg_path(c, "ckpt/aux%zu_%s_%016llx.safetensors", i + 1, eg_mode_name(mode),
                         io_hash64(recipe));
    sde ve = sde_ve(25.0);
    char err[512];
    if (access(path, F_OK) == 0) {
        mlp1d *m = mlp1d_load_weights(path, &ve, 1, err, sizeof err);   /* inference: the EMA weights */
        if (!m) log_die("%s", err);
        free(path);
        return m;
    }
    double *tr, *va;
    eg_aux_data(c, i, &tr, &va);
    char name[64], *loss = eg_path(c, "loss_aux%zu_%s.csv", i + 1, eg_mode_name(mode));
    snprintf(name, sizeof name, "aux%zu %s", i + 1, eg_mode_name(mode));
    mlp1d *m = eg_train_net(c, p, eg_keep_for(mode, 1), tr, va, &co->aux[i],
                            rng_stream_id(EG_RNG_TRAIN, i * 2 + (size_t)mode), name, loss, meta);
    if (mlp1d_save(m, path, err, sizeof err) != 0) log_die("%s", err);
    free(loss);
    free(path);
    free(tr);
    free(va);
    return m;
}
