/* nn/scorenet: the paper's image score network ("ScoreNet", Song's MNIST tutorial U-Net, as in the authors'
 * src/model_EMNIST.py; REFERENCE.md "Score network") on the CPU, with explicit forward / backward, the gradient
 * with respect to the input (vector-Jacobian product, for the Hutchinson trace of the NLL, paper §5.1 / App. G),
 * the DSM training step (paper eq. 5, the code's form), the score_model interface and safetensors checkpoints.
 *
 * Architecture (x [B,1,28,28], t [B]; e = swish(Linear_256(Fourier_128(t))); Dk(e) = Linear(256 -> C) broadcast
 * over H, W; every "+ Dk(e)" comes BEFORE the GroupNorm; swish(x) = x sigmoid(x); no padding anywhere):
 *   h1 = swish(GN_4 (conv1  1->32  k3 s1 (x) + D1))                      [B, 32, 26, 26]
 *   h2 = swish(GN_32(conv2 32->64  k3 s2 (h1) + D2))                     [B, 64, 12, 12]
 *   h3 = swish(GN_32(conv3 64->128 k3 s2 (h2) + D3))                     [B,128,  5,  5]
 *   h4 = swish(GN_32(conv4 128->256 k3 s2 (h3) + D4))                    [B,256,  2,  2]
 *   g4 = swish(GN_32(tconv4 256->128 s2 (h4) + D5))                      [B,128,  5,  5]
 *   g3 = swish(GN_32(tconv3 256->64 s2 op1 (cat[g4, h3]) + D6))          [B, 64, 12, 12]
 *   g2 = swish(GN_32(tconv2 128->32 s2 op1 (cat[g3, h2]) + D7))          [B, 32, 26, 26]
 *   s  = tconv1 64->1 s1 with bias (cat[g2, h1]) / std(t)                [B,  1, 28, 28]
 * Convolutions have no bias except tconv1; GroupNorm eps 1e-5 with affine weight/bias; 1,115,297 trainable
 * parameters (asserted at alloc) plus the 128 fixed Fourier frequencies embed.0.W ~ N(0, 30^2).
 * Tensor names = the PyTorch state_dict keys: embed.0.W, embed.1.weight [256,256], embed.1.bias,
 * conv1.weight [32,1,3,3], dense1.dense.weight [32,256], dense1.dense.bias, gnorm1.weight, gnorm1.bias, ...,
 * tconv4.weight [256,128,3,3] (ConvTranspose2d layout [in, out, kh, kw]), dense5, tgnorm4, tconv3, dense6,
 * tgnorm3, tconv2, dense7, tgnorm2, tconv1.weight [64,1,3,3], tconv1.bias [1].
 * Initialisation = torch's reset_parameters, from our rng seeded by `seed` (the same distributions, not the same
 * draws): Linear / Conv2d / ConvTranspose2d weights U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with
 * a = sqrt(5)), biases the same bound, where fan_in = weight.size(1) * 9 for convolutions -- so for a
 * ConvTranspose2d it is OUT_channels * 9 (torch's _calculate_fan_in_and_fan_out quirk) -- and in_features for
 * Linear; GroupNorm weight 1, bias 0; embed.0.W = 30 N(0, 1). EMA starts as a copy of the parameters (the
 * trainer state, params.h, is allocated by the first training call: a model used for inference has none).
 *
 * Output parameterisation: the network output is divided by the SDE's marginal std(t) (sde_std), as the paper's
 * code does; the DSM loss is L = mean_b sum_pixels (s std + z)^2 with x_t = alpha(t) x0 + std(t) z (common/dsm.h).
 *
 * Batches: activations for backward live in a workspace sized for `max_batch` samples at alloc
 * (scorenet_activation_bytes() says how much). Every entry point accepts any n: larger batches are processed in
 * chunks of max_batch (exact: nothing in the network couples samples; training accumulates gradients over chunks).
 * Not thread-safe (one workspace per model); the layers inside use OpenMP.
 * Precision: float32 storage and arithmetic (as PyTorch eager fp32), sums in the layers as they choose. */
#ifndef SF_NN_SCORENET_H
#define SF_NN_SCORENET_H
#include "device.h"
#include "params.h"
#include "rng.h"
#include "score.h"
#include "sde.h"
#include "train.h"
#include <stddef.h>
#include <stdint.h>

#define SCORENET_IMG 28                       /* image side */
#define SCORENET_DIM (SCORENET_IMG * SCORENET_IMG)   /* floats per sample (1 channel) */
#define SCORENET_NUM_PARAMS 1115297u          /* trainable scalars of the paper's ScoreNet */

