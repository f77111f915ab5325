/* nn/train: epochs, minibatches, one EMA validation batch per epoch, early stopping and checkpoint choice as in
 * the paper's code (see train.h for the exact rules and where they come from). */
#include "train.h"
#include "io.h"
#include "log.h"
#include "mem.h"
#include "safetensors.h"
#include <stdio.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *train_keep_name(train_keep k)
{
    switch (k) {
    case TRAIN_KEEP_PAPER: return "paper-generic";
    case TRAIN_KEEP_BEST_EMA: return "best-ema";
    case TRAIN_KEEP_PAPER_EXP: return "paper-exp";
    }
    return "?";
}

train_config train_config_default(void)
{
    train_config c;
    memset(&c, 0, sizeof c);
    c.max_epochs = 1024;
    c.batch = 4096;
    c.val_batch = 4096;
    c.lr = 1e-4;
    c.t_lo = 1e-5;
    c.t_hi = 1.0;
    c.patience = 50;
    c.max_fraction = 0.5;
    c.countdown = 100;
    c.keep = TRAIN_KEEP_PAPER;
    c.label = "train";
    return c;
}

void train_stopper_init(train_stopper *s, int patience, double max_fraction, int countdown, const int *decay_points,
                        int n_decay_points)
{
    s->patience = patience;
    s->max_fraction = max_fraction;
    s->best = INFINITY;
    s->counter = 0;
    s->triggered = 0;
    s->countdown = countdown;
    s->decay_points = decay_points;
    s->n_decay_points = n_decay_points;
}

train_stop_event train_stopper_epoch(train_stopper *s, int epoch, double val)
{
    train_stop_event ev = {0, 0, 0};
    if (s->triggered) s->countdown--;   /* the paper decrements at the top of every epoch after the trigger */
    for (int k = 0; k < s->n_decay_points; k++)
        if (s->decay_points[k] == epoch) s->max_fraction *= 0.5;
    if (val < s->best) {
        s->best = val;
        s->counter = 0;
        ev.better = 1;
    } else if (val > s->best * (1.0 + s->max_fraction)) {
        s->counter++;
        if (s->counter >= s->patience) ev.do_stop = 1;
    }
    if (ev.do_stop && !s->triggered) s->triggered = 1;
    ev.finish = s->triggered && s->countdown == 0;
    return ev;
}

void train_result_free(train_result *res)
{
    free(res->train_loss);
    free(res->train_loss_last);
    free(res->val_loss);
    free(res->ema_val_loss);
    memset(res, 0, sizeof *res);
}

static void gather(float *dst, const float *src, const size_t *idx, size_t n, size_t dim)
{
    for (size_t i = 0; i < n; i++) memcpy(dst + i * dim, src + idx[i] * dim, dim * sizeof *dst);
}

/* The resident path's read of the oldest queued step's loss: what the gathered loop does with train_step's
 * return value, one step later. */
static void take_loss(const train_model *m, train_result *res, int e, double *sum, double *last, size_t *nb)
{
    *last = m->train_fetch(m->ctx);
    if (!isfinite(*last)) {
        res->status = TRAIN_NONFINITE;
        res->bad_epoch = e;
        snprintf(res->what, sizeof res->what, "train loss");
        return;
    }
    *sum += *last;
    (*nb)++;
}

/* The loop's state for the checkpoint callback: buffers allocated once per run, filled after an epoch. */
static void progress_alloc(train_progress *p, size_t n_train, size_t n_val, int E, const rng *r)
{
    memset(p, 0, sizeof *p);
    p->n_train = n_train;
    p->n_val = n_val;
    p->max_epochs = E;
    p->tidx = mem_new(int64_t, n_train);
    p->vidx = mem_new(int64_t, n_val);
    p->rng_bytes = rng_state_size(r);
    p->rng_state = mem_new(unsigned char, p->rng_bytes);
}

static void progress_fill(train_progress *p, int epochs_done, const train_stopper *st, size_t vpos,
                          const size_t *tidx, const size_t *vidx, int have_kept, const train_result *res,
                          const rng *r)
{
    p->epochs_done = epochs_done;
    p->stopper = *st;
    p->vpos = vpos;
    for (size_t i = 0; i < p->n_train; i++) p->tidx[i] = (int64_t)tidx[i];
    for (size_t i = 0; i < p->n_val; i++) p->vidx[i] = (int64_t)vidx[i];
    p->have_kept = have_kept;
    p->res = *res;   /* shares the run's per-epoch arrays: the callback runs synchronously */
    memcpy(p->rng_state, rng_state_ptr(r), p->rng_bytes);
}

