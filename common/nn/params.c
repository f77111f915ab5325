/* nn/params: named tensors carved out of flat buffers (see params.h). */
#include "params.h"
#include "safetensors.h"
#include "log.h"
#include "mem.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nn_params *nn_params_alloc(void) { return mem_calloc(1, sizeof(nn_params)); }

void nn_params_free(nn_params *p)
{
    if (!p) return;
    free(p->t);
    free(p->data);
    free(p->grad);
    free(p->m);
    free(p->v);
    free(p->ema);
    free(p->keep);
    free(p);
}

size_t nn_params_add(nn_params *p, const char *name, int ndim, const int64_t *shape, int trainable)
{
    LOG_CHECK(!p->finalized, "nn_params_add after finalize ('%s')", name);
    LOG_CHECK(strlen(name) < NN_PARAMS_NAME_MAX, "tensor name too long: '%s'", name);
    LOG_CHECK(ndim >= 0 && ndim <= NN_PARAMS_MAX_DIM, "tensor '%s': %d dimensions (max %d)", name, ndim,
              NN_PARAMS_MAX_DIM);
    LOG_CHECK(nn_params_find(p, name) == (size_t)-1, "duplicate tensor name '%s'", name);
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 16;
        p->t = mem_realloc(p->t, p->cap * sizeof *p->t);
    }
    nn_params_tensor *t = &p->t[p->n];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        LOG_CHECK(shape[d] >= 0, "tensor '%s': negative dimension", name);
        t->shape[d] = shape[d];
        t->numel *= (size_t)shape[d];
    }
    t->offset = p->total;
    t->trainable = trainable;
    p->total += (t->numel + NN_PARAMS_ALIGN - 1) / NN_PARAMS_ALIGN * NN_PARAMS_ALIGN;
    return p->n++;
}

size_t nn_params_add4(nn_params *p, const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d)
{
    const int64_t sh[4] = {a, b, c, d};
    return nn_params_add(p, name, ndim, sh, 1);
}

void nn_params_init_uniform(float *w, size_t n, double bound, rng *r)
{
    for (size_t i = 0; i < n; i++) w[i] = (float)(bound * (2.0 * rng_uniform(r) - 1.0));
}

static float *alloc_buf(size_t n)
{
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) / 64 * 64;
    float *b = aligned_alloc(64, bytes);
    LOG_CHECK(b, "out of memory (%zu bytes)", bytes);
    memset(b, 0, bytes);
    return b;
}

void nn_params_finalize(nn_params *p)
{
    LOG_CHECK(!p->finalized, "nn_params_finalize called twice");
    p->data = alloc_buf(p->total);
    p->finalized = 1;
}

nn_params *nn_params_train(nn_params *p)
{
    LOG_CHECK(p->finalized, "nn_params_train before finalize");
    if (p->grad) return p;
    p->grad = alloc_buf(p->total);
    p->m = alloc_buf(p->total);
    p->v = alloc_buf(p->total);
    p->ema = alloc_buf(p->total);
    p->keep = alloc_buf(p->total);
    memcpy(p->ema, p->data, p->total * sizeof(float));
    p->have_keep = 0;
    return p;
}

size_t nn_params_find(const nn_params *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->t[i].name, name) == 0) return i;
    return (size_t)-1;
}

size_t nn_params_count(const nn_params *p)
{
    size_t c = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->t[i].trainable) c += p->t[i].numel;
    return c;
}

void nn_params_zero_grad(nn_params *p) { memset(nn_params_train(p)->grad, 0, p->total * sizeof(float)); }

void nn_params_copy_ema_to_data(nn_params *p)
{
    if (p->ema) memcpy(p->data, p->ema, p->total * sizeof(float));
}

void nn_params_snapshot(nn_params *p, int from_ema)
{
    nn_params_train(p);
    memcpy(p->keep, from_ema ? p->ema : p->data, p->total * sizeof(float));
    p->have_keep = 1;
}

int nn_params_restore(nn_params *p)
{
    if (!p->keep || !p->have_keep) return -1;
    memcpy(p->data, p->keep, p->total * sizeof(float));
    memcpy(p->ema, p->keep, p->total * sizeof(float));
    return 0;
}

void nn_params_write(const nn_params *p, safetensors_writer *w)
{
    char name[NN_PARAMS_NAME_MAX + 8];
    for (size_t i = 0; i < p->n; i++)
        safetensors_writer_add_f32(w, p->t[i].name, p->t[i].ndim, p->t[i].shape, p->data + p->t[i].offset);
    for (size_t i = 0; i < p->n; i++) {   /* the writer copies names, so one buffer serves */
        snprintf(name, sizeof name, "ema.%s", p->t[i].name);
        safetensors_writer_add_f32(w, name, p->t[i].ndim, p->t[i].shape, nn_params_weights(p, 1) + p->t[i].offset);
    }
}

/* The tensor prefix+name, or prefix+"module."+name; NULL if neither. */
static const safetensors_tensor *find_named(const safetensors *st, const char *prefix, const char *name)
{
    char full[NN_PARAMS_NAME_MAX + 16];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const safetensors_tensor *t = safetensors_find(st, full);
    if (t) return t;
    snprintf(full, sizeof full, "%smodule.%s", prefix, name);
    return safetensors_find(st, full);
}

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    buf[0] = '\0';
    for (int d = 0; d < ndim; d++)
        snprintf(buf + strlen(buf), len - strlen(buf), d ? ",%lld" : "%lld", (long long)shape[d]);
}

