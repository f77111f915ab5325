/* nn/scorenet_cuda: the paper's image ScoreNet (src/model_EMNIST.py; paper §5.1, App. G; REFERENCE.md "Score
 * network"; architecture in scorenet.h) resident on a CUDA device: forward, backward (parameter gradients and
 * the input gradient / VJP used by the Hutchinson trace of the NLL), the DSM loss (paper eq. 5, the code's form)
 * and the Adam + EMA training step, built only from the CUDA twins of nn_cuda.h. It mirrors common/nn/scorenet.c
 * one-to-one (same stage table, same order of operations, same activation caches); the CPU scorenet is the
 * reference (tests/test_cuda_scorenet.c compares the two).
 *
 * EXISTS ONLY IN A CUDA BUILD (SF_HAVE_CUDA): the declarations below are unconditional, the definitions are
 * compiled only with nvcc present, so every CALL must sit under #ifdef SF_HAVE_CUDA.
 *
 * Parameters: one flat device buffer holding data, grad, m, v, ema (5 x total floats, the CPU nn_params layout
 * and offsets, padding included), copied from the host nn_params of a CPU scorenet at alloc and back with
 * scorenet_cuda_to_host, so checkpoints (scorenet_save / scorenet_load) stay shared. Adam / EMA step counters
 * start at 0 (a fresh model); scorenet.h has no accessor for a loaded model's counters, so a resumed run sets
 * them with scorenet_cuda_set_counters.
 *
 * Pointers: images x / x0 / z / e / out / score / gx / dx0 [n, 784] are DEVICE pointers; the times t are HOST
 * floats (std(t) and alpha(t) are evaluated in double on the host exactly as the CPU model does). Any n: larger
 * batches run in chunks of max_batch, as on the CPU. Per-sample scalings (1/std(t), alpha(t)) are applied by a
 * diagonal GEMM (nn_sgemm_cuda), exact per element for finite inputs; a NaN / Inf in one sample of a block of
 * 256 then spreads to that block (0 * Inf) -- only non-finite inputs are affected.
 * Not thread-safe (one device workspace per model); everything runs on the nn_cuda stream. */
#ifndef SF_NN_SCORENET_CUDA_H
#define SF_NN_SCORENET_CUDA_H
#include "rng.h"
#include "scorenet.h"
#include <stddef.h>

typedef struct scorenet_cuda scorenet_cuda;

/* which flat buffer (scorenet_cuda_buffer_to_host) */
typedef enum { SCORENET_CUDA_DATA = 0, SCORENET_CUDA_GRAD, SCORENET_CUDA_M, SCORENET_CUDA_V, SCORENET_CUDA_EMA }
    scorenet_cuda_buf;

/* A device copy of cpu_model (its SDE, parameters, gradient, Adam moments and EMA), device workspace for
 * max_batch (>= 1) samples. */
scorenet_cuda *scorenet_cuda_alloc_from(const scorenet *cpu_model, size_t max_batch);
void scorenet_cuda_free(scorenet_cuda *g);
size_t scorenet_cuda_max_batch(const scorenet_cuda *g);
size_t scorenet_cuda_activation_bytes(size_t max_batch);   /* device workspace bytes (excluding parameters) */
/* Copies the parameters and the EMA back into cpu_model (same architecture; its gradient / moments untouched). */
void scorenet_cuda_to_host(const scorenet_cuda *g, scorenet *cpu_model);
/* Copies one whole flat buffer [total] (nn_params layout of the CPU model) to host memory dst. */
void scorenet_cuda_buffer_to_host(const scorenet_cuda *g, scorenet_cuda_buf which, float *dst);
/* Overwrites one whole flat buffer [total] on the device from host memory src (e.g. restoring a snapshot). */
void scorenet_cuda_buffer_from_host(scorenet_cuda *g, scorenet_cuda_buf which, const float *src);
void scorenet_cuda_set_counters(scorenet_cuda *g, long adam_step, long ema_updates);
void scorenet_cuda_get_counters(const scorenet_cuda *g, long *adam_step, long *ema_updates);
void scorenet_cuda_zero_grad(scorenet_cuda *g);

/* out[n, 784] (device) = s(t_i, x_i), x device, t_i = t[i * t_stride] host (t_stride 0 shares t[0]). */
void scorenet_cuda_forward(scorenet_cuda *g, int use_ema, size_t n, const float *t, size_t t_stride,
                           const float *x, float *out);

/* score[n, 784] = s(t, x) (may be NULL), gx[n, 784] = J^T e per sample; parameter gradients untouched. */
void scorenet_cuda_vjp(scorenet_cuda *g, int use_ema, size_t n, const float *t, size_t t_stride, const float *x,
                       const float *e, float *score, float *gx);

/* As scorenet_backward: dscore [n, 784] device; accumulates dL/dparams into the device grad if accumulate_grad;
 * dx (may be NULL) receives dL/dx; score (may be NULL) s(t, x). */
void scorenet_cuda_backward(scorenet_cuda *g, int use_ema, size_t n, const float *t, size_t t_stride,
                            const float *x, const float *dscore, int accumulate_grad, float *dx, float *score);

/* As scorenet_loss_at: x0, z [n, 784] device, t[n] host. Accumulates dL/dparams into the device grad if
 * accumulate_grad; dx0 (device, may be NULL) receives dL/dx0. Returns the DSM loss (double sums). */
double scorenet_cuda_loss_at(scorenet_cuda *g, int use_ema, size_t n, const float *x0, const float *t,
                             const float *z, float *dx0, int accumulate_grad);

/* As scorenet_train_step on x0[n, 784] (DEVICE): t ~ U[t_lo, t_hi] and z ~ N(0, I) drawn from r on the host in
 * exactly dsm_perturb's order (so a CPU and a GPU model fed the same rng state see the same draws), z uploaded,
 * x_t formed on the device, DSM loss, backward, Adam (nn_adam_step_cuda), EMA (nn_ema_update_cuda). Returns the
 * minibatch loss (non-finite: no update). */
double scorenet_cuda_train_step(scorenet_cuda *g, size_t n, const float *x0, double t_lo, double t_hi, double lr,
                                rng *r);

#endif
