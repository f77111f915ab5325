/* score: barycenter score s_lambda(t, x) = sum_i lambda_i s_i(t, x) (paper Thm 2 / eq. 8, Algorithm 1 line 11). */
#include "score.h"
#include "log.h"
#include "mem.h"
#include <stdlib.h>
#include <string.h>

struct score_bary {
    size_t k, dim;
    const score_model **models;
    double *lambda;
    float *work;        /* one model's output for the current batch */
    size_t work_cap;
};

score_bary *score_bary_alloc(size_t k, const score_model *const *models, const double *lambda)
{
    LOG_CHECK(k > 0, "barycenter of zero models");
    score_bary *b = mem_calloc(1, sizeof *b);
    b->k = k;
    b->dim = models[0]->dim;
    b->models = mem_new(const score_model *, k);
    b->lambda = mem_new(double, k);
    for (size_t i = 0; i < k; i++) {
        LOG_CHECK(models[i]->dim == b->dim, "barycenter of models of different dimension");
        b->models[i] = models[i];
    }
    score_bary_set_lambda(b, lambda);
    return b;
}

void score_bary_set_lambda(score_bary *b, const double *lambda)
{
    memcpy(b->lambda, lambda, b->k * sizeof *lambda);
}

const double *score_bary_lambda(const score_bary *b) { return b->lambda; }

static void bary_eval(void *ctx, size_t n, const float *t, size_t t_stride, const float *x, float *out)
{
    score_bary *b = ctx;
    size_t len = n * b->dim;
    if (len > b->work_cap) {   /* grows once to the largest batch, never in the steady state */
        b->work = mem_realloc(b->work, len * sizeof *b->work);
        b->work_cap = len;
    }
    memset(out, 0, len * sizeof *out);
    for (size_t i = 0; i < b->k; i++) {
        if (b->lambda[i] == 0.0) continue;
        score_eval(b->models[i], n, t, t_stride, x, b->work);
        const float li = (float)b->lambda[i];
        const float *w = b->work;
        for (size_t j = 0; j < len; j++) out[j] += li * w[j];
    }
}

score_model score_bary_model(score_bary *b)
{
    return (score_model){.dim = b->dim, .ctx = b, .eval = bary_eval, .name = "barycenter"};
}

void score_bary_free(score_bary *b)
{
    if (!b) return;
    free(b->models);
    free(b->lambda);
    free(b->work);
    free(b);
}
