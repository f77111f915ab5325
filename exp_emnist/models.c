/* models: the score networks and the digit classifier of the image experiment (paper §5.1, App. G;
 * REFERENCE.md "Image experiment"): four auxiliaries, Baseline 1 (from scratch on the n target images, per n),
 * Baseline 2 (the 70:30 auxiliary fine-tuned on them, per n). Every network trains with the paper code's
 * generic_train (Adam, EMA with warm-up, one val batch per epoch with the EMA weights, early stopping, the kept
 * weights of nn/train.h TRAIN_KEEP_PAPER) and is saved as a safetensors checkpoint whose file name carries a
 * hash of everything that determines it (split, sizes, seed, recipe): a finished network is never trained again,
 * and a stale one is never reused. A network in training also writes "<checkpoint>.partial" (weights, EMA, Adam
 * moments, counters and the training loop's state, nn/train.h train_progress) every --ckpt-every seconds, so a
 * killed run resumes inside the network it was training, with the same draws as if it had never stopped. */
#include "ee.h"
#include "imgrid.h"
#include "sampler.h"
#include "score.h"
#include "log.h"
#include "lr_sched.h"
#include "mem.h"
#include "rng.h"
#include "safetensors.h"
#include "train.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *ee_model_label(ee_kind kind, size_t index_or_n, char *buf, size_t len)
{
    if (kind == EE_AUX) snprintf(buf, len, "aux%zu", index_or_n + 1);
    else if (kind == EE_POOL) snprintf(buf, len, "pool");
    else snprintf(buf, len, "%s_n%zu", kind == EE_B1 ? "b1" : "b2", index_or_n);
    return buf;
}

/* Everything the five sets depend on (data.c deals them in a fixed order). */
static void split_signature(const ee_config *c, char *buf, size_t len)
{
    long n_max = 0, v_max = 0;
    for (size_t i = 0; i < c->n_count; i++) {
        if (c->n_list[i] > n_max) n_max = c->n_list[i];
        if (ee_val_size(c->n_list[i]) > v_max) v_max = ee_val_size(c->n_list[i]);
    }
    snprintf(buf, len, "data=%s/%s seed=%llu test=%zu nmax=%ld vmax=%ld aux=%zu/%zu", c->data_dir, c->dataset,
             (unsigned long long)c->seed, c->test_size, n_max, v_max, c->aux_train, c->aux_val);
}

static double b1_lr(const ee_config *c, long n)
{
    if (c->b1_lr_rule == EE_B1LR_NOTEBOOK) return c->b1.lr;
    /* the paper text (App. G): 1e-3 for 64-128, 2e-4 for 256-1,024, 1e-4 for 4,096-16,384 */
    return n <= 128 ? 1e-3 : n <= 1024 ? 2e-4 : 1e-4;
}

static const ee_train_params *recipe_of(const ee_config *c, ee_kind kind)
{
    return kind == EE_AUX ? &c->aux : kind == EE_B1 ? &c->b1 : kind == EE_B2 ? &c->b2 : &c->pool;
}

