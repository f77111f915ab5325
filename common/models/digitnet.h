/* nn/digitnet: the 10-class MNIST digit classifier that measures the class proportions of generated 7/9
 * samples (paper §5.1 / Table 2: the authors used SpinalNet, 99.5% test accuracy). CPU, float32, explicit
 * forward / backward (llm.c style, as nn/scorenet.c): parameters, gradients and Adam moments in one nn_params
 * buffer carved into PyTorch state_dict names, activations in one workspace allocated at alloc.
 * Architecture, parameter count, design choices and measured accuracy / training time: digitnet.c (top).
 *
 * Input: x[n, 784], 28x28 row-major, in the experiment's normalised coordinates x = (pixel/255 - 0.1307)/0.3081
 * (DIGITNET_MEAN, DIGITNET_STD): the score models generate in these coordinates, so generated samples are fed
 * as they are. Every entry point accepts any n (chunks of max_batch; training accumulates the gradient of the
 * whole batch over the chunks: max_batch changes only the float rounding). Not thread-safe (one workspace per
 * model); the layers inside use OpenMP and results do not depend on the thread count. */
#ifndef SF_NN_DIGITNET_H
#define SF_NN_DIGITNET_H
#include "device.h"
#include "params.h"
#include "rng.h"
#include <stddef.h>
#include <stdint.h>

#define DIGITNET_IMG 28
#define DIGITNET_DIM (DIGITNET_IMG * DIGITNET_IMG)
#define DIGITNET_CLASSES 10
#define DIGITNET_MEAN 0.1307   /* the input normalisation x = (pixel/255 - MEAN) / STD */
#define DIGITNET_STD 0.3081

typedef struct digitnet digitnet;

/* Workspace for max_batch (>= 1) samples per forward/backward chunk (about 0.38 MB per sample plus 2.2 MB of
 * im2col scratch: 50 MB for max_batch 128); torch-default initialisation from seed. */
digitnet *digitnet_alloc(size_t max_batch, uint64_t seed);
void digitnet_free(digitnet *m);
/* Moves a cpu model to a device (nn/backend.h table: every layer then runs there; weights uploaded once, the
 * conv layers take the whole chunk in one GEMM). Results agree with the cpu to float rounding; the dropout
 * masks are the same bits (Philox). */
void digitnet_set_device(digitnet *m, device_kind dev);
device_kind digitnet_device(const digitnet *m);
/* the trainer's view: data, grad, m, v (ema, keep unused); allocates the trainer state on first use (params.h).
 * On a device it is the host record, read back from the device by this call; after editing it call
 * digitnet_sync_to_device (nothing to do on the cpu, where the record IS the table's memory). */
nn_params *digitnet_params(digitnet *m);
void digitnet_sync_to_device(digitnet *m);
size_t digitnet_num_params(const digitnet *m);    /* trainable scalars */
size_t digitnet_max_batch(const digitnet *m);
long digitnet_adam_step(const digitnet *m);       /* Adam steps since alloc / load (the file records it) */
/* one-line architecture description, as stored in the checkpoint's __metadata__ "architecture" */
const char *digitnet_architecture(void);

/* probs[n, 10] = softmax(logits), eval mode (dropout off). */
void digitnet_probs(digitnet *m, size_t n, const float *x, float *probs);

/* Mean cross-entropy of the batch (labels in [0, 10); another value is a fatal error). dropout == NULL: eval
 * mode (no dropout); else train mode: one 64-bit Philox seed is drawn from dropout (rng_u64) and unit j of sample
 * i takes element i * 128 + j of stream (PHILOX_DROPOUT, 0) under it (philox.h), so two calls from equal streams
 * use the same masks, on any device and any max_batch. If accumulate_grad, ADDS dL/dparams to
 * digitnet_params(m)->grad (the caller zeroes it; on a device the record travels both ways: for gradient checks
 * and custom loops, not for speed). */
double digitnet_loss(digitnet *m, size_t n, const float *x, const uint8_t *labels, rng *dropout,
                     int accumulate_grad);

/* One Adam step (torch defaults, learning rate lr) on the mean cross-entropy of the batch, train mode (dropout
 * masks from a seed drawn from r, as digitnet_loss). Returns the batch loss; a non-finite loss leaves the
 * parameters untouched and is returned. */
double digitnet_train_step(digitnet *m, size_t n, const float *x, const uint8_t *labels, double lr, rng *r);

typedef struct {
    int epochs;      /* passes over the data */
    size_t batch;    /* minibatch size */
    double lr;       /* peak Adam learning rate (see digitnet_train for the schedule) */
    int progress;    /* progress bar on stderr (only drawn on a terminal) */
    int shift;       /* augmentation: each minibatch image translated by (dy, dx) uniform in [-shift, shift]^2
                      * pixels, drawn from r, vacated pixels = background; 0 = none */
} digitnet_train_opts;

/* the measured settings (digitnet.c): 15 epochs, batch 128, lr 1e-3, no progress bar, shift 2 */
digitnet_train_opts digitnet_train_opts_default(void);

/* Trains on x[n, 784], y[n] in [0, 10): every epoch a fresh shuffle from r, minibatches of o->batch (the last
 * one of an epoch may be smaller; with o->shift > 0 each image randomly translated), one digitnet_train_step
 * each. Learning-rate schedule over the S = epochs * ceil(n / batch) steps: linear warm-up from lr/10 to lr
 * over the first W = min(S/10, one epoch) steps, then cosine decay from lr to lr/1000 at the last step.
 * Shuffles, shifts and dropout masks all come from r, in order (reproducible for a given r and thread count
 * independent). epoch_loss[e] (may be NULL) = mean minibatch loss of epoch e (under augmentation and dropout).
 * Returns the last epoch's mean loss; if a step gives a non-finite loss training stops there, that epoch and
 * the later ones report NaN and NaN is returned. */
double digitnet_train(digitnet *m, size_t n, const float *x, const uint8_t *y, const digitnet_train_opts *o, rng *r,
                      double *epoch_loss);

/* Fraction of samples whose argmax class equals y (eval mode). */
double digitnet_accuracy(digitnet *m, size_t n, const float *x, const uint8_t *y);


/* safetensors checkpoint: the state_dict tensors (as PyTorch would name them, see digitnet.c) and __metadata__
 * format / version / architecture / input normalisation / Adam step / git commit; written atomically.
 * 0, or -1 with one line "<path>: <reason>" in err. */
int digitnet_save(const digitnet *m, const char *path, char *err, size_t errlen);
/* NULL + one line "<path>: <reason>" on any problem: missing or corrupt file, other format, other architecture
 * or normalisation in __metadata__, missing tensor, wrong dtype or shape. A converted PyTorch state_dict without
 * our metadata loads when every tensor is present with the right shape ("module." prefixes accepted). */
digitnet *digitnet_load(const char *path, size_t max_batch, char *err, size_t errlen);

#endif
