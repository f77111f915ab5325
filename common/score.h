/* score: the score-model interface and the barycenter score (paper Thm 2, eq. 8).
 * A score model evaluates s(t, x) ~ grad_x log p_t(x) for a batch. Anything can sit behind it: a trained
 * network, an exact (analytic) score, or the KL-barycenter score s_lambda = sum_i lambda_i s_i, which is
 * itself a score model, so samplers and losses never care which they have.
 * t has a stride: t_stride = 1 gives one time per sample (training), t_stride = 0 shares t[0] across the
 * batch (sampling), which lets a network compute its time embedding once per step. */
#ifndef SF_SCORE_H
#define SF_SCORE_H
#include <stddef.h>

typedef struct score_model {
    size_t dim;             /* dimension d of x */
    void *ctx;
    /* out[n*dim] = s(t[i*t_stride], x[i*dim .. i*dim+dim-1]) for i < n */
    void (*eval)(void *ctx, size_t n, const float *t, size_t t_stride, const float *x, float *out);
    const char *name;
} score_model;

static inline void score_eval(const score_model *m, size_t n, const float *t, size_t t_stride, const float *x,
                              float *out)
{
    m->eval(m->ctx, n, t, t_stride, x, out);
}

/* The barycenter score sum_i lambda_i s_i of k models of equal dimension. Holds pointers to the models
 * (not copies) and a workspace that grows to the largest batch seen. */
typedef struct score_bary score_bary;

score_bary *score_bary_alloc(size_t k, const score_model *const *models, const double *lambda);
void score_bary_set_lambda(score_bary *b, const double *lambda);
const double *score_bary_lambda(const score_bary *b);
score_model score_bary_model(score_bary *b);
void score_bary_free(score_bary *b);

#endif