static void recipe_string(const ee_config *c, ee_kind kind, size_t index_or_n, char *buf, size_t len)
{
    char split[512];
    split_signature(c, split, sizeof split);
    const ee_train_params *p = recipe_of(c, kind);
    double lr = kind == EE_B1 ? b1_lr(c, (long)index_or_n) : p->lr;
    int w = snprintf(buf, len, "kind=%d idx=%zu %s epochs=%d batch=%zu lr=%.9g patience=%d frac=%.9g maxim=%.9g tlo=%.9g",
                     (int)kind, index_or_n, split, p->epochs, p->batch, lr, p->patience, p->max_fraction,
                     p->max_images, c->train_t_lo);
    /* bf16 convolution GEMMs make other networks (fp32 ones keep their names) */
    if (c->gemm_bf16 && w > 0 && (size_t)w < len) w += snprintf(buf + w, len - (size_t)w, " gemm=bf16");
    /* only a non-constant schedule adds to the recipe, so the constant-lr networks keep their names */
    if ((p->sched != EE_SCHED_CONST || p->warmup > 0) && w > 0 && (size_t)w < len)
        w += snprintf(buf + w, len - (size_t)w, " sched=%d warmup=%.9g lrend=%.9g", p->sched, p->warmup, p->lr_end);
    /* a fine-tuned network depends on the network it starts from: B2 on the 70:30 auxiliary, a warm-started
     * auxiliary on the pooled network (scratch auxiliaries keep their names) */
    if (w > 0 && (size_t)w < len && (kind == EE_B2 || (kind == EE_AUX && c->aux_init == EE_INIT_POOL))) {
        char from[2048];
        if (kind == EE_B2) recipe_string(c, EE_AUX, EE_B2_AUX, from, sizeof from);
        else recipe_string(c, EE_POOL, 0, from, sizeof from);
        snprintf(buf + w, len - (size_t)w, " from[%s]", from);
    }
}

char *ee_model_path(const ee_config *c, ee_kind kind, size_t index_or_n)
{
    char recipe[8192], label[32];
    recipe_string(c, kind, index_or_n, recipe, sizeof recipe);
    return ee_path(c, "ckpt/%s_%016llx.safetensors", ee_model_label(kind, index_or_n, label, sizeof label),
                   io_hash64(recipe));
}

