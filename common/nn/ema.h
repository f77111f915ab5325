/* nn/ema: exponential moving average of the parameters with the warm-up the paper's code uses
 * (src/training.py ExponentialMovingAverage, after TensorFlow's moving_averages):
 *     n += 1 (before use: the first update has n = 1);  decay_n = min(decay, (1 + n) / (10 + n));
 *     shadow -= (1 - decay_n) (shadow - p)
 * The shadow starts as a copy of the initial parameters and is updated after every optimiser step.
 * decay = 0.999 in the paper, so the warm-up decays are 2/11, 3/12, ... until (1+n)/(10+n) reaches 0.999. */
#ifndef SF_NN_EMA_H
#define SF_NN_EMA_H
#include <stddef.h>

typedef struct {
    double decay;
    long num_updates;
} nn_ema;

nn_ema nn_ema_init(double decay);
double nn_ema_decay_at(double decay, long n);   /* min(decay, (1 + n) / (10 + n)) */
/* One update of shadow[n] toward p[n]; returns the decay used. */
double nn_ema_update(nn_ema *e, float *shadow, const float *p, size_t n);

#endif
