/* dsm: perturbation and denoising score-matching loss with its gradient (see dsm.h). */
#include "dsm.h"
#include "philox.h"

void dsm_perturb_at(const sde *s, uint64_t seed, size_t first, size_t n, size_t dim, const float *x0, double t_lo,
                    double t_hi, float *t, float *std, float *z, float *xt)
{
    philox_time_fill(t, n, t_lo, t_hi, seed, philox_stream(PHILOX_DSM_TIME, 0), first);
    philox_gaussian_fill(z, n * dim, seed, philox_stream(PHILOX_DSM_NOISE, 0), first * dim);
    for (size_t i = 0; i < n; i++) {
        std[i] = (float)sde_std(s, (double)t[i]);
        const float a = (float)sde_alpha(s, (double)t[i]);
        for (size_t d = 0; d < dim; d++) xt[i * dim + d] = a * x0[i * dim + d] + std[i] * z[i * dim + d];
    }
}

void dsm_perturb(const sde *s, rng *r, size_t n, size_t dim, const float *x0, double t_lo, double t_hi, float *t,
                 float *std, float *z, float *xt)
{
    dsm_perturb_at(s, rng_u64(r), 0, n, dim, x0, t_lo, t_hi, t, std, z, xt);
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