typedef struct scorenet scorenet;

/* The network for SDE s (its std(t) divides the output), workspace for max_batch samples (>= 1), parameters
 * initialised from seed. */
scorenet *scorenet_alloc(const sde *s, size_t max_batch, uint64_t seed);
void scorenet_free(scorenet *m);
/* The backend: a model is allocated (and loaded) on the cpu table; scorenet_set_device moves it, before use, to
 * the table of dev (backend.h): weights uploaded once, the trainer state (if any) with them, the workspace
 * re-made there. Every entry point below keeps taking HOST arrays on every backend (inputs are copied to the
 * device per chunk, results copied back); on the cpu nothing is copied. On a device the host nn_params record is
 * brought up to date only by scorenet_sync_to_host (before a checkpoint is written from it), and host edits go
 * to the device with scorenet_sync_to_device. DEVICE_CUDA needs a CUDA build (dies otherwise). */
void scorenet_set_device(scorenet *m, device_kind dev);
device_kind scorenet_device(const scorenet *m);
void scorenet_sync_to_host(scorenet *m);
/* bf16 convolution GEMMs on the cpu (backend.h nn_backend_cpu_bf16): on = 1 rounds both operands of every conv /
 * conv-transpose GEMM to bf16 (fp32 accumulation; AMX where the CPU has it), on = 0 restores fp32. Weights,
 * activations and everything outside those GEMMs stay fp32. Switchable at any time; a device model dies. */
void scorenet_set_gemm_bf16(scorenet *m, int on);
int scorenet_gemm_bf16(const scorenet *m);
/* Any other table over host memory (an instrumented copy of the cpu table, bench_scorenet --gemm-time); the model
 * and the table must both be host tables. */
struct nn_backend;
void scorenet_set_host_table(scorenet *m, const struct nn_backend *be);
void scorenet_sync_to_device(scorenet *m);
void scorenet_zero_grad(scorenet *m);   /* the gradient on the model's device (allocating trainer state) */
size_t scorenet_num_params(const scorenet *m);        /* trainable scalars (== SCORENET_NUM_PARAMS) */
/* the trainer's view: the flat host buffers data, grad, m, v, ema, keep (allocates the trainer state on first
 * use; on a device: the host record, see scorenet_sync_to_host) */
nn_params *scorenet_params(scorenet *m);
size_t scorenet_max_batch(const scorenet *m);
size_t scorenet_activation_bytes(size_t max_batch);   /* workspace bytes (activations + im2col) for max_batch */
const sde *scorenet_sde(const scorenet *m);
/* read-only view of the weights (grad, m, v, ema NULL while no trainer asked for them), e.g. to copy to a device */
const nn_params *scorenet_params_const(const scorenet *m);
/* Adam steps and EMA updates done so far (bias correction and EMA warm-up continue from them) */
void scorenet_get_counters(const scorenet *m, long *adam_step, long *ema_updates);
void scorenet_set_counters(scorenet *m, long adam_step, long ema_updates);   /* e.g. from a device copy */

/* out[n, 784] = s(t_i, x_i), t_i = t[i * t_stride] (t_stride 0 shares t[0]); use_ema picks the EMA weights. */
void scorenet_forward(scorenet *m, int use_ema, size_t n, const float *t, size_t t_stride, const float *x,
                      float *out);

/* Vector-Jacobian product: score[n, 784] = s(t, x) (may be NULL) and gx[n, 784] = grad_x <s(t, x), e>
 * (per sample: gx_i = J_i^T e_i, J_i = ds_i/dx_i). Parameter gradients are NOT touched. */
void scorenet_vjp(scorenet *m, int use_ema, size_t n, const float *t, size_t t_stride, const float *x,
                  const float *e, float *score, float *gx);

/* General backward: given dL/ds [n, 784] (dscore) at (t, x), recomputes the forward and ACCUMULATES dL/dparams
 * into scorenet_params(m)->grad if accumulate_grad; writes dL/dx [n, 784] if dx != NULL. score (may be NULL)
 * receives s(t, x). For calibration-type losses built on top of the network. */
void scorenet_backward(scorenet *m, int use_ema, size_t n, const float *t, size_t t_stride, const float *x,
                       const float *dscore, int accumulate_grad, float *dx, float *score);

/* The DSM loss at given t[n], z[n, 784] (x_t = alpha(t) x0 + std(t) z), accumulated in double. If
 * accumulate_grad, adds dL/dparams to the grad buffer; if dx0 != NULL writes dL/dx0 [n, 784]. For gradient
 * checks and the cross-check against PyTorch. */