/* A loaded weight must be finite: one NaN makes every output NaN, and downstream argmaxes turn that into a
 * plausible-looking class (issue 11). */
static int check_finite(const float *x, size_t n, const char *name, const char *path, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            snprintf(err, errlen, "%s: tensor '%s' has a non-finite value (%g) at element %zu", path, name, (double)x[i],
                     i);
            return -1;
        }
    return 0;
}

static int copy_tensor(const safetensors_tensor *t, const nn_params_tensor *want, float *dst, const char *path,
                       char *err, size_t errlen)
{
    int same = t->dtype == SAFETENSORS_F32 && t->ndim == want->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == want->shape[d];
    if (!same) {
        char ws[96], gs[96];
        shape_str(ws, sizeof ws, want->ndim, want->shape);
        shape_str(gs, sizeof gs, t->ndim, t->shape);
        snprintf(err, errlen, "%s: tensor '%s' is %s[%s], expected F32[%s]", path, t->name,
                 safetensors_dtype_name(t->dtype), gs, ws);
        return -1;
    }
    memcpy(dst, t->data, t->nbytes);   /* memcpy: data need not be aligned in a foreign file */
    return check_finite(dst, t->numel, t->name, path, err, errlen);
}

int nn_params_read(nn_params *p, const safetensors *st, const char *path, int ema_required, char *err, size_t errlen)
{
    for (size_t i = 0; i < p->n; i++) {
        const nn_params_tensor *pt = &p->t[i];
        const safetensors_tensor *t = find_named(st, "", pt->name), *te = find_named(st, "ema.", pt->name);
        if (!t) {
            snprintf(err, errlen, "%s: tensor '%s' missing", path, pt->name);
            return -1;
        }
        if (copy_tensor(t, pt, p->data + pt->offset, path, err, errlen)) return -1;
        if (!te && ema_required) {
            snprintf(err, errlen, "%s: tensor 'ema.%s' missing", path, pt->name);
            return -1;
        }
        if (!p->ema) continue;   /* no trainer state: the weights are all we hold */
        if (te) {
            if (copy_tensor(te, pt, p->ema + pt->offset, path, err, errlen)) return -1;
        } else {
            memcpy(p->ema + pt->offset, p->data + pt->offset, pt->numel * sizeof(float));
        }
    }
    return 0;
}

int nn_params_read_weights(nn_params *p, const safetensors *st, const char *path, int use_ema, char *err,
                           size_t errlen)
{
    for (size_t i = 0; i < p->n; i++) {
        const nn_params_tensor *pt = &p->t[i];
        const safetensors_tensor *t = use_ema ? find_named(st, "ema.", pt->name) : NULL;
        if (!t) t = find_named(st, "", pt->name);
        if (!t) {
            snprintf(err, errlen, "%s: tensor '%s' missing", path, pt->name);
            return -1;
        }
        if (copy_tensor(t, pt, p->data + pt->offset, path, err, errlen)) return -1;
    }
    return 0;
}

void nn_params_write_optim(const nn_params *p, safetensors_writer *w)
{
    LOG_CHECK(p->m, "nn_params_write_optim: the model has no trainer state");
    const int64_t shape[1] = {(int64_t)p->total};
    safetensors_writer_add_f32(w, "optim.m", 1, shape, p->m);
    safetensors_writer_add_f32(w, "optim.v", 1, shape, p->v);
    if (p->have_keep) safetensors_writer_add_f32(w, "optim.keep", 1, shape, p->keep);
}

/* a flat F32 tensor of exactly total floats, copied into dst; -1 + message otherwise */
static int read_flat(const safetensors *st, const char *name, size_t total, float *dst, const char *path, char *err,
                     size_t errlen)
{
    const safetensors_tensor *t = safetensors_find(st, name);
    if (!t) {
        snprintf(err, errlen, "%s: tensor '%s' missing", path, name);
        return -1;
    }
    if (t->dtype != SAFETENSORS_F32 || t->ndim != 1 || (size_t)t->shape[0] != total) {
        snprintf(err, errlen, "%s: tensor '%s' is not F32 [%zu]", path, name, total);
        return -1;
    }
    memcpy(dst, t->data, total * sizeof(float));
    return check_finite(dst, total, name, path, err, errlen);
}

int nn_params_read_optim(nn_params *p, const safetensors *st, const char *path, char *err, size_t errlen)
{
    nn_params_train(p);
    if (read_flat(st, "optim.m", p->total, p->m, path, err, errlen) ||
        read_flat(st, "optim.v", p->total, p->v, path, err, errlen))
        return -1;
    for (size_t i = 0; i < p->total; i++)
        if (p->v[i] < 0) {   /* a second moment: Adam takes its square root */
            snprintf(err, errlen, "%s: tensor 'optim.v' has a negative value (%g) at element %zu", path, (double)p->v[i],
                     i);
            return -1;
        }
    p->have_keep = 0;
    if (safetensors_find(st, "optim.keep")) {
        if (read_flat(st, "optim.keep", p->total, p->keep, path, err, errlen)) return -1;
        p->have_keep = 1;
    }
    return 0;
}
