/* models/scorenet_dev: the paper's ScoreNet (scorenet.h) on the device a binary picked with --device cpu|cuda,
 * behind one host-facing API: every array argument is HOST memory, whatever the backend, so an experiment
 * trains, samples, calibrates and takes likelihoods without knowing where the network runs.
 *
 * There is one network (scorenet.c, written over the backend table); attach moves it to the device's table
 * (scorenet_set_device). Its host nn_params record is what checkpoints are saved from: scorenet_dev_sync_to_host
 * brings it up to date (weights, EMA, Adam moments; the counters live in the model) before a checkpoint is
 * written. The DSM draws come from Philox streams seeded from the same rng in the same order on every backend
 * (the noise drawn where the network runs), so both backends see the same t and z. On a device the train.h
 * vtable carries the resident-data path (scorenet_train_model): the data set uploaded once, minibatches gathered
 * on the device, the loss read one step late. */
#ifndef SF_NN_SCORENET_DEV_H
#define SF_NN_SCORENET_DEV_H
#include "device.h"
#include "likelihood.h"
#include "score.h"
#include "scorenet.h"
#include "train.h"
#include <stddef.h>

typedef struct scorenet_dev scorenet_dev;

/* Moves host (not owned; it must outlive the handle) to dev and wraps it. DEVICE_CUDA needs a CUDA build (dies
 * otherwise). The model stays on dev after the handle is freed. */
scorenet_dev *scorenet_dev_attach(scorenet *host, device_kind dev);
void scorenet_dev_free(scorenet_dev *d);
device_kind scorenet_dev_kind(const scorenet_dev *d);
scorenet *scorenet_dev_host(scorenet_dev *d);
/* Copy the device's weights, EMA, Adam moments and counters into the host model (no-op on the CPU); the
 * remembered (snapshot) weights always live on the host. */
void scorenet_dev_sync_to_host(scorenet_dev *d);
/* Copy the host model's weights and EMA to the device (after editing the host model; no-op on the CPU). */
void scorenet_dev_sync_to_device(scorenet_dev *d);

/* As scorenet_forward / scorenet_vjp, host arrays. */
void scorenet_dev_forward(scorenet_dev *d, int use_ema, size_t n, const float *t, size_t t_stride, const float *x,
                          float *out);
void scorenet_dev_vjp(scorenet_dev *d, int use_ema, size_t n, const float *t, size_t t_stride, const float *x,
                      const float *e, float *score, float *gx);
/* s(t, x) through common/score.h, and the train.h vtable (training step, eval loss, snapshot / restore). */
score_model scorenet_dev_score_model(scorenet_dev *d, int use_ema);
train_model scorenet_dev_train_model(scorenet_dev *d);
/* score + vector-Jacobian product at a shared time through common/likelihood.h (the PF-ODE NLL). */
lik_model scorenet_dev_lik_model(scorenet_dev *d, int use_ema);

#endif