/* Continue from a saved state: the records, the stopper, the orders and the rng. Returns the next epoch. */
static int progress_restore(const train_progress *p, const train_config *c, train_stopper *st, size_t *vpos,
                            size_t *tidx, size_t *vidx, int *have_kept, train_result *res, rng *r)
{
    LOG_CHECK(p->max_epochs == c->max_epochs && p->epochs_done >= 0 && p->epochs_done < c->max_epochs,
              "train_run: resume state is for %d max epochs (%d done), the config has %d", p->max_epochs,
              p->epochs_done, c->max_epochs);
    const size_t k = (size_t)p->epochs_done;
    memcpy(res->train_loss, p->res.train_loss, k * sizeof(double));
    memcpy(res->train_loss_last, p->res.train_loss_last, k * sizeof(double));
    memcpy(res->val_loss, p->res.val_loss, k * sizeof(double));
    memcpy(res->ema_val_loss, p->res.ema_val_loss, k * sizeof(double));
    res->epochs_run = p->epochs_done;
    res->best_epoch = p->res.best_epoch;
    res->best_val = p->res.best_val;
    res->kept_epoch = p->res.kept_epoch;
    res->trigger_epoch = p->res.trigger_epoch;
    *st = p->stopper;
    st->decay_points = c->decay_points;
    st->n_decay_points = c->n_decay_points;
    *vpos = p->vpos;
    for (size_t i = 0; i < p->n_train; i++) tidx[i] = (size_t)p->tidx[i];
    for (size_t i = 0; i < p->n_val; i++) vidx[i] = (size_t)p->vidx[i];
    *have_kept = p->have_kept;
    char why[160];
    if (rng_state_set(r, p->rng_state, p->rng_bytes, why, sizeof why) != 0)
        LOG_FATAL("train_run: resume state: %s (train_progress_read validates it first)", why);
    return p->epochs_done;
}