double scorenet_loss_at(scorenet *m, int use_ema, size_t n, const float *x0, const float *t, const float *z,
                        float *dx0, int accumulate_grad);

/* One optimiser step on x0[n, 784]: t ~ U[t_lo, t_hi], z ~ N(0, I) (dsm_perturb), DSM loss, backward, Adam (lr,
 * torch defaults), EMA update (decay 0.999 with warm-up). Returns the minibatch loss (non-finite: no update). */
double scorenet_train_step(scorenet *m, size_t n, const float *x0, double t_lo, double t_hi, double lr, rng *r);
/* The DSM loss on x0[n, 784] without updating, same t / z sampling. */
double scorenet_eval_loss(scorenet *m, int use_ema, size_t n, const float *x0, double t_lo, double t_hi, rng *r);

/* s(t, x) through common/score.h (dim 784, any n, t_stride 0 or 1). */
score_model scorenet_score_model(scorenet *m, int use_ema);

void scorenet_copy_ema_to_params(scorenet *m);
/* Start a new optimisation from the current weights, as a fine-tuning script that builds a fresh torch Adam and
 * EMA does (paper Baseline 2): Adam moments and step 0, EMA = params with its warm-up restarted, no snapshot. */
void scorenet_reset_optimizer(scorenet *m);
void scorenet_snapshot(scorenet *m, int from_ema);    /* remember the EMA (1) or raw (0) weights */
int scorenet_restore_snapshot(scorenet *m);           /* into params AND EMA; -1 if nothing remembered */
/* The train.h vtable (dim 784). On a device it carries the resident-data entries (train.h): train_run uploads
 * the data once, gathers minibatches there by index and reads each loss one step late, so a step never waits
 * for the host; the cpu gets the gathered path (the host arrays are already where the network runs).
 * scorenet_train_model_resident gives the resident entries on any table (on the cpu they run the same
 * arithmetic in place, bitwise equal to the gathered path: the test of the loop logic without a GPU). One
 * resident run at a time per process (the table's loss fetch slots are shared). */
train_model scorenet_train_model(scorenet *m);
train_model scorenet_train_model_resident(scorenet *m);

/* safetensors checkpoint: every tensor under its state_dict name (params) and "ema.<name>" (EMA); format,
 * SDE, Adam / EMA step counters and git commit in __metadata__; written atomically. 0, or -1 + one line in err. */
int scorenet_save(const scorenet *m, const char *path, char *err, size_t errlen);
/* A training checkpoint: everything scorenet_save writes, plus the Adam moments and remembered weights
 * (nn_params_write_optim) and the training loop's state p (train_progress_write). scorenet_load reads its model
 * part; scorenet_read_optim and train_progress_read the rest, to resume the run exactly. */
int scorenet_save_training(const scorenet *m, const train_progress *p, const char *path, char *err, size_t errlen);
struct safetensors;
int scorenet_read_optim(scorenet *m, const struct safetensors *st, const char *path, char *err, size_t errlen);
/* A network killed mid-training, from its training checkpoint: the model (scorenet_load), its Adam moments and
 * remembered weights (scorenet_read_optim), and the checkpoint left open in *st for train_progress_read (close
 * it with safetensors_close). Any problem is fatal: one line naming the file, "(delete it to restart this
 * network)". */
scorenet *scorenet_load_training(const char *path, const sde *s, size_t max_batch, struct safetensors **st);
/* Loads one of our checkpoints, or a converted PyTorch state_dict (no "format" metadata; a leading "module."
 * -- nn.DataParallel -- is stripped from every name; without "ema.*" tensors the EMA is a copy of the params).
 * NULL + one line "<path>: <reason>" on any problem (missing/corrupt file, missing tensor, wrong dtype or shape,
 * other format, SDE mismatch). max_batch as for scorenet_alloc. */
scorenet *scorenet_load(const char *path, const sde *s, size_t max_batch, char *err, size_t errlen);
/* Inference only: one set of weights (the "ema.*" tensors if use_ema, else the raw ones; a file without "ema.*"
 * gives the raw ones either way) and no trainer state, so the model costs its weights and activations. Its
 * forward / VJP take use_ema 0 or 1 alike (both are the loaded set); training it allocates trainer state then. */
scorenet *scorenet_load_weights(const char *path, const sde *s, size_t max_batch, int use_ema, char *err,
                                size_t errlen);

#endif
