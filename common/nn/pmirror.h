/* nn/pmirror: an nn_params record as one backend table sees it (backend.h; issue 8 item 2/3). On the cpu table
 * the pointers ARE the record's buffers (nothing is copied, every operation is the params.h one); on a device
 * they are device buffers: the weights from the move on, the trainer state (grad, m, v, ema, keep) only once a
 * trainer asks, as on the host. The host record stays the checkpoint's source: pmirror_to_host before saving,
 * pmirror_to_device after changing it by hand. The bookkeeping every network written over the table needs
 * (digitnet, mlp1d, scorenet) in one place. */
#ifndef SF_NN_PMIRROR_H
#define SF_NN_PMIRROR_H
#include "backend.h"
#include "params.h"

typedef struct {
    const nn_backend *be;
    nn_params *p;                                  /* the host record (owned by the model) */
    float *data, *grad, *m, *v, *ema, *keep;       /* on be; NULL where absent */
} nn_pmirror;

void nn_pmirror_init(nn_pmirror *d, nn_params *p);           /* the cpu table over p's buffers */
/* cpu -> device (another move dies with a one-line message); uploads the weights and any trainer state */
void nn_pmirror_set_device(nn_pmirror *d, device_kind dev);
void nn_pmirror_free(nn_pmirror *d);                          /* device buffers only; the record stays */
/* trainer state on both sides, allocated once (a record that already had it is carried over) */
void nn_pmirror_train(nn_pmirror *d);
/* the EMA if asked and trainer state exists, else the weights (params.h nn_params_weights) */
const float *nn_pmirror_weights(const nn_pmirror *d, int use_ema);
void nn_pmirror_zero_grad(nn_pmirror *d);
void nn_pmirror_copy_ema_to_data(nn_pmirror *d);
/* a fresh optimisation from the current weights (allocating trainer state): Adam moments zero, EMA = weights,
 * nothing remembered; the caller restarts its Adam / EMA counters */
void nn_pmirror_reset_optim(nn_pmirror *d);
void nn_pmirror_snapshot(nn_pmirror *d, int from_ema);        /* params.h nn_params_snapshot */
int nn_pmirror_restore(nn_pmirror *d);                        /* params.h nn_params_restore */
void nn_pmirror_to_host(nn_pmirror *d);                       /* device -> record (waits); cpu: nothing */
void nn_pmirror_to_device(nn_pmirror *d);                     /* record -> device; cpu: nothing */

#endif
