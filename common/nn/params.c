/* nn/params: named tensors carved out of flat buffers (see params.h). */
#include "params.h"
#include "log.h"
#include "mem.h"
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
    p->grad = alloc_buf(p->total);
    p->m = alloc_buf(p->total);
    p->v = alloc_buf(p->total);
    p->ema = alloc_buf(p->total);
    p->finalized = 1;
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

void nn_params_zero_grad(nn_params *p) { memset(p->grad, 0, p->total * sizeof(float)); }
