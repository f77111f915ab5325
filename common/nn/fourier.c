/* nn/fourier: Gaussian Fourier features of the diffusion time (see fourier.h). */
#include "fourier.h"
#include <math.h>

void nn_fourier_init(float *W, int F, double scale, rng *r)
{
    for (int j = 0; j < F; j++) W[j] = (float)(scale * rng_gaussian(r));
}

void nn_fourier_forward(float *out, const float *t, size_t t_stride, const float *W, int B, int F)
{
    const double two_pi = 6.283185307179586476925;
#pragma omp parallel for schedule(static) if ((long)B * F >= 8192)
    for (int b = 0; b < B; b++) {
        const double tb = (double)t[(size_t)b * t_stride];
        float *o = out + (size_t)b * 2 * F;
        for (int j = 0; j < F; j++) {
            double s, c;
            sincos(two_pi * tb * (double)W[j], &s, &c);
            o[j] = (float)s;
            o[F + j] = (float)c;
        }
    }
}