train_status train_run(const train_model *m, const train_config *c, size_t n_train, const float *x_train,
                       size_t n_val, const float *x_val, rng *r, train_result *res)
{
    LOG_CHECK(n_train > 0 && n_val > 0 && c->batch > 0 && c->val_batch > 0 && c->max_epochs > 0,
              "train_run: empty data set or zero batch size");
    memset(res, 0, sizeof *res);
    const int E = c->max_epochs;
    res->train_loss = mem_new(double, (size_t)E);
    res->train_loss_last = mem_new(double, (size_t)E);
    res->val_loss = mem_new(double, (size_t)E);
    res->ema_val_loss = mem_new(double, (size_t)E);
    res->best_epoch = res->kept_epoch = res->trigger_epoch = res->bad_epoch = -1;
    res->best_val = INFINITY;

    const size_t dim = m->dim;
    const size_t bmax = c->batch > c->val_batch ? c->batch : c->val_batch;
    float *xb = mem_new(float, bmax * dim);
    size_t *tidx = mem_new(size_t, n_train), *vidx = mem_new(size_t, n_val);
    size_t vpos = 0;
    train_stopper st;
    int have_kept = 0, e0 = 0;
    if (c->resume) {
        LOG_CHECK(c->resume->n_train == n_train && c->resume->n_val == n_val,
                  "train_run: resume state is for %zu/%zu rows, the data have %zu/%zu", c->resume->n_train,
                  c->resume->n_val, n_train, n_val);
        e0 = progress_restore(c->resume, c, &st, &vpos, tidx, vidx, &have_kept, res, r);
    } else {
        for (size_t i = 0; i < n_train; i++) tidx[i] = i;
        for (size_t i = 0; i < n_val; i++) vidx[i] = i;
        rng_shuffle(r, vidx, n_val);
        train_stopper_init(&st, c->patience, c->max_fraction, c->countdown, c->decay_points, c->n_decay_points);
    }
    const int resident = m->train_rows != NULL;
    if (resident) {
        LOG_CHECK(m->data_load && m->data_order && m->train_fetch && m->eval_rows && m->data_unload,
                  "train_run: a model with train_rows needs every resident-data entry (train.h)");
        m->data_load(m->ctx, n_train, x_train, n_val, x_val);
        m->data_order(m->ctx, 1, vidx, n_val);
    }
    train_progress pr;
    if (c->checkpoint) progress_alloc(&pr, n_train, n_val, E, r);
    double last_ck = log_now();
    log_progress prog;
    if (c->progress) {
        log_progress_begin(&prog, c->label ? c->label : "train", (size_t)E);
        log_progress_step(&prog, (size_t)e0);
    }

    for (int e = e0; e < E; e++) {
        rng_shuffle(r, tidx, n_train);
        double sum = 0.0, last = 0.0;
        size_t nb = 0;
        if (resident) {
            m->data_order(m->ctx, 0, tidx, n_train);
            /* step k + 1 is queued before step k's loss is read (train.h) */
            int queued = 0;
            for (size_t b0 = 0; b0 < n_train && res->status == TRAIN_OK; b0 += c->batch) {
                size_t nbat = n_train - b0 < c->batch ? n_train - b0 : c->batch;
                m->train_rows(m->ctx, b0, nbat, c->t_lo, c->t_hi, c->lr, r);
                if (queued) take_loss(m, res, e, &sum, &last, &nb);
                queued = 1;
            }
            if (queued && res->status == TRAIN_OK) take_loss(m, res, e, &sum, &last, &nb);
        }
        for (size_t b0 = 0; !resident && b0 < n_train; b0 += c->batch) {
            size_t nbat = n_train - b0 < c->batch ? n_train - b0 : c->batch;
            gather(xb, x_train, tidx + b0, nbat, dim);
            last = m->train_step(m->ctx, nbat, xb, c->t_lo, c->t_hi, c->lr, r);
            if (!isfinite(last)) {
                res->status = TRAIN_NONFINITE;
                res->bad_epoch = e;
                snprintf(res->what, sizeof res->what, "train loss");
                break;
            }
            sum += last;
            nb++;
        }
        res->train_loss[e] = nb ? sum / (double)nb : NAN;
        res->train_loss_last[e] = last;
        res->epochs_run = e + 1;
        if (res->status != TRAIN_OK) break;

        if (vpos >= n_val) {
            rng_shuffle(r, vidx, n_val);
            vpos = 0;
            if (resident) m->data_order(m->ctx, 1, vidx, n_val);
        }
        size_t nv = n_val - vpos < c->val_batch ? n_val - vpos : c->val_batch;
        double ema_val, raw_val;
        if (resident) {
            ema_val = m->eval_rows(m->ctx, 1, vpos, nv, c->t_lo, c->t_hi, r);
            raw_val = m->eval_rows(m->ctx, 0, vpos, nv, c->t_lo, c->t_hi, r);
        } else {
            gather(xb, x_val, vidx + vpos, nv, dim);
            ema_val = m->eval_loss(m->ctx, 1, nv, xb, c->t_lo, c->t_hi, r);
            raw_val = m->eval_loss(m->ctx, 0, nv, xb, c->t_lo, c->t_hi, r);
        }
        vpos += nv;
        res->ema_val_loss[e] = ema_val;
        res->val_loss[e] = raw_val;
        if (!isfinite(ema_val) || !isfinite(raw_val)) {
            res->status = TRAIN_NONFINITE;
            res->bad_epoch = e;
            snprintf(res->what, sizeof res->what, "%s", isfinite(ema_val) ? "val loss" : "EMA val loss");
            break;
        }
        train_stop_event ev = train_stopper_epoch(&st, e, ema_val);
        if (ev.better) {
            res->best_epoch = e;
            res->best_val = ema_val;
        }
        if (ev.do_stop && res->trigger_epoch < 0) res->trigger_epoch = e;
        if ((c->keep == TRAIN_KEEP_PAPER && !ev.do_stop) || (c->keep == TRAIN_KEEP_BEST_EMA && ev.better)) {
            m->snapshot(m->ctx, 1);
            res->kept_epoch = e;
            have_kept = 1;
        }
        if (c->progress) log_progress_step(&prog, 1);
        if (ev.finish) break;
        if (c->keep == TRAIN_KEEP_PAPER_EXP) {
            m->snapshot(m->ctx, 0);
            res->kept_epoch = e;
            have_kept = 1;
        }
        if (c->checkpoint && e + 1 < E && log_now() - last_ck >= c->checkpoint_every) {
            progress_fill(&pr, e + 1, &st, vpos, tidx, vidx, have_kept, res, r);
            c->checkpoint(c->checkpoint_ctx, &pr);
            last_ck = log_now();
        }
    }
    if (c->checkpoint) {
        free(pr.tidx);
        free(pr.vidx);
        free(pr.rng_state);
    }
    if (c->progress) log_progress_end(&prog);
    if (resident) m->data_unload(m->ctx);
    if (have_kept) m->restore(m->ctx);
    free(xb);
    free(tidx);
    free(vidx);
    return res->status;
}

