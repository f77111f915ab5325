/* nn/adam: torch.optim.Adam (defaults) over flat float buffers (see adam.h). Scalars in double, state in float
 * as in PyTorch's single-precision path. */
#include "adam.h"
#include <math.h>

nn_adam nn_adam_default(void)
{
    nn_adam a = {0.9, 0.999, 1e-8, 0};
    return a;
}

void nn_adam_step(nn_adam *a, double lr, float *p, const float *g, float *m, float *v, size_t n)
{
    a->step++;
    const double bc1 = 1.0 - pow(a->beta1, (double)a->step);
    const double bc2 = 1.0 - pow(a->beta2, (double)a->step);
    const float step_size = (float)(lr / bc1);
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    const float b1 = (float)a->beta1, b2 = (float)a->beta2, eps = (float)a->eps;
    const float c1 = (float)(1.0 - a->beta1), c2 = (float)(1.0 - a->beta2);   /* 1 - b in double: 1.0f - 0.999f is off by 5e-5 */
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + c1 * gi;
        float vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    }
}
