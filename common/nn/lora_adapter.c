/* nn/lora_adapter: low-rank adapters on nn_params weight tensors, their chain-rule gradient and the merge
 * W0 + sum_i w_i dW_i (see lora_adapter.h; paper §5.2 / App. H, issue 10 item 3). */
#include "lora_adapter.h"
#include "log.h"
#include "mem.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lora_adapter_delta(size_t rows, size_t cols, size_t rank, const float *A, const float *B, double c,
                        float *delta)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) {
            double s = 0.0;
            for (size_t k = 0; k < rank; k++) s += (double)B[i * rank + k] * A[k * cols + j];
            delta[i * cols + j] = (float)(c * s);
        }
}

void lora_adapter_grad(size_t rows, size_t cols, size_t rank, const float *A, const float *B, const float *dW,
                       double c, float *dA, float *dB)
{
    if (dA)
#pragma omp parallel for schedule(static)
        for (size_t k = 0; k < rank; k++)
            for (size_t j = 0; j < cols; j++) {
                double s = 0.0;
                for (size_t i = 0; i < rows; i++) s += (double)B[i * rank + k] * dW[i * cols + j];
                dA[k * cols + j] += (float)(c * s);
            }
    if (dB)
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < rows; i++)
            for (size_t k = 0; k < rank; k++) {
                double s = 0.0;
                for (size_t j = 0; j < cols; j++) s += (double)dW[i * cols + j] * A[k * cols + j];
                dB[i * rank + k] += (float)(c * s);
            }
}

void lora_adapter_merge(size_t n, const float *W0, size_t k, const float *const *dW, const double *w, float *W)
{
    for (size_t j = 0; j < n; j++) {
        float v = W0[j];
        for (size_t i = 0; i < k; i++) v += (float)w[i] * dW[i][j];
        W[j] = v;
    }
}

lora_adapter *lora_adapter_alloc(const nn_params *base, size_t rank, double alpha, uint64_t seed)
{
    LOG_CHECK(rank >= 1, "LoRA rank must be >= 1");
    LOG_CHECK(base->finalized, "LoRA on an unfinalised layout");
    lora_adapter *a = mem_new(lora_adapter, 1);
    a->rank = rank;
    a->alpha = alpha;
    a->base_total = base->total;
    size_t cap = base->n;
    a->base_index = mem_new(size_t, cap);
    a->base_offset = mem_new(size_t, cap);
    a->rows = mem_new(size_t, cap);
    a->cols = mem_new(size_t, cap);
    a->a_index = mem_new(size_t, cap);
    a->b_index = mem_new(size_t, cap);
    a->p = nn_params_alloc();
    /* room for any base name plus the suffix (nn_params_add refuses names that are too long) */
    char name[NN_PARAMS_NAME_MAX + 16];
    for (size_t i = 0; i < base->n; i++) {
        const nn_params_tensor *t = &base->t[i];
        if (!t->trainable || t->ndim < 2) continue;
        size_t rows = (size_t)t->shape[0], cols = t->numel / rows, k = a->n++;
        a->base_index[k] = i;
        a->base_offset[k] = t->offset;
        a->rows[k] = rows;
        a->cols[k] = cols;
        LOG_CHECK(strlen(t->name) + 8 < NN_PARAMS_NAME_MAX, "tensor name too long for a LoRA: %s", t->name);
        snprintf(name, sizeof name, "%s.lora_A", t->name);
        a->a_index[k] = nn_params_add4(a->p, name, 2, (int64_t)rank, (int64_t)cols, 0, 0);
        snprintf(name, sizeof name, "%s.lora_B", t->name);
        a->b_index[k] = nn_params_add4(a->p, name, 2, (int64_t)rows, (int64_t)rank, 0, 0);
    }
    LOG_CHECK(a->n > 0, "LoRA: the network has no weight tensor with two or more dimensions");
    nn_params_finalize(a->p);
    rng *r = rng_alloc(seed, rng_stream_id(0x10a, 0));
    for (size_t k = 0; k < a->n; k++) {
        /* B stays zero: a fresh adapter is the identity on the network */
        nn_params_init_uniform(nn_params_get(a->p, a->p->data, a->a_index[k]), rank * a->cols[k],
                               1.0 / sqrt((double)a->cols[k]), r);
    }
    rng_free(r);
    return a;
}

void lora_adapter_free(lora_adapter *a)
{
    if (!a) return;
    nn_params_free(a->p);
    free(a->base_index);
    free(a->base_offset);
    free(a->rows);
    free(a->cols);
    free(a->a_index);
    free(a->b_index);
    free(a);
}

size_t lora_adapter_num_params(const lora_adapter *a) { return nn_params_count(a->p); }

double lora_adapter_coef(const lora_adapter *a, double scale) { return scale * a->alpha / (double)a->rank; }

void lora_adapter_full_delta(const lora_adapter *a, const float *ab, double scale, float *delta)
{
    memset(delta, 0, a->base_total * sizeof(float));
    LOG_CHECK(a->n == 0 || a->p->n == 2 * a->n, "LoRA layout corrupt");
    double c = lora_adapter_coef(a, scale);
    for (size_t k = 0; k < a->n; k++) {
        const float *A = ab + a->p->t[a->a_index[k]].offset, *B = ab + a->p->t[a->b_index[k]].offset;
        lora_adapter_delta(a->rows[k], a->cols[k], a->rank, A, B, c, delta + a->base_offset[k]);
    }
}

void lora_adapter_full_grad(const lora_adapter *a, const float *ab, double scale, const float *dW, float *dab)
{
    double c = lora_adapter_coef(a, scale);
    for (size_t k = 0; k < a->n; k++) {
        size_t oa = a->p->t[a->a_index[k]].offset, ob = a->p->t[a->b_index[k]].offset;
        lora_adapter_grad(a->rows[k], a->cols[k], a->rank, ab + oa, ab + ob, dW + a->base_offset[k], c, dab + oa,
                          dab + ob);
    }
}

double lora_adapter_delta_norm(size_t n, const float *delta)
{
    double s = 0.0;
    for (size_t j = 0; j < n; j++) s += (double)delta[j] * delta[j];
    return sqrt(s);
}