/* ---------------------------------------------------------------- checkpointed state */

#define TP_META_MAX 20
/* The metadata strings must outlive the writer call: one static table per process is enough (one writer at a
 * time, filled and written by the caller in one go). */
static char tp_meta[TP_META_MAX][40];

static void meta_long(safetensors_writer *w, int slot, const char *key, long v)
{
    snprintf(tp_meta[slot], sizeof tp_meta[slot], "%ld", v);
    safetensors_writer_metadata(w, key, tp_meta[slot]);
}

static void meta_double(safetensors_writer *w, int slot, const char *key, double v)
{
    snprintf(tp_meta[slot], sizeof tp_meta[slot], "%.17g", v);
    safetensors_writer_metadata(w, key, tp_meta[slot]);
}

void train_progress_write(const train_progress *p, safetensors_writer *w)
{
    int64_t sh[1];
    sh[0] = (int64_t)p->n_train;
    safetensors_writer_add(w, "train.tidx", SAFETENSORS_I64, 1, sh, p->tidx);
    sh[0] = (int64_t)p->n_val;
    safetensors_writer_add(w, "train.vidx", SAFETENSORS_I64, 1, sh, p->vidx);
    sh[0] = (int64_t)p->rng_bytes;
    safetensors_writer_add(w, "train.rng", SAFETENSORS_U8, 1, sh, p->rng_state);
    sh[0] = p->epochs_done;
    safetensors_writer_add(w, "train.train_loss", SAFETENSORS_F64, 1, sh, p->res.train_loss);
    safetensors_writer_add(w, "train.train_loss_last", SAFETENSORS_F64, 1, sh, p->res.train_loss_last);
    safetensors_writer_add(w, "train.val_loss", SAFETENSORS_F64, 1, sh, p->res.val_loss);
    safetensors_writer_add(w, "train.ema_val_loss", SAFETENSORS_F64, 1, sh, p->res.ema_val_loss);
    int k = 0;
    meta_long(w, k++, "train.epochs_done", p->epochs_done);
    meta_long(w, k++, "train.max_epochs", p->max_epochs);
    meta_long(w, k++, "train.vpos", (long)p->vpos);
    meta_long(w, k++, "train.have_kept", p->have_kept);
    meta_long(w, k++, "train.best_epoch", p->res.best_epoch);
    meta_double(w, k++, "train.best_val", p->res.best_val);
    meta_long(w, k++, "train.kept_epoch", p->res.kept_epoch);
    meta_long(w, k++, "train.trigger_epoch", p->res.trigger_epoch);
    meta_long(w, k++, "train.stop_patience", p->stopper.patience);
    meta_double(w, k++, "train.stop_max_fraction", p->stopper.max_fraction);
    meta_double(w, k++, "train.stop_best", p->stopper.best);
    meta_long(w, k++, "train.stop_counter", p->stopper.counter);
    meta_long(w, k++, "train.stop_triggered", p->stopper.triggered);
    meta_long(w, k++, "train.stop_countdown", p->stopper.countdown);
}

/* a 1-D tensor of dtype and length n, copied into dst */
static int read_vec(const safetensors *st, const char *name, safetensors_dtype dt, size_t n, void *dst,
                    const char *path, char *err, size_t errlen)
{
    const safetensors_tensor *t = safetensors_find(st, name);
    if (!t || t->dtype != dt || t->ndim != 1 || (size_t)t->shape[0] != n) {
        snprintf(err, errlen, "%s: training state: tensor '%s' missing or not %s [%zu]", path, name,
                 safetensors_dtype_name(dt), n);
        return -1;
    }
    memcpy(dst, t->data, n * safetensors_dtype_size(dt));
    return 0;
}

/* "inf" is what %.17g writes for an infinite best (no epoch yet); strtod reads it back */
static int read_meta_double(const safetensors *st, const char *key, double *out)
{
    const char *v = safetensors_metadata_get(st, key);
    if (!v) return -1;
    char *end;
    *out = strtod(v, &end);
    return *end ? -1 : 0;
}

