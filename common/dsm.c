/* dsm: perturbation and denoising score-matching loss with its gradient (see dsm.h). */
#include "dsm.h"

void dsm_perturb(const sde *s, rng *r, size_t n, size_t dim, const float *x0, double t_lo, double t_hi, float *t,
                 float *std, float *z, float *xt)
{
    for (size_t i = 0; i < n; i++) {
        double ti = t_lo + (t_hi - t_lo) * rng_uniform(r);
        t[i] = (float)ti;
        std[i] = (float)sde_std(s, ti);
        float a = (float)sde_alpha(s, ti);
        rng_gaussian_fill(r, z + i * dim, dim);
        for (size_t d = 0; d < dim; d++) xt[i * dim + d] = a * x0[i * dim + d] + std[i] * z[i * dim + d];
    }
}

double dsm_loss(size_t n, size_t dim, const float *score, const float *std, const float *z, float *dscore)
{
    double sum = 0.0;
    const float inv_n = 1.0f / (float)n;
    for (size_t i = 0; i < n; i++) {
        for (size_t d = 0; d < dim; d++) {
            size_t j = i * dim + d;
            float r = score[j] * std[i] + z[j];
            sum += (double)r * r;
            if (dscore) dscore[j] = 2.0f * r * std[i] * inv_n;
        }
    }
    return sum / (double)n;
}
