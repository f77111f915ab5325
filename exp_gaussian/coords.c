/* coords: the coordinate conventions of exp_gaussian (see eg_mode in eg.h and REFERENCE.md's 1-D quirks).
 * The networks are trained on standardised data, y = (x - shift) / scale. In paper mode each dataset uses its
 * own sample moments (torch's data.mean(), data.std() with n-1), as make_mixture_data does; fused samples are
 * mapped back with the target's training moments, as the notebook does. In corrected mode one map (pooled
 * auxiliary moments) serves every model, and KL barycenters commute with that common affine map. */
#include "eg.h"
#include <math.h>

void eg_sample_moments(const double *x, size_t n, eg_affine *a)
{
    double s = 0.0, s2 = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    double mean = s / (double)n;
    for (size_t i = 0; i < n; i++) s2 += (x[i] - mean) * (x[i] - mean);
    a->shift = mean;
    a->scale = sqrt(s2 / (double)(n > 1 ? n - 1 : 1));
}

eg_coords eg_coords_make(eg_mode mode, size_t k, double *const *aux_train, size_t n_aux, const double *target_train,
                         size_t n_target)
{
    eg_coords co = {.mode = mode};
    if (mode == EG_PAPER) {
        for (size_t i = 0; i < k; i++) eg_sample_moments(aux_train[i], n_aux, &co.aux[i]);
        eg_sample_moments(target_train, n_target, &co.target);
        return co;
    }
    /* pooled moments of all auxiliary training data: abundant, and independent of the n target samples */
    double s = 0.0, s2 = 0.0;
    size_t total = k * n_aux;
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < n_aux; j++) s += aux_train[i][j];
    double mean = s / (double)total;
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < n_aux; j++) s2 += (aux_train[i][j] - mean) * (aux_train[i][j] - mean);
    eg_affine common = {mean, sqrt(s2 / (double)(total - 1))};
    for (size_t i = 0; i < k; i++) co.aux[i] = common;
    co.target = common;
    return co;
}

void eg_affine_apply(const eg_affine *a, const double *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = (float)((x[i] - a->shift) / a->scale);
}

void eg_affine_invert(const eg_affine *a, const float *y, double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = a->shift + a->scale * (double)y[i];
}