/* A saved shuffle order must be a permutation of 0..n-1: a repeated index would silently train on some rows
 * twice and never on others. */
static int check_permutation(const int64_t *idx, size_t n, const char *name, char *why, size_t whylen)
{
    unsigned char *seen = mem_calloc(n ? n : 1, 1);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (idx[i] < 0 || (uint64_t)idx[i] >= n) {
            snprintf(why, whylen, "tensor '%s': entry %zu is %lld, outside [0, %zu)", name, i, (long long)idx[i], n);
            rc = -1;
            break;
        }
        if (seen[idx[i]]++) {
            snprintf(why, whylen, "tensor '%s' is not a permutation: %lld appears twice", name, (long long)idx[i]);
            rc = -1;
            break;
        }
    }
    free(seen);
    return rc;
}

/* The counters and records against each other and against the run's config: what the loop itself would
 * have written after p->epochs_done epochs. */
static int check_counters(const train_progress *p, const train_config *c, char *why, size_t whylen)
{
    const int k = p->epochs_done;
    for (int e = 0; e < k; e++)
        if (!isfinite(p->res.train_loss[e]) || !isfinite(p->res.train_loss_last[e]) || !isfinite(p->res.val_loss[e]) ||
            !isfinite(p->res.ema_val_loss[e])) {
            snprintf(why, whylen, "a loss of epoch %d is not finite", e);
            return -1;
        }
    int best = -1;
    for (int e = 0; e < k; e++)
        if (best < 0 || p->res.ema_val_loss[e] < p->res.ema_val_loss[best]) best = e;
    if (p->res.best_epoch != best || (best >= 0 && (p->res.best_val != p->res.ema_val_loss[best] ||
                                                    p->stopper.best != p->res.best_val))) {
        snprintf(why, whylen, "best epoch %d (val %.17g) does not match the recorded losses (epoch %d)",
                 p->res.best_epoch, p->res.best_val, best);
        return -1;
    }
    if (p->have_kept != 0 && p->have_kept != 1) {
        snprintf(why, whylen, "have_kept is %d", p->have_kept);
        return -1;
    }
    if (p->res.kept_epoch < -1 || p->res.kept_epoch >= k || (p->res.kept_epoch >= 0) != p->have_kept) {
        snprintf(why, whylen, "kept epoch %d is not consistent with %d epochs done", p->res.kept_epoch, k);
        return -1;
    }
    if (p->res.trigger_epoch < -1 || p->res.trigger_epoch >= k || (p->stopper.triggered != 0 && p->stopper.triggered != 1) ||
        (p->res.trigger_epoch >= 0) != p->stopper.triggered) {
        snprintf(why, whylen, "early-stopping trigger (epoch %d, flag %d) is not consistent with %d epochs done",
                 p->res.trigger_epoch, p->stopper.triggered, k);
        return -1;
    }
    if (p->stopper.patience != c->patience || p->stopper.counter < 0 || p->stopper.counter > k ||
        p->stopper.countdown < 0 || p->stopper.countdown > c->countdown ||
        (!p->stopper.triggered && p->stopper.countdown != c->countdown)) {
        snprintf(why, whylen, "early-stopping counters (patience %d, counter %d, countdown %d) are out of range "
                 "for this run (patience %d, countdown %d)", p->stopper.patience, p->stopper.counter,
                 p->stopper.countdown, c->patience, c->countdown);
        return -1;
    }
    if (!(p->stopper.max_fraction >= 0 && p->stopper.max_fraction <= c->max_fraction)) {
        snprintf(why, whylen, "early-stopping max_fraction %g is outside [0, %g]", p->stopper.max_fraction,
                 c->max_fraction);
        return -1;
    }
    return 0;
}

