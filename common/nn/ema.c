/* nn/ema: EMA of parameters with the (1+n)/(10+n) warm-up (see ema.h). */
#include "ema.h"

nn_ema nn_ema_init(double decay)
{
    nn_ema e = {decay, 0};
    return e;
}

double nn_ema_decay_at(double decay, long n)
{
    double w = (1.0 + (double)n) / (10.0 + (double)n);
    return w < decay ? w : decay;
}

double nn_ema_update(nn_ema *e, float *shadow, const float *p, size_t n)
{
    e->num_updates++;
    const double d = nn_ema_decay_at(e->decay, e->num_updates);
    const float omd = (float)(1.0 - d);
#pragma omp simd
    for (size_t i = 0; i < n; i++) shadow[i] -= omd * (shadow[i] - p[i]);
    return d;
}
