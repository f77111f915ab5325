/* nn/adam: the Adam optimiser (Kingma & Ba 2015) exactly as torch.optim.Adam with its defaults
 * (betas 0.9 / 0.999, eps 1e-8, bias correction, no weight decay, no amsgrad), which the paper uses for every
 * network (REFERENCE.md). Per step t (1-based):
 *     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *     p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * Operates on flat buffers (nn/params.h lays parameters, grads and moments out identically). */
#ifndef SF_NN_ADAM_H
#define SF_NN_ADAM_H
#include <stddef.h>

typedef struct {
    double beta1, beta2, eps;
    long step;                  /* optimiser steps taken so far */
} nn_adam;

nn_adam nn_adam_default(void);  /* torch defaults, step 0 */

/* Increments a->step, then updates p[n] in place from g[n], with moments m[n], v[n]. */
void nn_adam_step(nn_adam *a, double lr, float *p, const float *g, float *m, float *v, size_t n);

#endif