int train_progress_read(train_progress *p, const safetensors *st, const train_config *c, size_t n_train,
                        size_t n_val, const char *path, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    long v[12];
    static const char *const lkeys[12] = {"train.epochs_done", "train.max_epochs", "train.vpos", "train.have_kept",
                                          "train.best_epoch", "train.kept_epoch", "train.trigger_epoch",
                                          "train.stop_patience", "train.stop_counter", "train.stop_triggered",
                                          "train.stop_countdown", NULL};
    for (int i = 0; lkeys[i]; i++)
        if (safetensors_metadata_long(st, lkeys[i], -1, INT_MAX, &v[i]) != 0) {
            snprintf(err, errlen, "%s: training state: metadata '%s' missing or malformed", path, lkeys[i]);
            return -1;
        }
    double best_val, mf, sbest;
    if (read_meta_double(st, "train.best_val", &best_val) || read_meta_double(st, "train.stop_max_fraction", &mf) ||
        read_meta_double(st, "train.stop_best", &sbest)) {
        snprintf(err, errlen, "%s: training state: a floating-point metadata entry is missing or malformed", path);
        return -1;
    }
    if (v[1] != c->max_epochs || v[0] < 0 || v[0] >= v[1] || (size_t)v[2] > n_val) {
        snprintf(err, errlen, "%s: training state is for %ld max epochs (%ld done), this run has %d", path, v[1],
                 v[0], c->max_epochs);
        return -1;
    }
    p->epochs_done = (int)v[0];
    p->max_epochs = (int)v[1];
    p->vpos = (size_t)v[2];
    p->have_kept = (int)v[3];
    p->n_train = n_train;
    p->n_val = n_val;
    p->res.best_epoch = (int)v[4];
    p->res.best_val = best_val;
    p->res.kept_epoch = (int)v[5];
    p->res.trigger_epoch = (int)v[6];
    p->res.epochs_run = p->epochs_done;
    p->stopper.patience = (int)v[7];
    p->stopper.max_fraction = mf;
    p->stopper.best = sbest;
    p->stopper.counter = (int)v[8];
    p->stopper.triggered = (int)v[9];
    p->stopper.countdown = (int)v[10];
    const size_t k = (size_t)p->epochs_done;
    p->tidx = mem_new(int64_t, n_train);
    p->vidx = mem_new(int64_t, n_val);
    p->res.train_loss = mem_new(double, k + 1);
    p->res.train_loss_last = mem_new(double, k + 1);
    p->res.val_loss = mem_new(double, k + 1);
    p->res.ema_val_loss = mem_new(double, k + 1);
    const safetensors_tensor *tr = safetensors_find(st, "train.rng");
    p->rng_bytes = tr && tr->ndim == 1 ? (size_t)tr->shape[0] : 0;
    p->rng_state = mem_new(unsigned char, p->rng_bytes + 1);
    if (read_vec(st, "train.tidx", SAFETENSORS_I64, n_train, p->tidx, path, err, errlen) ||
        read_vec(st, "train.vidx", SAFETENSORS_I64, n_val, p->vidx, path, err, errlen) ||
        read_vec(st, "train.rng", SAFETENSORS_U8, p->rng_bytes, p->rng_state, path, err, errlen) ||
        read_vec(st, "train.train_loss", SAFETENSORS_F64, k, p->res.train_loss, path, err, errlen) ||
        read_vec(st, "train.train_loss_last", SAFETENSORS_F64, k, p->res.train_loss_last, path, err, errlen) ||
        read_vec(st, "train.val_loss", SAFETENSORS_F64, k, p->res.val_loss, path, err, errlen) ||
        read_vec(st, "train.ema_val_loss", SAFETENSORS_F64, k, p->res.ema_val_loss, path, err, errlen)) {
        train_progress_free(p);
        return -1;
    }
    char why[160];
    if (rng_state_check(p->rng_state, p->rng_bytes, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: training state: tensor 'train.rng': %s", path, why);
        goto fail;
    }
    if (check_permutation(p->tidx, n_train, "train.tidx", why, sizeof why) ||
        check_permutation(p->vidx, n_val, "train.vidx", why, sizeof why) ||
        check_counters(p, c, why, sizeof why)) {
        snprintf(err, errlen, "%s: training state: %s", path, why);
        goto fail;
    }
    return 0;
fail:
    train_progress_free(p);
    return -1;
}

void train_progress_free(train_progress *p)
{
    free(p->tidx);
    free(p->vidx);
    free(p->rng_state);
    train_result_free(&p->res);
    memset(p, 0, sizeof *p);
}

void train_result_write_csv(const train_result *res, const char *path, const io_meta *meta)
{
    io_csv *csv = io_csv_open(path, "epoch,train_loss,train_loss_last,val_loss,ema_val_loss");
    for (int e = 0; e < res->epochs_run; e++)
        io_csv_row(csv, "%d,%.6g,%.6g,%.6g,%.6g", e, res->train_loss[e], res->train_loss_last[e], res->val_loss[e],
                   res->ema_val_loss[e]);
    io_csv_commit(csv, meta);
}
