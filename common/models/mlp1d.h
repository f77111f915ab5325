/* nn/mlp1d: the 1-D score network of the "corrected mode" 1-D experiment (REFERENCE.md: "a proper 1-D score
 * network"), its DSM training step (paper eq. 5, common/dsm.h) and safetensors checkpoints.
 *
 * Architecture (W = width, L = depth, F = n_freq):
 *   temb   = SiLU(Linear_{2F->W}(fourier(t)))          fourier: F fixed frequencies ~ N(0, fourier_scale^2),
 *                                                      [sin 2 pi t W, cos 2 pi t W] (nn/fourier.h)
 *   c_in   = 1 / sqrt(data_scale^2 + std(t)^2)         input scaling, so the first layer sees O(1) values at
 *                                                      every noise level
 *   h_0    = SiLU(Linear_{1->W}(c_in x) + Dense_0(temb))
 *   h_l    = SiLU(Linear_{W->W}(h_{l-1}) + Dense_l(temb)),  l = 1 .. L-1      (Dense_l: Linear_{W->W})
 *   score  = Linear_{W->1}(h_{L-1}) / std(t)           (the paper's output parameterisation)
 * Tensor names (PyTorch state_dict style): embed.0.W [F] (fixed), embed.1.weight [W,2F], embed.1.bias [W],
 * layers.l.weight [W, in], layers.l.bias [W], dense.l.weight [W,W], dense.l.bias [W], out.weight [1,W],
 * out.bias [1]. Initialisation: torch nn.Linear default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
 * biases, drawn from common/rng.h streams seeded by `seed`; EMA starts as a copy of the initial parameters.
 *
 * Sampling path (score_model with t_stride == 0): temb and Dense_l(temb) + bias_l are computed once per call,
 * so a sample costs W + (L-1) W^2 + W multiply-adds plus L W SiLUs.
 * Training: Adam (torch defaults, nn/adam.h) then EMA with warm-up (nn/ema.h), after every step. */
#ifndef SF_NN_MLP1D_H
#define SF_NN_MLP1D_H
#include "device.h"
#include "params.h"
#include "rng.h"
#include "score.h"
#include "sde.h"
#include "train.h"
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int width, depth, n_freq;
    double fourier_scale, data_scale;
} mlp1d_config;

mlp1d_config mlp1d_config_default(void);   /* width 32, depth 3, n_freq 16, fourier_scale 16, data_scale 1 */

typedef struct mlp1d mlp1d;

mlp1d *mlp1d_alloc(const mlp1d_config *c, const sde *s, uint64_t seed);
void mlp1d_free(mlp1d *m);
size_t mlp1d_num_params(const mlp1d *m);               /* trainable scalars */
const mlp1d_config *mlp1d_get_config(const mlp1d *m);
/* Moves a cpu model to a device (nn/backend.h table; weights and any trainer state uploaded once). Every
 * entry point below then runs there; results agree with the cpu to float rounding. */
void mlp1d_set_device(mlp1d *m, device_kind dev);
device_kind mlp1d_device(const mlp1d *m);
/* the trainer's view: data, grad, m, v, ema, keep (allocates the trainer state on first use, params.h). On a
 * device: the host record, read back by this call; after editing it call mlp1d_sync_to_device. */
nn_params *mlp1d_params(mlp1d *m);
void mlp1d_sync_to_device(mlp1d *m);

/* s(t, x) for x[n], one time per sample (t_stride 1) or shared t[0] (t_stride 0). Inference only; not
 * thread-safe (shares the model's workspace); any n (the workspace grows when n exceeds the previous max). */
score_model mlp1d_score_model(mlp1d *m, int use_ema);

/* One optimiser step on x0[n]: t ~ U[t_lo, t_hi], z ~ N(0,1) from r (dsm_perturb), DSM loss (dsm_loss),
 * backward, Adam (lr), EMA update. Returns the minibatch loss (a non-finite loss skips the update). */
double mlp1d_train_step(mlp1d *m, size_t n, const float *x0, double t_lo, double t_hi, double lr, rng *r);
/* DSM loss on x0[n] without updating (use_ema selects the EMA weights), same t / z sampling. */
double mlp1d_eval_loss(mlp1d *m, int use_ema, size_t n, const float *x0, double t_lo, double t_hi, rng *r);
/* The DSM loss at given t[n] and z[n] (x_t = alpha(t) x0 + std(t) z). If accumulate_grad, adds dL/dparams to
 * mlp1d_params(m)->grad; if dx0 != NULL writes dL/dx0 [n]. For gradient checks and calibration code. */
double mlp1d_loss_at(mlp1d *m, int use_ema, size_t n, const float *x0, const float *t, const float *z, float *dx0,
                     int accumulate_grad);

void mlp1d_copy_ema_to_params(mlp1d *m);
/* Best-checkpoint bookkeeping: remember the current EMA (from_ema = 1) or raw weights; restore copies the
 * remembered weights into BOTH params and EMA (returns -1 if nothing was remembered). */
void mlp1d_snapshot(mlp1d *m, int from_ema);
int mlp1d_restore_snapshot(mlp1d *m);
/* The train.h vtable for this model. */
train_model mlp1d_train_model(mlp1d *m);

/* safetensors checkpoint: every tensor under its name (params) and "ema.<name>" (EMA), config, SDE and step
 * counters in __metadata__; written atomically. 0 or -1 with a one-line reason in err. */
int mlp1d_save(const mlp1d *m, const char *path, char *err, size_t errlen);
/* NULL + one-line reason on any problem (missing file, corrupt file, wrong format/shape, SDE mismatch). */
mlp1d *mlp1d_load(const char *path, const sde *s, char *err, size_t errlen);
/* Inference only: the "ema.*" weights (use_ema) or the raw ones, no trainer state; score_model(m, 0 or 1) both
 * evaluate the loaded set. */
mlp1d *mlp1d_load_weights(const char *path, const sde *s, int use_ema, char *err, size_t errlen);

#endif