int ee_model_done(const ee_config *c, ee_kind kind, size_t index_or_n)
{
    char *p = ee_model_path(c, kind, index_or_n);
    int ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

static scorenet *model_load_batch(const ee_config *c, ee_kind kind, size_t index_or_n, size_t max_batch)
{
    char *path = ee_model_path(c, kind, index_or_n), err[1024];
    sde ve = sde_ve(25.0);
    /* the raw weights only (train_run left raw == EMA in every saved model): no trainer state until a caller
     * trains it (B2's and the warm-started auxiliaries' fine-tuning do, from these weights) */
    scorenet *m = scorenet_load_weights(path, &ve, max_batch, 0, err, sizeof err);
    if (!m) log_die("%s (delete it to train it again)", err);
    free(path);
    return m;
}

scorenet *ee_model_load(const ee_config *c, ee_kind kind, size_t index_or_n)
{
    return model_load_batch(c, kind, index_or_n, c->max_batch);
}

/* The start of a fine-tuning: the trained weights of (kind, index_or_n), fresh Adam moments and EMA. */
static scorenet *finetune_start(const ee_config *c, ee_kind kind, size_t index_or_n, size_t max_batch)
{
    if (!ee_model_done(c, kind, index_or_n)) {
        char label[32];
        log_die("%s is not trained yet for this configuration (run --stage aux first)",
                ee_model_label(kind, index_or_n, label, sizeof label));
    }
    scorenet *m = model_load_batch(c, kind, index_or_n, max_batch);
    scorenet_reset_optimizer(m);
    return m;
}

/* The pooled network's data: the four auxiliary training sets (and, apart, validation sets) end to end. */
static void pool_union(const ee_data *d, float **xt, size_t *nt, float **xv, size_t *nv)
{
    *nt = *nv = 0;
    for (size_t i = 0; i < EE_K; i++) *nt += d->aux_train[i].n, *nv += d->aux_val[i].n;
    *xt = mem_new(float, *nt * EE_DIM);
    *xv = mem_new(float, *nv * EE_DIM);
    for (size_t i = 0, ot = 0, ov = 0; i < EE_K; i++) {
        float *t = ee_set_normalised(&d->aux_train[i], d->aux_train[i].n);
        float *v = ee_set_normalised(&d->aux_val[i], d->aux_val[i].n);
        memcpy(*xt + ot * EE_DIM, t, d->aux_train[i].n * EE_DIM * sizeof *t);
        memcpy(*xv + ov * EE_DIM, v, d->aux_val[i].n * EE_DIM * sizeof *v);
        ot += d->aux_train[i].n, ov += d->aux_val[i].n;
        free(t), free(v);
    }
}

scorenet_dev *ee_net_attach(const ee_config *c, scorenet *m)
{
    scorenet_dev *d = scorenet_dev_attach(m, c->use_cuda ? DEVICE_CUDA : DEVICE_CPU);
    if (c->gemm_bf16) scorenet_set_gemm_bf16(m, 1);   /* config: a cpu option */
    return d;
}

scorenet_dev *ee_net_open(const ee_config *c, ee_kind kind, size_t index_or_n)
{
    return ee_net_attach(c, ee_model_load(c, kind, index_or_n));
}

/* ---- what a result part is computed from */

/* the file name only (it carries the recipe hash): a copied or moved --out keeps its parts */
static int cat_path(char *buf, size_t len, int w, const char *tag, char *path)
{
    const char *base = strrchr(path, '/');
    if (w >= 0 && (size_t)w < len) w += snprintf(buf + w, len - (size_t)w, " %s=%s", tag, base ? base + 1 : path);
    free(path);
    return w;
}

unsigned long long ee_part_inputs(const ee_config *c, const char *model, long n)
{
    char buf[16384], tag[16];
    int w = snprintf(buf, sizeof buf, "gemm=%d", c->gemm_bf16);
    const int sf = model && strncmp(model, "sf_", 3) == 0;
    if (!model || sf)   /* the calibration: the four auxiliaries, its settings */
        for (size_t i = 0; i < EE_K; i++) {
            snprintf(tag, sizeof tag, "aux%zu", i + 1);
            w = cat_path(buf, sizeof buf, w, tag, ee_model_path(c, EE_AUX, i));
        }
    if ((!model || sf) && w >= 0 && (size_t)w < sizeof buf)
        w += snprintf(buf + w, sizeof buf - (size_t)w, " calib=%d,%zu,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g n=%ld",
                      c->calib_epochs, c->calib_batch, c->calib_lr, c->calib_momentum, c->calib_full_lo,
                      c->calib_full_hi, c->calib_text_lo, c->calib_text_hi, n);
    if (model) {   /* an evaluation: its network(s), the classifier, the sampler and the NLL */
        if (strncmp(model, "aux", 3) == 0) {
            long i = strtol(model + 3, NULL, 10);
            LOG_CHECK(i >= 1 && i <= EE_K, "ee_part_inputs: unknown model '%s'", model);
            w = cat_path(buf, sizeof buf, w, model, ee_model_path(c, EE_AUX, (size_t)i - 1));
        } else if (strcmp(model, "b1") == 0 || strcmp(model, "b2") == 0) {
            w = cat_path(buf, sizeof buf, w, model, ee_model_path(c, model[1] == '1' ? EE_B1 : EE_B2, (size_t)n));
        } else {
            LOG_CHECK(sf, "ee_part_inputs: unknown model '%s'", model);
        }
        w = cat_path(buf, sizeof buf, w, "clf", ee_clf_path(c));
        if (w >= 0 && (size_t)w < sizeof buf)
            w += snprintf(buf + w, sizeof buf - (size_t)w,
                          " samples=%zu steps=%d eps=%.9g nll=%d,%d,%zu,%.9g,%.9g", c->n_gen, c->sampler_steps,
                          c->sampler_eps, c->nll_passes, c->nll_batches, c->nll_batch, c->nll_rtol, c->nll_atol);
    }
    LOG_CHECK(w >= 0 && (size_t)w < sizeof buf, "ee_part_inputs: signature too long");
    return io_hash64(buf);
}

int ee_part_inputs_check(const ee_config *c, const char *path, const char *model, long n, char *err, size_t errlen)
{
    char got[64], want[32];
    snprintf(want, sizeof want, "%016llx", ee_part_inputs(c, model, n));
    if (io_meta_get(path, "inputs", got, sizeof got) != 0) {
        log_errf(err, errlen, path, "its .meta names no inputs (written by an older version)");
        return -1;
    }
    if (strcmp(got, want) != 0) {
        log_errf(err, errlen, path, "computed from other networks or settings (inputs %s, now %s)", got, want);
        return -1;
    }
    return 0;
}

void ee_part_commit(const ee_config *c, io_csv *csv, const io_meta *meta, const char *model, long n)
{
    io_meta m;
    io_meta_copy(&m, meta);
    io_meta_set(&m, "inputs", "%016llx", ee_part_inputs(c, model, n));
    io_csv_commit(csv, &m);
    io_meta_free(&m);
}

void ee_net_close(scorenet_dev *d)
{
    if (!d) return;
    scorenet *host = scorenet_dev_host(d);
    scorenet_dev_free(d);
    scorenet_free(host);
}

static void write_loss_csv(const ee_config *c, const char *label, const train_result *res, const io_meta *meta)
{
    char *path = ee_path(c, "loss_%s.csv", label);
    train_result_write_csv(res, path, meta);
    free(path);
}

/* ---- the probe (--probe): what the samples of a network in training look like, measured every few images */
typedef struct {
    const ee_config *c;
    const ee_data *data;
    digitnet *clf;
    const char *label;
    const io_meta *meta;
    const nn_lr_sched_model *sched;
    double lr;                  /* the recipe's peak rate */
    size_t n_train;
    double next, t0, sample_s;
    char **rows;
    size_t n_rows;
} probe_ctx;

static const char *PROBE_HEADER = "images,opt_steps,epoch,lr,ema_val_loss,weights,sampler_steps,samples,c7,c9,"
                                  "c_other,digit_frac,seven_share,p7,p9,train_s,sample_s";

/* Sample, classify and record one row per sampler-step count and set of weights: during training the first
 * count with the EMA and the raw weights, at the end (kept weights) every count. */
static void probe_measure(probe_ctx *k, scorenet_dev *dev, int epochs_done, double ema_val, int final)
{
    const ee_config *c = k->c;
    double t_train = log_now() - k->t0 - k->sample_s;
    if (!k->clf) {   /* at the first measurement: training starts at once, beside a classifier being trained */
        ee_clf_train(c, k->data, k->meta);
        k->clf = ee_clf_load(c);
    }
    double t1 = log_now();
    size_t ns = final ? c->probe_steps_count : 1;
    float *x = mem_new(float, c->n_gen * EE_DIM), *pr = mem_new(float, c->n_gen * 10);
    sde ve = sde_ve(25.0);
    for (size_t si = 0; si < ns; si++)
        for (int use_ema = 1; use_ema >= 0; use_ema--) {
            /* the raw weights beside the EMA during training only: after train_run both hold the kept weights */
            if (!use_ema && final) continue;
            sampler_opts so = sampler_opts_paper();
            so.steps = (int)c->probe_steps[si];
            so.eps = c->sampler_eps;
            score_model sm = scorenet_dev_score_model(dev, final ? 1 : use_ema);
            /* the same prior draws and noise at every measurement: differences are the network's */
            rng *r = rng_alloc(c->seed, rng_stream_id(EE_RNG_SAMPLE, 777000u + (uint64_t)so.steps));
            double ts = log_now();
            sampler_em(&ve, &sm, c->n_gen, x, &so, r);
            double secs = log_now() - ts;
            rng_free(r);
            long cnt[10] = {0};
            double pm[10] = {0};
            digitnet_probs(k->clf, c->n_gen, x, pr);
            for (size_t i = 0; i < c->n_gen; i++) {
                int best = 0;
                for (int j = 0; j < 10; j++) {
                    if (!isfinite(pr[i * 10 + j])) log_die("%s: probe: non-finite class probability", k->label);
                    pm[j] += pr[i * 10 + j] / (double)c->n_gen;
                    if (pr[i * 10 + j] > pr[i * 10 + best]) best = j;
                }
                cnt[best]++;
            }
            long other = (long)c->n_gen - cnt[7] - cnt[9];
            double share = cnt[7] + cnt[9] > 0 ? (double)cnt[7] / (double)(cnt[7] + cnt[9]) : NAN;
            char row[512];
            snprintf(row, sizeof row, "%.0f,%ld,%d,%.6g,%.6g,%s,%d,%zu,%ld,%ld,%ld,%.4f,%.4f,%.4f,%.4f,%.1f,%.1f",
                     (double)epochs_done * (double)k->n_train, k->sched->step, epochs_done,
                     nn_lr_sched_at(&k->sched->sched, k->lr, k->sched->step),
                     ema_val, use_ema ? "ema" : "raw", so.steps, c->n_gen, cnt[7], cnt[9], other,
                     (double)(cnt[7] + cnt[9]) / (double)c->n_gen, share, pm[7], pm[9], t_train, secs);
            k->rows = mem_realloc(k->rows, (k->n_rows + 1) * sizeof *k->rows);
            k->rows[k->n_rows++] = strdup(row);
            log_info("%s probe: %s", k->label, row);
            if (use_ema) {
                char *png = ee_path(c, "probe_%s_s%d.png", k->label, so.steps), err[1024];
                float lo = (float)(-EE_NORM_MEAN / EE_NORM_STD), hi = (float)((1 - EE_NORM_MEAN) / EE_NORM_STD);
                size_t g = c->grid_n < c->n_gen ? c->grid_n : c->n_gen;
                if (imgrid_write_png(png, g, (size_t)ceil(sqrt((double)g)), 28, 28, x, lo, hi, 2, err, sizeof err))
                    log_die("%s", err);
                free(png);
            }
        }
    /* the whole table again after every measurement: a killed probe leaves what it measured */
    char *path = ee_path(c, "probe_%s.csv", k->label);
    io_csv *csv = io_csv_open(path, PROBE_HEADER);
    for (size_t i = 0; i < k->n_rows; i++) io_csv_row(csv, "%s", k->rows[i]);
    io_csv_commit(csv, k->meta);
    free(path);
    free(x);
    free(pr);
    k->sample_s += log_now() - t1;
}

/* The in-progress checkpoint of a network (model + optimiser + loop state), written every --ckpt-every seconds
 * and removed when the network is finished; under --probe, a measurement instead. */
typedef struct {
    scorenet_dev *dev;
    const char *path;
    probe_ctx *probe;
} partial_ctx;

static void save_partial(void *ctx, const train_progress *p)
{
    partial_ctx *k = ctx;
    char err[1024];
    if (k->probe) {
        if ((double)p->epochs_done * (double)k->probe->n_train + 0.5 >= k->probe->next) {
            k->probe->next += k->probe->c->probe_every;
            probe_measure(k->probe, k->dev, p->epochs_done, p->res.ema_val_loss[p->epochs_done - 1], 0);
        }
        return;
    }
    scorenet_dev_sync_to_host(k->dev);
    if (scorenet_save_training(scorenet_dev_host(k->dev), p, k->path, err, sizeof err) != 0) log_die("%s", err);
    /* test hook (tests/test_exp_emnist.sh): die like a SIGKILL right after the first in-training checkpoint,
     * so the resume-inside-a-network path is exercised deterministically */
    if (getenv("EE_TEST_DIE_AFTER_CHECKPOINT")) _exit(137);
}

/* Train m on x_train[n_train] / x_val[n_val] with recipe p (lr given); the kept weights end in m. st_resume:
 * the open partial checkpoint m was loaded from (NULL: a fresh run). */
static void train_network(const ee_config *c, scorenet_dev *m, const ee_train_params *p, double lr, size_t n_train,
                          const float *x_train, size_t n_val, const float *x_val, uint64_t stream,
                          const char *label, const char *partial, const safetensors *st_resume, probe_ctx *probe,
                          const io_meta *meta)
{
    train_config tc = train_config_default();
    tc.max_epochs = p->epochs;
    if (p->max_images > 0) {
        int cap = (int)ceil(p->max_images / (double)n_train);
        if (cap < tc.max_epochs) tc.max_epochs = cap < 1 ? 1 : cap;
    }
    tc.batch = p->batch < n_train ? p->batch : n_train;
    tc.val_batch = tc.batch < n_val ? tc.batch : n_val;
    tc.lr = lr;
    tc.t_lo = c->train_t_lo;
    tc.t_hi = 1.0;
    tc.patience = p->patience;
    tc.max_fraction = p->max_fraction;
    tc.keep = TRAIN_KEEP_PAPER;   /* generic_train: every EMNIST model in the authors' code */
    tc.progress = !c->quiet;
    tc.label = label;
    partial_ctx pc = {m, partial, probe};
    tc.checkpoint = save_partial;
    tc.checkpoint_ctx = &pc;
    tc.checkpoint_every = probe ? 0 : c->ckpt_every;
    train_progress resume;
    char err[1024];
    if (st_resume) {
        if (train_progress_read(&resume, st_resume, &tc, n_train, n_val, partial, err, sizeof err) != 0)
            log_die("%s (delete it to restart this network)", err);
        tc.resume = &resume;
        log_info("%s: resuming from %s after epoch %d", label, partial, resume.epochs_done);
    }
    long per_epoch = (long)((n_train + tc.batch - 1) / tc.batch);
    /* warm-up from zero over p->warmup images, then constant or cosine down to lr_end * lr */
    nn_lr_sched_model sc = {scorenet_dev_train_model(m),
                            {(long)ceil(p->warmup / (double)tc.batch), 0.0, p->sched == EE_SCHED_COSINE, p->lr_end,
                             (long)tc.max_epochs * per_epoch},
                            tc.resume ? (long)resume.epochs_done * per_epoch : 0};
    train_model tm = nn_lr_sched_wrap(&sc);
    if (probe) {
        probe->sched = &sc;
        probe->lr = lr;
        probe->n_train = n_train;
        probe->next = c->probe_every;
        probe->t0 = log_now();
    }
    train_result res;
    rng *r = rng_alloc(c->seed, stream);
    double t0 = log_now();
    if (train_run(&tm, &tc, n_train, x_train, n_val, x_val, r, &res) != TRAIN_OK)
        log_die("%s: non-finite %s loss at epoch %d (try a smaller learning rate)", label, res.what, res.bad_epoch);
    log_info("%s: %d epochs (max %d) in %.1f s, best EMA val loss %.2f at epoch %d, kept epoch %d", label,
             res.epochs_run, tc.max_epochs, log_now() - t0, res.best_val, res.best_epoch, res.kept_epoch);
    write_loss_csv(c, label, &res, meta);
    if (probe)   /* the kept weights, as the experiment would use them (params == EMA now) */
        probe_measure(probe, m, res.epochs_run, res.kept_epoch >= 0 ? res.ema_val_loss[res.kept_epoch] : NAN, 1);
    train_result_free(&res);
    if (st_resume) train_progress_free(&resume);
    rng_free(r);
}

void ee_model_train(const ee_config *c, const ee_data *d, ee_kind kind, size_t index_or_n, const io_meta *meta)
{
    if (ee_model_done(c, kind, index_or_n)) return;
    char label[32], err[1024];
    ee_model_label(kind, index_or_n, label, sizeof label);
    sde ve = sde_ve(25.0);
    uint64_t stream = rng_stream_id(EE_RNG_TRAIN, (uint64_t)kind * 1000000u + index_or_n);
    char *path = ee_model_path(c, kind, index_or_n);
    size_t plen = strlen(path) + sizeof ".partial";
    char *partial = mem_alloc(plen);
    snprintf(partial, plen, "%s.partial", path);
    size_t nt, nv;
    float *xt, *xv;
    if (kind == EE_POOL) {
        pool_union(d, &xt, &nt, &xv, &nv);
    } else {
        const ee_set *tr = kind == EE_AUX ? &d->aux_train[index_or_n] : &d->target_train;
        const ee_set *va = kind == EE_AUX ? &d->aux_val[index_or_n] : &d->target_val;
        nt = kind == EE_AUX ? tr->n : index_or_n;
        nv = kind == EE_AUX ? va->n : (size_t)ee_val_size((long)index_or_n);
        xt = ee_set_normalised(tr, nt), xv = ee_set_normalised(va, nv);
    }
    double lr = kind == EE_B1 ? b1_lr(c, (long)index_or_n) : recipe_of(c, kind)->lr;

    scorenet *m;
    safetensors *st = NULL;
    if (access(partial, F_OK) == 0) {
        /* a network killed mid-training: weights, EMA, counters, Adam moments and loop state from its partial */
        m = scorenet_load_training(partial, &ve, c->max_batch, &st);
    } else if (kind == EE_AUX && c->aux_init == EE_INIT_POOL) {
        m = finetune_start(c, EE_POOL, 0, c->max_batch);
    } else if (kind == EE_AUX) {
        m = scorenet_alloc(&ve, c->max_batch, c->seed ^ rng_stream_id(EE_RNG_INIT, index_or_n));
    } else if (kind == EE_B1) {
        m = scorenet_alloc(&ve, c->max_batch, c->seed ^ rng_stream_id(EE_RNG_INIT, 1000u + index_or_n));
    } else if (kind == EE_POOL) {
        m = scorenet_alloc(&ve, c->max_batch, c->seed ^ rng_stream_id(EE_RNG_INIT, 2000u));
    } else {
        m = finetune_start(c, EE_AUX, EE_B2_AUX, c->max_batch);
    }
    scorenet_dev *dev = ee_net_attach(c, m);
    train_network(c, dev, recipe_of(c, kind), lr, nt, xt, nv, xv, stream, label, partial, st, NULL, meta);
    if (st) safetensors_close(st);
    scorenet_dev_sync_to_host(dev);
    scorenet_dev_free(dev);
    if (scorenet_save(m, path, err, sizeof err) != 0) log_die("%s", err);
    unlink(partial);
    free(partial);
    free(path);
    scorenet_free(m);
    free(xt);
    free(xv);
}

void ee_probe_run(const ee_config *c, const ee_data *d, const io_meta *meta)
{
    char label[160];
    size_t a = (size_t)c->probe_aux;
    /* the label names the recipe, so probes of several recipes share one output directory (and classifier) */
    int w = snprintf(label, sizeof label, "%s%d_n%zu_b%zu_lr%g_%s_w%g_i%g", c->probe_pool ? "pool" : "aux",
                     c->probe_pool ? 0 : c->probe_aux + 1, c->aux_train, c->aux.batch, c->aux.lr,
                     c->aux.sched == EE_SCHED_COSINE ? "cos" : "const", c->aux.warmup, c->aux.max_images);
    if (c->aux_init == EE_INIT_POOL && w > 0 && (size_t)w < sizeof label)
        snprintf(label + w, sizeof label - (size_t)w, "_from_pool%g", c->pool_images);
    /* the pooled network sees the four sets together: 50% sevens, four times the images */
    size_t nt, nv;
    float *xt, *xv;
    if (c->probe_pool) {
        pool_union(d, &xt, &nt, &xv, &nv);
    } else {
        nt = d->aux_train[a].n, nv = d->aux_val[a].n;
        xt = ee_set_normalised(&d->aux_train[a], nt), xv = ee_set_normalised(&d->aux_val[a], nv);
    }
    sde ve = sde_ve(25.0);
    size_t mb = c->max_batch > c->n_gen ? c->max_batch : c->n_gen;
    scorenet *m;
    if (c->aux_init == EE_INIT_POOL) {   /* the warm start as the experiment trains it (cached under OUT/ckpt) */
        ee_model_train(c, d, EE_POOL, 0, meta);
        m = finetune_start(c, EE_POOL, 0, mb);
    } else {
        m = scorenet_alloc(&ve, mb, c->seed ^ rng_stream_id(EE_RNG_INIT, a));
    }
    scorenet_dev *dev = ee_net_attach(c, m);
    probe_ctx pk = {.c = c, .data = d, .label = label, .meta = meta};
    log_info("%s probe: %zu training images, batch %zu, lr %g, %s schedule, warm-up %g images, cap %g images",
             label, nt, c->aux.batch, c->aux.lr, c->aux.sched == EE_SCHED_COSINE ? "cosine" : "constant",
             c->aux.warmup, c->aux.max_images);
    train_network(c, dev, &c->aux, c->aux.lr, nt, xt, nv, xv, rng_stream_id(EE_RNG_TRAIN, a), label, NULL, NULL,
                  &pk, meta);
    for (size_t i = 0; i < pk.n_rows; i++) free(pk.rows[i]);
    free(pk.rows);
    scorenet_dev_free(dev);
    scorenet_free(m);
    if (pk.clf) digitnet_free(pk.clf);
    free(xt), free(xv);
}

/* ---- the digit classifier */

char *ee_clf_path(const ee_config *c)
{
    char recipe[512];
    snprintf(recipe, sizeof recipe, "clf data=%s/%s seed=%llu epochs=%d max=%zu", c->data_dir, c->dataset,
             (unsigned long long)c->seed, c->clf_epochs, c->clf_train_max);
    return ee_path(c, "ckpt/classifier_%016llx.safetensors", io_hash64(recipe));
}

void ee_clf_train(const ee_config *c, const ee_data *d, const io_meta *meta)
{
    char *path = ee_clf_path(c), err[1024];
    if (access(path, F_OK) == 0) {
        free(path);
        return;
    }
    digitnet *net = digitnet_alloc(c->max_batch, c->seed ^ rng_stream_id(EE_RNG_CLF, 0));
    digitnet_train_opts o = digitnet_train_opts_default();
    if (c->clf_epochs > 0) o.epochs = c->clf_epochs;
    o.progress = !c->quiet;
    float *xt = ee_set_normalised(&d->clf_train, d->clf_train.n);
    float *xs = ee_set_normalised(&d->clf_test, d->clf_test.n);
    rng *r = rng_alloc(c->seed, rng_stream_id(EE_RNG_CLF, 1));
    double t0 = log_now();
    double *loss = mem_new(double, (size_t)o.epochs);
    digitnet_train(net, d->clf_train.n, xt, d->clf_train.label, &o, r, loss);
    double secs = log_now() - t0;
    double acc = digitnet_accuracy(net, d->clf_test.n, xs, d->clf_test.label);
    log_info("classifier: %d epochs on %zu images in %.1f s, test accuracy %.2f%% (%zu test images)", o.epochs,
             d->clf_train.n, secs, 100 * acc, d->clf_test.n);
    /* the checkpoint first: classifier.csv describes a classifier that exists (issue 11) */
    if (digitnet_save(net, path, err, sizeof err) != 0) log_die("%s", err);
    char *csv_path = ee_path(c, "classifier.csv");
    io_csv *csv = io_csv_open(csv_path, "train_images,test_images,epochs,final_train_loss,test_accuracy,seconds");
    io_csv_row(csv, "%zu,%zu,%d,%.6g,%.6f,%.1f", d->clf_train.n, d->clf_test.n, o.epochs, loss[o.epochs - 1], acc,
               secs);
    io_csv_commit(csv, meta);
    free(csv_path);
    free(loss);
    free(xt);
    free(xs);
    rng_free(r);
    digitnet_free(net);
    free(path);
}

digitnet *ee_clf_load(const ee_config *c)
{
    char *path = ee_clf_path(c), err[1024];
    digitnet *net = digitnet_load(path, c->max_batch, err, sizeof err);
    if (!net) log_die("%s (delete it to train it again)", err);
    free(path);
    return net;
}
